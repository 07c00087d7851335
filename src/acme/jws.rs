//! The account key and JSON Web Signatures on ring: JWK (RFC 7517), thumbprint (RFC 7638),
//! flattened JWS (RFC 7515, as RFC 8555 §6.2 profiles it) and key authorizations (RFC 8555 §8.1).
//!
//! The transport (`client.rs`) decides the nonce, URL and `jwk`/`kid` header; this module only signs.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
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

/// The ACME account key. ES256 (ECDSA P-256 with SHA-256).
pub struct AccountKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    jwk: Jwk,
}

impl fmt::Debug for AccountKey {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountKey(ES256, thumbprint {})", self.jwk.thumbprint())
    }
}

impl AccountKey {
    /// Generates a fresh ES256 key.
    pub fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::Local("cannot generate the ES256 account key".into()))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// Loads an ES256 key from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| Error::Local(format!("the account key is not a P-256 PKCS#8 key: {e}")))?;
        // The public key is the uncompressed point 0x04 || X || Y (SEC 1 §2.3.3).
        let point = pair.public_key().as_ref();
        let jwk = Jwk::Ec {
            crv: "P-256",
            x: b64(&point[1..33]),
            y: b64(&point[33..65]),
        };
        Ok(AccountKey { pair, rng, jwk })
    }

    /// The JWS `alg` of this key (RFC 7518 §3.1).
    pub fn alg(&self) -> &'static str {
        "ES256"
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
        let sig = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| Error::Local("ES256 signing failed".into()))?;
        Ok(json!({
            "protected": protected,
            "payload": payload,
            "signature": b64(sig.as_ref()),
        }))
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
        let key = AccountKey::generate().unwrap();
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
        let key = AccountKey::generate().unwrap();
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
            panic!()
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

    #[test]
    fn post_as_get_has_an_empty_payload() {
        let key = AccountKey::generate().unwrap();
        let jws = key.sign(&json!({"alg": "ES256"}), None).unwrap();
        assert_eq!(jws["payload"], "");
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = AccountKey::generate().unwrap();
        let text = format!("{key:?}");
        assert!(text.starts_with("AccountKey(ES256, thumbprint "));
        assert!(!text.contains("pkcs8"));
    }
}
