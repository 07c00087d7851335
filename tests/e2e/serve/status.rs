//! The status endpoint beside `/shutdown`: JSON that agrees with the certificate served; both
//! listen on loopback unless `--shutdown-bind` exposes them on purpose.

use std::time::Duration;

use super::load::served_serial;
use super::*;
use crate::life::{rfc3339, validity};

/// An address of the loopback interface other than 127.0.0.1: a listener bound to 0.0.0.0
/// answers there, one bound to 127.0.0.1 does not.
const OTHER_LOOPBACK: &str = "127.0.0.2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_describes_the_served_certificate_and_keeps_to_loopback() {
    let pebble = Pebble::start(&[]).await;
    let name = "status.serve.example.test";
    // Every other listener on all addresses.
    let mut client = Client::start(&pebble, "http01", &[name], &["--bind", "0.0.0.0"]);
    client.wait_serving(&pebble).await;
    let served = fetch_served(client.https_port, name, pebble.root().await).await;
    let leaf = &served.chain[0];
    let (not_before, not_after) = validity(leaf);

    let status = status(client.shutdown_port).await;
    assert_eq!(status["names"], serde_json::json!([name]), "{status}");
    let serial = status["serial"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}"));
    assert!(same_serial(serial, &serial_hex(leaf)), "{status}");
    assert!(
        same_serial(serial, &crate::life::serial(client.out.path())),
        "{status}"
    );
    let status_not_after = rfc3339(
        status["not_after"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}")),
    );
    assert_eq!(status_not_after, not_after, "{status}");
    let next = &status["next_renewal"];
    // Debian's Pebble has no ARI: the lifetime rule.
    assert_eq!(next["source"], "lifetime", "{status}");
    assert!(
        next["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{status}"
    );
    let due = rfc3339(next["due"].as_str().unwrap_or_else(|| panic!("{status}")));
    assert!(not_before < due && due < not_after, "{status}");
    assert_eq!(status["renewals"], 0, "{status}");
    assert_eq!(status["failures_in_a_row"], 0, "{status}");
    assert!(status["last_error"].is_null(), "{status}");

    // The HTTPS port answers on another loopback address; the status and shutdown port do not.
    assert!(
        tokio::net::TcpStream::connect((OTHER_LOOPBACK, client.https_port))
            .await
            .is_ok(),
        "--bind 0.0.0.0 should answer on {OTHER_LOOPBACK}"
    );
    let exposed = http_get_at(OTHER_LOOPBACK, client.shutdown_port, "/status").await;
    assert!(
        exposed.is_err(),
        "/status answered on {OTHER_LOOPBACK}: {exposed:?}"
    );
    assert_eq!(
        served_serial(client.https_port, name).await,
        serial_hex(leaf)
    );

    let reply = http_get(client.shutdown_port, "/shutdown").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    client.expect_exit(0, Duration::from_secs(5)).await;
    assert_ports_free(&client, &pebble);

    // --shutdown-bind exposes them on purpose.
    let mut client = Client::start(
        &pebble,
        "http01",
        &[name],
        &["--bind", "0.0.0.0", "--shutdown-bind", "0.0.0.0"],
    );
    client.wait_serving(&pebble).await;
    let exposed = http_get_at(OTHER_LOOPBACK, client.shutdown_port, "/status")
        .await
        .unwrap();
    assert!(
        exposed.starts_with("HTTP/1.1 200") && exposed.contains("\"serial\""),
        "{exposed}"
    );
    let reply = http_get_at(OTHER_LOOPBACK, client.shutdown_port, "/shutdown")
        .await
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    client.expect_exit(0, Duration::from_secs(5)).await;
}
