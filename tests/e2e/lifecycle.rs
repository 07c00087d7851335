//! Shutdown by signal, an untrusted or unreachable CA, and a CA rejecting half the nonces.

use std::time::{Duration, Instant};

use crate::harness::*;

/// http-01 against `pebble` for `name`, without the --ca-bundle that would trust it, plus `extra`.
fn http01_without_trust(pebble: &Pebble, name: &str, extra: &[&str]) -> Vec<String> {
    let (dns_port, http_port) = (pebble.dns_port.to_string(), pebble.http_port.to_string());
    let mut args = vec![
        "http01",
        "--dir",
        &pebble.dir_url(),
        "--record",
        RECORD,
        "--domain",
        name,
        "--bind",
        "127.0.0.1",
        "--dns-port",
        &dns_port,
        "--http-port",
        &http_port,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<String>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_everything_and_exits_0() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let mut client = Client::start(&pebble, "dns01", &["term.example.test"], &[]);
    client.wait_serving(&pebble).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &client.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    client.expect_exit(0, Duration::from_secs(2)).await;
    assert_ports_free(&client, &pebble);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_ca_is_refused_at_once_without_retries() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    // A CA that has nothing to do with Pebble's listener certificate.
    let dir = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, params.self_signed(&key).unwrap().pem()).unwrap();

    let trust = ["--ca-bundle", other_ca.to_str().unwrap()];
    let args = http01_without_trust(&pebble, "trust.example.test", &trust);
    let started = Instant::now();
    let mut client = Client::spawn(&args);
    let status = client.wait_exit(Duration::from_secs(10)).await;
    let elapsed = started.elapsed();
    let stderr = client.stderr();
    assert_eq!(status.map(|s| s.code()), Some(Some(3)), "{stderr}");
    let last = error_line(&stderr);
    assert!(
        last.contains("TLS certificate")
            && last.contains("is not trusted by --ca-bundle")
            && last.contains("UnknownIssuer"),
        "the error must name the trust problem: {last}"
    );
    assert!(
        !stderr.contains("retrying"),
        "a trust failure is never retried:\n{stderr}"
    );
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(
        client.stdout().is_empty(),
        "nothing is reported as obtained"
    );
    assert!(!stderr.contains("serving the certificate"));
    assert_ports_free(&client, &pebble);
}

/// With the system's roots (no --ca-bundle), Pebble's certificate is refused by the platform
/// verifier, whose own log line (with its module path and source file) stays out of the default
/// output: only our error and its hint say what failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_system_verifier_refusing_the_ca_prints_only_our_error() {
    let pebble = Pebble::start(&[]).await;
    let args = http01_without_trust(&pebble, "roots.example.test", &["--no-serve"]);
    // An empty RUST_LOG: the default level, as a user gets it.
    let mut client = Client::spawn_logging(&args, "");
    let stderr = client.expect_exit(3, Duration::from_secs(10)).await;
    assert!(error_line(&stderr).contains("is not trusted"), "{stderr}");
    for noise in ["log.target", "rustls_platform_verifier", ".cargo/registry"] {
        assert!(
            !stderr.contains(noise),
            "{noise} in the default output:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_ca_is_retried_briefly_then_reported() {
    let closed = free_port();
    let args: Vec<String> = [
        "http01",
        "--dir",
        &format!("https://127.0.0.1:{closed}/dir"),
        "--ca-bundle",
        pebble_ca().to_str().unwrap(),
        "--record",
        RECORD,
        "--domain",
        "down.example.test",
        "--bind",
        "127.0.0.1",
        "--dns-port",
        &free_port().to_string(),
        "--http-port",
        &free_port().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let started = Instant::now();
    let mut client = Client::spawn(&args);
    let stderr = client.expect_exit(3, Duration::from_secs(15)).await;
    assert!(
        error_line(&stderr).contains("cannot reach the ACME server"),
        "{stderr}"
    );
    assert_eq!(
        hint_line(&stderr),
        Some("hint: check --dir and that the CA is running")
    );
    assert_eq!(
        stderr.matches("retrying").count(),
        3,
        "a few quick attempts:\n{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_nonces_rejected_still_ends_in_a_certificate() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[("PEBBLE_WFE_NONCEREJECT", "50")]).await;
    let names = ["n1.example.test", "n2.example.test", "n3.example.test"];
    let mut client = Client::start(&pebble, "http01", &names, &["--no-serve"]);
    let status = client.wait_exit(Duration::from_secs(60)).await;
    let stderr = client.stderr();
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "{stderr}\n{}",
        pebble.log()
    );
    assert!(
        stderr.contains("badNonce"),
        "Pebble rejected no nonce; the test proves nothing"
    );
    assert!(client.out.path().join("fullchain.pem").is_file());
}
