//! A small fault-injecting HTTPS proxy that stands in front of a real Pebble. It forwards every
//! request unchanged (keeping the Host header, from which Pebble builds its URLs, so every URL
//! points back at the proxy) and, for chosen requests, corrupts, delays or drops the answer, takes
//! the CA down, or enforces a production CA's request limits. It records every exchange so tests
//! can count requests and check what the client sent. It is not a fake CA: every answer it does not
//! corrupt is Pebble's.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::harness::{Pebble, free_port, pebble_ca, repo};

mod dates;
mod limits;

pub use dates::RetryValue;
use limits::Limits;
pub use limits::{Budget, LETS_ENCRYPT, class_of};

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
    /// Answer 503 with this `Retry-After` and a rateLimited problem; the request never reaches
    /// Pebble (as when a load balancer in front of the CA refuses it).
    RetryAt(RetryValue),
    /// Pebble's answer with its `Replay-Nonce` replaced by one of [`INVALID_NONCES`].
    BadNonce,
    /// Pebble's answer with this many more `Link` headers (alternate, index and others).
    Links(usize),
    /// Forward the request to Pebble, then close the connection without an answer.
    DropAnswer,
    /// Hold the request until [`Proxy::release`], then forward it.
    Hold,
}

impl Fault {
    /// An order answered `invalid` with a rejectedIdentifier problem.
    pub fn invalid_order() -> Fault {
        let body = r#"{"status":"invalid","finalize":"https://127.0.0.1/x","identifiers":[],"authorizations":[],
        "error":{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"injected by the test proxy"}}"#;
        Fault::Replace {
            status: 200,
            content_type: "application/json",
            body: body.into(),
        }
    }
}

/// `Replay-Nonce` values that are not base64url (RFC 8555 §6.5.1), so a client must discard them.
pub const INVALID_NONCES: [&str; 2] = ["bad nonce!", "a+b/c="];

/// Which of the requests whose path matches a rule it applies to (1-based counts).
#[derive(Clone, Copy)]
pub enum Pick {
    Every,
    Nth(usize),
    First(usize),
    EveryOther,
}

/// Applies `fault` to the requests `pick` chooses among those whose path contains `path`.
#[derive(Clone)]
pub struct Rule {
    pub path: &'static str,
    pub pick: Pick,
    pub fault: Fault,
}

impl Rule {
    /// The `nth` (1-based; 0 = every) request to `path`.
    pub fn new(path: &'static str, nth: usize, fault: Fault) -> Self {
        let pick = if nth == 0 {
            Pick::Every
        } else {
            Pick::Nth(nth)
        };
        Rule { path, pick, fault }
    }

    /// The first `k` requests to `path`.
    pub fn first(path: &'static str, k: usize, fault: Fault) -> Self {
        Rule {
            path,
            pick: Pick::First(k),
            fault,
        }
    }

    /// The 1st, 3rd, 5th.. request to `path`.
    pub fn every_other(path: &'static str, fault: Fault) -> Self {
        Rule {
            path,
            pick: Pick::EveryOther,
            fault,
        }
    }

    fn picks(&self, n: usize) -> bool {
        match self.pick {
            Pick::Every => true,
            Pick::Nth(k) => n == k,
            Pick::First(k) => n <= k,
            Pick::EveryOther => n % 2 == 1,
        }
    }
}

/// One request the proxy saw and what it answered.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub at: Instant,
    pub at_wall: SystemTime,
    pub answered_wall: SystemTime,
    pub method: String,
    pub path: String,
    /// The answer's status; 0 when none was sent.
    pub status: u16,
    pub retry_after: Option<String>,
    /// The moment a `Retry-After` this proxy made up points at.
    pub retry_until: Option<SystemTime>,
    /// The `nonce` of the JWS protected header, for a POST.
    pub nonce: Option<String>,
    /// A POST whose JWS payload is empty (POST-as-GET, RFC 8555 §6.3).
    pub post_as_get: bool,
    /// The JWS protected header of a POST, decoded.
    pub protected: Option<serde_json::Value>,
    /// The JWS payload of a POST, decoded (`None` when empty or not JSON).
    pub payload: Option<serde_json::Value>,
}

type Body = BoxBody<Bytes, std::io::Error>;

struct Shared {
    port: u16,
    upstream: u16,
    pebble_pid: u32,
    rules: Vec<(Rule, AtomicUsize)>,
    http: reqwest::Client,
    down: CancellationToken,
    release: CancellationToken,
    limits: Option<Limits>,
    refused: AtomicUsize,
    log: Mutex<Vec<Exchange>>,
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    pub async fn start(pebble: &Pebble, rules: Vec<Rule>) -> Proxy {
        Self::start_with(pebble, rules, None).await
    }

    /// A proxy applying `rules`, and enforcing `limits` when given (the excess gets 503 with
    /// `Retry-After: 1`).
    pub async fn start_with(pebble: &Pebble, rules: Vec<Rule>, limits: Option<&[Budget]>) -> Proxy {
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
            port,
            upstream: pebble.acme_port,
            pebble_pid: pebble.pid(),
            rules: rules
                .into_iter()
                .map(|r| (r, AtomicUsize::new(0)))
                .collect(),
            http,
            down: CancellationToken::new(),
            release: CancellationToken::new(),
            limits: limits.map(Limits::new),
            refused: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
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
                    // A service error makes hyper close the connection without an answer.
                    let service = hyper::service::service_fn(move |req| {
                        let shared = svc_shared.clone();
                        async move { handle(shared, req).await.ok_or("answer dropped on purpose") }
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
        Proxy { port, shared }
    }

    pub fn dir_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// Lets every request held by [`Fault::Hold`] through, now and from now on.
    pub fn release(&self) {
        self.shared.release.cancel();
    }

    /// Every request seen so far, in the order they arrived (`status` 0 while unanswered).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many requests whose path contains `path` arrived.
    pub fn count(&self, path: &str) -> usize {
        self.exchanges()
            .iter()
            .filter(|e| e.path.contains(path))
            .count()
    }

    /// How many POSTs whose path contains `path` carried a payload (not POST-as-GET).
    pub fn posts_with_payload(&self, path: &str) -> usize {
        self.exchanges()
            .iter()
            .filter(|e| e.path.contains(path) && e.nonce.is_some() && !e.post_as_get)
            .count()
    }

    /// The decoded JWS payloads of the POSTs whose path contains `path`, in order.
    pub fn payloads(&self, path: &str) -> Vec<serde_json::Value> {
        self.exchanges()
            .into_iter()
            .filter(|e| e.path.contains(path))
            .filter_map(|e| e.payload)
            .collect()
    }

    /// Requests per endpoint class.
    pub fn by_class(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for e in self.exchanges() {
            *counts.entry(class_of(&e.path)).or_default() += 1;
        }
        counts
    }

    /// How many requests the limits refused (answered 503 without reaching Pebble).
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// The most requests that arrived within any one second.
    pub fn peak_per_second(&self) -> usize {
        let mut at: Vec<Instant> = self.exchanges().iter().map(|e| e.at).collect();
        at.sort();
        let mut peak = 0;
        let mut start = 0;
        for end in 0..at.len() {
            while at[end] - at[start] >= Duration::from_secs(1) {
                start += 1;
            }
            peak = peak.max(end - start + 1);
        }
        peak
    }

    /// The nonces of JWS sent through the proxy that are not base64url (RFC 8555 §6.5.1).
    pub fn invalid_nonces_sent(&self) -> Vec<String> {
        self.exchanges()
            .into_iter()
            .filter_map(|e| e.nonce)
            .filter(|n| !is_base64url(n))
            .collect()
    }

    /// A one-line account of what the proxy saw, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "{} requests, by class {:?}, {} refused by the limits, peak {}/s",
            self.exchanges().len(),
            self.by_class(),
            self.refused(),
            self.peak_per_second()
        )
    }
}

fn is_base64url(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The decoded protected header and payload of a flattened JWS body (the payload `None` when
/// empty, as in POST-as-GET, or not JSON).
fn jws_parts(body: &[u8]) -> Option<(serde_json::Value, Option<serde_json::Value>)> {
    let jws: serde_json::Value = serde_json::from_slice(body).ok()?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let protected = b64.decode(jws["protected"].as_str()?).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&protected).ok()?;
    let payload = jws["payload"]
        .as_str()
        .and_then(|p| b64.decode(p).ok())
        .and_then(|p| serde_json::from_slice(&p).ok());
    Some((header, payload))
}

/// Whether a flattened JWS body has an empty payload (POST-as-GET, RFC 8555 §6.3).
fn is_empty_payload(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|jws| jws["payload"].as_str() == Some(""))
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

const RATE_LIMITED: &str = r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down (test proxy)","status":503}"#;

/// A 503 with `retry_after`; with a rateLimited problem unless `bare`.
fn refusal(retry_after: &str, bare: bool) -> Response<Body> {
    let body = if bare { "" } else { RATE_LIMITED };
    let mut resp = full(
        StatusCode::SERVICE_UNAVAILABLE,
        &Default::default(),
        Bytes::from(body),
    );
    if !bare {
        resp.headers_mut()
            .insert("content-type", "application/problem+json".parse().unwrap());
    }
    resp.headers_mut()
        .insert("retry-after", retry_after.parse().unwrap());
    resp
}

/// Answers one request; `None` closes the connection without an answer.
async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Option<Response<Body>> {
    let (at, at_wall) = (Instant::now(), SystemTime::now());
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
            rule.picks(n).then(|| (rule.fault.clone(), n))
        });

    if let Some((Fault::Down, _)) = fault {
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
    let jws = jws_parts(&body);
    let nonce = jws
        .as_ref()
        .map(|(header, _)| header["nonce"].as_str().unwrap_or_default().to_owned());
    let post_as_get = jws.is_some() && is_empty_payload(&body);
    let (protected, payload) = jws.map_or((None, None), |(h, p)| (Some(h), p));
    let mut exchange = Exchange {
        at,
        at_wall,
        answered_wall: at_wall,
        method: method.to_string(),
        path: path.clone(),
        status: 0,
        retry_after: None,
        retry_until: None,
        nonce,
        post_as_get,
        protected,
        payload,
    };
    // Logged on arrival, so a held request is counted; completed once answered.
    let index = {
        let mut log = shared.log.lock().unwrap();
        log.push(exchange.clone());
        log.len() - 1
    };
    let resp = answer(&shared, fault, method, &headers, body, &mut exchange).await;
    exchange.answered_wall = SystemTime::now();
    if let Some(resp) = &resp {
        exchange.status = resp.status().as_u16();
        exchange.retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    shared.log.lock().unwrap()[index] = exchange;
    resp
}

async fn answer(
    shared: &Shared,
    fault: Option<(Fault, usize)>,
    method: hyper::Method,
    headers: &hyper::HeaderMap,
    body: Bytes,
    exchange: &mut Exchange,
) -> Option<Response<Body>> {
    let limited = shared.limits.as_ref();
    if limited.is_some_and(|l| !l.admit(class_of(&exchange.path))) {
        // As at real CAs, some refusals come without a problem document.
        let n = shared.refused.fetch_add(1, Ordering::SeqCst) + 1;
        return Some(refusal("1", n.is_multiple_of(3)));
    }
    if let Some((Fault::RetryAt(value), _)) = &fault {
        let (text, until) = dates::retry_text(value);
        exchange.retry_until = until;
        return Some(refusal(&text, false));
    }
    if let Some((Fault::Hold, _)) = fault {
        shared.release.cancelled().await;
    }

    let url = format!("https://127.0.0.1:{}{}", shared.upstream, exchange.path);
    let mut forward = shared.http.request(method, &url).body(body);
    for (k, v) in headers {
        if k != "content-length" && k != "connection" {
            forward = forward.header(k, v);
        }
    }
    let upstream = match forward.send().await {
        Ok(r) => r,
        Err(e) => {
            return Some(full(
                StatusCode::BAD_GATEWAY,
                &Default::default(),
                Bytes::from(e.to_string()),
            ));
        }
    };
    let status = upstream.status();
    let up_headers = upstream.headers().clone();
    let up_body = upstream.bytes().await.unwrap_or_default();

    let Some((fault, n)) = fault else {
        return Some(full(status, &up_headers, up_body));
    };
    Some(match fault {
        Fault::Down | Fault::RetryAt(_) | Fault::Hold => full(status, &up_headers, up_body),
        Fault::DropAnswer => return None,
        Fault::Replace {
            status,
            content_type,
            body,
        } => {
            let mut resp = full(
                StatusCode::from_u16(status).unwrap(),
                &up_headers,
                Bytes::from(body),
            );
            resp.headers_mut()
                .insert("content-type", content_type.parse().unwrap());
            resp
        }
        Fault::RetryLater { status, secs } => {
            let mut resp = full(
                StatusCode::from_u16(status).unwrap(),
                &up_headers,
                Bytes::from(RATE_LIMITED),
            );
            resp.headers_mut()
                .insert("content-type", "application/problem+json".parse().unwrap());
            resp.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
            resp
        }
        Fault::BadNonce => {
            let mut resp = full(status, &up_headers, up_body);
            let bad = INVALID_NONCES[n / 2 % INVALID_NONCES.len()];
            resp.headers_mut()
                .insert("replay-nonce", bad.parse().unwrap());
            resp
        }
        Fault::Links(count) => {
            let mut resp = full(status, &up_headers, up_body);
            for i in 0..count {
                let link = match i % 3 {
                    0 => format!(
                        "<https://127.0.0.1:{}/harmless/{i}>;rel=\"alternate\"",
                        shared.port
                    ),
                    1 => format!("<https://127.0.0.1:{}/dir>;rel=\"index\"", shared.port),
                    _ => format!("<https://example.invalid/doc/{i}>;rel=\"help\""),
                };
                resp.headers_mut().append("link", link.parse().unwrap());
            }
            resp
        }
        Fault::Truncate => {
            let half = up_body.slice(..up_body.len() / 2);
            // The pause lets hyper flush the head and the first half before the body fails.
            let first = futures_util::stream::once(async move { Ok(Frame::data(half)) });
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
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
    })
}
