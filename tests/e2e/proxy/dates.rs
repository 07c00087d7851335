//! `Retry-After` values in every form RFC 9110 §10.2.3 allows (delta-seconds and the three
//! HTTP-date forms of §5.6.7), and any text at all.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A `Retry-After` value, computed when the answer is sent.
#[derive(Clone, Debug)]
pub enum RetryValue {
    /// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, this many seconds after the next whole second.
    Imf(u64),
    /// RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`, likewise.
    Rfc850(u64),
    /// asctime `Sun Nov  6 08:49:37 1994`, likewise.
    Asctime(u64),
    /// Exactly this text.
    Raw(&'static str),
}

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The header text of `value` and, for a date, the moment it names.
pub fn retry_text(value: &RetryValue) -> (String, Option<SystemTime>) {
    let secs = match value {
        RetryValue::Raw(text) => return ((*text).to_owned(), None),
        RetryValue::Imf(s) | RetryValue::Rfc850(s) | RetryValue::Asctime(s) => *s,
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let unix = now.as_secs() + 1 + secs;
    let at = time::OffsetDateTime::from_unix_timestamp(unix as i64).unwrap();
    let day = DAYS[at.weekday().number_days_from_monday() as usize];
    let mon = MONTHS[at.month() as usize - 1];
    let (d, y, hms) = (
        at.day(),
        at.year(),
        format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second()),
    );
    let text = match value {
        RetryValue::Imf(_) => format!("{}, {d:02} {mon} {y} {hms} GMT", &day[..3]),
        RetryValue::Rfc850(_) => format!("{day}, {d:02}-{mon}-{:02} {hms} GMT", y % 100),
        _ => format!("{} {mon} {d:>2} {hms} {y}", &day[..3]),
    };
    (text, Some(UNIX_EPOCH + Duration::from_secs(unix)))
}
