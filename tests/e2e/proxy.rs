//! A small fault-injecting HTTPS proxy that stands in front of a real Pebble. It forwards every
//! request unchanged (keeping the Host header, from which Pebble builds its URLs, so every URL
//! points back at the proxy) and, for chosen requests, corrupts or drops the answer or takes the
//! CA down. It is not a fake CA: every answer it does not corrupt is Pebble's.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::harness::{Pebble, free_port, pebble_ca, repo};

/// What to do to one chosen answer.
#[derive(Clone)]
pub enum Fault {
    /// Answer with this status and body instead (the request still reaches Pebble first).
    Replace {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Announce the whole body in Content-Length, send half of it, then cut the connection.
    Truncate,
    /// The CA goes down: kill Pebble, stop listening, cut every connection, answer nothing.
    Down,
    /// Answer `status` with `Retry-After: secs` and a rateLimited problem.
    RetryLater { status: u16, secs: u32 },
}

/// Applies `fault` to the `nth` (1-based; 0 = every) request whose path contains `path`.
#[derive(Clone)]
pub struct Rule {
    pub path: &'static str,
    pub nth: usize,
    pub fault: Fault,
}

impl Rule {
    pub fn new(path: &'static str, nth: usize, fault: Fault) -> Self {
        Rule { path, nth, fault }
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

struct Shared {
    upstream: u16,
    pebble_pid: u32,
    rules: Vec<(Rule, AtomicUsize)>,
    http: reqwest::Client,
    down: CancellationToken,
}

pub struct Proxy {
    pub port: u16,
}

impl Proxy {
    pub async fn start(pebble: &Pebble, rules: Vec<Rule>) -> Proxy {
        acme_client::install_crypto_provider();
        let port = free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        // The proxy shows the same listener certificate as Pebble, so the client's
        // --ca-bundle pebble/certs/ca.pem trusts it.
        let chain =
            vec![CertificateDer::from_pem_file(repo().join("pebble/certs/localhost.pem")).unwrap()];
        let key =
            PrivateKeyDer::from_pem_file(repo().join("pebble/certs/localhost.key.pem")).unwrap();
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let http = reqwest::Client::builder()
            .tls_certs_only(vec![
                reqwest::Certificate::from_pem(&std::fs::read(pebble_ca()).unwrap()).unwrap(),
            ])
            .no_proxy()
            // HTTP/1.1 keeps the client's Host header; over HTTP/2 it would become :authority
            // from the URL, and Pebble would hand out its own address instead of the proxy's.
            .http1_only()
            .build()
            .unwrap();
        let shared = Arc::new(Shared {
            upstream: pebble.acme_port,
            pebble_pid: pebble.pid(),
            rules: rules
                .into_iter()
                .map(|r| (r, AtomicUsize::new(0)))
                .collect(),
            http,
            down: CancellationToken::new(),
        });
        let accept_shared = shared.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
                    () = accept_shared.down.cancelled() => return, // drops the listener
                };
                let acceptor = acceptor.clone();
                let conn_shared = accept_shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc_shared = conn_shared.clone();
                    let service = hyper::service::service_fn(move |req| {
                        let shared = svc_shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service);
                    tokio::select! {
                        _ = conn => {}
                        () = conn_shared.down.cancelled() => {} // cuts the connection
                    }
                });
            }
        });
        Proxy { port }
    }

    pub fn dir_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }
}

fn full(status: StatusCode, headers: &reqwest::header::HeaderMap, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(body)
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    for (k, v) in headers {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            resp.headers_mut().append(k.clone(), v.clone());
        }
    }
    resp
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let fault = shared
        .rules
        .iter()
        .filter(|(rule, _)| path.contains(rule.path))
        .find_map(|(rule, seen)| {
            let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
            (rule.nth == 0 || n == rule.nth).then(|| rule.fault.clone())
        });

    if let Some(Fault::Down) = fault {
        let _ = std::process::Command::new("kill")
            .args(["-9", &shared.pebble_pid.to_string()])
            .status();
        shared.down.cancel();
        std::future::pending::<()>().await;
    }

    let method = req.method().clone();
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let url = format!("https://127.0.0.1:{}{path}", shared.upstream);
    let mut forward = shared.http.request(method, &url).body(body);
    for (k, v) in &headers {
        if k != "content-length" && k != "connection" {
            forward = forward.header(k, v);
        }
    }
    let upstream = match forward.send().await {
        Ok(r) => r,
        Err(e) => {
            return full(
                StatusCode::BAD_GATEWAY,
                &Default::default(),
                Bytes::from(e.to_string()),
            );
        }
    };
    let status = upstream.status();
    let up_headers = upstream.headers().clone();
    let up_body = upstream.bytes().await.unwrap_or_default();

    match fault {
        None | Some(Fault::Down) => full(status, &up_headers, up_body),
        Some(Fault::Replace {
            status,
            content_type,
            body,
        }) => {
            let mut resp = full(
                StatusCode::from_u16(status).unwrap(),
                &up_headers,
                Bytes::from(body),
            );
            resp.headers_mut()
                .insert("content-type", content_type.parse().unwrap());
            resp
        }
        Some(Fault::RetryLater { status, secs }) => {
            let problem = r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down (test proxy)"}"#;
            let mut resp = full(
                StatusCode::from_u16(status).unwrap(),
                &up_headers,
                Bytes::from(problem),
            );
            resp.headers_mut()
                .insert("content-type", "application/problem+json".parse().unwrap());
            resp.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            resp
        }
        Some(Fault::Truncate) => {
            let half = up_body.slice(..up_body.len() / 2);
            // The pause lets hyper flush the head and the first half before the body fails.
            let first = futures_util::stream::once(async move { Ok(Frame::data(half)) });
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Err(std::io::Error::other("cut off on purpose"))
            });
            let stream = futures_util::StreamExt::chain(first, cut);
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            *resp.status_mut() = status;
            for (k, v) in &up_headers {
                if k != "transfer-encoding" && k != "connection" {
                    resp.headers_mut().append(k.clone(), v.clone());
                }
            }
            resp.headers_mut()
                .insert("content-length", up_body.len().to_string().parse().unwrap());
            resp
        }
    }
}
