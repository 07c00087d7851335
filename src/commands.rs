//! The commands besides issuance: `revoke` (a certificate obtained earlier, signed by the account
//! key or the certificate's own key) and `account` (show, update contacts, roll the key over,
//! deactivate). Each reads its local inputs first, then talks to the CA through the same
//! transport and account code as issuance, and prints one summary.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tokio::time::Instant;
use tracing::info;

use crate::acme::client::Transport;
use crate::acme::jws::{AccountKey, AccountKeyType};
use crate::acme::machine::Runtime;
use crate::acme::progress::Reporter;
use crate::acme::{account, records};
use crate::app::{blocking, load_account_key, parse_key, runtime};
use crate::cert::write_atomic;
use crate::challenge::ChallengeStore;
use crate::cli::{AccountConfig, AccountKeyConfig, Reason, RevokeConfig};
use crate::error::{Error, Result};

/// `acme-client revoke`: revokes `--cert` (RFC 8555 §7.6), signed with the account key, or with
/// the certificate's key (`--key`, a `jwk` header). A refusal is a failure; `alreadyRevoked`
/// says so plainly.
pub async fn revoke(config: RevokeConfig) -> Result<()> {
    let started = Instant::now();
    let cert_path = config.cert.clone();
    let signer = config.key.clone();
    let account_path = config.account_key.clone();
    let (der, serial, key, by_account) = blocking(move || {
        let der = first_certificate(&cert_path)?;
        let serial = serial_of(&der)?;
        let (key, by_account) = match &signer {
            Some(path) => (read_key(path, "--key")?, false),
            None => (
                read_key(&account_path, "the account key (--account-key)")?,
                true,
            ),
        };
        Ok((der, serial, key, by_account))
    })
    .await?;
    let rt = command_runtime(&config.ca, started)?;
    let acme = connect(&rt, &config.ca.dir, key).await?;
    if by_account {
        let (url, _) = find(&acme).await?;
        acme.set_kid(url);
    }
    let reason = (config.reason != Reason::Unspecified).then(|| config.reason.code());
    match account::revoke(&acme, &der, reason).await {
        Ok(()) => {}
        Err(Error::Acme { problem }) if problem.is_type("alreadyRevoked") => {
            return Err(Error::Acme {
                problem: crate::acme::types::Problem {
                    detail: Some(format!(
                        "the certificate {serial} is already revoked: nothing to do ({})",
                        problem.detail.unwrap_or_default()
                    )),
                    ..problem
                },
            }
            .during("revoking the certificate"));
        }
        Err(e) => return Err(e.during("revoking the certificate")),
    }
    info!(%serial, reason = ?config.reason, "certificate revoked");
    // A certificate held in an --out set is due at once from now on.
    let dir = config
        .cert
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let marked_serial = serial.clone();
    let marked = blocking(move || crate::files::mark_revoked(&dir, &marked_serial)).await;
    if let Err(e) = marked {
        tracing::warn!(error = %e, "could not note the revocation beside the certificate");
    }
    let signed_by = if by_account {
        "account key"
    } else {
        "certificate key"
    };
    if config.json {
        println!(
            "{}",
            json!({"serial": serial, "revoked": true, "reason": reason_name(config.reason), "signed_by": signed_by})
        );
    } else {
        println!(
            "revoked certificate {serial} (reason {}, signed with the {signed_by})",
            reason_name(config.reason)
        );
    }
    Ok(())
}

/// `acme-client account`: shows the account, after updating its contacts, rolling its key over
/// or deactivating it when asked.
pub async fn account(config: AccountConfig) -> Result<()> {
    let started = Instant::now();
    if config.deactivate && !config.yes && !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "--deactivate cannot be undone: confirm with --yes (no terminal to ask on)".into(),
        ));
    }
    let key_path = config.account_key.clone();
    let key = if config.create {
        let key_config = AccountKeyConfig {
            path: key_path,
            kind: AccountKeyType::Es256,
        };
        blocking(move || load_account_key(&key_config)).await?.0
    } else {
        blocking(move || read_key(&key_path, "the account key")).await?
    };
    let rt = command_runtime(&config.ca, started)?;
    let acme = connect(&rt, &config.ca.dir, key).await?;
    let (url, mut state) = match account::find(&acme).await {
        // --create: a key the CA does not know gets its account now.
        Err(Error::Acme { problem }) if config.create && problem.is_type("accountDoesNotExist") => {
            let new = account::NewAccount {
                contacts: config.contacts.clone(),
                eab: None,
            };
            let (url, state, _) = account::register(&acme, &new)
                .await
                .map_err(|e| e.during("registering the account"))?;
            (url, state)
        }
        found => found.map_err(|e| e.during("finding the account"))?,
    };
    acme.set_kid(url.clone());
    // A registration above already carried the contacts.
    if !config.contacts.is_empty() && state.contact != config.contacts {
        state = account::update(&acme, &url, &json!({"contact": config.contacts}))
            .await
            .map_err(|e| e.during("updating the contacts"))?;
        info!(contacts = ?state.contact, "contacts updated");
    }
    if let Some(new_path) = &config.rollover {
        rollover(
            &rt,
            &config.ca.dir,
            &acme,
            &url,
            new_path,
            &config.account_key,
        )
        .await?;
    }
    if config.deactivate {
        if !config.yes && !confirm(&url)? {
            return Err(Error::Usage(
                "not deactivated: the answer was not yes".into(),
            ));
        }
        state = account::update(&acme, &url, &json!({"status": "deactivated"}))
            .await
            .map_err(|e| e.during("deactivating the account"))?;
        info!(account = %url, "account deactivated");
    }
    let persist = persist_records(&acme, &url, &config)?;
    let label = records::account_label(&url);
    if config.json {
        println!(
            "{}",
            json!({
                "url": url,
                "status": state.status.to_string(),
                "contact": state.contact,
                "key": config.account_key,
                "dns_account_label": format!("_{label}"),
                "persist_records": persist
                    .iter()
                    .map(|(name, value)| json!({"name": name, "type": "TXT", "value": value}))
                    .collect::<Vec<_>>(),
            })
        );
    } else {
        let contacts = if state.contact.is_empty() {
            "(none)".to_owned()
        } else {
            state.contact.join(", ")
        };
        println!(
            "account {url}\n  status    {}\n  contacts  {contacts}\n  key       {}\n  dns-account-01 records at _{label}._acme-challenge.NAME",
            state.status,
            config.account_key.display()
        );
        if !persist.is_empty() {
            println!("dns-persist-01: add once where the names' DNS is hosted:");
            for (name, value) in &persist {
                println!("  {name}. 3600 IN TXT \"{value}\"");
            }
        }
    }
    Ok(())
}

/// The dns-persist-01 records (owner name, TXT value) for `--persist` names: the issuer domain
/// is the first of the directory's `caaIdentities`.
fn persist_records(
    acme: &Transport,
    url: &str,
    config: &AccountConfig,
) -> Result<Vec<(String, String)>> {
    if config.persist.is_empty() {
        return Ok(Vec::new());
    }
    let meta = acme.directory().meta.as_ref();
    let from_ca = meta.and_then(|m| m.caa_identities.first());
    let issuer = config.persist_issuer.as_ref().or(from_ca).ok_or_else(|| {
        Error::Local(format!(
            "{} lists no caaIdentities, so its dns-persist-01 issuer domain is unknown",
            config.ca.dir
        ))
        .with_hint(
            "give it with --persist-issuer DOMAIN (the CA's CAA identity, e.g. letsencrypt.org)",
        )
    })?;
    Ok(config
        .persist
        .iter()
        .map(|name| {
            let wildcard = name.starts_with("*.");
            (
                records::dns_persist01_name(name),
                records::dns_persist01_value(issuer, url, wildcard, config.persist_until),
            )
        })
        .collect())
}

/// Rolls the account key over to the key in `new_path` (created there if missing), then puts it
/// in the place of the account key file, only once the CA has agreed.
async fn rollover(
    rt: &Runtime,
    dir: &str,
    acme: &Transport,
    url: &str,
    new_path: &Path,
    key_path: &Path,
) -> Result<()> {
    let path = new_path.to_path_buf();
    let new_key = blocking(move || match std::fs::metadata(&path) {
        Ok(_) => read_key(&path, "--rollover"),
        Err(_) => {
            let key = AccountKey::generate(AccountKeyType::Es256)?;
            write_atomic(&path, key.pkcs8_pem().as_bytes(), 0o600)?;
            info!(path = %path.display(), "new account key written");
            Ok(key)
        }
    })
    .await?;
    if new_key.jwk().thumbprint() == acme.key().jwk().thumbprint() {
        return Err(Error::Usage(format!(
            "--rollover {}: that is the account key already; give a new key",
            new_path.display()
        )));
    }
    match account::rollover(acme, url, &new_key).await {
        Ok(()) => {}
        // The CA may have rolled the key over: if the new key now finds this account, it did.
        Err(Error::AnswerLost { url: lost, detail }) => {
            tracing::warn!(url = %lost, %detail, "the key change answer never came; asking the CA which key the account has");
            if !new_key_owns(rt, dir, &new_key, url).await {
                return Err(
                    Error::AnswerLost { url: lost, detail }.during("rolling the account key over")
                );
            }
        }
        Err(e) => return Err(e.during("rolling the account key over")),
    }
    let pem = new_key.pkcs8_pem();
    let target = key_path.to_path_buf();
    blocking(move || write_atomic(&target, pem.as_bytes(), 0o600)).await?;
    info!(account = %url, key = %key_path.display(), "account key rolled over; the new key is in place");
    Ok(())
}

/// Whether `new_key` now finds the account at `url` (the key change went through).
async fn new_key_owns(rt: &Runtime, dir: &str, new_key: &AccountKey, url: &str) -> bool {
    let Ok(key) = new_key.try_clone() else {
        return false;
    };
    let Ok(acme) = connect(rt, dir, key).await else {
        return false;
    };
    matches!(account::find(&acme).await, Ok((found, _)) if found == url)
}

/// The live objects for a command: no challenge is answered and no progress shown.
fn command_runtime(ca: &crate::cli::CaConfig, started: Instant) -> Result<Runtime> {
    runtime(
        ca,
        Arc::new(ChallengeStore::new()),
        started,
        Reporter::none(),
    )
}

/// Asks on the terminal; true only for "yes".
fn confirm(url: &str) -> Result<bool> {
    eprint!("Deactivate the account {url} for good? It cannot be undone. Type yes: ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::Local(format!("cannot read the answer: {e}")))?;
    Ok(answer.trim() == "yes")
}

async fn connect(rt: &Runtime, dir: &str, key: AccountKey) -> Result<Transport> {
    Transport::connect(
        rt.http.clone(),
        rt.trust.clone(),
        rt.policy.clone(),
        dir,
        key,
        rt.timeline.clone(),
    )
    .await
    .map_err(|e| e.during("reading the directory"))
}

/// The account of the transport's key, with a hint when the CA knows none.
async fn find(acme: &Transport) -> Result<(String, account::Account)> {
    account::find(acme)
        .await
        .map_err(|e| e.during("finding the account"))
}

/// A PKCS#8 PEM private key from `path`, for signing requests.
fn read_key(path: &Path, what: &str) -> Result<AccountKey> {
    let usage = |why: String| Error::Usage(format!("{what} {}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| usage(format!("cannot read it ({e})")))?;
    parse_key(&bytes).map_err(usage)
}

/// The first certificate of a PEM file, as DER.
fn first_certificate(path: &Path) -> Result<Vec<u8>> {
    let usage = |why: String| Error::Usage(format!("--cert {}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| usage(format!("cannot read it ({e})")))?;
    let blocks = pem::parse_many(&bytes).map_err(|e| usage(format!("not PEM ({e})")))?;
    blocks
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.contents().to_vec())
        .ok_or_else(|| usage("holds no CERTIFICATE block".into()))
}

/// A certificate's serial, lowercase hex.
fn serial_of(der: &[u8]) -> Result<String> {
    use x509_parser::prelude::{FromDer as _, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| Error::Usage(format!("--cert: the certificate does not parse ({e})")))?;
    Ok(cert.tbs_certificate.serial.to_str_radix(16))
}

fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::Unspecified => "unspecified",
        Reason::KeyCompromise => "keyCompromise",
        Reason::AffiliationChanged => "affiliationChanged",
        Reason::Superseded => "superseded",
        Reason::CessationOfOperation => "cessationOfOperation",
    }
}
