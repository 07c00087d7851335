//! The HTTPS port: one listener that routes each connection by ALPN. `acme-tls/1` gets the
//! tls-alpn-01 validation certificate for its SNI (RFC 8737); everything else gets the obtained
//! certificate (full chain) once there is one, and `GET /` / `HEAD /` describe it.

use std::sync::{Arc, OnceLock, RwLock};

use rustls::ServerConfig;
use rustls::server::Acceptor;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::{Handler, Reply};
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
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
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

    /// Starts serving the obtained certificate.
    pub fn set_site(&self, config: Arc<ServerConfig>) {
        *self.site.write().unwrap_or_else(|p| p.into_inner()) = Some(config);
    }

    fn site(&self) -> Option<Arc<ServerConfig>> {
        self.site.read().unwrap_or_else(|p| p.into_inner()).clone()
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

/// The handler: `/` answers the page once it is set, anything else is 404. (Before the
/// certificate is obtained no TLS connection gets this far.)
pub fn handler(page: Arc<OnceLock<String>>) -> Handler {
    Arc::new(move |_method, path| match page.get() {
        Some(page) if path == "/" => Reply::text(page.clone()),
        _ => Reply::not_found(),
    })
}
