//! Challenge state shared by the ACME machine (which presents and cleans up) and the DNS and
//! http-01 servers (which read). One source of truth behind a cheap `Clone` handle.

pub mod delegation;
pub mod dns;
pub mod http;
pub mod tls_alpn;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::acme::jws::dns01_value;
use crate::acme::records;
use crate::acme::solver::{Published, Solver, Task};
use crate::error::{Error, Result};
use delegation::Delegation;

pub use crate::acme::solver::ChallengeKind;

/// What must be published to answer `task`.
pub fn publication(task: &Task<'_>) -> Result<Publication> {
    let identifier = &task.identifier.value;
    Ok(match task.kind {
        ChallengeKind::Http01 => Publication::Http {
            token: task.token.to_owned(),
            key_authorization: task.key_authorization.to_owned(),
        },
        ChallengeKind::Dns01 => Publication::Dns {
            name: records::dns01_name(identifier),
            value: dns01_value(task.key_authorization),
        },
        ChallengeKind::DnsAccount01 => Publication::Dns {
            name: records::dns_account01_name(identifier, task.account_url),
            value: dns01_value(task.key_authorization),
        },
        ChallengeKind::DnsPersist01 => {
            let issuer = task.issuer_domain_names.first().ok_or_else(|| {
                Error::Local(format!(
                    "the CA's dns-persist-01 challenge for {identifier} names no issuer domain"
                ))
            })?;
            Publication::Dns {
                name: records::dns_persist01_name(identifier),
                value: records::dns_persist01_value(issuer, task.account_url, task.wildcard, None),
            }
        }
        ChallengeKind::TlsAlpn01 => Publication::TlsAlpn {
            server_name: tls_alpn::server_name(task.identifier),
            cert: tls_alpn::validation_cert(task.identifier, task.key_authorization)?,
        },
    })
}

/// One answer to publish for the duration of a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// Served at `/.well-known/acme-challenge/<token>`.
    Http {
        token: String,
        key_authorization: String,
    },
    /// One TXT value at `name`; a name and its wildcard share a name, so values accumulate.
    Dns { name: String, value: String },
    /// A validation certificate, served for `server_name` (SNI) to clients offering ALPN
    /// `acme-tls/1`.
    TlsAlpn {
        server_name: String,
        cert: tls_alpn::ValidationCert,
    },
}

#[derive(Debug, Default)]
struct Tables {
    http: HashMap<String, String>,
    dns: HashMap<String, Vec<String>>,
    tls: HashMap<String, tls_alpn::ValidationCert>,
}

/// The shared challenge table. A std `RwLock` is right here: every access is a short map
/// operation and no guard is ever held across an `.await` (callers never see a guard).
#[derive(Debug, Clone, Default)]
pub struct ChallengeStore {
    tables: Arc<RwLock<Tables>>,
    /// `--dns-zone`: DNS answers are published at their CNAME targets inside this zone.
    delegation: Option<Arc<Delegation>>,
}

impl ChallengeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that publishes DNS answers inside a delegated zone.
    pub fn delegating(delegation: Delegation) -> Self {
        ChallengeStore {
            tables: Arc::default(),
            delegation: Some(Arc::new(delegation)),
        }
    }

    /// Publishes an answer. Returns a guard that removes it again when dropped, so a failed or
    /// cancelled authorization never leaves stale answers behind.
    pub fn publish(&self, publication: Publication) -> Presented {
        {
            let mut t = self.write();
            match &publication {
                Publication::Http {
                    token,
                    key_authorization,
                } => {
                    t.http.insert(token.clone(), key_authorization.clone());
                }
                Publication::Dns { name, value } => {
                    let values = t.dns.entry(name.clone()).or_default();
                    if !values.contains(value) {
                        values.push(value.clone());
                    }
                }
                Publication::TlsAlpn { server_name, cert } => {
                    t.tls.insert(server_name.clone(), cert.clone());
                }
            }
        }
        Presented {
            store: self.clone(),
            publication,
        }
    }

    fn clean_up(&self, publication: &Publication) {
        let mut t = self.write();
        match publication {
            Publication::Http { token, .. } => {
                t.http.remove(token);
            }
            Publication::Dns { name, value } => {
                if let Some(values) = t.dns.get_mut(name) {
                    values.retain(|v| v != value);
                    if values.is_empty() {
                        t.dns.remove(name);
                    }
                }
            }
            Publication::TlsAlpn { server_name, .. } => {
                t.tls.remove(server_name);
            }
        }
    }

    /// The key authorization published for an http-01 token.
    pub fn http_key_authorization(&self, token: &str) -> Option<String> {
        self.read().http.get(token).cloned()
    }

    /// Every dns-01 value published at `name` (lowercase, no final dot).
    pub fn dns_txt(&self, name: &str) -> Vec<String> {
        self.read().dns.get(name).cloned().unwrap_or_default()
    }

    /// The tls-alpn-01 validation certificate for an SNI name.
    pub fn tls_alpn_cert(&self, server_name: &str) -> Option<tls_alpn::ValidationCert> {
        self.read()
            .tls
            .get(&server_name.to_ascii_lowercase())
            .cloned()
    }

    // A panic while holding the lock cannot leave the maps half-updated (each update is a single
    // map operation), so a poisoned lock is safe to keep using.
    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        crate::sync::read(&self.tables)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        crate::sync::write(&self.tables)
    }
}

#[async_trait::async_trait]
impl Solver for ChallengeStore {
    async fn prepare(
        &self,
        kind: ChallengeKind,
        names: &[String],
        account_url: &str,
    ) -> Result<()> {
        let Some(delegation) = &self.delegation else {
            return Ok(());
        };
        let record_names: Vec<String> = names
            .iter()
            .filter_map(|name| records::record_name(kind, name, account_url))
            .collect();
        delegation.check(&delegation.cnames(&record_names)).await
    }

    fn present(&self, task: &Task<'_>) -> Result<Published> {
        let answer = match (publication(task)?, &self.delegation) {
            (Publication::Dns { name, value }, Some(delegation)) => Publication::Dns {
                name: delegation.target(&name),
                value,
            },
            (answer, _) => answer,
        };
        Ok(Published::new(self.publish(answer)))
    }
}

/// [`publication`] for tests: account `https://ca.test/acct/1`, no issuer domains, not a
/// wildcard.
#[doc(hidden)]
pub fn test_publication(
    kind: ChallengeKind,
    identifier: &crate::acme::types::Identifier,
    token: &str,
    key_authorization: &str,
) -> Result<Publication> {
    publication(&Task {
        kind,
        identifier,
        wildcard: false,
        token,
        key_authorization,
        account_url: "https://ca.test/acct/1",
        issuer_domain_names: &[],
    })
}

/// A published answer; dropping it cleans it up.
#[derive(Debug)]
pub struct Presented {
    store: ChallengeStore,
    publication: Publication,
}

impl Drop for Presented {
    fn drop(&mut self) {
        self.store.clean_up(&self.publication);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::types::Identifier;

    #[test]
    fn a_name_and_its_wildcard_share_one_txt_name() {
        let store = ChallengeStore::new();
        let a = test_publication(
            ChallengeKind::Dns01,
            &Identifier::dns("Example.test"),
            "t1",
            "t1.thumb",
        )
        .unwrap();
        let b = test_publication(
            ChallengeKind::Dns01,
            &Identifier::dns("example.test"),
            "t2",
            "t2.thumb",
        )
        .unwrap();
        let ga = store.publish(a);
        let gb = store.publish(b);
        let values = store.dns_txt("_acme-challenge.example.test");
        assert_eq!(values.len(), 2);
        drop(ga);
        assert_eq!(store.dns_txt("_acme-challenge.example.test").len(), 1);
        drop(gb);
        assert!(store.dns_txt("_acme-challenge.example.test").is_empty());
    }

    #[test]
    fn http_answer_lives_as_long_as_its_guard() {
        let store = ChallengeStore::new();
        let guard = store.publish(
            test_publication(
                ChallengeKind::Http01,
                &Identifier::dns("x.test"),
                "tok",
                "tok.thumb",
            )
            .unwrap(),
        );
        assert_eq!(
            store.http_key_authorization("tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(store.http_key_authorization("other"), None);
        drop(guard);
        assert_eq!(store.http_key_authorization("tok"), None);
    }
}
