//! The command line: clap parses raw arguments, then [`Cli::validate`] turns them into a
//! [`Config`] whose every value is known to be usable. Nothing here touches the network.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::challenge::ChallengeKind;
use crate::error::{Error, Result};

/// Most names one certificate may carry (Let's Encrypt's limit, and ours).
pub const MAX_NAMES: usize = 100;

/// The challenge to prove control with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChallengeArg {
    /// http-01: the CA fetches http://NAME/.well-known/acme-challenge/TOKEN from --http-port
    Http01,
    /// dns-01: the CA looks up TXT _acme-challenge.NAME on our DNS server (--dns-port)
    Dns01,
}

/// Obtain a certificate from an ACME CA (RFC 8555) and serve it over HTTPS.
#[derive(Debug, Parser)]
#[command(name = "acme-client", version, about, max_term_width = 100)]
pub struct Cli {
    /// How to prove control of the names
    #[arg(value_enum)]
    pub challenge: ChallengeArg,

    /// ACME directory URL, e.g. https://127.0.0.1:14000/dir for a local Pebble
    #[arg(long, env = "ACME_DIR", value_name = "URL")]
    pub dir: String,

    /// Address our DNS server gives for A queries of the requested names
    #[arg(long, value_name = "IPv4")]
    pub record: Ipv4Addr,

    /// A name for the certificate (repeatable, 1 to 100; *.NAME only with dns01)
    #[arg(
        long = "domain",
        value_name = "NAME",
        required = true,
        allow_hyphen_values = true
    )]
    pub domains: Vec<String>,

    /// Revoke the certificate right after obtaining it (it is still served)
    #[arg(long)]
    pub revoke: bool,

    /// PEM roots trusted for the CA's HTTPS (default: the system's roots)
    #[arg(long, env = "ACME_CA_BUNDLE", value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,

    /// Directory for key.pem, cert.pem, chain.pem and fullchain.pem
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,

    /// Obtain, write the files, print the summary and exit (no HTTPS or shutdown server)
    #[arg(long)]
    pub no_serve: bool,

    /// Print the summary as JSON on stdout
    #[arg(long)]
    pub json: bool,

    /// Address every server listens on
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Address of the shutdown endpoint (default: --bind). Anyone who reaches it can stop the
    /// process: keep it on 127.0.0.1 unless remote shutdown is wanted
    #[arg(long, value_name = "ADDR")]
    pub shutdown_bind: Option<IpAddr>,

    /// DNS server port (UDP and TCP)
    #[arg(long, value_name = "PORT", default_value_t = 10053)]
    pub dns_port: u16,

    /// http-01 responder port
    #[arg(long, value_name = "PORT", default_value_t = 5002)]
    pub http_port: u16,

    /// HTTPS port serving the certificate
    #[arg(long, value_name = "PORT", default_value_t = 5001)]
    pub https_port: u16,

    /// Port of GET /shutdown
    #[arg(long, value_name = "PORT", default_value_t = 5003)]
    pub shutdown_port: u16,

    /// Overall deadline in seconds for obtaining the certificate
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,

    /// More logging on stderr (-v debug, -vv trace); RUST_LOG also works
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less logging on stderr (-q warnings, -qq errors only)
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

/// The CA's trust roots given with `--ca-bundle`.
#[derive(Debug, Clone)]
pub struct CaBundle {
    pub path: PathBuf,
    pub roots: Vec<CertificateDer<'static>>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub challenge: ChallengeKind,
    pub dir: String,
    pub record: Ipv4Addr,
    /// Normalised names (lowercase, no final dot), duplicates removed, in the order given.
    pub names: Vec<String>,
    pub revoke: bool,
    pub ca_bundle: Option<CaBundle>,
    pub out: PathBuf,
    pub serve: bool,
    pub json: bool,
    pub bind: IpAddr,
    pub shutdown_bind: IpAddr,
    pub dns_port: u16,
    pub http_port: u16,
    pub https_port: u16,
    pub shutdown_port: u16,
    pub timeout: Duration,
}

impl Cli {
    /// Checks every value; a failure is a usage error (exit 2) naming the flag and the fix.
    pub fn validate(self) -> Result<Config> {
        let challenge = match self.challenge {
            ChallengeArg::Http01 => ChallengeKind::Http01,
            ChallengeArg::Dns01 => ChallengeKind::Dns01,
        };
        let dir = validate_dir(&self.dir)?;
        let mut names: Vec<String> = Vec::new();
        for raw in &self.domains {
            let name = normalize_name(raw).map_err(|why| {
                Error::Usage(format!("--domain {raw:?} is not a valid DNS name: {why}"))
            })?;
            if name.starts_with("*.") && challenge != ChallengeKind::Dns01 {
                return Err(Error::Usage(format!(
                    "--domain {raw:?} is a wildcard, which only dns01 can prove (RFC 8555 §7.1.3); use dns01"
                )));
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
        if names.len() > MAX_NAMES {
            return Err(Error::Usage(format!(
                "{} names given, but one certificate holds at most {MAX_NAMES}; split them over several runs",
                names.len()
            )));
        }
        let tcp_ports = [
            (
                "--http-port",
                self.http_port,
                challenge == ChallengeKind::Http01,
            ),
            ("--https-port", self.https_port, !self.no_serve),
            ("--shutdown-port", self.shutdown_port, !self.no_serve),
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
        let ca_bundle = self.ca_bundle.map(load_ca_bundle).transpose()?;
        Ok(Config {
            challenge,
            dir,
            record: self.record,
            names,
            revoke: self.revoke,
            ca_bundle,
            out: self.out,
            serve: !self.no_serve,
            json: self.json,
            bind: self.bind,
            shutdown_bind: self.shutdown_bind.unwrap_or(self.bind),
            dns_port: self.dns_port,
            http_port: self.http_port,
            https_port: self.https_port,
            shutdown_port: self.shutdown_port,
            timeout: Duration::from_secs(self.timeout),
        })
    }

    /// The log filter for `-v`/`-q` when `RUST_LOG` is not set.
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

fn validate_dir(raw: &str) -> Result<String> {
    let url = reqwest::Url::parse(raw).map_err(|e| {
        Error::Usage(format!(
            "--dir {raw:?} is not a URL ({e}); give the CA's directory, e.g. https://127.0.0.1:14000/dir"
        ))
    })?;
    if url.scheme() != "https" || url.host().is_none() {
        return Err(Error::Usage(format!(
            "--dir {raw:?} must be an https:// URL with a host (RFC 8555 §6.1 requires HTTPS)"
        )));
    }
    Ok(url.to_string())
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
        return Err("it is an IP address; only DNS names are supported".into());
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
        Cli::try_parse_from(argv).unwrap().validate()
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
