//! The request policy for one CA, applied to every request the transport sends: a pause for the
//! whole client after a 429/503 (`Retry-After`, RFC 9110 §10.2.3, RFC 8555 §6.6), a bounded
//! number of requests in flight that shrinks while the CA pushes back and grows again when it
//! answers well (additive increase, multiplicative decrease), and, for CAs that publish per-IP
//! request limits, a budget per endpoint that keeps every request within them.
//!
//! The transport (`client.rs`) asks [`Policy::admit`] before each request and reports each answer;
//! nothing else sends requests to the CA.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Requests in flight to one CA at most (and at first).
pub const MAX_IN_FLIGHT: usize = 16;
/// Requests in flight at most under a published budget: few enough that the nonces they need
/// come out of the `newNonce` burst.
const MAX_IN_FLIGHT_BUDGETED: usize = 8;
/// The share of a published rate and burst this client uses, so that network jitter, which
/// can bunch requests on arrival, never pushes one over the CA's limit.
const BUDGET_MARGIN: f64 = 0.9;
/// Longest wait any `Retry-After` can ask for here: 100 years. Beyond it, arithmetic on
/// instants could overflow; no deadline is that far anyway.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The kinds of request a CA may limit separately (Let's Encrypt's classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Directory,
    NewNonce,
    NewAccount,
    NewOrder,
    RevokeCert,
    RenewalInfo,
    /// Every other ACME endpoint: authorizations, challenges, orders, finalize, certificates,
    /// key change, account updates.
    Other,
}

impl Endpoint {
    /// Every class, in the order budgets and counts use.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Directory,
        Endpoint::NewNonce,
        Endpoint::NewAccount,
        Endpoint::NewOrder,
        Endpoint::RevokeCert,
        Endpoint::RenewalInfo,
        Endpoint::Other,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The name used in `--json` and the benchmark (the directory's field names).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Directory => "directory",
            Endpoint::NewNonce => "newNonce",
            Endpoint::NewAccount => "newAccount",
            Endpoint::NewOrder => "newOrder",
            Endpoint::RevokeCert => "revokeCert",
            Endpoint::RenewalInfo => "renewalInfo",
            Endpoint::Other => "other",
        }
    }
}

/// One published limit: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_second: f64,
    pub burst: u32,
}

/// Which request budget to keep to (`--rate-limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimits {
    /// The published limits of the CA given by preset or its URL; none for any other CA
    Auto,
    /// Let's Encrypt's published per-IP limits, whatever the CA
    Letsencrypt,
    /// No budget: only what the CA answers (429/503 and Retry-After) slows requests down
    None,
}

impl RateLimits {
    /// The per-endpoint limits to keep, if any, for the CA at `dir_url`.
    pub fn budget(self, dir_url: &str) -> Option<[Limit; 7]> {
        let letsencrypt = [
            "https://acme-v02.api.letsencrypt.org/directory",
            "https://acme-staging-v02.api.letsencrypt.org/directory",
        ];
        match self {
            RateLimits::None => None,
            RateLimits::Letsencrypt => Some(LETSENCRYPT),
            RateLimits::Auto => letsencrypt.contains(&dir_url).then_some(LETSENCRYPT),
        }
    }
}

/// Let's Encrypt's published per-IP request limits, in [`Endpoint::ALL`] order.
pub const LETSENCRYPT: [Limit; 7] = [
    Limit {
        per_second: 40.0,
        burst: 40,
    },
    Limit {
        per_second: 20.0,
        burst: 10,
    },
    Limit {
        per_second: 5.0,
        burst: 15,
    },
    Limit {
        per_second: 300.0,
        burst: 200,
    },
    Limit {
        per_second: 10.0,
        burst: 100,
    },
    Limit {
        per_second: 1000.0,
        burst: 100,
    },
    Limit {
        per_second: 250.0,
        burst: 125,
    },
];

/// A `Retry-After` as the CA sent it and as a wait from now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    /// The header value, for messages.
    pub raw: String,
    /// How long it asks to wait from now (zero for a date in the past), capped at 100 years.
    pub wait: Duration,
}

impl RetryAfter {
    /// Parses a `Retry-After` value in any of its forms (RFC 9110 §10.2.3, §5.6.7): delta-seconds,
    /// or an HTTP date as IMF-fixdate, RFC 850 or asctime. Huge values are capped; anything else
    /// is None.
    pub fn parse(raw: &str, now: SystemTime) -> Option<Self> {
        let value = raw.trim();
        let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            // More digits than u64 holds is still "a very long time".
            Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
        } else {
            let when = httpdate::parse_http_date(value).ok()?;
            when.duration_since(now).unwrap_or(Duration::ZERO)
        };
        Some(RetryAfter {
            raw: value.chars().take(100).collect(),
            wait: wait.min(RETRY_AFTER_CAP),
        })
    }

    /// The wait in words: "45 s", "12 min 5 s", "3 h 20 min", "2 d 4 h".
    pub fn human(&self) -> String {
        human_duration(self.wait)
    }
}

/// A duration in words, to the two largest units.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{} s", s.max(u64::from(d.subsec_millis() > 0 && s == 0))),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `now + d`, or None when that cannot be represented (no overflow, ever).
pub fn later(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// A budget for one endpoint class: the generic cell rate algorithm, where each admitted request
/// moves a theoretical arrival time forward by one emission interval, and a request waits while
/// that time is further ahead than the burst allows. Reserving on admission keeps concurrent
/// callers in order.
#[derive(Debug)]
struct Cell {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl Cell {
    fn new(limit: Limit) -> Self {
        let rate = (limit.per_second * BUDGET_MARGIN).max(0.01);
        let burst = ((f64::from(limit.burst) * BUDGET_MARGIN).floor() as u32).max(1);
        let interval = Duration::from_secs_f64(1.0 / rate);
        Cell {
            interval,
            tolerance: interval * (burst - 1),
            tat: None,
        }
    }

    /// Reserves a slot; returns when it may be used.
    fn reserve(&mut self, now: Instant) -> Instant {
        let tat = self.tat.map_or(now, |t| t.max(now));
        let at = tat
            .checked_sub(self.tolerance)
            .map_or(now, |earliest| earliest.max(now));
        self.tat = Some(tat + self.interval);
        at
    }
}

/// What was sent, for `--json` and the benchmark.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestStats {
    pub total: usize,
    /// Requests per endpoint class (directory field names; "other" for the rest).
    pub by_endpoint: std::collections::BTreeMap<&'static str, usize>,
    /// 429 and 503 answers received.
    pub rate_limited: usize,
}

#[derive(Debug)]
struct State {
    /// No request before this moment (set by a 429/503).
    gate: Option<Instant>,
    /// The `Retry-After` that set the gate, for the error when it passes the deadline.
    gate_reason: Option<(RetryAfter, String)>,
    cells: Option<Vec<Cell>>,
    /// Current bound on requests in flight.
    window: usize,
    /// Permits to take out of circulation as they come back (the window shrank below the
    /// number in flight).
    debt: usize,
    /// Good answers since the window last grew.
    good: usize,
    counts: [usize; 7],
    rate_limited: usize,
}

/// The policy shared by every request to one CA. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Policy {
    state: Arc<Mutex<State>>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    deadline: Instant,
    timeout: Duration,
}

/// A place among the requests in flight; given back on drop.
#[derive(Debug)]
pub struct Admitted {
    permit: Option<OwnedSemaphorePermit>,
    policy: Policy,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let mut state = self.policy.lock();
            if state.debt > 0 {
                state.debt -= 1;
                permit.forget();
            }
        }
    }
}

impl Policy {
    /// A policy with `budget` (per [`Endpoint::ALL`]) if the CA publishes one, stopping at
    /// `deadline` (`--timeout` of `timeout`).
    pub fn new(budget: Option<[Limit; 7]>, deadline: Instant, timeout: Duration) -> Self {
        let max_in_flight = if budget.is_some() {
            MAX_IN_FLIGHT_BUDGETED
        } else {
            MAX_IN_FLIGHT
        };
        Policy {
            state: Arc::new(Mutex::new(State {
                gate: None,
                gate_reason: None,
                cells: budget.map(|b| b.iter().map(|l| Cell::new(*l)).collect()),
                window: max_in_flight,
                debt: 0,
                good: 0,
                counts: [0; 7],
                rate_limited: 0,
            })),
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            deadline,
            timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // No guard is held across an await; a poisoned lock still holds usable counters.
        crate::sync::lock(&self.state)
    }

    /// Waits until a request to `endpoint` may go: past any pause the CA asked for, within the
    /// budget, and with a place among the requests in flight. Fails at once if the CA's pause
    /// ends after the deadline.
    pub async fn admit(&self, endpoint: Endpoint) -> Result<Admitted> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Local("the request limiter was closed".into()))?;
        loop {
            let now = Instant::now();
            let (gate, slot) = {
                let mut state = self.lock();
                match state.gate.filter(|g| *g > now) {
                    Some(gate) => (Some(gate), None),
                    None => {
                        let slot = state
                            .cells
                            .as_mut()
                            .map(|cells| cells[endpoint.index()].reserve(now));
                        (None, slot)
                    }
                }
            };
            if let Some(gate) = gate {
                self.check_gate(gate)?;
                tokio::time::sleep_until(gate).await;
                continue;
            }
            if let Some(at) = slot.filter(|at| *at > now) {
                tokio::time::sleep_until(at).await;
            }
            // A 429/503 that came in while this request slept closes the gate again.
            if self.lock().gate.is_some_and(|g| g > Instant::now()) {
                continue;
            }
            break;
        }
        {
            let mut state = self.lock();
            state.counts[endpoint.index()] += 1;
        }
        Ok(Admitted {
            permit: Some(permit),
            policy: self.clone(),
        })
    }

    /// An error if the pause the CA asked for lasts past the deadline.
    fn check_gate(&self, gate: Instant) -> Result<()> {
        if gate <= self.deadline {
            return Ok(());
        }
        let (retry_after, url) = self.lock().gate_reason.clone().unwrap_or_else(|| {
            let none = RetryAfter {
                raw: "(none)".into(),
                wait: Duration::ZERO,
            };
            (none, String::new())
        });
        Err(Error::RetryLater {
            url,
            retry_after: retry_after.raw.clone(),
            wait: retry_after.human(),
            until: rfc3339_in(retry_after.wait),
            timeout_secs: self.timeout.as_secs(),
            after: retry_after.wait,
        })
    }

    /// A good answer: after a window's worth of them, one more request may be in flight.
    pub fn answered(&self) {
        let mut state = self.lock();
        if state.window >= self.max_in_flight {
            return;
        }
        state.good += 1;
        if state.good >= state.window {
            state.good = 0;
            state.window += 1;
            if state.debt > 0 {
                state.debt -= 1;
            } else {
                self.permits.add_permits(1);
            }
        }
    }

    /// A 429 or 503 from `url`: no request goes before `retry_after` (or `fallback`) has passed,
    /// and half as many may be in flight. Fails at once when that is past the deadline.
    pub fn limited(
        &self,
        url: &str,
        retry_after: Option<RetryAfter>,
        fallback: Duration,
    ) -> Result<()> {
        let now = Instant::now();
        let retry_after = retry_after.unwrap_or(RetryAfter {
            raw: format!("(none; waiting {} s)", fallback.as_secs()),
            wait: fallback,
        });
        let gate = later(now, retry_after.wait);
        {
            let mut state = self.lock();
            state.rate_limited += 1;
            let shrink = state.window - (state.window / 2).max(1);
            state.window -= shrink;
            state.good = 0;
            let forgotten = self.permits.forget_permits(shrink);
            state.debt += shrink - forgotten;
            let later_than_now = match (state.gate, gate) {
                (Some(old), Some(new)) => new > old,
                _ => true,
            };
            if later_than_now {
                state.gate = gate;
                state.gate_reason = Some((retry_after.clone(), url.to_owned()));
            }
        }
        match gate {
            Some(gate) => self.check_gate(gate),
            None => self.check_gate(self.deadline + Duration::from_secs(1)),
        }
    }

    /// The deadline of the whole run.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// What was sent so far.
    pub fn stats(&self) -> RequestStats {
        let state = self.lock();
        RequestStats {
            total: state.counts.iter().sum(),
            by_endpoint: Endpoint::ALL
                .iter()
                .map(|e| (e.name(), state.counts[e.index()]))
                .collect(),
            rate_limited: state.rate_limited,
        }
    }

    /// The current bound on requests in flight.
    pub fn window(&self) -> usize {
        self.lock().window
    }
}

/// The moment `d` from now as RFC 3339 (UTC), or "far in the future".
fn rfc3339_in(d: Duration) -> String {
    let format = &time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc()
        .checked_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
        .and_then(|t| t.replace_nanosecond(0).ok())
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| "far in the future".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    // 1994-11-06T08:49:37Z, the example date of RFC 9110 §5.6.7.
    const EXAMPLE: u64 = 784_111_777;

    #[test]
    fn retry_after_in_every_form_rfc9110_10_2_3() {
        let now = at(EXAMPLE - 30);
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",  // IMF-fixdate
            "Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
            "Sun Nov  6 08:49:37 1994",       // asctime
        ] {
            let ra = RetryAfter::parse(form, now).unwrap_or_else(|| panic!("{form}"));
            assert_eq!(ra.wait, Duration::from_secs(30), "{form}");
            assert_eq!(ra.raw, form);
        }
        assert_eq!(
            RetryAfter::parse(" 120 ", now).unwrap().wait,
            Duration::from_secs(120)
        );
        // A date in the past means now.
        assert_eq!(
            RetryAfter::parse("Sun, 06 Nov 1994 08:49:37 GMT", at(EXAMPLE + 5))
                .unwrap()
                .wait,
            Duration::ZERO
        );
    }

    #[test]
    fn absurd_retry_after_never_overflows() {
        let now = SystemTime::now();
        for (value, some) in [
            ("99999999999999999999999999999", true),
            ("18446744073709551615", true),
            ("Fri, 31 Dec 9999 23:59:59 GMT", true),
            ("-5", false),
            ("1.5", false),
            ("", false),
            ("soon", false),
            ("Sun, 32 Nov 1994 08:49:37 GMT", false),
        ] {
            let ra = RetryAfter::parse(value, now);
            assert_eq!(ra.is_some(), some, "{value}");
            if let Some(ra) = ra {
                assert!(ra.wait <= RETRY_AFTER_CAP);
                // Adding it to an instant cannot panic.
                let _ = later(Instant::now(), ra.wait);
                assert!(!ra.human().is_empty());
            }
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1 h 0 min");
        assert_eq!(human_duration(Duration::from_secs(725)), "12 min 5 s");
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86_400 + 7200)),
            "2 d 2 h"
        );
    }

    #[test]
    fn budget_keeps_rate_and_burst() {
        // 10/s with a burst of 10 (9 and 9/s after the margin): the first 9 go at once, then one
        // every 1/9 s.
        let mut cell = Cell::new(Limit {
            per_second: 10.0,
            burst: 10,
        });
        let now = Instant::now();
        let slots: Vec<Duration> = (0..12).map(|_| cell.reserve(now) - now).collect();
        assert!(slots[..9].iter().all(|d| d.is_zero()), "{slots:?}");
        assert!(slots[9] > Duration::from_millis(100), "{slots:?}");
        assert!(slots[11] > slots[10] && slots[10] > slots[9]);
        // Over any window, no more than burst + rate * window.
        let in_first_second = slots
            .iter()
            .filter(|d| **d < Duration::from_secs(1))
            .count();
        assert!(in_first_second <= 9 + 9, "{in_first_second}");
    }

    #[test]
    fn auto_uses_letsencrypt_limits_for_its_directories_only() {
        let le = "https://acme-v02.api.letsencrypt.org/directory";
        assert_eq!(RateLimits::Auto.budget(le), Some(LETSENCRYPT));
        assert_eq!(RateLimits::Auto.budget("https://127.0.0.1:14000/dir"), None);
        assert_eq!(
            RateLimits::Letsencrypt.budget("https://127.0.0.1:14000/dir"),
            Some(LETSENCRYPT)
        );
        assert_eq!(RateLimits::None.budget(le), None);
    }

    #[tokio::test]
    async fn a_503_pauses_everyone_and_halves_the_window() {
        let policy = Policy::new(
            None,
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(60),
        );
        assert_eq!(policy.window(), MAX_IN_FLIGHT);
        let held = policy.admit(Endpoint::Other).await.unwrap();
        let ra = RetryAfter::parse("1", SystemTime::now());
        policy
            .limited("https://ca/x", ra, Duration::from_secs(1))
            .unwrap();
        assert_eq!(policy.window(), MAX_IN_FLIGHT / 2);
        let started = Instant::now();
        let _next = policy.admit(Endpoint::NewNonce).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(900));
        drop(held);
        // Good answers grow the window back by one per window's worth.
        for _ in 0..MAX_IN_FLIGHT / 2 {
            policy.answered();
        }
        assert_eq!(policy.window(), MAX_IN_FLIGHT / 2 + 1);
        let stats = policy.stats();
        assert_eq!((stats.total, stats.rate_limited), (2, 1));
        assert_eq!(stats.by_endpoint["newNonce"], 1);
    }

    #[tokio::test]
    async fn a_pause_past_the_deadline_fails_at_once() {
        let policy = Policy::new(
            None,
            Instant::now() + Duration::from_secs(30),
            Duration::from_secs(30),
        );
        let ra = RetryAfter::parse("3600", SystemTime::now());
        let err = policy
            .limited("https://ca/new-order", ra, Duration::from_secs(1))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Retry-After: 3600") && text.contains("1 h 0 min"),
            "{text}"
        );
        // And so does every later request, without waiting.
        let started = Instant::now();
        assert!(policy.admit(Endpoint::Other).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}
