//! Keeps the served certificate fresh for as long as the process runs: sleeps until the
//! certificate is due (or the CA's renewal window should be asked again), drives the same state
//! machine as the first issuance with the responders still up, and on a new certificate writes
//! the files, swaps what new handshakes get, and runs the deploy hook. A failed renewal is retried
//! with jittered backoff while the old certificate is served, with logs more urgent as expiry
//! nears. SIGHUP re-reads `--out`. The state is shared with the status endpoint.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::acme::jws::AccountKey;
use crate::acme::machine::{Action, Current};
use crate::acme::progress::Reporter;
use crate::acme::renewal::{Due, rfc3339};
use crate::app::{blocking, issue, load_current, run_deploy_hook, runtime};
use crate::cert::{CertKey, Issued};
use crate::challenge::ChallengeStore;
use crate::cli::Config;
use crate::error::{Error, Result};

/// How often the CA's renewal window is asked again while the certificate is not due (RFC 9773
/// §4.3 suggests following Retry-After, commonly six hours).
const ARI_RECHECK: Duration = Duration::from_secs(6 * 3600);
/// Never wake more often than this, whatever the certificate's lifetime.
const MIN_PAUSE: Duration = Duration::from_millis(500);
/// Longest pause between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Installs a certificate and its key in the HTTPS server (new handshakes get it).
pub type Swap = Arc<dyn Fn(&Issued, &CertKey) -> Result<()> + Send + Sync>;

/// What is being served, for the status endpoint. A cheap clone; a std lock, never held across
/// an await.
#[derive(Debug, Clone, Default)]
pub struct Served {
    state: Arc<RwLock<State>>,
}

#[derive(Debug, Default)]
struct State {
    names: Vec<String>,
    serial: String,
    not_after: String,
    next: Option<Due>,
    last_error: Option<String>,
    renewals: u64,
    failures: u32,
}

impl Served {
    /// Records the certificate now served and when it is next due.
    pub fn set(&self, issued: &Issued, next: &Due) {
        let mut s = self.write();
        s.names = issued.info.names.clone();
        s.serial = issued.info.serial.clone();
        s.not_after = issued.info.not_after.clone();
        s.next = Some(next.clone());
    }

    /// The status endpoint's answer.
    pub fn status_json(&self) -> String {
        let s = crate::sync::read(&self.state);
        json!({
            "names": s.names,
            "serial": s.serial,
            "not_after": s.not_after,
            "next_renewal": s.next,
            "renewals": s.renewals,
            "failures_in_a_row": s.failures,
            "last_error": s.last_error,
        })
        .to_string()
    }

    /// Records a failure that did not stop serving (a deploy hook).
    pub fn failed(&self, e: &Error) {
        self.write().last_error = Some(e.to_string());
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        crate::sync::write(&self.state)
    }
}

/// The renewal loop's inputs.
pub struct Renewer {
    pub config: Arc<Config>,
    pub store: ChallengeStore,
    pub account_key: AccountKey,
    pub swap: Swap,
    pub served: Served,
    /// Notified on SIGHUP: re-read the files in `--out`.
    pub reload: Arc<Notify>,
}

impl Renewer {
    /// Runs until `cancel`, starting from the certificate `current`, due as `next`.
    pub async fn run(
        self,
        mut current: Current,
        mut next: Due,
        cancel: CancellationToken,
    ) -> Result<()> {
        let mut failures: u32 = 0;
        let mut wake = pause_until(&next);
        loop {
            tokio::select! {
                () = tokio::time::sleep(wake) => {}
                () = self.reload.notified() => {
                    // A certificate taken up from --out is reviewed at once (the CA's window,
                    // or the lifetime rule), as a rerun would.
                    if self.reload_files(&mut current, &mut next).await {
                        wake = MIN_PAUSE;
                    }
                    continue;
                }
                () = cancel.cancelled() => return Ok(()),
            }
            let key = self.account_key.try_clone()?;
            let held = current.try_clone()?;
            let old_serial = current.issued.info.serial.clone();
            // Renewals run in the background: no progress display, the log says what happens.
            let rt = runtime(
                &self.config.ca(),
                Arc::new(self.store.clone()),
                Instant::now(),
                Reporter::none(),
            );
            let attempt = match rt {
                Ok(rt) => issue(&self.config, &rt, key, true, Some(held), &cancel).await,
                Err(e) => Err(e),
            };
            // A new certificate is swapped in before the hook runs, so the hook sees it served.
            let attempt = match attempt {
                Ok((outcome, _files)) if outcome.action != Action::Kept => {
                    match outcome
                        .key
                        .as_ref()
                        .map(|key| (self.swap)(&outcome.issued, key))
                    {
                        Some(Err(e)) => Err(e),
                        _ => Ok(outcome),
                    }
                }
                Ok((outcome, _files)) => Ok(outcome),
                Err(e) => Err(e),
            };
            match attempt {
                Ok(outcome) => {
                    failures = 0;
                    {
                        let mut s = self.served.write();
                        s.failures = 0;
                        s.last_error = None;
                    }
                    next = outcome.next.clone();
                    if outcome.action != Action::Kept {
                        self.served.write().renewals += 1;
                        info!(
                            old_serial = %old_serial,
                            new_serial = %outcome.issued.info.serial,
                            not_after = %outcome.issued.info.not_after,
                            next_due = %rfc3339(next.at),
                            "certificate renewed and now served"
                        );
                        if let Some(e) = run_deploy_hook(&self.config, &outcome).await {
                            error!(error = %e, "the deploy hook failed after the renewal");
                            self.served.failed(&e);
                        }
                        current = Current {
                            issued: outcome.issued,
                            key: outcome.key,
                            revoked: outcome.revoked,
                            profile: outcome.profile,
                        };
                    }
                    self.served.set(&current.issued, &next);
                    wake = pause_until(&next);
                }
                Err(Error::Interrupted) => return Ok(()),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let retry = backoff(&current.issued, failures, e.retry_after());
                    let left = time_left(&current.issued);
                    let message = format!(
                        "renewal failed (attempt {failures}); serving serial {old_serial} meanwhile, retrying in {} s",
                        retry.as_secs_f64().round()
                    );
                    match urgency(&current.issued, left) {
                        Urgency::Calm => warn!(error = %e, left = %words(left), "{message}"),
                        Urgency::Urgent => {
                            error!(error = %e, left = %words(left), "{message}; the certificate expires soon")
                        }
                        Urgency::Expired => {
                            error!(error = %e, "{message}; the served certificate HAS EXPIRED")
                        }
                    }
                    {
                        let mut s = self.served.write();
                        s.failures = failures;
                        s.last_error = Some(e.to_string());
                        // The next attempt, not the moment that has passed.
                        s.next = Some(Due {
                            at: OffsetDateTime::now_utc()
                                + time::Duration::try_from(retry).unwrap_or(time::Duration::ZERO),
                            reason: format!("retrying after {failures} failed renewal attempts"),
                            source: "retry",
                        });
                    }
                    wake = retry;
                }
            }
        }
    }

    /// SIGHUP: take up the set in `--out` if it holds another certificate that matches its key.
    /// Returns whether it did.
    async fn reload_files(&self, current: &mut Current, next: &mut Due) -> bool {
        let out = self.config.out.clone();
        let found = blocking(move || Ok(load_current(&out)))
            .await
            .ok()
            .flatten();
        let Some(found) = found else {
            warn!("SIGHUP: no usable certificate in --out; serving the current one");
            return false;
        };
        let Some(key) = &found.key else {
            warn!("SIGHUP: the certificate in --out has no key; serving the current one");
            return false;
        };
        if found.issued.info.serial == current.issued.info.serial {
            info!("SIGHUP: --out holds the certificate already served");
            return false;
        }
        if let Err(e) = (self.swap)(&found.issued, key) {
            warn!(error = %e, "SIGHUP: cannot serve the certificate in --out");
            return false;
        }
        info!(
            old_serial = %current.issued.info.serial,
            new_serial = %found.issued.info.serial,
            "SIGHUP: serving the certificate found in --out"
        );
        *next = match crate::acme::renewal::validity(found.issued.certs[0].as_ref()) {
            Ok((nb, na)) => crate::acme::renewal::by_lifetime(nb, na),
            Err(_) => Due::now("its validity cannot be read"),
        };
        *current = found;
        self.served.set(&current.issued, next);
        true
    }
}

/// How long to sleep before looking again: until the due moment, but the CA's window is asked
/// again every few hours.
fn pause_until(next: &Due) -> Duration {
    let until = next.at - OffsetDateTime::now_utc();
    let until = Duration::try_from(until).unwrap_or(Duration::ZERO);
    let until = if next.source == "ari" {
        until.min(ARI_RECHECK)
    } else {
        until
    };
    until.max(MIN_PAUSE)
}

/// The pause after `failures` failed attempts: from a twentieth of the lifetime (at most a
/// minute), doubling up to a tenth of it (at most an hour), with ±20% jitter; never sooner than
/// the CA asked, and never past the certificate's expiry by much.
fn backoff(issued: &Issued, failures: u32, ca_asks: Option<Duration>) -> Duration {
    let lifetime = lifetime(issued).unwrap_or(Duration::from_secs(90 * 86_400));
    let first = (lifetime / 20).clamp(MIN_PAUSE, Duration::from_secs(60));
    let cap = (lifetime / 10).clamp(first, MAX_BACKOFF);
    let exp = failures.saturating_sub(1).min(20);
    let base = first.saturating_mul(1u32 << exp).min(cap);
    let jitter = 0.8 + 0.4 * random_fraction();
    let pause = base.mul_f64(jitter).max(MIN_PAUSE);
    match ca_asks {
        Some(wait) => pause.max(wait),
        None => pause,
    }
}

fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_be_bytes(bytes) as f64 / u64::MAX as f64
}

fn lifetime(issued: &Issued) -> Option<Duration> {
    let (nb, na) = crate::acme::renewal::validity(issued.certs.first()?.as_ref()).ok()?;
    Duration::try_from(na - nb).ok()
}

/// Time until the certificate expires (negative when it has).
fn time_left(issued: &Issued) -> time::Duration {
    match issued
        .certs
        .first()
        .and_then(|c| crate::acme::renewal::validity(c.as_ref()).ok())
    {
        Some((_, na)) => na - OffsetDateTime::now_utc(),
        None => time::Duration::ZERO,
    }
}

enum Urgency {
    Calm,
    Urgent,
    Expired,
}

/// Calm while more than a third of the lifetime is left, urgent after, and expired.
fn urgency(issued: &Issued, left: time::Duration) -> Urgency {
    if left <= time::Duration::ZERO {
        return Urgency::Expired;
    }
    let third = lifetime(issued)
        .and_then(|l| time::Duration::try_from(l / 3).ok())
        .unwrap_or(time::Duration::days(30));
    if left < third {
        Urgency::Urgent
    } else {
        Urgency::Calm
    }
}

fn words(d: time::Duration) -> String {
    crate::acme::policy::human_duration(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_is_never_zero_and_ari_is_asked_again() {
        let soon = Due::now("now");
        assert_eq!(pause_until(&soon), MIN_PAUSE);
        let far = Due {
            at: OffsetDateTime::now_utc() + time::Duration::days(30),
            reason: "window".into(),
            source: "ari",
        };
        assert_eq!(pause_until(&far), ARI_RECHECK);
        let far_lifetime = Due {
            source: "lifetime",
            ..far
        };
        assert!(pause_until(&far_lifetime) > Duration::from_secs(29 * 86_400));
    }
}
