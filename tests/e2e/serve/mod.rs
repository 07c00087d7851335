//! Issue 10, "Serve and renew forever": without `--no-serve` the binary keeps serving the
//! certificate over HTTPS and renews it in place while it serves, under load and across a CA
//! restart; the status and shutdown endpoints (loopback by default); SIGHUP taking up a
//! certificate another tool put in `--out`; a failed renewal that keeps the old certificate
//! served. Every CA is a real Pebble; short-lived certificates come from the current Pebble's
//! profiles, so those tests print "not run" without it.

mod failure;
mod load;
mod renew;
mod sighup;
mod status;

use std::time::{Duration, Instant};

use crate::harness::*;

/// The log line of one renewal while serving.
pub const RENEWED: &str = "certificate renewed and now served";

/// A config for the current Pebble with the usual profile and a `shortlived` one of `secs`.
pub fn profiles(secs: u64) -> serde_json::Value {
    serde_json::json!({"profiles": {
        "default": {"description": "ninety days", "validityPeriod": 7_776_000},
        "shortlived": {"description": "short", "validityPeriod": secs},
    }})
}

/// The status endpoint's JSON (`GET /status` on 127.0.0.1:`port`).
pub async fn status(port: u16) -> serde_json::Value {
    let text = http_get(port, "/status")
        .await
        .unwrap_or_else(|e| panic!("GET /status on 127.0.0.1:{port}: {e}"));
    assert!(text.starts_with("HTTP/1.1 200"), "GET /status: {text}");
    // The body is the JSON object (whole, or as the one chunk of a chunked answer).
    let (_, body) = text.split_once("\r\n\r\n").unwrap_or_default();
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => &body[a..=b],
        _ => panic!("GET /status answered no JSON object: {text}"),
    };
    serde_json::from_str(json).unwrap_or_else(|e| panic!("GET /status: {e}: {text}"))
}

/// One renewal as its log line tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Renewal {
    pub old_serial: String,
    pub new_serial: String,
}

/// The renewals logged in `stderr`, in order.
pub fn renewals(stderr: &str) -> Vec<Renewal> {
    stderr
        .lines()
        .filter(|l| l.contains(RENEWED))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .map(|v| v.trim_matches('"').to_owned())
                    .unwrap_or_else(|| panic!("no {name} in the renewal line: {l}"))
            };
            Renewal {
                old_serial: field("old_serial="),
                new_serial: field("new_serial="),
            }
        })
        .collect()
}

/// Serials compare as numbers: no leading zeros, lower case.
pub fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim_start_matches("0x")
            .replace(':', "")
            .trim_start_matches('0')
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

/// Polls `done` every 50 ms until it holds; fails after `limit` with `what` and the client's
/// stderr, or at once if the client exited.
pub async fn wait_for(
    client: &mut Client,
    what: &str,
    limit: Duration,
    mut done: impl FnMut(&Client) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        if done(client) {
            return;
        }
        assert_alive(client, &format!("waiting for {what}")).await;
        assert!(
            Instant::now() < deadline,
            "no {what} within {limit:?}:\n{}",
            client.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails if the client has exited, saying it did while `doing`.
pub async fn assert_alive(client: &mut Client, doing: &str) {
    if let Some(status) = client.wait_exit(Duration::ZERO).await {
        panic!(
            "acme-client exited ({status}) while {doing}:\n{}",
            client.stderr()
        );
    }
}

/// Sends SIGHUP to process `pid`.
pub fn hang_up(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -HUP {pid}: {status}");
}
