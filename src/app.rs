//! One run of the program: check local inputs, bind every listener, start the servers as tasks
//! under one cancellation token, drive the ACME machine, write the files, serve the certificate,
//! shut down.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::acme::client::http_client;
use crate::acme::jws::AccountKey;
use crate::acme::machine::{Action, Current, Outcome, Plan, Runtime, obtain};
use crate::acme::policy::Policy;
use crate::acme::progress::Reporter;
use crate::acme::solver::Solver;
use crate::acme::timeline::Timeline;
use crate::cert::{CertKey, Files, Issued, check_out_dir, write_atomic, write_issued};
use crate::challenge::{ChallengeKind, ChallengeStore, dns, http, tls_alpn};
use crate::cli::{AccountKeyConfig, Config};
use crate::error::{Error, Result};
use crate::files::{SetMeta, read_current};
use crate::output::Display;
use crate::renewer::{Renewer, Served, Swap};
use crate::serve::{self, https, shutdown};
use crate::summary::{Reach, Summary, Validation, timings_report};
use tokio::sync::Notify;

/// Longest wait for the servers to stop once shutdown starts (the contract says 2 s in all).
const DRAIN: Duration = Duration::from_millis(1500);
/// Longest a deploy hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(600);
/// Pending connections the kernel queues for a listener (tokio's own default).
const LISTEN_BACKLOG: u32 = 1024;

/// Runs the whole program, showing progress on `display`; returns once everything has stopped.
pub async fn run(config: Config, display: Arc<Display>) -> Result<()> {
    let config = Arc::new(config);
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let mut tasks: JoinSet<Result<()>> = JoinSet::new();

    // Fail fast on local problems, before any network traffic (one trip to a blocking thread).
    let out = config.out.clone();
    let account_config = config.account_key.clone();
    let (account_key, account_known, current) = blocking(move || {
        check_out_dir(&out).map_err(|e| match e {
            e @ Error::Hinted { .. } => e,
            e => Error::Usage(e.to_string())
                .with_hint("choose a directory acme-client can create and write"),
        })?;
        let (key, known) = load_account_key(&account_config)?;
        Ok((key, known, load_current(&out)))
    })
    .await?;
    let listeners = Listeners::bind(&config).await?;

    tasks.spawn(stop_on_signal(cancel.clone()));
    let reload = Arc::new(Notify::new());
    tasks.spawn(reload_on_sighup(reload.clone(), cancel.clone()));
    let served = Served::default();
    let store = match &config.delegation {
        Some(delegation) => ChallengeStore::delegating(delegation.clone()),
        None => ChallengeStore::new(),
    };
    if let Some((udp, tcp)) = listeners.dns {
        // With --dns-zone, the server is authoritative for that zone only.
        let zones = match &config.delegation {
            Some(delegation) => vec![delegation.zone().to_owned()],
            None => config.names.clone(),
        };
        let dns = dns::DnsHandler::new(&zones, config.record, store.clone())?;
        tasks.spawn(dns::serve(udp, tcp, dns, cancel.clone()));
    }
    if let Some(listener) = listeners.http {
        // While serving, everything but a challenge is sent to HTTPS.
        let https_port = config.serve.then_some(config.https_port);
        let handler = http::handler_with_redirect(store.clone(), https_port);
        tasks.spawn(server("http-01", listener, None, handler, cancel.clone()));
    }
    // The HTTPS port answers tls-alpn-01 validation from the start and the certificate later.
    let acme_tls = (config.challenge == ChallengeKind::TlsAlpn01)
        .then(|| tls_alpn::server_config(store.clone()));
    let router = Arc::new(https::TlsRouter::new(acme_tls));
    let page = serve::Page::new();
    let site = match (&config.upstream, &config.root) {
        (Some(upstream), _) => serve::Site::Upstream(upstream.clone()),
        (None, Some(root)) => serve::Site::Root(root.clone()),
        (None, None) => serve::Site::Page(page.clone()),
    };
    let https_addr = listeners.https.as_ref().and_then(HttpsPort::local_addr);
    // tls-alpn-01 needs the port from the start; otherwise it accepts only once the
    // certificate exists.
    let serve_https = |tasks: &mut JoinSet<Result<()>>, listener: TcpListener| {
        let (router, site, cancel) = (router.clone(), site.clone(), cancel.clone());
        tasks.spawn(async move {
            serve::serve_https(listener, router, site, serve::Limits::default(), cancel).await;
            Ok(())
        });
    };
    let mut https_reserved = None;
    match listeners.https {
        Some(HttpsPort::Listening(listener)) => serve_https(&mut tasks, listener),
        Some(HttpsPort::Reserved(socket)) => https_reserved = Some(socket),
        None => {}
    }
    let shutdown_addr = listeners
        .shutdown
        .as_ref()
        .and_then(|l| l.local_addr().ok());
    if let Some(listener) = listeners.shutdown {
        let status_of = served.clone();
        let handler = shutdown::handler_with_status(
            cancel.clone(),
            Arc::new(move || status_of.status_json()),
        );
        tasks.spawn(server("shutdown", listener, None, handler, cancel.clone()));
    }

    // Every early return in here still goes through the drain below.
    let result = async {
        let store_for_renewals = store.clone();
        let renewal_key = account_key.try_clone()?;
        display.expect_names(&config.names);
        let rt = runtime(&config.ca(), Arc::new(store), started, display.reporter())?;
        let issued = issue(&config, &rt, account_key, account_known, current, &cancel).await;
        // The display ends before anything else is printed: the summary, the timings, the error.
        display.finish(issued.is_ok());
        let (mut outcome, files) = match issued {
            Ok(done) => done,
            Err(e) => {
                if config.timings {
                    let events = rt.timeline.events();
                    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
                    eprint!(
                        "{}",
                        timings_report(&events, total_ms, rt.timeline.ca_wait_ms())
                    );
                }
                return Err(e);
            }
        };
        if let Some(e) = outcome.revoke_error.take() {
            report(&config, &outcome, &files, started, None, None).await;
            return Err(e);
        }
        let (Some(key), true) = (&outcome.key, config.serve) else {
            let hook = run_deploy_hook(&config, &outcome).await;
            report(&config, &outcome, &files, started, None, None).await;
            return hook.map_or(Ok(()), Err);
        };
        let swap: Swap = {
            let (router, page) = (router.clone(), page.clone());
            Arc::new(move |issued: &Issued, key: &CertKey| {
                router.set_site(https::site_config(issued, key)?);
                page.set(https::describe(issued));
                Ok(())
            })
        };
        swap(&outcome.issued, key)?;
        served.set(&outcome.issued, &outcome.next);
        if let Some(socket) = https_reserved.take() {
            let addr = https_addr.unwrap_or(SocketAddr::new(config.bind, 0));
            let listener = socket.listen(LISTEN_BACKLOG).map_err(bind_err(
                "https",
                "tcp",
                addr,
                "--https-port",
            ))?;
            log_listening("tcp", "https", listener.local_addr());
            serve_https(&mut tasks, listener);
        }
        report(
            &config,
            &outcome,
            &files,
            started,
            https_addr,
            shutdown_addr,
        )
        .await;
        if let Some(addr) = https_addr {
            info!(%addr, "serving the certificate");
        }
        // The hook runs once the new certificate is served.
        let hook = run_deploy_hook(&config, &outcome).await;
        if let Some(e) = &hook {
            tracing::error!(error = %e, "the deploy hook failed; serving the new certificate anyway");
            served.failed(e);
        }
        let next = outcome.next.clone();
        let current = Current {
            issued: outcome.issued,
            key: outcome.key,
            revoked: outcome.revoked,
            profile: outcome.profile,
        };
        let renewer = Renewer {
            config: config.clone(),
            store: store_for_renewals,
            account_key: renewal_key,
            swap,
            served: served.clone(),
            reload: reload.clone(),
        };
        tasks.spawn(renewer.run(current, next, cancel.clone()));
        cancel.cancelled().await;
        hook.map_or(Ok(()), Err)
    }
    .await;

    cancel.cancel();
    let drained = drain(&mut tasks).await;
    debug!("stopped");
    result.and(drained)
}

/// The account key: loaded from its file (`--account-key`, or `account.pem` in `--out`) if it
/// exists, and then the account is looked up first; else created there (mode 0600). Returns the
/// key and whether it was loaded.
pub fn load_account_key(config: &AccountKeyConfig) -> Result<(AccountKey, bool)> {
    let path = &config.path;
    let usage = |why: String| Error::Usage(format!("account key {}: {why}", path.display()));
    match std::fs::read(path) {
        Ok(bytes) => {
            let key = parse_key(&bytes).map_err(usage)?;
            if key.kind() != config.kind {
                info!(
                    alg = key.alg(),
                    "using the account key's own type; --account-key-type applies to new keys only"
                );
            }
            info!(path = %path.display(), alg = %key.alg(), "account key loaded");
            Ok((key, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = AccountKey::generate(config.kind)?;
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)
                .map_err(|e| usage(format!("cannot create its directory ({e})")))?;
            write_atomic(path, key.pkcs8_pem().as_bytes(), 0o600)
                .map_err(|e| usage(format!("{e}; choose a writable path")))?;
            info!(path = %path.display(), alg = %key.alg(), "new account key written");
            Ok((key, false))
        }
        Err(e) => Err(usage(format!("cannot read it ({e})"))),
    }
}

/// How the CA's certificate is trusted, for error messages.
pub fn trust_words(bundle: Option<&crate::cli::CaBundle>) -> String {
    match bundle {
        Some(bundle) => format!("by --ca-bundle {}", bundle.path.display()),
        None => "by the system's root certificates".to_owned(),
    }
}

/// The live objects for one exchange with the CA (`--dir`), with its deadline from `started`,
/// telling `progress` how it goes.
pub fn runtime(
    ca: &crate::cli::CaConfig,
    solver: Arc<dyn Solver>,
    started: Instant,
    progress: Reporter,
) -> Result<Runtime> {
    Ok(Runtime {
        http: http_client(&ca.dir, ca.ca_bundle.as_ref().map(|b| b.roots.as_slice()))?,
        trust: trust_words(ca.ca_bundle.as_ref()),
        deadline: started + ca.timeout,
        timeout: ca.timeout,
        policy: Policy::new(
            ca.rate_limits.budget(&ca.dir),
            started + ca.timeout,
            ca.timeout,
        ),
        solver,
        timeline: Timeline::new(started),
        progress,
    })
}

/// Obtains the certificate with `rt` (or keeps the one held, when it is not due) and writes
/// the files, unless shutdown comes first. Returns the outcome and the files.
pub(crate) async fn issue(
    config: &Config,
    rt: &Runtime,
    account_key: AccountKey,
    account_known: bool,
    current: Option<Current>,
    cancel: &CancellationToken,
) -> Result<(Outcome, Files)> {
    let plan = Plan {
        dir_url: config.dir.clone(),
        names: config.names.clone(),
        kind: config.challenge,
        revoke: config.revoke,
        account_known,
        contacts: config.contacts.clone(),
        eab: config.eab.clone(),
        request: config.request.clone(),
        preferred_chain: config.preferred_chain.clone(),
        profile: config.profile.clone(),
        force: config.force,
        current,
    };
    let outcome = tokio::select! {
        outcome = obtain(&plan, rt, account_key) => outcome?,
        () = cancel.cancelled() => return Err(Error::Interrupted),
    };
    if outcome.action == Action::Kept {
        let mut files = Files::in_dir(&config.out);
        if outcome.key.is_none() {
            files.key = None;
        }
        return Ok((outcome, files));
    }
    let out = config.out.clone();
    let meta = SetMeta {
        serial: outcome.issued.info.serial.clone(),
        profile: outcome.profile.clone(),
        dir_url: config.dir.clone(),
        revoked: outcome.revoked,
    };
    let (outcome, files) = blocking(move || {
        write_issued(&out, outcome.key.as_ref(), &outcome.issued, meta)
            .map(|files| (outcome, files))
    })
    .await?;
    debug!(dir = %config.out.display(), action = outcome.action.word(), "files written");
    Ok((outcome, files))
}

/// Runs `--deploy-hook` after new files (issued or renewed; never when kept), once they are
/// served when serving. Returns its failure.
pub(crate) async fn run_deploy_hook(config: &Config, outcome: &Outcome) -> Option<Error> {
    match (&config.deploy_hook, outcome.action) {
        (Some(cmd), Action::Issued | Action::Renewed) => {
            deploy_hook(cmd, config, outcome).await.err()
        }
        _ => None,
    }
}

/// Runs the deploy hook with `sh -c`, its environment naming what changed; one that runs longer
/// than [`HOOK_TIMEOUT`] is killed and counts as failed.
async fn deploy_hook(cmd: &str, config: &Config, outcome: &Outcome) -> Result<()> {
    info!(command = %cmd, "running the deploy hook");
    let run = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("ACME_OUT", &config.out)
        .env("ACME_NAMES", config.names.join(" "))
        .env("ACME_ACTION", outcome.action.word())
        .env("ACME_SERIAL", &outcome.issued.info.serial)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = match tokio::time::timeout(HOOK_TIMEOUT, run).await {
        Ok(status) => status.map_err(|e| Error::Hook {
            command: cmd.to_owned(),
            status: format!("could not be started ({e})"),
        })?,
        Err(_) => {
            return Err(Error::Hook {
                command: cmd.to_owned(),
                status: format!("still running after {} s, killed", HOOK_TIMEOUT.as_secs()),
            });
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(Error::Hook {
            command: cmd.to_owned(),
            status: status.to_string(),
        })
    }
}

/// A PKCS#8 PEM private key, for signing requests; the error says what is wrong and the fix.
pub(crate) fn parse_key(bytes: &[u8]) -> std::result::Result<AccountKey, String> {
    let block = pem::parse(bytes)
        .map_err(|e| format!("not a PEM file ({e}); give a PKCS#8 PEM private key"))?;
    if block.tag() != "PRIVATE KEY" {
        return Err(format!(
            "holds {} block; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`",
            crate::cert::a_block(block.tag())
        ));
    }
    AccountKey::from_pkcs8(block.contents()).map_err(|e| e.to_string())
}

/// The certificate `--out` holds, when it holds a readable one; a set that cannot be read is
/// replaced (with a warning), never an error.
pub(crate) fn load_current(out: &Path) -> Option<Current> {
    let set = match read_current(out) {
        Ok(Some(set)) => set,
        Ok(None) => return None,
        Err(e) => {
            warn!(error = %e, "the certificate files in --out cannot be read; ordering a new certificate");
            return None;
        }
    };
    let key = match set
        .key_pem
        .as_deref()
        .map(CertKey::from_pkcs8_pem)
        .transpose()
    {
        Ok(key) => key,
        Err(e) => {
            warn!(error = %e, "key.pem in --out cannot be used; ordering a new certificate");
            return None;
        }
    };
    // With a key, the chain must carry it; without (the user's CSR), take the leaf's own.
    let public_key = match &key {
        Some(key) => key.public_key_raw().to_vec(),
        None => leaf_public_key(&set.fullchain_pem).unwrap_or_default(),
    };
    match Issued::from_pem(&set.fullchain_pem, &public_key) {
        Ok(issued) => Some(Current {
            issued,
            key,
            revoked: set.meta.as_ref().is_some_and(|m| m.revoked),
            profile: set.meta.and_then(|m| m.profile),
        }),
        Err(e) => {
            warn!(error = %e, "the certificate in --out does not match its key; ordering a new one");
            None
        }
    }
}

/// The subjectPublicKey bits of the first certificate in a PEM chain.
fn leaf_public_key(pem: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let block = pem::parse_many(pem).ok()?.into_iter().next()?;
    let (_, cert) = X509Certificate::from_der(block.contents()).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// Prints the summary; when serving, first finds the URL the certificate is reached under.
async fn report(
    config: &Config,
    outcome: &Outcome,
    files: &Files,
    started: Instant,
    https: Option<SocketAddr>,
    shutdown: Option<SocketAddr>,
) {
    // The time taken stops here: the name lookup below is not part of obtaining.
    let elapsed = started.elapsed();
    let reach = match https {
        Some(addr) => Reach::find(&config.names, addr).await,
        None => None,
    };
    let summary = Summary::new(outcome, validation(config), files, elapsed, reach, shutdown);
    if config.json {
        println!("{}", summary.json());
    } else {
        print!("{}", summary.human());
    }
    if config.timings {
        eprint!("{}", summary.timings_report());
    }
}

/// Where the CA validates and where acme-client answers, for the summary.
fn validation(config: &Config) -> Validation {
    let (ca_port, listening) = match config.challenge {
        ChallengeKind::Http01 => (80, config.http_port),
        ChallengeKind::Dns01 | ChallengeKind::DnsAccount01 | ChallengeKind::DnsPersist01 => {
            (53, config.dns_port)
        }
        ChallengeKind::TlsAlpn01 => (443, config.https_port),
    };
    Validation {
        challenge: config.challenge.acme_type(),
        ca_port: config.public_ca.map(|_| ca_port),
        listening,
    }
}

/// The HTTPS port: listening from the start (tls-alpn-01 validates there), or bound and
/// reserved, accepting nothing until the certificate exists.
enum HttpsPort {
    Listening(TcpListener),
    Reserved(TcpSocket),
}

impl HttpsPort {
    fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            HttpsPort::Listening(l) => l.local_addr().ok(),
            HttpsPort::Reserved(s) => s.local_addr().ok(),
        }
    }
}

/// Every listener, bound before anything else happens so a busy port is reported at once.
struct Listeners {
    /// The DNS server's sockets, when it has work (dns-01, or `--record` given).
    dns: Option<(UdpSocket, TcpListener)>,
    http: Option<TcpListener>,
    https: Option<HttpsPort>,
    shutdown: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self> {
        let at = |port| SocketAddr::new(config.bind, port);
        let dns = if config.challenge.uses_dns() || config.record.is_some() {
            let udp = UdpSocket::bind(at(config.dns_port))
                .await
                .map_err(bind_err("DNS", "udp", at(config.dns_port), "--dns-port"))?;
            // UDP and TCP share the port number, so an ephemeral UDP port carries over to TCP.
            let dns_port = udp
                .local_addr()
                .map(|a| a.port())
                .unwrap_or(config.dns_port);
            log_listening("udp", "DNS", udp.local_addr());
            let tcp = tcp(at(dns_port), "DNS", "--dns-port").await?;
            Some((udp, tcp))
        } else {
            None
        };
        let http = if config.challenge == ChallengeKind::Http01 {
            Some(tcp(at(config.http_port), "http-01", "--http-port").await?)
        } else {
            None
        };
        let https = if config.challenge == ChallengeKind::TlsAlpn01 {
            Some(HttpsPort::Listening(
                tcp(at(config.https_port), "https", "--https-port").await?,
            ))
        } else if config.serve {
            Some(HttpsPort::Reserved(reserve(
                at(config.https_port),
                "https",
                "--https-port",
            )?))
        } else {
            None
        };
        let shutdown = if config.serve {
            let addr = SocketAddr::new(config.shutdown_bind, config.shutdown_port);
            Some(tcp(addr, "shutdown", "--shutdown-port or --shutdown-bind").await?)
        } else {
            None
        };
        Ok(Listeners {
            dns,
            http,
            https,
            shutdown,
        })
    }
}

/// Binds a TCP socket without listening: the port is ours (a busy port is found now) but no
/// connection is accepted, not even by the kernel, until [`TcpSocket::listen`].
fn reserve(addr: SocketAddr, what: &'static str, flag: &'static str) -> Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(bind_err(what, "tcp", addr, flag))?;
    // As TcpListener::bind does: a restart is not blocked by connections in TIME_WAIT. Linux
    // still refuses the address while another socket listens on it.
    socket
        .set_reuseaddr(true)
        .map_err(bind_err(what, "tcp", addr, flag))?;
    socket
        .bind(addr)
        .map_err(bind_err(what, "tcp", addr, flag))?;
    if let Ok(local) = socket.local_addr() {
        info!("reserved tcp {local} ({what}); it accepts connections once the certificate exists");
    }
    Ok(socket)
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
    tls: Option<Arc<https::TlsRouter>>,
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

/// SIGHUP asks the renewal loop to re-read the files in `--out`.
async fn reload_on_sighup(reload: Arc<Notify>, cancel: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())
        .map_err(|e| Error::Local(format!("cannot watch SIGHUP: {e}")))?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!("SIGHUP received: re-reading the files in --out");
                reload.notify_one();
            }
            () = cancel.cancelled() => return Ok(()),
        }
    }
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

/// Runs blocking file and key work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Local(format!("a blocking task failed: {e}"))))
}
