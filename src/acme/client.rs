//! The ACME transport: one kept-alive HTTPS connection to the CA, the directory, the nonce pool,
//! signed POSTs (RFC 8555 §6.2, §6.3) and every retry the machine should never see: connection
//! attempts, `badNonce` (§6.5) and rate limits with `Retry-After` (§6.6). All bounded.
//!
//! The state machine (`machine.rs`) calls [`Transport::post`] and gets a reply or a final error.

use std::error::Error as StdError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::jws::AccountKey;
use super::policy::{Endpoint, Policy, RetryAfter};
use super::timeline::Timeline;
use super::types::{Directory, Problem};
use crate::error::{Error, Result};
use crate::sync::lock;

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
/// Times a read whose answer was lost is sent again.
const MAX_LOST_READS: u32 = 2;
/// Wait when a 429/503 carries no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// Largest answer read from the CA. A 100-name certificate chain is about 20 KiB.
const MAX_BODY: usize = 1024 * 1024;
/// Nonces kept for later requests; more would only go stale.
const NONCE_POOL: usize = 32;
/// Shortest hold before a request that the timeline records.
const BUDGET_EVENT_MIN: Duration = Duration::from_millis(1);
/// Most header lines read in one answer.
const MAX_HEADERS: usize = 2000;
/// Longest nonce accepted; real ones are a few dozen characters.
const MAX_NONCE_LEN: usize = 512;

/// The `Content-Type` of signed requests (RFC 8555 §6.2).
const JOSE_JSON: &str = "application/jose+json";
/// The header carrying a fresh nonce (RFC 8555 §6.5.1).
const REPLAY_NONCE: &str = "replay-nonce";
/// The `Accept` of the certificate download (RFC 8555 §7.4.2).
pub const PEM_CHAIN: &str = "application/pem-certificate-chain";

/// A CA response, read whole.
#[derive(Debug)]
pub struct CaResponse {
    pub url: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl CaResponse {
    /// The `Location` header (account and order URLs, RFC 8555 §7.3, §7.4).
    pub fn location(&self) -> Result<String> {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| self.protocol("no Location header"))
    }

    /// `Retry-After` in any of its forms (RFC 9110 §10.2.3); None when absent or unreadable.
    pub fn retry_after(&self) -> Option<RetryAfter> {
        RetryAfter::parse(
            self.headers.get(RETRY_AFTER)?.to_str().ok()?,
            std::time::SystemTime::now(),
        )
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

/// The directory object in `reply` (RFC 8555 §7.1.1). A 4xx answer, or one that is not a
/// directory, means `--dir` names something else: [`Error::NotDirectory`]. A 5xx is the CA's
/// own failure and keeps its problem document.
fn directory(reply: &CaResponse) -> Result<Directory> {
    let not_directory = |detail: String| Error::NotDirectory {
        url: reply.url.clone(),
        detail,
    };
    if reply.status.is_client_error() {
        return Err(not_directory(format!("it answered HTTP {}", reply.status)));
    }
    if !reply.status.is_success() {
        return Err(Error::Acme {
            problem: reply.problem(),
        });
    }
    let value: Value = serde_json::from_slice(&reply.body).map_err(|_| {
        let kind = reply
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no Content-Type");
        not_directory(format!("its {} answer is not JSON ({kind})", reply.status))
    })?;
    serde_json::from_value(value).map_err(|e| {
        not_directory(format!(
            "its JSON lacks what a directory holds ({})",
            e.to_string().replace('`', "")
        ))
    })
}

/// Whether a `Replay-Nonce` value is usable: base64url, as RFC 8555 §6.5.1 requires (clients
/// must ignore any other value), and of a sane length.
pub fn valid_nonce(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NONCE_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
        // A CA may send many Link headers (alternate chains, index); hyper's default is 100.
        .http1_max_headers(MAX_HEADERS)
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
        || crate::names::ip_address(host).is_some_and(|ip| ip.is_loopback())
}

/// The ACME transport for one account key.
#[derive(Debug)]
pub struct Transport {
    http: reqwest::Client,
    /// How the CA's certificate is trusted, for error messages.
    trust: String,
    policy: Policy,
    dir_url: String,
    directory: Directory,
    key: AccountKey,
    kid: Mutex<Option<String>>,
    nonces: Mutex<Vec<String>>,
    /// Wakes requests waiting for a nonce when one comes in or a `newNonce` fetch ends.
    nonce_ready: Notify,
    /// Whether a `newNonce` request is in flight (one at a time).
    nonce_fetching: AtomicBool,
    timeline: Timeline,
}

/// Clears the "fetching a nonce" flag and wakes the waiters, however the fetch ends.
struct FetchingNonce<'a>(&'a Transport);

impl Drop for FetchingNonce<'_> {
    fn drop(&mut self) {
        self.0.nonce_fetching.store(false, Ordering::SeqCst);
        self.0.nonce_ready.notify_waiters();
    }
}

impl Transport {
    /// Fetches the directory (RFC 8555 §7.1.1) and returns a transport ready to sign requests.
    pub async fn connect(
        http: reqwest::Client,
        trust: String,
        policy: Policy,
        dir_url: &str,
        key: AccountKey,
        timeline: Timeline,
    ) -> Result<Self> {
        let mut transport = Transport {
            http,
            trust,
            policy,
            dir_url: dir_url.to_owned(),
            directory: Directory {
                new_nonce: String::new(),
                new_account: String::new(),
                new_order: String::new(),
                revoke_cert: None,
                key_change: None,
                renewal_info: None,
                meta: None,
            },
            key,
            kid: Mutex::new(None),
            nonces: Mutex::new(Vec::new()),
            nonce_ready: Notify::new(),
            nonce_fetching: AtomicBool::new(false),
            timeline,
        };
        let reply = transport
            .read("GET", dir_url, || transport.http.get(dir_url))
            .await?;
        transport.directory = directory(&reply)?;
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

    /// The request policy (budget, pauses, requests in flight).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sets the account URL used as `kid` from now on (RFC 8555 §6.2).
    pub fn set_kid(&self, kid: String) {
        *lock(&self.kid) = Some(kid);
    }

    /// The endpoint class of `url`, for the request budget.
    fn endpoint(&self, url: &str) -> Endpoint {
        let d = &self.directory;
        if url == self.dir_url {
            Endpoint::Directory
        } else if url == d.new_nonce {
            Endpoint::NewNonce
        } else if url == d.new_account {
            Endpoint::NewAccount
        } else if url == d.new_order {
            Endpoint::NewOrder
        } else if d.revoke_cert.as_deref() == Some(url) {
            Endpoint::RevokeCert
        } else if d
            .renewal_info
            .as_deref()
            .is_some_and(|ri| url.starts_with(ri))
        {
            Endpoint::RenewalInfo
        } else {
            Endpoint::Other
        }
    }

    /// A nonce (RFC 8555 §7.2): from the pool, else from the next answer that brings one, with at
    /// most one `newNonce` request in flight at a time.
    pub async fn nonce(&self) -> Result<String> {
        loop {
            if let Some(nonce) = lock(&self.nonces).pop() {
                return Ok(nonce);
            }
            let notified = self.nonce_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !lock(&self.nonces).is_empty() {
                continue;
            }
            if self
                .nonce_fetching
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                let _fetching = FetchingNonce(self);
                let url = self.directory.new_nonce.clone();
                let reply = self.read("HEAD", &url, || self.http.head(&url)).await?;
                if !reply.headers.contains_key(REPLAY_NONCE) {
                    return Err(Error::Protocol {
                        url,
                        detail: format!(
                            "newNonce answered {} without a usable Replay-Nonce header",
                            reply.status
                        ),
                    });
                }
                continue;
            }
            notified.await;
        }
    }

    /// Returns an unspent nonce to the pool.
    pub fn restore_nonce(&self, nonce: String) {
        self.keep_nonce(nonce);
    }

    fn keep_nonce(&self, nonce: String) {
        {
            let mut pool = lock(&self.nonces);
            if pool.len() >= NONCE_POOL {
                pool.remove(0);
            }
            pool.push(nonce);
        }
        self.nonce_ready.notify_one();
    }

    /// An unsigned GET, for the resources RFC 9773 §4.2 serves that way (renewal information).
    /// 429/503 and lost answers are handled as for every request.
    pub async fn get_unsigned(&self, url: &str) -> Result<CaResponse> {
        self.read("GET", url, || self.http.get(url)).await
    }

    /// POST-as-GET (RFC 8555 §6.3). A lost answer is asked for again.
    pub async fn get(&self, url: &str) -> Result<CaResponse> {
        self.post(url, None, None).await
    }

    /// A signed POST whose repetition does no harm (a read, or a request the CA treats as
    /// idempotent, such as `newAccount` with the same key): a lost answer is asked for again.
    pub async fn post(
        &self,
        url: &str,
        payload: Option<&Value>,
        accept: Option<&str>,
    ) -> Result<CaResponse> {
        let mut lost = 0;
        loop {
            match self.post_effect(url, payload, accept).await {
                Err(Error::AnswerLost { url, detail }) if lost < MAX_LOST_READS => {
                    lost += 1;
                    warn!(%url, %detail, "the answer never came; asking again");
                }
                other => return other,
            }
        }
    }

    /// A signed POST with `payload` (None: POST-as-GET). Uses `kid` once set, `jwk` before.
    /// Retries `badNonce` with the nonce the error carried and waits out 429/503 `Retry-After`,
    /// both bounded; any other non-2xx answer becomes [`Error::Acme`] with the CA's problem.
    /// When the answer never comes, it is not sent again: [`Error::AnswerLost`] lets the caller
    /// read the resource's state, as the request may have been processed.
    pub async fn post_effect(
        &self,
        url: &str,
        payload: Option<&Value>,
        accept: Option<&str>,
    ) -> Result<CaResponse> {
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
            if is_limited(reply.status) && rate_limited < MAX_RATE_LIMIT_RETRIES {
                rate_limited += 1;
                self.wait_out(&reply)?;
                continue;
            }
            return Err(Error::Acme { problem });
        }
    }

    /// An unsigned read (the directory, `newNonce`): 429/503 are waited out, a lost answer is
    /// asked for again, both bounded. Other answers are returned as they are.
    async fn read(
        &self,
        method: &'static str,
        url: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<CaResponse> {
        let mut rate_limited = 0;
        let mut lost = 0;
        loop {
            match self.send(method, url, &build).await {
                Ok(reply) if is_limited(reply.status) && rate_limited < MAX_RATE_LIMIT_RETRIES => {
                    rate_limited += 1;
                    self.wait_out(&reply)?;
                }
                Err(Error::AnswerLost { url, detail }) if lost < MAX_LOST_READS => {
                    lost += 1;
                    warn!(%url, %detail, "the answer never came; asking again");
                }
                other => return other,
            }
        }
    }

    /// Tells the policy about a 429/503: everyone pauses until its `Retry-After` has passed.
    /// Fails at once when that is past the deadline.
    fn wait_out(&self, reply: &CaResponse) -> Result<()> {
        let retry_after = reply.retry_after();
        warn!(
            url = %reply.url,
            status = %reply.status,
            retry_after = retry_after.as_ref().map(|r| r.raw.as_str()).unwrap_or("(none)"),
            "the CA asks to slow down; pausing every request to it"
        );
        self.timeline.record(
            "rate limit",
            format!(
                "Retry-After {} of {}",
                retry_after
                    .as_ref()
                    .map(|r| r.raw.as_str())
                    .unwrap_or("(none)"),
                reply.url
            ),
            Some(reply.status.as_u16()),
            Instant::now(),
        );
        self.policy
            .limited(&reply.url, retry_after, DEFAULT_RETRY_AFTER)
    }

    /// Sends one request once admitted by the policy, retrying only a connection that could not
    /// be opened (the request was surely not sent), and reads the whole reply. A TLS trust
    /// failure is never retried; a failure after the request may have gone out is
    /// [`Error::AnswerLost`]. Keeps the reply's `Replay-Nonce` when it is valid.
    async fn send(
        &self,
        method: &'static str,
        url: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<CaResponse> {
        let mut attempt = 0;
        let endpoint = self.endpoint(url);
        let queued = Instant::now();
        let admitted = self.policy.admit(endpoint).await?;
        if queued.elapsed() >= BUDGET_EVENT_MIN {
            // Held back by a pause the CA asked for, the request budget or the in-flight bound.
            self.timeline.record(
                "held back",
                format!("{method} {url} ({} budget and pauses)", endpoint.name()),
                None,
                queued,
            );
        }
        let (response, started) = loop {
            let started = Instant::now();
            match build().send().await {
                Ok(response) => break (response, started),
                Err(e) => {
                    let error = self.classify(&e, url);
                    if !matches!(error, Error::Connect { .. }) {
                        return Err(error);
                    }
                    if !e.is_connect() {
                        return Err(Error::AnswerLost {
                            url: url.to_owned(),
                            detail: chain(&e),
                        });
                    }
                    let retry = (attempt as usize) < CONNECT_BACKOFF.len()
                        && attempt + 1 < CONNECT_ATTEMPTS;
                    if !retry {
                        return Err(error);
                    }
                    let pause = CONNECT_BACKOFF[attempt as usize];
                    if Instant::now() + pause >= self.policy.deadline() {
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
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(nonce) = headers.get(REPLAY_NONCE).and_then(|v| v.to_str().ok()) {
            if valid_nonce(nonce) {
                self.keep_nonce(nonce.to_owned());
            } else {
                debug!(
                    url,
                    "ignoring a Replay-Nonce that is not base64url (RFC 8555 §6.5.1)"
                );
            }
        }
        let body = read_body(response, url).await;
        drop(admitted);
        let body = body?;
        if !is_limited(status) {
            self.policy.answered();
        }
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
        Ok(CaResponse {
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

/// 429 and 503: the CA asks to come back later (RFC 8555 §6.6, RFC 9110 §15.6.4).
fn is_limited(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
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
    fn only_base64url_nonces_are_kept_rfc8555_6_5_1() {
        assert!(valid_nonce("oFvnlFP1wIhRlYS2jTaXbA"));
        assert!(valid_nonce("a-b_c"));
        for bad in ["", "bad nonce!", "a+b/c=", "nonce=", "\u{e9}t\u{e9}"] {
            assert!(!valid_nonce(bad), "{bad}");
        }
        assert!(!valid_nonce(&"a".repeat(MAX_NONCE_LEN + 1)));
    }

    fn reply(status: u16, body: &str) -> CaResponse {
        CaResponse {
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
    fn a_dir_that_is_not_a_directory_says_so_rfc8555_7_1_1() {
        for (status, body, why) in [
            (404, "404 page not found", "HTTP 404 Not Found"),
            (200, "<html></html>", "is not JSON"),
            (200, r#"{"hello":"world"}"#, "missing field newNonce"),
        ] {
            let err = directory(&reply(status, body)).unwrap_err();
            assert!(matches!(err, Error::NotDirectory { .. }), "{err}");
            assert!(err.to_string().contains(why), "{err}");
            assert!(err.hint().unwrap().starts_with("check --dir;"), "{err}");
        }
        // The CA's own failure is its problem, not a wrong --dir.
        let err = directory(&reply(500, "oops")).unwrap_err();
        assert!(matches!(err, Error::Acme { .. }), "{err}");
        let ok =
            r#"{"newNonce":"https://ca/n","newAccount":"https://ca/a","newOrder":"https://ca/o"}"#;
        assert_eq!(
            directory(&reply(200, ok)).unwrap().new_order,
            "https://ca/o"
        );
    }

    #[test]
    fn bad_json_is_a_protocol_error() {
        let err = reply(200, "not json").json::<Directory>().unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err}");
    }
}
