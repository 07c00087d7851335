//! The report printed on stdout once the certificate is obtained: a few human lines, or one JSON
//! object with `--json` for scripts.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::acme::machine::{Outcome, StepTiming};
use crate::acme::policy::RequestStats;
use crate::acme::renewal::{Due, rfc3339};
use crate::acme::timeline::Event;
use crate::cert::Files;

/// Everything a script may want to know about the run.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    /// "issued", "renewed" or "kept".
    pub action: &'static str,
    pub names: &'a [String],
    pub challenge: &'static str,
    pub serial: &'a str,
    pub issuer: &'a str,
    /// Issuer CN of the topmost certificate of the chain.
    pub chain_to: &'a str,
    pub not_before: &'a str,
    pub not_after: &'a str,
    pub revoked: bool,
    pub files: &'a Files,
    /// None when the certificate was kept (no account was needed).
    pub account_url: Option<&'a str>,
    /// "created" when this run created the account, "reused" when it found it, null when kept.
    pub account: Option<&'static str>,
    pub order_url: Option<&'a str>,
    pub certificate_url: Option<&'a str>,
    /// The profile the certificate was issued under.
    pub profile: Option<&'a str>,
    /// The serial of the certificate this run replaced.
    pub replaced: Option<&'a str>,
    /// When the certificate now held is next due, and why.
    pub renewal: &'a Due,
    pub terms_of_service: Option<&'a str>,
    pub reused_authorizations: usize,
    /// Where the certificate is served, when it is.
    pub https: Option<SocketAddr>,
    pub shutdown: Option<SocketAddr>,
    /// Where the CA proves control, beside where acme-client listens for it.
    pub validation: Validation,
    /// Requests sent to the CA per endpoint, and 429/503 answers received.
    pub ca_requests: &'a RequestStats,
    pub timings: Timings<'a>,
}

/// Where the CA connects to prove control, and where acme-client answers.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub challenge: &'static str,
    /// The port a public CA uses (http-01 80, tls-alpn-01 443, DNS 53); None for another CA,
    /// which uses what it is configured to (Pebble: 5002, 5001, its -dnsserver).
    pub ca_port: Option<u16>,
    /// The port acme-client answers on.
    pub listening: u16,
}

impl Validation {
    /// One line for people.
    pub fn describe(&self) -> String {
        let what = match self.challenge {
            "dns-01" => "DNS",
            other => other,
        };
        match self.ca_port {
            Some(port) if port == self.listening => {
                format!("the CA validates {what} on port {port}, where acme-client listens")
            }
            Some(port) => format!(
                "the CA validates {what} on port {port}; acme-client listens on {}: forward {port} to it",
                self.listening
            ),
            None => format!(
                "the CA validates {what} where it is configured to; acme-client listens on {}",
                self.listening
            ),
        }
    }
}

/// Where the time went.
#[derive(Debug, Serialize)]
pub struct Timings<'a> {
    /// From the start of the run to the certificate being written.
    pub total_ms: f64,
    /// Time during which a request to the CA or a wait on it was outstanding.
    pub ca_wait_ms: f64,
    /// The rest: our own work (start-up, keys, files) that did not overlap a CA wait.
    pub overhead_ms: f64,
    pub steps: &'a [StepTiming],
    /// Every request and wait: `kind` is "request", "poll", "rate limit", "held back" or
    /// "connect retry".
    pub events: &'a [Event],
}

impl<'a> Summary<'a> {
    /// Builds the summary of `outcome`.
    pub fn new(
        outcome: &'a Outcome,
        validation: Validation,
        files: &'a Files,
        elapsed: Duration,
        https: Option<SocketAddr>,
        shutdown: Option<SocketAddr>,
    ) -> Self {
        let info = &outcome.issued.info;
        Summary {
            action: outcome.action.word(),
            names: &info.names,
            challenge: validation.challenge,
            serial: &info.serial,
            issuer: &info.issuer,
            chain_to: &info.chain_to,
            not_before: &info.not_before,
            not_after: &info.not_after,
            revoked: outcome.revoked,
            files,
            account_url: outcome.account_url.as_deref(),
            account: outcome.account_url.as_ref().map(|_| {
                if outcome.account_created {
                    "created"
                } else {
                    "reused"
                }
            }),
            order_url: outcome.order_url.as_deref(),
            certificate_url: outcome.certificate_url.as_deref(),
            profile: outcome.profile.as_deref(),
            replaced: outcome.replaced.as_deref(),
            renewal: &outcome.next,
            terms_of_service: outcome.terms_of_service.as_deref(),
            reused_authorizations: outcome.reused_authorizations,
            https,
            shutdown,
            validation,
            ca_requests: &outcome.requests,
            timings: Timings {
                total_ms: elapsed.as_secs_f64() * 1000.0,
                ca_wait_ms: outcome.ca_wait_ms,
                overhead_ms: (elapsed.as_secs_f64() * 1000.0 - outcome.ca_wait_ms).max(0.0),
                steps: &outcome.steps,
                events: &outcome.events,
            },
        }
    }

    fn requests(&self) -> usize {
        self.timings
            .events
            .iter()
            .filter(|e| e.kind == "request")
            .count()
    }

    /// The `--timings` report: every request and wait, then the totals.
    pub fn timings_report(&self) -> String {
        timings_report(
            self.timings.events,
            self.timings.total_ms,
            self.timings.ca_wait_ms,
        )
    }

    /// One line of JSON.
    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
    }

    /// A few aligned lines for a terminal.
    pub fn human(&self) -> String {
        let files = [
            Some(&self.files.fullchain),
            Some(&self.files.cert),
            Some(&self.files.chain),
            self.files.key.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
        let mut out = format!(
            "certificate for {}\n  serial    {}\n  issuer    {} (chain to {})\n  valid     {} to {}\n  files     {files}\n",
            self.names.join(", "),
            self.serial,
            self.issuer,
            self.chain_to,
            self.not_before,
            self.not_after,
        );
        if self.revoked {
            out.push_str("  revoked   yes\n");
        }
        out.push_str(&format!("  action    {}", self.action));
        if let Some(old) = self.replaced {
            out.push_str(&format!(" (replaces serial {old})"));
        }
        out.push('\n');
        if let Some(profile) = self.profile {
            out.push_str(&format!("  profile   {profile}\n"));
        }
        out.push_str(&format!(
            "  renew     from {} ({})\n",
            rfc3339(self.renewal.at),
            self.renewal.reason
        ));
        if let (Some(account), Some(url)) = (self.account, self.account_url) {
            out.push_str(&format!("  account   {account} {url}\n"));
        }
        let limited = match self.ca_requests.rate_limited {
            0 => String::new(),
            n => format!(" ({n} answered 429/503 and were waited out)"),
        };
        let (verb, kept) = match self.action {
            "kept" => ("checked  ", true),
            _ => ("obtained ", false),
        };
        out.push_str(&format!(
            "  {verb} in {:.3} s, {} requests to the CA{limited}\n",
            self.timings.total_ms / 1000.0,
            self.requests()
        ));
        if !kept {
            out.push_str(&format!("  validated {}\n", self.validation.describe()));
        }
        if let (Some(https), Some(shutdown)) = (self.https, self.shutdown) {
            out.push_str(&format!(
                "serving it on https://{}/ until GET http://{}/shutdown, SIGINT or SIGTERM\n",
                reachable(https),
                reachable(shutdown)
            ));
        }
        out
    }
}

/// The `--timings` report of `events` (also of a failed run): every request and wait, then the
/// totals.
pub fn timings_report(events: &[Event], total_ms: f64, ca_wait_ms: f64) -> String {
    let mut out = String::from("   start ms   duration ms  what\n");
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    for e in sorted {
        let status = e.status.map(|s| format!(" -> {s}")).unwrap_or_default();
        let label = if e.kind == "request" {
            e.what.clone()
        } else {
            format!("({} wait) {}", e.kind, e.what)
        };
        out.push_str(&format!(
            "{:>11.3} {:>13.3}  {label}{status}\n",
            e.start_ms, e.ms
        ));
    }
    let requests = events.iter().filter(|e| e.kind == "request").count();
    out.push_str(&format!(
        "total {total_ms:.3} ms: waiting on the CA {ca_wait_ms:.3} ms, our own work {:.3} ms ({requests} requests)\n",
        (total_ms - ca_wait_ms).max(0.0)
    ));
    out
}

/// An address a local user can connect to: a wildcard bind address becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}
