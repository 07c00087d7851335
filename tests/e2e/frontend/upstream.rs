//! The reverse proxy: forwarded headers, 20 MB bodies streamed each way over HTTP/1.1 and
//! HTTP/2 (the backend sees the first request chunk before the client sends the rest, the client
//! sees the first response chunk before the backend sends the rest), a WebSocket echo through
//! the proxy, and a clear 502 when the backend is down.

use std::sync::Arc;

use acme_client::serve::{Body, BoxError, Site, full};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{Notify, mpsc};

use super::*;

const CHUNK: usize = 64 * 1024;
const BIG: usize = 20 * 1024 * 1024;

/// Handshakes between the test and the backend that prove streaming.
#[derive(Default)]
struct Signals {
    /// The backend got the first chunk of an upload.
    upload_started: Notify,
    /// The client got the first chunk of a download.
    download_seen: Notify,
}

/// Aborts the backend task when dropped.
struct Backend {
    port: u16,
    signals: Arc<Signals>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let signals = Arc::new(Signals::default());
        let shared = signals.clone();
        let task = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let signals = shared.clone();
                let service = hyper::service::service_fn(move |req| {
                    let signals = signals.clone();
                    async move { Ok::<_, std::convert::Infallible>(backend(req, signals).await) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades(),
                );
            }
        });
        Backend {
            port,
            signals,
            task,
        }
    }

    fn site(&self) -> Site {
        Site::Upstream(format!("http://127.0.0.1:{}", self.port).parse().unwrap())
    }
}

/// The byte at `offset` of every test body.
fn pattern(offset: usize) -> u8 {
    (offset % 251) as u8
}

fn chunk(index: usize, len: usize) -> Bytes {
    (0..len).map(|i| pattern(index * CHUNK + i)).collect()
}

fn expected_digest(len: usize) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for index in 0..len.div_ceil(CHUNK) {
        ctx.update(&chunk(index, CHUNK.min(len - index * CHUNK)));
    }
    hex(ctx.finish().as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a body to its end, hashing it; `first` is told when the first data arrives.
async fn digest(mut body: Incoming, first: &Notify) -> (usize, String) {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            if len == 0 {
                first.notify_one();
            }
            len += data.len();
            ctx.update(&data);
        }
    }
    (len, hex(ctx.finish().as_ref()))
}

/// A body of `len` pattern bytes: the first chunk at once, the rest after `go`.
fn streamed(len: usize, go: Arc<Signals>, upload: bool) -> Body {
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(async move {
        let chunks = len.div_ceil(CHUNK);
        for index in 0..chunks {
            if index == 1 {
                let wait = if upload {
                    go.upload_started.notified()
                } else {
                    go.download_seen.notified()
                };
                if tokio::time::timeout(Duration::from_secs(10), wait)
                    .await
                    .is_err()
                {
                    // The other side never saw the first chunk: it is being buffered. Stop, so
                    // the body stays incomplete and the test fails on the digest.
                    return;
                }
            }
            if tx
                .send(chunk(index, CHUNK.min(len - index * CHUNK)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
        .map(|data| Ok::<_, BoxError>(Frame::data(data)));
    StreamBody::new(stream).boxed_unsync()
}

use futures_util::StreamExt as _;

async fn backend(req: Request<Incoming>, signals: Arc<Signals>) -> Response<Body> {
    match req.uri().path() {
        "/echo" => {
            let mut text = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
            for (name, value) in req.headers() {
                text.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
            }
            Response::new(full(text))
        }
        "/upload" => {
            let (len, hash) = digest(req.into_body(), &signals.upload_started).await;
            Response::new(full(format!("{len} {hash}")))
        }
        "/download" => Response::new(streamed(BIG, signals, false)),
        "/ws" => websocket(req),
        _ => {
            let mut response = Response::new(full("no such backend page\n"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// A WebSocket echo server (RFC 6455): accepts the upgrade, then answers each (small, masked)
/// client frame with the same payload, unmasked.
fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let key = req.headers()["sec-websocket-key"]
        .to_str()
        .unwrap()
        .to_owned();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let mut io = TokioIo::new(upgrade.await.unwrap());
        loop {
            let mut head = [0u8; 2];
            if io.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = usize::from(head[1] & 0x7f);
            let mut mask = [0u8; 4];
            io.read_exact(&mut mask).await.unwrap();
            let mut payload = vec![0u8; len];
            io.read_exact(&mut payload).await.unwrap();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            let mut frame = vec![head[0], len as u8];
            frame.extend_from_slice(&payload);
            io.write_all(&frame).await.unwrap();
            if head[0] & 0x0f == 0x8 {
                return; // close
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept_key(&key))
        .body(acme_client::serve::empty())
        .unwrap()
}

/// RFC 6455 §4.2.2: base64(SHA-1(key + GUID)).
fn accept_key(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

fn header_lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[tokio::test]
async fn headers_are_forwarded() {
    bounded(async {
        let backend = Backend::start().await;
        let front = Front::start(backend.site()).await;
        let host = format!("{NAME}:{}", front.port);

        // HTTP/1.1, with hop-by-hop fields that must not reach the backend.
        let mut h1 = front.h1().await;
        let req = Request::get("/echo?x=1")
            .header("host", &host)
            .header("x-forwarded-for", "10.9.8.7")
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("te", "trailers")
            .header("x-kept", "yes")
            .body(acme_client::serve::empty())
            .unwrap();
        let answer = h1.send_request(req).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let text = String::from_utf8(
            answer
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        let lines = header_lines(&text);
        assert_eq!(lines[0], "GET /echo?x=1 HTTP/1.1", "{text}");
        assert!(lines.contains(&format!("host: {host}").as_str()), "{text}");
        assert!(
            lines.contains(&"x-forwarded-for: 10.9.8.7, 127.0.0.1"),
            "{text}"
        );
        assert!(lines.contains(&"x-forwarded-proto: https"), "{text}");
        let forwarded = format!("forwarded: for=127.0.0.1;proto=https;host=\"{host}\"");
        assert!(lines.contains(&forwarded.as_str()), "{text}");
        assert!(lines.contains(&"x-kept: yes"), "{text}");
        for gone in ["x-secret", "keep-alive", "te:"] {
            assert!(!text.contains(gone), "{gone} was forwarded:\n{text}");
        }

        // HTTP/2: the host travels as :authority, and the backend still gets HTTP/1.1 with Host.
        let client = front.client(true);
        let answer = client.get(front.url("/echo")).send().await.unwrap();
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
        let text = answer.text().await.unwrap();
        let lines = header_lines(&text);
        assert_eq!(lines[0], "GET /echo HTTP/1.1", "{text}");
        assert!(lines.contains(&format!("host: {host}").as_str()), "{text}");
        assert!(lines.contains(&"x-forwarded-for: 127.0.0.1"), "{text}");
        assert!(lines.contains(&forwarded.as_str()), "{text}");

        // Backend answers pass through, status included.
        let missing = client.get(front.url("/nothing")).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(missing.text().await.unwrap(), "no such backend page\n");
    })
    .await;
}

async fn big_bodies(h2: bool) {
    let backend = Backend::start().await;
    let front = Front::start(backend.site()).await;
    let target = |path: &str| {
        if h2 { front.url(path) } else { path.to_owned() }
    };
    let send = |req: Request<Body>| {
        let front = &front;
        async move {
            if h2 {
                front.h2().await.send_request(req).await.unwrap()
            } else {
                front.h1().await.send_request(req).await.unwrap()
            }
        }
    };
    let want = expected_digest(BIG);

    // Upload: the backend must see the first chunk before the client sends the second.
    let host = |req: hyper::http::request::Builder| {
        if h2 {
            req
        } else {
            req.header("host", format!("{NAME}:{}", front.port))
        }
    };
    let req = host(Request::post(target("/upload")))
        .body(streamed(BIG, backend.signals.clone(), true))
        .unwrap();
    let answer = send(req).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let text = answer.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(std::str::from_utf8(&text).unwrap(), format!("{BIG} {want}"));

    // Download: the client must see the first chunk before the backend sends the second.
    let req = host(Request::get(target("/download")))
        .body(acme_client::serve::empty())
        .unwrap();
    let answer = send(req).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let (len, hash) = digest(answer.into_body(), &backend.signals.download_seen).await;
    assert_eq!((len, hash), (BIG, want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_stream_both_ways_http1() {
    bounded(big_bodies(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_stream_both_ways_http2() {
    bounded(big_bodies(true)).await;
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled() {
    bounded(async {
        let backend = Backend::start().await;
        let front = Front::start(backend.site()).await;
        let mut tls = front.tls(&[b"http/1.1"]).await;
        // The key and accept value of RFC 6455 §1.3.
        tls.write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {NAME}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tls.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap().to_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: websocket"), "{head}");
        assert!(
            head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );

        for message in ["hello", "through the proxy"] {
            let mask = [7u8, 1, 2, 3];
            let mut frame = vec![0x81, 0x80 | message.len() as u8];
            frame.extend_from_slice(&mask);
            frame.extend(message.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            tls.write_all(&frame).await.unwrap();
            let mut echo = vec![0u8; 2 + message.len()];
            tls.read_exact(&mut echo).await.unwrap();
            assert_eq!(echo[0], 0x81);
            assert_eq!(&echo[2..], message.as_bytes());
        }
    })
    .await;
}

#[tokio::test]
async fn a_backend_that_is_down_gets_502() {
    bounded(async {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let front = Front::start(Site::Upstream(
            format!("http://127.0.0.1:{port}").parse().unwrap(),
        ))
        .await;
        for h2 in [false, true] {
            let answer = front.client(h2).get(front.url("/x")).send().await.unwrap();
            assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
            let text = answer.text().await.unwrap();
            assert!(
                text.starts_with(&format!(
                    "bad gateway: the upstream server http://127.0.0.1:{port}/ cannot be reached"
                )),
                "{text}"
            );
            assert!(text.contains("refused"), "{text}");
        }
    })
    .await;
}
