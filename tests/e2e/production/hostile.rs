//! Hostile but legal answers from a proxy in front of Pebble: `Retry-After` in every date form and
//! in absurd sizes, invalid nonces, hundreds of `Link` headers, 503 on the directory and on
//! newNonce, and answers dropped after the CA acted on the request.

use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::{assert_waited_as_told, through};
use crate::harness::*;
use crate::proxy::{Fault, Proxy, RetryValue, Rule};

/// These tests count requests, so Pebble must not reject nonces at random (5% by default): a
/// badNonce retry would be one request more.
const NO_NONCE_REJECTION: &[(&str, &str)] = EXACT_COUNTS;

/// The first newOrder gets a 503 with `value`; the run must succeed, and nothing may reach the CA
/// before the moment named.
async fn waits_as_told(value: RetryValue) {
    let pebble = Pebble::start(NO_NONCE_REJECTION).await;
    let rule = Rule::new("/order-plz", 1, Fault::RetryAt(value));
    let proxy = Proxy::start(&pebble, vec![rule]).await;
    through(
        &pebble,
        &proxy,
        "http01",
        &["wait.example.test"],
        &["--timeout", "30"],
        Duration::from_secs(40),
    )
    .await;
    let told = assert_waited_as_told(&proxy, "/order-plz", |p| p.to_owned(), true);
    assert_eq!(told, 1, "the 503 was not sent");
    assert_eq!(
        proxy.count("/order-plz"),
        2,
        "newOrder once refused, once made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_imf_fixdate() {
    waits_as_told(RetryValue::Imf(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_rfc850_date() {
    waits_as_told(RetryValue::Rfc850(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_asctime_date() {
    waits_as_told(RetryValue::Asctime(2)).await;
}

/// The first newOrder gets a 503 with `Retry-After: value`; with `--timeout 30`, exit `code`.
/// Returns stderr and the time taken.
async fn absurd(value: &'static str, code: i32) -> (String, Duration) {
    let pebble = Pebble::start(NO_NONCE_REJECTION).await;
    let rule = Rule::new("/order-plz", 1, Fault::RetryAt(RetryValue::Raw(value)));
    let proxy = Proxy::start(&pebble, vec![rule]).await;
    let started = Instant::now();
    let mut client = Client::start_at(
        &pebble,
        &proxy.dir_url(),
        "http01",
        &["absurd.example.test"],
        &["--no-serve", "--timeout", "30"],
    );
    let stderr = client.expect_exit(code, Duration::from_secs(40)).await;
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stderr, started.elapsed())
}

/// A wait past `--timeout` stops the run at once (not at the deadline) with exit 5 and the CA's
/// value quoted.
async fn beyond_the_timeout(value: &'static str) {
    let (stderr, took) = absurd(value, 5).await;
    assert!(took < Duration::from_secs(6), "took {took:?}: not at once");
    let last = error_line(&stderr);
    assert!(
        last.contains(value),
        "the error should quote Retry-After {value:?}: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_beyond_the_timeout_stops_at_once() {
    beyond_the_timeout("3600").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_of_absurd_size_stops_at_once() {
    beyond_the_timeout("99999999999999999999999").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_in_the_year_9999_stops_at_once() {
    beyond_the_timeout("Fri, 31 Dec 9999 23:59:59 GMT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_negative_is_survived() {
    absurd("-5", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_garbage_is_survived() {
    absurd("after lunch, perhaps", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_nonces_are_never_sent_back() {
    let pebble = Pebble::start(NO_NONCE_REJECTION).await;
    let mut rules = vec![Rule::new("/nonce-plz", 1, Fault::BadNonce)];
    for path in [
        "/sign-me-up",
        "/order-plz",
        "/authZ/",
        "/chalZ/",
        "/finalize-order/",
        "/my-order/",
        "/certZ/",
    ] {
        rules.push(Rule::every_other(path, Fault::BadNonce));
    }
    let proxy = Proxy::start(&pebble, rules).await;
    through(
        &pebble,
        &proxy,
        "http01",
        &["nonce1.example.test", "nonce2.example.test"],
        &["--timeout", "30"],
        Duration::from_secs(40),
    )
    .await;
    assert_eq!(proxy.invalid_nonces_sent(), Vec::<String>::new());
    assert!(
        proxy.count("/nonce-plz") >= 2,
        "the bad newNonce answer was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_link_headers() {
    let pebble = Pebble::start(NO_NONCE_REJECTION).await;
    let proxy = Proxy::start(&pebble, vec![Rule::new("", 0, Fault::Links(300))]).await;
    through(
        &pebble,
        &proxy,
        "http01",
        &["links.example.test"],
        &["--timeout", "30"],
        Duration::from_secs(40),
    )
    .await;
    // Alternate chains are fetched only for --preferred-chain.
    assert_eq!(proxy.count("/harmless/"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_and_new_nonce_refused_at_first() {
    let pebble = Pebble::start(NO_NONCE_REJECTION).await;
    let refuse = Fault::RetryLater {
        status: 503,
        secs: 1,
    };
    let rules = vec![
        Rule::first("/dir", 2, refuse.clone()),
        Rule::first("/nonce-plz", 2, refuse),
    ];
    let proxy = Proxy::start(&pebble, rules).await;
    let (summary, _) = through(
        &pebble,
        &proxy,
        "http01",
        &["refused.example.test"],
        &["--timeout", "30"],
        Duration::from_secs(40),
    )
    .await;
    let told = assert_waited_as_told(&proxy, "", |p| p.to_owned(), true);
    assert_eq!(told, 4, "{:?}", proxy.exchanges());
    assert_eq!(summary["ca_requests"]["rate_limited"], 4);
}

/// The first answer to a POST with a payload to `path` is dropped after Pebble acted on it; the
/// run succeeds. Returns the proxy.
async fn answer_dropped(path: &'static str, extra: &[&str]) -> (Pebble, Proxy, Client) {
    let pebble = Pebble::start(NO_NONCE_REJECTION).await;
    let proxy = Proxy::start(&pebble, vec![Rule::new(path, 1, Fault::DropAnswer)]).await;
    let mut args = vec!["--timeout", "30"];
    args.extend_from_slice(extra);
    let (_, client) = through(
        &pebble,
        &proxy,
        "http01",
        &["dropped.example.test"],
        &args,
        Duration::from_secs(40),
    )
    .await;
    (pebble, proxy, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_whose_answer_was_dropped_is_not_sent_again() {
    let (_pebble, proxy, _) = answer_dropped("/finalize-order/", &[]).await;
    assert_eq!(
        proxy.count("/finalize-order/"),
        1,
        "{:?}",
        proxy.exchanges()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_whose_answer_was_dropped_is_not_answered_again() {
    let (_pebble, proxy, _) = answer_dropped("/chalZ/", &[]).await;
    assert_eq!(
        proxy.posts_with_payload("/chalZ/"),
        1,
        "{:?}",
        proxy.exchanges()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_whose_answer_was_dropped_succeeds() {
    let (pebble, proxy, client) = answer_dropped("/revoke-cert", &["--revoke"]).await;
    assert!(proxy.count("/revoke-cert") >= 1);
    let der = CertificateDer::from_pem_file(client.out.path().join("cert.pem")).unwrap();
    assert_eq!(pebble.cert_status(&der).await, "Revoked");
}
