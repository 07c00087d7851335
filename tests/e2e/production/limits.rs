//! 100 names through a proxy enforcing request limits: Let's Encrypt's, which the client keeps to
//! with `--rate-limits letsencrypt` (no 503 at all), and a stricter unpublished one, whose 503s the
//! client waits out.

use std::time::Duration;

use super::{assert_counts_match, through};
use crate::harness::*;
use crate::proxy::{Budget, LETS_ENCRYPT, Proxy};

/// A CA stricter than Let's Encrypt that publishes nothing: the client learns of it by 503s.
const UNPUBLISHED: &[Budget] = &[
    Budget {
        class: "newNonce",
        rate: 5.0,
        burst: 3.0,
    },
    Budget {
        class: "other",
        rate: 50.0,
        burst: 25.0,
    },
];

/// Obtains a certificate for 100 names by dns-01 through a proxy in front of `pebble` enforcing
/// `limits`, with `extra` flags. Returns the summary and the proxy.
pub async fn hundred_names(
    pebble: &Pebble,
    limits: &[Budget],
    extra: &[&str],
) -> (serde_json::Value, Proxy) {
    let proxy = Proxy::start_with(pebble, vec![], Some(limits)).await;
    let names: Vec<String> = (0..100).map(|i| format!("n{i}.limits.test")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut args = vec!["--timeout", "150"];
    args.extend_from_slice(extra);
    let (summary, client) = through(
        pebble,
        &proxy,
        "dns01",
        &names,
        &args,
        Duration::from_secs(170),
    )
    .await;
    println!("{}", proxy.report());
    assert_eq!(
        summary["ca_requests"]["rate_limited"].as_u64(),
        Some(proxy.refused() as u64),
        "the client's count of 503s; proxy: {}\n{}",
        proxy.report(),
        client.stderr()
    );
    (summary, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_names_under_lets_encrypt_limits_without_a_policy() {
    let pebble = Pebble::start(&[]).await;
    let (summary, proxy) = hundred_names(&pebble, LETS_ENCRYPT, &[]).await;
    assert_counts_match(&summary, &proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_names_under_unpublished_limits_wait_out_the_503s() {
    let pebble = Pebble::start(&[]).await;
    let (summary, proxy) = hundred_names(&pebble, UNPUBLISHED, &[]).await;
    assert!(
        proxy.refused() > 0,
        "the limits were never reached, so this run proves nothing: {}",
        proxy.report()
    );
    assert_counts_match(&summary, &proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_names_within_lets_encrypt_limits_get_no_503() {
    let pebble = Pebble::start(&[]).await;
    let flags = ["--rate-limits", "letsencrypt"];
    let (summary, proxy) = hundred_names(&pebble, LETS_ENCRYPT, &flags).await;
    assert_eq!(proxy.refused(), 0, "{}", proxy.report());
    assert_counts_match(&summary, &proxy);
}
