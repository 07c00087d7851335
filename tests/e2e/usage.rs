//! Usage errors: exit 2, one clear line on stderr, no panic, and no network traffic at all
//! (a listener stands at the --dir address and must see no connection).

use std::net::TcpListener;
use std::process::Command;

use crate::harness::*;

fn run(args: &[&str]) -> (Option<i32>, String, usize) {
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let dir = format!(
        "https://127.0.0.1:{}/dir",
        trap.local_addr().unwrap().port()
    );
    let args: Vec<String> = args.iter().map(|a| a.replace("DIR", &dir)).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_acme-client"))
        .args(&args)
        .env_remove("ACME_DIR")
        .env_remove("ACME_CA_BUNDLE")
        .output()
        .unwrap();
    let mut connections = 0;
    while trap.accept().is_ok() {
        connections += 1;
    }
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        connections,
    )
}

fn refused(args: &[&str], expect: &str) {
    let (code, stderr, connections) = run(args);
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    // One error line, at most one hint line under it, and nothing else.
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert!(
        lines[0].starts_with("acme-client: error: ")
            && (lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: "))),
        "{args:?}: one error line and at most one hint expected, got:\n{stderr}"
    );
    assert!(
        lines[0].contains(expect),
        "{args:?}: {stderr:?} should mention {expect:?} in the error"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        connections, 0,
        "{args:?}: a usage error must not touch the network"
    );
}

const OK: [&str; 4] = ["--dir", "DIR", "--record", "127.0.0.1"];

fn with(challenge: &str, more: &[&'static str]) -> Vec<&'static str> {
    let challenge: &'static str = Box::leak(challenge.to_owned().into_boxed_str());
    let mut v = vec![challenge];
    v.extend(OK);
    v.extend(more);
    v
}

#[test]
fn unknown_challenge() {
    refused(
        &with("tls99", &["--domain", "a.test"]),
        "unrecognized subcommand 'tls99'",
    );
}

#[test]
fn no_domain() {
    refused(&with("http01", &[]), "no name given: add --domain NAME");
}

#[test]
fn no_dir() {
    refused(
        &["http01", "--record", "127.0.0.1", "--domain", "a.test"],
        "--dir <URL|NAME>",
    );
}

#[test]
fn record_not_ipv4() {
    for bad in ["300.1.2.3", "::1", "example.test", ""] {
        refused(
            &[
                "http01", "--dir", "DIR", "--record", bad, "--domain", "a.test",
            ],
            "--record <IPv4>",
        );
    }
}

#[test]
fn invalid_names() {
    for (name, why) in [
        ("under_score.test", "'_'"),
        ("localhost", "single label"),
        ("a..test", "empty label"),
        ("10.0.0.1", "IP address"),
        ("-x.test", "hyphen"),
    ] {
        refused(&with("dns01", &["--domain", name]), why);
    }
}

#[test]
fn wildcard_with_http01() {
    refused(
        &with("http01", &["--domain", "*.example.test"]),
        "only a DNS challenge can prove",
    );
}

#[test]
fn dir_not_https() {
    refused(
        &[
            "http01",
            "--dir",
            "http://127.0.0.1:14000/dir",
            "--record",
            "127.0.0.1",
            "--domain",
            "a.test",
        ],
        "must be an https:// URL",
    );
}

#[test]
fn ca_bundle_missing_or_not_pem() {
    refused(
        &with(
            "http01",
            &["--domain", "a.test", "--ca-bundle", "/nonexistent/ca.pem"],
        ),
        "cannot read it",
    );
    let junk = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(junk.path(), "hello").unwrap();
    let path: &'static str = Box::leak(junk.path().display().to_string().into_boxed_str());
    refused(
        &with("http01", &["--domain", "a.test", "--ca-bundle", path]),
        "no CERTIFICATE block",
    );
}

#[test]
fn more_than_100_names() {
    let names: Vec<String> = (0..101).map(|i| format!("n{i}.example.test")).collect();
    let mut args = with("dns01", &[]);
    for n in &names {
        args.push("--domain");
        args.push(Box::leak(n.clone().into_boxed_str()));
    }
    refused(&args, "at most 100");
}

#[test]
fn wrong_values_for_every_flag() {
    for (flag, value, expect) in [
        ("--dns-port", "70000", "--dns-port <PORT>"),
        ("--http-port", "http", "--http-port <PORT>"),
        ("--https-port", "-1", "unexpected argument '-1'"),
        ("--shutdown-port", "", "--shutdown-port <PORT>"),
        ("--bind", "localhost", "--bind <ADDR>"),
        ("--shutdown-bind", "1.2.3", "--shutdown-bind <ADDR>"),
        ("--timeout", "soon", "--timeout <SECS>"),
        ("--timeout", "100000", "--timeout <SECS>"),
    ] {
        refused(
            &with("http01", &["--domain", "a.test", flag, value]),
            expect,
        );
    }
    refused(
        &with("http01", &["--domain", "a.test", "--no-such-flag"]),
        "--no-such-flag",
    );
    refused(
        &with("http01", &["--domain", "a.test", "-v", "-q"]),
        "cannot be used with",
    );
}

#[test]
fn timeout_zero() {
    refused(
        &with("http01", &["--domain", "a.test", "--timeout", "0"]),
        "--timeout <SECS>",
    );
}

#[test]
fn help_is_not_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_acme-client"))
        .args(["http01", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--dir",
        "--record",
        "--domain",
        "--revoke",
        "--ca-bundle",
        "--no-serve",
        "--json",
        "--timeout",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    let _ = repo();
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn short_d_is_domain() {
    for challenge in ["http01", "dns01", "tlsalpn01"] {
        refused(
            &with(challenge, &["-d", "a.test", "-d", "under_score.test"]),
            "--domain \"under_score.test\" is not a valid DNS name",
        );
    }
    // -d and --domain fill one list: the refusal names what both gave.
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec!["other.test".to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), csr.pem().unwrap()).unwrap();
    let csr = leak(file.path().display().to_string());
    refused(
        &with(
            "http01",
            &[
                "-d", "a.test", "--domain", "b.test", "-d", "c.test", "--csr", csr,
            ],
        ),
        "--domain names (a.test, b.test, c.test) differ from the names in --csr (other.test)",
    );
}

#[test]
fn clap_errors_take_the_one_format_with_a_hint() {
    let (code, stderr, _) = run(&with("http01", &["--domain", "a.test", "--forc"]));
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "acme-client: error: unexpected argument '--forc' found\n\
         hint: a similar argument exists: '--force'\n"
    );
    // --color always colours the error even into this pipe; the words stay the same.
    let (code, stderr, _) = run(&with(
        "http01",
        &["--domain", "a.test", "--color", "always", "--forc"],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("acme-client: \x1b[1;31merror:\x1b[0m unexpected argument '--forc'"),
        "{stderr:?}"
    );
    refused(
        &with("http01", &["--domain", "a.test", "--color", "sometimes"]),
        "--color <WHEN>",
    );
}

#[test]
fn email_not_an_address() {
    // Were an address let through, the run would stay within a directory of its own.
    let out = tempfile::tempdir().unwrap();
    let out = leak(out.path().display().to_string());
    for (email, expect) in [
        ("admin", "--email \"admin\" is not an email address"),
        ("a b@example.test", "it contains a space"),
        (
            "a@example.test,b@example.test",
            "it contains a list separator",
        ),
        ("a@b@example.test", "one @"),
        ("mailto:a@example.test", "give the address alone"),
    ] {
        let email = leak(email.to_owned());
        refused(
            &with(
                "http01",
                &[
                    "--domain",
                    "a.test",
                    "--email",
                    email,
                    "--out",
                    out,
                    "--no-serve",
                    "--timeout",
                    "1",
                ],
            ),
            expect,
        );
        refused(
            &["account", "--dir", "DIR", "--out", out, "--email", email],
            expect,
        );
    }
    refused(
        &with(
            "dns01",
            &["-d", "a.test", "--contact", "admin@example.test"],
        ),
        "or use --email admin@example.test",
    );
}

#[test]
fn dir_preset_misspelled() {
    for (args, expect) in [
        (
            &["http01", "--dir", "letsencrypt-stagign", "-d", "a.test"][..],
            "--dir \"letsencrypt-stagign\" is not a preset name or a URL; did you mean `letsencrypt-staging`?",
        ),
        (
            &["revoke", "--dir", "pebbel", "--cert", "cert.pem"],
            "did you mean `pebble`?",
        ),
        (
            &["account", "--dir", "localhost:14000/dir"],
            "did you mean https://localhost:14000/dir?",
        ),
        (
            &["dns01", "--dir", "nonsense", "-d", "a.test"],
            "--dir \"nonsense\" is neither a URL nor a preset name; give the CA's directory URL \
             (https://...) or one of: letsencrypt, letsencrypt-staging, zerossl,",
        ),
    ] {
        refused(args, expect);
        assert!(!run(args).1.contains("relative URL"));
    }
}

#[test]
fn a_usage_error_from_validation_has_the_same_format() {
    let (code, stderr, _) = run(&with("http01", &[]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.starts_with("acme-client: error: no name given"),
        "{stderr}"
    );
}
