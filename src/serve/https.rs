//! The HTTPS server started once the certificate is obtained: it presents the full chain with its
//! key and answers `GET /` (and `HEAD /`) with a short description of the certificate.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use super::{Handler, Reply};
use crate::cert::{CertKey, Issued};
use crate::error::{Error, Result};

/// A TLS acceptor presenting `issued` (leaf and intermediates) with `key`.
pub fn acceptor(issued: &Issued, key: &CertKey) -> Result<TlsAcceptor> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der()));
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(issued.certs.clone(), key)
        .map_err(|e| Error::Local(format!("cannot serve the certificate over TLS: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The handler: `/` describes the certificate, anything else is 404.
pub fn handler(issued: &Issued) -> Handler {
    let info = &issued.info;
    let page = format!(
        "acme-client is serving a certificate for {}\nserial {}\nissuer {}\nvalid {} to {}\n",
        info.names.join(", "),
        info.serial,
        info.issuer,
        info.not_before,
        info.not_after
    );
    Arc::new(move |_method, path| {
        if path == "/" {
            Reply::text(page.clone())
        } else {
            Reply::not_found()
        }
    })
}
