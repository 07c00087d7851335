//! tls-alpn-01 (RFC 8737): the self-signed validation certificate with the critical
//! acmeIdentifier extension, the SNI name it is served for (RFC 8738 §6 for IP identifiers), and
//! the rustls resolver that picks it from the [`ChallengeStore`].

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ChallengeStore;
use crate::acme::types::Identifier;
use crate::error::{Error, Result};

pub use crate::acme::solver::ACME_TLS_ALPN;

/// A validation certificate and its key, DER.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidationCert {
    pub cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for ValidationCert {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValidationCert({} bytes)", self.cert.len())
    }
}

/// The SNI name the CA sends for `identifier`: the DNS name, or for an IP address its reverse
/// name in in-addr.arpa / ip6.arpa (RFC 8738 §6).
pub fn server_name(identifier: &Identifier) -> String {
    match crate::names::ip_address(&identifier.value) {
        Some(IpAddr::V4(ip)) => {
            let o = ip.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        Some(IpAddr::V6(ip)) => {
            let mut labels: Vec<String> = Vec::with_capacity(34);
            for byte in ip.octets().iter().rev() {
                labels.push(format!("{:x}", byte & 0x0f));
                labels.push(format!("{:x}", byte >> 4));
            }
            labels.push("ip6.arpa".into());
            labels.join(".")
        }
        None => identifier.value.to_ascii_lowercase(),
    }
}

/// The validation certificate for `identifier` (RFC 8737 §3): self-signed, the identifier as its
/// only SAN (an IP SAN for an IP identifier), and the acmeIdentifier extension (critical) holding
/// SHA-256 of the key authorization.
pub fn validation_cert(identifier: &Identifier, key_authorization: &str) -> Result<ValidationCert> {
    let failed =
        |e: rcgen::Error| Error::Local(format!("cannot make the tls-alpn-01 certificate: {e}"));
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params = CertificateParams::new(vec![identifier.value.clone()]).map_err(failed)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .custom_extensions
        .push(CustomExtension::new_acme_identifier(digest.as_ref()));
    let key = KeyPair::generate().map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok(ValidationCert {
        cert: cert.der().to_vec(),
        key: key.serialize_der(),
    })
}

/// Picks the validation certificate by SNI from the store.
#[derive(Debug)]
pub struct Resolver {
    pub store: ChallengeStore,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = self.store.tls_alpn_cert(hello.server_name()?)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(found.key));
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).ok()?;
        Some(Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(found.cert)],
            signer,
        )))
    }
}

/// The rustls configuration for validation handshakes: ALPN `acme-tls/1` only.
pub fn server_config(store: ChallengeStore) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { store }));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

    #[test]
    fn reverse_names_for_ip_identifiers_rfc8738_6() {
        assert_eq!(
            server_name(&Identifier::dns("Example.TEST")),
            "example.test"
        );
        assert_eq!(
            server_name(&Identifier::for_name("192.0.2.5")),
            "5.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            server_name(&Identifier::for_name("2001:db8::1")),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn validation_cert_carries_the_critical_acme_identifier_rfc8737_3() {
        let cert = validation_cert(&Identifier::dns("a.test"), "token.thumb").unwrap();
        let (_, x509) = X509Certificate::from_der(&cert.cert).unwrap();
        let ext = x509
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(ext.critical);
        let digest = ring::digest::digest(&ring::digest::SHA256, b"token.thumb");
        // DER OCTET STRING of the 32-byte digest.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], digest.as_ref());
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::DNSName("a.test")]
        );

        let ip = validation_cert(&Identifier::for_name("127.0.0.1"), "t.k").unwrap();
        let (_, x509) = X509Certificate::from_der(&ip.cert).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::IPAddress(&[127, 0, 0, 1])]
        );
    }
}
