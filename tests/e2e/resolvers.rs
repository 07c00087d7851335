//! Pebble validating through a real caching resolver, as production CAs do: Debian's Unbound,
//! started by each test with its own config on a port of its own, as Pebble's `-dnsserver`, with
//! a stub zone for `test.` pointing at the client's DNS server (issue 11, item 3).

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::harness::{Client, Pebble, free_port, san_names};

/// How the Unbound in front of the client is configured.
struct Options {
    qname_minimisation: bool,
    tcp_upstream: bool,
}

/// A running Unbound; killed and waited for on drop.
struct Unbound {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// Debian's Unbound (`/usr/sbin` is often not on a user's PATH); its absence is a failure with
/// the install hint.
fn unbound_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join("unbound"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Unbound is not installed, and the resolver tests need it: \
                 run `apt-get install -y unbound` (Debian)"
            )
        })
}

impl Unbound {
    /// Starts Unbound on a free port of 127.0.0.1, forwarding nothing but stubbing `test.` to
    /// 127.0.0.1@`upstream_port`, and waits until it answers a query.
    fn start(upstream_port: u16, options: &Options) -> Unbound {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let conf = format!(
            r#"server:
    interface: 127.0.0.1@{port}
    port: {port}
    do-daemonize: no
    use-syslog: no
    logfile: "{log}"
    verbosity: 1
    log-queries: yes
    username: ""
    chroot: ""
    directory: "{dir}"
    pidfile: ""
    num-threads: 1
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    so-reuseport: no
    outgoing-port-avoid: 0-32767
    access-control: 127.0.0.0/8 allow
    use-caps-for-id: yes
    qname-minimisation: {qmin}
    tcp-upstream: {tcp}
    local-zone: "test." nodefault
    domain-insecure: "test."
    module-config: "iterator"
    do-not-query-localhost: no
    cache-min-ttl: 0
remote-control:
    control-enable: no
stub-zone:
    name: "test."
    stub-addr: 127.0.0.1@{upstream_port}
"#,
            log = dir.path().join("unbound.log").display(),
            dir = dir.path().display(),
            qmin = yes_no(options.qname_minimisation),
            tcp = yes_no(options.tcp_upstream),
        );
        let conf_path = dir.path().join("unbound.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let out = std::fs::File::create(dir.path().join("unbound.out")).unwrap();
        let child = Command::new(unbound_bin())
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot start unbound");
        let mut unbound = Unbound { child, dir, port };
        unbound.wait_ready();
        unbound
    }

    /// Readiness = an answer (any) to a query for `localhost.` A, which Unbound answers itself.
    fn wait_ready(&mut self) {
        let query: &[u8] = &[
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header: RD, one question
            9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0, // localhost.
            0, 1, 0, 1, // A IN
        ];
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 512];
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("unbound exited with {status}:\n{}", self.log());
            }
            let _ = socket.send_to(query, ("127.0.0.1", self.port));
            if let Ok((n, _)) = socket.recv_from(&mut buf)
                && n >= 12
                && buf[..2] == query[..2]
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "unbound did not answer within 15 s:\n{}",
                self.log()
            );
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("unbound.out"), read("unbound.log"))
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unbound in front of the client's DNS server, and Pebble asking Unbound.
async fn pebble_behind_unbound(options: &Options) -> (Pebble, Unbound) {
    let dns_port = free_port();
    let unbound = Unbound::start(dns_port, options);
    let pebble =
        Pebble::start_with_dns(&[], serde_json::json!({}), dns_port, &unbound.addr()).await;
    (pebble, unbound)
}

/// Runs the client to success through Unbound and checks the certificate names all of `names`.
async fn issue_through_unbound(challenge: &str, names: &[&str], options: &Options) {
    let (pebble, unbound) = pebble_behind_unbound(options).await;
    let mut client = Client::start(&pebble, challenge, names, &["--no-serve"]);
    let status = client.wait_exit(Duration::from_secs(120)).await;
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "{}\n--- pebble\n{}\n--- unbound\n{}",
        client.stderr(),
        pebble.log(),
        unbound.log()
    );
    let cert = CertificateDer::pem_file_iter(client.out.path().join("cert.pem"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    // Pebble did ask Unbound (log-queries): the test is not passing by going around it.
    let log = unbound.log().to_ascii_lowercase();
    let asked = if challenge == "dns01" {
        format!(
            "_acme-challenge.{}. txt in",
            names[0].trim_start_matches("*.")
        )
    } else {
        format!("{}. a in", names[0])
    };
    assert!(
        log.contains(&asked),
        "Unbound was not asked `{asked}`:\n{log}"
    );
    let mut got = san_names(&cert);
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_names_and_wildcards_through_unbound_with_0x20_and_qname_minimisation() {
    // Each name shares its _acme-challenge TXT RRset with its wildcard: a resolver caching the
    // RRset with one value of the two would fail the second validation.
    let names = ["a.test", "*.a.test", "b.test", "*.b.test"];
    let options = Options {
        qname_minimisation: true,
        tcp_upstream: false,
    };
    issue_through_unbound("dns01", &names, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_twenty_names_through_unbound_over_tcp_without_qname_minimisation() {
    let names: Vec<String> = (1..=20).map(|i| format!("n{i}.many.test")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = Options {
        qname_minimisation: false,
        tcp_upstream: true,
    };
    issue_through_unbound("dns01", &names, &options).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_resolves_the_name_through_unbound() {
    // Pebble finds the http-01 address through Unbound: the client's DNS server answers A with
    // --record (the harness passes --record 127.0.0.1).
    let options = Options {
        qname_minimisation: true,
        tcp_upstream: false,
    };
    issue_through_unbound("http01", &["web.test"], &options).await;
}
