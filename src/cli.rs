//! The command line as clap sees it: the commands, their flags and help. [`Cli::validate`]
//! (in `config`) turns what was parsed into a [`Config`] whose every value is known to be
//! usable; `presets` resolves `--dir` names, `values` spells the core's enums, `help` adds the
//! examples, completions and the manual page. Nothing here touches the network.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub use clap_complete::Shell;

use crate::acme::jws::AccountKeyType;
use crate::acme::policy::RateLimits;
use crate::cert::KeyType;
use crate::output::ColorChoice;

mod config;
mod help;
mod presets;
#[cfg(test)]
mod tests;
mod values;

pub use config::{
    AccountConfig, AccountKeyConfig, Action, CaBundle, CaConfig, Config, RevokeConfig,
};
pub use help::{completions, manpage};
pub use presets::{DIRECTORY_PRESETS, public_ca};

/// Most names one certificate may carry (Let's Encrypt's limit, and ours).
pub const MAX_NAMES: usize = 100;

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

    /// With --persist: the CA's issuer domain name to put in the record (its CAA identity, e.g.
    /// letsencrypt.org) [default: the first of the directory's caaIdentities]
    #[arg(long, value_name = "DOMAIN", requires = "persist")]
    pub persist_issuer: Option<String>,

    /// With --persist: the record stops counting after this moment (RFC 3339, e.g.
    /// 2027-06-30T00:00:00Z, or seconds since 1970)
    #[arg(long, value_name = "TIME", requires = "persist")]
    pub persist_until: Option<String>,

    /// Print the account as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// The level filter for `-v`/`-q` when `RUST_LOG` is not set.
    pub fn log_targets(&self) -> tracing_subscriber::filter::Targets {
        use tracing::level_filters::LevelFilter;
        use tracing_subscriber::filter::Targets;
        // Other crates' lines (a TLS verifier's, a DNS library's) only with -v: at the default
        // level our own error already says what failed, in words a user reads.
        let (ours, others) = match (self.verbose, self.quiet) {
            (0, 0) => (LevelFilter::INFO, LevelFilter::OFF),
            (1, _) => (LevelFilter::DEBUG, LevelFilter::INFO),
            (v, _) if v >= 2 => (LevelFilter::TRACE, LevelFilter::TRACE),
            (_, 1) => (LevelFilter::WARN, LevelFilter::OFF),
            _ => (LevelFilter::ERROR, LevelFilter::OFF),
        };
        Targets::new()
            .with_target("acme_client", ours)
            .with_default(others)
    }

    /// The same as an EnvFilter directive, for a malformed `RUST_LOG`.
    pub fn log_filter(&self) -> &'static str {
        match (self.verbose, self.quiet) {
            (0, 0) => "acme_client=info,off",
            (1, _) => "acme_client=debug,info",
            (v, _) if v >= 2 => "trace",
            (_, 1) => "acme_client=warn,off",
            _ => "acme_client=error,off",
        }
    }
}
