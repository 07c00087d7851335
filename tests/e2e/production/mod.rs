//! Issue 8, "Ready for production CAs": the client under a production CA's request limits, against
//! hostile but legal answers, with one lasting account, ports that listen only when they should,
//! and against the current Pebble. Every CA here is a real Pebble, sometimes behind the proxy.

mod account;
mod current;
mod hostile;
mod limits;
mod ports;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::harness::*;
use crate::proxy::{Exchange, Proxy};

/// Runs the client through `proxy` with `--no-serve --json` plus `extra` to success within
/// `limit`; returns the summary and the client.
pub async fn through(
    pebble: &Pebble,
    proxy: &Proxy,
    challenge: &str,
    names: &[&str],
    extra: &[&str],
    limit: Duration,
) -> (serde_json::Value, Client) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let client =
        Client::run_to_success_at(pebble, &proxy.dir_url(), challenge, names, &args, limit).await;
    assert!(client.out.path().join("fullchain.pem").is_file());
    assert!(!client.stderr().contains("panicked"), "{}", client.stderr());
    (client.json(), client)
}

/// Asserts the client's own account of its requests (`ca_requests` in `--json`) matches what
/// the proxy saw.
pub fn assert_counts_match(summary: &serde_json::Value, proxy: &Proxy) {
    let counted = &summary["ca_requests"];
    assert_eq!(
        counted["total"].as_u64(),
        Some(proxy.exchanges().len() as u64),
        "ca_requests {counted}; proxy: {}",
        proxy.report()
    );
    for (class, n) in proxy.by_class() {
        assert_eq!(
            counted["by_endpoint"][class].as_u64().unwrap_or(0),
            n as u64,
            "{class}: ca_requests {counted}; proxy: {}",
            proxy.report()
        );
    }
}

/// The moment a `Retry-After` value sent in `e` names: delta-seconds from when it was answered,
/// or an IMF-fixdate (RFC 9110 §5.6.7), the forms Pebble sends.
pub fn retry_moment(e: &Exchange) -> Option<SystemTime> {
    if let Some(until) = e.retry_until {
        return Some(until);
    }
    let value = e.retry_after.as_deref()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(e.answered_wall + Duration::from_secs(secs));
    }
    // Sun, 06 Nov 1994 08:49:37 GMT
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, mon, year, hms, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == mon)? as u8 + 1;
    let date = time::Date::from_calendar_date(
        year.parse().ok()?,
        time::Month::try_from(month).ok()?,
        day.parse().ok()?,
    )
    .ok()?;
    let hms: Vec<u8> = hms.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let unix = date
        .with_hms(*h, *m, *s)
        .ok()?
        .assume_utc()
        .unix_timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).ok()?))
}

/// Asserts that after every answer of `proxy` carrying a `Retry-After` (whose path contains
/// `on`), the next request to the resource `same` maps its path to came no earlier than the moment
/// named, and not much later. With `whole_client`, no request at all came before that moment.
/// Returns how many such answers there were.
pub fn assert_waited_as_told(
    proxy: &Proxy,
    on: &str,
    same: impl Fn(&str) -> String,
    whole_client: bool,
) -> usize {
    // A request sent as the answer left may arrive a hair later; the client's clock is ours.
    let slack = Duration::from_millis(100);
    let log = proxy.exchanges();
    let mut told = 0;
    for e in log.iter().filter(|e| e.path.contains(on)) {
        let Some(until) = retry_moment(e) else {
            continue;
        };
        told += 1;
        let after = log.iter().filter(|n| n.at_wall > e.answered_wall);
        if whole_client {
            for n in after.clone() {
                assert!(
                    n.at_wall + slack >= until,
                    "{} {} came {:?} before the Retry-After {:?} of {} ran out",
                    n.method,
                    n.path,
                    until.duration_since(n.at_wall).unwrap_or_default(),
                    e.retry_after,
                    e.path
                );
            }
        }
        let key = same(&e.path);
        if let Some(next) = after
            .filter(|n| same(&n.path) == key)
            .map(|n| n.at_wall)
            .min()
        {
            assert!(
                next + slack >= until,
                "{key} asked again {:?} before the Retry-After {:?} ran out",
                until.duration_since(next).unwrap_or_default(),
                e.retry_after
            );
            assert!(
                next <= until + Duration::from_secs(3),
                "{key} asked again {:?} after the Retry-After {:?} ran out: not as told",
                next.duration_since(until).unwrap_or_default(),
                e.retry_after
            );
        }
    }
    told
}
