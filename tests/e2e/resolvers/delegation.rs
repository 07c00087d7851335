//! `--dns-zone` end to end (issue 11, item 4), the way a user meets it: the names live in a zone
//! served by another authoritative server (Debian's NSD), the challenge zone is acme-client's,
//! and a real caching resolver in front of both is Pebble's `-dnsserver` and checks the CNAMEs.
//! The first run, before the CNAMEs exist, must refuse without ordering and name every record;
//! once exactly those records are created, the second run is issued.

use std::time::Duration;

use super::daemon::{Kind, Options, Resolver};
use super::nsd::Nsd;
use crate::harness::{Client, Pebble, free_port, leaf_of, san_names};

const PARENT: &str = "example.test";
const ZONE: &str = "acme.deleg.test";

/// The records the client asks for, as `NAME. CNAME TARGET.` lines, from its error message.
fn records_asked(stderr: &str) -> Vec<String> {
    let error = stderr
        .lines()
        .find(|l| l.contains("error:") && l.contains("--dns-zone"))
        .unwrap_or_else(|| panic!("no --dns-zone error:\n{stderr}"));
    let list = error.split("then run again: ").nth(1).unwrap_or_default();
    let mut records = Vec::new();
    for part in list.split("; ") {
        let part = part.trim();
        let Some(start) = part.find("_") else {
            continue;
        };
        let line = &part[start..];
        if let Some(end) = line.find(" (missing)") {
            records.push(line[..end].to_owned());
        }
    }
    records
}

/// Knot Resolver is not used here: in its stub mode (`policy.STUB`, all these tests can give it
/// without a root) it asks a CNAME's target of the server the policy chose for the first name, so
/// a CNAME from one stub zone into another is never followed. Unbound's stub zones are.
async fn delegated(kind: Kind, challenge: &str) {
    let names = ["a.example.test", "*.a.example.test", "b.example.test"];
    let dns_port = free_port();
    let nsd = Nsd::start(PARENT, &[], 0);
    let resolver = Resolver::start_stubs(
        kind,
        &[(PARENT, nsd.port), (ZONE, dns_port)],
        &Options {
            qname_minimisation: true,
            tcp_upstream: false,
        },
    );
    let pebble =
        Pebble::start_with_dns(&[], serde_json::json!({}), dns_port, &resolver.addr()).await;
    let flags = [
        "--no-serve",
        "--dns-zone",
        ZONE,
        "--resolver",
        &resolver.addr(),
    ];
    let mut first = Client::start(&pebble, challenge, &names, &flags);
    let stderr = first.expect_exit(8, Duration::from_secs(60)).await;
    // The error is the setup's own, not a step of the exchange with the CA.
    assert!(
        crate::harness::error_line(&stderr)
            .starts_with("acme-client: error: --dns-zone acme.deleg.test: create these records"),
        "{stderr}"
    );
    let records = records_asked(&stderr);
    // One record per name: a name and its wildcard share one.
    assert_eq!(records.len(), 2, "{stderr}");
    assert!(
        records.iter().all(|r| r.contains(&format!(".{ZONE}."))),
        "{records:?}"
    );
    assert!(
        !pebble.log().contains("new order") && !pebble.log().to_lowercase().contains("neworder"),
        "an order was placed before the CNAMEs were checked:\n{}",
        pebble.log()
    );
    // The user creates exactly the records named, where the names' DNS is hosted.
    let port = nsd.port;
    drop(nsd);
    let nsd = Nsd::start(PARENT, &records, port);
    let mut second = Client::start(&pebble, challenge, &names, &flags);
    let status = second.wait_exit(Duration::from_secs(90)).await;
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "{}\n--- pebble\n{}\n--- resolver\n{}\n--- nsd\n{}",
        second.stderr(),
        pebble.log(),
        resolver.log(),
        nsd.log()
    );
    let mut got = san_names(&leaf_of(&second));
    got.sort();
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    // The TXT values were reached through the CNAMEs, inside the delegated zone: Unbound
    // followed them into the stub zone served by acme-client.
    let log = resolver.log();
    assert!(
        log.contains(&format!("reply from <{ZONE}.>")),
        "the resolver never asked the delegated zone:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_zone_refuses_then_issues_through_unbound_and_nsd() {
    delegated(Kind::Unbound, "dns01").await;
}

/// The client's arguments with its DNS server on `dns_port` and its own `--out`.
fn args_on(
    pebble: &Pebble,
    challenge: &str,
    names: &[&str],
    extra: &[&str],
    dns_port: u16,
) -> Vec<String> {
    let mut args = Client::args(pebble, &pebble.dir_url(), challenge, names, extra);
    let at = args.iter().position(|a| a == "--dns-port").unwrap();
    args[at + 1] = dns_port.to_string();
    args
}

/// dns-account-01 (issue 11, item 5): two accounts prove the same names at once, each under its
/// own label, each label CNAMEd into its own delegated zone served by its own acme-client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_prove_the_same_names_at_once_with_dns_account01() {
    let names = ["shared.example.test", "*.shared.example.test"];
    let zones = ["one.accounts.test", "two.accounts.test"];
    let ports = [free_port(), free_port()];
    let nsd = Nsd::start(PARENT, &[], 0);
    let stubs = [
        (PARENT, nsd.port),
        (zones[0], ports[0]),
        (zones[1], ports[1]),
    ];
    let options = Options {
        qname_minimisation: true,
        tcp_upstream: false,
    };
    let resolver = Resolver::start_stubs(Kind::Unbound, &stubs, &options);
    let Some(pebble) = Pebble::current_with_dns(ports[0], &resolver.addr()).await else {
        return;
    };
    let outs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let args = |i: usize| {
        let out = outs[i].path().to_str().unwrap().to_owned();
        let resolver = resolver.addr();
        let extra = [
            "--no-serve",
            "--dns-zone",
            zones[i],
            "--resolver",
            &resolver,
            "--out",
            &out,
        ];
        args_on(&pebble, "dnsaccount01", &names, &extra, ports[i])
    };
    // First runs: each account is created and names its own record.
    let mut records = Vec::new();
    for (i, zone) in zones.iter().enumerate() {
        let mut client = Client::spawn_exactly(&args(i));
        let stderr = client.expect_exit(8, Duration::from_secs(60)).await;
        let asked = records_asked(&stderr);
        assert_eq!(asked.len(), 1, "{stderr}");
        assert!(
            asked[0].contains("._acme-challenge.shared.example.test. CNAME "),
            "{asked:?}"
        );
        assert!(asked[0].ends_with(&format!(".{zone}.")), "{asked:?}");
        records.extend(asked);
    }
    assert_ne!(records[0].split(' ').next(), records[1].split(' ').next());
    let port = nsd.port;
    drop(nsd);
    let nsd = Nsd::start(PARENT, &records, port);
    // Both at once.
    let mut clients = [
        Client::spawn_exactly(&args(0)),
        Client::spawn_exactly(&args(1)),
    ];
    for client in &mut clients {
        let status = client.wait_exit(Duration::from_secs(90)).await;
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "{}\n--- pebble\n{}\n--- nsd\n{}",
            client.stderr(),
            pebble.log(),
            nsd.log()
        );
    }
    let log = resolver.log();
    for zone in zones {
        assert!(
            log.contains(&format!("reply from <{zone}.>")),
            "{zone} never asked:\n{log}"
        );
    }
}

/// dns-persist-01 for DNS hosted elsewhere (issue 11, item 6): `account --create --persist`
/// prints the record, it is created once in the names' own zone (NSD), and the certificate is
/// issued with nothing of acme-client's DNS server on the resolver's path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printed_persist_record_hosted_elsewhere_proves_the_names() {
    let names = ["persist.example.test", "*.persist.example.test"];
    let nsd_port = free_port();
    let options = Options {
        qname_minimisation: true,
        tcp_upstream: false,
    };
    // The resolver knows only the names' zone: acme-client's server is never asked.
    let resolver = Resolver::start_stubs(Kind::Unbound, &[(PARENT, nsd_port)], &options);
    let Some(pebble) = Pebble::current_with_dns(free_port(), &resolver.addr()).await else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();
    let mut account = Client::spawn_exactly(&[
        "account".into(),
        "--dir".into(),
        pebble.dir_url(),
        "--ca-bundle".into(),
        crate::harness::pebble_ca().display().to_string(),
        "--out".into(),
        out_dir.into(),
        "--create".into(),
        "--json".into(),
        "--persist".into(),
        names[1].into(),
    ]);
    account.expect_exit(0, Duration::from_secs(30)).await;
    let printed = account.json();
    let record = &printed["persist_records"][0];
    let line = format!(
        "{}. IN TXT \"{}\"",
        record["name"].as_str().unwrap(),
        record["value"].as_str().unwrap()
    );
    assert!(line.contains("; policy=wildcard"), "{line}");
    let _nsd = Nsd::start(PARENT, &[line], nsd_port);
    let extra = ["--no-serve", "--out", out_dir];
    let mut client = Client::spawn_exactly(&args_on(
        &pebble,
        "dnspersist01",
        &names,
        &extra,
        free_port(),
    ));
    let status = client.wait_exit(Duration::from_secs(90)).await;
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "{}\n--- pebble\n{}\n--- resolver\n{}",
        client.stderr(),
        pebble.log(),
        resolver.log()
    );
    assert!(!resolver.log().contains("reply from <test.>"));
    use rustls_pki_types::pem::PemObject as _;
    let leaf =
        rustls_pki_types::CertificateDer::from_pem_file(out.path().join("cert.pem")).unwrap();
    let mut got = san_names(&leaf);
    got.sort();
    assert_eq!(got, ["*.persist.example.test", "persist.example.test"]);
}
