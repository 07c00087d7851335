//! SIGHUP re-reads `--out`: a certificate another tool placed there, matching its key, is served
//! from then on, and the status endpoint says so.

use std::time::Duration;

use super::load::served_serial;
use super::*;
use crate::life::{RUN, assert_set_matches, rfc3339, serial, validity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_the_certificate_another_tool_put_in_out() {
    let pebble = Pebble::start(&[]).await;
    let name = "sighup.serve.example.test";
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap();
    let mut client = Client::start(&pebble, "http01", &[name], &["--out", out_arg]);
    client.wait_serving(&pebble).await;
    let first = served_serial(client.https_port, name).await;
    assert!(same_serial(&first, &serial(out.path())));

    // Another tool, here a second acme-client against another CA (the first still holds the
    // challenge ports of its own), writes a new set into the same --out.
    let other = Pebble::start(&[]).await;
    Client::run_to_success(
        &other,
        "http01",
        &[name],
        &["--force", "--out", out_arg],
        RUN,
    )
    .await;
    let second = serial(out.path());
    assert!(!same_serial(&first, &second), "the second run kept {first}");
    assert_set_matches(out.path());
    assert!(
        same_serial(&served_serial(client.https_port, name).await, &first),
        "a new set in --out is not served before SIGHUP"
    );

    hang_up(client.id());
    wait_for(
        &mut client,
        "the SIGHUP log line",
        Duration::from_secs(10),
        |c| {
            c.stderr()
                .contains("SIGHUP: serving the certificate found in --out")
        },
    )
    .await;
    assert!(
        same_serial(&served_serial(client.https_port, name).await, &second),
        "after SIGHUP:\n{}",
        client.stderr()
    );
    // Trusted through the other CA's root, intermediate included.
    let served = fetch_served(client.https_port, name, other.root().await).await;
    let status = status(client.shutdown_port).await;
    assert!(
        same_serial(status["serial"].as_str().unwrap_or_default(), &second),
        "{status}"
    );
    let not_after = rfc3339(
        status["not_after"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}")),
    );
    assert_eq!(not_after, validity(&served.chain[0]).1, "{status}");

    let reply = http_get(client.shutdown_port, "/shutdown").await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    client.expect_exit(0, Duration::from_secs(5)).await;
}
