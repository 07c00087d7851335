//! Ports that listen only when they have work: no DNS server for http-01 without `--record`, an
//! HTTPS port that accepts nothing before the certificate exists (tls-alpn-01 excepted), and a
//! privileged port refused with the flag and the way out named.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::proxy::{Fault, Proxy, Rule};

/// Whether a TCP connection to 127.0.0.1:`port` is accepted now (false: refused).
async fn accepts(port: u16) -> bool {
    match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => false,
        Err(e) => panic!("connecting to port {port}: {e}"),
    }
}

/// Waits until the proxy has seen a request to `path`.
async fn wait_for_request(proxy: &Proxy, path: &str, client: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.count(path) == 0 {
        assert!(
            client.wait_exit(Duration::from_millis(10)).await.is_none(),
            "the client exited before {path}:\n{}",
            client.stderr()
        );
        assert!(Instant::now() < deadline, "no {path} after 30 s");
    }
}

async fn shut_down(client: &mut Client) {
    let answer = http_get(client.shutdown_port, "/shutdown").await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    client.expect_exit(0, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dns_server_for_http01_without_record() {
    let pebble = Pebble::start(&[]).await;
    // An IP identifier: Pebble needs no DNS to reach it.
    let names = ["127.0.0.1"];
    let args = Client::args_without_record(&pebble, &pebble.dir_url(), "http01", &names, &[]);
    let mut client = Client::spawn(&args);
    client.wait_serving(&pebble).await;
    assert!(!tcp_in_use(pebble.dns_port), "something listens on DNS/TCP");
    assert!(
        !udp_in_use(pebble.dns_port),
        "something is bound on DNS/UDP"
    );
    shut_down(&mut client).await;
}

/// Starts `challenge` through a proxy that holds the finalize request, waits until it is held,
/// and returns whether the HTTPS port accepted a connection then, and the client still running.
async fn https_while_finalizing(challenge: &str) -> (bool, Pebble, Proxy, Client) {
    acme_client::install_crypto_provider();
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(&pebble, vec![Rule::new("/finalize-order/", 1, Fault::Hold)]).await;
    let mut client = Client::start_at(
        &pebble,
        &proxy.dir_url(),
        challenge,
        &["window.example.test"],
        &[],
    );
    wait_for_request(&proxy, "/finalize-order/", &mut client).await;
    let accepted = accepts(client.https_port).await;
    proxy.release();
    client.wait_serving(&pebble).await;
    (accepted, pebble, proxy, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_port_refuses_connections_until_the_certificate_exists() {
    let (accepted, pebble, _proxy, mut client) = https_while_finalizing("http01").await;
    assert!(
        !accepted,
        "the HTTPS port accepted before the certificate existed"
    );
    let served = fetch_served(
        client.https_port,
        "window.example.test",
        pebble.root().await,
    )
    .await;
    assert_eq!(san_names(&served.chain[0]), ["window.example.test"]);
    shut_down(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_listens_from_the_start() {
    let (accepted, pebble, _proxy, mut client) = https_while_finalizing("tlsalpn01").await;
    assert!(
        accepted,
        "tls-alpn-01 needs the HTTPS port during validation"
    );
    fetch_served(
        client.https_port,
        "window.example.test",
        pebble.root().await,
    )
    .await;
    shut_down(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_issuance_never_accepts_on_the_https_port() {
    let pebble = Pebble::start(&[]).await;
    let proxy = Proxy::start(
        &pebble,
        vec![Rule::new("/my-order/", 1, Fault::invalid_order())],
    )
    .await;
    let mut client = Client::start_at(
        &pebble,
        &proxy.dir_url(),
        "dns01",
        &["never.example.test"],
        &["--timeout", "30"],
    );
    // Knock on the HTTPS port for the whole run.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut knocks = 0;
    let status = loop {
        if let Some(status) = client.wait_exit(Duration::from_millis(5)).await {
            break status;
        }
        assert!(
            !accepts(client.https_port).await,
            "the HTTPS port accepted a connection although no certificate exists"
        );
        knocks += 1;
        assert!(Instant::now() < deadline, "still running after 40 s");
    };
    assert_eq!(status.code(), Some(4), "{}", client.stderr());
    assert!(knocks > 0, "the run ended before any knock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_port_names_the_flag_and_the_way_out() {
    // Port 80 is privileged only if the kernel says so, and only a root test can drop to an
    // unprivileged user (setpriv, util-linux). Elsewhere this test has nothing to show.
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(1024);
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if start <= 80 || !setpriv.is_file() || !root {
        println!(
            "not run: needs root, /usr/bin/setpriv and port 80 privileged \
             (ip_unprivileged_port_start is {start})"
        );
        return;
    }
    let pebble = Pebble::start(&[]).await;
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(out.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut args = Client::args(
        &pebble,
        &pebble.dir_url(),
        "http01",
        &["priv.example.test"],
        &["--no-serve", "--out", out.path().to_str().unwrap()],
    );
    let at = args.iter().position(|a| a == "--http-port").unwrap();
    args[at + 1] = "80".into();
    let nobody = [
        "/usr/bin/setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let mut client = Client::spawn_via(&nobody, &args, "acme_client=debug,warn");
    let stderr = client.expect_exit(6, Duration::from_secs(20)).await;
    let error = error_line(&stderr);
    assert!(
        error.contains("cannot listen on tcp") && !error.contains("os error"),
        "{error}"
    );
    // The way out is the one hint.
    let hint = hint_line(&stderr).unwrap_or_default();
    for e in ["--http-port", "CAP_NET_BIND_SERVICE", "root"] {
        assert!(hint.contains(e), "{e:?} missing in: {hint}");
    }
}
