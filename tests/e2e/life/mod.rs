//! Issue 9, "The certificate's whole life": re-running keeps what is not due, renewal when due
//! (by the lifetime with Debian's Pebble 2.4, by ARI with the current Pebble), `replaces`,
//! profiles, the deploy hook, revocation and account management as commands of their own, and a
//! set of files that a crash never leaves mismatched. Every CA here is a real Pebble, most often
//! behind the recording proxy so that tests see which orders reached it and what they carried.

mod account;
mod ari;
mod crash;
mod hook;
mod keep;
mod profile;
mod revoke;

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use x509_parser::prelude::*;

use crate::harness::*;
use crate::proxy::Proxy;

/// How long one run of the binary may take.
pub const RUN: Duration = Duration::from_secs(60);

/// Pebble's newOrder path.
pub const NEW_ORDER: &str = "/order-plz";

/// A config for the current Pebble with the usual profile and one of 20 seconds.
pub fn profiles() -> serde_json::Value {
    serde_json::json!({"profiles": {
        "default": {"description": "ninety days", "validityPeriod": 7_776_000},
        "shortlived": {"description": "twenty seconds", "validityPeriod": 20},
    }})
}

/// The `--out` arguments for `out`.
fn out_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--json", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    args
}

/// Runs `http01` for `names` into `out` through `proxy` with `--no-serve --json` plus `extra`,
/// asserts it succeeds, and returns its summary and the finished client.
pub async fn issue(
    pebble: &Pebble,
    proxy: &Proxy,
    names: &[&str],
    out: &Path,
    extra: &[&str],
) -> (serde_json::Value, Client) {
    let args = out_args(out, extra);
    let client =
        Client::run_to_success_at(pebble, &proxy.dir_url(), "http01", names, &args, RUN).await;
    assert!(!client.stderr().contains("panicked"), "{}", client.stderr());
    (client.json(), client)
}

/// Like [`issue`], asserting exit `code` instead; returns the finished client.
pub async fn issue_exit(
    pebble: &Pebble,
    proxy: &Proxy,
    names: &[&str],
    out: &Path,
    extra: &[&str],
    code: i32,
) -> Client {
    let mut args = vec!["--no-serve"];
    args.extend(out_args(out, extra));
    let mut client = Client::start_at(pebble, &proxy.dir_url(), "http01", names, &args);
    client.expect_exit(code, RUN).await;
    client
}

/// `--dir` and `--ca-bundle` for a command that only talks to the CA.
pub fn ca_args(dir_url: &str) -> Vec<String> {
    vec![
        "--dir".into(),
        dir_url.into(),
        "--ca-bundle".into(),
        pebble_ca().display().to_string(),
    ]
}

/// Runs `acme-client <command> --dir dir_url --ca-bundle .. <args>` to exit `code`; returns the
/// finished client.
pub async fn command(command: &str, dir_url: &str, args: &[&str], code: i32) -> Client {
    let mut all = vec![command.to_owned()];
    all.extend(ca_args(dir_url));
    all.extend(args.iter().map(|a| a.to_string()));
    let mut client = Client::spawn_exactly(&all);
    client.expect_exit(code, RUN).await;
    client
}

/// The certificate in `out/cert.pem`.
pub fn leaf(out: &Path) -> CertificateDer<'static> {
    let path = out.join("cert.pem");
    CertificateDer::from_pem_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PEM text of `out/cert.pem`.
pub fn leaf_pem(out: &Path) -> String {
    std::fs::read_to_string(out.join("cert.pem")).unwrap()
}

/// The serial of `out/cert.pem` in lowercase hex, as `--json` and Pebble spell it.
pub fn serial(out: &Path) -> String {
    serial_hex(&leaf(out))
}

/// The ARI CertID of a certificate (RFC 9773 §4.1): base64url of the authority key identifier's
/// keyIdentifier, a dot, base64url of the serial number's DER content bytes.
pub fn cert_id(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.clone(),
            _ => None,
        })
        .expect("the certificate has an authority key identifier");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}",
        b64.encode(aki.0),
        b64.encode(cert.tbs_certificate.raw_serial())
    )
}

/// notBefore and notAfter of a certificate.
pub fn validity(der: &[u8]) -> (SystemTime, SystemTime) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let at = |t: ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap())
    };
    (
        at(cert.validity().not_before),
        at(cert.validity().not_after),
    )
}

/// An RFC 3339 time (as in `renewal.due`).
pub fn rfc3339(text: &str) -> SystemTime {
    let t = ::time::OffsetDateTime::parse(text, &::time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339: {text:?}: {e}"));
    SystemTime::from(t)
}

/// `at` in RFC 3339.
pub fn to_rfc3339(at: SystemTime) -> String {
    ::time::OffsetDateTime::from(at)
        .format(&::time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// When the summary says the certificate now in --out is next due, after asserting the
/// `renewal` object has its three fields and names `source`.
pub fn due(summary: &serde_json::Value, source: &str) -> SystemTime {
    let renewal = &summary["renewal"];
    assert_eq!(renewal["source"], source, "{summary}");
    assert!(
        renewal["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "renewal.reason: {summary}"
    );
    rfc3339(
        renewal["due"]
            .as_str()
            .unwrap_or_else(|| panic!("{summary}")),
    )
}

/// Asserts `out` holds a whole set: key.pem and cert.pem belong together, fullchain.pem is
/// cert.pem then chain.pem, every PEM file uses LF line endings, and the key is 0600 or
/// stricter.
pub fn assert_set_matches(out: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", out.join(name).display()))
    };
    let (key, cert, chain, fullchain) = (
        read("key.pem"),
        read("cert.pem"),
        read("chain.pem"),
        read("fullchain.pem"),
    );
    for (name, text) in [
        ("key.pem", &key),
        ("cert.pem", &cert),
        ("chain.pem", &chain),
        ("fullchain.pem", &fullchain),
    ] {
        assert!(!text.contains('\r'), "{name} has CR line endings");
    }
    let pair = rcgen::KeyPair::from_pem(&key).expect("key.pem is a private key");
    let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    let (_, parsed) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        parsed.public_key().subject_public_key.data.as_ref(),
        pair.public_key_raw(),
        "key.pem and cert.pem do not belong together (cert serial {})",
        serial_hex(&der)
    );
    let certs = |text: &str| -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(text.as_bytes())
            .map(Result::unwrap)
            .collect()
    };
    let mut want = certs(&cert);
    want.extend(certs(&chain));
    assert_eq!(
        certs(&fullchain),
        want,
        "fullchain.pem is not cert.pem + chain.pem"
    );
    let mode = std::fs::metadata(out.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "key.pem has mode {:o}", mode & 0o777);
}

/// The payloads of the orders the proxy saw created (newOrder answered 201), from the
/// `from`th on. Refused attempts (a badNonce, `alreadyReplaced`) are left out.
pub fn new_orders(proxy: &Proxy, from: usize) -> Vec<serde_json::Value> {
    proxy
        .exchanges()
        .into_iter()
        .filter(|e| e.path == NEW_ORDER && e.status == 201)
        .filter_map(|e| e.payload)
        .skip(from)
        .collect()
}
