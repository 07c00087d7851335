//! Pebble validating through a real caching resolver, as production CAs do (issue 11, item 3):
//! Debian's Unbound and Knot Resolver, each started by the test with its own config on a port of
//! its own as Pebble's `-dnsserver`, sending `test.` to the client's DNS server through a relay
//! that counts what the resolver asks (UDP or TCP, names in random case). The same scenarios run
//! through both, and each checks that the resolver never caught an answer out of the case it
//! asked in; the proof that this check is real is a relay that lowers the names of the answers.

mod daemon;
mod delegation;
mod nsd;
mod relay;

use std::process::ExitStatus;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::harness::{Client, Pebble, free_port, san_names};
use daemon::{Kind, Options, Resolver};
use relay::{Mode, Relay};

/// The resolver's defaults: UDP to the client, qname minimisation on.
const UDP_MINIMISED: Options = Options {
    qname_minimisation: true,
    tcp_upstream: false,
};

/// Pebble asks the resolver, which asks the relay, which asks the client's DNS server.
struct Chain {
    pebble: Pebble,
    resolver: Resolver,
    relay: Relay,
}

impl Chain {
    async fn start(kind: Kind, options: &Options, mode: Mode) -> Chain {
        let dns_port = free_port();
        let relay = Relay::start(dns_port, mode).await;
        let resolver = Resolver::start(kind, relay.port, options);
        let pebble =
            Pebble::start_with_dns(&[], serde_json::json!({}), dns_port, &resolver.addr()).await;
        Chain {
            pebble,
            resolver,
            relay,
        }
    }

    /// Runs the client with `--no-serve` until it exits (at most 120 s).
    async fn run(&self, challenge: &str, names: &[&str]) -> (Client, Option<ExitStatus>) {
        let mut client = Client::start(&self.pebble, challenge, names, &["--no-serve"]);
        let status = client.wait_exit(Duration::from_secs(120)).await;
        (client, status)
    }

    /// Everything a failure message needs.
    fn logs(&self, client: &Client) -> String {
        format!(
            "{}\n--- pebble\n{}\n--- {:?}\n{}\n--- relay: {:?}",
            client.stderr(),
            self.pebble.log(),
            self.resolver.kind(),
            self.resolver.log(),
            self.relay.seen
        )
    }
}

/// Runs the client to success through a resolver of `kind` and checks that the certificate names
/// all of `names`, that Pebble asked the resolver, and that the resolver asked the client's
/// server with 0x20 and over the transport `options` say.
async fn issue_through(kind: Kind, challenge: &str, names: &[&str], options: &Options) {
    let chain = Chain::start(kind, options, Mode::Transparent).await;
    let (client, status) = chain.run(challenge, names).await;
    let logs = chain.logs(&client);
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{logs}");
    let cert = CertificateDer::pem_file_iter(client.out.path().join("cert.pem"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut got = san_names(&cert);
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // Pebble did ask the resolver: the test is not passing by going around it.
    let (asked, qtype) = if challenge == "dns01" {
        let name = names[0].trim_start_matches("*.");
        (format!("_acme-challenge.{name}"), "TXT")
    } else {
        (names[0].to_owned(), "A")
    };
    assert!(
        chain.resolver.was_asked(&asked, qtype),
        "{kind:?} was not asked {asked} {qtype}:\n{logs}"
    );
    // Every answer echoed the case of the question: the resolver never had to work around us.
    assert_eq!(
        chain.resolver.case_mismatches(),
        0,
        "{kind:?} caught answers not in the case it asked:\n{logs}"
    );
    let seen = &chain.relay.seen;
    assert!(
        Relay::count(&seen.upper_case_queries) > 0,
        "{kind:?} never changed the case of a name (0x20):\n{logs}"
    );
    let (udp, tcp) = (
        Relay::count(&seen.udp_queries),
        Relay::count(&seen.tcp_queries),
    );
    if options.tcp_upstream {
        assert!(udp == 0 && tcp > 0, "{kind:?} not over TCP only:\n{logs}");
    } else {
        assert!(udp > 0, "{kind:?} not over UDP:\n{logs}");
    }
}

/// The scenarios, once for each resolver: `resolvers::unbound::*` and `resolvers::knot::*`.
macro_rules! scenarios {
    ($($module:ident => $kind:expr),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dns01_names_and_wildcards_with_0x20_and_qname_minimisation() {
                // Each name shares its _acme-challenge TXT RRset with its wildcard: a resolver
                // caching the RRset with one value of the two would fail the second validation.
                let names = ["a.test", "*.a.test", "b.test", "*.b.test"];
                issue_through($kind, "dns01", &names, &UDP_MINIMISED).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dns01_twenty_names_over_tcp_without_qname_minimisation() {
                let names: Vec<String> = (1..=20).map(|i| format!("n{i}.many.test")).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let options = Options {
                    qname_minimisation: false,
                    tcp_upstream: true,
                };
                issue_through($kind, "dns01", &names, &options).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn answers_not_in_the_case_asked_are_caught() {
                case_echo_is_checked($kind).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn http01_resolves_the_name() {
                // Pebble finds the http-01 address through the resolver: the client's DNS server
                // answers A with --record (the harness passes --record 127.0.0.1). A long name,
                // so that 0x20 leaves it all lowercase only once in 2^16 queries.
                let names = ["web.resolvers.test"];
                issue_through($kind, "http01", &names, &UDP_MINIMISED).await;
            }
        }
    )*};
}

scenarios! {
    unbound => Kind::Unbound,
    knot => Kind::Knot,
}

/// What the resolver tests prove about 0x20 (issue 11, item 2): the same dns-01 run, once with
/// the answers as the client's server sent them and once with the relay turning their question
/// and owner names to lowercase. The resolver logs the second as not echoing its case and the
/// first never. Neither resolver refuses such a server outright: Unbound (`use-caps-for-id`)
/// falls back to asking without 0x20 and kresd asks again over TCP, and both then accept the
/// answer, so the log line, not the validation's outcome, is what shows the check at work.
/// Neither compares the owner names of the records: a server lowering only those passes here,
/// and the unit tests in `src/challenge/dns.rs` and `tests/e2e/dns.rs` are what catch it.
async fn case_echo_is_checked(kind: Kind) {
    for mode in [Mode::Transparent, Mode::Lowercase] {
        let chain = Chain::start(kind, &UDP_MINIMISED, mode).await;
        let (client, status) = chain.run("dns01", &["case.test"]).await;
        let logs = chain.logs(&client);
        let mismatches = chain.resolver.case_mismatches();
        match mode {
            Mode::Transparent => {
                assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{logs}");
                assert_eq!(mismatches, 0, "{kind:?} caught a mismatch:\n{logs}");
            }
            Mode::Lowercase => {
                assert!(
                    Relay::count(&chain.relay.seen.lowered_answers) > 0,
                    "the relay lowered nothing:\n{logs}"
                );
                assert!(mismatches > 0, "{kind:?} did not notice:\n{logs}");
            }
        }
    }
}
