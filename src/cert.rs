//! The certificate side: the certificate key and CSR (rcgen), the issued chain (checked against the
//! key and described with x509-parser), and the four PEM files written atomically.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls_pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

use crate::error::{Error, Result, io_err};

/// The certificate's private key. ECDSA P-256.
pub struct CertKey {
    pair: KeyPair,
}

impl std::fmt::Debug for CertKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertKey(ECDSA P-256)")
    }
}

impl CertKey {
    /// Generates a fresh ECDSA P-256 key.
    pub fn generate() -> Result<Self> {
        let pair = KeyPair::generate()
            .map_err(|e| Error::Local(format!("cannot generate the certificate key: {e}")))?;
        Ok(CertKey { pair })
    }

    /// A CSR (RFC 2986) naming every identifier as a SAN, DER-encoded for finalize (RFC 8555 §7.4).
    pub fn csr_der(&self, names: &[String]) -> Result<Vec<u8>> {
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|e| Error::Local(format!("cannot build the CSR: {e}")))?;
        // rcgen's default subject is "rcgen self signed cert"; use the first name as CN when it
        // fits the 64-character limit of RFC 5280, else an empty subject (the SANs carry the names).
        let mut dn = DistinguishedName::new();
        if let Some(first) = names.first().filter(|n| n.len() <= 64) {
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
        self.pair.serialize_pem()
    }

    /// The key as PKCS#8 DER, for the HTTPS server.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.pair.serialize_der()
    }

    fn public_key_raw(&self) -> &[u8] {
        self.pair.public_key_raw()
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
}

/// The certificate chain the CA issued: leaf first, then intermediates.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certs: Vec<CertificateDer<'static>>,
    pub info: CertInfo,
}

impl Issued {
    /// Parses a `application/pem-certificate-chain` body (RFC 8555 §9.1) and checks that the leaf
    /// carries `key`'s public key.
    pub fn from_pem(body: &[u8], key: &CertKey) -> std::result::Result<Self, String> {
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
        if leaf.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err("the leaf certificate does not carry our certificate key".into());
        }
        let info = describe(&leaf)?;
        Ok(Issued { certs, info })
    }

    /// PEM of the given certificates, concatenated.
    fn pem_of(certs: &[CertificateDer<'_>]) -> String {
        certs
            .iter()
            .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.as_ref().to_vec())))
            .collect()
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
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        names.push(std::net::Ipv4Addr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        names.push(std::net::Ipv6Addr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let issuer = leaf
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| leaf.issuer().to_string());
    Ok(CertInfo {
        serial: leaf.tbs_certificate.serial.to_str_radix(16),
        not_before: when(leaf.validity().not_before),
        not_after: when(leaf.validity().not_after),
        names,
        issuer,
    })
}

/// The files written into `--out`.
#[derive(Debug, Clone, Serialize)]
pub struct Files {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub chain: PathBuf,
    pub fullchain: PathBuf,
}

impl Files {
    /// The four paths inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Files {
            key: dir.join("key.pem"),
            cert: dir.join("cert.pem"),
            chain: dir.join("chain.pem"),
            fullchain: dir.join("fullchain.pem"),
        }
    }

    /// Writes the key (0600) and the three certificate files, each atomically.
    pub fn write(&self, key: &CertKey, issued: &Issued) -> Result<()> {
        write_atomic(&self.key, key.pkcs8_pem().as_bytes(), 0o600)?;
        write_atomic(&self.cert, issued.leaf_pem().as_bytes(), 0o644)?;
        write_atomic(&self.chain, issued.chain_pem().as_bytes(), 0o644)?;
        write_atomic(&self.fullchain, issued.fullchain_pem().as_bytes(), 0o644)?;
        Ok(())
    }
}

/// Checks that `dir` exists (creating it) and that a file can be created in it, before any
/// network traffic.
pub fn check_out_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err("create the --out directory", dir))?;
    let probe = dir.join(format!(".acme-client-probe-{}", std::process::id()));
    fs::write(&probe, b"").map_err(io_err("write into the --out directory", dir))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Writes `bytes` to `path` so that no reader ever sees a partial file: a temporary file in the
/// same directory created with `mode` (so a key is never readable by others, not even briefly),
/// fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("write", path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use x509_parser::prelude::X509CertificationRequest;

    #[test]
    fn csr_names_every_identifier_and_verifies() {
        let key = CertKey::generate().unwrap();
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
        let key = CertKey::generate().unwrap();
        let other = CertKey::generate().unwrap();
        let pem = self_signed(&key);
        let issued = Issued::from_pem(pem.as_bytes(), &key).unwrap();
        assert_eq!(issued.info.names, ["a.test"]);
        assert_eq!(issued.leaf_pem(), issued.fullchain_pem());
        assert_eq!(issued.chain_pem(), "");
        let err = Issued::from_pem(pem.as_bytes(), &other).unwrap_err();
        assert!(err.contains("does not carry our certificate key"));
        assert!(Issued::from_pem(b"not pem at all", &key).is_err());
        assert!(Issued::from_pem(b"", &key).is_err());
    }

    #[test]
    fn files_are_written_atomically_with_a_private_key_0600() {
        let dir = tempfile::tempdir().unwrap();
        let key = CertKey::generate().unwrap();
        let issued = Issued::from_pem(self_signed(&key).as_bytes(), &key).unwrap();
        let files = Files::in_dir(dir.path());
        files.write(&key, &issued).unwrap();
        let mode = fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(
            fs::read_to_string(&files.key)
                .unwrap()
                .contains("BEGIN PRIVATE KEY")
        );
        assert!(
            fs::read_to_string(&files.fullchain)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }
}
