//! `acme-client account`: show the account, update its contacts, roll its key over (RFC 8555
//! §7.3.5, the file replaced only once the CA agreed) and deactivate it (§7.3.6).

use std::os::unix::fs::PermissionsExt as _;

use super::*;

// These tests count requests (one keyChange, one deactivation): Pebble with EXACT_COUNTS.

/// Runs `account --out out --json` plus `args` to exit `code`; returns the finished client.
async fn account(proxy: &Proxy, out: &Path, args: &[&str], code: i32) -> Client {
    let mut all = vec!["--out", out.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    command("account", &proxy.dir_url(), &all, code).await
}

/// Issues into a fresh --out; returns it and the account URL the summary names.
async fn with_account(pebble: &Pebble, proxy: &Proxy, name: &str) -> (tempfile::TempDir, String) {
    let out = tempfile::tempdir().unwrap();
    let (summary, _) = issue(pebble, proxy, &[name], out.path(), &[]).await;
    let url = summary["account_url"].as_str().unwrap().to_owned();
    (out, url)
}

/// The public key of a PEM private key file.
fn public_key(path: &Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(path).unwrap();
    rcgen::KeyPair::from_pem(&pem)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .public_key_raw()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_is_shown_and_its_contacts_updated() {
    let pebble = Pebble::start(EXACT_COUNTS).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let (out, url) = with_account(&pebble, &proxy, "show.example.test").await;

    let shown = account(&proxy, out.path(), &[], 0).await.json();
    assert_eq!(shown["url"], url.as_str(), "{shown}");
    assert_eq!(shown["status"], "valid", "{shown}");
    assert!(shown["contact"].is_array(), "{shown}");
    let key = shown["key"].as_str().unwrap_or_else(|| panic!("{shown}"));
    assert!(key.ends_with("account.pem"), "{shown}");

    let contacts = ["mailto:ops@example.test", "mailto:admin@example.test"];
    let updated = account(
        &proxy,
        out.path(),
        &["--contact", contacts[0], "--contact", contacts[1]],
        0,
    )
    .await
    .json();
    assert_eq!(updated["contact"], serde_json::json!(contacts), "{updated}");
    assert_eq!(updated["url"], url.as_str());
    // The CA keeps them: shown again without --contact.
    let again = account(&proxy, out.path(), &[], 0).await.json();
    assert_eq!(again["contact"], serde_json::json!(contacts), "{again}");

    // The human form names the URL, the status and the contacts.
    let human = command(
        "account",
        &proxy.dir_url(),
        &["--out", out.path().to_str().unwrap()],
        0,
    )
    .await
    .stdout();
    for want in [url.as_str(), "valid", contacts[0], contacts[1]] {
        assert!(human.contains(want), "{want} missing:\n{human}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollover_then_issuance_with_the_new_key() {
    let pebble = Pebble::start(EXACT_COUNTS).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let (out, url) = with_account(&pebble, &proxy, "roll.example.test").await;
    let account_pem = out.path().join("account.pem");
    let old = public_key(&account_pem);

    let keys = tempfile::tempdir().unwrap();
    let new_key = keys.path().join("new.pem");
    let rolled = account(
        &proxy,
        out.path(),
        &["--rollover", new_key.to_str().unwrap()],
        0,
    )
    .await
    .json();
    assert_eq!(rolled["url"], url.as_str(), "{rolled}");
    assert_eq!(
        proxy.count("/rollover-account-key"),
        1,
        "{}",
        proxy.report()
    );
    // NEWKEY was generated, only its owner reads it, and it is now the account key.
    let mode = std::fs::metadata(&new_key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", new_key.display());
    let new = public_key(&new_key);
    assert_ne!(new, old);
    assert_eq!(
        public_key(&account_pem),
        new,
        "account.pem must hold the new key"
    );
    let mode = std::fs::metadata(&account_pem)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode & 0o077, 0, "account.pem has mode {mode:o}");

    // Issuance with the account key file finds the same account.
    let (summary, _) = issue(
        &pebble,
        &proxy,
        &["roll2.example.test"],
        out.path(),
        &["--force"],
    )
    .await;
    assert_eq!(summary["account"], "reused", "{summary}");
    assert_eq!(summary["account_url"], url.as_str(), "{summary}");
    let shown = account(&proxy, out.path(), &[], 0).await.json();
    assert_eq!(shown["url"], url.as_str(), "{shown}");
    assert_eq!(shown["status"], "valid", "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollover_the_ca_refuses_keeps_the_old_key() {
    let pebble = Pebble::start(EXACT_COUNTS).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let (out, url) = with_account(&pebble, &proxy, "noroll.example.test").await;
    // The key of another account: the CA refuses to move this account onto it (RFC 8555
    // §7.3.5 says 409 Conflict; Pebble 2.4 answers 500).
    let (other, _) = with_account(&pebble, &proxy, "other.noroll.example.test").await;
    let taken = other.path().join("account.pem");
    let account_pem = out.path().join("account.pem");
    let before = std::fs::read(&account_pem).unwrap();
    let refused = account(
        &proxy,
        out.path(),
        &["--rollover", taken.to_str().unwrap()],
        4,
    )
    .await;
    assert!(
        proxy
            .exchanges()
            .iter()
            .any(|e| e.path.contains("/rollover-account-key") && e.status >= 400),
        "the CA did not refuse: {:?}\n{}",
        proxy.exchanges(),
        refused.stderr()
    );
    let stderr = refused.stderr();
    let last = error_line(&stderr);
    assert!(last.contains("already in use"), "{last}");
    assert_eq!(
        std::fs::read(&account_pem).unwrap(),
        before,
        "account.pem replaced though the CA refused"
    );
    // The old key still speaks for the account.
    let shown = account(&proxy, out.path(), &[], 0).await.json();
    assert_eq!(shown["url"], url.as_str(), "{shown}");
    assert_eq!(shown["status"], "valid", "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivate_asks_then_deactivates_and_the_ca_refuses_afterwards() {
    let pebble = Pebble::start(EXACT_COUNTS).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let (out, url) = with_account(&pebble, &proxy, "gone.example.test").await;

    // No terminal and no --yes: refused, nothing asked of the CA.
    let deactivations = || {
        proxy
            .payloads("/my-account/")
            .iter()
            .filter(|p| p["status"] == "deactivated")
            .count()
    };
    account(&proxy, out.path(), &["--deactivate"], 2).await;
    assert_eq!(deactivations(), 0, "{}", proxy.report());
    let shown = account(&proxy, out.path(), &[], 0).await.json();
    assert_eq!(shown["status"], "valid", "{shown}");

    let gone = account(&proxy, out.path(), &["--deactivate", "--yes"], 0).await;
    assert_eq!(deactivations(), 1, "{}", proxy.report());
    assert_eq!(gone.json()["status"], "deactivated", "{}", gone.stdout());

    // Afterwards the account shows as deactivated, or the CA refuses to show it.
    let mut after = Client::spawn_exactly(
        &["account", "--out", out.path().to_str().unwrap(), "--json"]
            .iter()
            .map(|s| s.to_string())
            .chain(ca_args(&proxy.dir_url()))
            .collect::<Vec<_>>(),
    );
    match after.wait_exit(RUN).await.and_then(|s| s.code()) {
        Some(0) => {
            let shown = after.json();
            assert_eq!(shown["status"], "deactivated", "{shown}");
            assert_eq!(shown["url"], url.as_str(), "{shown}");
        }
        Some(code) => {
            assert_ne!(code, 2, "{}", after.stderr());
            assert!(after.stderr().contains("deactivated"), "{}", after.stderr());
        }
        None => panic!("account did not finish"),
    }

    // An issuance with that key fails, saying why, and leaves the files as they were.
    let serial = serial(out.path());
    let refused = issue_exit(
        &pebble,
        &proxy,
        &["gone.example.test"],
        out.path(),
        &["--force"],
        4,
    )
    .await;
    let stderr = refused.stderr();
    assert!(stderr.contains("deactivated"), "{stderr}");
    assert_eq!(super::serial(out.path()), serial);
}
