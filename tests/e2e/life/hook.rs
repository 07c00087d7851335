//! `--deploy-hook CMD`: run with `sh -c` once new files are written (issued or renewed, never
//! when kept), its environment naming the out directory, the names, the action and the serial;
//! a failing hook is exit 7 and the new files stay.

use super::*;

/// A hook that appends its environment to `dir/hook.log` and copies the cert.pem it finds to
/// `dir/<action>.pem`.
fn recording_hook(dir: &Path) -> String {
    format!(
        r#"cd '{}' && printf 'out=%s\nnames=%s\naction=%s\nserial=%s\n---\n' "$ACME_OUT" "$ACME_NAMES" "$ACME_ACTION" "$ACME_SERIAL" >> hook.log && cp "$ACME_OUT/cert.pem" "$ACME_ACTION.pem""#,
        dir.display()
    )
}

/// The runs the hook recorded, each as its `key=value` lines.
fn recorded(log: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("---\n")
        .filter(|run| !run.trim().is_empty())
        .map(|run| {
            run.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// Asserts one recorded run is `action` for `names` into `out`, with the serial of the
/// certificate in `out` now, and that the hook found that certificate already written.
fn assert_run(
    run: &std::collections::BTreeMap<String, String>,
    dir: &Path,
    out: &Path,
    names: &[&str],
    action: &str,
) {
    assert_eq!(run["out"], out.to_str().unwrap(), "{run:?}");
    let mut got: Vec<&str> = run["names"].split(' ').collect();
    got.sort();
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(got, want, "{run:?}");
    assert_eq!(run["action"], action, "{run:?}");
    let serial = serial(out);
    assert_eq!(
        run["serial"], serial,
        "ACME_SERIAL is lowercase hex: {run:?}"
    );
    let seen = CertificateDer::from_pem_file(dir.join(format!("{action}.pem"))).unwrap();
    assert_eq!(
        serial_hex(&seen),
        serial,
        "the hook ran before cert.pem was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_hook_runs_on_issue_and_renewal_but_not_when_kept() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let out = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("hook.log");
    let hook = recording_hook(logs.path());
    let names = ["hook.example.test", "www.hook.example.test"];
    let with_hook = ["--deploy-hook", hook.as_str()];

    let (first, _) = issue(&pebble, &proxy, &names, out.path(), &with_hook).await;
    assert_eq!(first["action"], "issued", "{first}");
    let runs = recorded(&log);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_run(&runs[0], logs.path(), out.path(), &names, "issued");

    let (kept, _) = issue(&pebble, &proxy, &names, out.path(), &with_hook).await;
    assert_eq!(kept["action"], "kept", "{kept}");
    assert_eq!(
        recorded(&log).len(),
        1,
        "the hook ran for a kept certificate"
    );

    let mut forced = with_hook.to_vec();
    forced.push("--force");
    let (renewed, _) = issue(&pebble, &proxy, &names, out.path(), &forced).await;
    assert_eq!(renewed["action"], "renewed", "{renewed}");
    let runs = recorded(&log);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_run(&runs[1], logs.path(), out.path(), &names, "renewed");
    assert_ne!(runs[0]["serial"], runs[1]["serial"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_deploy_hook_exits_7_and_the_files_stay() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let out = tempfile::tempdir().unwrap();
    let names = ["badhook.example.test"];
    let client = issue_exit(
        &pebble,
        &proxy,
        &names,
        out.path(),
        &["--deploy-hook", "exit 3"],
        7,
    )
    .await;
    let stderr = client.stderr();
    let last = error_line(&stderr);
    assert!(
        last.contains("hook") && last.contains('3'),
        "the message must name the hook and its exit status 3: {last}"
    );
    assert_set_matches(out.path());
    let serial = serial(out.path());

    // The certificate is there and not due: the next run keeps it.
    let (kept, _) = issue(&pebble, &proxy, &names, out.path(), &[]).await;
    assert_eq!(kept["action"], "kept", "{kept}");
    assert_eq!(super::serial(out.path()), serial);
}
