//! The one door from the protocol to the challenges: the state machine asks a [`Solver`] to
//! publish the answer to a challenge and gets a guard that withdraws it when dropped (lego's
//! `challenge.Provider`: present and clean up). The challenge store implements it; the protocol
//! never sees a responder or the store.

use std::any::Any;

use super::types::Identifier;
use crate::error::Result;

/// The ALPN protocol of tls-alpn-01 validation (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The challenge types acme-client can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// RFC 8555 §8.3.
    Http01,
    /// RFC 8555 §8.4.
    Dns01,
    /// RFC 8737.
    TlsAlpn01,
    /// draft-ietf-acme-dns-account-label: a TXT record under a label of the account's own.
    DnsAccount01,
    /// draft-ietf-acme-dns-persist: a lasting TXT record naming the CA and the account.
    DnsPersist01,
}

impl ChallengeKind {
    /// The challenge `type` string in ACME objects.
    pub fn acme_type(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::DnsAccount01 => "dns-account-01",
            ChallengeKind::DnsPersist01 => "dns-persist-01",
        }
    }

    /// Whether the CA validates it through DNS (so the built-in DNS server must run).
    pub fn uses_dns(self) -> bool {
        matches!(
            self,
            ChallengeKind::Dns01 | ChallengeKind::DnsAccount01 | ChallengeKind::DnsPersist01
        )
    }

    /// Whether the challenge carries a token (every type but dns-persist-01).
    pub fn has_token(self) -> bool {
        self != ChallengeKind::DnsPersist01
    }
}

/// Everything a solver needs to publish one answer.
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    pub kind: ChallengeKind,
    /// The authorization's identifier, without any `*.`.
    pub identifier: &'a Identifier,
    /// The authorization is for `*.<identifier>`.
    pub wildcard: bool,
    /// The challenge token (empty for dns-persist-01).
    pub token: &'a str,
    /// The key authorization for the token (RFC 8555 §8.1; empty for dns-persist-01).
    pub key_authorization: &'a str,
    /// The account URL: the dns-account-01 label and the dns-persist-01 `accounturi`.
    pub account_url: &'a str,
    /// The issuer domain names a dns-persist-01 record may name (the challenge's
    /// `issuer-domain-names`).
    pub issuer_domain_names: &'a [String],
}

/// An answer kept published for as long as this value lives.
pub struct Published(#[allow(dead_code)] Box<dyn Any + Send + Sync>);

impl Published {
    /// Wraps whatever guard withdraws the answer on drop.
    pub fn new(guard: impl Any + Send + Sync) -> Self {
        Published(Box::new(guard))
    }
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Published")
    }
}

/// Publishes answers to challenges.
#[async_trait::async_trait]
pub trait Solver: Send + Sync + std::fmt::Debug {
    /// Checks, once the account is known and before anything is ordered, that what the solver
    /// depends on outside this process is in place (`--dns-zone`: the CNAME records). `names`
    /// are the requested identifiers, `*.` kept.
    async fn prepare(
        &self,
        _kind: ChallengeKind,
        _names: &[String],
        _account_url: &str,
    ) -> Result<()> {
        Ok(())
    }

    /// Publishes the answer to one challenge.
    fn present(&self, task: &Task<'_>) -> Result<Published>;
}
