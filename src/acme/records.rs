//! The DNS records the DNS-based challenges ask for: where each lives and what it holds. Pure
//! functions of protocol values (an identifier, a key authorization, an account URL), shared by
//! the built-in DNS server, `--dns-zone` and the `account` command that prints them.

use data_encoding::BASE32_NOPAD;

use super::solver::ChallengeKind;

/// The owner name of the TXT record a DNS challenge of `kind` looks up for `identifier` (any
/// `*.` dropped), for account `account_url`; None for challenges not answered in DNS.
pub fn record_name(kind: ChallengeKind, identifier: &str, account_url: &str) -> Option<String> {
    match kind {
        ChallengeKind::Dns01 => Some(dns01_name(identifier)),
        ChallengeKind::DnsAccount01 => Some(dns_account01_name(identifier, account_url)),
        ChallengeKind::DnsPersist01 => Some(dns_persist01_name(identifier)),
        ChallengeKind::Http01 | ChallengeKind::TlsAlpn01 => None,
    }
}

/// The owner name of the dns-01 TXT record for `identifier` (RFC 8555 §8.4), lowercase, no final
/// dot.
pub fn dns01_name(identifier: &str) -> String {
    format!("_acme-challenge.{}", bare(identifier))
}

/// The dns-account-01 label for an account (draft-ietf-acme-dns-account-label §3.1): the first
/// 10 bytes of SHA-256 of the account URL, base32 (RFC 4648 §6), lowercase: 16 characters.
pub fn account_label(account_url: &str) -> String {
    short_hash(account_url)
}

/// The owner name of the dns-account-01 TXT record: `_<label>._acme-challenge.<identifier>`.
pub fn dns_account01_name(identifier: &str, account_url: &str) -> String {
    format!("_{}.{}", account_label(account_url), dns01_name(identifier))
}

/// The owner name of the dns-persist-01 TXT record (draft-ietf-acme-dns-persist §3):
/// `_validation-persist.<identifier>`.
pub fn dns_persist01_name(identifier: &str) -> String {
    format!("_validation-persist.{}", bare(identifier))
}

/// The dns-persist-01 TXT value (an RFC 8659 issue-value): the CA's issuer domain name, then
/// `accounturi=`, `policy=wildcard` when it must cover `*.<identifier>` too, and `persistUntil=`
/// (seconds since the epoch) when the record should stop counting at some point.
pub fn dns_persist01_value(
    issuer_domain: &str,
    account_url: &str,
    wildcard: bool,
    persist_until: Option<i64>,
) -> String {
    let mut value = format!("{issuer_domain}; accounturi={account_url}");
    if wildcard {
        value.push_str("; policy=wildcard");
    }
    if let Some(until) = persist_until {
        value.push_str(&format!("; persistUntil={until}"));
    }
    value
}

/// A short, stable DNS label for any text: 10 bytes of its SHA-256 in lowercase base32.
pub fn short_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    BASE32_NOPAD
        .encode(&digest.as_ref()[..10])
        .to_ascii_lowercase()
}

/// `identifier` lowercase without a final dot or a leading `*.`.
fn bare(identifier: &str) -> String {
    identifier
        .trim_start_matches("*.")
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_label_is_sixteen_base32_characters_of_the_url_hash() {
        // draft-ietf-acme-dns-account-label §3.1: base32(SHA-256(URL)[0:10]), lowercase.
        let url = "https://example.com/acme/acct/ExampleAccount";
        let label = account_label(url);
        assert_eq!(label.len(), 16);
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c))
        );
        // The same computation spelled out: 80 bits read 5 at a time.
        let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
        let bits: String = digest.as_ref()[..10]
            .iter()
            .map(|b| format!("{b:08b}"))
            .collect();
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let expected: String = bits
            .as_bytes()
            .chunks(5)
            .map(|c| {
                let i = c
                    .iter()
                    .fold(0usize, |acc, b| acc * 2 + usize::from(b - b'0'));
                alphabet[i] as char
            })
            .collect();
        assert_eq!(label, expected);
        assert_ne!(label, account_label("https://example.com/acme/acct/Other"));
    }

    #[test]
    fn record_names() {
        assert_eq!(
            dns01_name("WWW.Example.com."),
            "_acme-challenge.www.example.com"
        );
        assert_eq!(dns01_name("*.example.com"), "_acme-challenge.example.com");
        let url = "https://ca.test/acct/1";
        assert_eq!(
            dns_account01_name("example.com", url),
            format!("_{}._acme-challenge.example.com", account_label(url))
        );
        assert_eq!(
            dns_persist01_name("Example.COM"),
            "_validation-persist.example.com"
        );
    }

    #[test]
    fn persist_values_follow_rfc8659_issue_value_syntax() {
        assert_eq!(
            dns_persist01_value("ca.example", "https://ca.example/acct/1", false, None),
            "ca.example; accounturi=https://ca.example/acct/1"
        );
        assert_eq!(
            dns_persist01_value(
                "ca.example",
                "https://ca.example/acct/1",
                true,
                Some(1_900_000_000)
            ),
            "ca.example; accounturi=https://ca.example/acct/1; policy=wildcard; persistUntil=1900000000"
        );
    }
}
