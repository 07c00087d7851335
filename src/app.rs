//! One run of the program: bind every listener, start the servers as tasks under one cancellation
//! token, drive the ACME machine, write the files, serve the certificate, shut down.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::acme::client::http_client;
use crate::acme::machine::{Plan, obtain};
use crate::cert::{Files, check_out_dir};
use crate::challenge::{ChallengeKind, ChallengeStore, dns, http};
use crate::cli::Config;
use crate::error::{Error, Result};
use crate::serve::{self, https, shutdown};
use crate::summary::Summary;

/// Longest wait for the servers to stop once shutdown starts (the contract says 2 s in all).
const DRAIN: Duration = Duration::from_millis(1500);

/// Runs the whole program; returns once everything has stopped.
pub async fn run(config: Config) -> Result<()> {
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();

    // Fail fast on local problems, before any network traffic.
    let out = config.out.clone();
    blocking(move || check_out_dir(&out)).await.map_err(|e| {
        Error::Usage(format!(
            "{e}; choose a directory acme-client can create and write"
        ))
    })?;
    let listeners = Listeners::bind(&config).await?;

    tasks.spawn(stop_on_signal(cancel.clone()));
    let store = ChallengeStore::new();
    let dns = dns::DnsHandler::new(&config.names, config.record, store.clone())?;
    tasks.spawn(dns::serve(
        listeners.dns_udp,
        listeners.dns_tcp,
        dns,
        cancel.clone(),
    ));
    if let Some(listener) = listeners.http {
        let handler = http::handler(store.clone());
        tasks.spawn(server("http-01", listener, None, handler, cancel.clone()));
    }
    let shutdown_addr = listeners
        .shutdown
        .as_ref()
        .and_then(|l| l.local_addr().ok());
    if let Some(listener) = listeners.shutdown {
        let handler = shutdown::handler(cancel.clone());
        tasks.spawn(server("shutdown", listener, None, handler, cancel.clone()));
    }

    let result = issue(&config, store, &cancel, started).await;
    let result = match (result, listeners.https) {
        (Ok((outcome, files)), Some(listener)) => {
            let https_addr = listener.local_addr().ok();
            match https::acceptor(&outcome.issued, &outcome.key) {
                Ok(acceptor) => {
                    let handler = https::handler(&outcome.issued);
                    tasks.spawn(server(
                        "https",
                        listener,
                        Some(acceptor),
                        handler,
                        cancel.clone(),
                    ));
                    report(
                        &config,
                        &outcome,
                        &files,
                        started,
                        https_addr,
                        shutdown_addr,
                    );
                    if let Some(addr) = https_addr {
                        info!(%addr, "serving the certificate");
                    }
                    cancel.cancelled().await;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        (Ok((outcome, files)), None) => {
            report(&config, &outcome, &files, started, None, None);
            Ok(())
        }
        (Err(e), _) => Err(e),
    };

    cancel.cancel();
    let drained = drain(&mut tasks).await;
    info!("stopped");
    result.and(drained)
}

/// Obtains the certificate and writes the files, unless shutdown comes first.
async fn issue(
    config: &Config,
    store: ChallengeStore,
    cancel: &CancellationToken,
    started: Instant,
) -> Result<(crate::acme::machine::Outcome, Files)> {
    let trust = match &config.ca_bundle {
        Some(bundle) => format!("by --ca-bundle {}", bundle.path.display()),
        None => "by the system's root certificates".to_owned(),
    };
    let plan = Plan {
        dir_url: config.dir.clone(),
        names: config.names.clone(),
        kind: config.challenge,
        revoke: config.revoke,
        http: http_client(
            &config.dir,
            config.ca_bundle.as_ref().map(|b| b.roots.as_slice()),
        )?,
        trust,
        deadline: started + config.timeout,
        timeout: config.timeout,
        store,
    };
    let outcome = tokio::select! {
        outcome = obtain(&plan) => outcome?,
        () = cancel.cancelled() => return Err(Error::Interrupted),
    };
    let files = Files::in_dir(&config.out);
    let (outcome, files) = blocking(move || {
        files
            .write(&outcome.key, &outcome.issued)
            .map(|()| (outcome, files))
    })
    .await?;
    info!(dir = %config.out.display(), "files written");
    Ok((outcome, files))
}

fn report(
    config: &Config,
    outcome: &crate::acme::machine::Outcome,
    files: &Files,
    started: Instant,
    https: Option<SocketAddr>,
    shutdown: Option<SocketAddr>,
) {
    let summary = Summary::new(
        outcome,
        config.challenge.acme_type(),
        files,
        started.elapsed(),
        https,
        shutdown,
    );
    if config.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.human());
    }
}

/// Every listener, bound before anything else happens so a busy port is reported at once.
struct Listeners {
    dns_udp: UdpSocket,
    dns_tcp: TcpListener,
    http: Option<TcpListener>,
    https: Option<TcpListener>,
    shutdown: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self> {
        let at = |port| SocketAddr::new(config.bind, port);
        let dns_udp = UdpSocket::bind(at(config.dns_port))
            .await
            .map_err(bind_err("DNS", "udp", at(config.dns_port), "--dns-port"))?;
        // UDP and TCP share the port number, so an ephemeral UDP port carries over to TCP.
        let dns_port = dns_udp
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(config.dns_port);
        log_listening("udp", "DNS", dns_udp.local_addr());
        let dns_tcp = tcp(at(dns_port), "DNS", "--dns-port").await?;
        let http = match config.challenge {
            ChallengeKind::Http01 => {
                Some(tcp(at(config.http_port), "http-01", "--http-port").await?)
            }
            ChallengeKind::Dns01 => None,
        };
        let (https, shutdown) = if config.serve {
            (
                Some(tcp(at(config.https_port), "https", "--https-port").await?),
                Some(
                    tcp(
                        SocketAddr::new(config.shutdown_bind, config.shutdown_port),
                        "shutdown",
                        "--shutdown-port or --shutdown-bind",
                    )
                    .await?,
                ),
            )
        } else {
            (None, None)
        };
        Ok(Listeners {
            dns_udp,
            dns_tcp,
            http,
            https,
            shutdown,
        })
    }
}

async fn tcp(addr: SocketAddr, what: &'static str, flag: &'static str) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(bind_err(what, "tcp", addr, flag))?;
    log_listening("tcp", what, listener.local_addr());
    Ok(listener)
}

fn log_listening(proto: &str, what: &str, addr: std::io::Result<SocketAddr>) {
    if let Ok(addr) = addr {
        info!("listening on {proto} {addr} ({what})");
    }
}

fn bind_err(
    what: &'static str,
    proto: &'static str,
    addr: SocketAddr,
    flag: &'static str,
) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Bind {
        what,
        proto,
        addr,
        flag,
        source,
    }
}

async fn server(
    name: &'static str,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: serve::Handler,
    cancel: CancellationToken,
) -> Result<()> {
    serve::serve(
        name,
        listener,
        tls,
        handler,
        serve::Limits::default(),
        cancel,
    )
    .await;
    Ok(())
}

/// SIGINT or SIGTERM cancel the token, like `GET /shutdown`.
async fn stop_on_signal(cancel: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::Local(format!("cannot watch SIGTERM: {e}")))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| Error::Local(format!("cannot watch SIGINT: {e}")))?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received, shutting down"),
        _ = int.recv() => info!("SIGINT received, shutting down"),
        () = cancel.cancelled() => return Ok(()),
    }
    cancel.cancel();
    Ok(())
}

/// Waits for every task to stop, up to [`DRAIN`]; returns the first error a task reported.
async fn drain(tasks: &mut JoinSet<Result<()>>) -> Result<()> {
    let mut first_error = Ok(());
    let all = async {
        while let Some(joined) = tasks.join_next().await {
            let outcome =
                joined.unwrap_or_else(|e| Err(Error::Local(format!("a server task failed: {e}"))));
            if let Err(e) = outcome {
                warn!(error = %e, "server stopped with an error");
                if first_error.is_ok() {
                    first_error = Err(e);
                }
            }
        }
    };
    if tokio::time::timeout(DRAIN, all).await.is_err() {
        warn!("some servers did not stop in time; leaving them");
        tasks.abort_all();
    }
    first_error
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Local(format!("a file task failed: {e}"))))
}
