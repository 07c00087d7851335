//! The ACME transport: one kept-alive HTTPS connection to the CA, the directory, the nonce pool,
//! signed POSTs (RFC 8555 §6.2, §6.3) and every retry the machine should never see: connection
//! attempts, `badNonce` (§6.5) and rate limits with `Retry-After` (§6.6). All bounded.
//!
//! The state machine (`machine.rs`) calls [`Transport::post`] and gets a reply or a final error.

use std::error::Error as StdError;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::jws::AccountKey;
use super::timeline::Timeline;
use super::types::{Directory, Problem};
use crate::error::{Error, Result};

/// Attempts to open a connection to the CA before giving up (a few, within seconds).
const CONNECT_ATTEMPTS: u32 = 4;
/// Pause before connection attempt n+1: short, growing.
const CONNECT_BACKOFF: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_millis(600),
    Duration::from_millis(1500),
];
/// `badNonce` retries per request. Each costs one round trip and the error carries a fresh nonce,
/// so this is generous: even a CA rejecting 90% of nonces fails a request only 0.9^100 of the time.
const MAX_BAD_NONCE_RETRIES: u32 = 100;
/// 429/503 retries per request, each waiting out `Retry-After` within the deadline.
const MAX_RATE_LIMIT_RETRIES: u32 = 10;
/// Wait when a 429/503 carries no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Largest answer read from the CA. A 100-name certificate chain is about 20 KiB.
const MAX_BODY: usize = 1024 * 1024;
/// Nonces kept for later requests; more would only go stale.
const NONCE_POOL: usize = 32;

/// The `Content-Type` of signed requests (RFC 8555 §6.2).
const JOSE_JSON: &str = "application/jose+json";
/// The `Accept` of the certificate download (RFC 8555 §7.4.2).
pub const PEM_CHAIN: &str = "application/pem-certificate-chain";

/// A CA response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The `Location` header (account and order URLs, RFC 8555 §7.3, §7.4).
    pub fn location(&self) -> Result<String> {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| self.protocol("no Location header"))
    }

    /// `Retry-After` as a duration, from delta-seconds or an HTTP date (RFC 9110 §10.2.3).
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.headers.get(RETRY_AFTER)?.to_str().ok()?)
    }

    /// The body as JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            self.protocol(format!(
                "the {} answer is not the expected JSON object ({e})",
                self.status
            ))
        })
    }

    /// The body as a problem document, or a stand-in naming the status when it is not one.
    pub fn problem(&self) -> Problem {
        serde_json::from_slice::<Problem>(&self.body)
            .ok()
            .filter(|p| !p.kind.is_empty() || p.detail.is_some())
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&self.body);
                let text: String = text.chars().take(200).collect();
                Problem {
                    status: Some(self.status.as_u16()),
                    ..Problem::local(format!(
                        "HTTP {} from {}: {}",
                        self.status,
                        self.url,
                        text.trim()
                    ))
                }
            })
    }

    fn protocol(&self, detail: impl Into<String>) -> Error {
        Error::Protocol {
            url: self.url.clone(),
            detail: detail.into(),
        }
    }
}

/// Parses `Retry-After`: delta-seconds, or an IMF-fixdate in the future.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::format_description::well_known::Rfc2822;
    let when = time::OffsetDateTime::parse(&value.replace("GMT", "+0000"), &format).ok()?;
    let delta = when - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// Builds the HTTPS client for the CA at `dir_url`: rustls on ring, trusting only `roots` when
/// given, else the platform's roots. Verification is never switched off. `HTTPS_PROXY` is
/// honoured, except for a CA on loopback, which no proxy can reach.
pub fn http_client(
    dir_url: &str,
    roots: Option<&[CertificateDer<'static>]>,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if is_loopback(dir_url) {
        builder = builder.no_proxy();
    }
    let mut builder = builder
        .user_agent(concat!("acme-client/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(60))
        .https_only(true);
    if let Some(roots) = roots {
        let certs = roots
            .iter()
            .map(|c| reqwest::Certificate::from_der(c.as_ref()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::Usage(format!(
                    "--ca-bundle holds a certificate reqwest refuses: {e}"
                ))
            })?;
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| Error::Local(format!("cannot set up the HTTPS client: {}", chain(&e))))
}

/// Whether the URL's host is a loopback address or `localhost`.
fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The ACME transport for one account key.
#[derive(Debug)]
pub struct Transport {
    http: reqwest::Client,
    /// How the CA's certificate is trusted, for error messages.
    trust: String,
    deadline: Instant,
    directory: Directory,
    key: AccountKey,
    kid: Mutex<Option<String>>,
    nonces: Mutex<Vec<String>>,
    timeline: Timeline,
}

impl Transport {
    /// Fetches the directory (RFC 8555 §7.1.1) and returns a transport ready to sign requests.
    pub async fn connect(
        http: reqwest::Client,
        trust: String,
        deadline: Instant,
        dir_url: &str,
        key: AccountKey,
        timeline: Timeline,
    ) -> Result<Self> {
        let mut transport = Transport {
            http,
            trust,
            deadline,
            directory: Directory {
                new_nonce: String::new(),
                new_account: String::new(),
                new_order: String::new(),
                revoke_cert: None,
                key_change: None,
                meta: None,
            },
            key,
            kid: Mutex::new(None),
            nonces: Mutex::new(Vec::new()),
            timeline,
        };
        let reply = transport
            .send("GET", dir_url, || transport.http.get(dir_url))
            .await?;
        if !reply.status.is_success() {
            return Err(Error::Acme {
                problem: reply.problem(),
            });
        }
        transport.directory = reply.json()?;
        Ok(transport)
    }

    /// The directory read at connect time.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The account key.
    pub fn key(&self) -> &AccountKey {
        &self.key
    }

    /// Sets the account URL used as `kid` from now on (RFC 8555 §6.2).
    pub fn set_kid(&self, kid: String) {
        *lock(&self.kid) = Some(kid);
    }

    /// A nonce from the pool, or a fresh one from `newNonce` when none is held (RFC 8555 §7.2).
    pub async fn nonce(&self) -> Result<String> {
        if let Some(nonce) = lock(&self.nonces).pop() {
            return Ok(nonce);
        }
        let url = self.directory.new_nonce.clone();
        let reply = self.send("HEAD", &url, || self.http.head(&url)).await?;
        lock(&self.nonces).pop().ok_or_else(|| Error::Protocol {
            url,
            detail: format!(
                "newNonce answered {} without a Replay-Nonce header",
                reply.status
            ),
        })
    }

    /// Returns an unspent nonce to the pool.
    pub fn restore_nonce(&self, nonce: String) {
        lock(&self.nonces).push(nonce);
    }

    /// POST-as-GET (RFC 8555 §6.3).
    pub async fn get(&self, url: &str) -> Result<Reply> {
        self.post(url, None, None).await
    }

    /// A signed POST with `payload` (None: POST-as-GET). Uses `kid` once set, `jwk` before.
    /// Retries `badNonce` with the nonce the error carried and waits out 429/503 `Retry-After`,
    /// both bounded; any other non-2xx answer becomes [`Error::Acme`] with the CA's problem.
    pub async fn post(
        &self,
        url: &str,
        payload: Option<&Value>,
        accept: Option<&str>,
    ) -> Result<Reply> {
        let mut bad_nonces = 0;
        let mut rate_limited = 0;
        loop {
            let nonce = self.nonce().await?;
            let mut protected = json!({"alg": self.key.alg(), "nonce": nonce, "url": url});
            match lock(&self.kid).as_ref() {
                Some(kid) => protected["kid"] = Value::String(kid.clone()),
                None => protected["jwk"] = self.key.jwk().to_json(),
            }
            let body = Bytes::from(self.key.sign(&protected, payload)?.to_string());
            let reply = self
                .send("POST", url, || {
                    let req = self
                        .http
                        .post(url)
                        .header(CONTENT_TYPE, JOSE_JSON)
                        .body(body.clone());
                    match accept {
                        Some(accept) => req.header(ACCEPT, accept),
                        None => req,
                    }
                })
                .await?;
            if reply.status.is_success() {
                return Ok(reply);
            }
            let problem = reply.problem();
            if problem.is_type("badNonce") && bad_nonces < MAX_BAD_NONCE_RETRIES {
                bad_nonces += 1;
                debug!(
                    url,
                    attempt = bad_nonces,
                    "badNonce, retrying with the nonce from the error"
                );
                continue;
            }
            let limited = matches!(
                reply.status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            if limited && rate_limited < MAX_RATE_LIMIT_RETRIES {
                let wait = reply.retry_after().unwrap_or(DEFAULT_RETRY_AFTER);
                if Instant::now() + wait < self.deadline {
                    rate_limited += 1;
                    warn!(url, status = %reply.status, wait_ms = wait.as_millis() as u64, "the CA asks to retry later; waiting");
                    let started = Instant::now();
                    tokio::time::sleep(wait).await;
                    self.timeline.record(
                        "rate limit",
                        format!("Retry-After of {url}"),
                        None,
                        started,
                    );
                    continue;
                }
            }
            return Err(Error::Acme { problem });
        }
    }

    /// Sends one request, retrying only a connection that could not be opened, and reads the
    /// whole reply. A TLS trust failure is never retried. Keeps the reply's `Replay-Nonce`.
    async fn send(
        &self,
        method: &'static str,
        url: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply> {
        let mut attempt = 0;
        let response = loop {
            let started = Instant::now();
            match build().send().await {
                Ok(response) => break (response, started),
                Err(e) => {
                    let error = self.classify(&e, url);
                    let retry = matches!(error, Error::Connect { .. })
                        && (e.is_connect() || e.is_timeout())
                        && (attempt as usize) < CONNECT_BACKOFF.len()
                        && attempt + 1 < CONNECT_ATTEMPTS;
                    if !retry {
                        return Err(error);
                    }
                    let pause = CONNECT_BACKOFF[attempt as usize];
                    if Instant::now() + pause >= self.deadline {
                        return Err(error);
                    }
                    warn!(url, error = %error, "cannot reach the CA, retrying");
                    attempt += 1;
                    let started = Instant::now();
                    tokio::time::sleep(pause).await;
                    self.timeline.record(
                        "connect retry",
                        format!("before retrying {url}"),
                        None,
                        started,
                    );
                }
            }
        };
        let (response, started) = response;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(nonce) = headers.get("replay-nonce").and_then(|v| v.to_str().ok()) {
            let mut pool = lock(&self.nonces);
            if pool.len() >= NONCE_POOL {
                pool.remove(0);
            }
            pool.push(nonce.to_owned());
        }
        let body = read_body(response, url).await?;
        debug!(
            method,
            url,
            status = status.as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        self.timeline.record(
            "request",
            format!("{method} {url}"),
            Some(status.as_u16()),
            started,
        );
        Ok(Reply {
            url: url.to_owned(),
            status,
            headers,
            body,
        })
    }

    fn classify(&self, e: &reqwest::Error, url: &str) -> Error {
        if let Some(tls) = find_rustls_error(e)
            && matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            )
        {
            return Error::Trust {
                url: url.to_owned(),
                by: self.trust.clone(),
                detail: tls.to_string(),
            };
        }
        Error::Connect {
            url: url.to_owned(),
            detail: chain(e),
        }
    }
}

/// Reads a whole answer, refusing one larger than [`MAX_BODY`].
async fn read_body(mut response: reqwest::Response, url: &str) -> Result<Bytes> {
    let status = response.status();
    let protocol = |detail: String| Error::Protocol {
        url: url.to_owned(),
        detail,
    };
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(protocol(format!(
                        "the {status} answer is larger than {} KiB; no ACME object is",
                        MAX_BODY / 1024
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(e) => {
                return Err(protocol(format!(
                    "the {status} answer was cut off: {}",
                    chain(&e)
                )));
            }
        }
    }
}

/// A std mutex guard, recovering from poisoning: the data (nonces, logs) stays usable.
/// No guard is ever held across an `.await`.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Finds a rustls error in the source chain, including inside an `io::Error`.
fn find_rustls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // io::Error::source() skips the error it wraps (and TLS errors arrive as an io::Error
        // inside an io::Error), so step into the wrapped error instead.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            current = Some(inner);
            continue;
        }
        current = err.source();
    }
    None
}

/// An error and its causes on one line, without repeats.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_bypass_proxies() {
        assert!(is_loopback("https://127.0.0.1:14000/dir"));
        assert!(is_loopback("https://[::1]:14000/dir"));
        assert!(is_loopback("https://LOCALHOST/dir"));
        assert!(!is_loopback(
            "https://acme-v02.api.letsencrypt.org/directory"
        ));
        assert!(!is_loopback("https://10.0.0.1/dir"));
    }

    #[test]
    fn retry_after_seconds_and_date_rfc9110_10_2_3() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 1999 23:59:59 GMT"),
            Some(Duration::ZERO)
        );
        let future = (time::OffsetDateTime::now_utc() + time::Duration::seconds(30))
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let wait = parse_retry_after(&future).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
        assert_eq!(parse_retry_after("soon"), None);
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            url: "https://ca/x".into(),
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn problem_document_is_kept_rfc8555_6_7() {
        let p = reply(
            400,
            r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce","status":400}"#,
        )
        .problem();
        assert!(p.is_type("badNonce"));
        assert_eq!(p.status, Some(400));
    }

    #[test]
    fn non_problem_body_names_the_status() {
        let p = reply(500, "<html>oops</html>").problem();
        assert_eq!(p.status, Some(500));
        assert!(
            p.detail
                .unwrap()
                .contains("HTTP 500 Internal Server Error from https://ca/x")
        );
    }

    #[test]
    fn bad_json_is_a_protocol_error() {
        let err = reply(200, "not json").json::<Directory>().unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
    }
}
