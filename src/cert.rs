//! The certificate side: the certificate key and CSR (rcgen), the issued chain (checked against the
//! key and described with x509-parser), and their PEM text (LF line endings). `files.rs` writes the
//! files into `--out` as one set.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use crate::error::{Error, Result};
use crate::files::{NewSet, SetMeta, write_set};

// Their home is files.rs; app.rs imports them from here.
pub use crate::files::{check_out_dir, write_atomic};

/// PEM text with LF line endings (the `pem` crate's default is CRLF), for every file written.
pub fn pem_lf(tag: &str, der: &[u8]) -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), lf)
}

/// The certificate key's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256
    Ec256,
    /// ECDSA P-384
    Ec384,
    /// RSA 2048
    Rsa2048,
    /// RSA 3072
    Rsa3072,
    /// RSA 4096
    Rsa4096,
}

impl KeyType {
    /// The name `--key-type` takes.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ec256 => "ec256",
            KeyType::Ec384 => "ec384",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
        }
    }
}

/// A fresh RSA private key as PKCS#8 DER. The `rsa` crate generates it because ring cannot;
/// ring does all the signing.
pub fn rsa_pkcs8(bits: usize) -> Result<Vec<u8>> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
        .map_err(|e| Error::Local(format!("cannot generate an RSA {bits} key: {e}")))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| Error::Local(format!("cannot encode the RSA key: {e}")))?;
    Ok(der.as_bytes().to_vec())
}

/// The certificate's private key.
pub struct CertKey {
    pair: KeyPair,
}

impl std::fmt::Debug for CertKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertKey({:?})", self.pair.algorithm())
    }
}

impl CertKey {
    /// Generates a fresh key. RSA takes a moment (seconds for 4096 bits): call it off the
    /// async threads.
    pub fn generate(kind: KeyType) -> Result<Self> {
        let failed =
            |e: rcgen::Error| Error::Local(format!("cannot generate the certificate key: {e}"));
        let pair = match kind {
            KeyType::Ec256 => {
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?
            }
            KeyType::Ec384 => {
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(failed)?
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let bits = match kind {
                    KeyType::Rsa2048 => 2048,
                    KeyType::Rsa3072 => 3072,
                    _ => 4096,
                };
                let der = rsa_pkcs8(bits)?;
                KeyPair::from_pkcs8_der_and_sign_algo(
                    &rustls_pki_types::PrivatePkcs8KeyDer::from(der),
                    &rcgen::PKCS_RSA_SHA256,
                )
                .map_err(failed)?
            }
        };
        Ok(CertKey { pair })
    }

    /// A CSR (RFC 2986) naming every identifier as a SAN, DER-encoded for finalize (RFC 8555 §7.4).
    /// Strings that parse as IP addresses become IP SANs (RFC 8738).
    pub fn csr_der(&self, names: &[String]) -> Result<Vec<u8>> {
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| Error::Local(format!("cannot build the CSR: {e}")))?;
        // rcgen's default subject is "rcgen self signed cert"; use the first DNS name as CN when
        // it fits the 64-character limit of RFC 5280, else an empty subject (the SANs carry the
        // names).
        let mut dn = DistinguishedName::new();
        let first_dns = names
            .iter()
            .find(|n| !crate::names::is_ip(n) && n.len() <= 64);
        if let Some(first) = first_dns {
            dn.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = dn;
        let csr = params
            .serialize_request(&self.pair)
            .map_err(|e| Error::Local(format!("cannot sign the CSR: {e}")))?;
        Ok(csr.der().to_vec())
    }

    /// The key as PKCS#8 PEM, for `key.pem`.
    pub fn pkcs8_pem(&self) -> String {
        pem_lf("PRIVATE KEY", &self.pair.serialize_der())
    }

    /// The key as PKCS#8 DER, for the HTTPS server.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.pair.serialize_der()
    }

    /// The public key as it appears in a certificate's subjectPublicKey bit string.
    pub fn public_key_raw(&self) -> &[u8] {
        self.pair.public_key_raw()
    }

    /// Loads a PKCS#8 PEM key (`key.pem`).
    pub fn from_pkcs8_pem(pem: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(pem)
            .map_err(|_| Error::Local("the key file is not PEM text".into()))?;
        let pair = KeyPair::from_pem(text)
            .map_err(|e| Error::Local(format!("the key file holds no usable PKCS#8 key: {e}")))?;
        Ok(CertKey { pair })
    }

    /// The same key, loaded again (the key pair itself cannot be cloned).
    pub fn try_clone(&self) -> Result<Self> {
        let pem = self.pkcs8_pem();
        Self::from_pkcs8_pem(pem.as_bytes())
    }

    /// The key's type, as `--key-type` names it (RSA sizes from the modulus length).
    pub fn kind(&self) -> Option<KeyType> {
        let alg = self.pair.algorithm();
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
            Some(KeyType::Ec256)
        } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            Some(KeyType::Ec384)
        } else if alg == &rcgen::PKCS_RSA_SHA256 {
            // The RSAPublicKey DER is the modulus plus about 14 bytes.
            Some(match self.pair.public_key_raw().len() {
                0..=300 => KeyType::Rsa2048,
                301..=430 => KeyType::Rsa3072,
                _ => KeyType::Rsa4096,
            })
        } else {
            None
        }
    }
}

/// A CSR given with `--csr`: finalized as it is; its names become the order's identifiers.
#[derive(Debug, Clone)]
pub struct UserCsr {
    pub der: Vec<u8>,
    /// SAN DNS names and IP addresses (or the CN when there are no SANs), as written.
    pub names: Vec<String>,
    /// The subjectPublicKey bits, to check the issued leaf against.
    pub public_key: Vec<u8>,
}

impl UserCsr {
    /// Reads a PEM or DER CSR and checks its signature.
    pub fn load(path: &Path) -> std::result::Result<Self, String> {
        use x509_parser::prelude::X509CertificationRequest;
        let bytes = fs::read(path).map_err(|e| format!("cannot read it ({e})"))?;
        let der = if bytes.starts_with(b"-----BEGIN") {
            let block = pem::parse(&bytes).map_err(|e| format!("not valid PEM ({e})"))?;
            if !block.tag().ends_with("CERTIFICATE REQUEST") {
                return Err(format!(
                    "holds {} block, not a CERTIFICATE REQUEST",
                    a_block(block.tag())
                ));
            }
            block.contents().to_vec()
        } else {
            bytes
        };
        let (_, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|e| format!("not a PKCS#10 certificate request ({e})"))?;
        csr.verify_signature()
            .map_err(|e| format!("its signature does not verify ({e})"))?;
        let info = &csr.certification_request_info;
        let mut names = Vec::new();
        for ext in csr.requested_extensions().into_iter().flatten() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                        GeneralName::IPAddress(bytes) => names.extend(ip_from_bytes(bytes)),
                        _ => {}
                    }
                }
            }
        }
        if names.is_empty() {
            names.extend(
                info.subject
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .map(str::to_owned),
            );
        }
        if names.is_empty() {
            return Err("names no DNS name or IP address (no SAN and no CN)".into());
        }
        Ok(UserCsr {
            public_key: info.subject_pki.subject_public_key.data.to_vec(),
            der,
            names,
        })
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Some(std::net::Ipv4Addr::from(v4).to_string())
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Some(std::net::Ipv6Addr::from(v6).to_string())
    } else {
        None
    }
}

/// What the issued leaf certificate says, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// Serial number, lowercase hex without leading zeros (as Pebble's management API wants it).
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Subject alternative names, in certificate order.
    pub names: Vec<String>,
    pub issuer: String,
    /// Issuer CN of the topmost certificate in the chain: the root it leads to, which
    /// `--preferred-chain` matches.
    pub chain_to: String,
}

/// The certificate chain the CA issued: leaf first, then intermediates.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certs: Vec<CertificateDer<'static>>,
    pub info: CertInfo,
}

impl Issued {
    /// Parses a `application/pem-certificate-chain` body (RFC 8555 §9.1) and checks that the leaf
    /// carries `public_key` (the subjectPublicKey bits of our key or of the user's CSR).
    pub fn from_pem(body: &[u8], public_key: &[u8]) -> std::result::Result<Self, String> {
        let blocks =
            pem::parse_many(body).map_err(|e| format!("the certificate is not PEM: {e}"))?;
        let certs: Vec<CertificateDer<'static>> = blocks
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| CertificateDer::from(b.contents().to_vec()))
            .collect();
        let leaf_der = certs
            .first()
            .ok_or("the answer holds no PEM CERTIFICATE block")?;
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| format!("the leaf certificate does not parse: {e}"))?;
        if leaf.public_key().subject_public_key.data.as_ref() != public_key {
            return Err("the leaf certificate does not carry our certificate key".into());
        }
        let mut info = describe(&leaf)?;
        if let Some(top) = certs.last() {
            let (_, top) = X509Certificate::from_der(top)
                .map_err(|e| format!("a chain certificate does not parse: {e}"))?;
            info.chain_to = issuer_cn(&top);
        }
        Ok(Issued { certs, info })
    }

    /// PEM of the given certificates, concatenated.
    fn pem_of(certs: &[CertificateDer<'_>]) -> String {
        certs
            .iter()
            .map(|c| pem_lf("CERTIFICATE", c.as_ref()))
            .collect()
    }

    /// The leaf's subjectPublicKey bits.
    pub fn public_key(&self) -> Vec<u8> {
        self.certs
            .first()
            .and_then(|der| X509Certificate::from_der(der).ok())
            .map(|(_, leaf)| leaf.public_key().subject_public_key.data.to_vec())
            .unwrap_or_default()
    }

    /// `cert.pem`: the leaf only.
    pub fn leaf_pem(&self) -> String {
        Self::pem_of(&self.certs[..1])
    }

    /// `chain.pem`: the intermediates.
    pub fn chain_pem(&self) -> String {
        Self::pem_of(&self.certs[1..])
    }

    /// `fullchain.pem`: leaf then intermediates.
    pub fn fullchain_pem(&self) -> String {
        Self::pem_of(&self.certs)
    }
}

fn describe(leaf: &X509Certificate<'_>) -> std::result::Result<CertInfo, String> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let when = |t: x509_parser::time::ASN1Time| {
        t.to_datetime()
            .format(rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => names.extend(ip_from_bytes(bytes)),
                _ => {}
            }
        }
    }
    let issuer = issuer_cn(leaf);
    Ok(CertInfo {
        serial: leaf.tbs_certificate.serial.to_str_radix(16),
        not_before: when(leaf.validity().not_before),
        not_after: when(leaf.validity().not_after),
        names,
        chain_to: issuer.clone(),
        issuer,
    })
}

/// The issuer's CN, or the whole issuer name when it has no CN.
fn issuer_cn(cert: &X509Certificate<'_>) -> String {
    cert.issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| cert.issuer().to_string())
}

/// The files written into `--out`.
#[derive(Debug, Clone, Serialize)]
pub struct Files {
    /// Absent when the CSR was the user's (`--csr`): we never had the key.
    pub key: Option<PathBuf>,
    pub cert: PathBuf,
    pub chain: PathBuf,
    pub fullchain: PathBuf,
}

impl Files {
    /// The four paths inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Files {
            key: Some(dir.join("key.pem")),
            cert: dir.join("cert.pem"),
            chain: dir.join("chain.pem"),
            fullchain: dir.join("fullchain.pem"),
        }
    }
}

/// Writes `issued` (and `key`, unless the CSR was the user's) into `dir` as one set with
/// [`write_set`], and returns the paths a user reads.
pub fn write_issued(
    dir: &Path,
    key: Option<&CertKey>,
    issued: &Issued,
    meta: SetMeta,
) -> Result<Files> {
    let key_pem = key.map(CertKey::pkcs8_pem);
    let set = NewSet {
        key_pem: key_pem.as_deref(),
        cert_pem: &issued.leaf_pem(),
        chain_pem: &issued.chain_pem(),
        fullchain_pem: &issued.fullchain_pem(),
        meta,
    };
    write_set(dir, &set)
}

/// "a CERTIFICATE block", "an EC PRIVATE KEY block": a PEM label with its article, read as
/// people say it (an initialism letter by letter: "an RSA", "a DSA"; a word as a word).
pub fn a_block(tag: &str) -> String {
    let first = tag.split_whitespace().next().unwrap_or_default();
    let spelled = first.len() <= 3 || first.chars().any(|c| c.is_ascii_digit());
    let an = match first.chars().next().map(|c| c.to_ascii_uppercase()) {
        // Letters whose names start with a vowel sound: A, E, F, H, I, L, M, N, O, R, S, X.
        Some(c) if spelled => "AEFHILMNORSX".contains(c),
        Some(c) => "AEIOU".contains(c),
        None => false,
    };
    format!("{} {tag} block", if an { "an" } else { "a" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use x509_parser::prelude::X509CertificationRequest;

    #[test]
    fn pem_labels_get_the_right_article() {
        for (tag, want) in [
            ("EC PRIVATE KEY", "an EC PRIVATE KEY block"),
            ("RSA PRIVATE KEY", "an RSA PRIVATE KEY block"),
            ("DSA PRIVATE KEY", "a DSA PRIVATE KEY block"),
            ("CERTIFICATE", "a CERTIFICATE block"),
            ("ENCRYPTED PRIVATE KEY", "an ENCRYPTED PRIVATE KEY block"),
            ("OPENSSH PRIVATE KEY", "an OPENSSH PRIVATE KEY block"),
            ("PUBLIC KEY", "a PUBLIC KEY block"),
            ("X509 CRL", "an X509 CRL block"),
        ] {
            assert_eq!(a_block(tag), want);
        }
    }

    #[test]
    fn csr_names_every_identifier_and_verifies() {
        let key = CertKey::generate(KeyType::Ec256).unwrap();
        let names = vec!["example.test".to_string(), "*.example.test".to_string()];
        let der = key.csr_der(&names).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        csr.verify_signature().unwrap();
        let subject = csr.certification_request_info.subject.to_string();
        assert_eq!(subject, "CN=example.test");
        let mut sans = Vec::new();
        for ext in csr.requested_extensions().unwrap() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    sans.push(n.to_string());
                }
            }
        }
        assert_eq!(sans, ["DNSName(example.test)", "DNSName(*.example.test)"]);
    }

    fn self_signed(key: &CertKey) -> String {
        let params = CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        params.self_signed(&key.pair).unwrap().pem()
    }

    #[test]
    fn chain_must_carry_our_key() {
        let key = CertKey::generate(KeyType::Ec256).unwrap();
        let other = CertKey::generate(KeyType::Ec256).unwrap();
        let pem = self_signed(&key);
        let issued = Issued::from_pem(pem.as_bytes(), key.public_key_raw()).unwrap();
        assert_eq!(issued.info.names, ["a.test"]);
        assert_eq!(issued.leaf_pem(), issued.fullchain_pem());
        assert_eq!(issued.chain_pem(), "");
        let err = Issued::from_pem(pem.as_bytes(), other.public_key_raw()).unwrap_err();
        assert!(err.contains("does not carry our certificate key"));
        assert!(Issued::from_pem(b"not pem at all", key.public_key_raw()).is_err());
        assert!(Issued::from_pem(b"", key.public_key_raw()).is_err());
    }

    #[test]
    fn every_key_type_makes_a_csr_that_verifies_and_a_key_rustls_loads() {
        for kind in [KeyType::Ec256, KeyType::Ec384, KeyType::Rsa2048] {
            let key = CertKey::generate(kind).unwrap();
            let der = key
                .csr_der(&["k.test".to_string(), "127.0.0.1".to_string()])
                .unwrap();
            let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
            csr.verify_signature().unwrap();
            let pkcs8 = rustls_pki_types::PrivateKeyDer::Pkcs8(key.pkcs8_der().into());
            rustls::crypto::ring::sign::any_supported_type(&pkcs8).unwrap();
        }
    }

    #[test]
    fn a_user_csr_gives_its_names_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = CertKey::generate(KeyType::Ec256).unwrap();
        let der = key
            .csr_der(&["u.test".to_string(), "::1".to_string()])
            .unwrap();
        let pem_path = dir.path().join("req.pem");
        fs::write(
            &pem_path,
            pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone())),
        )
        .unwrap();
        let der_path = dir.path().join("req.der");
        fs::write(&der_path, &der).unwrap();
        for path in [&pem_path, &der_path] {
            let csr = UserCsr::load(path).unwrap();
            assert_eq!(csr.names, ["u.test", "::1"]);
            assert_eq!(csr.public_key, key.public_key_raw());
        }
        let mut bad = der.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        fs::write(&der_path, &bad).unwrap();
        assert!(UserCsr::load(&der_path).is_err());
        fs::write(&der_path, b"junk").unwrap();
        assert!(UserCsr::load(&der_path).unwrap_err().contains("PKCS#10"));
    }

    #[test]
    fn pem_text_has_lf_line_endings_only() {
        let key = CertKey::generate(KeyType::Ec256).unwrap();
        let issued = Issued::from_pem(self_signed(&key).as_bytes(), key.public_key_raw()).unwrap();
        for text in [key.pkcs8_pem(), issued.leaf_pem(), issued.fullchain_pem()] {
            assert!(text.starts_with("-----BEGIN "), "{text}");
            assert!(text.ends_with("-----\n"), "{text:?}");
            assert!(!text.contains('\r'), "{text:?}");
        }
        let parsed = pem::parse(key.pkcs8_pem()).unwrap();
        assert_eq!(parsed.tag(), "PRIVATE KEY");
        assert_eq!(parsed.contents(), key.pkcs8_der());
    }

    #[test]
    fn files_write_is_one_set_with_a_private_key_0600() {
        let dir = tempfile::tempdir().unwrap();
        let key = CertKey::generate(KeyType::Ec256).unwrap();
        let issued = Issued::from_pem(self_signed(&key).as_bytes(), key.public_key_raw()).unwrap();
        let meta = SetMeta {
            serial: issued.info.serial.clone(),
            ..SetMeta::default()
        };
        let files = write_issued(dir.path(), Some(&key), &issued, meta).unwrap();
        let key_path = files.key.clone().unwrap();
        let mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_to_string(&key_path).unwrap(), key.pkcs8_pem());
        assert_eq!(
            fs::read_to_string(&files.fullchain).unwrap(),
            issued.fullchain_pem()
        );
        assert!(fs::symlink_metadata(&files.cert).unwrap().is_symlink());
        let current = crate::files::read_current(dir.path()).unwrap().unwrap();
        assert_eq!(current.meta.unwrap().serial, issued.info.serial);
    }
}
