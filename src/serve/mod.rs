//! The HTTP servers (http-01, shutdown and status, HTTPS): one accept loop for all of them, with
//! optional TLS, a cap on connections, header limits, timeouts and a graceful drain. Small servers
//! supply a [`Handler`] from a request head to a complete [`HttpReply`]; the HTTPS site
//! ([`https::serve_https`]) streams pages, static files ([`root`]) or a backend ([`proxy`]).

pub mod https;
pub mod proxy;
pub mod root;
pub mod shutdown;

pub use https::{Page, Site, serve_https};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Limits that keep one misbehaving client from starving the others.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are closed at accept. An upgraded (WebSocket)
    /// connection keeps its slot until the tunnel closes.
    pub max_connections: usize,
    /// Time a client has to send a request head (slowloris guard; also closes idle HTTP/1.1
    /// keep-alive connections), and to finish a TLS handshake.
    pub header_timeout: Duration,
    /// Largest request head accepted (hyper's minimum buffer is 8 KiB); for HTTP/2, the largest
    /// header list.
    pub max_head: usize,
    /// How long open connections get to finish once shutdown starts.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            max_head: 16 * 1024,
            drain: Duration::from_millis(1000),
        }
    }
}

/// Errors a response body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every server's response body: complete, empty, or streamed from a file or a backend.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// What a [`Handler`] sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub method: &'a Method,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The authority the client asked for, port included: the request target's (HTTP/2, or an
    /// absolute-form HTTP/1.1 target, RFC 9112 §3.2.2), else the Host header.
    pub host: Option<&'a str>,
}

impl<'a> Head<'a> {
    /// The head of `req`.
    pub fn of<B>(req: &'a Request<B>) -> Self {
        Head {
            method: req.method(),
            path: req.uri().path(),
            query: req.uri().query(),
            host: host_of(req),
        }
    }

    /// The host name without its port (`[::1]` keeps its brackets), when it is a plausible
    /// DNS name or IP literal.
    pub fn host_name(&self) -> Option<&'a str> {
        let host = self.host?;
        let name = match host.find(']') {
            Some(end) if host.starts_with('[') => &host[..=end],
            _ => host.split(':').next().unwrap_or(host),
        };
        let ip6 = name.len() > 2
            && name.starts_with('[')
            && name[1..name.len() - 1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        let dns = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        (ip6 || dns).then_some(name)
    }
}

/// The authority the client asked for (see [`Head::host`]).
pub fn host_of<B>(req: &Request<B>) -> Option<&str> {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()))
}

/// A complete reply from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    /// More headers (Location, Allow, Cache-Control).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpReply {
    /// 200 with a text body.
    pub fn text(body: impl Into<Bytes>) -> Self {
        HttpReply {
            status: StatusCode::OK,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// 404.
    pub fn not_found() -> Self {
        HttpReply {
            status: StatusCode::NOT_FOUND,
            ..HttpReply::text("not found\n")
        }
    }

    /// `status` with its reason, and `detail` after it when there is one: "bad gateway: ...".
    pub fn error(status: StatusCode, detail: &str) -> Self {
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        let text = if detail.is_empty() {
            format!("{reason}\n")
        } else {
            format!("{reason}: {detail}\n")
        };
        HttpReply {
            status,
            ..HttpReply::text(text)
        }
    }

    /// 405 naming GET and HEAD as the methods allowed.
    pub fn method_not_allowed() -> Self {
        HttpReply {
            status: StatusCode::METHOD_NOT_ALLOWED,
            ..HttpReply::text("method not allowed\n")
        }
        .with_header(ALLOW, HeaderValue::from_static("GET, HEAD"))
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The reply as a response.
    pub fn into_response(self) -> Response<Body> {
        let mut response = Response::new(full(self.body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

/// A small server's logic: request head in, complete reply out. Every method reaches it; use
/// [`Handler::get_only`] for a handler that only knows GET and HEAD.
#[derive(Clone)]
pub struct Handler(Arc<dyn Fn(&Head<'_>) -> HttpReply + Send + Sync>);

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handler")
    }
}

impl Handler {
    /// A handler answering every method.
    pub fn new(f: impl Fn(&Head<'_>) -> HttpReply + Send + Sync + 'static) -> Self {
        Handler(Arc::new(f))
    }

    /// A handler from `(method, path)`, called for GET and HEAD only; other methods get 405.
    pub fn get_only(f: impl Fn(&Method, &str) -> HttpReply + Send + Sync + 'static) -> Self {
        Handler::new(move |head| {
            if head.method == Method::GET || head.method == Method::HEAD {
                f(head.method, head.path)
            } else {
                HttpReply::method_not_allowed()
            }
        })
    }

    /// The reply to `head`.
    pub fn reply(&self, head: &Head<'_>) -> HttpReply {
        (self.0)(head)
    }
}

/// The older handler shape, `(method, path) -> reply` for GET and HEAD (see
/// [`Handler::get_only`]).
impl<F> From<Arc<F>> for Handler
where
    F: Fn(&Method, &str) -> HttpReply + Send + Sync + 'static,
{
    fn from(f: Arc<F>) -> Self {
        Handler::get_only(move |method, path| f(method, path))
    }
}

/// What a request's service knows of its connection.
#[derive(Debug, Clone)]
pub struct Conn {
    pub peer: SocketAddr,
    /// The connection's slot; an upgraded connection holds a clone until its tunnel closes.
    pub slot: Arc<OwnedSemaphorePermit>,
    /// The server's token: tunnels close when it fires.
    pub cancel: CancellationToken,
}

/// Serves `handler` on an already bound `listener` (over TLS when `tls` is given) until `cancel`
/// fires; then stops accepting, frees the port and gives open connections a moment to finish.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    tls: Option<Arc<https::TlsRouter>>,
    handler: impl Into<Handler>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let handler: Handler = handler.into();
    let respond = move |req: Request<Incoming>, _conn: Conn| {
        let response = handler.reply(&Head::of(&req)).into_response();
        async move { response }
    };
    accept_loop(name, listener, tls, limits, cancel, respond).await;
}

/// The accept loop shared by every server: caps connections, handshakes TLS (through `tls`'s
/// ALPN routing) and serves each connection in its own task with `respond`, HTTP/2 when ALPN
/// chose `h2`, HTTP/1.1 (with upgrades) otherwise. On `cancel` it stops accepting and asks every
/// connection to finish (graceful shutdown), waiting for them at most `limits.drain`.
pub(crate) async fn accept_loop<R, F>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<Arc<https::TlsRouter>>,
    limits: Limits,
    cancel: CancellationToken,
    respond: R,
) where
    R: Fn(Request<Incoming>, Conn) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    debug!(server = name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(server = name, %peer, "too many connections, closing");
            continue;
        };
        let conn = Conn {
            peer,
            slot: Arc::new(slot),
            cancel: cancel.clone(),
        };
        let tls = tls.clone();
        let respond = respond.clone();
        connections.spawn(async move {
            let result = match tls {
                None => serve_connection(stream, false, respond, conn, limits).await,
                Some(router) => {
                    match tokio::time::timeout(limits.header_timeout, router.accept(stream)).await {
                        Ok(Ok(Some(tls_stream))) => {
                            let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            serve_connection(tls_stream, h2, respond, conn, limits).await
                        }
                        // A tls-alpn-01 validation handshake, or nothing to serve yet.
                        Ok(Ok(None)) => return,
                        Ok(Err(error)) => {
                            debug!(server = name, %peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(server = name, %peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(error) = result {
                debug!(server = name, %peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(limits.drain, connections.wait())
        .await
        .is_err()
    {
        debug!(
            server = name,
            "connections still open after the drain timeout, dropping them"
        );
    }
}

/// Serves one connection until it ends, or until `conn.cancel` fires and it has finished the
/// requests in flight. The protocol is chosen up front (ALPN), never sniffed from the first
/// bytes: sniffing (hyper-util's auto builder) waits for them without any timeout.
async fn serve_connection<I, R, F>(
    io: I,
    h2: bool,
    respond: R,
    conn: Conn,
    limits: Limits,
) -> Result<(), hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Fn(Request<Incoming>, Conn) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let cancel = conn.cancel.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let head_only = req.method() == Method::HEAD;
        let response = respond(req, conn.clone());
        async move {
            let response = response.await;
            Ok::<_, Infallible>(if head_only {
                without_body(response)
            } else {
                response
            })
        }
    });
    let io = TokioIo::new(io);
    if h2 {
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_head).unwrap_or(u32::MAX))
            // Pings find peers that went away without closing.
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20))
            .serve_connection(io, service);
        until_drained(connection, &cancel, |c| c.graceful_shutdown()).await
    } else {
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(limits.max_head)
            .serve_connection(io, service)
            .with_upgrades();
        until_drained(connection, &cancel, |c| c.graceful_shutdown()).await
    }
}

/// Drives `connection`; once `cancel` fires, starts its graceful shutdown and drives it to the
/// end.
async fn until_drained<C, T>(
    connection: C,
    cancel: &CancellationToken,
    shutdown: impl FnOnce(Pin<&mut C>),
) -> T
where
    C: Future<Output = T>,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return result,
        () = cancel.cancelled() => shutdown(connection.as_mut()),
    }
    connection.await
}

/// The answer to a HEAD request: the headers GET would get, Content-Length included, and no body
/// (RFC 9110 §9.3.2); an HTTP/2 peer resets a HEAD stream that carries data.
fn without_body(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bodiless =
        parts.status == StatusCode::NOT_MODIFIED || parts.status == StatusCode::NO_CONTENT;
    if !bodiless
        && !parts.headers.contains_key(CONTENT_LENGTH)
        && let Some(len) = body.size_hint().exact()
    {
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    Response::from_parts(parts, empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(method: &'a Method, host: Option<&'a str>) -> Head<'a> {
        Head {
            method,
            path: "/",
            query: None,
            host,
        }
    }

    #[test]
    fn host_names_lose_their_port() {
        let get = Method::GET;
        for (host, want) in [
            (Some("example.test"), Some("example.test")),
            (Some("example.test:8080"), Some("example.test")),
            (Some("127.0.0.1:80"), Some("127.0.0.1")),
            (Some("[::1]:5002"), Some("[::1]")),
            (Some("[::1]"), Some("[::1]")),
            (Some("bad/host"), None),
            (Some("a b"), None),
            (Some(""), None),
            (Some("[zz]"), None),
            (None, None),
        ] {
            assert_eq!(head(&get, host).host_name(), want, "{host:?}");
        }
    }

    #[test]
    fn get_only_handlers_refuse_other_methods() {
        let h = Handler::get_only(|_, _| HttpReply::text("x"));
        assert_eq!(h.reply(&head(&Method::GET, None)).status, StatusCode::OK);
        let post = h.reply(&head(&Method::POST, None));
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(post.headers.iter().any(|(n, _)| n == ALLOW));
    }
}
