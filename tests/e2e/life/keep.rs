//! Re-running into the same --out against Debian's Pebble 2.4 (no ARI, so the lifetime rule):
//! a certificate that is not due is kept without an order; `--force`, other names and another key
//! type order at once.

use std::time::Duration;

use super::*;

/// The files of a set, to compare before and after a run.
fn files(out: &Path) -> Vec<Vec<u8>> {
    [
        "key.pem",
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "account.pem",
    ]
    .iter()
    .map(|f| std::fs::read(out.join(f)).unwrap())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_keeps_and_force_renews() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let out = tempfile::tempdir().unwrap();
    let names = ["keep.example.test", "www.keep.example.test"];

    let (first, _) = issue(&pebble, &proxy, &names, out.path(), &[]).await;
    assert_eq!(first["action"], "issued", "{first}");
    assert_eq!(first["replaced"], serde_json::Value::Null, "{first}");
    assert_eq!(first["profile"], serde_json::Value::Null, "{first}");
    assert_set_matches(out.path());
    // Pebble 2.4's certificates live five years: due at two thirds of that.
    let (not_before, not_after) = validity(&leaf(out.path()));
    let lifetime = not_after.duration_since(not_before).unwrap();
    let want = not_before + lifetime * 2 / 3;
    let due = due(&first, "lifetime");
    let off = due.duration_since(want).unwrap_or_else(|e| e.duration());
    assert!(
        off < Duration::from_secs(86_400),
        "due {} but two thirds of the lifetime is {}: {first}",
        to_rfc3339(due),
        to_rfc3339(want)
    );
    let orders = new_orders(&proxy, 0).len();
    assert_eq!(orders, 1);
    let before = files(out.path());
    let serial = serial(out.path());

    // The same command again: nothing reaches newOrder, nothing changes.
    let requests = proxy.count(NEW_ORDER);
    let (second, _) = issue(&pebble, &proxy, &names, out.path(), &[]).await;
    assert_eq!(second["action"], "kept", "{second}");
    assert_eq!(proxy.count(NEW_ORDER), requests, "{}", proxy.report());
    assert_eq!(
        files(out.path()),
        before,
        "a kept certificate's files changed"
    );
    assert_eq!(super::serial(out.path()), serial);
    assert_eq!(
        second["renewal"]["due"], first["renewal"]["due"],
        "{second}"
    );

    // The human summary says so; the names in another order are the same names.
    let swapped = [names[1], names[0]];
    let human = Client::run_to_success_at(
        &pebble,
        &proxy.dir_url(),
        "http01",
        &swapped,
        &["--out", out.path().to_str().unwrap()],
        RUN,
    )
    .await;
    let stdout = human.stdout();
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["action", "kept"]),
        "no `action    kept` line:\n{stdout}"
    );
    assert_eq!(proxy.count(NEW_ORDER), requests, "{}", proxy.report());

    // --force orders; without ARI the order carries no `replaces`.
    let (forced, _) = issue(&pebble, &proxy, &names, out.path(), &["--force"]).await;
    assert_eq!(forced["action"], "renewed", "{forced}");
    assert_eq!(forced["replaced"], serial.as_str(), "{forced}");
    let renewed = super::serial(out.path());
    assert_ne!(renewed, serial, "--force must bring a new certificate");
    let orders = new_orders(&proxy, 1);
    assert_eq!(orders.len(), 1, "{}", proxy.report());
    assert!(
        orders[0].get("replaces").is_none(),
        "replaces sent to a CA without renewalInfo: {}",
        orders[0]
    );
    assert_set_matches(out.path());
    assert_ne!(files(out.path())[..4], before[..4]);
    // The account stays.
    assert_eq!(files(out.path())[4], before[4], "account.pem changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_names_or_key_type_are_due_at_once() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![]).await;
    let out = tempfile::tempdir().unwrap();
    let one = ["names.example.test"];
    let two = ["names.example.test", "more.names.example.test"];
    let sorted = |der: &[u8]| {
        let mut names = san_names(der);
        names.sort();
        names
    };

    let (first, _) = issue(&pebble, &proxy, &one, out.path(), &[]).await;
    assert_eq!(first["action"], "issued", "{first}");
    let mut serials = vec![serial(out.path())];

    // One more name: due at once.
    let (more, _) = issue(&pebble, &proxy, &two, out.path(), &[]).await;
    assert_eq!(more["action"], "renewed", "{more}");
    assert_eq!(more["replaced"], serials[0].as_str(), "{more}");
    assert_eq!(
        sorted(&leaf(out.path())),
        ["more.names.example.test", "names.example.test"]
    );
    serials.push(serial(out.path()));

    // One name fewer: the certificate no longer covers exactly these names.
    let (fewer, _) = issue(&pebble, &proxy, &one, out.path(), &[]).await;
    assert_eq!(fewer["action"], "renewed", "{fewer}");
    assert_eq!(sorted(&leaf(out.path())), ["names.example.test"]);
    serials.push(serial(out.path()));

    // Another key type: due at once; then the same key type again is kept.
    let ec384 = ["--key-type", "ec384"];
    let (other_key, _) = issue(&pebble, &proxy, &one, out.path(), &ec384).await;
    assert_eq!(other_key["action"], "renewed", "{other_key}");
    let der = leaf(out.path());
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    match cert.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::EC(ec) => assert_eq!(ec.key_size(), 384),
        other => panic!("--key-type ec384 brought {other:?}"),
    }
    serials.push(serial(out.path()));
    let (again, _) = issue(&pebble, &proxy, &one, out.path(), &ec384).await;
    assert_eq!(again["action"], "kept", "{again}");

    // Every renewal was an order of its own, with a new serial.
    assert_eq!(new_orders(&proxy, 0).len(), 4, "{}", proxy.report());
    let mut unique = serials.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), serials.len(), "{serials:?}");
    assert_set_matches(out.path());
}
