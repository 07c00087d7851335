//! The ACME state machine (RFC 8555 §7, RFC 9773): directory, review of the certificate already
//! held, nonce, account, order, authorizations, finalize, certificate, revoke, schedule. The first
//! issuance and every renewal drive the same machine. Each step is a variant carrying only what
//! is valid in it; [`Step::advance`] hands each to one function, and [`obtain`] drives them,
//! logging each transition.
//!
//! The [`Plan`] is plain configuration; the [`Runtime`] beside it holds the live objects. The
//! machine knows nothing of the servers: it publishes answers through a [`Solver`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::try_join_all;
use serde::Serialize;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::account::{self, NewAccount};
use super::client::{CaResponse, PEM_CHAIN, Transport};
use super::jws::{AccountKey, b64};
use super::policy::{Policy, RequestStats, RetryAfter, later};
use super::progress::{AuthzState, Phase, Progress, Reporter, names};
use super::renewal::{self, Due};
use super::solver::{ChallengeKind, Solver, Task};
use super::timeline::{Event, Timeline};
use super::types::{
    Authorization, AuthzAction, Challenge, Identifier, Order, OrderNext, Problem, Status,
    authz_action, authz_problem, is_token, order_next,
};
use crate::cert::{CertKey, Issued, KeyType, UserCsr};
use crate::error::{Error, Result};

pub use super::account::Eab;

/// Where the certificate request comes from.
#[derive(Debug, Clone)]
pub enum CertRequest {
    /// A fresh key of this type and a CSR made here.
    Generate(KeyType),
    /// The user's CSR (`--csr`); we never see the key.
    Csr(UserCsr),
}

/// The certificate `--out` holds now, which the run may keep or renew.
#[derive(Debug)]
pub struct Current {
    pub issued: Issued,
    /// Its key; None when it came from the user's CSR.
    pub key: Option<CertKey>,
    /// acme-client revoked it (the CA may not say so: without ARI it cannot).
    pub revoked: bool,
    /// The profile it was ordered with.
    pub profile: Option<String>,
}

impl Current {
    /// The same certificate with its key loaded again (a key pair cannot be cloned).
    pub fn try_clone(&self) -> Result<Current> {
        Ok(Current {
            issued: self.issued.clone(),
            key: self.key.as_ref().map(CertKey::try_clone).transpose()?,
            revoked: self.revoked,
            profile: self.profile.clone(),
        })
    }
}

/// What to obtain: plain configuration, fixed for the whole run.
#[derive(Debug)]
pub struct Plan {
    pub dir_url: String,
    /// DNS names and IP addresses (RFC 8738), normalised.
    pub names: Vec<String>,
    pub kind: ChallengeKind,
    pub revoke: bool,
    /// The account key came from an existing file: look the account up before creating one.
    pub account_known: bool,
    pub contacts: Vec<String>,
    pub eab: Option<Eab>,
    pub request: CertRequest,
    /// Issuer CN of the topmost certificate of the preferred chain (`--preferred-chain`).
    pub preferred_chain: Option<String>,
    /// The certificate profile to ask for (`--profile`).
    pub profile: Option<String>,
    /// Order even if the current certificate is not due (`--force`).
    pub force: bool,
    /// The certificate held now, if any.
    pub current: Option<Current>,
}

/// The live objects the machine works with.
#[derive(Debug)]
pub struct Runtime {
    pub http: reqwest::Client,
    /// How the CA's TLS certificate is trusted, for error messages.
    pub trust: String,
    pub deadline: Instant,
    pub timeout: Duration,
    /// The request policy for this CA (pauses, budget, requests in flight); shares the deadline.
    pub policy: Policy,
    /// Publishes challenge answers.
    pub solver: Arc<dyn Solver>,
    /// Every request and wait, for the timings report.
    pub timeline: Timeline,
    /// Told how the exchange is going (a progress display), or no one.
    pub progress: Reporter,
}

/// What the run did with the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A first certificate for `--out`.
    Issued,
    /// A new certificate replaced one that was due (or `--force`).
    Renewed,
    /// The certificate held was not due: no order was placed.
    Kept,
}

impl Action {
    /// The word used in the summary, the JSON and the deploy hook.
    pub fn word(self) -> &'static str {
        match self {
            Action::Issued => "issued",
            Action::Renewed => "renewed",
            Action::Kept => "kept",
        }
    }
}

/// What a finished run produced.
#[derive(Debug)]
pub struct Outcome {
    pub action: Action,
    /// None when the certificate was kept (no account was needed).
    pub account_url: Option<String>,
    /// Whether this run created the account (else it found an existing one for the key).
    pub account_created: bool,
    pub order_url: Option<String>,
    pub certificate_url: Option<String>,
    pub terms_of_service: Option<String>,
    /// The certificate key; None with the user's CSR.
    pub key: Option<CertKey>,
    pub issued: Issued,
    pub revoked: bool,
    /// The profile the CA issued under, or the kept certificate's.
    pub profile: Option<String>,
    /// The serial of the certificate this run replaced.
    pub replaced: Option<String>,
    /// When the certificate now held is next due, and why.
    pub next: Due,
    /// Authorizations the CA had already validated (reused), which needed no challenge.
    pub reused_authorizations: usize,
    pub steps: Vec<StepTiming>,
    /// Every request to the CA and every wait on it.
    pub events: Vec<Event>,
    /// Time during which a request or wait was outstanding.
    pub ca_wait_ms: f64,
    /// Requests sent to the CA, per endpoint, and the 429/503 answers received.
    pub requests: RequestStats,
    /// `--revoke` was asked and the CA refused: the certificate is still written (it is valid),
    /// then the run fails with this.
    pub revoke_error: Option<Error>,
}

/// How long one step took.
#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub step: &'static str,
    pub ms: f64,
}

/// Why a new certificate is being ordered, when one is held.
#[derive(Debug, Clone, Default)]
pub struct Renewal {
    /// The held certificate's ARI CertID, sent as `replaces` (RFC 9773 §5).
    replaces: Option<String>,
    /// The held certificate's serial.
    old_serial: Option<String>,
}

/// Known once the account exists.
#[derive(Debug)]
pub struct Session {
    acme: Transport,
    account_url: String,
    account_created: bool,
    renewal: Renewal,
}

/// Known once the order exists.
#[derive(Debug)]
pub struct OrderRef {
    session: Session,
    url: String,
    finalize: String,
    /// Every authorization URL of the order.
    authorizations: Vec<String>,
    /// The profile the CA put on the order.
    profile: Option<String>,
}

/// The certificate key being generated in the background while the CA validates (RSA keys take
/// a moment). None with the user's CSR.
type KeyJob = Option<JoinHandle<Result<CertKey>>>;

/// One step of the exchange, with the data valid in it.
// One value lives at a time and moves once per step; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Step {
    /// Read the directory (RFC 8555 §7.1.1) and check the profile asked for.
    Directory {
        key: AccountKey,
    },
    /// Decide whether the certificate held is due (RFC 9773, or the lifetime rule).
    Review {
        acme: Transport,
    },
    /// Hold a first nonce (RFC 8555 §7.2).
    Nonce {
        acme: Transport,
        renewal: Renewal,
    },
    /// Find or create the account, agreeing to the terms of service (RFC 8555 §7.3).
    Account {
        acme: Transport,
        renewal: Renewal,
    },
    /// Submit the order for every name (RFC 8555 §7.4), saying what it replaces.
    /// Let the solver check what it needs outside this process (it may depend on the account
    /// URL), before anything is ordered.
    Prepare {
        session: Session,
    },
    Order {
        session: Session,
    },
    /// Publish every answer, then answer every pending authorization at once and wait until the
    /// order is ready (RFC 8555 §7.5). Skipped when the order is ready already.
    Authorizations {
        order: OrderRef,
        key: KeyJob,
    },
    /// Send the CSR, wait for `valid` (RFC 8555 §7.4).
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
    Revoke {
        order: OrderRef,
        done: Box<Outcome>,
    },
    /// Find out when the new certificate will be due.
    Schedule {
        order: OrderRef,
        done: Box<Outcome>,
    },
    /// Finished.
    Done(Box<Outcome>),
}

impl Step {
    /// The phase the step belongs to.
    pub fn phase(&self) -> Phase {
        match self {
            Step::Directory { .. } => Phase::Directory,
            Step::Review { .. } => Phase::Review,
            Step::Nonce { .. } => Phase::Nonce,
            Step::Account { .. } => Phase::Account,
            Step::Prepare { .. } => Phase::Prepare,
            Step::Order { .. } => Phase::Order,
            Step::Authorizations { .. } => Phase::Authorizations,
            Step::Finalize { .. } => Phase::Finalize,
            Step::Certificate { .. } => Phase::Certificate,
            Step::Revoke { .. } => Phase::Revoke,
            Step::Schedule { .. } => Phase::Schedule,
            Step::Done(_) => Phase::Done,
        }
    }

    /// What the step is doing, for logs and error messages.
    pub fn name(&self) -> &'static str {
        self.phase().doing()
    }

    /// What the step waits on the CA for: the words after "waiting for".
    pub fn awaiting(&self) -> String {
        match self {
            Step::Directory { .. } => "the CA's directory to answer".into(),
            Step::Review { .. } | Step::Schedule { .. } => "the CA's renewal information".into(),
            Step::Nonce { .. } => "a nonce from the CA".into(),
            Step::Account { .. } => "the CA to find or create the account".into(),
            Step::Prepare { .. } => {
                "the challenges' setup (such as --dns-zone records) to be checked".into()
            }
            Step::Order { .. } => "the CA to create the order".into(),
            Step::Authorizations { order, .. } => {
                format!("the CA to validate {}", names(order.authorizations.len()))
            }
            Step::Finalize { .. } => "the CA to issue the certificate".into(),
            Step::Certificate { .. } => "the certificate to download".into(),
            Step::Revoke { .. } => "the CA to revoke the certificate".into(),
            Step::Done(_) => "nothing".into(),
        }
    }

    /// Makes one move.
    pub async fn advance(self, plan: &Plan, rt: &Runtime) -> Result<Step> {
        match self {
            Step::Directory { key } => read_directory(plan, rt, key).await,
            Step::Review { acme } => review(plan, acme).await,
            Step::Nonce { acme, renewal } => {
                // Put the nonce back: it is spent by the first signed request.
                let nonce = acme.nonce().await?;
                acme.restore_nonce(nonce);
                Ok(Step::Account { acme, renewal })
            }
            Step::Account { acme, renewal } => open_account(plan, acme, renewal).await,
            Step::Prepare { session } => {
                rt.solver
                    .prepare(plan.kind, &plan.names, &session.account_url)
                    .await?;
                Ok(Step::Order { session })
            }
            Step::Order { session } => place_order(plan, session).await,
            Step::Authorizations { order, key } => {
                let reused = authorize_all(plan, rt, &order).await?;
                Ok(Step::Finalize { order, reused, key })
            }
            Step::Finalize { order, reused, key } => send_csr(plan, rt, order, reused, key).await,
            Step::Certificate {
                order,
                reused,
                url,
                key,
            } => fetch_certificate(plan, order, reused, url, key).await,
            Step::Revoke { order, mut done } => {
                let leaf = done.issued.certs[0].as_ref();
                match account::revoke(&order.session.acme, leaf, None).await {
                    Ok(()) => {
                        info!(serial = %done.issued.info.serial, "certificate revoked");
                        done.revoked = true;
                    }
                    // Never reported as revoked; the valid certificate is still written.
                    Err(e) => done.revoke_error = Some(e.during("revoking the certificate")),
                }
                Ok(Step::Schedule { order, done })
            }
            Step::Schedule { order, mut done } => {
                done.next = schedule(&order.session.acme, &done).await;
                Ok(Step::Done(done))
            }
            done @ Step::Done(_) => Ok(done),
        }
    }
}

/// Reads the directory, logs the terms of service, and refuses a `--profile` the CA lacks
/// before anything is ordered.
async fn read_directory(plan: &Plan, rt: &Runtime, key: AccountKey) -> Result<Step> {
    let acme = Transport::connect(
        rt.http.clone(),
        rt.trust.clone(),
        rt.policy.clone(),
        &plan.dir_url,
        key,
        rt.timeline.clone(),
    )
    .await?;
    let meta = acme.directory().meta.clone().unwrap_or_default();
    if let Some(tos) = &meta.terms_of_service {
        info!(terms_of_service = %tos, "agreeing to the CA's terms of service");
    }
    if let Some(profile) = &plan.profile {
        let offered: Vec<&String> = meta.profiles.iter().flat_map(|p| p.keys()).collect();
        if !offered.contains(&profile) {
            let offered = if offered.is_empty() {
                "the CA offers no profiles (its directory has no meta.profiles)".to_owned()
            } else {
                let names: Vec<&str> = offered.iter().map(|s| s.as_str()).collect();
                format!("the CA offers: {}", names.join(", "))
            };
            return Err(Error::Usage(format!(
                "--profile {profile}: {offered}; choose one of them or leave --profile out"
            )));
        }
    }
    Ok(if plan.current.is_some() {
        Step::Review { acme }
    } else {
        Step::Nonce {
            acme,
            renewal: Renewal::default(),
        }
    })
}

/// Decides whether the certificate held is due: at once when it is revoked, expired, for other
/// names or another key type; else at the moment the CA's renewal window gives (ARI), or at the
/// lifetime rule. Not due (and no `--force`): the run keeps it and ends here.
async fn review(plan: &Plan, acme: Transport) -> Result<Step> {
    let Some(current) = &plan.current else {
        return Ok(Step::Nonce {
            acme,
            renewal: Renewal::default(),
        });
    };
    let leaf = current.issued.certs[0].as_ref();
    let serial = current.issued.info.serial.clone();
    let ari = match acme.directory().renewal_info.clone() {
        Some(base) => match renewal::ask_ari(&acme, &base, leaf, serial.as_bytes()).await {
            Ok(due) => Some(due),
            Err(e) => {
                warn!(error = %e, "the CA gave no renewal information for the certificate; using the lifetime rule");
                None
            }
        },
        None => None,
    };
    let (not_before, not_after) = renewal::validity(leaf)?;
    let now = time::OffsetDateTime::now_utc();
    let due = match at_once(plan, current, not_after, now) {
        Some(reason) => Due::now(reason),
        None => match ari.clone() {
            Some(due) => renewal::before_the_end(due, not_before, not_after),
            None => renewal::by_lifetime(not_before, not_after),
        },
    };
    let renewing = plan.force || due.passed(now);
    if !renewing {
        info!(serial = %serial, due = %renewal::rfc3339(due.at), reason = %due.reason, "the certificate is not due; keeping it");
        return Ok(Step::Done(Box::new(kept(plan, current, &acme, due)?)));
    }
    let why = if plan.force && !due.passed(now) {
        "--force".to_owned()
    } else {
        due.reason.clone()
    };
    info!(serial = %serial, why = %why, "renewing the certificate");
    // `replaces` only where the CA knows the certificate (it answered ARI for it) and the new
    // order shares a name with it (RFC 9773 §5).
    let shares_a_name = current
        .issued
        .info
        .names
        .iter()
        .any(|n| plan.names.contains(n));
    let replaces = match (&ari, shares_a_name) {
        (Some(_), true) => renewal::cert_id(leaf).ok(),
        _ => None,
    };
    Ok(Step::Nonce {
        acme,
        renewal: Renewal {
            replaces,
            old_serial: Some(serial),
        },
    })
}

/// Why the held certificate is due at once, if it is.
fn at_once(
    plan: &Plan,
    current: &Current,
    not_after: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> Option<String> {
    let mut held = current.issued.info.names.clone();
    let mut wanted = plan.names.clone();
    held.sort();
    wanted.sort();
    if held != wanted {
        return Some(format!(
            "it names {} instead of {}",
            held.join(", "),
            wanted.join(", ")
        ));
    }
    if current.revoked {
        return Some("it was revoked".into());
    }
    if not_after <= now {
        return Some(format!("it expired at {}", renewal::rfc3339(not_after)));
    }
    match (&plan.request, &current.key) {
        (CertRequest::Generate(kind), Some(key)) if key.kind() != Some(*kind) => Some(format!(
            "its key is not of the type asked for ({})",
            kind.name()
        )),
        (CertRequest::Generate(_), None) => Some("it has no key of ours".into()),
        (CertRequest::Csr(csr), _) if csr.public_key != current.issued.public_key() => {
            Some("its key is not the --csr's".into())
        }
        _ => match &plan.profile {
            Some(p) if current.profile.as_ref() != Some(p) => {
                Some(format!("it was not issued under the profile {p}"))
            }
            _ => None,
        },
    }
}

/// The outcome of a run that keeps the certificate held.
fn kept(plan: &Plan, current: &Current, acme: &Transport, next: Due) -> Result<Outcome> {
    Ok(Outcome {
        action: Action::Kept,
        account_url: None,
        account_created: false,
        order_url: None,
        certificate_url: None,
        terms_of_service: terms(acme),
        key: current.key.as_ref().map(CertKey::try_clone).transpose()?,
        issued: current.issued.clone(),
        revoked: false,
        profile: current.profile.clone().or_else(|| plan.profile.clone()),
        replaced: None,
        next,
        reused_authorizations: 0,
        steps: Vec::new(),
        events: Vec::new(),
        ca_wait_ms: 0.0,
        requests: RequestStats::default(),
        revoke_error: None,
    })
}

fn terms(acme: &Transport) -> Option<String> {
    acme.directory()
        .meta
        .as_ref()
        .and_then(|m| m.terms_of_service.clone())
}

/// Finds or creates the account.
async fn open_account(plan: &Plan, acme: Transport, renewal: Renewal) -> Result<Step> {
    let new = NewAccount {
        contacts: plan.contacts.clone(),
        eab: plan.eab.clone(),
    };
    let (account_url, account_created) =
        account::find_or_create(&acme, plan.account_known, &new).await?;
    acme.set_kid(account_url.clone());
    Ok(Step::Prepare {
        session: Session {
            acme,
            account_url,
            account_created,
            renewal,
        },
    })
}

/// Places the order, with `replaces` and `profile` when there are; if the CA will not take the
/// `replaces` (`alreadyReplaced`, or any other refusal of it), orders again without it. Starts
/// the certificate key meanwhile.
async fn place_order(plan: &Plan, session: Session) -> Result<Step> {
    // Generate the certificate key now, off the async threads, so an RSA key is ready by the
    // time the authorizations are.
    let key = match &plan.request {
        CertRequest::Generate(kind) => {
            let kind = *kind;
            Some(tokio::task::spawn_blocking(move || CertKey::generate(kind)))
        }
        CertRequest::Csr(_) => None,
    };
    let identifiers: Vec<Identifier> = plan.names.iter().map(|n| Identifier::for_name(n)).collect();
    let mut payload = json!({"identifiers": identifiers});
    if let Some(profile) = &plan.profile {
        payload["profile"] = json!(profile);
    }
    let url = session.acme.directory().new_order.clone();
    let reply = match &session.renewal.replaces {
        Some(replaces) => {
            let mut with = payload.clone();
            with["replaces"] = json!(replaces);
            match session.acme.post(&url, Some(&with), None).await {
                Err(Error::Acme { problem }) => {
                    if problem.is_type("alreadyReplaced") {
                        warn!(%replaces, "alreadyReplaced: the CA has a replacement order for the certificate already; ordering without replaces");
                    } else {
                        warn!(%replaces, %problem, "the CA refused the replaces field; ordering without it");
                    }
                    session.acme.post(&url, Some(&payload), None).await?
                }
                other => other?,
            }
        }
        None => session.acme.post(&url, Some(&payload), None).await?,
    };
    let order_url = reply.location()?;
    let order: Order = reply.json()?;
    debug!(order = %order_url, status = %order.status, authorizations = order.authorizations.len(), "order created");
    let ready = order.status == Status::Ready;
    let order = OrderRef {
        session,
        url: order_url,
        finalize: order.finalize,
        authorizations: order.authorizations,
        profile: order.profile.or_else(|| plan.profile.clone()),
    };
    if ready {
        // Every authorization was valid already (reused): nothing to prove.
        let reused = order.authorizations.len();
        Ok(Step::Finalize { order, reused, key })
    } else {
        Ok(Step::Authorizations { order, key })
    }
}

/// Waits for the certificate key, sends the CSR and polls the order until it is valid.
async fn send_csr(
    plan: &Plan,
    rt: &Runtime,
    order: OrderRef,
    reused: usize,
    key: KeyJob,
) -> Result<Step> {
    let acme = &order.session.acme;
    let (key, csr) = match (key, &plan.request) {
        (Some(job), _) => {
            let key = job
                .await
                .map_err(|e| Error::Local(format!("the key generation task failed: {e}")))??;
            let csr = key.csr_der(&plan.names)?;
            (Some(key), csr)
        }
        (None, CertRequest::Csr(user)) => (None, user.der.clone()),
        (None, CertRequest::Generate(_)) => {
            return Err(Error::Local("no certificate key was generated".into()));
        }
    };
    let (mut state, mut retry_after) = finalize(acme, rt, &order, &csr).await?;
    let mut poll = Backoff::new(rt, "the CA to issue the certificate".into());
    let url = loop {
        match order_next(&state) {
            OrderNext::Download(url) => break url,
            OrderNext::Fail(problem) => return Err(invalid_order(&order.url, problem)),
            OrderNext::Wait | OrderNext::Finalize => {
                poll.wait(retry_after).await?;
                let reply = acme.get(&order.url).await?;
                retry_after = reply.retry_after();
                state = reply.json()?;
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

/// Downloads the chain and checks it against our key.
async fn fetch_certificate(
    plan: &Plan,
    order: OrderRef,
    reused: usize,
    url: String,
    key: Option<CertKey>,
) -> Result<Step> {
    let acme = &order.session.acme;
    let public_key = match (&key, &plan.request) {
        (Some(key), _) => key.public_key_raw().to_vec(),
        (None, CertRequest::Csr(user)) => user.public_key.clone(),
        (None, CertRequest::Generate(_)) => Vec::new(),
    };
    let (issued, url) = download(acme, plan, url, &public_key).await?;
    debug!(serial = %issued.info.serial, not_after = %issued.info.not_after, chain_to = %issued.info.chain_to, "certificate issued");
    let renewal = &order.session.renewal;
    let done = Box::new(Outcome {
        action: if plan.current.is_some() {
            Action::Renewed
        } else {
            Action::Issued
        },
        account_url: Some(order.session.account_url.clone()),
        account_created: order.session.account_created,
        order_url: Some(order.url.clone()),
        certificate_url: Some(url),
        terms_of_service: terms(acme),
        key,
        issued,
        revoked: false,
        profile: order.profile.clone(),
        replaced: renewal.old_serial.clone(),
        next: Due::now("not known yet"),
        reused_authorizations: reused,
        steps: Vec::new(),
        events: Vec::new(),
        ca_wait_ms: 0.0,
        requests: RequestStats::default(),
        revoke_error: None,
    });
    if plan.revoke {
        Ok(Step::Revoke { order, done })
    } else {
        Ok(Step::Schedule { order, done })
    }
}

/// When the certificate just obtained will be due: the CA's window if it has ARI (a CA that
/// fails to answer falls back to the lifetime rule), at once if it was just revoked.
async fn schedule(acme: &Transport, done: &Outcome) -> Due {
    if done.revoked {
        return Due::now("it was revoked");
    }
    let leaf = done.issued.certs[0].as_ref();
    let Ok((not_before, not_after)) = renewal::validity(leaf) else {
        return Due::now("its validity cannot be read");
    };
    let lifetime = || renewal::by_lifetime(not_before, not_after);
    match acme.directory().renewal_info.clone() {
        Some(base) => {
            match renewal::ask_ari(acme, &base, leaf, done.issued.info.serial.as_bytes()).await {
                Ok(due) => renewal::before_the_end(due, not_before, not_after),
                Err(e) => {
                    warn!(error = %e, "the CA gave no renewal information for the new certificate; using the lifetime rule");
                    lifetime()
                }
            }
        }
        None => lifetime(),
    }
}

/// Sends the CSR (RFC 8555 §7.4) and returns the order's state with its `Retry-After`. The
/// order is almost always `ready` here; if the CA answers `orderNotReady`, poll the order until
/// it is and try again. A finalize whose answer never came is not sent blindly again: the order
/// is read, and `processing` or `valid` means it went through.
async fn finalize(
    acme: &Transport,
    rt: &Runtime,
    order: &OrderRef,
    csr: &[u8],
) -> Result<(Order, Option<RetryAfter>)> {
    let payload = json!({"csr": b64(csr)});
    let mut poll = Backoff::new(rt, "the order to become ready for finalizing".into());
    let mut lost = 0;
    loop {
        match acme
            .post_effect(&order.finalize, Some(&payload), None)
            .await
        {
            Ok(reply) => return Ok((reply.json()?, reply.retry_after())),
            Err(Error::Acme { problem }) if problem.is_type("orderNotReady") => {}
            Err(Error::AnswerLost { url, detail }) if lost < 2 => {
                lost += 1;
                warn!(%url, %detail, "the finalize answer never came; reading the order");
            }
            Err(e) => return Err(e),
        }
        loop {
            let reply = acme.get(&order.url).await?;
            let state: Order = reply.json()?;
            match order_next(&state) {
                OrderNext::Finalize => break,
                OrderNext::Fail(problem) => return Err(invalid_order(&order.url, problem)),
                // Finalized already (the lost request went through): carry on from here.
                OrderNext::Download(_) => return Ok((state, reply.retry_after())),
                OrderNext::Wait if state.status == Status::Processing => {
                    return Ok((state, reply.retry_after()));
                }
                OrderNext::Wait => poll.wait(reply.retry_after()).await?,
            }
        }
    }
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
    // A CA offers one or two alternates; never follow more than a few, whatever it sends.
    for alternate in alternate_links(&reply).into_iter().take(MAX_ALTERNATES) {
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

/// Alternate chains fetched at most when looking for `--preferred-chain`.
const MAX_ALTERNATES: usize = 8;

/// The `Link: <url>;rel="alternate"` targets of a reply (RFC 8288, RFC 8555 §7.4.2).
pub fn alternate_links(reply: &CaResponse) -> Vec<String> {
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

/// What one authorization needs, once fetched.
struct Pending {
    authz: Authorization,
    /// The challenge to answer and its key authorization; None when it is valid already or the
    /// CA is still deciding on an earlier answer.
    answer: Option<(Challenge, String)>,
}

/// Brings every authorization of the order to `valid` (RFC 8555 §7.5): fetch them all, publish
/// every answer before the first challenge is answered (a name and its wildcard share one TXT
/// name, and a caching resolver must see both values at once), answer them all, then poll the
/// order, one request per poll, until it is `ready`. Returns how many authorizations were
/// valid already (reused). Each authorization's state goes to the progress reporter.
async fn authorize_all(plan: &Plan, rt: &Runtime, order: &OrderRef) -> Result<usize> {
    let acme = &order.session.acme;
    let challenge = plan.kind.acme_type();
    let tell = |authz: &Authorization, state: AuthzState, reused: bool| {
        rt.progress.emit(Progress::Authorization {
            name: authz.name(),
            challenge,
            state,
            reused,
        });
    };
    let fetched = try_join_all(
        order
            .authorizations
            .iter()
            .map(|url| fetch_authz(acme, plan, rt, url)),
    )
    .await?;
    let reused = fetched
        .iter()
        .filter(|p| p.authz.status == Status::Valid)
        .count();
    // Reported in the order's own order, whatever order the answers came in.
    for pending in &fetched {
        match (pending.authz.status, &pending.answer) {
            (Status::Valid, _) => tell(&pending.authz, AuthzState::Valid, true),
            (_, Some(_)) => tell(&pending.authz, AuthzState::Pending, false),
            (_, None) => tell(&pending.authz, AuthzState::Answered, false),
        }
    }
    // Held until every authorization is decided, so the answers stay published meanwhile.
    let mut _published = Vec::new();
    for pending in &fetched {
        if let Some((challenge, key_authorization)) = &pending.answer {
            _published.push(
                rt.solver.present(&Task {
                    kind: plan.kind,
                    identifier: &pending.authz.identifier,
                    wildcard: pending.authz.wildcard,
                    token: challenge.token.as_deref().unwrap_or_default(),
                    key_authorization,
                    // The CA says which account URL a dns-persist-01 record must name.
                    account_url: challenge
                        .accounturi
                        .as_deref()
                        .unwrap_or(&order.session.account_url),
                    issuer_domain_names: &challenge.issuer_domain_names,
                })?,
            );
        }
    }
    let answered = try_join_all(
        fetched
            .iter()
            .filter_map(|p| p.answer.as_ref().map(|(c, _)| (p, c)))
            .map(|(p, c)| async move {
                let retry_after = answer(acme, p, c).await?;
                tell(&p.authz, AuthzState::Answered, false);
                Ok::<_, Error>(retry_after)
            }),
    )
    .await?;
    let undecided: Vec<&Pending> = fetched
        .iter()
        .filter(|p| p.authz.status != Status::Valid)
        .collect();
    if undecided.is_empty() {
        return Ok(reused);
    }
    let awaited: Vec<String> = undecided.iter().map(|p| p.authz.name()).collect();
    // The longest Retry-After any challenge answer carried is the first pause.
    let mut retry_after = answered.into_iter().flatten().max_by_key(|r| r.wait);
    let mut poll = Backoff::new(
        rt,
        format!(
            "the CA to validate {} ({})",
            names(awaited.len()),
            some_of(&awaited)
        ),
    );
    loop {
        poll.wait(retry_after.take()).await?;
        let reply = acme.get(&order.url).await?;
        let state: Order = reply.json()?;
        match state.status {
            Status::Ready | Status::Processing | Status::Valid => {
                for pending in &undecided {
                    tell(&pending.authz, AuthzState::Valid, false);
                }
                debug!(
                    authorizations = fetched.len(),
                    reused, "every authorization is valid"
                );
                return Ok(reused);
            }
            Status::Invalid => return Err(explain_invalid(acme, plan, rt, order, &state).await),
            _ => retry_after = reply.retry_after(),
        }
    }
}

/// Up to three of `names`, then how many more.
fn some_of(names: &[String]) -> String {
    const SHOWN: usize = 3;
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// Fetches one authorization and decides what it needs; reports it when it failed.
async fn fetch_authz(acme: &Transport, plan: &Plan, rt: &Runtime, url: &str) -> Result<Pending> {
    let reply = acme.get(url).await?;
    let authz: Authorization = reply.json()?;
    let action = authz_action(&authz, plan.kind.acme_type());
    if let AuthzAction::Fail(_) = action {
        rt.progress.emit(Progress::Authorization {
            name: authz.name(),
            challenge: plan.kind.acme_type(),
            state: AuthzState::Invalid,
            reused: false,
        });
    }
    let answer = match action {
        AuthzAction::Valid => {
            debug!(authorization = url, name = %authz.name(), "already valid, reused");
            None
        }
        AuthzAction::Fail(problem) => return Err(invalid_authz(&authz, problem)),
        AuthzAction::Wait => None,
        AuthzAction::Respond(challenge) if !plan.kind.has_token() => {
            if challenge.issuer_domain_names.is_empty() {
                return Err(Error::Protocol {
                    url: url.to_owned(),
                    detail: format!("the {} challenge names no issuer domain", challenge.kind),
                });
            }
            Some((challenge.clone(), String::new()))
        }
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
            Some((challenge.clone(), key_authorization))
        }
    };
    Ok(Pending { authz, answer })
}

/// Tells the CA to validate a challenge whose answer is published (RFC 8555 §7.5.1: an empty
/// object). If the answer never came, the challenge is read: still `pending` means the request
/// was not processed, and it is sent once more. Returns the answer's `Retry-After`.
async fn answer(
    acme: &Transport,
    pending: &Pending,
    challenge: &Challenge,
) -> Result<Option<RetryAfter>> {
    let name = pending.authz.name();
    for attempt in 0..2 {
        match acme
            .post_effect(&challenge.url, Some(&json!({})), None)
            .await
        {
            Ok(reply) => {
                debug!(challenge = %challenge.url, %name, "challenge answered");
                return Ok(reply.retry_after());
            }
            Err(Error::AnswerLost { url, detail }) if attempt == 0 => {
                warn!(%url, %detail, "the challenge answer never came; reading the challenge");
                let state: Challenge = acme.get(&challenge.url).await?.json()?;
                if state.status != Status::Pending {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Local(format!(
        "the challenge for {name} could not be answered"
    )))
}

/// The error for an order that turned `invalid`: the first failed authorization's problem
/// (fetched now; the order's own `error` is often only a summary), else the order's. The
/// authorizations read on the way are reported as they stand.
async fn explain_invalid(
    acme: &Transport,
    plan: &Plan,
    rt: &Runtime,
    order: &OrderRef,
    state: &Order,
) -> Error {
    for url in &order.authorizations {
        let Ok(reply) = acme.get(url).await else {
            continue;
        };
        let Ok(authz) = reply.json::<Authorization>() else {
            continue;
        };
        let action = authz_action(&authz, plan.kind.acme_type());
        let state = match &action {
            AuthzAction::Valid => AuthzState::Valid,
            AuthzAction::Fail(_) => AuthzState::Invalid,
            AuthzAction::Wait | AuthzAction::Respond(_) => continue,
        };
        rt.progress.emit(Progress::Authorization {
            name: authz.name(),
            challenge: plan.kind.acme_type(),
            state,
            reused: false,
        });
        if let AuthzAction::Fail(problem) = action {
            return invalid_authz(&authz, problem);
        }
    }
    match order_next(state) {
        OrderNext::Fail(problem) => invalid_order(&order.url, problem),
        _ => invalid_order(&order.url, Problem::local("the order is invalid")),
    }
}

fn invalid_authz(authz: &Authorization, problem: super::types::Problem) -> Error {
    let problem = if problem.kind.is_empty() && problem.detail.is_none() {
        authz_problem(authz)
    } else {
        problem
    };
    Error::Invalid {
        what: format!("the authorization for {}", authz.name()),
        problem,
    }
}

/// The polling policy: starts in milliseconds, doubles up to a cap, honours `Retry-After` in
/// full (RFC 8555 §7.4, §7.5.1), and stops at the deadline.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    deadline: Instant,
    timeout: Duration,
    timeline: Timeline,
    /// What the polls wait for, for the timeout's message.
    awaiting: String,
}

/// First polling pause: a fast CA finishes validation in a few milliseconds.
const POLL_FIRST: Duration = Duration::from_millis(2);
/// Longest pause between two polls when the CA gives no `Retry-After`.
const POLL_MAX: Duration = Duration::from_secs(2);

impl Backoff {
    /// A fresh policy bounded by the plan's deadline, polling for `awaiting` (the words after
    /// "waiting for").
    pub fn new(rt: &Runtime, awaiting: String) -> Self {
        Backoff {
            next: POLL_FIRST,
            deadline: rt.deadline,
            timeout: rt.timeout,
            timeline: rt.timeline.clone(),
            awaiting,
        }
    }

    /// The pause before the next poll: the CA's `Retry-After` when it gave one, never less
    /// than the backoff.
    pub fn delay(&mut self, retry_after: Option<&RetryAfter>) -> Duration {
        let backoff = self.next;
        self.next = (self.next * 2).min(POLL_MAX);
        match retry_after {
            Some(ra) => ra.wait.max(backoff),
            None => backoff,
        }
    }

    /// Sleeps before the next poll. Fails if that would pass the deadline: at once when the CA
    /// asked for the wait, at the deadline otherwise (so the timeout is reported on time).
    pub async fn wait(&mut self, retry_after: Option<RetryAfter>) -> Result<()> {
        let delay = self.delay(retry_after.as_ref());
        let until = later(Instant::now(), delay).filter(|u| *u <= self.deadline);
        let Some(until) = until else {
            if let Some(ra) = retry_after.filter(|ra| ra.wait >= delay) {
                return Err(Error::RetryLater {
                    url: "the next poll".into(),
                    retry_after: ra.raw.clone(),
                    wait: ra.human(),
                    until: "then".into(),
                    timeout_secs: self.timeout.as_secs(),
                    after: ra.wait,
                });
            }
            tokio::time::sleep_until(self.deadline).await;
            return Err(Error::Timeout {
                secs: self.timeout.as_secs(),
                awaited: self.awaiting.clone(),
            });
        };
        let started = Instant::now();
        tokio::time::sleep_until(until).await;
        self.timeline
            .record("poll", "pause before polling again".into(), None, started);
        Ok(())
    }
}

/// Runs the machine from the directory to the end, within the plan's deadline, telling the
/// progress reporter each phase as it starts.
pub async fn obtain(plan: &Plan, rt: &Runtime, key: AccountKey) -> Result<Outcome> {
    let mut step = Step::Directory { key };
    let mut steps = Vec::new();
    loop {
        let name = step.name();
        let awaiting = step.awaiting();
        let started = Instant::now();
        debug!(step = name, "entering step");
        rt.progress.emit(Progress::Phase {
            phase: step.phase(),
            awaiting: awaiting.clone(),
        });
        step = match tokio::time::timeout_at(rt.deadline, step.advance(plan, rt)).await {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => return Err(e.during(name)),
            Err(_) => {
                return Err(Error::Timeout {
                    secs: rt.timeout.as_secs(),
                    awaited: awaiting,
                });
            }
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        steps.push(StepTiming { step: name, ms });
        debug!(
            step = name,
            ms = format!("{ms:.1}"),
            next = step.name(),
            "step done"
        );
        if let Step::Done(mut outcome) = step {
            rt.progress.emit(Progress::Phase {
                phase: Phase::Done,
                awaiting: String::new(),
            });
            outcome.steps = steps;
            outcome.events = rt.timeline.events();
            outcome.ca_wait_ms = rt.timeline.ca_wait_ms();
            outcome.requests = rt.policy.stats();
            return Ok(*outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> Runtime {
        let deadline = Instant::now() + Duration::from_secs(60);
        Runtime {
            http: reqwest::Client::new(),
            trust: String::new(),
            deadline,
            timeout: Duration::from_secs(60),
            policy: Policy::new(None, deadline, Duration::from_secs(60)),
            solver: Arc::new(crate::challenge::ChallengeStore::new()),
            timeline: Timeline::new(Instant::now()),
            progress: Reporter::none(),
        }
    }

    #[test]
    fn backoff_starts_fast_doubles_and_caps() {
        crate::install_crypto_provider();
        let mut b = Backoff::new(&rt(), "a test".into());
        let delays: Vec<u128> = (0..12).map(|_| b.delay(None).as_millis()).collect();
        assert_eq!(&delays[..5], &[2, 4, 8, 16, 32]);
        assert_eq!(*delays.last().unwrap(), 2000);
    }

    #[test]
    fn backoff_honours_retry_after_in_full_rfc8555_7_5_1() {
        crate::install_crypto_provider();
        let mut b = Backoff::new(&rt(), "a test".into());
        let now = std::time::SystemTime::now();
        let ra = |v: &str| RetryAfter::parse(v, now).unwrap();
        assert_eq!(b.delay(Some(&ra("3"))), Duration::from_secs(3));
        // However long the CA asks for: no cap.
        assert_eq!(b.delay(Some(&ra("3600"))), Duration::from_secs(3600));
        // A Retry-After of 0 never makes polling faster than the backoff.
        assert_eq!(b.delay(Some(&ra("0"))), Duration::from_millis(8));
    }

    #[tokio::test]
    async fn a_poll_retry_after_past_the_deadline_fails_at_once() {
        crate::install_crypto_provider();
        let mut p = rt();
        p.deadline = Instant::now() + Duration::from_secs(5);
        let mut b = Backoff::new(&p, "a test".into());
        let started = Instant::now();
        let ra = RetryAfter::parse("60", std::time::SystemTime::now());
        let err = b.wait(ra).await.unwrap_err();
        assert!(matches!(err, Error::RetryLater { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn backoff_stops_at_the_deadline() {
        crate::install_crypto_provider();
        let mut p = rt();
        p.deadline = Instant::now() + Duration::from_millis(30);
        let mut b = Backoff::new(&p, "a test".into());
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
