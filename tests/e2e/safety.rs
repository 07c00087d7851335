//! Nothing leaks and nothing surprises: no key material in logs at the most verbose level, names
//! normalised as documented, a busy port or an unusable --out reported before the CA is asked,
//! and the shutdown endpoint on its own address.

use std::time::Duration;

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_material_in_trace_logs() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let args = Client::args(
        &pebble,
        &pebble.dir_url(),
        "http01",
        &["quiet.example.test"],
        &["--no-serve", "-vv"],
    );
    let mut client = Client::spawn_logging(&args, "trace");
    client.expect_exit(0, Duration::from_secs(60)).await;
    let logs = format!("{}{}", client.stderr(), client.stdout());
    assert!(
        logs.matches("TRACE").count() > 100,
        "trace logging was not on; the test proves nothing"
    );

    let pem = std::fs::read_to_string(client.out.path().join("key.pem")).unwrap();
    assert!(
        !logs.contains("PRIVATE KEY"),
        "a PEM private key appears in the logs"
    );
    // Every 16-character window of the key's base64 body, and the key's DER in hex.
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let chars: Vec<char> = body.chars().collect();
    for window in chars.windows(16).step_by(4) {
        let needle: String = window.iter().collect();
        assert!(
            !logs.contains(&needle),
            "key material {needle:?} appears in the logs"
        );
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(&body)
        .unwrap();
    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
    for window in hex.as_bytes().chunks(32) {
        assert!(
            !logs.contains(std::str::from_utf8(window).unwrap()),
            "key DER (hex) in the logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_normalised_deduplicated_and_idn_converted() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let names = [
        "Dup.Example.TEST.",
        "dup.example.test",
        "bücher.example.test",
    ];
    let mut client = Client::start(&pebble, "dns01", &names, &["--no-serve"]);
    client.expect_exit(0, Duration::from_secs(60)).await;
    let leaf = CertificateDer::from_pem_file(client.out.path().join("cert.pem")).unwrap();
    let mut sans = san_names(&leaf);
    sans.sort();
    assert_eq!(sans, ["dup.example.test", "xn--bcher-kva.example.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_names_the_port_and_its_flag() {
    let pebble = Pebble::start(&[]).await;
    // Something else already holds the DNS port.
    let _squatter = std::net::UdpSocket::bind(("127.0.0.1", pebble.dns_port)).unwrap();
    let mut client = Client::start(&pebble, "http01", &["busy.example.test"], &["--no-serve"]);
    let stderr = client.expect_exit(6, Duration::from_secs(10)).await;
    // The port in the error, its flag in the hint.
    let last = error_line(&stderr);
    assert!(
        last.contains(&format!("127.0.0.1:{}", pebble.dns_port)),
        "{last}"
    );
    let hint = hint_line(&stderr).unwrap_or_default();
    assert!(
        hint.contains("free the port or choose another with --dns-port"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("request method"),
        "the CA was contacted before the port check:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_out_is_a_usage_error_before_any_traffic() {
    let pebble = Pebble::start(&[]).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = file.path().join("sub");
    let mut client = Client::start(
        &pebble,
        "http01",
        &["out.example.test"],
        &["--no-serve", "--out", out.to_str().unwrap()],
    );
    let stderr = client.expect_exit(2, Duration::from_secs(10)).await;
    let error = error_line(&stderr);
    assert!(
        error.contains(&format!(
            "{} is a file, not a directory",
            file.path().display()
        )),
        "{stderr}"
    );
    assert!(
        hint_line(&stderr).is_some_and(|h| h.contains("give --out a directory")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("request method"),
        "the CA was contacted:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_listens_only_on_its_own_address() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let mut client = Client::start(
        &pebble,
        "dns01",
        &["sb.example.test"],
        &["--shutdown-bind", "127.0.0.3"],
    );
    client.wait_serving(&pebble).await;
    // Not on --bind (127.0.0.1) ...
    assert!(
        http_get(client.shutdown_port, "/shutdown").await.is_err(),
        "shutdown answered on --bind"
    );
    // ... only on --shutdown-bind.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.3", client.shutdown_port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET /shutdown HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let status = client.wait_exit(Duration::from_secs(2)).await;
    assert_eq!(status.map(|s| s.code()), Some(Some(0)));
}
