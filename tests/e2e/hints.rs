//! One error format, `acme-client: error: <one line>`, and exactly one `hint: <fix>` where a fix
//! is known: a --dir that is not a directory, an --out that is a file, a CA that requires a
//! contact, a CA that hangs. `--timings` reports a failed run too.

use std::time::Duration;

use crate::harness::*;
use crate::proxy::{Fault, Proxy, Rule};

/// Runs to a failure with exit `code` (no serving) and returns stderr.
async fn fails(pebble: &Pebble, dir_url: &str, extra: &[&str], code: i32) -> String {
    let mut args = vec!["--no-serve"];
    args.extend_from_slice(extra);
    let mut client = Client::start_at(pebble, dir_url, "http01", &["hint.test"], &args);
    client.expect_exit(code, Duration::from_secs(40)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dir_that_is_not_a_directory_says_check_dir_and_timings_still_report() {
    let pebble = Pebble::start(&[]).await;
    let not_found = format!("https://127.0.0.1:{}/not-the-dir", pebble.acme_port);
    let stderr = fails(&pebble, &not_found, &["--timings"], 4).await;
    let error = error_line(&stderr);
    assert_eq!(
        error,
        format!(
            "acme-client: error: {not_found} is not an ACME directory: it answered HTTP 404 Not Found"
        )
    );
    assert!(!error.contains("(no type)"), "{error}");
    let hint = hint_line(&stderr).unwrap_or_default();
    assert!(
        hint.starts_with("hint: check --dir; it must be the CA's directory URL, e.g. https://"),
        "{hint}"
    );
    // --timings on a failed run: the requests made, then the totals.
    assert!(
        stderr.contains(&format!("GET {not_found} -> 404")) && stderr.contains("total "),
        "no timings report:\n{stderr}"
    );

    // Pebble's management API answers PEM, not JSON.
    let pem = format!("https://127.0.0.1:{}/roots/0", pebble.mgmt_port);
    let stderr = fails(&pebble, &pem, &[], 4).await;
    assert!(
        error_line(&stderr).contains("is not an ACME directory: its 200 OK answer is not JSON"),
        "{stderr}"
    );
    assert!(
        hint_line(&stderr)
            .unwrap_or_default()
            .starts_with("hint: check --dir;"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_that_is_a_file_says_so_without_os_error() {
    let pebble = Pebble::start(&[]).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    let path = file.path().display().to_string();
    let stderr = fails(&pebble, &pebble.dir_url(), &["--out", &path], 2).await;
    assert_eq!(
        error_line(&stderr),
        format!("acme-client: error: --out {path} is a file, not a directory")
    );
    assert_eq!(
        hint_line(&stderr),
        Some("hint: give --out a directory for the certificate files (it is created if missing)")
    );
}

/// A CA that requires a contact (as some do; Pebble does not, so the proxy answers for it).
async fn contact_refused(kind: &str, extra: &[&str]) -> String {
    let pebble = Pebble::start(&[]).await;
    let body = format!(
        r#"{{"type":"urn:ietf:params:acme:error:{kind}","detail":"a contact is required (test proxy)","status":400}}"#
    );
    let refuse = Fault::Replace {
        status: 400,
        content_type: "application/problem+json",
        body,
    };
    let proxy = Proxy::start(&pebble, vec![Rule::new("/sign-me-up", 0, refuse)]).await;
    fails(&pebble, &proxy.dir_url(), extra, 4).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_requiring_a_contact_says_pass_contact() {
    let stderr = contact_refused("invalidContact", &[]).await;
    let (error, hint) = (error_line(&stderr), hint_line(&stderr));
    let refused = "finding or creating the account: the CA refused: urn:ietf:params:acme:error:invalidContact";
    assert!(error.contains(refused), "{stderr}");
    assert_eq!(
        hint,
        Some("hint: this CA requires a contact: pass --contact mailto:ADDR")
    );
    let stderr = contact_refused("malformed", &[]).await;
    assert_eq!(
        hint_line(&stderr),
        Some("hint: this CA may require a contact: pass --contact mailto:ADDR")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_ca_is_told_about_and_the_timeout_says_what_was_awaited() {
    let pebble = Pebble::start(&[]).await;
    // The challenge answer never gets through: the CA never validates.
    let proxy = Proxy::start(&pebble, vec![Rule::new("/chalZ/", 0, Fault::Hold)]).await;
    let stderr = fails(&pebble, &proxy.dir_url(), &["--timeout", "7"], 5).await;
    assert!(
        stderr.contains("waiting for the CA to validate 1 name (5 s)"),
        "no word while waiting:\n{stderr}"
    );
    assert_eq!(
        error_line(&stderr),
        "acme-client: error: gave up after 7 s (--timeout) waiting for the CA to validate 1 name"
    );
    let hint = hint_line(&stderr).unwrap_or_default();
    assert!(
        hint.contains("check that it can reach acme-client's responders"),
        "{hint}"
    );
    assert!(!hint.contains("try a larger --timeout"), "{hint}");
}
