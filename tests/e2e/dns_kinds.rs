//! dns-account-01 and dns-persist-01 (issue 11, items 5 and 6): against the current Pebble, which
//! offers both, and Debian's 2.4, which offers neither and must get a clear refusal.

use std::time::Duration;

use crate::harness::*;

/// The names of one order: plain names and wildcards, two sharing a TXT name.
const NAMES: &[&str] = &[
    "kinds.example.test",
    "*.kinds.example.test",
    "other.example.test",
];

async fn issue_with(challenge: &str) -> Option<(Pebble, Client)> {
    let pebble = Pebble::current(&[], serde_json::json!({})).await?;
    let client = Client::run_to_success(
        &pebble,
        challenge,
        NAMES,
        &["--json", "--timeout", "60"],
        Duration::from_secs(70),
    )
    .await;
    // The summary of the new challenges is what the schema documents.
    let summary = crate::summary::assert_valid("summary.schema.json", &client.stdout());
    let kind = challenge
        .replace("dnsaccount01", "dns-account-01")
        .replace("dnspersist01", "dns-persist-01")
        .replace("dns01", "dns-01");
    assert_eq!(summary["challenge"], kind.as_str());
    let mut got = san_names(&leaf_of(&client));
    got.sort();
    let mut want: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
    Some((pebble, client))
}

/// The account's dns-account-01 label, computed here as the draft spells it (§3.1): base32 of the
/// first 10 bytes of SHA-256(account URL), lowercase.
fn label_of(account_url: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, account_url.as_bytes());
    let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
    let bits: Vec<u8> = digest.as_ref()[..10]
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    bits.chunks(5)
        .map(|c| alphabet[c.iter().fold(0usize, |a, b| a * 2 + usize::from(*b))] as char)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_account01_names_and_wildcards() {
    // Pebble looks the values up under the label it computes from the account URL: issuance
    // proves ours is the same.
    issue_with("dnsaccount01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_persist01_names_and_wildcards() {
    issue_with("dnspersist01").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_prints_the_label_and_the_persist_records() {
    let Some((pebble, client)) = issue_with("dns01").await else {
        return;
    };
    let account = client.json()["account_url"].as_str().unwrap().to_owned();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acme-client"))
        .args(["account", "--dir", &pebble.dir_url(), "--ca-bundle"])
        .arg(pebble_ca())
        .arg("--out")
        .arg(client.out.path())
        .args([
            "--json",
            "--persist",
            "a.example.test",
            "--persist",
            "*.b.example.test",
        ])
        .args(["--persist-until", "2030-01-01T00:00:00Z"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["url"], account.as_str());
    assert_eq!(
        json["dns_account_label"],
        format!("_{}", label_of(&account))
    );
    let records = json["persist_records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{json}");
    // Pebble's issuer domain is its caaIdentities' first entry.
    assert_eq!(records[0]["name"], "_validation-persist.a.example.test");
    assert_eq!(
        records[0]["value"],
        format!("pebble.letsencrypt.org; accounturi={account}; persistUntil=1893456000")
    );
    assert_eq!(records[1]["name"], "_validation-persist.b.example.test");
    assert_eq!(
        records[1]["value"],
        format!(
            "pebble.letsencrypt.org; accounturi={account}; policy=wildcard; persistUntil=1893456000"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_without_the_new_challenges_is_refused_clearly() {
    // Debian's Pebble 2.4 offers neither challenge.
    let pebble = Pebble::start(&[]).await;
    for challenge in ["dnsaccount01", "dnspersist01"] {
        let mut client = Client::start(&pebble, challenge, &["old.example.test"], &["--no-serve"]);
        let stderr = client.expect_exit(4, Duration::from_secs(30)).await;
        let kind = match challenge {
            "dnsaccount01" => "dns-account-01",
            _ => "dns-persist-01",
        };
        assert!(
            stderr.contains(&format!("offers no {kind} challenge")),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_without_caa_identities_needs_the_issuer_named() {
    // Debian's Pebble 2.4 lists no caaIdentities in its directory.
    let pebble = Pebble::start(&[]).await;
    let out = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args: Vec<String> = ["account", "--dir", &pebble.dir_url(), "--ca-bundle"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(pebble_ca().display().to_string());
        args.extend([
            "--out".into(),
            out.path().display().to_string(),
            "--create".into(),
        ]);
        args.extend(["--persist".into(), "*.issuer.example.test".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        Client::spawn_exactly(&args)
    };
    let mut refused = run(&[]);
    let stderr = refused.expect_exit(1, Duration::from_secs(30)).await;
    assert!(
        error_line(&stderr).contains("lists no caaIdentities"),
        "{stderr}"
    );
    assert!(
        hint_line(&stderr).is_some_and(|h| h.contains("--persist-issuer")),
        "{stderr}"
    );
    let mut named = run(&["--persist-issuer", "ca.example", "--json"]);
    named.expect_exit(0, Duration::from_secs(30)).await;
    let record = &named.json()["persist_records"][0];
    assert_eq!(record["name"], "_validation-persist.issuer.example.test");
    let value = record["value"].as_str().unwrap();
    assert!(
        value.starts_with("ca.example; accounturi=https://"),
        "{value}"
    );
    assert!(value.ends_with("; policy=wildcard"), "{value}");
}
