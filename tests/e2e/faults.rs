//! A flaky CA and a CA that answers wrongly: Pebble at its defaults, Pebble rejecting 90% of
//! nonces, Pebble going down at each step, and a proxy corrupting chosen answers. Every run ends
//! in a certificate or in a clear error naming the step, with a non-zero exit, never a hang.

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::proxy::{Fault, Proxy, Rule};

/// Runs the client through `dir_url` and expects exit `code` with a last line containing every
/// one of `expect`. Returns stderr.
async fn fails(
    pebble: &Pebble,
    dir_url: &str,
    names: &[&str],
    code: i32,
    expect: &[&str],
) -> String {
    let started = Instant::now();
    let mut client = Client::start_at(
        pebble,
        dir_url,
        "http01",
        names,
        &["--no-serve", "--timeout", "30"],
    );
    let status = client.wait_exit(Duration::from_secs(40)).await;
    let stderr = client.stderr();
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(code)),
        "{stderr}\n--- pebble\n{}",
        pebble.log()
    );
    let last = error_line(&stderr).to_owned();
    for e in expect {
        assert!(last.contains(e), "the error should contain {e:?}:\n{last}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(31),
        "took {:?}",
        started.elapsed()
    );
    assert!(client.stdout().is_empty());
    assert_ports_free(&client, pebble);
    stderr
}

async fn succeeds(pebble: &Pebble, challenge: &str, names: &[&str]) -> Client {
    let client = Client::run_to_success(
        pebble,
        challenge,
        names,
        &["--timeout", "90"],
        Duration::from_secs(100),
    )
    .await;
    assert!(client.out.path().join("fullchain.pem").is_file());
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_at_its_default_settings() {
    // 5% of nonces rejected, a random validation delay of up to 15 s, authorization reuse 50%.
    let pebble = Pebble::start_exactly(&[]).await;
    succeeds(
        &pebble,
        "dns01",
        &[
            "defaults.test",
            "*.defaults.test",
            "www.other-defaults.test",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ninety_percent_of_nonces_rejected() {
    let pebble = Pebble::start(&[("PEBBLE_WFE_NONCEREJECT", "90")]).await;
    let client = succeeds(
        &pebble,
        "http01",
        &["n90a.example.test", "n90b.example.test"],
    )
    .await;
    let retries = client.stderr().matches("badNonce, retrying").count();
    assert!(
        retries >= 20,
        "only {retries} badNonce retries: was the rejection rate applied?"
    );
}

/// Pebble goes down at the `nth` request to `path`; the error names `step`; once Pebble is back
/// a rerun succeeds.
async fn ca_down(path: &'static str, nth: usize, step: &str) {
    let mut pebble = Pebble::start(EXACT_COUNTS).await;
    let proxy = Proxy::start(&pebble, vec![Rule::new(path, nth, Fault::Down)]).await;
    let stderr = fails(
        &pebble,
        &proxy.dir_url(),
        &["down.example.test"],
        3,
        &[step, "cannot reach the ACME server"],
    )
    .await;
    assert!(
        stderr.matches("cannot reach the CA, retrying").count() <= 3,
        "bounded retries:\n{stderr}"
    );
    pebble.restart().await;
    succeeds(&pebble, "http01", &["down.example.test"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_down_after_the_account() {
    ca_down("/order-plz", 1, "creating the order").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_down_after_the_order() {
    ca_down("/authZ/", 1, "validating the authorizations").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_down_while_challenges_are_polled() {
    // Once every challenge is answered, the order is polled until it is ready.
    ca_down("/my-order/", 1, "validating the authorizations").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_down_during_finalize() {
    ca_down("/finalize-order/", 1, "finalizing the order").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_found_invalid_keeps_the_old_files() {
    let pebble = Pebble::start(&[]).await;
    // Pebble validates at --record: a responder there that serves a wrong key authorization.
    let wrong = tokio::net::TcpListener::bind(("127.0.0.2", pebble.http_port))
        .await
        .unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = wrong.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let body = "wrong.keyauthorization";
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    let mut client = Client::start(
        &pebble,
        "http01",
        &["bad.example.test"],
        &["--no-serve", "--record", "127.0.0.2"],
    );
    // An --out that already holds a certificate from an earlier run.
    let old = ["key.pem", "cert.pem", "chain.pem", "fullchain.pem"];
    for f in old {
        std::fs::write(client.out.path().join(f), format!("old {f}")).unwrap();
    }
    let stderr = client.expect_exit(4, Duration::from_secs(30)).await;
    let last = error_line(&stderr);
    for e in [
        "validating the authorizations",
        "the authorization for bad.example.test is invalid",
        "urn:ietf:params:acme:error:unauthorized",
    ] {
        assert!(last.contains(e), "{e:?} missing in: {last}");
    }
    for f in old {
        assert_eq!(
            std::fs::read_to_string(client.out.path().join(f)).unwrap(),
            format!("old {f}"),
            "{f} was touched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_that_turns_invalid() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(
        &pebble,
        vec![Rule::new("/my-order/", 1, Fault::invalid_order())],
    )
    .await;
    fails(
        &pebble,
        &proxy.dir_url(),
        &["inv.example.test"],
        4,
        &[
            "validating the authorizations",
            "is invalid",
            "rejectedIdentifier: injected by the test proxy",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_not_json() {
    let pebble = Pebble::start(&[]).await;
    let fault = Fault::Replace {
        status: 200,
        content_type: "text/html",
        body: "<html>hello</html>".into(),
    };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/dir", 1, fault)]).await;
    let stderr = fails(
        &pebble,
        &proxy.dir_url(),
        &["d.example.test"],
        4,
        &["is not an ACME directory", "answer is not JSON (text/html)"],
    )
    .await;
    assert!(
        hint_line(&stderr).is_some_and(|h| h.starts_with("hint: check --dir;")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_lacking_fields() {
    let pebble = Pebble::start(&[]).await;
    let fault = Fault::Replace {
        status: 200,
        content_type: "application/json",
        body: r#"{"newNonce":"https://127.0.0.1/n"}"#.into(),
    };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/dir", 1, fault)]).await;
    let stderr = fails(
        &pebble,
        &proxy.dir_url(),
        &["d.example.test"],
        4,
        &["is not an ACME directory", "missing field newAccount"],
    )
    .await;
    assert!(
        hint_line(&stderr).is_some_and(|h| h.starts_with("hint: check --dir;")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_not_pem() {
    let pebble = Pebble::start(&[]).await;
    let fault = Fault::Replace {
        status: 200,
        content_type: "application/pem-certificate-chain",
        body: "this is no certificate".into(),
    };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/certZ/", 1, fault)]).await;
    fails(
        &pebble,
        &proxy.dir_url(),
        &["c.example.test"],
        4,
        &["downloading the certificate", "no PEM CERTIFICATE block"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_answer_is_refused() {
    let pebble = Pebble::start(&[]).await;
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let fault = Fault::Replace {
        status: 200,
        content_type: "application/json",
        body,
    };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/authZ/", 1, fault)]).await;
    fails(
        &pebble,
        &proxy.dir_url(),
        &["big.example.test"],
        4,
        &["validating the authorizations", "larger than 1024 KiB"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_cut_off_mid_body() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![Rule::new("/certZ/", 1, Fault::Truncate)]).await;
    fails(
        &pebble,
        &proxy.dir_url(),
        &["c.example.test"],
        4,
        &["downloading the certificate", "cut off"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_with_a_problem_document() {
    let pebble = Pebble::start(&[]).await;
    let body = r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"injected 500","status":500}"#;
    let fault = Fault::Replace {
        status: 500,
        content_type: "application/problem+json",
        body: body.into(),
    };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/order-plz", 1, fault)]).await;
    fails(
        &pebble,
        &proxy.dir_url(),
        &["e.example.test"],
        4,
        &[
            "creating the order",
            "urn:ietf:params:acme:error:serverInternal: injected 500",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_without_a_problem_document() {
    let pebble = Pebble::start(&[]).await;
    let fault = Fault::Replace {
        status: 500,
        content_type: "text/html",
        body: "<h1>oops</h1>".into(),
    };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/authZ/", 1, fault)]).await;
    fails(
        &pebble,
        &proxy.dir_url(),
        &["e.example.test"],
        4,
        &["validating the authorizations", "HTTP 500", "oops"],
    )
    .await;
}

/// Runs the client through a proxy answering every `nth` newOrder with `status` and
/// `Retry-After: 1`. Returns the exit code, stderr and the time taken.
async fn rate_limited(nth: usize, status: u16, extra: &[&str]) -> (Option<i32>, String, Duration) {
    let pebble = Pebble::start(EXACT_COUNTS).await;
    let fault = Fault::RetryLater { status, secs: 1 };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/order-plz", nth, fault)]).await;
    let started = Instant::now();
    let mut client = Client::start_at(
        &pebble,
        &proxy.dir_url(),
        "http01",
        &["rl.example.test"],
        extra,
    );
    let status = client.wait_exit(Duration::from_secs(30)).await;
    (
        status.and_then(|s| s.code()),
        client.stderr(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_waited_out() {
    let (code, stderr, took) = rate_limited(1, 429, &["--no-serve"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("the CA asks to slow down"), "{stderr}");
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_rate_limit_stops_within_the_timeout() {
    let (code, stderr, took) = rate_limited(0, 503, &["--no-serve", "--timeout", "4"]).await;
    // Once the next Retry-After would end past the deadline, it stops at once with exit 5.
    assert_eq!(code, Some(5), "{stderr}");
    assert!(error_line(&stderr).contains("Retry-After: 1"), "{stderr}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}
