//! The HTTPS port: one listener that routes each connection by ALPN. `acme-tls/1` gets the
//! tls-alpn-01 validation certificate for its SNI (RFC 8737); everything else gets the obtained
//! certificate (full chain) once there is one, over HTTP/2 or HTTP/1.1, and the [`Site`]: the
//! description page, a reverse proxy ([`super::proxy`]) or static files ([`super::root`]).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::Acceptor;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, Uri};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use super::proxy::Proxy;
use super::root::Root;
use super::{Body, Conn, Handler, Head, HttpReply, Limits, accept_loop};
use crate::acme::solver::ACME_TLS_ALPN;
use crate::cert::{CertKey, Issued};
use crate::error::{Error, Result};

/// The TLS configuration serving `issued` (leaf and intermediates) with `key`.
pub fn site_config(issued: &Issued, key: &CertKey) -> Result<Arc<ServerConfig>> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der()));
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(issued.certs.clone(), key)
        .map_err(|e| Error::Local(format!("cannot serve the certificate over TLS: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Chooses the TLS configuration per connection from the client's hello.
#[derive(Debug, Default)]
pub struct TlsRouter {
    /// Answers `acme-tls/1` handshakes (tls-alpn-01), when that challenge is in use.
    acme: Option<Arc<ServerConfig>>,
    /// The obtained certificate, once there is one. A std lock: held only to clone the Arc.
    site: RwLock<Option<Arc<ServerConfig>>>,
}

impl TlsRouter {
    /// A router answering tls-alpn-01 validation with `acme` (if any) and nothing else yet.
    pub fn new(acme: Option<Arc<ServerConfig>>) -> Self {
        TlsRouter {
            acme,
            site: RwLock::new(None),
        }
    }

    /// Starts serving the obtained certificate, or swaps it for a renewed one: new handshakes
    /// get `config`, open connections keep the one they were made with.
    pub fn set_site(&self, config: Arc<ServerConfig>) {
        *crate::sync::write(&self.site) = Some(config);
    }

    fn site(&self) -> Option<Arc<ServerConfig>> {
        crate::sync::read(&self.site).clone()
    }

    /// Handshakes `stream`. Returns a stream for HTTP, or None when the connection was a
    /// validation handshake (finished and closed, RFC 8737 §3) or there is nothing to serve yet.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<Option<TlsStream<TcpStream>>> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
        let wants_acme = start
            .client_hello()
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if wants_acme {
            if let Some(acme) = &self.acme {
                let mut tls = start.into_stream(acme.clone()).await?;
                let _ = tls.shutdown().await;
            }
            return Ok(None);
        }
        match self.site() {
            Some(site) => Ok(Some(start.into_stream(site).await?)),
            None => Ok(None),
        }
    }
}

/// The page `GET /` answers: a short description of the certificate.
pub fn describe(issued: &Issued) -> String {
    let info = &issued.info;
    format!(
        "acme-client is serving a certificate for {}\nserial {}\nissuer {}\nvalid {} to {}\n",
        info.names.join(", "),
        info.serial,
        info.issuer,
        info.not_before,
        info.not_after
    )
}

/// The description page, replaceable while serving (the certificate is renewed in place). A cheap
/// `Clone` handle; a std lock, held only to clone or replace the text.
#[derive(Debug, Clone, Default)]
pub struct Page(Arc<RwLock<Option<Arc<str>>>>);

impl Page {
    /// A page with no text yet (`GET /` answers 404 until [`Page::set`]).
    pub fn new() -> Self {
        Page::default()
    }

    /// Replaces the text.
    pub fn set(&self, text: String) {
        *crate::sync::write(&self.0) = Some(text.into());
    }

    /// The current text.
    pub fn get(&self) -> Option<Arc<str>> {
        crate::sync::read(&self.0).clone()
    }

    /// The handler: `GET /` and `HEAD /` answer the text once it is set, other paths 404, other
    /// methods 405.
    pub fn handler(&self) -> Handler {
        let page = self.clone();
        Handler::get_only(move |_method, path| match page.get() {
            Some(text) if path == "/" => HttpReply::text(text.as_bytes().to_vec()),
            _ => HttpReply::not_found(),
        })
    }
}

/// What the HTTPS port serves once there is a certificate.
#[derive(Debug, Clone)]
pub enum Site {
    /// The description page (no `--upstream` or `--root`).
    Page(Page),
    /// A reverse proxy to this HTTP backend (`--upstream`).
    Upstream(Uri),
    /// Static files under this directory (`--root`).
    Root(PathBuf),
}

/// The site ready to answer requests.
enum Front {
    Page(Handler),
    Proxy(Box<Proxy>),
    Root(Root),
    /// A site that cannot work (an unusable upstream): every request gets this reply.
    Broken(HttpReply),
}

impl Front {
    async fn new(site: Site) -> Front {
        match site {
            Site::Page(page) => Front::Page(page.handler()),
            Site::Upstream(uri) => match Proxy::new(uri) {
                Ok(proxy) => Front::Proxy(Box::new(proxy)),
                Err(message) => {
                    error!(%message, "cannot proxy to the upstream");
                    Front::Broken(HttpReply::error(hyper::StatusCode::BAD_GATEWAY, &message))
                }
            },
            Site::Root(dir) => Front::Root(Root::new(dir).await),
        }
    }

    async fn respond(&self, req: Request<Incoming>, conn: Conn) -> Response<Body> {
        match self {
            Front::Page(handler) => handler.reply(&Head::of(&req)).into_response(),
            Front::Proxy(proxy) => proxy.forward(req, &conn).await,
            Front::Root(root) => root.respond(&req).await,
            Front::Broken(reply) => reply.clone().into_response(),
        }
    }
}

/// Serves `site` on an already bound `listener` until `cancel` fires: each connection is routed
/// by `router` (tls-alpn-01 validation, or the certificate it currently holds, swapped with
/// [`TlsRouter::set_site`]), then served over HTTP/2 or HTTP/1.1 as ALPN chose.
pub async fn serve_https(
    listener: TcpListener,
    router: Arc<TlsRouter>,
    site: Site,
    limits: Limits,
    cancel: CancellationToken,
) {
    let what = match &site {
        Site::Page(_) => "the description page".to_owned(),
        Site::Upstream(uri) => format!("a reverse proxy to {uri}"),
        Site::Root(dir) => format!("the files under {}", dir.display()),
    };
    info!("HTTPS serves {what}");
    let front = Arc::new(Front::new(site).await);
    let respond = move |req: Request<Incoming>, conn: Conn| {
        let front = front.clone();
        async move {
            if req.method() == Method::CONNECT {
                return HttpReply::method_not_allowed().into_response();
            }
            front.respond(req, conn).await
        }
    };
    accept_loop("https", listener, Some(router), limits, cancel, respond).await;
}
