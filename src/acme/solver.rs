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
}

impl ChallengeKind {
    /// The challenge `type` string in ACME objects.
    pub fn acme_type(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::Dns01 => "dns-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
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
pub trait Solver: Send + Sync + std::fmt::Debug {
    /// Publishes the answer to a `kind` challenge for `identifier` (without any `*.`), given the
    /// challenge token and its key authorization (RFC 8555 §8.1).
    fn present(
        &self,
        kind: ChallengeKind,
        identifier: &Identifier,
        token: &str,
        key_authorization: &str,
    ) -> Result<Published>;
}
