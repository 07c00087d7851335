//! The command line: clap parses raw arguments, then [`Cli::validate`] turns them into a
//! [`Config`] whose every value is known to be usable. Nothing here touches the network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub use clap_complete::Shell;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::acme::jws::AccountKeyType;
use crate::acme::machine::{CertRequest, Eab};
use crate::acme::policy::RateLimits;
use crate::cert::{KeyType, UserCsr};
use crate::challenge::ChallengeKind;
use crate::challenge::delegation::Delegation;
use crate::error::{Error, Result};
use crate::output::ColorChoice;

mod help;
pub use help::{completions, manpage};

/// Most names one certificate may carry (Let's Encrypt's limit, and ours).
pub const MAX_NAMES: usize = 100;

/// Well-known ACME directories, usable by name with `--dir`.
pub const DIRECTORY_PRESETS: &[(&str, &str)] = &[
    (
        "letsencrypt",
        "https://acme-v02.api.letsencrypt.org/directory",
    ),
    (
        "letsencrypt-staging",
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    ),
    ("zerossl", "https://acme.zerossl.com/v2/DV90"),
    ("buypass", "https://api.buypass.com/acme/directory"),
    (
        "buypass-test",
        "https://api.test4.buypass.no/acme/directory",
    ),
    ("google", "https://dv.acme-v02.api.pki.goog/directory"),
    (
        "google-test",
        "https://dv.acme-v02.test-api.pki.goog/directory",
    ),
    ("pebble", "https://localhost:14000/dir"),
];

const DIR_HELP: &str = "ACME directory URL, or one of: letsencrypt, letsencrypt-staging, zerossl, \
buypass, buypass-test, google, google-test, pebble (https://localhost:14000/dir)";

/// The version `--version` prints: the package's, and the git commit it was built from when
/// built in a git checkout (`0.1.0 (1a2b3c4)`, `-dirty` after the hash if sources differed; see
/// build.rs).
pub const VERSION: &str = env!("ACME_CLIENT_VERSION");

/// Obtain certificates from an ACME CA (RFC 8555), keep them fresh, and serve them over HTTPS.
#[derive(Debug, Parser)]
#[command(
    name = "acme-client",
    version = VERSION,
    about,
    after_help = help::examples(help::TOP),
    max_term_width = 100,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More detail on stderr: -v adds timestamps, targets and each step (debug), -vv traces;
    /// RUST_LOG also works
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Output")]
    pub verbose: u8,

    /// Less on stderr: -q warnings only (no progress), -qq errors only
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose", global = true, help_heading = "Output")]
    pub quiet: u8,

    /// Colour on stderr (and the live progress display on a terminal): auto is on for a
    /// terminal unless NO_COLOR is set or TERM=dumb
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        global = true,
        help_heading = "Output"
    )]
    pub color: ColorChoice,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Obtain a certificate proving control with http-01: the CA fetches
    /// http://NAME/.well-known/acme-challenge/TOKEN from --http-port
    #[command(after_help = help::examples(help::HTTP01))]
    Http01(IssueArgs),
    /// Obtain a certificate proving control with dns-01: the CA looks up TXT _acme-challenge.NAME
    /// on our DNS server (--dns-port)
    #[command(after_help = help::examples(help::DNS01))]
    Dns01(IssueArgs),
    /// Obtain a certificate proving control with tls-alpn-01: the CA connects to --https-port with
    /// ALPN acme-tls/1 (RFC 8737)
    #[command(after_help = help::examples(help::TLSALPN01))]
    Tlsalpn01(IssueArgs),
    /// Obtain a certificate proving control with dns-account-01: the CA looks up TXT
    /// _<account label>._acme-challenge.NAME on our DNS server, so several accounts can prove the
    /// same name at once (draft-ietf-acme-dns-account-label)
    #[command(after_help = help::examples(help::DNSACCOUNT01))]
    Dnsaccount01(IssueArgs),
    /// Obtain a certificate proving control with dns-persist-01: the CA looks up a lasting TXT
    /// _validation-persist.NAME naming the CA and this account, answered by our DNS server
    /// (draft-ietf-acme-dns-persist; `account --persist NAME` prints the record for DNS hosted
    /// elsewhere)
    #[command(after_help = help::examples(help::DNSPERSIST01))]
    Dnspersist01(IssueArgs),
    /// Revoke a certificate obtained earlier (RFC 8555 §7.6)
    #[command(after_help = help::examples(help::REVOKE))]
    Revoke(RevokeArgs),
    /// Show the ACME account, update its contacts, roll its key over or deactivate it
    #[command(after_help = help::examples(help::ACCOUNT))]
    Account(AccountArgs),
    /// Print a shell completion script to stdout
    #[command(after_help = help::examples(help::COMPLETIONS))]
    Completions {
        /// The shell to complete in
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print this program's manual page (roff) to stdout
    #[command(after_help = help::examples(help::MANPAGE))]
    Manpage,
}

/// How to reach the CA; shared by every command.
#[derive(Debug, Clone, Args)]
pub struct CaArgs {
    #[arg(long, env = "ACME_DIR", value_name = "URL|NAME", help = DIR_HELP, help_heading = "The CA")]
    pub dir: String,

    /// PEM roots trusted for the CA's HTTPS (default: the system's roots)
    #[arg(
        long,
        env = "ACME_CA_BUNDLE",
        value_name = "FILE",
        help_heading = "The CA"
    )]
    pub ca_bundle: Option<PathBuf>,

    /// Overall deadline in seconds for the whole exchange with the CA
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400), help_heading = "The CA")]
    pub timeout: u64,

    /// Request budget to keep to: auto = the published limits of a CA preset (Let's Encrypt's),
    /// none for other CAs
    #[arg(
        long,
        value_enum,
        value_name = "WHICH",
        default_value = "auto",
        help_heading = "The CA"
    )]
    pub rate_limits: RateLimits,
}

/// Obtain a certificate: the names, the challenge's servers, the account, the output.
#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    pub ca: CaArgs,

    /// A DNS name or IP address for the certificate (repeatable, 1 to 100; *.NAME only with
    /// dns01; IP addresses only with http01 and tlsalpn01)
    #[arg(
        short = 'd',
        long = "domain",
        value_name = "NAME",
        allow_hyphen_values = true,
        help_heading = "The certificate"
    )]
    pub domains: Vec<String>,

    /// Address our DNS server gives for A queries of the requested names (starts the DNS server
    /// with http01 and tlsalpn01; dns01 always runs it)
    #[arg(long, value_name = "IPv4", help_heading = "The certificate")]
    pub record: Option<Ipv4Addr>,

    /// Answer DNS challenges inside this delegated zone only: each _acme-challenge.NAME is a
    /// CNAME to a name in ZONE (the records are printed and checked before ordering); dns01,
    /// dnsaccount01 and dnspersist01
    #[arg(long, value_name = "ZONE", help_heading = "The certificate")]
    pub dns_zone: Option<String>,

    /// The resolver that checks --dns-zone's CNAME records, as IP or IP:PORT [default: the
    /// system's, from /etc/resolv.conf]
    #[arg(
        long,
        value_name = "ADDR",
        requires = "dns_zone",
        help_heading = "The certificate"
    )]
    pub resolver: Option<String>,

    /// Type of the certificate's key
    #[arg(
        long,
        value_enum,
        value_name = "TYPE",
        default_value = "ec256",
        help_heading = "The certificate"
    )]
    pub key_type: KeyType,

    /// Finalize with this CSR (PEM or DER) instead of a key made here; its names are used and no
    /// key file is written (so nothing is served over HTTPS)
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "key_type",
        help_heading = "The certificate"
    )]
    pub csr: Option<PathBuf>,

    /// Prefer the chain whose topmost certificate is issued by this CN (falls back to the default)
    #[arg(long, value_name = "ISSUER CN", help_heading = "The certificate")]
    pub preferred_chain: Option<String>,

    /// Revoke the certificate right after obtaining it (it is still served)
    #[arg(long, help_heading = "The certificate")]
    pub revoke: bool,

    /// Order a new certificate even if the one in --out is not due for renewal
    #[arg(long, help_heading = "The certificate")]
    pub force: bool,

    /// Ask the CA for this certificate profile (one of the directory's meta.profiles)
    #[arg(long, value_name = "NAME", help_heading = "The certificate")]
    pub profile: Option<String>,

    /// Run this shell command (sh -c) after new files are written (issued or renewed, not kept);
    /// its environment has ACME_OUT, ACME_NAMES, ACME_ACTION and ACME_SERIAL
    #[arg(long, value_name = "CMD", help_heading = "Output")]
    pub deploy_hook: Option<String>,

    /// PEM (PKCS#8) account key; created (mode 0600) if the file does not exist [default:
    /// account.pem in --out]
    #[arg(long, value_name = "FILE", help_heading = "The account")]
    pub account_key: Option<PathBuf>,

    /// Type of a newly created account key
    #[arg(
        long,
        value_enum,
        value_name = "TYPE",
        default_value = "es256",
        help_heading = "The account"
    )]
    pub account_key_type: AccountKeyType,

    /// A contact URL for the account, e.g. mailto:admin@example.com (repeatable)
    #[arg(long, value_name = "URL", help_heading = "The account")]
    pub contact: Vec<String>,

    /// An email address for the account: --email ADDR is --contact mailto:ADDR (repeatable)
    #[arg(long, value_name = "ADDR", help_heading = "The account")]
    pub email: Vec<String>,

    /// External Account Binding key identifier from the CA
    #[arg(
        long,
        value_name = "KID",
        requires = "eab_hmac_key",
        help_heading = "The account"
    )]
    pub eab_kid: Option<String>,

    /// External Account Binding MAC key from the CA (base64url)
    #[arg(
        long,
        value_name = "KEY",
        requires = "eab_kid",
        help_heading = "The account"
    )]
    pub eab_hmac_key: Option<String>,

    /// Directory for key.pem, cert.pem, chain.pem and fullchain.pem
    #[arg(long, value_name = "DIR", default_value = ".", help_heading = "Output")]
    pub out: PathBuf,

    /// Obtain, write the files, print the summary and exit (no HTTPS or shutdown server)
    #[arg(long, help_heading = "Output")]
    pub no_serve: bool,

    /// Print the summary as JSON on stdout
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    /// Print every request to the CA and every wait, with the time spent waiting on the CA, on
    /// stderr (also in --json as "timings")
    #[arg(long, help_heading = "Output")]
    pub timings: bool,

    /// Serve HTTPS as a reverse proxy to this HTTP backend, e.g. http://127.0.0.1:8080
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "root",
        help_heading = "Servers"
    )]
    pub upstream: Option<String>,

    /// Serve the static files in this directory over HTTPS
    #[arg(long, value_name = "DIR", help_heading = "Servers")]
    pub root: Option<PathBuf>,

    /// Address every server listens on
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0",
        help_heading = "Servers"
    )]
    pub bind: IpAddr,

    /// Address of the shutdown and status endpoints. Anyone who reaches them can stop the
    /// process: expose them only on purpose
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1",
        help_heading = "Servers"
    )]
    pub shutdown_bind: IpAddr,

    /// DNS server port (UDP and TCP) [default: 53 with a public CA preset, where the CA validates; else 10053, as Pebble]
    #[arg(long, value_name = "PORT", help_heading = "Servers")]
    pub dns_port: Option<u16>,

    /// http-01 responder port [default: 80 with a public CA preset, where the CA validates; else 5002, as Pebble]
    #[arg(long, value_name = "PORT", help_heading = "Servers")]
    pub http_port: Option<u16>,

    /// HTTPS port: the certificate once obtained, and tls-alpn-01 validation [default: 443 with a public CA preset, where the CA validates; else 5001, as Pebble]
    #[arg(long, value_name = "PORT", help_heading = "Servers")]
    pub https_port: Option<u16>,

    /// Port of GET /shutdown
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 5003,
        help_heading = "Servers"
    )]
    pub shutdown_port: u16,
}

/// Revoke a certificate obtained earlier.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub ca: CaArgs,

    /// The certificate to revoke (PEM; the first certificate in the file)
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,

    /// Sign with the certificate's own key instead of the account key (RFC 8555 §7.6)
    #[arg(long, value_name = "FILE", conflicts_with = "account_key")]
    pub key: Option<PathBuf>,

    /// The account key to sign with [default: account.pem beside --cert]
    #[arg(long, value_name = "FILE")]
    pub account_key: Option<PathBuf>,

    /// Why (RFC 5280 §5.3.1)
    #[arg(long, value_enum, value_name = "REASON", default_value = "unspecified")]
    pub reason: Reason,

    /// Print the outcome as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// Revocation reasons a subscriber may give (RFC 5280 §5.3.1; the codes go in `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "camelCase")]
pub enum Reason {
    /// 0
    Unspecified,
    /// 1: the certificate's key was exposed
    KeyCompromise,
    /// 3: the names or the subscriber changed
    AffiliationChanged,
    /// 4: a new certificate replaces it
    Superseded,
    /// 5: the names are no longer used
    CessationOfOperation,
}

impl Reason {
    /// The CRLReason code (RFC 5280 §5.3.1).
    pub fn code(self) -> u8 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
        }
    }
}

/// Show or manage the account.
#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(flatten)]
    pub ca: CaArgs,

    /// The account key [default: account.pem in --out]
    #[arg(long, value_name = "FILE")]
    pub account_key: Option<PathBuf>,

    /// Directory holding account.pem
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,

    /// Set the account's contacts to these URLs (repeatable), e.g. mailto:admin@example.com
    #[arg(long, value_name = "URL")]
    pub contact: Vec<String>,

    /// Set an email address as a contact: --email ADDR is --contact mailto:ADDR (repeatable)
    #[arg(long, value_name = "ADDR")]
    pub email: Vec<String>,

    /// Roll the account key over to the key in this file (created if missing); the new key
    /// replaces the account key file only once the CA has agreed (RFC 8555 §7.3.5)
    #[arg(long, value_name = "NEWKEY", conflicts_with = "deactivate")]
    pub rollover: Option<PathBuf>,

    /// Deactivate the account for good (RFC 8555 §7.3.6); asks first on a terminal
    #[arg(long)]
    pub deactivate: bool,

    /// Do not ask before --deactivate
    #[arg(long, requires = "deactivate")]
    pub yes: bool,

    /// Register the account if the key has none yet (the key is created, mode 0600, when the
    /// file is missing), e.g. to print its records before the first certificate
    #[arg(long, conflicts_with = "deactivate")]
    pub create: bool,

    /// Print the dns-persist-01 TXT record that lets this account prove NAME (`*.NAME`: the
    /// name and everything below it) for as long as the record stays; repeatable
    #[arg(long, value_name = "NAME")]
    pub persist: Vec<String>,

    /// With --persist: the record stops counting after this moment (RFC 3339, e.g.
    /// 2027-06-30T00:00:00Z, or seconds since 1970)
    #[arg(long, value_name = "TIME", requires = "persist")]
    pub persist_until: Option<String>,

    /// Print the account as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

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

impl Cli {
    /// The level filter for `-v`/`-q` when `RUST_LOG` is not set.
    pub fn log_targets(&self) -> tracing_subscriber::filter::Targets {
        use tracing::Level;
        use tracing_subscriber::filter::Targets;
        let (ours, others) = match (self.verbose, self.quiet) {
            (0, 0) => (Level::INFO, Level::WARN),
            (1, _) => (Level::DEBUG, Level::INFO),
            (v, _) if v >= 2 => (Level::TRACE, Level::TRACE),
            (_, 1) => (Level::WARN, Level::WARN),
            _ => (Level::ERROR, Level::ERROR),
        };
        Targets::new()
            .with_target("acme_client", ours)
            .with_default(others)
    }

    /// The same as an EnvFilter directive, for a malformed `RUST_LOG`.
    pub fn log_filter(&self) -> &'static str {
        match (self.verbose, self.quiet) {
            (0, 0) => "acme_client=info,warn",
            (1, _) => "acme_client=debug,info",
            (v, _) if v >= 2 => "trace",
            (_, 1) => "warn",
            _ => "error",
        }
    }
}

/// The account's contacts: the `--contact` URLs, then a `mailto:` URL for each `--email`.
/// Contacts are URLs (RFC 8555 §7.3): a bare address given to `--contact` is refused with the fix.
fn contacts(urls: Vec<String>, emails: &[String]) -> Result<Vec<String>> {
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
fn check_email(email: &str) -> std::result::Result<(), String> {
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

fn sorted(names: &[String]) -> Vec<String> {
    let mut v = names.to_vec();
    v.sort();
    v
}

/// base64url as RFC 8555 §7.3.4 has it, also accepting padding or the standard alphabet.
fn decode_mac_key(key: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    let key = key.trim();
    [URL_SAFE_NO_PAD, URL_SAFE, STANDARD]
        .iter()
        .find_map(|engine| engine.decode(key).ok())
        .filter(|k| !k.is_empty())
}

/// Normalises every name, dropping duplicates and keeping the first-seen order.
fn normalize_all(raws: &[String], challenge: ChallengeKind) -> Result<Vec<String>> {
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
fn normalize_identifier(raw: &str, challenge: ChallengeKind) -> Result<String> {
    if let Ok(ip) = raw.parse::<IpAddr>() {
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
fn delegation(zone: &str, resolver: Option<&str>, challenge: ChallengeKind) -> Result<Delegation> {
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
fn parse_moment(raw: &str) -> Result<i64> {
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

/// The public CA preset whose directory `dir` is, if any (Pebble is not public).
pub fn public_ca(dir: &str) -> Option<&'static str> {
    DIRECTORY_PRESETS
        .iter()
        .find(|(name, url)| *url == dir && *name != "pebble")
        .map(|(name, _)| *name)
}

/// `--dir` as a directory URL: a preset's, or an https URL. A value that is neither gets the
/// likeliest meaning in its message: the closest preset name, or the URL it lacks a scheme for.
fn validate_dir(raw: &str) -> Result<String> {
    if let Some((_, url)) = DIRECTORY_PRESETS.iter().find(|(name, _)| *name == raw) {
        return Ok((*url).to_owned());
    }
    // `localhost:14000/dir` parses as a URL with the scheme `localhost`: no `://`, no URL meant.
    let url = match reqwest::Url::parse(raw) {
        Ok(url) if raw.contains("://") => url,
        _ => return Err(Error::Usage(not_a_dir(raw))),
    };
    if url.scheme() != "https" || url.host().is_none() {
        return Err(Error::Usage(format!(
            "--dir {raw:?} must be an https:// URL with a host (RFC 8555 §6.1 requires HTTPS)"
        )));
    }
    Ok(url.to_string())
}

/// The message for a `--dir` that is neither a preset name nor a URL.
fn not_a_dir(raw: &str) -> String {
    let with_scheme = format!("https://{raw}");
    let host_and_path = raw.contains(['.', '/', ':'])
        && reqwest::Url::parse(&with_scheme).is_ok_and(|url| url.host().is_some());
    match closest_preset(raw) {
        // A slip of a letter or two is a preset; otherwise what looks like a host is a URL.
        Some((preset, edits)) if edits <= 2 || !host_and_path => {
            return format!(
                "--dir {raw:?} is not a preset name or a URL; did you mean `{preset}`?"
            );
        }
        _ if host_and_path => {
            return format!("--dir {raw:?} is not a URL; did you mean {with_scheme}?");
        }
        _ => {}
    }
    let presets: Vec<&str> = DIRECTORY_PRESETS.iter().map(|(name, _)| *name).collect();
    format!(
        "--dir {raw:?} is neither a URL nor a preset name; give the CA's directory URL \
         (https://...) or one of: {}",
        presets.join(", ")
    )
}

/// The preset name `raw` most likely misspells, if any is close enough: a few typed letters
/// off, or a similar spelling (Jaro-Winkler, as clap suggests flags), case aside. With the
/// number of edits (Damerau-Levenshtein) between them.
fn closest_preset(raw: &str) -> Option<(&'static str, usize)> {
    let raw = raw.to_ascii_lowercase();
    DIRECTORY_PRESETS
        .iter()
        .map(|(name, _)| {
            let edits = strsim::damerau_levenshtein(&raw, name);
            let likeness = strsim::jaro_winkler(&raw, name);
            (*name, edits, likeness)
        })
        .filter(|(_, edits, likeness)| *edits <= 2 || *likeness >= 0.85)
        .min_by(|a, b| a.1.cmp(&b.1).then(b.2.total_cmp(&a.2)))
        .map(|(name, edits, _)| (name, edits))
}

fn load_ca_bundle(path: PathBuf) -> Result<CaBundle> {
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
    if trimmed.parse::<IpAddr>().is_ok() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised() {
        assert_eq!(normalize_name("Example.TEST.").unwrap(), "example.test");
        assert_eq!(normalize_name("*.example.test").unwrap(), "*.example.test");
        assert_eq!(
            normalize_name("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        // Internationalised names become A-labels (UTS 46 maps case too).
        assert_eq!(
            normalize_name("Bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normalize_name("*.bücher.example.").unwrap(),
            "*.xn--bcher-kva.example"
        );
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for (name, why) in [
            ("", "empty"),
            ("localhost", "single label"),
            ("a..b", "empty label"),
            ("-a.test", "hyphen"),
            ("a_b.test", "'_'"),
            ("a.*.test", "whole first label"),
            ("**.test", "whole first label"),
            ("127.0.0.1", "IP address"),
            ("1.2.3.4.5", "all digits"),
            ("bü_cher.example", "internationalised"),
        ] {
            let err = normalize_name(name).unwrap_err();
            assert!(err.contains(why), "{name}: {err}");
        }
        assert!(normalize_name(&format!("{}.test", "a".repeat(64))).is_err());
        let long = vec!["a".repeat(60); 5].join(".");
        assert!(normalize_name(&long).unwrap_err().contains("253"));
    }

    fn cli(args: &[&str]) -> Result<Config> {
        let mut argv = vec!["acme-client"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().validate()? {
            Action::Issue(config) => Ok(*config),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wildcards_only_with_dns01() {
        let base = [
            "--dir",
            "https://127.0.0.1:14000/dir",
            "--record",
            "127.0.0.1",
        ];
        let mut http = vec!["http01"];
        http.extend(base);
        http.extend(["--domain", "*.example.test"]);
        assert!(matches!(cli(&http), Err(Error::Usage(m)) if m.contains("wildcard")));
        let mut dns = vec!["dns01"];
        dns.extend(base);
        dns.extend([
            "--domain",
            "*.example.test",
            "--domain",
            "EXAMPLE.test",
            "--domain",
            "example.test.",
        ]);
        let config = cli(&dns).unwrap();
        assert_eq!(config.names, ["*.example.test", "example.test"]);
    }

    #[test]
    fn directory_presets_map_to_the_real_urls() {
        for (name, url) in [
            (
                "letsencrypt",
                "https://acme-v02.api.letsencrypt.org/directory",
            ),
            (
                "letsencrypt-staging",
                "https://acme-staging-v02.api.letsencrypt.org/directory",
            ),
            ("zerossl", "https://acme.zerossl.com/v2/DV90"),
            ("buypass", "https://api.buypass.com/acme/directory"),
            (
                "buypass-test",
                "https://api.test4.buypass.no/acme/directory",
            ),
            ("google", "https://dv.acme-v02.api.pki.goog/directory"),
            (
                "google-test",
                "https://dv.acme-v02.test-api.pki.goog/directory",
            ),
            ("pebble", "https://localhost:14000/dir"),
        ] {
            assert_eq!(validate_dir(name).unwrap(), url, "{name}");
        }
        assert_eq!(DIRECTORY_PRESETS.len(), 8);
        // Every preset is named in --help.
        for (name, _) in DIRECTORY_PRESETS {
            assert!(DIR_HELP.contains(name), "{name} missing from --help");
        }
        assert!(validate_dir("letsencrypt2").is_err());
    }

    #[test]
    fn ip_identifiers_rfc8738() {
        let base = ["--dir", "pebble", "--record", "127.0.0.1"];
        let mut http = vec!["http01"];
        http.extend(base);
        http.extend([
            "--domain",
            "127.0.0.1",
            "--domain",
            "2001:DB8::0:1",
            "--domain",
            "a.test",
        ]);
        assert_eq!(
            cli(&http).unwrap().names,
            ["127.0.0.1", "2001:db8::1", "a.test"]
        );
        let mut dns = vec!["dns01"];
        dns.extend(base);
        dns.extend(["--domain", "127.0.0.1"]);
        assert!(matches!(cli(&dns), Err(Error::Usage(m)) if m.contains("RFC 8738")));
    }

    #[test]
    fn eab_and_contacts_are_checked() {
        let base = [
            "http01",
            "--dir",
            "pebble",
            "--record",
            "127.0.0.1",
            "--domain",
            "a.test",
        ];
        let with = |more: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(more);
            cli(&v)
        };
        let ok = with(&[
            "--eab-kid",
            "kid-1",
            "--eab-hmac-key",
            "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W",
        ])
        .unwrap();
        assert_eq!(ok.eab.unwrap().hmac_key.len(), 48);
        assert!(matches!(
            with(&["--eab-kid", "k", "--eab-hmac-key", "not base64!"]),
            Err(Error::Usage(_))
        ));
        assert!(
            matches!(with(&["--contact", "admin@example.com"]), Err(Error::Usage(m)) if m.contains("mailto:"))
        );
        assert_eq!(
            with(&["--contact", "mailto:a@b.test"]).unwrap().contacts,
            ["mailto:a@b.test"]
        );
    }

    #[test]
    fn short_d_is_domain_on_every_issuing_command() {
        let config = cli(&[
            "http01", "--dir", "pebble", "-d", "a.test", "--domain", "b.test", "-d", "c.test",
        ])
        .unwrap();
        assert_eq!(config.names, ["a.test", "b.test", "c.test"]);
        // Every command that takes names (those added later too) takes -d, and every one that
        // takes --contact takes --email.
        let cmd = <Cli as clap::CommandFactory>::command();
        let mut issuing = 0;
        for sub in cmd.get_subcommands() {
            let arg = |id: &str| sub.get_arguments().find(|a| a.get_id() == id);
            if let Some(domains) = arg("domains") {
                issuing += 1;
                assert_eq!(domains.get_short(), Some('d'), "{}", sub.get_name());
                assert_eq!(domains.get_long(), Some("domain"), "{}", sub.get_name());
            }
            if arg("contact").is_some() {
                assert!(arg("email").is_some(), "{} lacks --email", sub.get_name());
            }
        }
        assert!(issuing >= 3);
    }

    #[test]
    fn email_is_a_mailto_contact() {
        let config = cli(&[
            "http01",
            "--dir",
            "pebble",
            "-d",
            "a.test",
            "--contact",
            "mailto:a@example.test",
            "--email",
            "b@example.test",
            "--email",
            "c.d+tag@sub.example.test",
        ])
        .unwrap();
        assert_eq!(
            config.contacts,
            [
                "mailto:a@example.test",
                "mailto:b@example.test",
                "mailto:c.d+tag@sub.example.test"
            ]
        );
        let account = |more: &[&str]| {
            let mut argv = vec!["acme-client", "account", "--dir", "pebble"];
            argv.extend_from_slice(more);
            Cli::try_parse_from(argv).unwrap().validate()
        };
        match account(&["--email", "ops@example.test"]).unwrap() {
            Action::Account(config) => assert_eq!(config.contacts, ["mailto:ops@example.test"]),
            other => panic!("{other:?}"),
        }
        for (bad, why) in [
            ("admin", "one @"),
            ("admin@", "one @"),
            ("@example.test", "one @"),
            ("a@b@example.test", "one @"),
            ("admin@.example.test", "one @"),
            ("admin @example.test", "a space"),
            ("a@example.test,b@example.test", "a list separator"),
            ("a@example.test;b@example.test", "a list separator"),
            ("a@example.test?subject=x", "'?'"),
            ("mailto:a@example.test", "is a URL"),
            ("", "one @"),
        ] {
            for err in [
                cli(&["http01", "--dir", "pebble", "-d", "a.test", "--email", bad]).map(|_| ()),
                account(&["--email", bad]).map(|_| ()),
            ] {
                match err {
                    Err(Error::Usage(m)) => {
                        assert!(m.starts_with(&format!("--email {bad:?} ")), "{m}");
                        assert!(m.contains(why), "{bad:?}: {m}");
                        assert!(!m.contains('\n'), "{m}");
                    }
                    other => panic!("{bad:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn misspelled_presets_get_the_closest_one() {
        for (typo, preset) in [
            ("letsencrypt-stagign", "letsencrypt-staging"),
            ("letsencrypt_staging", "letsencrypt-staging"),
            ("lets-encrypt-staging", "letsencrypt-staging"),
            ("letsencrypt-stage", "letsencrypt-staging"),
            ("LetsEncrypt", "letsencrypt"),
            ("letsencrypt2", "letsencrypt"),
            ("letsencript", "letsencrypt"),
            ("pebbel", "pebble"),
            ("zerosl", "zerossl"),
            ("googel-test", "google-test"),
            ("buypass-tst", "buypass-test"),
        ] {
            let err = validate_dir(typo).unwrap_err().to_string();
            assert!(
                err.contains(&format!("did you mean `{preset}`?")),
                "{typo}: {err}"
            );
        }
        // What looks like a host gets the scheme it lacks.
        for (raw, url) in [
            ("localhost:14000/dir", "https://localhost:14000/dir"),
            (
                "acme.example.test/directory",
                "https://acme.example.test/directory",
            ),
        ] {
            let err = validate_dir(raw).unwrap_err().to_string();
            assert!(
                err.contains(&format!("did you mean {url}?")),
                "{raw}: {err}"
            );
        }
        // Anything else is told what is accepted.
        for raw in ["nonsense", "staging", "", "-"] {
            let err = validate_dir(raw).unwrap_err().to_string();
            assert!(
                err.contains("neither a URL nor a preset name"),
                "{raw}: {err}"
            );
            for (name, _) in DIRECTORY_PRESETS {
                assert!(err.contains(name), "{raw}: {err}");
            }
            assert!(!err.contains("relative URL"), "{err}");
        }
    }

    #[test]
    fn dir_must_be_https() {
        for dir in ["http://127.0.0.1:14000/dir", "not a url", "ftp://x/dir"] {
            let err = cli(&[
                "http01",
                "--dir",
                dir,
                "--record",
                "127.0.0.1",
                "--domain",
                "a.test",
            ]);
            assert!(matches!(err, Err(Error::Usage(_))), "{dir}");
        }
    }

    #[test]
    fn clashing_ports_are_refused() {
        let err = cli(&[
            "http01",
            "--dir",
            "https://ca/dir",
            "--record",
            "127.0.0.1",
            "--domain",
            "a.test",
            "--http-port",
            "5001",
        ]);
        assert!(matches!(err, Err(Error::Usage(m)) if m.contains("--http-port and --https-port")));
    }
}
