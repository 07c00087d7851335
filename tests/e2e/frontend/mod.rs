//! The HTTPS front end in process, through the library API: `serve_https` on a loopback port
//! with a certificate from a test CA (rcgen), talked to with reqwest and with hyper over
//! tokio-rustls; backends are hyper servers on port 0. Also the http-01 redirect and the status
//! endpoint. Every test is bounded in time.

mod page;
mod plain;
mod root;
mod swap;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use acme_client::cert::{CertKey, Issued};
use acme_client::serve::https::{TlsRouter, site_config};
use acme_client::serve::{Body, Limits, Site, serve_https};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

/// The name the test certificates carry (with IP 127.0.0.1).
pub const NAME: &str = "front.test";

/// Every test's time limit.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A test CA that issues leaf certificates for [`NAME`] and 127.0.0.1.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub der: CertificateDer<'static>,
    pem: String,
}

impl Ca {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "frontend test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            params,
            key,
        }
    }

    /// A fresh leaf (new key, new serial) and its key, as acme-client holds them.
    pub fn leaf(&self) -> (Issued, CertKey) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![NAME.to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let cert_key = CertKey::from_pkcs8_pem(key.serialize_pem().as_bytes()).unwrap();
        let chain = format!("{}{}", cert.pem(), self.pem);
        let issued = Issued::from_pem(chain.as_bytes(), cert_key.public_key_raw()).unwrap();
        (issued, cert_key)
    }
}

/// A running HTTPS front end; stops when dropped.
pub struct Front {
    pub port: u16,
    pub router: Arc<TlsRouter>,
    pub ca: Ca,
    cancel: CancellationToken,
}

impl Front {
    pub async fn start(site: Site) -> Self {
        acme_client::install_crypto_provider();
        let ca = Ca::new();
        let (issued, key) = ca.leaf();
        let router = Arc::new(TlsRouter::new(None));
        router.set_site(site_config(&issued, &key).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cancel = CancellationToken::new();
        tokio::spawn(serve_https(
            listener,
            router.clone(),
            site,
            Limits::default(),
            cancel.clone(),
        ));
        Front {
            port,
            router,
            ca,
            cancel,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{NAME}:{}{path}", self.port)
    }

    /// A reqwest client trusting only the test CA, resolving [`NAME`] to loopback; HTTP/2 when
    /// `h2` (as ALPN chooses), else HTTP/1.1 only.
    pub fn client(&self, h2: bool) -> reqwest::Client {
        let builder = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_der(&self.ca.der).unwrap()])
            .resolve(NAME, SocketAddr::from(([127, 0, 0, 1], self.port)))
            .no_proxy()
            .timeout(LIMIT);
        let builder = if h2 { builder } else { builder.http1_only() };
        builder.build().unwrap()
    }

    /// A TLS connection offering `alpn`.
    pub async fn tls(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        tls_connect(self.port, &self.ca.der, alpn).await
    }

    /// An HTTP/1.1 connection (hyper) over TLS.
    pub async fn h1(&self) -> hyper::client::conn::http1::SendRequest<Body> {
        let tls = self.tls(&[b"http/1.1"]).await;
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        send
    }

    /// An HTTP/2 connection (hyper) over TLS.
    pub async fn h2(&self) -> hyper::client::conn::http2::SendRequest<Body> {
        let tls = self.tls(&[b"h2"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        send
    }
}

impl Front {
    /// Cancels the server's token, as shutdown does.
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A TLS connection to 127.0.0.1:`port` as [`NAME`], trusting only `ca`.
pub async fn tls_connect(
    port: u16,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    connector
        .connect(ServerName::try_from(NAME).unwrap(), tcp)
        .await
        .unwrap()
}

/// Sends `request` (raw HTTP/1.1, `Connection: close`) over TLS and reads the whole answer.
pub async fn raw(front: &Front, request: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = front.tls(&[b"http/1.1"]).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status line and headers of a raw answer, and its body.
pub fn split(answer: &str) -> (&str, &str) {
    answer.split_once("\r\n\r\n").unwrap_or((answer, ""))
}

/// Runs `f` with the test's time limit.
pub async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("the test did not finish in time")
}
