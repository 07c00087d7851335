//! ACME wire types (RFC 8555 §7.1) and the pure decisions taken on the statuses the CA reports.
//!
//! Nothing here does I/O: the state machine fetches objects and asks these functions what to do next,
//! so every decision is unit-tested with JSON taken from the RFC.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The directory object (RFC 8555 §7.1.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub new_nonce: String,
    pub new_account: String,
    pub new_order: String,
    #[serde(default)]
    pub revoke_cert: Option<String>,
    #[serde(default)]
    pub key_change: Option<String>,
    /// ACME Renewal Information (RFC 9773 §4).
    #[serde(default)]
    pub renewal_info: Option<String>,
    #[serde(default)]
    pub meta: Option<DirectoryMeta>,
}

/// The directory's `meta` field (RFC 8555 §7.1.1).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMeta {
    #[serde(default)]
    pub terms_of_service: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    #[serde(default)]
    pub external_account_required: Option<bool>,
    /// Certificate profiles the CA offers, by name, with their descriptions
    /// (draft-ietf-acme-profiles).
    #[serde(default)]
    pub profiles: Option<std::collections::BTreeMap<String, String>>,
    /// The domain names the CA recognises as its own in CAA records (RFC 8555 §7.1.1); the
    /// issuer domain names of dns-persist-01 records.
    #[serde(default)]
    pub caa_identities: Vec<String>,
}

/// Status of an account, order, authorization or challenge (RFC 8555 §7.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
    /// A status this client does not know; treated as "not finished yet".
    #[serde(other)]
    Unknown,
}

impl fmt::Display for Status {
    /// The protocol's own word for the status.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pending => "pending",
            Status::Ready => "ready",
            Status::Processing => "processing",
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Deactivated => "deactivated",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
            Status::Unknown => "(unknown)",
        })
    }
}

/// An identifier in an order or authorization (RFC 8555 §9.7.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

impl Identifier {
    /// A `dns` identifier.
    pub fn dns(name: &str) -> Self {
        Identifier {
            kind: "dns".into(),
            value: name.into(),
        }
    }

    /// An `ip` identifier (RFC 8738 §3) for an address that parses, else a `dns` identifier.
    pub fn for_name(name: &str) -> Self {
        match crate::names::ip_address(name) {
            Some(ip) => Identifier {
                kind: "ip".into(),
                // RFC 8738 §3: IPv6 in the RFC 5952 text form, which Display gives.
                value: ip.to_string(),
            },
            None => Identifier::dns(name),
        }
    }
}

/// Whether `token` is a plausible challenge token: base64url characters only (RFC 8555 §8.1,
/// §8.3), and not absurdly long.
pub fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An order object (RFC 8555 §7.1.3).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub status: Status,
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    #[serde(default)]
    pub authorizations: Vec<String>,
    pub finalize: String,
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub error: Option<Problem>,
    /// The profile the CA issues the order under (draft-ietf-acme-profiles).
    #[serde(default)]
    pub profile: Option<String>,
}

/// An authorization object (RFC 8555 §7.1.4).
#[derive(Debug, Clone, Deserialize)]
pub struct Authorization {
    pub identifier: Identifier,
    pub status: Status,
    #[serde(default)]
    pub challenges: Vec<Challenge>,
    #[serde(default)]
    pub wildcard: bool,
}

impl Authorization {
    /// The name as the order has it: with `*.` for a wildcard's authorization (RFC 8555 §7.1.4).
    pub fn name(&self) -> String {
        if self.wildcard {
            format!("*.{}", self.identifier.value)
        } else {
            self.identifier.value.clone()
        }
    }
}

/// A challenge object (RFC 8555 §7.1.5, §8).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub status: Status,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub error: Option<Problem>,
    /// dns-persist-01: the account URL the record must name (draft-ietf-acme-dns-persist §4).
    #[serde(default)]
    pub accounturi: Option<String>,
    /// dns-persist-01: the issuer domain names the record may name.
    #[serde(default, rename = "issuer-domain-names")]
    pub issuer_domain_names: Vec<String>,
}

/// An RFC 7807 problem document as ACME uses it (RFC 8555 §6.7).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subproblems: Vec<Subproblem>,
}

/// One entry of a problem's `subproblems` (RFC 8555 §6.7.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subproblem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
}

const ACME_ERROR_PREFIX: &str = "urn:ietf:params:acme:error:";

impl Problem {
    /// Whether the problem's type is the ACME error `name` (e.g. "badNonce").
    pub fn is_type(&self, name: &str) -> bool {
        self.kind.strip_prefix(ACME_ERROR_PREFIX) == Some(name)
    }

    /// What a user can do about this problem, when there is something (RFC 8555 §6.7 types).
    pub fn hint(&self) -> Option<&'static str> {
        let name = self.kind.strip_prefix(ACME_ERROR_PREFIX)?;
        Some(match name {
            "externalAccountRequired" => {
                "this CA requires External Account Binding: give --eab-kid and --eab-hmac-key from your account at the CA"
            }
            "badSignatureAlgorithm" => {
                "the CA does not accept this key: try another --account-key-type"
            }
            "badCSR" => "the CA refused the CSR: check --csr or try another --key-type",
            "rateLimited" => "the CA's rate limit was reached: wait before trying again",
            "rejectedIdentifier" => "the CA will not issue for one of the names",
            "caa" => "a CAA record forbids this CA from issuing for one of the names",
            "userActionRequired" => "the CA wants you to act first (see its terms of service)",
            "accountDoesNotExist" => "no account exists for this --account-key",
            "unsupportedIdentifier" => "the CA does not support one of the identifier types",
            // Validation failures (RFC 8555 §6.7): what the CA could not reach or find.
            "connection" => {
                "the CA could not connect: check that the name resolves to this machine (--record for our own DNS) and that the CA's port (80 for http-01, 443 for tls-alpn-01) reaches --http-port / --https-port"
            }
            "dns" => {
                "the CA's DNS lookup failed: the name's zone must be delegated to acme-client's DNS server (or use --dns-zone with CNAMEs), and the CA's resolver must reach --dns-port"
            }
            "unauthorized" => {
                "the CA found no valid answer: make sure it reaches acme-client and not another server for this name (DNS delegation, port forwarding, a proxy in front)"
            }
            _ => return None,
        })
    }

    /// A problem made up locally for an answer that carried none.
    pub fn local(detail: impl Into<String>) -> Self {
        Problem {
            kind: String::new(),
            detail: Some(detail.into()),
            ..Problem::default()
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A problem of our own making (Problem::local) has no type: its detail says it all.
        match (self.kind.is_empty(), &self.detail) {
            (true, Some(detail)) => write!(f, "{detail}")?,
            (true, None) => write!(f, "(no type)")?,
            (false, Some(detail)) => write!(f, "{}: {detail}", self.kind)?,
            (false, None) => write!(f, "{}", self.kind)?,
        }
        for sub in &self.subproblems {
            write!(f, "; ")?;
            if let Some(id) = &sub.identifier {
                write!(f, "[{} {}] ", id.kind, id.value)?;
            }
            write!(f, "{}", sub.kind)?;
            if let Some(detail) = &sub.detail {
                write!(f, ": {detail}")?;
            }
        }
        Ok(())
    }
}

/// What to do with an authorization just fetched (RFC 8555 §7.5).
#[derive(Debug, PartialEq)]
pub enum AuthzAction<'a> {
    /// Already valid (the CA reused an earlier one): nothing to answer.
    Valid,
    /// Publish the key authorization for this challenge and tell the CA to validate it.
    Respond(&'a Challenge),
    /// The challenge was already answered; poll until the CA decides.
    Wait,
    /// The authorization failed: stop with this problem.
    Fail(Problem),
}

/// Decides what to do with `authz` when proving control with challenge type `kind`.
pub fn authz_action<'a>(authz: &'a Authorization, kind: &str) -> AuthzAction<'a> {
    match authz.status {
        Status::Valid => AuthzAction::Valid,
        Status::Pending => match authz.challenges.iter().find(|c| c.kind == kind) {
            None => AuthzAction::Fail(Problem::local(format!(
                "the CA offers no {kind} challenge for {} (offered: {})",
                authz.name(),
                authz
                    .challenges
                    .iter()
                    .map(|c| c.kind.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            Some(c) if c.status == Status::Pending => AuthzAction::Respond(c),
            Some(c) if c.status == Status::Invalid => AuthzAction::Fail(authz_problem(authz)),
            Some(_) => AuthzAction::Wait,
        },
        Status::Invalid | Status::Deactivated | Status::Expired | Status::Revoked => {
            AuthzAction::Fail(authz_problem(authz))
        }
        Status::Ready | Status::Processing | Status::Unknown => AuthzAction::Wait,
    }
}

/// The problem that explains a failed authorization: the first challenge error, or its status.
pub fn authz_problem(authz: &Authorization) -> Problem {
    authz
        .challenges
        .iter()
        .find_map(|c| c.error.clone())
        .unwrap_or_else(|| {
            Problem::local(format!(
                "authorization for {} is {} and carries no error",
                authz.name(),
                authz.status
            ))
        })
}

/// What the order's status says to do next (RFC 8555 §7.1.6, §7.4).
#[derive(Debug, PartialEq)]
pub enum OrderNext {
    /// Authorizations are still pending or the certificate is being issued: poll again.
    Wait,
    /// Every authorization is valid: send the CSR.
    Finalize,
    /// Issued: download from this URL.
    Download(String),
    /// The order failed.
    Fail(Problem),
}

/// Decides the next move from an order object.
pub fn order_next(order: &Order) -> OrderNext {
    match order.status {
        Status::Ready => OrderNext::Finalize,
        Status::Valid => match &order.certificate {
            Some(url) => OrderNext::Download(url.clone()),
            None => OrderNext::Fail(Problem::local(
                "the order is valid but has no certificate URL",
            )),
        },
        Status::Invalid | Status::Deactivated | Status::Expired | Status::Revoked => {
            OrderNext::Fail(order.error.clone().unwrap_or_else(|| {
                Problem::local(format!(
                    "the order is {} and carries no error",
                    order.status
                ))
            }))
        }
        Status::Pending | Status::Processing | Status::Unknown => OrderNext::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_failures_carry_a_hint_naming_what_to_check() {
        // RFC 8555 §6.7: connection, dns and unauthorized are what validation reports.
        for (kind, words) in [
            ("connection", "resolves to this machine"),
            ("dns", "delegated"),
            ("unauthorized", "reaches acme-client"),
        ] {
            let problem = Problem {
                kind: format!("urn:ietf:params:acme:error:{kind}"),
                ..Problem::default()
            };
            assert!(problem.hint().is_some_and(|h| h.contains(words)), "{kind}");
        }
        assert_eq!(Problem::local("x").hint(), None);
    }

    // RFC 8555 §7.1.1, the example directory.
    const DIRECTORY: &str = r#"{
     "newNonce": "https://example.com/acme/new-nonce",
     "newAccount": "https://example.com/acme/new-account",
     "newOrder": "https://example.com/acme/new-order",
     "newAuthz": "https://example.com/acme/new-authz",
     "revokeCert": "https://example.com/acme/revoke-cert",
     "keyChange": "https://example.com/acme/key-change",
     "meta": {
       "termsOfService": "https://example.com/acme/terms/2017-5-30",
       "website": "https://www.example.com/",
       "caaIdentities": ["example.com"],
       "externalAccountRequired": false
     }
   }"#;

    // RFC 8555 §7.1.3, the example order.
    const ORDER: &str = r#"{
     "status": "valid",
     "expires": "2016-01-20T14:09:07.99Z",
     "identifiers": [
       { "type": "dns", "value": "www.example.org" },
       { "type": "dns", "value": "example.org" }
     ],
     "notBefore": "2016-01-01T00:00:00Z",
     "notAfter": "2016-01-08T00:00:00Z",
     "authorizations": [
       "https://example.com/acme/authz/PAniVnsZcis",
       "https://example.com/acme/authz/r4HqLzrSrpI"
     ],
     "finalize": "https://example.com/acme/order/TOlocE8rfgo/finalize",
     "certificate": "https://example.com/acme/cert/mAt3xBGaobw"
   }"#;

    // RFC 8555 §7.1.4, the example authorization.
    const AUTHZ: &str = r#"{
     "status": "valid",
     "expires": "2015-03-01T14:09:07.99Z",
     "identifier": { "type": "dns", "value": "www.example.org" },
     "challenges": [
       {
         "url": "https://example.com/acme/chall/prV_B7yEyA4",
         "type": "http-01",
         "status": "valid",
         "token": "DGyRejmCefe7v4NfDGDKfA",
         "validated": "2014-12-01T12:05:58.16Z"
       }
     ],
     "wildcard": false
   }"#;

    // RFC 8555 §6.7.1, the example problem with subproblems.
    const PROBLEM: &str = r#"{
       "type": "urn:ietf:params:acme:error:malformed",
       "detail": "Some of the identifiers requested were rejected",
       "subproblems": [
           {
               "type": "urn:ietf:params:acme:error:malformed",
               "detail": "Invalid underscore in DNS name \"_example.org\"",
               "identifier": { "type": "dns", "value": "_example.org" }
           },
           {
               "type": "urn:ietf:params:acme:error:rejectedIdentifier",
               "detail": "This CA will not issue for \"example.net\"",
               "identifier": { "type": "dns", "value": "example.net" }
           }
       ]
   }"#;

    fn authz(json: &str) -> Authorization {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn directory_from_rfc8555_7_1_1() {
        let dir: Directory = serde_json::from_str(DIRECTORY).unwrap();
        assert_eq!(dir.new_nonce, "https://example.com/acme/new-nonce");
        assert_eq!(dir.new_order, "https://example.com/acme/new-order");
        assert_eq!(
            dir.revoke_cert.as_deref(),
            Some("https://example.com/acme/revoke-cert")
        );
        let meta = dir.meta.unwrap();
        assert_eq!(
            meta.terms_of_service.as_deref(),
            Some("https://example.com/acme/terms/2017-5-30")
        );
        assert_eq!(meta.external_account_required, Some(false));
    }

    #[test]
    fn directory_missing_fields_is_an_error() {
        assert!(serde_json::from_str::<Directory>(r#"{"newNonce":"x"}"#).is_err());
    }

    #[test]
    fn valid_order_from_rfc8555_7_1_3_downloads() {
        let order: Order = serde_json::from_str(ORDER).unwrap();
        assert_eq!(order.identifiers[1], Identifier::dns("example.org"));
        assert_eq!(order.authorizations.len(), 2);
        assert_eq!(
            order_next(&order),
            OrderNext::Download("https://example.com/acme/cert/mAt3xBGaobw".into())
        );
    }

    #[test]
    fn order_statuses_rfc8555_7_1_6() {
        let mut order: Order = serde_json::from_str(ORDER).unwrap();
        order.status = Status::Pending;
        assert_eq!(order_next(&order), OrderNext::Wait);
        order.status = Status::Ready;
        assert_eq!(order_next(&order), OrderNext::Finalize);
        order.status = Status::Processing;
        assert_eq!(order_next(&order), OrderNext::Wait);
        order.status = Status::Valid;
        order.certificate = None;
        assert!(matches!(order_next(&order), OrderNext::Fail(_)));
        order.status = Status::Invalid;
        order.error = Some(serde_json::from_str(PROBLEM).unwrap());
        match order_next(&order) {
            OrderNext::Fail(p) => assert!(p.is_type("malformed")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statuses_are_shown_in_the_protocol_words_rfc8555_7_1_6() {
        for word in [
            "pending",
            "ready",
            "processing",
            "valid",
            "invalid",
            "deactivated",
            "expired",
            "revoked",
        ] {
            let status: Status = serde_json::from_value(serde_json::json!(word)).unwrap();
            assert_eq!(status.to_string(), word);
        }
    }

    #[test]
    fn a_wildcard_authorization_is_named_with_its_star_rfc8555_7_1_4() {
        let authz: Authorization = serde_json::from_str(
            r#"{"identifier":{"type":"dns","value":"example.org"},"status":"pending",
                "wildcard":true,"challenges":[]}"#,
        )
        .unwrap();
        assert_eq!(authz.name(), "*.example.org");
        match authz_action(&authz, "dns-01") {
            AuthzAction::Fail(p) => {
                assert!(p.to_string().contains("challenge for *.example.org"), "{p}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_status_waits() {
        let order: Order =
            serde_json::from_str(r#"{"status":"thinking","finalize":"https://x/f"}"#).unwrap();
        assert_eq!(order.status, Status::Unknown);
        assert_eq!(order_next(&order), OrderNext::Wait);
    }

    #[test]
    fn valid_authz_from_rfc8555_7_1_4_is_not_answered_again() {
        assert_eq!(authz_action(&authz(AUTHZ), "http-01"), AuthzAction::Valid);
    }

    #[test]
    fn pending_authz_responds_to_the_wanted_challenge() {
        // RFC 8555 §7.5, the pending authorization example.
        let a = authz(
            r#"{
         "status": "pending",
         "identifier": { "type": "dns", "value": "www.example.org" },
         "challenges": [
           { "type": "http-01", "url": "https://example.com/acme/chall/prV_B7yEyA4",
             "status": "pending", "token": "DGyRejmCefe7v4NfDGDKfA" },
           { "type": "dns-01", "url": "https://example.com/acme/chall/Rg5dV14Gh1Q",
             "status": "pending", "token": "DGyRejmCefe7v4NfDGDKfA" }
         ],
         "wildcard": false
       }"#,
        );
        match authz_action(&a, "dns-01") {
            AuthzAction::Respond(c) => {
                assert_eq!(c.url, "https://example.com/acme/chall/Rg5dV14Gh1Q")
            }
            other => panic!("{other:?}"),
        }
        match authz_action(&a, "tls-alpn-01") {
            AuthzAction::Fail(p) => assert!(p.detail.unwrap().contains("http-01, dns-01")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn processing_challenge_waits_and_invalid_fails_with_its_error() {
        let mut a = authz(AUTHZ);
        a.status = Status::Pending;
        a.challenges[0].status = Status::Processing;
        assert_eq!(authz_action(&a, "http-01"), AuthzAction::Wait);
        a.status = Status::Invalid;
        a.challenges[0].status = Status::Invalid;
        a.challenges[0].error = Some(Problem {
            kind: "urn:ietf:params:acme:error:unauthorized".into(),
            detail: Some("key authorization mismatch".into()),
            ..Problem::default()
        });
        match authz_action(&a, "http-01") {
            AuthzAction::Fail(p) => {
                assert!(p.is_type("unauthorized"));
                assert_eq!(
                    p.to_string(),
                    "urn:ietf:params:acme:error:unauthorized: key authorization mismatch"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identifiers_for_names_and_addresses_rfc8738_3() {
        assert_eq!(Identifier::for_name("a.test"), Identifier::dns("a.test"));
        let v4 = Identifier::for_name("127.0.0.1");
        assert_eq!((v4.kind.as_str(), v4.value.as_str()), ("ip", "127.0.0.1"));
        let v6 = Identifier::for_name("2001:DB8:0:0:0:0:0:1");
        assert_eq!((v6.kind.as_str(), v6.value.as_str()), ("ip", "2001:db8::1"));
    }

    #[test]
    fn problem_with_subproblems_rfc8555_6_7_1() {
        let p: Problem = serde_json::from_str(PROBLEM).unwrap();
        assert!(p.is_type("malformed"));
        assert!(!p.is_type("badNonce"));
        let text = p.to_string();
        assert!(text.contains("[dns _example.org] urn:ietf:params:acme:error:malformed"));
        assert!(text.contains("This CA will not issue for \"example.net\""));
    }
}
