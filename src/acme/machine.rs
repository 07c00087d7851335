//! The ACME state machine (RFC 8555 §7): directory, nonce, account, order, authorizations,
//! finalize, certificate, revoke. Each step is a variant carrying only what is valid in it;
//! [`Step::advance`] is one straight-line move and [`obtain`] drives them, logging each transition.
//!
//! The machine knows nothing of the servers: it publishes answers through the [`ChallengeStore`].

use std::time::Duration;

use futures_util::future::try_join_all;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info};

use super::client::{PEM_CHAIN, Reply, Transport};
use super::jws::{AccountKey, b64};
use super::timeline::{Event, Timeline};
use super::types::{
    Authorization, AuthzAction, Identifier, Order, OrderNext, authz_action, authz_problem,
    order_next,
};
use crate::cert::{CertKey, Issued, KeyType, UserCsr};
use crate::challenge::{ChallengeKind, ChallengeStore, http::is_token};
use crate::error::{Error, Result};

/// External Account Binding credentials (RFC 8555 §7.3.4).
#[derive(Debug, Clone)]
pub struct Eab {
    pub kid: String,
    pub hmac_key: Vec<u8>,
}

/// Where the certificate request comes from.
#[derive(Debug, Clone)]
pub enum CertRequest {
    /// A fresh key of this type and a CSR made here.
    Generate(KeyType),
    /// The user's CSR (`--csr`); we never see the key.
    Csr(UserCsr),
}

/// Everything the machine needs, fixed for the whole run.
#[derive(Debug)]
pub struct Plan {
    pub dir_url: String,
    /// DNS names and IP addresses (RFC 8738), normalised.
    pub names: Vec<String>,
    pub kind: ChallengeKind,
    pub revoke: bool,
    pub http: reqwest::Client,
    /// How the CA's TLS certificate is trusted, for error messages.
    pub trust: String,
    pub deadline: Instant,
    pub timeout: Duration,
    pub store: ChallengeStore,
    /// The account key came from an existing file: look the account up before creating one.
    pub account_known: bool,
    pub contacts: Vec<String>,
    pub eab: Option<Eab>,
    pub request: CertRequest,
    /// Issuer CN of the topmost certificate of the preferred chain (`--preferred-chain`).
    pub preferred_chain: Option<String>,
    /// Every request and wait, for the timings report.
    pub timeline: Timeline,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Outcome {
    pub account_url: String,
    pub order_url: String,
    pub certificate_url: String,
    pub terms_of_service: Option<String>,
    /// The certificate key; None with the user's CSR.
    pub key: Option<CertKey>,
    pub issued: Issued,
    pub revoked: bool,
    /// Authorizations the CA had already validated (reused), which needed no challenge.
    pub reused_authorizations: usize,
    pub steps: Vec<StepTiming>,
    /// Every request to the CA and every wait on it.
    pub events: Vec<Event>,
    /// Time during which a request or wait was outstanding.
    pub ca_wait_ms: f64,
}

/// How long one step took.
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub step: &'static str,
    pub ms: f64,
}

/// Known once the account exists.
#[derive(Debug)]
pub struct Session {
    acme: Transport,
    account_url: String,
}

/// Known once the order exists.
#[derive(Debug)]
pub struct OrderRef {
    session: Session,
    url: String,
    finalize: String,
}

/// The certificate key being generated in the background while the CA validates (RSA keys take
/// a moment). None with the user's CSR.
type KeyJob = Option<JoinHandle<Result<CertKey>>>;

/// One step of the exchange, with the data valid in it.
// One value lives at a time and moves once per step; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step {
    /// Read the directory (RFC 8555 §7.1.1).
    Directory { key: AccountKey },
    /// Hold a first nonce (RFC 8555 §7.2).
    Nonce { acme: Transport },
    /// Find or create the account, agreeing to the terms of service (RFC 8555 §7.3).
    Account { acme: Transport },
    /// Submit the order for every name (RFC 8555 §7.4).
    Order { session: Session },
    /// Answer every pending authorization at once and wait until all are valid (RFC 8555 §7.5).
    Authorizations {
        order: OrderRef,
        authorizations: Vec<String>,
        key: KeyJob,
    },
    /// Wait for `ready`, send the CSR, wait for `valid` (RFC 8555 §7.4).
    Finalize {
        order: OrderRef,
        reused: usize,
        key: KeyJob,
    },
    /// Download the PEM chain, and the preferred alternate if asked (RFC 8555 §7.4.2).
    Certificate {
        order: OrderRef,
        reused: usize,
        url: String,
        key: Option<CertKey>,
    },
    /// Revoke the certificate just obtained (RFC 8555 §7.6).
    Revoke { order: OrderRef, done: Box<Outcome> },
    /// Finished.
    Done(Box<Outcome>),
}

impl Step {
    /// What the step is doing, for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Directory { .. } => "reading the directory",
            Step::Nonce { .. } => "getting a nonce",
            Step::Account { .. } => "finding or creating the account",
            Step::Order { .. } => "creating the order",
            Step::Authorizations { .. } => "validating the authorizations",
            Step::Finalize { .. } => "finalizing the order",
            Step::Certificate { .. } => "downloading the certificate",
            Step::Revoke { .. } => "revoking the certificate",
            Step::Done(_) => "done",
        }
    }

    /// Makes one move.
    pub async fn advance(self, plan: &Plan) -> Result<Step> {
        match self {
            Step::Directory { key } => {
                let acme = Transport::connect(
                    plan.http.clone(),
                    plan.trust.clone(),
                    plan.deadline,
                    &plan.dir_url,
                    key,
                    plan.timeline.clone(),
                )
                .await?;
                if let Some(tos) = acme
                    .directory()
                    .meta
                    .as_ref()
                    .and_then(|m| m.terms_of_service.as_ref())
                {
                    info!(terms_of_service = %tos, "agreeing to the CA's terms of service");
                }
                Ok(Step::Nonce { acme })
            }
            Step::Nonce { acme } => {
                // Put the nonce back: it is spent by the first signed request.
                let nonce = acme.nonce().await?;
                acme.restore_nonce(nonce);
                Ok(Step::Account { acme })
            }
            Step::Account { acme } => {
                let account_url = account(&acme, plan).await?;
                acme.set_kid(account_url.clone());
                Ok(Step::Order {
                    session: Session { acme, account_url },
                })
            }
            Step::Order { session } => {
                // Generate the certificate key now, off the async threads, so an RSA key is
                // ready by the time the authorizations are.
                let key = match &plan.request {
                    CertRequest::Generate(kind) => {
                        let kind = *kind;
                        Some(tokio::task::spawn_blocking(move || CertKey::generate(kind)))
                    }
                    CertRequest::Csr(_) => None,
                };
                let identifiers: Vec<Identifier> =
                    plan.names.iter().map(|n| Identifier::for_name(n)).collect();
                let url = session.acme.directory().new_order.clone();
                let reply = session
                    .acme
                    .post(&url, Some(&json!({"identifiers": identifiers})), None)
                    .await?;
                let order_url = reply.location()?;
                let order: Order = reply.json()?;
                info!(order = %order_url, status = ?order.status, authorizations = order.authorizations.len(), "order created");
                Ok(Step::Authorizations {
                    authorizations: order.authorizations,
                    order: OrderRef {
                        session,
                        url: order_url,
                        finalize: order.finalize,
                    },
                    key,
                })
            }
            Step::Authorizations {
                order,
                authorizations,
                key,
            } => {
                let acme = &order.session.acme;
                let results =
                    try_join_all(authorizations.iter().map(|url| authorize(acme, plan, url)))
                        .await?;
                let reused = results.iter().filter(|fresh| !**fresh).count();
                Ok(Step::Finalize { order, reused, key })
            }
            Step::Finalize { order, reused, key } => {
                let acme = &order.session.acme;
                let (key, csr) = match (key, &plan.request) {
                    (Some(job), _) => {
                        let key = job.await.map_err(|e| {
                            Error::Local(format!("the key generation task failed: {e}"))
                        })??;
                        let csr = key.csr_der(&plan.names)?;
                        (Some(key), csr)
                    }
                    (None, CertRequest::Csr(user)) => (None, user.der.clone()),
                    (None, CertRequest::Generate(_)) => {
                        return Err(Error::Local("no certificate key was generated".into()));
                    }
                };
                let mut reply = finalize(acme, plan, &order, &csr).await?;
                let mut poll = Backoff::new(plan);
                let url = loop {
                    let state: Order = reply.json()?;
                    match order_next(&state) {
                        OrderNext::Download(url) => break url,
                        OrderNext::Fail(problem) => return Err(invalid_order(&order.url, problem)),
                        OrderNext::Wait | OrderNext::Finalize => {
                            poll.wait(reply.retry_after()).await?;
                            reply = acme.get(&order.url).await?;
                        }
                    }
                };
                Ok(Step::Certificate {
                    order,
                    reused,
                    url,
                    key,
                })
            }
            Step::Certificate {
                order,
                reused,
                url,
                key,
            } => {
                let acme = &order.session.acme;
                let public_key = match (&key, &plan.request) {
                    (Some(key), _) => key.public_key_raw().to_vec(),
                    (None, CertRequest::Csr(user)) => user.public_key.clone(),
                    (None, CertRequest::Generate(_)) => Vec::new(),
                };
                let (issued, url) = download(acme, plan, url, &public_key).await?;
                info!(serial = %issued.info.serial, not_after = %issued.info.not_after, chain_to = %issued.info.chain_to, "certificate issued");
                let done = Box::new(Outcome {
                    account_url: order.session.account_url.clone(),
                    order_url: order.url.clone(),
                    certificate_url: url,
                    terms_of_service: acme
                        .directory()
                        .meta
                        .as_ref()
                        .and_then(|m| m.terms_of_service.clone()),
                    key,
                    issued,
                    revoked: false,
                    reused_authorizations: reused,
                    steps: Vec::new(),
                    events: Vec::new(),
                    ca_wait_ms: 0.0,
                });
                if plan.revoke {
                    Ok(Step::Revoke { order, done })
                } else {
                    Ok(Step::Done(done))
                }
            }
            Step::Revoke { order, mut done } => {
                let acme = &order.session.acme;
                let url = acme
                    .directory()
                    .revoke_cert
                    .clone()
                    .ok_or_else(|| Error::Protocol {
                        url: plan.dir_url.clone(),
                        detail: "the directory has no revokeCert URL".into(),
                    })?;
                let leaf = done.issued.certs[0].as_ref();
                acme.post(&url, Some(&json!({"certificate": b64(leaf)})), None)
                    .await?;
                info!(serial = %done.issued.info.serial, "certificate revoked");
                done.revoked = true;
                Ok(Step::Done(done))
            }
            done @ Step::Done(_) => Ok(done),
        }
    }
}

/// Sends the CSR (RFC 8555 §7.4). All authorizations are valid by now, so the order is almost
/// always `ready`: finalize at once, and only if the CA answers `orderNotReady` poll the order
/// until it is ready and try again.
async fn finalize(acme: &Transport, plan: &Plan, order: &OrderRef, csr: &[u8]) -> Result<Reply> {
    let payload = json!({"csr": b64(csr)});
    let mut poll = Backoff::new(plan);
    loop {
        match acme.post(&order.finalize, Some(&payload), None).await {
            Err(Error::Acme { problem }) if problem.is_type("orderNotReady") => {}
            other => return other,
        }
        loop {
            poll.wait(None).await?;
            let reply = acme.get(&order.url).await?;
            let state: Order = reply.json()?;
            match order_next(&state) {
                OrderNext::Finalize => break,
                OrderNext::Fail(problem) => return Err(invalid_order(&order.url, problem)),
                OrderNext::Download(url) => {
                    return Err(Error::Protocol {
                        url,
                        detail: "the order became valid before we finalized it".into(),
                    });
                }
                OrderNext::Wait => {}
            }
        }
    }
}

/// Finds the account of a known key (`onlyReturnExisting`, RFC 8555 §7.3.1), or creates one
/// with the terms agreed, the contacts and the External Account Binding. Returns its URL.
async fn account(acme: &Transport, plan: &Plan) -> Result<String> {
    let url = acme.directory().new_account.clone();
    if plan.account_known {
        match acme
            .post(&url, Some(&json!({"onlyReturnExisting": true})), None)
            .await
        {
            Ok(reply) => {
                let account_url = reply.location()?;
                info!(account = %account_url, "existing account found for the account key");
                return Ok(account_url);
            }
            Err(Error::Acme { problem }) if problem.is_type("accountDoesNotExist") => {
                info!("no account for this key yet; creating one");
            }
            Err(e) => return Err(e),
        }
    }
    let mut payload = json!({"termsOfServiceAgreed": true});
    if !plan.contacts.is_empty() {
        payload["contact"] = json!(plan.contacts);
    }
    if let Some(eab) = &plan.eab {
        payload["externalAccountBinding"] =
            acme.key()
                .external_account_binding(&eab.kid, &eab.hmac_key, &url);
    }
    let reply = acme.post(&url, Some(&payload), None).await?;
    let account_url = reply.location()?;
    info!(account = %account_url, created = reply.status == reqwest::StatusCode::CREATED, "account ready");
    Ok(account_url)
}

/// Downloads the certificate, then, if a preferred chain is asked for and the default does not
/// match, each alternate the CA links to (RFC 8555 §7.4.2). Returns the chosen chain and its URL.
async fn download(
    acme: &Transport,
    plan: &Plan,
    url: String,
    public_key: &[u8],
) -> Result<(Issued, String)> {
    let fetch = |url: String| async move {
        let reply = acme.post(&url, None, Some(PEM_CHAIN)).await?;
        let issued =
            Issued::from_pem(&reply.body, public_key).map_err(|detail| Error::Protocol {
                url: url.clone(),
                detail,
            })?;
        Ok::<_, Error>((issued, reply, url))
    };
    let (issued, reply, url) = fetch(url).await?;
    let Some(want) = &plan.preferred_chain else {
        return Ok((issued, url));
    };
    if issued.info.chain_to.eq_ignore_ascii_case(want) {
        return Ok((issued, url));
    }
    let mut offered = vec![issued.info.chain_to.clone()];
    for alternate in alternate_links(&reply) {
        let (candidate, _, alt_url) = fetch(alternate).await?;
        if candidate.info.chain_to.eq_ignore_ascii_case(want) {
            info!(chain_to = %candidate.info.chain_to, "using the preferred chain");
            return Ok((candidate, alt_url));
        }
        offered.push(candidate.info.chain_to);
    }
    info!(
        preferred = %want,
        offered = %offered.join(", "),
        "no chain the CA offers matches --preferred-chain; keeping the default chain"
    );
    Ok((issued, url))
}

/// The `Link: <url>;rel="alternate"` targets of a reply (RFC 8288, RFC 8555 §7.4.2).
pub fn alternate_links(reply: &Reply) -> Vec<String> {
    let mut links = Vec::new();
    for value in reply.headers.get_all("link") {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let link = link.trim();
            let Some(rest) = link.strip_prefix('<') else {
                continue;
            };
            let Some((target, params)) = rest.split_once('>') else {
                continue;
            };
            let alternate = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"alternate\"" || p == "rel=alternate"
            });
            if alternate {
                links.push(target.to_owned());
            }
        }
    }
    links
}

fn invalid_order(url: &str, problem: super::types::Problem) -> Error {
    Error::Invalid {
        what: format!("the order {url}"),
        problem,
    }
}

/// Brings one authorization to `valid`. Returns whether a challenge had to be answered
/// (false: the CA reused an authorization that was already valid).
async fn authorize(acme: &Transport, plan: &Plan, url: &str) -> Result<bool> {
    let reply = acme.get(url).await?;
    let authz: Authorization = reply.json()?;
    let name = authz.identifier.value.clone();
    // Held until this function returns, so the answer stays published while the CA validates.
    let mut _published = None;
    match authz_action(&authz, plan.kind.acme_type()) {
        AuthzAction::Valid => {
            debug!(authorization = url, %name, "already valid, reused");
            return Ok(false);
        }
        AuthzAction::Fail(problem) => return Err(invalid_authz(&authz, problem)),
        AuthzAction::Wait => {}
        AuthzAction::Respond(challenge) => {
            let token = challenge
                .token
                .as_deref()
                .filter(|t| is_token(t))
                .ok_or_else(|| Error::Protocol {
                    url: url.to_owned(),
                    detail: format!("the {} challenge has no valid token", challenge.kind),
                })?;
            let key_authorization = acme.key().key_authorization(token);
            _published = Some(plan.store.present(plan.kind.publication(
                &authz.identifier,
                token,
                &key_authorization,
            )?));
            // RFC 8555 §7.5.1: an empty object asks the CA to validate.
            acme.post(&challenge.url, Some(&json!({})), None).await?;
            debug!(challenge = %challenge.url, %name, "challenge answered");
        }
    }
    let mut poll = Backoff::new(plan);
    let mut retry_after = reply.retry_after();
    loop {
        poll.wait(retry_after).await?;
        let reply = acme.get(url).await?;
        let authz: Authorization = reply.json()?;
        match authz_action(&authz, plan.kind.acme_type()) {
            AuthzAction::Valid => {
                info!(%name, "authorization valid");
                return Ok(true);
            }
            AuthzAction::Fail(problem) => return Err(invalid_authz(&authz, problem)),
            // A challenge still "pending" after we answered: the CA has not started; keep polling.
            AuthzAction::Wait | AuthzAction::Respond(_) => retry_after = reply.retry_after(),
        }
    }
}

fn invalid_authz(authz: &Authorization, problem: super::types::Problem) -> Error {
    let problem = if problem.kind.is_empty() && problem.detail.is_none() {
        authz_problem(authz)
    } else {
        problem
    };
    let wildcard = if authz.wildcard { "*." } else { "" };
    Error::Invalid {
        what: format!("the authorization for {wildcard}{}", authz.identifier.value),
        problem,
    }
}

/// The polling policy: starts in milliseconds, doubles up to a cap, honours `Retry-After`,
/// and stops at the deadline.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    deadline: Instant,
    timeout: Duration,
    timeline: Timeline,
}

/// First polling pause: a fast CA finishes validation in a few milliseconds.
const POLL_FIRST: Duration = Duration::from_millis(2);
/// Longest pause between two polls when the CA gives no `Retry-After`.
const POLL_MAX: Duration = Duration::from_secs(2);
/// Longest `Retry-After` honoured for a poll (a CA asking more is still polled at this pace).
const POLL_RETRY_AFTER_MAX: Duration = Duration::from_secs(10);

impl Backoff {
    /// A fresh policy bounded by the plan's deadline.
    pub fn new(plan: &Plan) -> Self {
        Backoff {
            next: POLL_FIRST,
            deadline: plan.deadline,
            timeout: plan.timeout,
            timeline: plan.timeline.clone(),
        }
    }

    /// The pause before the next poll.
    pub fn delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let backoff = self.next;
        self.next = (self.next * 2).min(POLL_MAX);
        match retry_after {
            Some(ra) => ra.min(POLL_RETRY_AFTER_MAX).max(backoff),
            None => backoff,
        }
    }

    /// Sleeps before the next poll, or fails if that would pass the deadline.
    pub async fn wait(&mut self, retry_after: Option<Duration>) -> Result<()> {
        let delay = self.delay(retry_after);
        let until = Instant::now() + delay;
        if until > self.deadline {
            // Sleep to the deadline so the error is reported on time, not early.
            tokio::time::sleep_until(self.deadline).await;
            return Err(Error::Timeout {
                secs: self.timeout.as_secs(),
                step: "polling the CA",
            });
        }
        let started = Instant::now();
        tokio::time::sleep_until(until).await;
        self.timeline
            .record("poll", "pause before polling again".into(), None, started);
        Ok(())
    }
}

/// Runs the machine from the directory to the end, within the plan's deadline.
pub async fn obtain(plan: &Plan, key: AccountKey) -> Result<Outcome> {
    let mut step = Step::Directory { key };
    let mut steps = Vec::new();
    loop {
        let name = step.name();
        let started = Instant::now();
        debug!(step = name, "entering step");
        step = match tokio::time::timeout_at(plan.deadline, step.advance(plan)).await {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => return Err(e.during(name)),
            Err(_) => {
                return Err(Error::Timeout {
                    secs: plan.timeout.as_secs(),
                    step: name,
                });
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        steps.push(StepTiming { step: name, ms });
        info!(
            step = name,
            ms = format!("{ms:.1}"),
            next = step.name(),
            "step done"
        );
        if let Step::Done(mut outcome) = step {
            outcome.steps = steps;
            outcome.events = plan.timeline.events();
            outcome.ca_wait_ms = plan.timeline.ca_wait_ms();
            return Ok(*outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            dir_url: "https://ca/dir".into(),
            names: vec![],
            kind: ChallengeKind::Http01,
            revoke: false,
            http: reqwest::Client::new(),
            trust: String::new(),
            deadline: Instant::now() + Duration::from_secs(60),
            timeout: Duration::from_secs(60),
            store: ChallengeStore::new(),
            account_known: false,
            contacts: vec![],
            eab: None,
            request: CertRequest::Generate(KeyType::Ec256),
            preferred_chain: None,
            timeline: Timeline::new(Instant::now()),
        }
    }

    #[test]
    fn backoff_starts_fast_doubles_and_caps() {
        crate::install_crypto_provider();
        let mut b = Backoff::new(&plan());
        let delays: Vec<u128> = (0..12).map(|_| b.delay(None).as_millis()).collect();
        assert_eq!(&delays[..5], &[2, 4, 8, 16, 32]);
        assert_eq!(*delays.last().unwrap(), 2000);
    }

    #[test]
    fn backoff_honours_retry_after_within_bounds() {
        crate::install_crypto_provider();
        let mut b = Backoff::new(&plan());
        assert_eq!(
            b.delay(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            b.delay(Some(Duration::from_secs(3600))),
            POLL_RETRY_AFTER_MAX
        );
        // A Retry-After of 0 never makes polling faster than the backoff.
        assert_eq!(b.delay(Some(Duration::ZERO)), Duration::from_millis(8));
    }

    #[tokio::test]
    async fn backoff_stops_at_the_deadline() {
        crate::install_crypto_provider();
        let mut p = plan();
        p.deadline = Instant::now() + Duration::from_millis(30);
        let mut b = Backoff::new(&p);
        let mut outcome = Ok(());
        for _ in 0..20 {
            outcome = b.wait(None).await;
            if outcome.is_err() {
                break;
            }
        }
        assert!(matches!(outcome, Err(Error::Timeout { .. })));
    }
}
