//! Against the current Pebble (`../shared/pebble/`): it requires a User-Agent, validates dns-01
//! over TCP, and, with `retryAfter` set, tells clients how long to wait between polls.

use std::time::Duration;

use super::{assert_counts_match, assert_waited_as_told, through};
use crate::harness::*;
use crate::proxy::{LETS_ENCRYPT, Proxy};

async fn ordinary(challenge: &str) {
    let Some(pebble) = Pebble::current(&[], serde_json::json!({})).await else {
        return;
    };
    let client = Client::run_to_success(
        &pebble,
        challenge,
        &["current.example.test", "www.current.example.test"],
        &["--timeout", "60"],
        Duration::from_secs(70),
    )
    .await;
    assert!(client.out.path().join("fullchain.pem").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_pebble_http01() {
    ordinary("http01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_pebble_dns01() {
    ordinary("dns01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_pebble_hundred_names_within_lets_encrypt_limits() {
    let Some(pebble) = Pebble::current(&[], serde_json::json!({})).await else {
        return;
    };
    let flags = ["--rate-limits", "letsencrypt"];
    let (summary, proxy) = super::limits::hundred_names(&pebble, LETS_ENCRYPT, &flags).await;
    assert_eq!(proxy.refused(), 0, "{}", proxy.report());
    assert_counts_match(&summary, &proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_pebble_polls_wait_as_told() {
    // Validation sleeps 0 or 1 s, so authorizations are often polled while their challenge is
    // processing; a finalized order is always answered `processing` with a Retry-After.
    let extra = serde_json::json!({"retryAfter": {"authz": 2, "order": 2}});
    let Some(pebble) = Pebble::current_exactly(&[("PEBBLE_VA_SLEEPTIME", "2")], extra).await else {
        return;
    };
    let proxy = Proxy::start(&pebble, vec![]).await;
    through(
        &pebble,
        &proxy,
        "http01",
        &["poll1.example.test", "poll2.example.test"],
        &["--timeout", "60"],
        Duration::from_secs(70),
    )
    .await;
    let authz = assert_waited_as_told(&proxy, "/authZ/", |p| p.to_owned(), false);
    let order = |p: &str| p.replace("/finalize-order/", "/my-order/");
    let finalize = assert_waited_as_told(&proxy, "/finalize-order/", order, false);
    let polls = assert_waited_as_told(&proxy, "/my-order/", order, false);
    assert!(
        finalize + polls >= 1,
        "Pebble sent no Retry-After on the order: {:?}",
        proxy.exchanges()
    );
    println!("Retry-After honoured: {authz} authorization, {finalize} finalize, {polls} order");
}
