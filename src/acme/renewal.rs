//! When a certificate is due for renewal: the CA's ACME Renewal Information (ARI, RFC 9773) when
//! its directory has `renewalInfo`, else a share of the lifetime. Also the ARI CertID that a
//! renewal order names in `replaces` (RFC 9773 §5).
//!
//! The decisions are pure functions of the certificate, the window and the time; only
//! [`ask_ari`] talks to the CA, through the transport.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::info;
use x509_parser::prelude::{FromDer as _, ParsedExtension, X509Certificate};

use super::client::Transport;
use super::jws::b64;
use crate::error::{Error, Result};

/// Lifetimes up to this long renew at half their life, longer ones at two thirds (Let's Encrypt's
/// advice for 6-day certificates, and the usual rule for 45 and 90 days).
const SHORT_LIFETIME: time::Duration = time::Duration::days(10);

/// When a certificate is next due, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// The moment renewal is due.
    pub at: OffsetDateTime,
    /// Why, in words.
    pub reason: String,
    /// "ari" (the CA's window), "lifetime" (the local rule), or "now" (revoked, expired, other
    /// names, other key type).
    pub source: &'static str,
}

impl Serialize for Due {
    /// `{"due": RFC 3339, "reason": .., "source": ..}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Due", 3)?;
        st.serialize_field("due", &rfc3339(self.at))?;
        st.serialize_field("reason", &self.reason)?;
        st.serialize_field("source", self.source)?;
        st.end()
    }
}

impl Due {
    /// Due at once, for `reason`.
    pub fn now(reason: impl Into<String>) -> Self {
        Due {
            at: OffsetDateTime::now_utc(),
            reason: reason.into(),
            source: "now",
        }
    }

    /// Whether the moment has come (always, for a certificate due at once).
    pub fn passed(&self, now: OffsetDateTime) -> bool {
        self.source == "now" || self.at <= now
    }
}

/// The validity of a certificate (DER).
pub fn validity(der: &[u8]) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Local(format!("the certificate does not parse: {e}")))?;
    Ok((
        cert.validity().not_before.to_datetime(),
        cert.validity().not_after.to_datetime(),
    ))
}

/// The local rule: two thirds of the lifetime, or half of it for lifetimes of 10 days or less.
pub fn by_lifetime(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Due {
    let lifetime = not_after - not_before;
    let (share, words) = if lifetime <= SHORT_LIFETIME {
        (lifetime / 2, "half")
    } else {
        (lifetime * 2 / 3, "two thirds")
    };
    Due {
        at: not_before + share,
        reason: format!(
            "{words} of the {} lifetime; the CA offers no renewal information",
            lifetime_words(lifetime)
        ),
        source: "lifetime",
    }
}

fn lifetime_words(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    let days = secs as f64 / 86_400.0;
    // CAs end a validity a second short of whole days (Pebble's 1826 days are 157,766,399 s).
    if secs >= 86_400 && (days - days.round()).abs() < 0.001 {
        format!("{}-day", days.round() as i64)
    } else if secs >= 86_400 {
        format!("{days:.1}-day")
    } else {
        format!("{secs}-second")
    }
}

/// The moment `due` brought forward, if need be, so that a tenth of the lifetime is left when it
/// comes: a window that runs to the very end (as short test lifetimes have) must not leave a
/// renewal to the last second.
pub fn before_the_end(mut due: Due, not_before: OffsetDateTime, not_after: OffsetDateTime) -> Due {
    let latest: OffsetDateTime = not_after - (not_after - not_before) / 10;
    if due.at > latest {
        due.at = latest.max(not_before);
        due.reason
            .push_str(", brought forward to leave a tenth of the lifetime");
    }
    due
}

/// The CA's suggested window (RFC 9773 §4.2).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewalInfo {
    pub suggested_window: Window,
    #[serde(default, rename = "explanationURL")]
    pub explanation_url: Option<String>,
}

/// A window as the CA sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// A uniformly random moment in the window, the same for the same certificate on every run
/// (`seed`, the serial, picks it), so that reruns from cron agree on when renewal is due instead
/// of each drawing anew (which would make early moments likelier). RFC 9773 §4.2.
pub fn by_window(info: &RenewalInfo, seed: &[u8]) -> Result<Due> {
    let parse = |t: &str| {
        OffsetDateTime::parse(t, &Rfc3339).map_err(|e| {
            Error::Local(format!(
                "the CA's renewal window holds {t:?}, not an RFC 3339 time ({e})"
            ))
        })
    };
    let start = parse(&info.suggested_window.start)?;
    let end = parse(&info.suggested_window.end)?;
    if end <= start {
        return Err(Error::Local(format!(
            "the CA's renewal window ends ({end}) before it starts ({start}) (RFC 9773 §4.2)"
        )));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, seed);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    let fraction = u64::from_be_bytes(first) as f64 / u64::MAX as f64;
    let span = (end - start).as_seconds_f64();
    let at = start + time::Duration::seconds_f64(span * fraction);
    let mut reason = format!(
        "a moment in the CA's renewal window {} to {}",
        rfc3339(start),
        rfc3339(end)
    );
    if let Some(url) = &info.explanation_url {
        reason.push_str(&format!(" (explained at {url})"));
    }
    Ok(Due {
        at,
        reason,
        source: "ari",
    })
}

/// The ARI CertID of a certificate (RFC 9773 §4.1): base64url of the authority key identifier's
/// keyIdentifier, a dot, and base64url of the serial number's DER content octets.
pub fn cert_id(der: &[u8]) -> Result<String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Local(format!("the certificate does not parse: {e}")))?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref(),
            _ => None,
        })
        .ok_or_else(|| {
            Error::Local("the certificate has no authority key identifier (needed for ARI)".into())
        })?;
    Ok(format!(
        "{}.{}",
        b64(aki.0),
        b64(cert.tbs_certificate.raw_serial())
    ))
}

/// Asks the CA when to renew the certificate `der` (RFC 9773 §4.2), at `base` (the directory's
/// `renewalInfo`). Logs the explanation URL when the CA gives one.
pub async fn ask_ari(acme: &Transport, base: &str, der: &[u8], seed: &[u8]) -> Result<Due> {
    let url = format!("{}/{}", base.trim_end_matches('/'), cert_id(der)?);
    let reply = acme.get_unsigned(&url).await?;
    if !reply.status.is_success() {
        return Err(Error::Acme {
            problem: reply.problem(),
        });
    }
    let info: RenewalInfo = reply.json()?;
    if let Some(explanation) = &info.explanation_url {
        info!(%explanation, "the CA explains its renewal window");
    }
    by_window(&info, seed)
}

/// RFC 3339 without fractions, for messages.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn ninety_days_renew_at_two_thirds_and_six_days_at_half() {
        let start = at("2026-01-01T00:00:00Z");
        let due = by_lifetime(start, start + time::Duration::days(90));
        assert_eq!(due.at, start + time::Duration::days(60));
        assert_eq!(due.source, "lifetime");
        assert!(
            due.reason.contains("two thirds of the 90-day"),
            "{}",
            due.reason
        );
        let due = by_lifetime(start, start + time::Duration::days(6));
        assert_eq!(due.at, start + time::Duration::days(3));
        assert!(due.reason.contains("half"));
        let due = by_lifetime(start, start + time::Duration::seconds(20));
        assert_eq!(due.at, start + time::Duration::seconds(10));
    }

    // RFC 9773 §4.2, the example response.
    const ARI: &str = r#"{
       "suggestedWindow": {
         "start": "2025-01-02T04:00:00Z",
         "end": "2025-01-03T04:00:00Z"
       },
       "explanationURL": "https://acme.example.com/docs/ari"
     }"#;

    #[test]
    fn a_moment_in_the_window_is_stable_per_certificate_rfc9773_4_2() {
        let info: RenewalInfo = serde_json::from_str(ARI).unwrap();
        let a = by_window(&info, b"serial-a").unwrap();
        assert!(a.at >= at("2025-01-02T04:00:00Z") && a.at <= at("2025-01-03T04:00:00Z"));
        assert_eq!(by_window(&info, b"serial-a").unwrap(), a);
        assert_eq!(a.source, "ari");
        assert!(a.reason.contains("https://acme.example.com/docs/ari"));
        // Different certificates spread over the window.
        let moments: Vec<OffsetDateTime> = (0..50)
            .map(|i| by_window(&info, format!("s{i}").as_bytes()).unwrap().at)
            .collect();
        let early = moments
            .iter()
            .filter(|m| **m < at("2025-01-02T16:00:00Z"))
            .count();
        assert!(
            (10..=40).contains(&early),
            "{early} of 50 in the first half"
        );
    }

    #[test]
    fn a_moment_at_the_very_end_is_brought_forward() {
        let nb = at("2026-01-01T00:00:00Z");
        let na = nb + time::Duration::seconds(20);
        let late = Due {
            at: na - time::Duration::seconds(1),
            reason: "window".into(),
            source: "ari",
        };
        let due = before_the_end(late, nb, na);
        assert_eq!(due.at, na - time::Duration::seconds(2));
        let early = Due {
            at: nb + time::Duration::seconds(5),
            reason: "window".into(),
            source: "ari",
        };
        assert_eq!(before_the_end(early.clone(), nb, na), early);
    }

    #[test]
    fn a_window_that_ends_before_it_starts_is_refused() {
        let info: RenewalInfo = serde_json::from_str(
            r#"{"suggestedWindow":{"start":"2025-01-03T04:00:00Z","end":"2025-01-02T04:00:00Z"}}"#,
        )
        .unwrap();
        assert!(by_window(&info, b"x").is_err());
        let info: RenewalInfo = serde_json::from_str(
            r#"{"suggestedWindow":{"start":"soon","end":"2025-01-02T04:00:00Z"}}"#,
        )
        .unwrap();
        assert!(by_window(&info, b"x").is_err());
    }

    #[test]
    fn cert_id_is_aki_dot_serial_rfc9773_4_1() {
        // A certificate signed by a CA whose key identifier we know.
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, &ca_key);
        let mut leaf = CertificateParams::new(vec!["a.test".into()]).unwrap();
        leaf.serial_number = Some(rcgen::SerialNumber::from_slice(&[
            0x00, 0x87, 0x65, 0x43, 0x21,
        ]));
        leaf.use_authority_key_identifier_extension = true;
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let id = cert_id(leaf.der()).unwrap();
        let (aki, serial) = id.split_once('.').unwrap();
        assert_eq!(serial, b64([0x00, 0x87, 0x65, 0x43, 0x21]));
        // The AKI of the leaf is the CA's subject key identifier.
        let (_, ca_parsed) = X509Certificate::from_der(ca_cert.der()).unwrap();
        let ski = ca_parsed
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap();
        assert_eq!(aki, b64(&ski));
    }
}
