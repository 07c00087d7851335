//! DNS names and IP addresses as certificates and ACME carry them: the one rule that tells an IP
//! address from a DNS name, and the normalisation every name goes through (case, final dot,
//! IDN to A-labels, the label rules). Shared by the command line, the DNS server, the CSR and the
//! summary.

use std::net::IpAddr;

/// The IP address `name` is, if it is one (RFC 8738): else it is a DNS name.
pub fn ip_address(name: &str) -> Option<IpAddr> {
    name.parse().ok()
}

/// Whether `name` is an IP address rather than a DNS name.
pub fn is_ip(name: &str) -> bool {
    ip_address(name).is_some()
}

/// Normalises a name for the certificate: ASCII lowercase, no final dot (DNS names are
/// case-insensitive, RFC 4343; RFC 8555 §7.1.4 identifiers carry no final dot), and an
/// internationalised name converted to its A-label (`xn--`) form by UTS 46, since RFC 8555 §7.1.4
/// and RFC 5280 §7.2 put only A-labels in identifiers and certificates. Refuses what no CA can
/// issue for: bad characters, empty or over-long labels (RFC 1035 §2.3.4), single labels, IP
/// addresses, `*` anywhere but a whole first label.
pub fn normalize_name(raw: &str) -> std::result::Result<String, String> {
    let trimmed = raw.strip_suffix('.').unwrap_or(raw);
    if trimmed.is_empty() {
        return Err("it is empty".into());
    }
    if !trimmed.is_ascii() {
        let (prefix, base) = match trimmed.strip_prefix("*.") {
            Some(base) => ("*.", base),
            None => ("", trimmed),
        };
        let ascii = idna::domain_to_ascii_strict(base).map_err(|_| {
            "it is not a valid internationalised name (UTS 46 cannot convert it to xn-- form)"
                .to_owned()
        })?;
        return normalize_name(&format!("{prefix}{ascii}"));
    }
    if is_ip(trimmed) {
        return Err("it is an IP address, not a DNS name".into());
    }
    let name = trimmed.to_ascii_lowercase();
    if name.len() > 253 {
        return Err(format!(
            "it is {} characters long, more than DNS allows (253)",
            name.len()
        ));
    }
    let (wildcard, base) = match name.strip_prefix("*.") {
        Some(base) => (true, base),
        None => (false, name.as_str()),
    };
    let labels: Vec<&str> = base.split('.').collect();
    if labels.len() < 2 {
        return Err(
            "it has a single label; give a fully qualified name such as example.com".into(),
        );
    }
    for label in &labels {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row)".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(if c == '*' {
                "a wildcard may only be the whole first label, as in *.example.com".into()
            } else {
                format!("it contains {c:?}; names hold only letters, digits and hyphens")
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with a hyphen"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("its last label is all digits, which no top-level domain is".into());
    }
    Ok(if wildcard {
        format!("*.{base}")
    } else {
        base.to_owned()
    })
}
