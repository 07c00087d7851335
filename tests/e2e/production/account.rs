//! One lasting account: without `--account-key` the key is `account.pem` in `--out`, created on
//! the first run, reused afterwards, and registered again if the CA forgot it.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

/// Runs into `out` for `name` with `--json` and returns the summary.
async fn run_into(pebble: &Pebble, out: &Path, name: &str) -> serde_json::Value {
    let out = out.to_str().unwrap();
    let client = Client::run_to_success(
        pebble,
        "http01",
        &[name],
        &["--json", "--out", out],
        Duration::from_secs(60),
    )
    .await;
    client.json()
}

/// The account key file, after asserting it is a PKCS#8 PEM only its owner can read.
fn account_pem(out: &Path) -> Vec<u8> {
    let path = out.join("account.pem");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.starts_with(b"-----BEGIN PRIVATE KEY-----"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "account.pem has mode {mode:o}");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_is_created_once_then_reused() {
    let pebble = Pebble::start(&[]).await;
    let out = tempfile::tempdir().unwrap();
    // Other names each run, so that no run keeps the certificate of the one before.
    let first = run_into(&pebble, out.path(), "first.example.test").await;
    assert_eq!(first["account"], "created", "{first}");
    let key = account_pem(out.path());

    let second = run_into(&pebble, out.path(), "second.example.test").await;
    assert_eq!(second["account"], "reused", "{second}");
    assert_eq!(second["account_url"], first["account_url"]);
    assert_eq!(account_pem(out.path()), key, "account.pem changed");

    // The human summary says so too.
    let client = Client::run_to_success(
        &pebble,
        "http01",
        &["third.example.test"],
        &["--out", out.path().to_str().unwrap()],
        Duration::from_secs(60),
    )
    .await;
    let stdout = client.stdout();
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("account") && l.contains("reused")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_is_registered_again_when_the_ca_forgot_it() {
    let mut pebble = Pebble::start(&[]).await;
    let out = tempfile::tempdir().unwrap();
    let first = run_into(&pebble, out.path(), "forgot.example.test").await;
    assert_eq!(first["account"], "created", "{first}");
    let key = account_pem(out.path());
    pebble.restart().await;
    let second = run_into(&pebble, out.path(), "forgot2.example.test").await;
    assert_eq!(second["account"], "created", "{second}");
    assert_eq!(account_pem(out.path()), key, "the same key registers again");
}
