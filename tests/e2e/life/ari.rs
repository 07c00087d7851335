//! Renewal the way the CA says (ARI, RFC 9773) against the current Pebble: a 20-second profile
//! kept until its window passes, then renewed with `replaces`; windows forced through Pebble's
//! management API; a revoked certificate; and `alreadyReplaced`.

use std::time::{Duration, Instant, SystemTime};

use super::*;

/// The current Pebble with [`profiles`] behind a recording proxy; `None` when it is missing.
async fn current() -> Option<(Pebble, Proxy)> {
    let pebble = Pebble::current(&[], profiles()).await?;
    let proxy = Proxy::start(&pebble, vec![]).await;
    Some((pebble, proxy))
}

/// Asserts the last order created carried `replaces` with the CertID of `old`.
fn assert_replaces(proxy: &Proxy, old: &[u8]) {
    let orders = new_orders(proxy, 0);
    let last = orders.last().expect("an order was created");
    assert_eq!(
        last["replaces"].as_str(),
        Some(cert_id(old).as_str()),
        "the renewal order must name the certificate it replaces: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_profile_renews_after_its_window_with_replaces() {
    let Some((pebble, proxy)) = current().await else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let names = ["short.example.test"];
    let short = ["--profile", "shortlived"];

    // A window of about 19 s starting at issuance: the random moment may fall in its first
    // seconds. Order again until it leaves room for a rerun that must keep (bounded).
    let mut summary = serde_json::Value::Null;
    let mut due_at = SystemTime::UNIX_EPOCH;
    for attempt in 0..5 {
        let extra: &[&str] = if attempt == 0 {
            &short
        } else {
            &["--profile", "shortlived", "--force"]
        };
        (summary, _) = issue(&pebble, &proxy, &names, out.path(), extra).await;
        assert_eq!(summary["profile"], "shortlived", "{summary}");
        due_at = due(&summary, "ari");
        let (not_before, not_after) = validity(&leaf(out.path()));
        assert!(
            not_after.duration_since(not_before).unwrap() < Duration::from_secs(30),
            "the shortlived profile was not used: {summary}"
        );
        // Pebble's window for so short a life is [notBefore, notAfter].
        assert!(
            due_at + Duration::from_secs(1) >= not_before
                && due_at <= not_after + Duration::from_secs(1),
            "due {} outside the window [{}, {}]",
            to_rfc3339(due_at),
            to_rfc3339(not_before),
            to_rfc3339(not_after)
        );
        if due_at > SystemTime::now() + Duration::from_secs(4) {
            break;
        }
    }
    assert!(
        due_at > SystemTime::now() + Duration::from_secs(3),
        "five certificates in a row were due at once: {summary}"
    );
    let old = leaf(out.path());
    let old_serial = serial_hex(&old);

    // Rerun about every second until renewed, 40 s at most: kept before the moment, renewed
    // after it.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut kept = 0;
    let renewed = loop {
        assert!(
            Instant::now() < deadline,
            "not renewed within 40 s (due {})",
            to_rfc3339(due_at)
        );
        let started = SystemTime::now();
        let (run, _) = issue(&pebble, &proxy, &names, out.path(), &short).await;
        let ended = SystemTime::now();
        match run["action"].as_str() {
            Some("kept") => {
                assert!(
                    started < due_at + Duration::from_secs(1),
                    "kept though due at {} and run at {}: {run}",
                    to_rfc3339(due_at),
                    to_rfc3339(started)
                );
                assert_eq!(serial(out.path()), old_serial);
                assert_eq!(run["renewal"]["due"], summary["renewal"]["due"], "{run}");
                kept += 1;
            }
            Some("renewed") => {
                assert!(
                    ended + Duration::from_secs(1) > due_at,
                    "renewed before the moment {} picked in the window: {run}",
                    to_rfc3339(due_at)
                );
                break run;
            }
            _ => panic!("neither kept nor renewed: {run}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert!(
        kept >= 1,
        "renewed at the first rerun: the window had not passed"
    );
    assert_eq!(renewed["replaced"], old_serial.as_str(), "{renewed}");
    assert_eq!(renewed["profile"], "shortlived", "{renewed}");
    assert_ne!(serial(out.path()), old_serial);
    assert_replaces(&proxy, &old);
    assert_eq!(
        new_orders(&proxy, 0).last().unwrap()["profile"],
        "shortlived",
        "the renewal asks for the same profile"
    );
    assert_set_matches(out.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_window_in_the_past_renews_and_far_ahead_keeps() {
    let Some((pebble, proxy)) = current().await else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let names = ["window.example.test"];
    // Pebble picks a profile at random when none is asked for; a month-ahead window only makes
    // sense for the 90-day one (a 20-second certificate is renewed before its end whatever the
    // window says).
    const DEFAULT: &[&str] = &["--profile", "default"];
    let (first, _) = issue(&pebble, &proxy, &names, out.path(), DEFAULT).await;
    assert_eq!(first["action"], "issued", "{first}");
    due(&first, "ari");

    // A window that ended an hour ago: renew, and log why.
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let why = "https://why.example.test/renew-now";
    let past = serde_json::json!({
        "suggestedWindow": {"start": to_rfc3339(now - 2 * hour), "end": to_rfc3339(now - hour)},
        "explanationURL": why,
    });
    pebble.set_renewal_info(&leaf_pem(out.path()), &past).await;
    let old = leaf(out.path());
    let (renewed, client) = issue(&pebble, &proxy, &names, out.path(), DEFAULT).await;
    assert_eq!(renewed["action"], "renewed", "{renewed}");
    assert_eq!(renewed["replaced"], serial_hex(&old).as_str(), "{renewed}");
    assert_replaces(&proxy, &old);
    assert!(
        client.stderr().contains(why),
        "explanationURL not logged:\n{}",
        client.stderr()
    );

    // A window a month ahead: kept, and due inside it.
    let day = 24 * hour;
    let (start, end) = (now + 30 * day, now + 31 * day);
    let ahead = serde_json::json!({
        "suggestedWindow": {"start": to_rfc3339(start), "end": to_rfc3339(end)},
    });
    pebble.set_renewal_info(&leaf_pem(out.path()), &ahead).await;
    let orders = proxy.count(NEW_ORDER);
    let (kept, _) = issue(&pebble, &proxy, &names, out.path(), DEFAULT).await;
    assert_eq!(kept["action"], "kept", "{kept}");
    assert_eq!(proxy.count(NEW_ORDER), orders, "{}", proxy.report());
    let due_at = due(&kept, "ari");
    assert!(
        due_at + Duration::from_secs(1) >= start && due_at <= end + Duration::from_secs(1),
        "due {} outside the forced window [{}, {}]",
        to_rfc3339(due_at),
        to_rfc3339(start),
        to_rfc3339(end)
    );
    assert!(proxy.count("/renewalInfo/") >= 1, "{}", proxy.report());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificate_renews_with_ari() {
    let Some((pebble, proxy)) = current().await else {
        return;
    };
    // Pebble's window for a revoked certificate lies in the past.
    let name = "revoked-ari.example.test";
    super::revoke::revoke_then_renew(&pebble, &proxy, name, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn already_replaced_orders_again_without_replaces() {
    let Some((pebble, proxy)) = current().await else {
        return;
    };
    let names = ["replaced.example.test"];
    let first = tempfile::tempdir().unwrap();
    issue(&pebble, &proxy, &names, first.path(), &[]).await;
    let old = leaf(first.path());
    // A second --out holding the same certificate and account, as plain files.
    let second = tempfile::tempdir().unwrap();
    for file in [
        "key.pem",
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "account.pem",
    ] {
        std::fs::copy(first.path().join(file), second.path().join(file)).unwrap();
    }

    // The first renewal replaces the certificate ...
    let (one, _) = issue(&pebble, &proxy, &names, first.path(), &["--force"]).await;
    assert_eq!(one["action"], "renewed", "{one}");
    assert_replaces(&proxy, &old);

    // ... so the second one's `replaces` is refused, and it orders again without.
    let created = new_orders(&proxy, 0).len();
    let (two, client) = issue(&pebble, &proxy, &names, second.path(), &["--force"]).await;
    assert_eq!(two["action"], "renewed", "{two}");
    assert_eq!(two["replaced"], serial_hex(&old).as_str(), "{two}");
    let stderr = client.stderr();
    assert!(stderr.contains("alreadyReplaced"), "{stderr}");
    let refused = proxy
        .exchanges()
        .into_iter()
        .filter(|e| e.path == NEW_ORDER && e.status != 201)
        .filter_map(|e| e.payload)
        .any(|p| p["replaces"].as_str() == Some(cert_id(&old).as_str()));
    assert!(
        refused,
        "no order with replaces was refused: {}",
        proxy.report()
    );
    let orders = new_orders(&proxy, created);
    assert_eq!(orders.len(), 1, "{}", proxy.report());
    assert!(orders[0].get("replaces").is_none(), "{}", orders[0]);
    assert_set_matches(second.path());
}
