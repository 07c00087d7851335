//! The report printed on stdout once the certificate is obtained: a few human lines, or one JSON
//! object with `--json` for scripts. Every JSON field is documented in README.md ("Output") and
//! described by `schema/summary.schema.json`: addresses are URLs, durations whole milliseconds
//! (`_ms`), times RFC 3339 strings, and no number is a float. [`Reach`] works out the URL under
//! which the served certificate passes a client's host name check.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use serde::ser::SerializeStruct as _;

use crate::acme::machine::{Outcome, StepTiming};
use crate::acme::policy::RequestStats;
use crate::acme::renewal::{Due, rfc3339};
use crate::acme::timeline::Event;
use crate::cert::Files;

/// How long the summary waits for the served name to resolve before saying it does not.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// `https://NAME:PORT/` where the certificate is served under a name it carries; None when
    /// not serving, or when it names only wildcards (no single name is known).
    pub https: Option<String>,
    /// The port the certificate is served on; None when not serving.
    pub https_port: Option<u16>,
    /// Whether the host in `https` resolves, from here, to an address the server accepts on.
    pub https_resolves: Option<bool>,
    /// `http://ADDR:PORT/shutdown`; None when not serving.
    pub shutdown: Option<String>,
    /// `http://ADDR:PORT/status`; None when not serving.
    pub status: Option<String>,
    /// Where the CA proves control, beside where acme-client listens for it.
    pub validation: Validation,
    /// Requests sent to the CA per endpoint, and 429/503 answers received.
    pub ca_requests: &'a RequestStats,
    pub timings: Timings<'a>,
    #[serde(skip)]
    reach: Option<Reach>,
    #[serde(skip)]
    control: Option<SocketAddr>,
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

/// Where the time went. The JSON has whole milliseconds (`total_ms`, `ca_wait_ms`,
/// `overhead_ms`, and `elapsed_ms`/`start_ms` per step and event); `--timings` prints the same
/// to the microsecond.
#[derive(Debug)]
pub struct Timings<'a> {
    /// From the start of the run to the certificate being written.
    pub elapsed: Duration,
    /// Time during which a request to the CA or a wait on it was outstanding.
    pub ca_wait_ms: f64,
    pub steps: &'a [StepTiming],
    /// Every request and wait: `kind` is "request", "poll", "rate limit", "held back" or
    /// "connect retry".
    pub events: &'a [Event],
}

/// A duration in whole milliseconds, rounded to the nearest.
fn whole_ms(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        // Saturates above u64::MAX; durations here are seconds at most.
        ms.round() as u64
    } else {
        0
    }
}

impl Timings<'_> {
    fn total_ms(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1000.0
    }
}

impl Serialize for Timings<'_> {
    /// Whole milliseconds, with `total_ms = ca_wait_ms + overhead_ms` exactly.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Step {
            step: &'static str,
            elapsed_ms: u64,
        }
        #[derive(Serialize)]
        struct Ev<'e> {
            kind: &'static str,
            what: &'e str,
            status: Option<u16>,
            start_ms: u64,
            elapsed_ms: u64,
        }
        let total = whole_ms(self.total_ms());
        let ca_wait = whole_ms(self.ca_wait_ms).min(total);
        let mut st = s.serialize_struct("Timings", 5)?;
        st.serialize_field("total_ms", &total)?;
        st.serialize_field("ca_wait_ms", &ca_wait)?;
        st.serialize_field("overhead_ms", &(total - ca_wait))?;
        let steps: Vec<Step> = self
            .steps
            .iter()
            .map(|t| Step {
                step: t.step,
                elapsed_ms: whole_ms(t.ms),
            })
            .collect();
        st.serialize_field("steps", &steps)?;
        let events: Vec<Ev<'_>> = self
            .events
            .iter()
            .map(|e| Ev {
                kind: e.kind,
                what: &e.what,
                status: e.status,
                start_ms: whole_ms(e.start_ms),
                elapsed_ms: whole_ms(e.ms),
            })
            .collect();
        st.serialize_field("events", &events)?;
        st.end()
    }
}

/// The host a client puts in the URL of the served certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// The first DNS name that is not a wildcard.
    Name(String),
    /// An IP identifier, when there is no such name.
    Ip(IpAddr),
    /// Only wildcards: the name each stands under (`example.test` for `*.example.test`). No
    /// single name in the certificate is known to be served.
    Wildcards(String),
}

impl Host {
    /// The host for `names` (in the order given): the first DNS name that is not a wildcard,
    /// else the first IP address, else the first wildcard's base; None for no names.
    pub fn pick(names: &[String]) -> Option<Host> {
        let ip = |n: &String| crate::names::ip_address(n);
        names
            .iter()
            .find(|n| !n.starts_with("*.") && ip(n).is_none())
            .map(|n| Host::Name(n.clone()))
            .or_else(|| names.iter().find_map(ip).map(Host::Ip))
            .or_else(|| {
                names
                    .first()
                    .map(|n| Host::Wildcards(n.trim_start_matches("*.").to_owned()))
            })
    }
}

/// Where a client that checks host names reaches the HTTPS server, and whether it can from here
/// as things are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub host: Host,
    pub port: u16,
    /// The address this machine accepts the connection on (loopback for a wildcard bind).
    pub local: IpAddr,
    /// Whether the host resolves, from here, to an address the server accepts on; None for
    /// [`Host::Wildcards`].
    pub resolves: Option<bool>,
}

impl Reach {
    /// Works out the URL for `names` served on `https` (the listener's address), resolving the
    /// name with the system resolver within [`LOOKUP_TIMEOUT`].
    pub async fn find(names: &[String], https: SocketAddr) -> Option<Reach> {
        let host = Host::pick(names)?;
        let bind = https.ip();
        let resolves = match &host {
            Host::Name(name) => Some(resolves_here(name, bind).await),
            Host::Ip(ip) => Some(accepts(bind, *ip, is_local)),
            Host::Wildcards(_) => None,
        };
        Some(Reach {
            host,
            port: https.port(),
            local: reachable(https).ip(),
            resolves,
        })
    }

    /// `https://HOST:PORT/`; None for [`Host::Wildcards`].
    pub fn url(&self) -> Option<String> {
        match &self.host {
            Host::Name(name) => Some(url_of(name, self.port)),
            Host::Ip(ip) => Some(url_of(&bracketed(*ip), self.port)),
            Host::Wildcards(_) => None,
        }
    }

    /// Where the server is, for the human summary.
    fn place(&self) -> String {
        match (&self.host, self.url()) {
            (_, Some(url)) => url,
            (Host::Wildcards(base), None) => {
                format!("port {} for names under *.{base}", self.port)
            }
            _ => format!("port {}", self.port),
        }
    }

    /// One clause with a way to reach the server when its URL does not lead here as it is.
    pub fn hint(&self) -> Option<String> {
        let (port, local) = (self.port, bracketed(self.local));
        match &self.host {
            Host::Name(name) if self.resolves == Some(false) => Some(format!(
                "{name} does not resolve to this machine from here: curl --resolve {name}:{port}:{local} {}",
                url_of(name, port)
            )),
            Host::Ip(ip) if self.resolves == Some(false) => {
                let ip = bracketed(*ip);
                Some(format!(
                    "{ip} is not an address this server accepts on: curl --connect-to {ip}:{port}:{local}:{port} {}",
                    url_of(&ip, port)
                ))
            }
            Host::Wildcards(base) => Some(format!(
                "the certificate names only wildcards, so no single name is known: curl --resolve NAME.{base}:{port}:{local} https://NAME.{base}:{port}/"
            )),
            _ => None,
        }
    }
}

fn url_of(host: &str, port: u16) -> String {
    format!("https://{host}:{port}/")
}

/// An IP address as a URL's host: IPv6 in brackets.
fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Whether `name` resolves (system resolver, within [`LOOKUP_TIMEOUT`]) to an address a server
/// bound to `bind` accepts connections on. A lookup that fails or takes too long counts as no.
async fn resolves_here(name: &str, bind: IpAddr) -> bool {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name, 0))).await {
        Ok(Ok(mut addrs)) => addrs.any(|a| accepts(bind, a.ip(), is_local)),
        _ => false,
    }
}

/// Whether a listener bound to `bind` accepts a connection to `ip`, where `local` tells whether
/// an address belongs to this machine. An IPv6 wildcard bind is taken as dual-stack (Linux's
/// default).
fn accepts(bind: IpAddr, ip: IpAddr, local: impl Fn(IpAddr) -> bool) -> bool {
    let ip = ip.to_canonical();
    match bind.to_canonical() {
        IpAddr::V4(b) if b.is_unspecified() => ip.is_ipv4() && local(ip),
        IpAddr::V6(b) if b.is_unspecified() => local(ip),
        b => b == ip,
    }
}

/// Whether `ip` is an address of this machine: loopback, or one a socket can be bound to.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

impl<'a> Summary<'a> {
    /// Builds the summary of `outcome`; `reach` and `control` (the shutdown and status
    /// listener's address) are there when the certificate is served.
    pub fn new(
        outcome: &'a Outcome,
        validation: Validation,
        files: &'a Files,
        elapsed: Duration,
        reach: Option<Reach>,
        control: Option<SocketAddr>,
    ) -> Self {
        let info = &outcome.issued.info;
        let control_url = |path: &str| control.map(|a| format!("http://{}/{path}", reachable(a)));
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
            https: reach.as_ref().and_then(Reach::url),
            https_port: reach.as_ref().map(|r| r.port),
            https_resolves: reach.as_ref().and_then(|r| r.resolves),
            shutdown: control_url("shutdown"),
            status: control_url("status"),
            validation,
            ca_requests: &outcome.requests,
            timings: Timings {
                elapsed,
                ca_wait_ms: outcome.ca_wait_ms,
                steps: &outcome.steps,
                events: &outcome.events,
            },
            reach,
            control,
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
            self.timings.total_ms(),
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
            "  {verb} in {:.3} s, {} to the CA{limited}\n",
            self.timings.elapsed.as_secs_f64(),
            match self.requests() {
                1 => "1 request".to_owned(),
                n => format!("{n} requests"),
            }
        ));
        if !kept {
            out.push_str(&format!("  validated {}\n", self.validation.describe()));
        }
        if let (Some(reach), Some(control)) = (&self.reach, self.control) {
            out.push_str(&format!(
                "serving it on {} until GET http://{}/shutdown, SIGINT or SIGTERM\n",
                reach.place(),
                reachable(control)
            ));
            if let Some(hint) = reach.hint() {
                out.push_str(&format!("  {hint}\n"));
            }
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
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_url_names_the_first_dns_name_that_is_not_a_wildcard() {
        let pick = |list: &[&str]| Host::pick(&names(list));
        assert_eq!(
            pick(&["*.example.test", "example.test", "www.example.test"]),
            Some(Host::Name("example.test".into()))
        );
        assert_eq!(
            pick(&["127.0.0.1", "a.example.test"]),
            Some(Host::Name("a.example.test".into()))
        );
        assert_eq!(
            pick(&["::1", "127.0.0.1"]),
            Some(Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)))
        );
        assert_eq!(
            pick(&["*.example.test", "*.other.test"]),
            Some(Host::Wildcards("example.test".into()))
        );
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn a_wildcard_bind_accepts_local_addresses_of_its_family() {
        let local = |a: IpAddr| a.is_loopback() || a == ip("192.0.2.7");
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        assert!(accepts(any4, ip("127.0.0.1"), local));
        assert!(accepts(any4, ip("192.0.2.7"), local));
        assert!(!accepts(any4, ip("192.0.2.8"), local));
        assert!(!accepts(any4, ip("::1"), local), "a v4 socket takes no v6");
        assert!(accepts(any4, ip("::ffff:127.0.0.1"), local));
        assert!(accepts(any6, ip("::1"), local));
        assert!(accepts(any6, ip("127.0.0.1"), local), "dual-stack");
        // A specific bind accepts only its own address.
        assert!(accepts(ip("127.0.0.1"), ip("127.0.0.1"), local));
        assert!(!accepts(ip("127.0.0.1"), ip("192.0.2.7"), local));
        assert!(!accepts(ip("::1"), ip("127.0.0.1"), local));
    }

    fn reach(host: Host, resolves: Option<bool>) -> Reach {
        Reach {
            host,
            port: 5001,
            local: ip("127.0.0.1"),
            resolves,
        }
    }

    #[test]
    fn urls_and_hints() {
        let name = Host::Name("www.example.test".into());
        let ok = reach(name.clone(), Some(true));
        assert_eq!(ok.url().as_deref(), Some("https://www.example.test:5001/"));
        assert_eq!(ok.hint(), None);
        assert_eq!(
            reach(name, Some(false)).hint().as_deref(),
            Some(
                "www.example.test does not resolve to this machine from here: curl --resolve www.example.test:5001:127.0.0.1 https://www.example.test:5001/"
            )
        );
        let v6 = Reach {
            local: ip("::1"),
            ..reach(Host::Ip(ip("2001:db8::1")), Some(false))
        };
        assert_eq!(v6.url().as_deref(), Some("https://[2001:db8::1]:5001/"));
        assert_eq!(
            v6.hint().as_deref(),
            Some(
                "[2001:db8::1] is not an address this server accepts on: curl --connect-to [2001:db8::1]:5001:[::1]:5001 https://[2001:db8::1]:5001/"
            )
        );
        let wild = reach(Host::Wildcards("example.test".into()), None);
        assert_eq!(wild.url(), None);
        assert_eq!(wild.place(), "port 5001 for names under *.example.test");
        assert!(wild.hint().unwrap().ends_with(
            "curl --resolve NAME.example.test:5001:127.0.0.1 https://NAME.example.test:5001/"
        ));
    }

    #[tokio::test]
    async fn localhost_resolves_here_and_an_unknown_name_does_not() {
        let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5001));
        let found = Reach::find(&names(&["localhost"]), any).await.unwrap();
        assert_eq!(found.resolves, Some(true));
        assert_eq!(found.local, ip("127.0.0.1"));
        // .invalid never resolves (RFC 6761 §6.4).
        let found = Reach::find(&names(&["nowhere.invalid"]), any)
            .await
            .unwrap();
        assert_eq!(found.resolves, Some(false));
        let found = Reach::find(&names(&["127.0.0.1"]), any).await.unwrap();
        assert_eq!(found.resolves, Some(true));
        assert_eq!(found.url().as_deref(), Some("https://127.0.0.1:5001/"));
    }

    #[test]
    fn durations_are_whole_milliseconds() {
        assert_eq!(whole_ms(0.0), 0);
        assert_eq!(whole_ms(0.4), 0);
        assert_eq!(whole_ms(0.5), 1);
        assert_eq!(whole_ms(9_526.119), 9526);
        assert_eq!(whole_ms(-3.0), 0);
        assert_eq!(whole_ms(f64::NAN), 0);
        let events = [Event {
            kind: "request",
            what: "GET https://ca/dir".into(),
            status: Some(200),
            start_ms: 1.25,
            ms: 2.6,
        }];
        let steps = [StepTiming {
            step: "directory",
            ms: 3.7,
        }];
        let timings = Timings {
            elapsed: Duration::from_micros(9_526_119),
            ca_wait_ms: 7000.6,
            steps: &steps,
            events: &events,
        };
        assert_eq!(
            serde_json::to_value(&timings).unwrap(),
            serde_json::json!({
                "total_ms": 9526, "ca_wait_ms": 7001, "overhead_ms": 2525,
                "steps": [{"step": "directory", "elapsed_ms": 4}],
                "events": [{"kind": "request", "what": "GET https://ca/dir", "status": 200,
                            "start_ms": 1, "elapsed_ms": 3}],
            })
        );
    }
}
