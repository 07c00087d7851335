//! The files as one set: a renewal killed (SIGKILL) at a random moment never leaves a key and a
//! certificate that do not belong together, and the next run recovers; a certificate for a
//! `--csr` never has the old key.pem beside it.

use std::time::{Duration, Instant};

use rand::Rng as _;

use super::*;

/// How many renewals are killed (a renewal with authorizations reused takes tens of ms).
const ROUNDS: u32 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_renewal_leaves_a_matching_set() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let out = tempfile::tempdir().unwrap();
    let names = ["crash.example.test"];
    issue(&pebble, &proxy, &names, out.path(), &[]).await;
    assert_set_matches(out.path());

    let args = [
        "--no-serve",
        "--json",
        "--out",
        out.path().to_str().unwrap(),
        "--force",
    ];
    // How long a forced renewal takes from start to exit (wait_exit adds 50 ms after it), the
    // shortest of three. A third of the kills land anywhere in a run; the others aim at the
    // moment the new set takes the place of the old, learnt as it goes: earlier when the kill
    // came after it (or after the exit), later when before.
    let mut took = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let mut client = Client::start_at(&pebble, &proxy.dir_url(), "http01", &names, &args);
        client.expect_exit(0, RUN).await;
        took = took.min(started.elapsed().saturating_sub(Duration::from_millis(50)));
        assert_set_matches(out.path());
    }
    let mut aim = took.mul_f64(0.9);

    let (mut killed_mid_run, mut killed_after_swap) = (0, 0);
    for round in 0..ROUNDS {
        let delay = if round % 3 == 0 {
            took.mul_f64(rand::thread_rng().gen_range(0.0..1.0))
        } else {
            aim.mul_f64(rand::thread_rng().gen_range(0.85..1.15))
        };
        let before = serial(out.path());
        let mut client = Client::start_at(&pebble, &proxy.dir_url(), "http01", &names, &args);
        tokio::time::sleep(delay).await;
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &client.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success(), "round {round}: kill failed");
        let status = client.wait_exit(Duration::from_secs(10)).await;
        let status = status.unwrap_or_else(|| panic!("round {round}: not dead after SIGKILL"));
        let swapped = serial(out.path()) != before;
        if status.code().is_none() {
            killed_mid_run += 1;
            killed_after_swap += usize::from(swapped);
        }
        if round % 3 != 0 {
            aim = aim.mul_f64(if swapped { 0.93 } else { 1.07 });
        }
        assert_set_matches(out.path());
    }
    println!(
        "{killed_mid_run} of {ROUNDS} renewals killed before they ended, {killed_after_swap} of \
         them after the new set was in place (a run takes {took:?})"
    );
    assert!(
        killed_mid_run >= ROUNDS / 3,
        "too few kills landed in a run: {killed_mid_run}"
    );

    // A normal run afterwards succeeds, and leaves a whole set.
    let (summary, _) = issue(&pebble, &proxy, &names, out.path(), &[]).await;
    assert!(
        ["kept", "renewed"].contains(&summary["action"].as_str().unwrap_or_default()),
        "{summary}"
    );
    assert_set_matches(out.path());
    let mut san = san_names(&leaf(out.path()));
    san.sort();
    assert_eq!(san, names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csr_never_leaves_an_old_key_beside_the_new_certificate() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let out = tempfile::tempdir().unwrap();
    let names = ["csr-life.example.test"];
    issue(&pebble, &proxy, &names, out.path(), &[]).await;
    assert_set_matches(out.path());

    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec![names[0].to_owned()])
        .unwrap()
        .serialize_request(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.pem");
    std::fs::write(&path, csr.pem().unwrap()).unwrap();
    let (summary, _) = issue(
        &pebble,
        &proxy,
        &[],
        out.path(),
        &["--csr", path.to_str().unwrap(), "--force"],
    )
    .await;
    assert_eq!(summary["action"], "renewed", "{summary}");
    let der = leaf(out.path());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    assert!(
        !out.path().join("key.pem").exists(),
        "key.pem of the old certificate left beside one for the CSR's key"
    );
}
