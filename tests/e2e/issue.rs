//! Obtaining certificates with http-01 and dns-01, checking what is served and written.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::harness::*;

/// Obtains a certificate for `names`, checks the served chain and the files, then shuts down
/// through `GET /shutdown` and checks every port is released. Returns the served leaf.
async fn obtain_serve_and_shut_down(
    challenge: &str,
    names: &[&str],
    server_name: &str,
    extra: &[&str],
) -> (Pebble, CertificateDer<'static>, String) {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let mut client = Client::start(&pebble, challenge, names, extra);
    client.wait_serving(&pebble).await;

    // The chain verifies against Pebble's root alone, so the intermediate must be served.
    let served = fetch_served(client.https_port, server_name, pebble.root().await).await;
    assert_eq!(served.chain.len(), 2, "leaf and intermediate expected");
    let mut want: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut got = san_names(&served.chain[0]);
    want.sort();
    got.sort();
    assert_eq!(
        got, want,
        "the certificate must carry exactly the requested names"
    );
    assert!(
        served.body.contains("200 OK")
            && served
                .body
                .contains("acme-client is serving a certificate for"),
        "GET / answered: {}",
        served.body
    );

    // The files: the same chain, and a private key only the owner can read.
    let fullchain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(client.out.path().join("fullchain.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    assert_eq!(fullchain, served.chain);
    let cert = CertificateDer::pem_file_iter(client.out.path().join("cert.pem"))
        .unwrap()
        .count();
    let chain = CertificateDer::pem_file_iter(client.out.path().join("chain.pem"))
        .unwrap()
        .count();
    assert_eq!((cert, chain), (1, 1));
    let key = client.out.path().join("key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );

    let stdout = client.stdout();
    let reply = http_get(client.shutdown_port, "/shutdown").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let status = client.wait_exit(Duration::from_secs(2)).await;
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "exit within 2 s with 0:\n{}",
        client.stderr()
    );
    assert_ports_free(&client, &pebble);
    let leaf = served.chain[0].clone();
    (pebble, leaf, stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_one_name() {
    obtain_serve_and_shut_down("http01", &["one.example.test"], "one.example.test", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_three_names() {
    let names = ["a.example.test", "b.example.test", "c.other.test"];
    obtain_serve_and_shut_down("http01", &names, "c.other.test", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_one_name() {
    obtain_serve_and_shut_down("dns01", &["dns.example.test"], "dns.example.test", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_three_names() {
    let names = ["x.example.test", "y.example.test", "z.third.test"];
    obtain_serve_and_shut_down("dns01", &names, "y.example.test", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_name_and_its_wildcard() {
    // Both authorizations publish a TXT value at _acme-challenge.wild.test at the same time.
    let names = ["wild.test", "*.wild.test"];
    obtain_serve_and_shut_down("dns01", &names, "anything.wild.test", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_is_reported_by_pebble() {
    let (pebble, leaf, stdout) = obtain_serve_and_shut_down(
        "http01",
        &["revoked.example.test"],
        "revoked.example.test",
        &["--revoke"],
    )
    .await;
    assert_eq!(pebble.cert_status(&leaf).await, "Revoked");
    assert!(stdout.contains("revoked   yes"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_revoked_without_the_flag() {
    // The counterpart of the test above: the status check can tell the difference.
    let (pebble, leaf, _) =
        obtain_serve_and_shut_down("dns01", &["kept.example.test"], "kept.example.test", &[]).await;
    assert_eq!(pebble.cert_status(&leaf).await, "Valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_serve_writes_the_files_prints_json_and_exits() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let mut client = Client::start(
        &pebble,
        "http01",
        &["script.example.test"],
        &["--no-serve", "--json", "--timings"],
    );
    let status = client.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "{}\n{}",
        client.stderr(),
        pebble.log()
    );
    let summary: serde_json::Value = serde_json::from_str(client.stdout().trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {}", client.stdout()));
    assert_eq!(summary["names"], serde_json::json!(["script.example.test"]));
    assert_eq!(summary["challenge"], "http-01");
    assert_eq!(summary["revoked"], false);
    for serving in [
        "https",
        "https_port",
        "https_resolves",
        "shutdown",
        "status",
    ] {
        assert!(summary[serving].is_null(), "{serving}: {summary}");
    }
    assert!(
        summary["account_url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    let timings = &summary["timings"];
    let events = timings["events"].as_array().unwrap();
    let requests = events.iter().filter(|e| e["kind"] == "request").count();
    assert!(requests >= 8, "{requests} requests");
    assert!(
        events.iter().any(|e| e["kind"] == "poll"),
        "polling waits are reported"
    );
    // Whole milliseconds (issue 12): integers, adding up exactly.
    let ms = |v: &serde_json::Value| {
        v.as_u64()
            .unwrap_or_else(|| panic!("not a whole number of ms: {v}"))
    };
    let (total, ca, own) = (
        ms(&timings["total_ms"]),
        ms(&timings["ca_wait_ms"]),
        ms(&timings["overhead_ms"]),
    );
    assert!(ca > 0 && ca <= total, "ca_wait_ms {ca} of {total}");
    assert_eq!(total, ca + own);
    for event in events {
        ms(&event["start_ms"]);
        ms(&event["elapsed_ms"]);
    }
    // --timings prints the same on stderr.
    assert!(
        client.stderr().contains("waiting on the CA"),
        "{}",
        client.stderr()
    );
    for file in ["key.pem", "cert.pem", "chain.pem", "fullchain.pem"] {
        let path = client.out.path().join(file);
        assert!(path.is_file(), "{file} missing");
        assert_eq!(
            summary["files"][file.trim_end_matches(".pem")],
            path.display().to_string()
        );
    }
    // Only the four files, the account key, and the set they point into (`live` and `.sets`):
    // no temporary names left behind.
    let mut entries: Vec<String> = std::fs::read_dir(client.out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            ".sets",
            "account.pem",
            "cert.pem",
            "chain.pem",
            "fullchain.pem",
            "key.pem",
            "live"
        ]
    );
    assert_eq!(summary["account"], "created");
    let leaf = CertificateDer::from_pem_file(client.out.path().join("cert.pem")).unwrap();
    assert_eq!(summary["serial"], serial_hex(&leaf));
    assert_eq!(pebble.cert_status(&leaf).await, "Valid");
    assert_ports_free(&client, &pebble);
}
