//! The validated configuration: [`Cli::validate`](super::Cli::validate) turns what clap parsed
//! into a [`Config`] (or the other commands' configs) whose every value is known to be usable:
//! names, ports, contacts, EAB, the delegated zone, the files named on the command line. A
//! failure is a usage error naming the flag and the fix. Nothing here touches the network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::presets::{public_ca, validate_dir};
use super::{CaArgs, Cli, Command, IssueArgs, MAX_NAMES, Reason, Shell};
use crate::acme::jws::AccountKeyType;
use crate::acme::machine::{CertRequest, Eab};
use crate::acme::policy::RateLimits;
use crate::cert::UserCsr;
use crate::challenge::ChallengeKind;
use crate::challenge::delegation::Delegation;
use crate::error::{Error, Result};
use crate::names::{ip_address, normalize_name};

/// The CA's trust roots given with `--ca-bundle`.
#[derive(Debug, Clone)]
pub struct CaBundle {
    pub path: PathBuf,
    pub roots: Vec<CertificateDer<'static>>,
}

/// The account key to use.
#[derive(Debug, Clone)]
pub struct AccountKeyConfig {
    /// `--account-key`, or `account.pem` in `--out`: loaded if it exists, else created there.
    pub path: PathBuf,
    /// The type of a key created here.
    pub kind: AccountKeyType,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub challenge: ChallengeKind,
    pub dir: String,
    /// The public CA preset `--dir` names (or whose URL it is); None for any other CA.
    pub public_ca: Option<&'static str>,
    pub rate_limits: RateLimits,
    pub record: Option<Ipv4Addr>,
    /// `--dns-zone` (with `--resolver`): DNS challenges answered inside a delegated zone.
    pub delegation: Option<Delegation>,
    /// Normalised names (lowercase, no final dot; IP addresses in canonical form), duplicates
    /// removed, in the order given.
    pub names: Vec<String>,
    pub revoke: bool,
    pub ca_bundle: Option<CaBundle>,
    pub out: PathBuf,
    pub serve: bool,
    pub json: bool,
    pub timings: bool,
    pub bind: IpAddr,
    pub shutdown_bind: IpAddr,
    pub dns_port: u16,
    pub http_port: u16,
    pub https_port: u16,
    pub shutdown_port: u16,
    pub timeout: Duration,
    pub account_key: AccountKeyConfig,
    pub contacts: Vec<String>,
    pub eab: Option<Eab>,
    pub request: CertRequest,
    pub preferred_chain: Option<String>,
    /// Order even if the current certificate is not due (`--force`).
    pub force: bool,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--deploy-hook`.
    pub deploy_hook: Option<String>,
    /// `--upstream`: the HTTP backend HTTPS forwards to.
    pub upstream: Option<hyper::Uri>,
    /// `--root`: the directory of static files HTTPS serves.
    pub root: Option<PathBuf>,
}

/// The CA as validated from [`CaArgs`].
#[derive(Debug, Clone)]
pub struct CaConfig {
    pub dir: String,
    pub public_ca: Option<&'static str>,
    pub ca_bundle: Option<CaBundle>,
    pub timeout: Duration,
    pub rate_limits: RateLimits,
}

/// A validated `revoke` command.
#[derive(Debug, Clone)]
pub struct RevokeConfig {
    pub ca: CaConfig,
    pub cert: PathBuf,
    /// Sign with the certificate key in this file (jwk), or else with the account key.
    pub key: Option<PathBuf>,
    pub account_key: PathBuf,
    pub reason: Reason,
    pub json: bool,
}

/// A validated `account` command.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub ca: CaConfig,
    pub account_key: PathBuf,
    pub contacts: Vec<String>,
    pub rollover: Option<PathBuf>,
    pub deactivate: bool,
    pub yes: bool,
    pub json: bool,
    /// Register the account (and create the key) when missing (`--create`).
    pub create: bool,
    /// Names (`*.` kept) to print dns-persist-01 records for.
    pub persist: Vec<String>,
    /// `persistUntil`, in seconds since the epoch.
    pub persist_until: Option<i64>,
    /// The issuer domain name for the records (`--persist-issuer`); else the CA's first
    /// `caaIdentities`.
    pub persist_issuer: Option<String>,
}

/// A validated command.
#[derive(Debug, Clone)]
pub enum Action {
    Issue(Box<Config>),
    Revoke(RevokeConfig),
    Account(AccountConfig),
    /// Print the completion script for this shell.
    Completions(Shell),
    /// Print the manual page.
    Manpage,
}

impl Config {
    /// The CA part of the configuration.
    pub fn ca(&self) -> CaConfig {
        CaConfig {
            dir: self.dir.clone(),
            public_ca: self.public_ca,
            ca_bundle: self.ca_bundle.clone(),
            timeout: self.timeout,
            rate_limits: self.rate_limits,
        }
    }
}

impl CaArgs {
    fn validate(self) -> Result<CaConfig> {
        let dir = validate_dir(&self.dir)?;
        Ok(CaConfig {
            public_ca: public_ca(&dir),
            dir,
            ca_bundle: self.ca_bundle.map(load_ca_bundle).transpose()?,
            timeout: Duration::from_secs(self.timeout),
            rate_limits: self.rate_limits,
        })
    }
}

impl Cli {
    /// Checks every value; a failure is a usage error (exit 2) naming the flag and the fix.
    pub fn validate(self) -> Result<Action> {
        Ok(match self.command {
            Command::Http01(args) => Action::Issue(Box::new(args.validate(ChallengeKind::Http01)?)),
            Command::Dns01(args) => Action::Issue(Box::new(args.validate(ChallengeKind::Dns01)?)),
            Command::Tlsalpn01(args) => {
                Action::Issue(Box::new(args.validate(ChallengeKind::TlsAlpn01)?))
            }
            Command::Dnsaccount01(args) => {
                Action::Issue(Box::new(args.validate(ChallengeKind::DnsAccount01)?))
            }
            Command::Dnspersist01(args) => {
                Action::Issue(Box::new(args.validate(ChallengeKind::DnsPersist01)?))
            }
            Command::Revoke(args) => {
                let account_key = args.account_key.unwrap_or_else(|| {
                    args.cert
                        .parent()
                        .unwrap_or(std::path::Path::new("."))
                        .join("account.pem")
                });
                Action::Revoke(RevokeConfig {
                    ca: args.ca.validate()?,
                    cert: args.cert,
                    key: args.key,
                    account_key,
                    reason: args.reason,
                    json: args.json,
                })
            }
            Command::Account(args) => {
                let contacts = contacts(args.contact, &args.email)?;
                Action::Account(AccountConfig {
                    ca: args.ca.validate()?,
                    account_key: args
                        .account_key
                        .unwrap_or_else(|| args.out.join("account.pem")),
                    contacts,
                    rollover: args.rollover,
                    deactivate: args.deactivate,
                    yes: args.yes,
                    json: args.json,
                    create: args.create,
                    persist: normalize_all(&args.persist, ChallengeKind::DnsPersist01).map_err(
                        |e| Error::Usage(e.to_string().replace("--domain", "--persist")),
                    )?,
                    persist_issuer: args
                        .persist_issuer
                        .as_deref()
                        .map(|raw| {
                            normalize_name(raw).map_err(|why| {
                                Error::Usage(format!(
                                    "--persist-issuer {raw:?} is not a domain name: {why}"
                                ))
                            })
                        })
                        .transpose()?,
                    persist_until: args
                        .persist_until
                        .as_deref()
                        .map(parse_moment)
                        .transpose()?,
                })
            }
            Command::Completions { shell } => Action::Completions(shell),
            Command::Manpage => Action::Manpage,
        })
    }
}

impl IssueArgs {
    /// Checks every value; a failure is a usage error (exit 2) naming the flag and the fix.
    pub fn validate(self, challenge: ChallengeKind) -> Result<Config> {
        let CaConfig {
            dir,
            public_ca,
            ca_bundle,
            timeout,
            rate_limits,
        } = self.ca.validate()?;
        // A public CA validates http-01 on 80, tls-alpn-01 on 443 and finds our DNS server on 53
        // through delegation; any other CA (Pebble) where it is configured to.
        let (dns_port, http_port, https_port) = match public_ca {
            Some(_) => (53, 80, 443),
            None => (10053, 5002, 5001),
        };
        let dns_port = self.dns_port.unwrap_or(dns_port);
        let http_port = self.http_port.unwrap_or(http_port);
        let https_port = self.https_port.unwrap_or(https_port);
        let mut names = normalize_all(&self.domains, challenge)?;
        let mut serve = !self.no_serve;
        let request = match &self.csr {
            None => CertRequest::Generate(self.key_type),
            Some(path) => {
                let csr = UserCsr::load(path).map_err(|why| {
                    Error::Usage(format!(
                        "--csr {}: {why}; give a PEM or DER PKCS#10 request",
                        path.display()
                    ))
                })?;
                let from_csr = normalize_all(&csr.names, challenge)?;
                if !names.is_empty() && sorted(&names) != sorted(&from_csr) {
                    return Err(Error::Usage(format!(
                        "--domain names ({}) differ from the names in --csr ({}); give the same names or leave out --domain",
                        names.join(", "),
                        from_csr.join(", ")
                    )));
                }
                names = from_csr;
                // The key stays with the user, so there is nothing to serve with.
                serve = false;
                CertRequest::Csr(csr)
            }
        };
        if names.is_empty() {
            return Err(Error::Usage(
                "no name given: add --domain NAME (or --csr FILE)".into(),
            ));
        }
        if names.len() > MAX_NAMES {
            return Err(Error::Usage(format!(
                "{} names given, but one certificate holds at most {MAX_NAMES}; split them over several runs",
                names.len()
            )));
        }
        let tls_port_used = serve || challenge == ChallengeKind::TlsAlpn01;
        let tcp_ports = [
            ("--http-port", http_port, challenge == ChallengeKind::Http01),
            ("--https-port", https_port, tls_port_used),
            ("--shutdown-port", self.shutdown_port, serve),
        ];
        for (i, (flag_a, port_a, used_a)) in tcp_ports.iter().enumerate() {
            for (flag_b, port_b, used_b) in &tcp_ports[i + 1..] {
                if *used_a && *used_b && port_a == port_b && *port_a != 0 {
                    return Err(Error::Usage(format!(
                        "{flag_a} and {flag_b} are both {port_a}; give them different ports"
                    )));
                }
            }
        }
        let contacts = contacts(self.contact, &self.email)?;
        let delegation = self
            .dns_zone
            .as_deref()
            .map(|zone| delegation(zone, self.resolver.as_deref(), challenge))
            .transpose()?;
        let upstream = self
            .upstream
            .as_deref()
            .map(|raw| {
                let uri: hyper::Uri = raw.parse().map_err(|e| {
                    Error::Usage(format!(
                        "--upstream {raw:?} is not a URL ({e}); give the backend as http://HOST:PORT"
                    ))
                })?;
                crate::serve::proxy::check_upstream(&uri)
                    .map_err(|why| Error::Usage(format!("--upstream {raw:?}: {why}")))?;
                Ok(uri)
            })
            .transpose()?;
        let root = match self.root {
            Some(dir) if !dir.is_dir() => {
                return Err(Error::Usage(format!(
                    "--root {}: not a directory; give the directory of files to serve",
                    dir.display()
                )));
            }
            other => other,
        };
        if (upstream.is_some() || root.is_some()) && !serve {
            return Err(Error::Usage(
                "--upstream and --root need the HTTPS server: leave out --no-serve (and --csr)"
                    .into(),
            ));
        }
        let eab = match (self.eab_kid, self.eab_hmac_key) {
            (Some(kid), Some(key)) => Some(Eab {
                kid,
                hmac_key: decode_mac_key(&key).ok_or_else(|| {
                    Error::Usage(
                        "--eab-hmac-key is not base64url; paste the MAC key exactly as the CA gave it".into(),
                    )
                })?,
            }),
            _ => None,
        };
        Ok(Config {
            challenge,
            public_ca,
            dir,
            rate_limits,
            record: self.record,
            delegation,
            names,
            revoke: self.revoke,
            ca_bundle,
            out: self.out.clone(),
            serve,
            json: self.json,
            timings: self.timings,
            bind: self.bind,
            shutdown_bind: self.shutdown_bind,
            dns_port,
            http_port,
            https_port,
            shutdown_port: self.shutdown_port,
            timeout,
            account_key: AccountKeyConfig {
                path: self
                    .account_key
                    .unwrap_or_else(|| self.out.join("account.pem")),
                kind: self.account_key_type,
            },
            contacts,
            eab,
            request,
            preferred_chain: self.preferred_chain,
            force: self.force,
            profile: self.profile,
            deploy_hook: self.deploy_hook,
            upstream,
            root,
        })
    }
}

/// The account's contacts: the `--contact` URLs, then a `mailto:` URL for each `--email`.
/// Contacts are URLs (RFC 8555 §7.3): a bare address given to `--contact` is refused with the fix.
pub(super) fn contacts(urls: Vec<String>, emails: &[String]) -> Result<Vec<String>> {
    for url in &urls {
        if !url.contains(':') || url.starts_with(':') {
            return Err(Error::Usage(format!(
                "--contact {url:?} is not a URL; write it as mailto:{url} or use --email {url}"
            )));
        }
    }
    let mut contacts = urls;
    for email in emails {
        check_email(email).map_err(|why| Error::Usage(format!("--email {email:?} {why}")))?;
        contacts.push(format!("mailto:{email}"));
    }
    Ok(contacts)
}

/// An address `--email` can turn into a `mailto:` URL (RFC 6068) that means that one address:
/// one `@` with something on both sides, and no space, comma or other character that would make
/// the URL say something else. The CA checks the rest.
pub(super) fn check_email(email: &str) -> std::result::Result<(), String> {
    const HINT: &str = "give one plain address per --email, e.g. --email admin@example.com";
    if email.starts_with("mailto:") {
        return Err("is a URL: give the address alone (--email admin@example.com), or pass the URL to --contact".into());
    }
    if let Some(c) = email
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || ",;<>\"?#%/\\".contains(*c))
    {
        let what = match c {
            ',' | ';' => "a list separator".to_owned(),
            c if c.is_whitespace() => "a space".to_owned(),
            c if c.is_control() => "a control character".to_owned(),
            c => format!("{c:?}"),
        };
        return Err(format!(
            "is not an email address: it contains {what}; {HINT}"
        ));
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(())
        }
        _ => Err(format!(
            "is not an email address: it needs one @ between a name and a domain; {HINT}"
        )),
    }
}

pub(super) fn sorted(names: &[String]) -> Vec<String> {
    let mut v = names.to_vec();
    v.sort();
    v
}

/// base64url as RFC 8555 §7.3.4 has it, also accepting padding or the standard alphabet.
pub(super) fn decode_mac_key(key: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let key = key.trim();
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD]
        .iter()
        .find_map(|engine| engine.decode(key).ok())
        .filter(|k| !k.is_empty())
}

/// Normalises every name, dropping duplicates and keeping the first-seen order.
pub(super) fn normalize_all(raws: &[String], challenge: ChallengeKind) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for raw in raws {
        let name = normalize_identifier(raw, challenge)?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// A `--domain` value as an identifier: an IP address in canonical form (RFC 8738; not with
/// dns-01, §7), or a normalised DNS name.
pub(super) fn normalize_identifier(raw: &str, challenge: ChallengeKind) -> Result<String> {
    if let Some(ip) = ip_address(raw) {
        if challenge.uses_dns() {
            return Err(Error::Usage(format!(
                "--domain {raw}: an IP address cannot be proven through DNS (RFC 8738 §7); use http01 or tlsalpn01"
            )));
        }
        return Ok(ip.to_string());
    }
    let name = normalize_name(raw)
        .map_err(|why| Error::Usage(format!("--domain {raw:?} is not a valid DNS name: {why}")))?;
    if name.starts_with("*.") && !challenge.uses_dns() {
        return Err(Error::Usage(format!(
            "--domain {raw:?} is a wildcard, which only a DNS challenge can prove (RFC 8555 §7.1.3); use dns01"
        )));
    }
    Ok(name)
}

/// `--dns-zone ZONE [--resolver ADDR]`, checked.
pub(super) fn delegation(
    zone: &str,
    resolver: Option<&str>,
    challenge: ChallengeKind,
) -> Result<Delegation> {
    if !challenge.uses_dns() {
        return Err(Error::Usage(format!(
            "--dns-zone is for the DNS challenges, not {}; use dns01, dnsaccount01 or dnspersist01",
            challenge.acme_type()
        )));
    }
    let zone = normalize_name(zone).map_err(|why| {
        Error::Usage(format!(
            "--dns-zone {zone:?} is not a valid DNS name: {why}"
        ))
    })?;
    if zone.starts_with("*.") {
        return Err(Error::Usage(format!(
            "--dns-zone {zone:?} is a wildcard; give the zone's own name"
        )));
    }
    let resolver = resolver
        .map(|raw| {
            raw.parse::<SocketAddr>()
                .or_else(|_| raw.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| {
                    Error::Usage(format!(
                        "--resolver {raw:?} is not an address; give IP or IP:PORT (e.g. 127.0.0.1:53)"
                    ))
                })
        })
        .transpose()?;
    Ok(Delegation::new(&zone, resolver))
}

/// A `--persist-until` value: seconds since 1970, or an RFC 3339 date and time.
pub(super) fn parse_moment(raw: &str) -> Result<i64> {
    if let Ok(seconds) = raw.parse::<i64>() {
        return Ok(seconds);
    }
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| {
            Error::Usage(format!(
                "--persist-until {raw:?} is not a moment ({e}); give RFC 3339 (2027-06-30T00:00:00Z) or seconds since 1970"
            ))
        })
}

pub(super) fn load_ca_bundle(path: PathBuf) -> Result<CaBundle> {
    let bytes = std::fs::read(&path).map_err(|e| {
        Error::Usage(format!(
            "--ca-bundle {}: cannot read it ({e}); give a readable PEM file of CA certificates",
            path.display()
        ))
    })?;
    let roots = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Usage(format!(
                "--ca-bundle {}: not valid PEM ({e}); give a PEM file of CA certificates",
                path.display()
            ))
        })?;
    if roots.is_empty() {
        return Err(Error::Usage(format!(
            "--ca-bundle {}: holds no CERTIFICATE block; give a PEM file of CA certificates",
            path.display()
        )));
    }
    Ok(CaBundle { path, roots })
}
