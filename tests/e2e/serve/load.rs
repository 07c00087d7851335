//! The load generator: workers that keep opening new TLS connections (a full handshake each, no
//! session resumption, then one `GET /`) and workers that keep one keep-alive connection busy
//! with requests sent without pause. Every handshake's leaf is checked when it is presented:
//! valid at that moment (to the second, as TLS clients judge), naming the server, signed by the
//! intermediate served beside it, and the handshake signed with its key. Any chain is accepted
//! otherwise, because a restarted Pebble has a new root; the tests check the chain against
//! Pebble's root of the moment with [`crate::harness::fetch_served`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use x509_parser::prelude::*;

use crate::harness::{san_names, serial_hex};

/// What the workers saw.
#[derive(Debug, Default)]
pub struct Stats {
    pub handshakes: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub requests: AtomicU64,
    pub request_failures: AtomicU64,
    /// The first few failures, with what went wrong.
    pub errors: Mutex<Vec<String>>,
    /// Each certificate presented, in the order first seen.
    pub seen: Mutex<Vec<Seen>>,
    /// One record per keep-alive worker.
    pub keep_alive: Mutex<Vec<KeepAlive>>,
}

/// A certificate some handshake presented.
#[derive(Debug, Clone)]
pub struct Seen {
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub handshakes: u64,
}

/// One keep-alive worker's connection history.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    /// Connections it opened (1 while the first one never failed).
    pub connections: u32,
    /// The serial its current connection was opened with.
    pub serial: String,
    pub requests: u64,
    pub last_ok: Option<Instant>,
}

impl Stats {
    fn fail(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(what);
        }
    }

    fn saw(&self, serial: &str, not_before: i64, not_after: i64) {
        let mut seen = self.seen.lock().unwrap();
        match seen.iter_mut().rev().find(|s| s.serial == serial) {
            Some(s) => s.handshakes += 1,
            None => seen.push(Seen {
                serial: serial.to_owned(),
                not_before,
                not_after,
                handshakes: 1,
            }),
        }
    }

    pub fn count(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    /// One line for the test output.
    pub fn summary(&self) -> String {
        format!(
            "{} handshakes ({} failed), {} requests ({} failed), {} certificates seen, keep-alive {:?}, errors {:?}",
            Self::count(&self.handshakes),
            Self::count(&self.handshake_failures),
            Self::count(&self.requests),
            Self::count(&self.request_failures),
            self.seen.lock().unwrap().len(),
            self.keep_alive
                .lock()
                .unwrap()
                .iter()
                .map(|k| (k.connections, k.requests))
                .collect::<Vec<_>>(),
            self.errors.lock().unwrap()
        )
    }
}

/// Checks each presented certificate; `strict` adds the validity times.
#[derive(Debug)]
struct Check {
    name: String,
    strict: bool,
    stats: Option<Arc<Stats>>,
    provider: Arc<CryptoProvider>,
}

impl Check {
    fn leaf(&self, leaf: &[u8], intermediates: &[CertificateDer<'_>]) -> Result<(), String> {
        let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| format!("leaf: {e}"))?;
        let serial = serial_hex(leaf);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let (nb, na) = (
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        );
        let secs = now.as_secs() as i64;
        if self.strict && !(nb <= secs && secs <= na) {
            return Err(format!(
                "serial {serial} valid {nb}..={na} presented at {:.3}",
                now.as_secs_f64()
            ));
        }
        if !san_names(leaf).contains(&self.name) {
            return Err(format!("serial {serial} does not name {}", self.name));
        }
        let issuer = intermediates
            .first()
            .ok_or_else(|| format!("serial {serial} came without its intermediate"))?;
        let (_, issuer) = X509Certificate::from_der(issuer).map_err(|e| format!("issuer: {e}"))?;
        cert.verify_signature(Some(issuer.public_key()))
            .map_err(|e| {
                format!("serial {serial} is not signed by the served intermediate: {e}")
            })?;
        if let Some(stats) = &self.stats {
            stats.saw(&serial, nb, na);
        }
        Ok(())
    }
}

impl ServerCertVerifier for Check {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.leaf(end_entity, intermediates)
            .map(|()| ServerCertVerified::assertion())
            .map_err(rustls::Error::General)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client config that checks as [`Check`] does and never resumes a session, so every
/// connection is a full handshake that presents the certificate.
fn config(name: &str, strict: bool, stats: Option<Arc<Stats>>) -> Arc<ClientConfig> {
    acme_client::install_crypto_provider();
    let check = Check {
        name: name.to_owned(),
        strict,
        stats,
        provider: Arc::new(rustls::crypto::ring::default_provider()),
    };
    let mut config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(check))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// An HTTP/1.1 connection over TLS, reading answers by Content-Length or chunked encoding.
pub struct Conn {
    stream: BufReader<TlsStream<TcpStream>>,
    /// The serial of the certificate the handshake presented.
    pub serial: String,
}

/// Connects to 127.0.0.1:`port` as `name` and handshakes with `config`.
async fn connect(config: Arc<ClientConfig>, port: u16, name: &str) -> Result<Conn, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let server = ServerName::try_from(name.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    Ok(Conn {
        stream: BufReader::new(tls),
        serial: serial_hex(&leaf),
    })
}

/// The serial of the certificate the HTTPS port presents now, whether or not it is still valid.
pub async fn served_serial(port: u16, name: &str) -> String {
    connect(config(name, false, None), port, name)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the HTTPS port {port}: {e}"))
        .serial
}

impl Conn {
    /// `GET /`; returns the status and the body's length.
    pub async fn get(&mut self, host: &str, close: bool) -> Result<(u16, usize), String> {
        let connection = if close { "close" } else { "keep-alive" };
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n\r\n");
        let io = |e: std::io::Error| format!("request: {e}");
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(io)?;
        self.stream.get_mut().flush().await.map_err(io)?;
        let status_line = self.line().await?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP status line: {status_line:?}"))?;
        let (mut length, mut chunked) = (None, false);
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap_or((&line, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
            if k == "content-length" {
                length = v.parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.contains("chunked") {
                chunked = true;
            }
        }
        let body = if chunked {
            let mut total = 0;
            loop {
                let size = self.line().await?;
                let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
                    .map_err(|e| format!("chunk size {size:?}: {e}"))?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    break total;
                }
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.map_err(io)?;
                total += size;
            }
        } else {
            let length = length.ok_or("an answer without Content-Length or chunks")?;
            let mut body = vec![0; length];
            self.stream.read_exact(&mut body).await.map_err(io)?;
            length
        };
        Ok((status, body))
    }

    async fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        let n = self
            .stream
            .read_line(&mut line)
            .await
            .map_err(|e| format!("answer: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// The running workers.
pub struct Load {
    pub stats: Arc<Stats>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl Load {
    /// Starts `handshakers` workers opening new connections and `keep_alive` workers each on one
    /// connection, against 127.0.0.1:`port` as `name`.
    pub async fn start(port: u16, name: &str, handshakers: usize, keep_alive: usize) -> Load {
        let stats = Arc::new(Stats::default());
        let cancel = CancellationToken::new();
        let config = config(name, true, Some(stats.clone()));
        let mut tasks = JoinSet::new();
        for _ in 0..handshakers {
            let (config, stats, cancel, name) = (
                config.clone(),
                stats.clone(),
                cancel.clone(),
                name.to_owned(),
            );
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        () = one_connection(&config, port, &name, &stats) => {}
                        () = cancel.cancelled() => return,
                    }
                }
            });
        }
        for worker in 0..keep_alive {
            stats.keep_alive.lock().unwrap().push(KeepAlive {
                connections: 0,
                serial: String::new(),
                requests: 0,
                last_ok: None,
            });
            let (config, stats, cancel, name) = (
                config.clone(),
                stats.clone(),
                cancel.clone(),
                name.to_owned(),
            );
            // The first connection is open before this returns, so it predates any renewal
            // that follows.
            let first = connect(config.clone(), port, &name).await;
            tasks.spawn(async move {
                tokio::select! {
                    () = keep_busy(first, &config, port, &name, &stats, worker) => {}
                    () = cancel.cancelled() => {}
                }
            });
        }
        Load {
            stats,
            cancel,
            tasks,
        }
    }

    /// Stops the workers (a request in flight is abandoned, not counted) and returns the stats.
    pub async fn stop(mut self) -> Arc<Stats> {
        self.cancel.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(10), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        assert!(stopped.is_ok(), "the load workers did not stop");
        self.stats
    }
}

/// A new connection, one `GET /`, closed.
async fn one_connection(config: &Arc<ClientConfig>, port: u16, name: &str, stats: &Stats) {
    let mut conn = match connect(config.clone(), port, name).await {
        Ok(conn) => conn,
        Err(e) => {
            stats.fail(&stats.handshake_failures, e);
            // Not a hot loop while the port refuses.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
    };
    stats.handshakes.fetch_add(1, Ordering::SeqCst);
    match conn.get(name, true).await {
        Ok((200, len)) if len > 0 => {
            stats.requests.fetch_add(1, Ordering::SeqCst);
        }
        Ok((status, len)) => stats.fail(
            &stats.request_failures,
            format!("new connection: {status} with {len} bytes"),
        ),
        Err(e) => stats.fail(&stats.request_failures, format!("new connection: {e}")),
    }
}

/// Requests without pause on one connection; a failed one is counted and the worker connects
/// again.
async fn keep_busy(
    first: Result<Conn, String>,
    config: &Arc<ClientConfig>,
    port: u16,
    name: &str,
    stats: &Stats,
    worker: usize,
) {
    let mut next = Some(first);
    loop {
        let attempt = match next.take() {
            Some(first) => first,
            None => connect(config.clone(), port, name).await,
        };
        let mut conn = match attempt {
            Ok(conn) => conn,
            Err(e) => {
                stats.fail(
                    &stats.handshake_failures,
                    format!("keep-alive {worker}: {e}"),
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        stats.handshakes.fetch_add(1, Ordering::SeqCst);
        {
            let mut records = stats.keep_alive.lock().unwrap();
            records[worker].connections += 1;
            records[worker].serial = conn.serial.clone();
        }
        loop {
            match conn.get(name, false).await {
                Ok((200, len)) if len > 0 => {
                    stats.requests.fetch_add(1, Ordering::SeqCst);
                    let mut records = stats.keep_alive.lock().unwrap();
                    records[worker].requests += 1;
                    records[worker].last_ok = Some(Instant::now());
                }
                Ok((status, len)) => {
                    stats.fail(
                        &stats.request_failures,
                        format!("keep-alive {worker}: {status} with {len} bytes"),
                    );
                    break;
                }
                Err(e) => {
                    stats.fail(&stats.request_failures, format!("keep-alive {worker}: {e}"));
                    break;
                }
            }
        }
    }
}

/// The resident memory of process `pid` in KiB (VmRSS in /proc/<pid>/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
