//! `--profile NAME` is refused before any order when the directory's `meta.profiles` lacks it,
//! with the profiles the CA has; a CA without profiles refuses every `--profile`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_profile_is_refused_listing_the_profiles() {
    let Some(pebble) = Pebble::current(&[], profiles()).await else {
        return;
    };
    let proxy = Proxy::start(&pebble, vec![]).await;
    let out = tempfile::tempdir().unwrap();
    let client = issue_exit(
        &pebble,
        &proxy,
        &["nosuch.example.test"],
        out.path(),
        &["--profile", "nosuch"],
        2,
    )
    .await;
    let stderr = client.stderr();
    for want in ["nosuch", "default", "shortlived"] {
        assert!(stderr.contains(want), "{want} missing:\n{stderr}");
    }
    assert_eq!(proxy.count(NEW_ORDER), 0, "{}", proxy.report());
    assert!(!out.path().join("cert.pem").exists());

    // A profile it has is used and reported.
    let (summary, _) = issue(
        &pebble,
        &proxy,
        &["nosuch.example.test"],
        out.path(),
        &["--profile", "default"],
    )
    .await;
    assert_eq!(summary["profile"], "default", "{summary}");
    assert_eq!(new_orders(&proxy, 0)[0]["profile"], "default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_is_refused_by_a_ca_without_profiles() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let out = tempfile::tempdir().unwrap();
    let client = issue_exit(
        &pebble,
        &proxy,
        &["noprofiles.example.test"],
        out.path(),
        &["--profile", "shortlived"],
        2,
    )
    .await;
    let stderr = client.stderr();
    let last = error_line(&stderr);
    assert!(
        last.contains("shortlived") && last.contains("profile"),
        "the refusal must name the profile: {last}"
    );
    assert_eq!(proxy.count(NEW_ORDER), 0, "{}", proxy.report());
}
