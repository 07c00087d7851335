//! The status endpoint beside `/shutdown`: JSON that agrees with the certificate served; both
//! listen on loopback unless `--shutdown-bind` exposes them on purpose; HEAD of either answers
//! like GET without a body and stops nothing.

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

/// `METHOD path` on 127.0.0.1:`port` over a connection of its own: the status line, the headers
/// (names in lowercase) and the body.
async fn ask(port: u16, method: &str, path: &str) -> (String, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// HEAD is safe (RFC 9110 §9.2.1, §9.3.2): on `/status` and `/shutdown` it answers GET's status
/// and headers without a body, and `HEAD /shutdown` stops nothing; only `GET /shutdown` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_like_get_without_a_body_and_never_shuts_down() {
    let pebble = Pebble::start(&[]).await;
    let name = "head.serve.example.test";
    let mut client = Client::start(&pebble, "http01", &[name], &[]);
    client.wait_serving(&pebble).await;
    let port = client.shutdown_port;

    let (get_status, get_headers, get_body) = ask(port, "GET", "/status").await;
    let (status, headers, body) = ask(port, "HEAD", "/status").await;
    assert_eq!(status, get_status);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "", "HEAD /status sent a body");
    for field in ["content-type", "content-length", "cache-control"] {
        assert_eq!(
            header(&headers, field),
            header(&get_headers, field),
            "{field}"
        );
    }
    assert_eq!(
        header(&headers, "content-length"),
        Some(get_body.len().to_string().as_str())
    );

    let (head_status, head_headers, body) = ask(port, "HEAD", "/shutdown").await;
    assert_eq!(head_status, "HTTP/1.1 200 OK");
    assert_eq!(body, "", "HEAD /shutdown sent a body");
    // Nothing stopped: the control endpoint and HTTPS still answer on new connections.
    let (status, _, _) = ask(port, "GET", "/status").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "after HEAD /shutdown");
    assert!(!served_serial(client.https_port, name).await.is_empty());
    // A stop would end the process within moments (the contract allows 2 s): a short look.
    assert!(
        client.wait_exit(Duration::from_millis(300)).await.is_none(),
        "HEAD /shutdown stopped the process"
    );
    // Other methods are refused and act neither.
    let (status, headers, _) = ask(port, "POST", "/shutdown").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));

    // GET /shutdown: the headers HEAD promised, with the body, then exit 0.
    let (status, headers, body) = ask(port, "GET", "/shutdown").await;
    assert_eq!(status, head_status);
    assert_eq!(
        header(&headers, "content-length"),
        header(&head_headers, "content-length")
    );
    assert_eq!(
        header(&head_headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    client.expect_exit(0, Duration::from_secs(2)).await;
}
