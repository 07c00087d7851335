//! The reverse proxy behind `--upstream`: every request on the HTTPS port is forwarded over
//! HTTP/1.1 to one HTTP backend through a pooled hyper client, bodies streamed both ways,
//! hop-by-hop fields dropped (RFC 9110 §7.6.1) and the client named in `X-Forwarded-For`,
//! `X-Forwarded-Proto` and `Forwarded` (RFC 7239). WebSocket upgrades become a byte tunnel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tracing::{debug, warn};

use super::{Body, Conn, HttpReply, empty, host_of};

/// How long the backend gets to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the backend gets to start its answer (the body may then take any time): past it,
/// 504.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests forwarded at once (each holds a backend connection until its answer's body is
/// done). More wait their turn: HTTP/2 clients can open hundreds of streams, and one backend
/// connection each would cost memory and the backend's patience for nothing (nginx keeps a few
/// dozen). WebSocket tunnels give their place back once upgraded.
const MAX_IN_FLIGHT: usize = 64;

/// Hop-by-hop fields (RFC 9110 §7.6.1, plus the obsolete ones still seen in the wild): they
/// describe one connection and are never forwarded. `Expect` is answered by our own server.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// A reverse proxy to one backend.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// What the backend is called in messages.
    name: String,
    authority: Authority,
    /// The backend URL's path, prefixed to every request path ("" for `/`).
    prefix: String,
    client: Client<HttpConnector, Incoming>,
    in_flight: Arc<Semaphore>,
}

impl Proxy {
    /// A proxy to `upstream`, an `http://host:port[/prefix]` URL.
    pub fn new(upstream: Uri) -> Result<Self, String> {
        check_upstream(&upstream)?;
        let authority = upstream
            .authority()
            .cloned()
            .ok_or_else(|| format!("the upstream {upstream} names no host"))?;
        let prefix = upstream.path().trim_end_matches('/').to_owned();
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Proxy {
            name: upstream.to_string(),
            authority,
            prefix,
            client,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Forwards `req` from the client at `conn` and relays the backend's answer.
    pub async fn forward(&self, mut req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let host = host_of(&req).map(str::to_owned);
        let websocket = wants_websocket(&req);
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let upgrade_value = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        if let (true, Some(value)) = (websocket, upgrade_value) {
            parts.headers.insert(header::UPGRADE, value);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        // An HTTP/2 request carries its host as :authority only.
        if let Some(value) = host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
            parts.headers.insert(header::HOST, value);
        }
        add_forwarded(&mut parts.headers, conn.peer, host.as_deref());
        parts.uri = match self.target(&parts.uri) {
            Ok(uri) => uri,
            Err(message) => return error_reply(StatusCode::BAD_REQUEST, &message),
        };
        parts.version = Version::HTTP_11;
        let request = Request::from_parts(parts, body);

        // The semaphore is never closed; a failure to acquire cannot happen.
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return error_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "the proxy is shutting down",
            );
        };
        let mut response =
            match tokio::time::timeout(RESPONSE_TIMEOUT, self.client.request(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    let cause = causes(&error);
                    warn!(upstream = %self.name, error = %cause, "the upstream cannot be reached");
                    return error_reply(
                        StatusCode::BAD_GATEWAY,
                        &format!(
                            "the upstream server {} cannot be reached: {cause}",
                            self.name
                        ),
                    );
                }
                Err(_) => {
                    warn!(upstream = %self.name, "the upstream did not answer in time");
                    return error_reply(
                        StatusCode::GATEWAY_TIMEOUT,
                        &format!(
                            "the upstream server {} did not answer within {} s",
                            self.name,
                            RESPONSE_TIMEOUT.as_secs()
                        ),
                    );
                }
            };

        if let (Some(client_upgrade), StatusCode::SWITCHING_PROTOCOLS) =
            (client_upgrade, response.status())
        {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(client_upgrade, backend_upgrade, conn.clone()));
            let (mut parts, _) = response.into_parts();
            let upgrade_value = parts.headers.get(header::UPGRADE).cloned();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(value) = upgrade_value {
                parts.headers.insert(header::UPGRADE, value);
            }
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            return Response::from_parts(parts, empty());
        }
        strip_hop_by_hop(response.headers_mut());
        // The place is held until the body is done (or dropped).
        response.map(|body| {
            body.map_err(move |e| {
                let _held = &permit;
                e.into()
            })
            .boxed_unsync()
        })
    }

    /// The backend URL for a request target: the upstream's authority and prefix, the request's
    /// path and query.
    fn target(&self, uri: &Uri) -> Result<Uri, String> {
        let path = uri.path_and_query().map_or("/", PathAndQuery::as_str);
        let path = if path.starts_with('/') { path } else { "/" };
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path}", self.prefix))
            .build()
            .map_err(|e| format!("cannot forward the request target {uri}: {e}"))
    }
}

/// Whether `upstream` is a URL this proxy can forward to.
pub fn check_upstream(upstream: &Uri) -> Result<(), String> {
    if upstream.scheme() != Some(&Scheme::HTTP) {
        return Err(format!(
            "the upstream {upstream} must be an http:// URL (the backend is reached without TLS)"
        ));
    }
    if upstream.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(format!("the upstream {upstream} names no host"));
    }
    if upstream.query().is_some() {
        return Err(format!("the upstream {upstream} must not have a query"));
    }
    Ok(())
}

/// An HTTP/1.1 `Connection: upgrade` + `Upgrade: websocket` request (RFC 6455 §4.1).
fn wants_websocket<B>(req: &Request<B>) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.version() == Version::HTTP_11
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

/// Removes the hop-by-hop fields, and those the Connection field names (RFC 9110 §7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Appends the client to `X-Forwarded-For` and `Forwarded` (RFC 7239 §4, IPv6 quoted and
/// bracketed) and sets `X-Forwarded-Proto: https`.
fn add_forwarded(headers: &mut HeaderMap, peer: SocketAddr, host: Option<&str>) {
    let ip = peer.ip().to_canonical();
    append_list(headers, "x-forwarded-for", &ip.to_string());
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
    let node = if ip.is_ipv6() {
        format!("\"[{ip}]\"")
    } else {
        ip.to_string()
    };
    let mut element = format!("for={node};proto=https");
    // A host with a port or brackets is not a token: quote it (RFC 7239 §4).
    if let Some(host) = host.filter(|h| !h.contains(['"', '\\'])) {
        element.push_str(&format!(";host=\"{host}\""));
    }
    append_list(headers, "forwarded", &element);
}

/// Appends `item` to the comma-separated list in `name` (all its lines joined into one).
fn append_list(headers: &mut HeaderMap, name: &'static str, item: &str) {
    let mut values: Vec<String> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    values.push(item.to_owned());
    if let Ok(value) = HeaderValue::from_str(&values.join(", ")) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// Copies bytes both ways between the upgraded client and backend connections until either
/// closes or the server shuts down. The tunnel holds the client connection's slot.
async fn tunnel(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade, conn: Conn) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(error) => {
            debug!(peer = %conn.peer, %error, "the WebSocket upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut backend = TokioIo::new(backend);
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
            if let Err(error) = result {
                debug!(peer = %conn.peer, %error, "the WebSocket tunnel ended with an error");
            }
        }
        () = conn.cancel.cancelled() => {}
    }
}

/// An error and its causes on one line.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn error_reply(status: StatusCode, message: &str) -> Response<Body> {
    HttpReply::error(status, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_are_dropped() {
        // RFC 9110 §7.6.1: the Connection field's options go too.
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("x-kept", "yes"),
            ("content-length", "3"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["content-length", "x-kept"]);
    }

    #[test]
    fn forwarded_names_the_client() {
        // RFC 7239 §4 and §6: IPv6 nodes are quoted and bracketed.
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        headers.insert("forwarded", HeaderValue::from_static("for=10.0.0.1"));
        add_forwarded(
            &mut headers,
            "[::1]:4000".parse().unwrap(),
            Some("a.test:443"),
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, ::1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(
            headers["forwarded"],
            "for=10.0.0.1, for=\"[::1]\";proto=https;host=\"a.test:443\""
        );
        let mut headers = HeaderMap::new();
        add_forwarded(&mut headers, "[::ffff:192.0.2.7]:1".parse().unwrap(), None);
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["forwarded"], "for=192.0.2.7;proto=https");
    }

    #[test]
    fn upstreams_are_plain_http() {
        assert!(check_upstream(&"http://127.0.0.1:8080".parse().unwrap()).is_ok());
        assert!(check_upstream(&"http://backend/app/".parse().unwrap()).is_ok());
        assert!(check_upstream(&"https://backend".parse().unwrap()).is_err());
        assert!(check_upstream(&"/relative".parse().unwrap()).is_err());
        assert!(check_upstream(&"http://b/?q=1".parse().unwrap()).is_err());
    }

    #[test]
    fn targets_keep_path_and_query() {
        let proxy = Proxy::new("http://127.0.0.1:8080/app/".parse().unwrap()).unwrap();
        let target = proxy.target(&"/x/y?z=1".parse().unwrap()).unwrap();
        assert_eq!(target, "http://127.0.0.1:8080/app/x/y?z=1");
        let proxy = Proxy::new("http://127.0.0.1:8080".parse().unwrap()).unwrap();
        let target = proxy
            .target(&"https://front.test/p?q".parse().unwrap())
            .unwrap();
        assert_eq!(target, "http://127.0.0.1:8080/p?q");
    }
}
