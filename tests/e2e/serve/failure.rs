//! A renewal that fails is retried with backoff while the old certificate is served, the status
//! endpoint shows the error, and a later renewal succeeds.

use std::time::{Duration, Instant};

use super::load::served_serial;
use super::*;
use crate::life::NEW_ORDER;
use crate::proxy::{Fault, Proxy, Rule};

/// Twenty-second certificates: the first renewal comes within twenty seconds.
const VALIDITY_SECS: u64 = 20;
/// newOrder requests answered 500 after the first (two per attempt while the order carries
/// `replaces`, which the client drops after a refusal; one after).
const FAILING: usize = 6;

/// Polls the status endpoint until `done` holds for its JSON, at most `limit`.
async fn status_until(
    client: &mut Client,
    what: &str,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let status = status(client.shutdown_port).await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {limit:?}; /status {status}\n{}",
            client.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_keeps_the_old_certificate_served() {
    // The rules count newOrder requests: no random badNonce may add one.
    let Some(pebble) = Pebble::current(EXACT_COUNTS, profiles(VALIDITY_SECS)).await else {
        return;
    };
    let fault = Fault::Replace {
        status: 500,
        content_type: "application/problem+json",
        body: r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"injected by the test proxy","status":500}"#.into(),
    };
    // Each rule takes the second newOrder its predecessors let through: requests 2..=FAILING+1.
    let rules = (0..FAILING)
        .map(|_| Rule::new(NEW_ORDER, 2, fault.clone()))
        .collect();
    let proxy = Proxy::start(&pebble, rules).await;
    let name = "failing.serve.example.test";
    let mut client = Client::start_at(
        &pebble,
        &proxy.dir_url(),
        "http01",
        &[name],
        &["--profile", "shortlived"],
    );
    client.wait_serving(&pebble).await;
    let first = served_serial(client.https_port, name).await;

    let failing = status_until(
        &mut client,
        "failed renewal",
        Duration::from_secs(40),
        |s| s["failures_in_a_row"].as_u64().unwrap_or(0) >= 1,
    )
    .await;
    assert!(
        same_serial(&served_serial(client.https_port, name).await, &first),
        "the old certificate must be served while renewals fail"
    );
    assert!(
        same_serial(failing["serial"].as_str().unwrap_or_default(), &first),
        "{failing}"
    );
    assert_eq!(failing["renewals"], 0, "{failing}");
    assert!(
        failing["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{failing}"
    );
    eprintln!("while failing: {failing}");

    let renewed = status_until(&mut client, "renewal", Duration::from_secs(60), |s| {
        s["renewals"].as_u64().unwrap_or(0) >= 1
            && !same_serial(s["serial"].as_str().unwrap_or_default(), &first)
    })
    .await;
    eprintln!("renewed: {renewed}");
    assert_eq!(renewed["failures_in_a_row"], 0, "{renewed}");
    assert!(renewed["last_error"].is_null(), "{renewed}");
    let stderr = client.stderr();
    let log = renewals(&stderr);
    assert!(same_serial(&log[0].old_serial, &first), "{log:?}");
    let latest = &log.last().unwrap().new_serial;
    assert!(
        same_serial(&served_serial(client.https_port, name).await, latest),
        "{stderr}"
    );

    // Every failed attempt was logged, and the attempts were spaced by the backoff (the first
    // after a twentieth of the lifetime, at least 0.5 s).
    let failed = stderr
        .lines()
        .filter(|l| l.contains("renewal failed"))
        .count();
    assert!(failed >= FAILING / 2, "{failed} failures logged:\n{stderr}");
    let refused: Vec<Instant> = proxy
        .exchanges()
        .iter()
        .filter(|e| e.path.contains(NEW_ORDER) && e.status == 500)
        .map(|e| e.at)
        .collect();
    assert_eq!(refused.len(), FAILING, "{}", proxy.report());
    let mut attempts = vec![refused[0]];
    for pair in refused.windows(2) {
        // Two refusals within 300 ms belong to the same attempt.
        if pair[1] - pair[0] > Duration::from_millis(300) {
            attempts.push(pair[1]);
        }
    }
    let gaps: Vec<f64> = attempts
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs_f64())
        .collect();
    eprintln!(
        "{failed} failed attempts, {} seen at the CA, gaps {gaps:?} s",
        attempts.len()
    );
    assert_eq!(attempts.len(), failed, "{gaps:?}\n{stderr}");
    assert!(gaps.iter().all(|g| *g >= 0.5), "retried too soon: {gaps:?}");

    let reply = http_get(client.shutdown_port, "/shutdown").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    client.expect_exit(0, Duration::from_secs(5)).await;
}
