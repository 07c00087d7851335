//! Issue 12: the summary as printed. The `--json` output of every command that prints JSON
//! (issued, kept, renewed with `--revoke`, while serving, `revoke`, `account`), taken from real
//! runs against Pebble, is validated against `schema/*.schema.json` (draft 2020-12, no field
//! left undocumented) and holds no float; the HTTPS URL the human summary prints reaches the
//! certificate under a name it carries, and where that name does not lead here, the `curl
//! --resolve` the summary gives instead does.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;
use crate::life::{RUN, command};

/// The validator for `schema/<file>`, itself checked against the draft 2020-12 meta-schema.
fn validator(file: &str) -> jsonschema::Validator {
    let path = repo().join("schema").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
        panic!(
            "{} is not a valid draft 2020-12 schema: {e}",
            path.display()
        );
    }
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every number in `value` that is not an integer, with its path.
fn floats(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Number(n) if !(n.is_u64() || n.is_i64()) => found.push(format!("{path} = {n}")),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                floats(item, &format!("{path}/{i}"), found);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                floats(item, &format!("{path}/{key}"), found);
            }
        }
        _ => {}
    }
}

/// Asserts that `stdout` is one JSON object valid against `schema/<file>`, with no float in
/// it; returns it.
pub fn assert_valid(file: &str, stdout: &str) -> Value {
    let value: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{stdout}"));
    let errors: Vec<String> = validator(file)
        .iter_errors(&value)
        .map(|e| format!("  at {:?}: {e}", e.instance_path().as_str()))
        .collect();
    assert!(
        errors.is_empty(),
        "output does not match schema/{file}:\n{}\n{value:#}",
        errors.join("\n")
    );
    let mut found = Vec::new();
    floats(&value, "", &mut found);
    assert!(found.is_empty(), "floats in the output: {found:?}\n{value}");
    value
}

fn out_str(out: &Path) -> &str {
    out.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_of_every_command_matches_its_schema() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let out = tempfile::tempdir().unwrap();
    let name = "schema.example.test";
    let args = ["--json", "--out", out_str(out.path())];

    // Issued, then kept, then renewed with --force and revoked with --revoke.
    let run = |extra: &'static [&'static str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(extra);
        all
    };
    let issued = Client::run_to_success(&pebble, "http01", &[name], &run(&[]), RUN).await;
    let issued = assert_valid("summary.schema.json", &issued.stdout());
    assert_eq!(issued["action"], "issued", "{issued}");
    assert_eq!(issued["account"], "created", "{issued}");
    let kept = Client::run_to_success(&pebble, "http01", &[name], &run(&[]), RUN).await;
    let kept = assert_valid("summary.schema.json", &kept.stdout());
    assert_eq!(kept["action"], "kept", "{kept}");
    assert!(kept["order_url"].is_null(), "{kept}");
    let renewed = Client::run_to_success(
        &pebble,
        "http01",
        &[name],
        &run(&["--force", "--revoke"]),
        RUN,
    )
    .await;
    let renewed = assert_valid("summary.schema.json", &renewed.stdout());
    assert_eq!(renewed["action"], "renewed", "{renewed}");
    assert_eq!(renewed["revoked"], true, "{renewed}");
    assert_eq!(renewed["replaced"], issued["serial"], "{renewed}");

    // While serving: the URLs are there.
    let served_name = "served.schema.example.test";
    let mut client = Client::start(&pebble, "http01", &[served_name], &["--json"]);
    client.wait_serving(&pebble).await;
    let serving = assert_valid("summary.schema.json", &client.stdout_when_written().await);
    let port = client.https_port;
    assert_eq!(
        serving["https"],
        format!("https://{served_name}:{port}/"),
        "{serving}"
    );
    assert_eq!(serving["https_port"], port, "{serving}");
    // .test names resolve nowhere (RFC 6761 §6.2).
    assert_eq!(serving["https_resolves"], false, "{serving}");
    let control = format!("http://127.0.0.1:{}", client.shutdown_port);
    assert_eq!(serving["shutdown"], format!("{control}/shutdown"));
    assert_eq!(serving["status"], format!("{control}/status"));
    let status = http_get(client.shutdown_port, "/status").await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let stop = http_get(client.shutdown_port, "/shutdown").await.unwrap();
    assert!(stop.starts_with("HTTP/1.1 200"), "{stop}");
    client.expect_exit(0, Duration::from_secs(2)).await;

    // The commands of their own.
    let cert = client.out.path().join("cert.pem");
    let revoked = command(
        "revoke",
        &pebble.dir_url(),
        &["--cert", cert.to_str().unwrap(), "--json"],
        0,
    )
    .await;
    let revoked = assert_valid("revoke.schema.json", &revoked.stdout());
    assert_eq!(revoked["signed_by"], "account key", "{revoked}");
    let account = command(
        "account",
        &pebble.dir_url(),
        &["--out", out_str(out.path()), "--json"],
        0,
    )
    .await;
    let account = assert_valid("account.schema.json", &account.stdout());
    assert_eq!(account["url"], issued["account_url"], "{account}");
}

/// The line `serving it on ...` of a human summary, and the hint line under it if any.
fn serving_lines(stdout: &str) -> (String, Option<String>) {
    let mut lines = stdout
        .lines()
        .skip_while(|l| !l.starts_with("serving it on "));
    let serving = lines
        .next()
        .unwrap_or_else(|| panic!("no serving line:\n{stdout}"))
        .to_owned();
    let hint = lines
        .next()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.trim().to_owned());
    (serving, hint)
}

/// The `NAME:PORT:ADDR` of a hint's `curl --resolve`, and its URL.
fn curl_resolve(hint: &str) -> ((String, u16, String), String) {
    let words: Vec<&str> = hint.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "--resolve")
        .unwrap_or_else(|| panic!("no curl --resolve in {hint:?}"));
    let parts: Vec<&str> = words[at + 1].splitn(3, ':').collect();
    let triple = (
        parts[0].to_owned(),
        parts[1].parse().unwrap(),
        parts[2].to_owned(),
    );
    (triple, words[at + 2].to_owned())
}

/// Runs `challenge` for `names` (serving), returns the human summary's serving and hint lines,
/// Pebble's root and the client (still serving).
async fn serve(
    pebble: &Pebble,
    challenge: &str,
    names: &[&str],
) -> (String, Option<String>, Client) {
    let mut client = Client::start(pebble, challenge, names, &[]);
    client.wait_serving(pebble).await;
    let (serving, hint) = serving_lines(&client.stdout_when_written().await);
    (serving, hint, client)
}

async fn shut_down(mut client: Client) {
    let stop = http_get(client.shutdown_port, "/shutdown").await.unwrap();
    assert!(stop.starts_with("HTTP/1.1 200"), "{stop}");
    client.expect_exit(0, Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_url_reaches_the_certificate() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let root = pebble.root().await;

    // A DNS name (the first that is not a wildcard): the URL names it; it does not resolve here, so the hint's curl --resolve
    // (connect to ADDR, ask for NAME) is what reaches it, with the host name checked.
    let name = "www.url.example.test";
    let (serving, hint, client) = serve(&pebble, "dns01", &["*.url.example.test", name]).await;
    let port = client.https_port;
    let url = format!("https://{name}:{port}/");
    let shutdown = format!("http://127.0.0.1:{}/shutdown", client.shutdown_port);
    assert_eq!(
        serving,
        format!("serving it on {url} until GET {shutdown}, SIGINT or SIGTERM")
    );
    let hint = hint.unwrap_or_else(|| panic!("no hint for a name that does not resolve"));
    assert!(
        hint.starts_with(&format!(
            "{name} does not resolve to this machine from here: curl --resolve"
        )),
        "{hint}"
    );
    let ((host, resolve_port, addr), curl_url) = curl_resolve(&hint);
    assert_eq!((host.as_str(), resolve_port), (name, port), "{hint}");
    assert_eq!(addr, "127.0.0.1", "{hint}");
    assert_eq!(curl_url, url, "{hint}");
    let served = fetch_served(port, name, root.clone()).await;
    assert!(served.body.starts_with("HTTP/1.1 200"), "{}", served.body);
    shut_down(client).await;

    // Only a wildcard: no single name is known, and the summary says so.
    let (serving, hint, client) = serve(&pebble, "dns01", &["*.wild.example.test"]).await;
    let port = client.https_port;
    assert!(
        serving.starts_with(&format!(
            "serving it on port {port} for names under *.wild.example.test until GET"
        )),
        "{serving}"
    );
    let hint = hint.unwrap_or_else(|| panic!("no hint for a wildcard"));
    assert!(hint.contains("no single name is known"), "{hint}");
    let ((host, _, addr), _) = curl_resolve(&hint);
    assert_eq!(host, "NAME.wild.example.test", "{hint}");
    let any = "anything.wild.example.test";
    let served = fetch_served(port, any, root.clone()).await;
    assert!(served.body.starts_with("HTTP/1.1 200"), "{}", served.body);
    assert_eq!(addr, "127.0.0.1");
    shut_down(client).await;

    // An IP identifier: the URL is the address, which reaches this machine; no hint.
    let (serving, hint, client) = serve(&pebble, "http01", &["127.0.0.1"]).await;
    let port = client.https_port;
    assert!(
        serving.starts_with(&format!(
            "serving it on https://127.0.0.1:{port}/ until GET"
        )),
        "{serving}"
    );
    assert_eq!(hint, None);
    let served = fetch_served(port, "127.0.0.1", root).await;
    assert!(served.body.starts_with("HTTP/1.1 200"), "{}", served.body);
    shut_down(client).await;
}
