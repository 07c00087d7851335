//! The account key and JSON Web Signatures on ring: JWK (RFC 7517), thumbprint (RFC 7638),
//! flattened JWS (RFC 7515, as RFC 8555 §6.2 profiles it), key authorizations (RFC 8555 §8.1)
//! and External Account Binding (RFC 8555 §7.3.4).
//!
//! The transport (`client.rs`) decides the nonce, URL and `jwk`/`kid` header; this module only signs.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// base64url without padding (RFC 7515 §2).
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A public key as JWK members (RFC 7517, RFC 7518 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    /// An elliptic-curve key: curve name and base64url coordinates.
    Ec {
        crv: &'static str,
        x: String,
        y: String,
    },
    /// An RSA key: base64url modulus and exponent.
    Rsa { n: String, e: String },
}

impl Jwk {
    /// The JWK as a JSON value for the protected header.
    pub fn to_json(&self) -> Value {
        match self {
            Jwk::Ec { crv, x, y } => json!({"kty": "EC", "crv": crv, "x": x, "y": y}),
            Jwk::Rsa { n, e } => json!({"kty": "RSA", "n": n, "e": e}),
        }
    }

    /// The canonical form hashed by RFC 7638 §3: required members only, sorted, no whitespace.
    /// Built by hand so that no serde_json feature can change the member order.
    pub fn canonical(&self) -> String {
        match self {
            Jwk::Ec { crv, x, y } => format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#),
            Jwk::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url.
    pub fn thumbprint(&self) -> String {
        b64(ring::digest::digest(
            &ring::digest::SHA256,
            self.canonical().as_bytes(),
        ))
    }
}

/// The account key's algorithm (RFC 7518 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKeyType {
    /// ECDSA P-256 with SHA-256
    Es256,
    /// ECDSA P-384 with SHA-384
    Es384,
    /// RSA 2048 PKCS#1 v1.5 with SHA-256
    Rs256,
}

enum Signer {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// The ACME account key: ES256, ES384 or RS256, signing with ring.
pub struct AccountKey {
    signer: Signer,
    kind: AccountKeyType,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
    jwk: Jwk,
}

impl fmt::Debug for AccountKey {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AccountKey({}, thumbprint {})",
            self.alg(),
            self.jwk.thumbprint()
        )
    }
}

/// The unsigned big-endian integer without leading zero octets (RFC 7518 §6.3.1.1).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

impl AccountKey {
    /// Generates a fresh key of `kind`. RSA keys come from the `rsa` crate (ring cannot generate
    /// them); ring signs with every kind.
    pub fn generate(kind: AccountKeyType) -> Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = match kind {
            AccountKeyType::Es256 | AccountKeyType::Es384 => {
                let alg = if kind == AccountKeyType::Es256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                EcdsaKeyPair::generate_pkcs8(alg, &rng)
                    .map_err(|_| Error::Local("cannot generate the account key".into()))?
                    .as_ref()
                    .to_vec()
            }
            AccountKeyType::Rs256 => crate::cert::rsa_pkcs8(2048)?,
        };
        Self::from_pkcs8(&pkcs8)
    }

    /// Loads a PKCS#8 key, recognising P-256, P-384 and RSA keys.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let ec = |alg, crv, kind| {
            EcdsaKeyPair::from_pkcs8(alg, der, &rng).ok().map(|pair| {
                // The public key is the uncompressed point 0x04 || X || Y (SEC 1 §2.3.3).
                let point = pair.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                let jwk = Jwk::Ec {
                    crv,
                    x: b64(&point[1..1 + half]),
                    y: b64(&point[1 + half..]),
                };
                (Signer::Ec(pair), kind, jwk)
            })
        };
        let found = ec(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            "P-256",
            AccountKeyType::Es256,
        )
        .or_else(|| {
            ec(
                &ECDSA_P384_SHA384_FIXED_SIGNING,
                "P-384",
                AccountKeyType::Es384,
            )
        })
        .or_else(|| {
            RsaKeyPair::from_pkcs8(der).ok().map(|pair| {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                let jwk = Jwk::Rsa {
                    n: b64(unsigned(&public.n)),
                    e: b64(unsigned(&public.e)),
                };
                (Signer::Rsa(pair), AccountKeyType::Rs256, jwk)
            })
        });
        let (signer, kind, jwk) = found.ok_or_else(|| {
            Error::Local("the account key is not a PKCS#8 P-256, P-384 or RSA private key".into())
        })?;
        Ok(AccountKey {
            signer,
            kind,
            pkcs8: der.to_vec(),
            rng,
            jwk,
        })
    }

    /// The same key, loaded again.
    pub fn try_clone(&self) -> Result<Self> {
        Self::from_pkcs8(&self.pkcs8)
    }

    /// The key's type.
    pub fn kind(&self) -> AccountKeyType {
        self.kind
    }

    /// The key as PKCS#8 PEM, to keep it in `--account-key`.
    pub fn pkcs8_pem(&self) -> String {
        crate::cert::pem_lf("PRIVATE KEY", &self.pkcs8)
    }

    /// The JWS `alg` of this key (RFC 7518 §3.1).
    pub fn alg(&self) -> &'static str {
        match self.kind {
            AccountKeyType::Es256 => "ES256",
            AccountKeyType::Es384 => "ES384",
            AccountKeyType::Rs256 => "RS256",
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The key authorization for a challenge token (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.jwk.thumbprint())
    }

    /// Signs `protected` and `payload` into a flattened JWS JSON body (RFC 7515 §7.2.2).
    /// `payload` of `None` gives the empty payload of POST-as-GET (RFC 8555 §6.3).
    pub fn sign(&self, protected: &Value, payload: Option<&Value>) -> Result<Value> {
        let protected = b64(protected.to_string());
        let payload = payload.map(|p| b64(p.to_string())).unwrap_or_default();
        let signing_input = format!("{protected}.{payload}");
        let failed = |_| Error::Local(format!("{} signing failed", self.alg()));
        let signature = match &self.signer {
            Signer::Ec(pair) => pair
                .sign(&self.rng, signing_input.as_bytes())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &self.rng,
                    signing_input.as_bytes(),
                    &mut sig,
                )
                .map_err(failed)?;
                sig
            }
        };
        Ok(json!({
            "protected": protected,
            "payload": payload,
            "signature": b64(signature),
        }))
    }

    /// The `externalAccountBinding` object (RFC 8555 §7.3.4): this key's JWK signed with HS256
    /// under the CA-issued MAC key.
    pub fn external_account_binding(&self, kid: &str, hmac_key: &[u8], url: &str) -> Value {
        let protected = b64(json!({"alg": "HS256", "kid": kid, "url": url}).to_string());
        let payload = b64(self.jwk.to_json().to_string());
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, hmac_key);
        let tag = ring::hmac::sign(&key, format!("{protected}.{payload}").as_bytes());
        json!({"protected": protected, "payload": payload, "signature": b64(tag.as_ref())})
    }
}

/// The TXT value for a dns-01 challenge: base64url(SHA-256(key authorization)) (RFC 8555 §8.4).
pub fn dns01_value(key_authorization: &str) -> String {
    b64(ring::digest::digest(
        &ring::digest::SHA256,
        key_authorization.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn rfc7638_3_1_example_thumbprint() {
        let jwk = Jwk::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            e: "AQAB".into(),
        };
        assert!(
            jwk.canonical()
                .starts_with(r#"{"e":"AQAB","kty":"RSA","n":"0vx7"#)
        );
        assert_eq!(
            jwk.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn ec_canonical_members_are_sorted() {
        let jwk = Jwk::Ec {
            crv: "P-256",
            x: "X".into(),
            y: "Y".into(),
        };
        assert_eq!(
            jwk.canonical(),
            r#"{"crv":"P-256","kty":"EC","x":"X","y":"Y"}"#
        );
    }

    #[test]
    fn key_authorization_rfc8555_8_1() {
        let key = AccountKey::generate(AccountKeyType::Es256).unwrap();
        let ka = key.key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA");
        let (token, thumb) = ka.split_once('.').unwrap();
        assert_eq!(token, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA");
        assert_eq!(thumb, key.jwk().thumbprint());
        // SHA-256 digests are 32 bytes: 43 base64url characters.
        assert_eq!(thumb.len(), 43);
        assert_eq!(dns01_value(&ka).len(), 43);
    }

    #[test]
    fn es256_jws_verifies_with_the_jwk_public_key() {
        let key = AccountKey::generate(AccountKeyType::Es256).unwrap();
        let protected = json!({"alg": key.alg(), "nonce": "n", "url": "https://x/acct", "jwk": key.jwk().to_json()});
        let jws = key
            .sign(&protected, Some(&json!({"termsOfServiceAgreed": true})))
            .unwrap();
        let (p, pl, s) = (
            jws["protected"].as_str().unwrap(),
            jws["payload"].as_str().unwrap(),
            jws["signature"].as_str().unwrap(),
        );
        let sig = URL_SAFE_NO_PAD.decode(s).unwrap();
        // RFC 7518 §3.4: ES256 signatures are R || S, 64 bytes.
        assert_eq!(sig.len(), 64);
        let Jwk::Ec { x, y, .. } = key.jwk() else {
            panic!("an ES256 key has an EC JWK")
        };
        let mut point = vec![4u8];
        point.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
        point.extend(URL_SAFE_NO_PAD.decode(y).unwrap());
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(format!("{p}.{pl}").as_bytes(), &sig)
            .unwrap();
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["jwk"]["crv"], "P-256");
    }

    fn verify(key: &AccountKey, jws: &Value) {
        use ring::signature::{
            ECDSA_P384_SHA384_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
        };
        let (p, pl, s) = (
            jws["protected"].as_str().unwrap(),
            jws["payload"].as_str().unwrap(),
            jws["signature"].as_str().unwrap(),
        );
        let msg = format!("{p}.{pl}");
        let sig = URL_SAFE_NO_PAD.decode(s).unwrap();
        match key.jwk() {
            Jwk::Ec { crv, x, y } => {
                let mut point = vec![4u8];
                point.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
                point.extend(URL_SAFE_NO_PAD.decode(y).unwrap());
                let alg = if *crv == "P-256" {
                    &ECDSA_P256_SHA256_FIXED
                } else {
                    &ECDSA_P384_SHA384_FIXED
                };
                UnparsedPublicKey::new(alg, &point)
                    .verify(msg.as_bytes(), &sig)
                    .unwrap();
            }
            Jwk::Rsa { n, e } => {
                let public = RsaPublicKeyComponents {
                    n: URL_SAFE_NO_PAD.decode(n).unwrap(),
                    e: URL_SAFE_NO_PAD.decode(e).unwrap(),
                };
                public
                    .verify(&RSA_PKCS1_2048_8192_SHA256, msg.as_bytes(), &sig)
                    .unwrap();
            }
        }
    }

    #[test]
    fn every_account_key_type_signs_verifiably_and_round_trips_pkcs8() {
        for (kind, alg, sig_len) in [
            (AccountKeyType::Es256, "ES256", 64),
            (AccountKeyType::Es384, "ES384", 96),
            (AccountKeyType::Rs256, "RS256", 256),
        ] {
            let key = AccountKey::generate(kind).unwrap();
            assert_eq!(key.alg(), alg);
            let jws = key
                .sign(&json!({"alg": alg}), Some(&json!({"a": 1})))
                .unwrap();
            let sig = URL_SAFE_NO_PAD
                .decode(jws["signature"].as_str().unwrap())
                .unwrap();
            assert_eq!(sig.len(), sig_len, "{alg}");
            verify(&key, &jws);
            // Saved and loaded again, it is the same key of the same type.
            let pem = pem::parse(key.pkcs8_pem()).unwrap();
            let again = AccountKey::from_pkcs8(pem.contents()).unwrap();
            assert_eq!(again.kind(), kind);
            assert_eq!(again.jwk().thumbprint(), key.jwk().thumbprint());
        }
    }

    #[test]
    fn rsa_jwk_has_no_leading_zero_octets_rfc7518_6_3_1() {
        let key = AccountKey::generate(AccountKeyType::Rs256).unwrap();
        let Jwk::Rsa { n, e } = key.jwk() else {
            panic!()
        };
        assert_eq!(e, "AQAB");
        let n = URL_SAFE_NO_PAD.decode(n).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0);
    }

    #[test]
    fn external_account_binding_rfc8555_7_3_4() {
        let key = AccountKey::generate(AccountKeyType::Es256).unwrap();
        let mac = b"0123456789abcdef0123456789abcdef";
        let eab = key.external_account_binding("kid-1", mac, "https://ca/new-account");
        let protected: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(eab["protected"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            protected,
            json!({"alg": "HS256", "kid": "kid-1", "url": "https://ca/new-account"})
        );
        let payload: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(eab["payload"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload, key.jwk().to_json());
        let input = format!(
            "{}.{}",
            eab["protected"].as_str().unwrap(),
            eab["payload"].as_str().unwrap()
        );
        let tag = URL_SAFE_NO_PAD
            .decode(eab["signature"].as_str().unwrap())
            .unwrap();
        ring::hmac::verify(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac),
            input.as_bytes(),
            &tag,
        )
        .unwrap();
    }

    #[test]
    fn post_as_get_has_an_empty_payload() {
        let key = AccountKey::generate(AccountKeyType::Es256).unwrap();
        let jws = key.sign(&json!({"alg": "ES256"}), None).unwrap();
        assert_eq!(jws["payload"], "");
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = AccountKey::generate(AccountKeyType::Es256).unwrap();
        let text = format!("{key:?}");
        assert!(text.starts_with("AccountKey(ES256, thumbprint "));
        assert!(!text.contains(&b64(&key.pkcs8)));
        assert!(!text.contains("pkcs8"));
    }
}
