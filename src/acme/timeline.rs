//! Where the time goes: every request to the CA and every wait (polling, rate limits, connection
//! retries) with its start and duration, shared by the transport and the polling policy. The time
//! spent waiting on the CA is the union of those intervals; the rest of the wall time is ours.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// One request or wait.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// "request", "poll", "rate limit" (a 429/503 answer), "held back" (a request waiting for
    /// the CA's pause, the request budget or a place in flight) or "connect retry".
    pub kind: &'static str,
    /// For a request: "METHOD URL"; for a wait: what it waited for.
    pub what: String,
    /// HTTP status of a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Milliseconds from the start of the run.
    pub start_ms: f64,
    pub ms: f64,
}

/// A shared, append-only log of events. Cheap to clone. The std mutex is never held across an
/// `.await`.
#[derive(Debug, Clone)]
pub struct Timeline {
    origin: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

fn ms(d: Duration) -> f64 {
    // Microsecond precision is plenty and keeps the JSON short.
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Timeline {
    /// A timeline whose times count from `origin`.
    pub fn new(origin: Instant) -> Self {
        Timeline {
            origin,
            events: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Records an event that started at `started` and ends now.
    pub fn record(&self, kind: &'static str, what: String, status: Option<u16>, started: Instant) {
        let event = Event {
            kind,
            what,
            status,
            start_ms: ms(started.saturating_duration_since(self.origin)),
            ms: ms(started.elapsed()),
        };
        crate::sync::lock(&self.events).push(event);
    }

    /// Every event so far, in order of completion.
    pub fn events(&self) -> Vec<Event> {
        crate::sync::lock(&self.events).clone()
    }

    /// Milliseconds during which at least one request or wait was outstanding: the time spent
    /// waiting on the CA. Concurrent requests count once.
    pub fn ca_wait_ms(&self) -> f64 {
        busy_ms(&self.events())
    }
}

/// The length of the union of the events' intervals.
pub fn busy_ms(events: &[Event]) -> f64 {
    let mut spans: Vec<(f64, f64)> = events
        .iter()
        .map(|e| (e.start_ms, e.start_ms + e.ms))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    ms(Duration::from_secs_f64(total.max(0.0) / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(start_ms: f64, ms: f64) -> Event {
        Event {
            kind: "request",
            what: String::new(),
            status: None,
            start_ms,
            ms,
        }
    }

    #[test]
    fn overlapping_events_count_once() {
        assert_eq!(busy_ms(&[]), 0.0);
        assert_eq!(busy_ms(&[ev(0.0, 10.0)]), 10.0);
        // Two concurrent requests, then a gap, then a wait.
        assert_eq!(
            busy_ms(&[ev(0.0, 10.0), ev(5.0, 10.0), ev(20.0, 5.0)]),
            20.0
        );
        // One event inside another.
        assert_eq!(busy_ms(&[ev(0.0, 30.0), ev(10.0, 5.0)]), 30.0);
    }
}
