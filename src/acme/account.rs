//! The account and revocation requests (RFC 8555 §7.3, §7.6): find or create the account, read and
//! update it, roll its key over, deactivate it, revoke a certificate. Shared by the state machine
//! and the `account` and `revoke` commands; every request goes through the transport.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::client::Transport;
use super::jws::{AccountKey, b64};
use super::types::Status;
use crate::error::{Error, Result};

/// External Account Binding credentials (RFC 8555 §7.3.4).
#[derive(Debug, Clone)]
pub struct Eab {
    pub kid: String,
    pub hmac_key: Vec<u8>,
}

/// An account object (RFC 8555 §7.1.2).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Account {
    pub status: Status,
    #[serde(default)]
    pub contact: Vec<String>,
}

/// What to send when an account has to be created.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub contacts: Vec<String>,
    pub eab: Option<Eab>,
}

/// Finds the account of the transport's key (`onlyReturnExisting`, RFC 8555 §7.3.1). Returns its
/// URL and object. An unknown key is [`Error::Acme`] with `accountDoesNotExist`.
pub async fn find(acme: &Transport) -> Result<(String, Account)> {
    let url = acme.directory().new_account.clone();
    let reply = acme
        .post(&url, Some(&json!({"onlyReturnExisting": true})), None)
        .await?;
    let account_url = reply.location()?;
    let account = reply.json()?;
    Ok((account_url, account))
}

/// Finds the account of a known key, or creates one with the terms agreed, the contacts and
/// the External Account Binding. Returns its URL and whether it was created now.
pub async fn find_or_create(
    acme: &Transport,
    known: bool,
    new: &NewAccount,
) -> Result<(String, bool)> {
    if known {
        match find(acme).await {
            Ok((account_url, account)) => {
                if account.status != Status::Valid {
                    return Err(Error::Acme {
                        problem: super::types::Problem {
                            kind: "urn:ietf:params:acme:error:unauthorized".into(),
                            detail: Some(format!(
                                "the account {account_url} is {}; use another account key",
                                account.status
                            )),
                            ..Default::default()
                        },
                    });
                }
                info!(account = %account_url, "existing account found for the account key");
                return Ok((account_url, false));
            }
            Err(Error::Acme { problem }) if problem.is_type("accountDoesNotExist") => {
                info!("the CA knows no account for this key; creating one with the same key");
            }
            Err(e) => return Err(e),
        }
    }
    let (account_url, _, created) = register(acme, new).await?;
    Ok((account_url, created))
}

/// Creates the account of the transport's key with the terms agreed, the contacts and the
/// External Account Binding (RFC 8555 §7.3). Returns its URL, its object and whether it was
/// created now (an existing account for the key is returned as it is).
pub async fn register(acme: &Transport, new: &NewAccount) -> Result<(String, Account, bool)> {
    let url = acme.directory().new_account.clone();
    let mut payload = json!({"termsOfServiceAgreed": true});
    if !new.contacts.is_empty() {
        payload["contact"] = json!(new.contacts);
    }
    if let Some(eab) = &new.eab {
        payload["externalAccountBinding"] =
            acme.key()
                .external_account_binding(&eab.kid, &eab.hmac_key, &url);
    }
    // newAccount with the same key is idempotent (RFC 8555 §7.3.1: an existing account is
    // returned), so a lost answer may be asked for again.
    let reply = acme
        .post(&url, Some(&payload), None)
        .await
        .map_err(|e| contact_hint(e, !new.contacts.is_empty()))?;
    let account_url = reply.location()?;
    let account = reply.json()?;
    let created = reply.status == reqwest::StatusCode::CREATED;
    info!(account = %account_url, created, "account ready");
    Ok((account_url, account, created))
}

/// A newAccount refusal that is about the contact gets the fix as its hint: `invalidContact`
/// (RFC 8555 §7.3), or `malformed` when no contact was sent, as a CA that requires one answers.
fn contact_hint(e: Error, contacts_given: bool) -> Error {
    let Error::Acme { problem } = &e else {
        return e;
    };
    if problem.is_type("invalidContact") {
        let fix = if contacts_given {
            "the CA refused the contact: pass one it accepts with --contact mailto:ADDR"
        } else {
            "this CA requires a contact: pass --contact mailto:ADDR"
        };
        e.with_hint(fix)
    } else if problem.is_type("malformed") && !contacts_given {
        e.with_hint("this CA may require a contact: pass --contact mailto:ADDR")
    } else {
        e
    }
}

/// Updates the account (RFC 8555 §7.3.2, §7.3.6) with `payload` and returns it as the CA now has it.
pub async fn update(acme: &Transport, account_url: &str, payload: &Value) -> Result<Account> {
    acme.post(account_url, Some(payload), None).await?.json()
}

/// Rolls the account key over to `new_key` (RFC 8555 §7.3.5): an inner JWS signed by the new key
/// naming the account and the old key, inside a request signed by the old one.
pub async fn rollover(acme: &Transport, account_url: &str, new_key: &AccountKey) -> Result<()> {
    let url = acme
        .directory()
        .key_change
        .clone()
        .ok_or_else(|| Error::Protocol {
            url: "the directory".into(),
            detail: "it has no keyChange URL, so the CA cannot roll keys over".into(),
        })?;
    let inner_protected = json!({"alg": new_key.alg(), "jwk": new_key.jwk().to_json(), "url": url});
    let inner_payload = json!({"account": account_url, "oldKey": acme.key().jwk().to_json()});
    let inner = new_key.sign(&inner_protected, Some(&inner_payload))?;
    acme.post_effect(&url, Some(&inner), None).await?;
    Ok(())
}

/// Revokes the certificate `der` (RFC 8555 §7.6) with an RFC 5280 reason code. If the answer
/// never came the request is sent once more, and `alreadyRevoked` then means the first one went
/// through. A refusal is an error, never reported as revoked.
pub async fn revoke(acme: &Transport, der: &[u8], reason: Option<u8>) -> Result<()> {
    let url = acme
        .directory()
        .revoke_cert
        .clone()
        .ok_or_else(|| Error::Protocol {
            url: "the directory".into(),
            detail: "it has no revokeCert URL".into(),
        })?;
    let mut payload = json!({"certificate": b64(der)});
    if let Some(reason) = reason {
        payload["reason"] = json!(reason);
    }
    match acme.post_effect(&url, Some(&payload), None).await {
        Ok(_) => Ok(()),
        Err(Error::AnswerLost { url, detail }) => {
            warn!(%url, %detail, "the revocation answer never came; asking again");
            match acme.post_effect(&url, Some(&payload), None).await {
                Err(Error::Acme { problem }) if problem.is_type("alreadyRevoked") => Ok(()),
                other => other.map(|_| ()),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::types::Problem;

    fn refused(kind: &str) -> Error {
        Error::Acme {
            problem: Problem {
                kind: format!("urn:ietf:params:acme:error:{kind}"),
                ..Problem::default()
            },
        }
    }

    #[test]
    fn a_ca_requiring_a_contact_gets_the_flag_as_hint_rfc8555_7_3() {
        let hint = |kind, given| contact_hint(refused(kind), given).hint();
        assert_eq!(
            hint("invalidContact", false).as_deref(),
            Some("this CA requires a contact: pass --contact mailto:ADDR")
        );
        assert!(
            hint("invalidContact", true)
                .unwrap()
                .contains("one it accepts")
        );
        assert!(
            hint("malformed", false)
                .unwrap()
                .contains("--contact mailto:ADDR")
        );
        // A malformed request with a contact is not about the contact.
        assert_eq!(hint("malformed", true), None);
        assert_eq!(hint("badNonce", false), None);
        // The exit code stays the CA's.
        let e = contact_hint(refused("invalidContact"), false);
        assert_eq!(e.exit_code(), crate::error::exit::CA);
    }
}
