//! Test harness: a real Pebble per test on ports of its own, the real acme-client binary, and
//! guards that kill and wait on drop. Waits poll with deadlines; nothing sleeps and hopes.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const RECORD: &str = "127.0.0.1";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The CA that signed Pebble's listener certificate (pebble/certs/make.sh).
pub fn pebble_ca() -> PathBuf {
    repo().join("pebble/certs/ca.pem")
}

/// A port free for TCP and UDP on 127.0.0.1, below the ephemeral range so that outgoing
/// connections never take it between the check and the bind. Each test process walks its own
/// slice of the range.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20000 + (std::process::id() % 400) as u16 * 30,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..2000 {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = if port >= 32000 {
            20000 + port % 12000
        } else {
            port
        };
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port found in 20000..32000");
}

/// Whether something still listens on TCP `port` of 127.0.0.1.
pub fn tcp_in_use(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// Asserts that nothing listens any more on the client's ports and those Pebble sends it traffic
/// on (DNS over TCP and UDP, http-01).
pub fn assert_ports_free(client: &Client, pebble: &Pebble) {
    for port in [
        client.https_port,
        client.shutdown_port,
        pebble.http_port,
        pebble.dns_port,
    ] {
        assert!(!tcp_in_use(port), "TCP port {port} still in use");
    }
    assert!(
        !udp_in_use(pebble.dns_port),
        "DNS UDP port {} still in use",
        pebble.dns_port
    );
}

/// Whether UDP `port` of 127.0.0.1 is still bound.
pub fn udp_in_use(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

/// `program` on PATH; its absence is a failure saying `why` it is needed and how to install it.
pub fn installed(program: &str, why: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is not installed, and {why}"))
}

/// Debian's Pebble 2.4 (on PATH); its absence is a failure with the install hint.
fn pebble_bin() -> PathBuf {
    installed(
        "pebble",
        "the end-to-end tests need it: run `apt-get install -y pebble` (Debian), or pebble/start, \
         which installs it",
    )
}

/// The current Pebble: `$ACME_TEST_PEBBLE`, else `../shared/pebble/pebble` beside the repo.
/// When it is missing, prints one line saying so and returns `None` (the test then runs nothing),
/// or fails when `ACME_TEST_REQUIRE_CURRENT_PEBBLE=1` (CI).
pub fn current_pebble_bin() -> Option<PathBuf> {
    let path = std::env::var_os("ACME_TEST_PEBBLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/pebble/pebble"));
    if path.is_file() {
        return Some(path);
    }
    let missing = format!(
        "the current Pebble is missing at {} (set ACME_TEST_PEBBLE, or build it with \
         ../shared/pebble/build; see ../shared/pebble/README.md)",
        path.display()
    );
    assert!(
        std::env::var("ACME_TEST_REQUIRE_CURRENT_PEBBLE").as_deref() != Ok("1"),
        "{missing}, and ACME_TEST_REQUIRE_CURRENT_PEBBLE=1 requires it"
    );
    println!("not run: {missing}");
    None
}

/// For tests that count requests (a proxy rule taking the nth, a request tally): Pebble must not
/// reject nonces at random (5% by default), since each badNonce retry is one more request.
pub const EXACT_COUNTS: &[(&str, &str)] = &[("PEBBLE_WFE_NONCEREJECT", "0")];

/// A running Pebble with its own config and ports; killed and waited for on drop.
pub struct Pebble {
    child: Child,
    bin: PathBuf,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    pub acme_port: u16,
    pub mgmt_port: u16,
    /// Where Pebble validates http-01 (the client's --http-port).
    pub http_port: u16,
    /// Where Pebble validates tls-alpn-01 (the client's --https-port).
    pub tls_port: u16,
    /// The port the client's DNS server listens on (its --dns-port).
    pub dns_port: u16,
    /// What Pebble is started with as `-dnsserver`: `127.0.0.1:<dns_port>` unless a resolver
    /// sits in between ([`Pebble::start_with_dns`]).
    dns_server: String,
}

impl Pebble {
    /// Starts Pebble with `PEBBLE_VA_NOSLEEP=1` plus `env`, and waits until it listens.
    pub async fn start(env: &[(&str, &str)]) -> Pebble {
        let mut all = vec![("PEBBLE_VA_NOSLEEP", "1")];
        all.extend_from_slice(env);
        Self::start_exactly(&all).await
    }

    /// Starts Pebble with exactly `env` added (no `PEBBLE_VA_NOSLEEP`: its defaults stand).
    pub async fn start_exactly(env: &[(&str, &str)]) -> Pebble {
        Self::start_custom(pebble_bin(), env, serde_json::json!({}), None, None).await
    }

    /// The current Pebble (see [`current_pebble_bin`]) with `PEBBLE_VA_NOSLEEP=1` plus `env` and
    /// `extra` merged into its config; `None` when it is missing.
    pub async fn current(env: &[(&str, &str)], extra: serde_json::Value) -> Option<Pebble> {
        let mut all = vec![("PEBBLE_VA_NOSLEEP", "1")];
        all.extend_from_slice(env);
        Self::current_exactly(&all, extra).await
    }

    /// The current Pebble with exactly `env` added; `None` when it is missing.
    pub async fn current_exactly(env: &[(&str, &str)], extra: serde_json::Value) -> Option<Pebble> {
        let bin = current_pebble_bin()?;
        Some(Self::start_custom(bin, env, extra, None, None).await)
    }

    /// Starts Pebble with `PEBBLE_VA_NOSLEEP=1` plus `env`, `extra` merged into its config, and
    /// its ACME listener on `acme_port` when given.
    pub async fn start_with(
        env: &[(&str, &str)],
        extra: serde_json::Value,
        acme_port: Option<u16>,
    ) -> Pebble {
        let mut all = vec![("PEBBLE_VA_NOSLEEP", "1")];
        all.extend_from_slice(env);
        Self::start_custom(pebble_bin(), &all, extra, acme_port, None).await
    }

    /// Like [`Pebble::start_with`], Pebble asking the DNS server `dns_server` (a resolver in
    /// front of the client's) while `dns_port` stays the port the client must listen on.
    pub async fn start_with_dns(
        env: &[(&str, &str)],
        extra: serde_json::Value,
        dns_port: u16,
        dns_server: &str,
    ) -> Pebble {
        let mut all = vec![("PEBBLE_VA_NOSLEEP", "1")];
        all.extend_from_slice(env);
        Self::start_custom(
            pebble_bin(),
            &all,
            extra,
            None,
            Some((dns_port, dns_server.to_owned())),
        )
        .await
    }

    /// The current Pebble asking `dns_server`, like [`Pebble::start_with_dns`]; `None` when it
    /// is missing.
    pub async fn current_with_dns(dns_port: u16, dns_server: &str) -> Option<Pebble> {
        let bin = current_pebble_bin()?;
        let env = [("PEBBLE_VA_NOSLEEP", "1")];
        let dns = Some((dns_port, dns_server.to_owned()));
        Some(Self::start_custom(bin, &env, serde_json::json!({}), None, dns).await)
    }

    async fn start_custom(
        bin: PathBuf,
        env: &[(&str, &str)],
        extra: serde_json::Value,
        acme_port: Option<u16>,
        dns: Option<(u16, String)>,
    ) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let (acme_port, mgmt_port, http_port, tls_port) = (
            acme_port.unwrap_or_else(free_port),
            free_port(),
            free_port(),
            free_port(),
        );
        let (dns_port, dns_server) = dns.unwrap_or_else(|| {
            let port = free_port();
            (port, format!("127.0.0.1:{port}"))
        });
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": repo().join("pebble/certs/localhost.pem"),
            "privateKey": repo().join("pebble/certs/localhost.key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(extra) = extra.as_object() {
            for (k, v) in extra {
                config["pebble"][k] = v.clone();
            }
        }
        std::fs::write(dir.path().join("pebble-config.json"), config.to_string()).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Self::launch(&bin, dir.path(), &dns_server, &env);
        let mut pebble = Pebble {
            child,
            bin,
            dir,
            env,
            acme_port,
            mgmt_port,
            http_port,
            tls_port,
            dns_port,
            dns_server,
        };
        pebble.wait_ready().await;
        pebble
    }

    fn launch(bin: &Path, dir: &Path, dns_server: &str, env: &[(String, String)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("pebble.log"))
            .unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-config")
            .arg(dir.join("pebble-config.json"))
            .arg("-dnsserver")
            .arg(dns_server)
            .env_remove("PEBBLE_VA_NOSLEEP")
            .env_remove("PEBBLE_WFE_NONCEREJECT")
            .env_remove("PEBBLE_AUTHZREUSE")
            .env_remove("PEBBLE_VA_SLEEPTIME")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("cannot start pebble")
    }

    /// Starts Pebble again on the same ports after it was stopped (its state is gone, as after a
    /// real CA restart).
    pub async fn restart(&mut self) {
        self.stop();
        self.start_again().await;
    }

    /// Stops Pebble (SIGKILL, waited for); [`Pebble::start_again`] brings it back.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a stopped Pebble again on the same ports, with nothing of its former state.
    pub async fn start_again(&mut self) {
        self.child = Self::launch(&self.bin, self.dir.path(), &self.dns_server, &self.env);
        self.wait_ready().await;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self) {
        // Readiness = both TCP listeners accept.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("pebble exited with {status}:\n{}", self.log());
            }
            let acme = tokio::net::TcpStream::connect(("127.0.0.1", self.acme_port)).await;
            let mgmt = tokio::net::TcpStream::connect(("127.0.0.1", self.mgmt_port)).await;
            if acme.is_ok() && mgmt.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not start:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn dir_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// An HTTP client for the management API (served with the same listener certificate; the
    /// current Pebble wants a User-Agent on its POST endpoints).
    fn mgmt_http() -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only(vec![
                reqwest::Certificate::from_pem(&std::fs::read(pebble_ca()).unwrap()).unwrap(),
            ])
            .no_proxy()
            .user_agent("acme-client-e2e")
            .build()
            .unwrap()
    }

    /// GET on the management API.
    pub async fn mgmt(&self, path: &str) -> String {
        let url = format!("https://127.0.0.1:{}{path}", self.mgmt_port);
        let resp = Self::mgmt_http().get(&url).send().await.unwrap();
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        resp.text().await.unwrap()
    }

    /// What Pebble reports for a certificate: `Status` ("Valid", "Revoked"), `Serial`, and for
    /// a revoked one `RevokedAt` and (the current Pebble, when one was given) `Reason`.
    pub async fn cert_record(&self, der: &[u8]) -> serde_json::Value {
        let serial = serial_hex(der);
        let text = self.mgmt(&format!("/cert-status-by-serial/{serial}")).await;
        serde_json::from_str(&text).unwrap()
    }

    /// The status Pebble reports for a certificate ("Valid", "Revoked").
    pub async fn cert_status(&self, der: &[u8]) -> String {
        let record = self.cert_record(der).await;
        record["Status"].as_str().unwrap_or_default().to_owned()
    }

    /// Makes the current Pebble answer `ari` (the renewalInfo JSON, RFC 9773 §4.2) for the
    /// certificate in `cert_pem`, through its management `POST /set-renewal-info/`.
    pub async fn set_renewal_info(&self, cert_pem: &str, ari: &serde_json::Value) {
        let url = format!("https://127.0.0.1:{}/set-renewal-info/", self.mgmt_port);
        let body = serde_json::json!({"Certificate": cert_pem, "ARIResponse": ari.to_string()});
        let resp = Self::mgmt_http()
            .post(&url)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(
            status.is_success(),
            "{url}: {status} {}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Pebble's root (regenerated at every start).
    pub async fn root(&self) -> CertificateDer<'static> {
        let pem = self.mgmt("/roots/0").await;
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The acme-client binary running in the background, its output collected as it comes.
pub struct Client {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    pub https_port: u16,
    pub shutdown_port: u16,
    pub out: tempfile::TempDir,
}

fn collect(stream: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut b = sink.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
    buf
}

impl Client {
    /// Runs `acme-client <challenge> --dir .. --ca-bundle .. --record .. --domain ..` against
    /// `pebble` on its ports, plus `extra` arguments.
    pub fn start(pebble: &Pebble, challenge: &str, names: &[&str], extra: &[&str]) -> Client {
        Self::start_at(pebble, &pebble.dir_url(), challenge, names, extra)
    }

    /// Like [`Client::start`], with another directory URL (a proxy in front of `pebble`).
    pub fn start_at(
        pebble: &Pebble,
        dir_url: &str,
        challenge: &str,
        names: &[&str],
        extra: &[&str],
    ) -> Client {
        Self::spawn(&Self::args(pebble, dir_url, challenge, names, extra))
    }

    /// The arguments [`Client::start_at`] runs the binary with.
    pub fn args(
        pebble: &Pebble,
        dir_url: &str,
        challenge: &str,
        names: &[&str],
        extra: &[&str],
    ) -> Vec<String> {
        let mut args: Vec<String> = vec![
            challenge.into(),
            "--dir".into(),
            dir_url.into(),
            "--ca-bundle".into(),
            pebble_ca().display().to_string(),
            "--dns-port".into(),
            pebble.dns_port.to_string(),
            "--http-port".into(),
            pebble.http_port.to_string(),
            "--https-port".into(),
            pebble.tls_port.to_string(),
        ];
        for name in names {
            args.push("--domain".into());
            args.push((*name).into());
        }
        // Defaults a test may override.
        for (flag, value) in [("--record", RECORD), ("--bind", "127.0.0.1")] {
            if !extra.contains(&flag) {
                args.extend([flag.to_owned(), value.to_owned()]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// [`Client::args`] without `--record` (which they add unless `extra` has it).
    pub fn args_without_record(
        pebble: &Pebble,
        dir_url: &str,
        challenge: &str,
        names: &[&str],
        extra: &[&str],
    ) -> Vec<String> {
        let mut args = Self::args(pebble, dir_url, challenge, names, extra);
        let at = args.iter().position(|a| a == "--record").unwrap();
        args.drain(at..at + 2);
        args
    }

    /// Runs the binary with exactly `args` (plus its own --out, --https-port, --shutdown-port).
    pub fn spawn(args: &[String]) -> Client {
        Self::spawn_logging(args, "acme_client=debug,warn")
    }

    /// Like [`Client::spawn`], with `RUST_LOG` set to `filter`.
    pub fn spawn_logging(args: &[String], filter: &str) -> Client {
        Self::spawn_via(&[], args, filter)
    }

    /// Like [`Client::spawn_logging`], the binary started by the command `wrapper` (e.g.
    /// `setpriv ...`) when it is not empty.
    pub fn spawn_via(wrapper: &[&str], args: &[String], filter: &str) -> Client {
        let out = tempfile::tempdir().unwrap();
        let bin = env!("CARGO_BIN_EXE_acme-client");
        let mut cmd = match wrapper.split_first() {
            None => Command::new(bin),
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(bin);
                cmd
            }
        };
        cmd.args(args);
        // Flags the test did not give get values of their own.
        let given = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse::<u16>().ok())
        };
        if !args.iter().any(|a| a == "--out") {
            cmd.arg("--out").arg(out.path());
        }
        let https_port = given("--https-port").unwrap_or_else(|| {
            let port = free_port();
            cmd.arg("--https-port").arg(port.to_string());
            port
        });
        let shutdown_port = given("--shutdown-port").unwrap_or_else(|| {
            let port = free_port();
            cmd.arg("--shutdown-port").arg(port.to_string());
            port
        });
        Self::launch(cmd, filter, out, https_port, shutdown_port)
    }

    /// Runs the binary with exactly `args`, adding no flags (for `revoke` and `account`, which
    /// neither write an --out of the test's nor listen).
    pub fn spawn_exactly(args: &[String]) -> Client {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acme-client"));
        cmd.args(args);
        Self::launch(
            cmd,
            "acme_client=debug,warn",
            tempfile::tempdir().unwrap(),
            0,
            0,
        )
    }

    fn launch(
        mut cmd: Command,
        filter: &str,
        out: tempfile::TempDir,
        https_port: u16,
        shutdown_port: u16,
    ) -> Client {
        let mut child = cmd
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Client {
            child,
            stdout,
            stderr,
            https_port,
            shutdown_port,
            out,
        }
    }

    /// The `--json` summary on stdout.
    pub fn json(&self) -> serde_json::Value {
        let stdout = self.stdout();
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not the JSON summary ({e}):\n{stdout}"))
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// stdout once something is on it, waiting at most 10 s: the pipes are read by threads of
    /// their own, so a line on stderr can be seen before the stdout written just ahead of it.
    pub async fn stdout_when_written(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stdout = self.stdout();
            if !stdout.is_empty() || Instant::now() >= deadline {
                return stdout;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the process exits, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits at most `limit` for the process to exit and asserts its exit code (showing stderr
    /// when it differs). Returns stderr.
    pub async fn expect_exit(&mut self, code: i32, limit: Duration) -> String {
        let status = self.wait_exit(limit).await;
        let stderr = self.stderr();
        assert_eq!(status.map(|s| s.code()), Some(Some(code)), "{stderr}");
        stderr
    }

    /// Runs the client with `--no-serve` plus `extra` to completion within `limit` and asserts
    /// it exits 0 (showing its stderr and Pebble's log when not).
    pub async fn run_to_success(
        pebble: &Pebble,
        challenge: &str,
        names: &[&str],
        extra: &[&str],
        limit: Duration,
    ) -> Client {
        Self::run_to_success_at(pebble, &pebble.dir_url(), challenge, names, extra, limit).await
    }

    /// Like [`Client::run_to_success`], with another directory URL (a proxy in front of `pebble`).
    pub async fn run_to_success_at(
        pebble: &Pebble,
        dir_url: &str,
        challenge: &str,
        names: &[&str],
        extra: &[&str],
        limit: Duration,
    ) -> Client {
        let mut args = vec!["--no-serve"];
        args.extend_from_slice(extra);
        let mut client = Client::start_at(pebble, dir_url, challenge, names, &args);
        let status = client.wait_exit(limit).await;
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "{}\n--- pebble\n{}",
            client.stderr(),
            pebble.log()
        );
        client
    }

    /// Waits until the certificate is served (the summary is on stdout), or the process exits.
    pub async fn wait_serving(&mut self, pebble: &Pebble) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.stderr().contains("serving the certificate") {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "acme-client exited with {status} before serving\n--- stderr\n{}\n--- pebble\n{}",
                    self.stderr(),
                    pebble.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "not serving after 60 s:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the HTTPS port served.
pub struct Served {
    pub chain: Vec<CertificateDer<'static>>,
    pub body: String,
}

/// Connects to the HTTPS port as `server_name`, verifying the served chain against `root` only
/// (so the intermediate must be served), and fetches `GET /`.
pub async fn fetch_served(port: u16, server_name: &str, root: CertificateDer<'static>) -> Served {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS to the served certificate as {server_name} failed: {e}"));
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .unwrap()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut body = String::new();
    let _ = tls.read_to_string(&mut body).await;
    Served { chain, body }
}

/// DNS and IP names in a certificate's SAN extension.
pub fn san_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The serial of a certificate as Pebble's management API spells it.
pub fn serial_hex(der: &[u8]) -> String {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    cert.tbs_certificate.serial.to_str_radix(16)
}

/// Plain HTTP GET on 127.0.0.1:`port`, returning the status line and body.
pub async fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    http_get_at("127.0.0.1", port, path).await
}

/// Plain HTTP GET on `addr`:`port`, returning the status line and body.
pub async fn http_get_at(addr: &str, port: u16, path: &str) -> std::io::Result<String> {
    let mut tcp = tokio::net::TcpStream::connect((addr, port)).await?;
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).await?;
    Ok(text)
}

pub use acme_client::challenge::test_publication as publication;

/// The certificate the client wrote to `cert.pem` in its `--out`.
pub fn leaf_of(client: &Client) -> CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::from_pem_file(client.out.path().join("cert.pem")).unwrap()
}

/// The one `acme-client: error: ...` line of a failed run's stderr (asserting there is exactly
/// one, and that nothing but its hint follows it).
pub fn error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().collect();
    let at: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("acme-client: error: "))
        .collect();
    assert_eq!(at.len(), 1, "one error line expected:\n{stderr}");
    let rest = &lines[at[0] + 1..];
    assert!(
        rest.is_empty() || (rest.len() == 1 && rest[0].starts_with("hint: ")),
        "only a hint may follow the error:\n{stderr}"
    );
    lines[at[0]]
}

/// The `hint: ...` line under the error, when there is one.
pub fn hint_line(stderr: &str) -> Option<&str> {
    error_line(stderr);
    stderr.lines().last().filter(|l| l.starts_with("hint: "))
}
