//! The HTTP servers (http-01, shutdown, certificate): one hyper accept loop for all of them, with
//! optional TLS, a cap on connections, header limits and timeouts. Each server supplies only a
//! small handler from (method, path) to a reply; methods other than GET and HEAD get 405 here.

pub mod https;
pub mod shutdown;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Limits that keep one misbehaving client from starving the others.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Time a client has to send a request head (slowloris guard; also closes idle keep-alive
    /// connections), and to finish a TLS handshake.
    pub header_timeout: Duration,
    /// Largest request head accepted (hyper's minimum buffer is 8 KiB).
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

/// A complete reply from a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
}

impl Reply {
    /// 200 with a text body.
    pub fn text(body: impl Into<Bytes>) -> Self {
        Reply {
            status: StatusCode::OK,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    /// 404.
    pub fn not_found() -> Self {
        Reply {
            status: StatusCode::NOT_FOUND,
            ..Reply::text("not found\n")
        }
    }
}

/// A server's logic: `(method, path) -> reply`, called for GET and HEAD only.
pub type Handler = Arc<dyn Fn(&Method, &str) -> Reply + Send + Sync>;

fn respond(handler: &Handler, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method();
    let reply = if method == Method::GET || method == Method::HEAD {
        handler(method, req.uri().path())
    } else {
        Reply {
            status: StatusCode::METHOD_NOT_ALLOWED,
            ..Reply::text("method not allowed\n")
        }
    };
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    if reply.status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}

/// Serves `handler` on an already bound `listener` (over TLS when `tls` is given) until `cancel`
/// fires; then stops accepting, frees the port and gives open connections a moment to finish.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    tls: Option<Arc<https::TlsRouter>>,
    handler: Handler,
    limits: Limits,
    cancel: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
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
        let handler = handler.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req: Request<Incoming>| {
                let reply = respond(&handler, &req);
                async move { Ok::<_, Infallible>(reply) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_head);
            let result = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(router) => {
                    match tokio::time::timeout(limits.header_timeout, router.accept(stream)).await {
                        Ok(Ok(Some(tls_stream))) => {
                            watcher
                                .watch(builder.serve_connection(TokioIo::new(tls_stream), service))
                                .await
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
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        debug!(
            server = name,
            "connections still open after the drain timeout, dropping them"
        );
    }
}
