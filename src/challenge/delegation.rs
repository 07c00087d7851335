//! `--dns-zone`: a delegated challenge zone, as acme-dns made popular. The user points each
//! challenge record (`_acme-challenge.NAME`) at a name inside ZONE with a CNAME, once; the
//! built-in DNS server is authoritative for ZONE only and answers there. Before anything is
//! ordered, every CNAME is checked through a resolver (the system's, or `--resolver`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use tracing::info;

use crate::acme::records;
use crate::error::{Error, Result};

/// How long one CNAME lookup may take, all attempts included.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the challenge records are delegated to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// The zone, lowercase, no final dot.
    zone: String,
    /// The resolver that checks the CNAMEs; None: the system's (`/etc/resolv.conf`).
    resolver: Option<SocketAddr>,
}

/// One record the user creates: `record. CNAME target.`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cname {
    pub record: String,
    pub target: String,
}

impl std::fmt::Display for Cname {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}. CNAME {}.", self.record, self.target)
    }
}

impl Delegation {
    /// `zone` is a normalised DNS name.
    pub fn new(zone: &str, resolver: Option<SocketAddr>) -> Self {
        Delegation {
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            resolver,
        }
    }

    /// The zone the built-in DNS server is authoritative for.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Where a challenge record is answered inside the zone: a stable label of its own (10
    /// bytes of SHA-256 of the record name, base32), so the CNAME never has to change.
    pub fn target(&self, record: &str) -> String {
        format!(
            "{}.{}",
            records::short_hash(&record.to_ascii_lowercase()),
            self.zone
        )
    }

    /// The CNAME records for these challenge record names, deduplicated (a name and its
    /// wildcard share one).
    pub fn cnames(&self, record_names: &[String]) -> Vec<Cname> {
        let mut cnames: Vec<Cname> = Vec::new();
        for record in record_names {
            let cname = Cname {
                record: record.clone(),
                target: self.target(record),
            };
            if !cnames.contains(&cname) {
                cnames.push(cname);
            }
        }
        cnames
    }

    /// Logs the records to create, then checks each through the resolver; refuses with every
    /// missing or wrong one named.
    pub async fn check(&self, cnames: &[Cname]) -> Result<()> {
        for cname in cnames {
            info!(record = %cname, "--dns-zone needs this CNAME");
        }
        let resolver = self.resolver()?;
        let mut wrong = Vec::new();
        for cname in cnames {
            let found = lookup_cname(&resolver, &cname.record).await;
            match found {
                Ok(Some(target)) if same_name(&target, &cname.target) => {}
                Ok(Some(target)) => wrong.push(format!("{cname} (it points at {target})")),
                Ok(None) => wrong.push(format!("{cname} (missing)")),
                Err(detail) => {
                    return Err(Error::Setup(format!(
                        "cannot look up {} through {}: {detail}; pass --resolver ADDR with a resolver that answers",
                        cname.record,
                        self.resolver_name()
                    )));
                }
            }
        }
        if wrong.is_empty() {
            info!(records = cnames.len(), zone = %self.zone, "every --dns-zone CNAME is in place");
            return Ok(());
        }
        Err(Error::Setup(format!(
            "--dns-zone {}: create these records where the names' DNS is hosted, then run again: {}",
            self.zone,
            wrong.join("; ")
        )))
    }

    fn resolver_name(&self) -> String {
        match self.resolver {
            Some(addr) => format!("--resolver {addr}"),
            None => "the system resolver (/etc/resolv.conf)".into(),
        }
    }

    /// A resolver with no cache worth speaking of and no hosts file: every check asks afresh.
    fn resolver(&self) -> Result<TokioResolver> {
        let mut builder = match self.resolver {
            Some(addr) => {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut c| {
                        c.port = addr.port();
                        c
                    })
                    .collect();
                let server = NameServerConfig::new(addr.ip(), true, connections);
                Resolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => Resolver::builder_tokio().map_err(|e| {
                Error::Setup(format!(
                    "cannot read the system resolver configuration: {e}; pass --resolver ADDR"
                ))
            })?,
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = LOOKUP_TIMEOUT / 2;
        options.attempts = 2;
        options.cache_size = 0;
        options.use_hosts_file = ResolveHosts::Never;
        builder
            .build()
            .map_err(|e| Error::Setup(format!("cannot set up a DNS resolver: {e}")))
    }
}

/// The CNAME target of `name`, None when it has none; Err for a resolver that does not answer.
async fn lookup_cname(
    resolver: &TokioResolver,
    name: &str,
) -> std::result::Result<Option<String>, String> {
    let query = resolver.lookup(format!("{name}."), RecordType::CNAME);
    match tokio::time::timeout(LOOKUP_TIMEOUT, query).await {
        Err(_) => Err(format!("no answer within {} s", LOOKUP_TIMEOUT.as_secs())),
        Ok(Ok(lookup)) => Ok(lookup.answers().iter().find_map(|r| match &r.data {
            RData::CNAME(target) => Some(target.0.to_string()),
            _ => None,
        })),
        Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Ok(None),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_stable_labels_inside_the_zone() {
        let d = Delegation::new("Acme.Example.NET.", None);
        assert_eq!(d.zone(), "acme.example.net");
        let t = d.target("_acme-challenge.www.example.com");
        assert!(t.ends_with(".acme.example.net"), "{t}");
        assert_eq!(t.split('.').next().unwrap().len(), 16);
        assert_eq!(t, d.target("_acme-challenge.WWW.example.com"));
        assert_ne!(t, d.target("_acme-challenge.example.com"));
    }

    #[test]
    fn a_name_and_its_wildcard_need_one_cname() {
        let d = Delegation::new("z.test", None);
        let names = vec![
            "_acme-challenge.a.test".to_owned(),
            "_acme-challenge.a.test".to_owned(),
            "_acme-challenge.b.test".to_owned(),
        ];
        let cnames = d.cnames(&names);
        assert_eq!(cnames.len(), 2);
        assert_eq!(
            cnames[0].to_string(),
            format!(
                "_acme-challenge.a.test. CNAME {}.",
                d.target("_acme-challenge.a.test")
            )
        );
    }
}
