//! Every challenge, key and CA option against the real Pebble: tls-alpn-01, IP identifiers, key
//! types, account keys and reuse, External Account Binding, contacts, preferred and long chains,
//! the pebble directory preset, and the user's own CSR.

use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::harness::*;

/// Runs to completion with `--no-serve --json` and returns the summary and the client.
async fn obtain(
    pebble: &Pebble,
    challenge: &str,
    names: &[&str],
    extra: &[&str],
) -> (serde_json::Value, Client) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let client =
        Client::run_to_success(pebble, challenge, names, &args, Duration::from_secs(60)).await;
    let summary = serde_json::from_str(client.stdout().trim()).unwrap();
    (summary, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_then_the_same_port_serves_the_certificate() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let names = ["alpn.example.test", "alpn2.example.test"];
    let mut client = Client::start(&pebble, "tlsalpn01", &names, &[]);
    // Pebble validates on its tlsPort, which is the client's --https-port.
    assert_eq!(client.https_port, pebble.tls_port);
    client.wait_serving(&pebble).await;
    let served = fetch_served(client.https_port, "alpn2.example.test", pebble.root().await).await;
    let mut sans = san_names(&served.chain[0]);
    sans.sort();
    assert_eq!(sans, names);
    assert!(client.stderr().contains("every authorization is valid"));
    assert!(
        http_get(client.shutdown_port, "/shutdown")
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    assert_eq!(
        client
            .wait_exit(Duration::from_secs(2))
            .await
            .map(|s| s.code()),
        Some(Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_identifiers_with_http_01() {
    let pebble = Pebble::start(&[]).await;
    let (summary, client) = obtain(&pebble, "http01", &["127.0.0.1", "ip.example.test"], &[]).await;
    let mut sans = san_names(&leaf_of(&client));
    sans.sort();
    assert_eq!(sans, ["127.0.0.1", "ip.example.test"]);
    assert_eq!(
        summary["names"],
        serde_json::json!(["ip.example.test", "127.0.0.1"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_identifier_with_http_01() {
    let pebble = Pebble::start(&[]).await;
    // Listen on every address so Pebble reaches us at ::1 (and its DNS queries on 127.0.0.1).
    let (_, client) = obtain(&pebble, "http01", &["::1"], &["--bind", "::"]).await;
    assert_eq!(san_names(&leaf_of(&client)), ["::1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_identifier_with_tls_alpn_01() {
    let pebble = Pebble::start(&[]).await;
    let (_, client) = obtain(&pebble, "tlsalpn01", &["127.0.0.1"], &[]).await;
    assert_eq!(san_names(&leaf_of(&client)), ["127.0.0.1"]);
}

/// The leaf's key: ("EC", bits) or ("RSA", bits).
fn key_of(der: &[u8]) -> (&'static str, usize) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    match cert.public_key().parsed().unwrap() {
        PublicKey::EC(ec) => ("EC", ec.key_size()),
        PublicKey::RSA(rsa) => ("RSA", rsa.key_size()),
        other => panic!("unexpected key {other:?}"),
    }
}

async fn key_type(kind: &str, want: (&'static str, usize)) {
    let pebble = Pebble::start(&[]).await;
    let (_, client) = obtain(
        &pebble,
        "dns01",
        &["key.example.test"],
        &["--key-type", kind],
    )
    .await;
    assert_eq!(key_of(&leaf_of(&client)), want, "--key-type {kind}");
    let key = std::fs::read_to_string(client.out.path().join("key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_type_ec256() {
    key_type("ec256", ("EC", 256)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_type_ec384() {
    key_type("ec384", ("EC", 384)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_type_rsa2048() {
    key_type("rsa2048", ("RSA", 2048)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_type_rsa3072() {
    key_type("rsa3072", ("RSA", 3072)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_type_rsa4096() {
    key_type("rsa4096", ("RSA", 4096)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_account_key_type() {
    let pebble = Pebble::start(&[]).await;
    // DER of the algorithm OIDs in the PKCS#8 key: P-256, P-384, rsaEncryption.
    let p256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let p384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
    let rsa: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    for (kind, alg, oid) in [
        ("es256", "ES256", p256),
        ("es384", "ES384", p384),
        ("rs256", "RS256", rsa),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("account.pem");
        let (_, client) = obtain(
            &pebble,
            "http01",
            &["acct.example.test"],
            &[
                "--account-key",
                path.to_str().unwrap(),
                "--account-key-type",
                kind,
            ],
        )
        .await;
        assert!(
            client.stderr().contains(&format!(
                "new account key written path={} alg={alg}",
                path.display()
            )),
            "{kind}: {}",
            client.stderr()
        );
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(&path).unwrap();
        let der = der.secret_pkcs8_der();
        assert!(
            der.windows(oid.len()).any(|w| w == oid),
            "{kind}: wrong key algorithm in the file"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_key_file_is_reused_and_authorizations_too() {
    use std::os::unix::fs::PermissionsExt as _;
    // Pebble reuses every valid authorization of the same account.
    let pebble = Pebble::start(&[("PEBBLE_AUTHZREUSE", "100")]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/account.pem");
    let key = ["--account-key", path.to_str().unwrap()];
    let (first, _) = obtain(&pebble, "http01", &["reuse.example.test"], &key).await;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(first["reused_authorizations"], 0);
    let (second, client) = obtain(&pebble, "http01", &["reuse.example.test"], &key).await;
    assert_eq!(
        second["account_url"], first["account_url"],
        "the same account"
    );
    assert!(
        client.stderr().contains("existing account found"),
        "{}",
        client.stderr()
    );
    assert_eq!(
        second["reused_authorizations"], 1,
        "the valid authorization is reused, not answered again"
    );
    assert!(!client.stderr().contains("challenge answered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_without_an_account_creates_one() {
    let pebble = Pebble::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("account.pem");
    std::fs::write(
        &path,
        acme_client::acme::jws::AccountKey::generate(acme_client::acme::jws::AccountKeyType::Es256)
            .unwrap()
            .pkcs8_pem(),
    )
    .unwrap();
    let (_, client) = obtain(
        &pebble,
        "http01",
        &["new.example.test"],
        &["--account-key", path.to_str().unwrap()],
    )
    .await;
    assert!(
        client
            .stderr()
            .contains("the CA knows no account for this key"),
        "{}",
        client.stderr()
    );
}

const EAB_KID: &str = "kid-1";
const EAB_KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

async fn eab_pebble() -> Pebble {
    Pebble::start_with(
        &[],
        serde_json::json!({
            "externalAccountBindingRequired": true,
            "externalAccountMACKeys": {EAB_KID: EAB_KEY},
        }),
        None,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_account_binding() {
    let pebble = eab_pebble().await;
    let (summary, _) = obtain(
        &pebble,
        "http01",
        &["eab.example.test"],
        &[
            "--eab-kid",
            EAB_KID,
            "--eab-hmac-key",
            EAB_KEY,
            "--contact",
            "mailto:admin@example.com",
        ],
    )
    .await;
    assert_eq!(
        summary["terms_of_service"],
        "data:text/plain,Do%20what%20thou%20wilt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_external_account_binding() {
    let pebble = eab_pebble().await;
    for extra in [
        vec!["--no-serve"],
        vec![
            "--no-serve",
            "--eab-kid",
            EAB_KID,
            "--eab-hmac-key",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ],
        vec![
            "--no-serve",
            "--eab-kid",
            "kid-unknown",
            "--eab-hmac-key",
            EAB_KEY,
        ],
    ] {
        let mut client = Client::start(&pebble, "http01", &["eab.example.test"], &extra);
        let status = client.wait_exit(Duration::from_secs(30)).await;
        let stderr = client.stderr();
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(4)),
            "{extra:?}: {stderr}"
        );
        let last = error_line(&stderr);
        assert!(
            last.contains(
                "finding or creating the account: the CA refused: urn:ietf:params:acme:error:"
            ),
            "{last}"
        );
        if extra.len() == 1 {
            // The CA's problem in the error, the flags to pass as its hint.
            assert!(last.contains("externalAccountRequired"), "{last}");
            let hint = hint_line(&stderr).unwrap_or_default();
            assert!(hint.contains("--eab-kid"), "{stderr}");
        }
    }
}

/// The subject CN of a PEM certificate.
fn subject_cn(pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_chain_is_chosen_among_alternates() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[("PEBBLE_ALTERNATE_ROOTS", "2")]).await;
    let alt_root_pem = pebble.mgmt("/roots/2").await;
    let alt_cn = subject_cn(&alt_root_pem);
    let mut client = Client::start(
        &pebble,
        "http01",
        &["chain.example.test"],
        &["--json", "--preferred-chain", &alt_cn],
    );
    client.wait_serving(&pebble).await;
    let summary: serde_json::Value =
        serde_json::from_str(client.stdout_when_written().await.trim()).unwrap();
    assert_eq!(summary["chain_to"], alt_cn.as_str());
    // What is served verifies against that alternate root.
    let alt_root = CertificateDer::from_pem_slice(alt_root_pem.as_bytes()).unwrap();
    let served = fetch_served(client.https_port, "chain.example.test", alt_root).await;
    assert_eq!(served.chain.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_chain_falls_back_to_the_default() {
    let pebble = Pebble::start(&[("PEBBLE_ALTERNATE_ROOTS", "1")]).await;
    let default_cn = subject_cn(&pebble.mgmt("/roots/0").await);
    let (summary, client) = obtain(
        &pebble,
        "http01",
        &["fallback.example.test"],
        &["--preferred-chain", "No Such Root CA"],
    )
    .await;
    assert_eq!(summary["chain_to"], default_cn.as_str());
    assert!(
        client.stderr().contains("keeping the default chain"),
        "{}",
        client.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_chains_are_served_whole() {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[("PEBBLE_CHAIN_LENGTH", "3")]).await;
    // The default chain is leaf + 1 intermediate; ask for a longer one.
    let mut client = Client::start(&pebble, "dns01", &["long.example.test"], &[]);
    client.wait_serving(&pebble).await;
    let served = fetch_served(client.https_port, "long.example.test", pebble.root().await).await;
    // PEBBLE_CHAIN_LENGTH=3: three intermediates between the leaf and the root.
    assert_eq!(served.chain.len(), 4, "the leaf and every intermediate");
    let chain = CertificateDer::pem_file_iter(client.out.path().join("chain.pem"))
        .unwrap()
        .count();
    assert_eq!(chain, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_directory_preset() {
    if tcp_in_use(14000) {
        panic!(
            "port 14000 is taken (a Pebble from pebble/start?): the pebble preset test needs it; run pebble/stop"
        );
    }
    let pebble = Pebble::start_with(&[], serde_json::json!({}), Some(14000)).await;
    let args = Client::args(
        &pebble,
        "pebble",
        "http01",
        &["preset.example.test"],
        &["--no-serve", "--json"],
    );
    let mut client = Client::spawn(&args);
    client.expect_exit(0, Duration::from_secs(60)).await;
    let summary: serde_json::Value = serde_json::from_str(client.stdout().trim()).unwrap();
    assert!(
        summary["account_url"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:14000/"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_csr() {
    let pebble = Pebble::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![
        "csr.example.test".to_string(),
        "www.csr.example.test".to_string(),
    ])
    .unwrap();
    let csr = params.serialize_request(&key).unwrap();
    let path = dir.path().join("request.pem");
    std::fs::write(&path, csr.pem().unwrap()).unwrap();

    let (summary, client) =
        obtain(&pebble, "http01", &[], &["--csr", path.to_str().unwrap()]).await;
    assert!(
        !client.out.path().join("key.pem").exists(),
        "no key file with --csr"
    );
    assert!(summary["files"]["key"].is_null());
    let leaf = leaf_of(&client);
    let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    let mut sans = san_names(&leaf);
    sans.sort();
    assert_eq!(sans, ["csr.example.test", "www.csr.example.test"]);

    // --domain must agree with the CSR.
    let mut mismatch = Client::start(
        &pebble,
        "http01",
        &["other.example.test"],
        &["--no-serve", "--csr", path.to_str().unwrap()],
    );
    mismatch.expect_exit(2, Duration::from_secs(10)).await;
    assert!(mismatch.stderr().contains("differ from the names in --csr"));
}
