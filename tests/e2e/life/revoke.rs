//! `acme-client revoke` any time after issuance: signed by the account key (default: account.pem
//! beside --cert) or by the certificate's own key (a `jwk` header, RFC 8555 §7.6), with each
//! RFC 5280 reason, checked through Pebble's `/cert-status-by-serial/`; `alreadyRevoked`; a
//! refusal is a failure, here and for `--revoke`; a certificate acme-client revoked renews even
//! without ARI.

use super::*;
use crate::proxy::{Fault, Rule};

/// The five reasons and their CRLReason codes (RFC 5280 §5.3.1).
const REASONS: [(&str, u64); 5] = [
    ("unspecified", 0),
    ("keyCompromise", 1),
    ("affiliationChanged", 3),
    ("superseded", 4),
    ("cessationOfOperation", 5),
];

/// How a revocation is signed.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Signer {
    /// account.pem beside --cert (none given).
    AccountBeside,
    /// `--account-key FILE`, the certificate copied where no account.pem is beside it.
    AccountKey,
    /// `--key key.pem`.
    CertificateKey,
}

/// Issues one certificate per reason, revokes each signed by `signer` (or each signer in
/// turn when `None`), and checks what Pebble recorded; `reasons_recorded` when this Pebble
/// reports the reason (the current one does).
async fn each_reason(pebble: &Pebble, signer: Option<Signer>, reasons_recorded: bool) {
    let proxy = Proxy::start(pebble, vec![]).await;
    let signers = [
        Signer::AccountBeside,
        Signer::CertificateKey,
        Signer::AccountKey,
    ];
    for (i, (reason, code)) in REASONS.iter().enumerate() {
        let signer = signer.unwrap_or(signers[i % signers.len()]);
        let out = tempfile::tempdir().unwrap();
        let name = format!("r{i}.revoke.example.test");
        issue(pebble, &proxy, &[name.as_str()], out.path(), &[]).await;
        let der = leaf(out.path());
        let elsewhere = tempfile::tempdir().unwrap();
        let (cert, key, account) = (
            out.path().join("cert.pem"),
            out.path().join("key.pem"),
            out.path().join("account.pem"),
        );
        let lone = elsewhere.path().join("cert.pem");
        std::fs::copy(&cert, &lone).unwrap();
        let mut args = vec!["--reason", reason];
        match signer {
            Signer::AccountBeside => args.extend(["--cert", cert.to_str().unwrap()]),
            Signer::AccountKey => args.extend([
                "--cert",
                lone.to_str().unwrap(),
                "--account-key",
                account.to_str().unwrap(),
            ]),
            Signer::CertificateKey => args.extend([
                "--cert",
                lone.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ]),
        }
        let revocations = proxy.count("/revoke-cert");
        command("revoke", &proxy.dir_url(), &args, 0).await;

        let record = pebble.cert_record(&der).await;
        assert_eq!(record["Status"], "Revoked", "{signer:?} {reason}: {record}");
        if reasons_recorded {
            let got = record["Reason"].as_u64().unwrap_or(0);
            assert_eq!(got, *code, "{signer:?} --reason {reason}: {record}");
        }
        // The revocation as sent: the reason code, and the key that signed it.
        let sent = proxy
            .exchanges()
            .into_iter()
            .rfind(|e| e.path.contains("/revoke-cert") && e.status == 200)
            .unwrap_or_else(|| panic!("no revocation accepted: {}", proxy.report()));
        assert!(proxy.count("/revoke-cert") > revocations);
        let payload = sent.payload.unwrap();
        assert_eq!(payload["reason"].as_u64().unwrap_or(0), *code, "{payload}");
        let header = sent.protected.unwrap();
        match signer {
            Signer::CertificateKey => assert!(
                header.get("jwk").is_some() && header.get("kid").is_none(),
                "signed by the certificate key, the header carries its jwk: {header}"
            ),
            _ => assert!(
                header.get("kid").is_some() && header.get("jwk").is_none(),
                "signed by the account, the header carries its kid: {header}"
            ),
        }

        // A second time: alreadyRevoked, clearly.
        let again = command("revoke", &proxy.dir_url(), &args, 4).await;
        let stderr = again.stderr();
        assert!(
            stderr.to_lowercase().contains("already revoked"),
            "alreadyRevoked must be said plainly:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_by_account_key_with_each_reason() {
    let pebble = Pebble::start(&[]).await;
    each_reason(&pebble, Some(Signer::AccountBeside), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_by_certificate_key_with_each_reason() {
    let pebble = Pebble::start(&[]).await;
    each_reason(&pebble, Some(Signer::CertificateKey), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_pebble_records_each_revocation_reason() {
    let Some(pebble) = Pebble::current(&[], serde_json::json!({})).await else {
        return;
    };
    each_reason(&pebble, None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_the_ca_refuses_is_a_failure() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let mine = tempfile::tempdir().unwrap();
    issue(&pebble, &proxy, &["mine.example.test"], mine.path(), &[]).await;
    // Another account, which never controlled the name, may not revoke it.
    let other = tempfile::tempdir().unwrap();
    issue(&pebble, &proxy, &["other.example.test"], other.path(), &[]).await;
    let cert = mine.path().join("cert.pem");
    let stranger = other.path().join("account.pem");
    let refused = command(
        "revoke",
        &proxy.dir_url(),
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--account-key",
            stranger.to_str().unwrap(),
        ],
        4,
    )
    .await;
    assert!(
        !refused.stdout().to_lowercase().contains("revoked"),
        "{}",
        refused.stdout()
    );
    assert_eq!(pebble.cert_status(&leaf(mine.path())).await, "Valid");

    // A key that is not the certificate's.
    let wrong_key = other.path().join("key.pem");
    command(
        "revoke",
        &proxy.dir_url(),
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            wrong_key.to_str().unwrap(),
        ],
        4,
    )
    .await;
    assert_eq!(pebble.cert_status(&leaf(mine.path())).await, "Valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_flag_fails_when_the_ca_refuses() {
    let pebble = Pebble::start(&[]).await;
    let body = r#"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"refused by the test proxy","status":403}"#;
    let refuse = Fault::Replace {
        status: 403,
        content_type: "application/problem+json",
        body: body.into(),
    };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/revoke-cert", 0, refuse)]).await;
    let out = tempfile::tempdir().unwrap();
    let client = issue_exit(
        &pebble,
        &proxy,
        &["refused.example.test"],
        out.path(),
        &["--revoke"],
        4,
    )
    .await;
    assert!(proxy.count("/revoke-cert") >= 1, "{}", proxy.report());
    let stderr = client.stderr();
    assert!(stderr.contains("refused by the test proxy"), "{stderr}");
    let stdout = client.stdout();
    assert!(
        !stdout.contains("\"revoked\": true") && !stdout.contains("\"revoked\":true"),
        "reported as revoked: {stdout}"
    );
}

/// Issues for `name`, revokes the certificate with `revoke --cert out/cert.pem` (the account
/// key beside it) plus `extra`, and asserts the next identical run renews it; returns the --out.
pub async fn revoke_then_renew(
    pebble: &Pebble,
    proxy: &Proxy,
    name: &str,
    extra: &[&str],
) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    issue(pebble, proxy, &[name], out.path(), &[]).await;
    let old = leaf(out.path());
    let cert = out.path().join("cert.pem");
    let mut args = vec!["--cert", cert.to_str().unwrap()];
    args.extend_from_slice(extra);
    command("revoke", &proxy.dir_url(), &args, 0).await;
    assert_eq!(pebble.cert_status(&old).await, "Revoked");

    let (renewed, _) = issue(pebble, proxy, &[name], out.path(), &[]).await;
    assert_eq!(renewed["action"], "renewed", "{renewed}");
    assert_eq!(renewed["replaced"], serial_hex(&old).as_str(), "{renewed}");
    assert_eq!(pebble.cert_status(&leaf(out.path())).await, "Valid");
    assert_set_matches(out.path());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificate_renews_without_ari() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    // Pebble 2.4 has no ARI to say so: acme-client remembers that it revoked the certificate.
    let name = "revoked-lifetime.example.test";
    let out = revoke_then_renew(&pebble, &proxy, name, &["--reason", "superseded"]).await;
    let (kept, _) = issue(&pebble, &proxy, &[name], out.path(), &[]).await;
    assert_eq!(kept["action"], "kept", "{kept}");
}
