//! Request limits as a production CA enforces them: per endpoint class, a token bucket refilled
//! at `rate` per second holding at most `burst` requests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A per-IP request budget of one endpoint class: `rate` per second, bursts of `burst`.
pub struct Budget {
    pub class: &'static str,
    pub rate: f64,
    pub burst: f64,
}

/// Let's Encrypt's published per-IP limits, by endpoint class.
pub const LETS_ENCRYPT: &[Budget] = &[
    Budget {
        class: "newNonce",
        rate: 20.0,
        burst: 10.0,
    },
    Budget {
        class: "newAccount",
        rate: 5.0,
        burst: 15.0,
    },
    Budget {
        class: "newOrder",
        rate: 300.0,
        burst: 200.0,
    },
    Budget {
        class: "revokeCert",
        rate: 10.0,
        burst: 100.0,
    },
    Budget {
        class: "renewalInfo",
        rate: 1000.0,
        burst: 100.0,
    },
    Budget {
        class: "directory",
        rate: 40.0,
        burst: 40.0,
    },
    Budget {
        class: "other",
        rate: 250.0,
        burst: 125.0,
    },
];

/// The endpoint class of a Pebble path, as the classes of `ca_requests.by_endpoint`.
pub fn class_of(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or_default();
    match path {
        "/dir" => "directory",
        "/nonce-plz" => "newNonce",
        "/sign-me-up" => "newAccount",
        "/order-plz" => "newOrder",
        "/revoke-cert" => "revokeCert",
        p if p.contains("/renewalInfo") => "renewalInfo",
        _ => "other",
    }
}

/// The buckets of every limited class; classes without a budget are never limited.
pub struct Limits(Mutex<HashMap<&'static str, Bucket>>);

struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
    burst: f64,
}

impl Limits {
    pub fn new(budgets: &[Budget]) -> Limits {
        let now = Instant::now();
        let buckets = budgets.iter().map(|b| {
            let bucket = Bucket {
                tokens: b.burst,
                last: now,
                rate: b.rate,
                burst: b.burst,
            };
            (b.class, bucket)
        });
        Limits(Mutex::new(buckets.collect()))
    }

    /// Whether a request of `class` may go through now (and takes its token).
    pub fn admit(&self, class: &'static str) -> bool {
        let mut buckets = self.0.lock().unwrap();
        let Some(b) = buckets.get_mut(class) else {
            return true;
        };
        let now = Instant::now();
        b.tokens = (b.tokens + (now - b.last).as_secs_f64() * b.rate).min(b.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
