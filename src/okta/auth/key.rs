//! Private keys for signing client assertions and DPoP proofs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::okta::error::{OktaError, Result};

/// A parsed private key (RSA, or EC on P-256 / P-384) and its public JWK.
///
/// `Debug` shows only the algorithm and the public key; the private part is held by
/// `jsonwebtoken::EncodingKey`, which zeroizes it on drop.
#[derive(Clone)]
pub struct PrivateKey {
    encoding: EncodingKey,
    algorithm: Algorithm,
    public_jwk: Value,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("public_jwk", &self.public_jwk)
            .finish_non_exhaustive()
    }
}

fn invalid(what: &str) -> OktaError {
    // Never echo the input: it is key material.
    OktaError::Config(format!("private key: {what}"))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_field(jwk: &Value, name: &str) -> Result<Vec<u8>> {
    let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| invalid(&format!("JWK has no `{name}`")))?;
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| invalid(&format!("JWK `{name}` is not base64url")))
}

impl PrivateKey {
    /// Reads a PEM (PKCS#1 RSA, SEC1 EC, or unencrypted PKCS#8 of either) or a private JWK.
    pub fn parse(text: &str) -> Result<PrivateKey> {
        if text.trim_start().starts_with('{') { PrivateKey::from_jwk(text) } else { PrivateKey::from_pem(text) }
    }

    pub fn from_pem(pem: &str) -> Result<PrivateKey> {
        let pem = pem.trim();
        if pem.contains("ENCRYPTED") {
            return Err(invalid("encrypted PEM keys are not supported"));
        }
        if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|_| invalid("malformed PKCS#1 RSA key"))?;
            return PrivateKey::from_rsa(&key);
        }
        if pem.starts_with("-----BEGIN EC PRIVATE KEY-----") {
            if let Ok(key) = p256::SecretKey::from_sec1_pem(pem) {
                return PrivateKey::from_p256(&key);
            }
            if let Ok(key) = p384::SecretKey::from_sec1_pem(pem) {
                return PrivateKey::from_p384(&key);
            }
            return Err(invalid("malformed or unsupported EC key (P-256 and P-384 only)"));
        }
        if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
                return PrivateKey::from_rsa(&key);
            }
            if let Ok(key) = p256::SecretKey::from_pkcs8_pem(pem) {
                return PrivateKey::from_p256(&key);
            }
            if let Ok(key) = p384::SecretKey::from_pkcs8_pem(pem) {
                return PrivateKey::from_p384(&key);
            }
            return Err(invalid("PKCS#8 key is not RSA, P-256 or P-384"));
        }
        Err(invalid("not a PEM private key or a JWK"))
    }

    pub fn from_jwk(json: &str) -> Result<PrivateKey> {
        let jwk: Value = serde_json::from_str(json).map_err(|_| invalid("JWK is not JSON"))?;
        match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => {
                let number =
                    |name: &str| -> Result<rsa::BigUint> { Ok(rsa::BigUint::from_bytes_be(&b64_field(&jwk, name)?)) };
                let key = rsa::RsaPrivateKey::from_components(
                    number("n")?,
                    number("e")?,
                    number("d")?,
                    vec![number("p")?, number("q")?],
                )
                .map_err(|_| invalid("inconsistent RSA JWK"))?;
                key.validate().map_err(|_| invalid("inconsistent RSA JWK"))?;
                PrivateKey::from_rsa(&key)
            }
            Some("EC") => {
                let d = b64_field(&jwk, "d")?;
                match jwk.get("crv").and_then(Value::as_str) {
                    Some("P-256") => {
                        PrivateKey::from_p256(&p256::SecretKey::from_slice(&d).map_err(|_| invalid("bad P-256 `d`"))?)
                    }
                    Some("P-384") => {
                        PrivateKey::from_p384(&p384::SecretKey::from_slice(&d).map_err(|_| invalid("bad P-384 `d`"))?)
                    }
                    _ => Err(invalid("EC JWK curve must be P-256 or P-384")),
                }
            }
            _ => Err(invalid("JWK kty must be RSA or EC")),
        }
    }

    pub fn from_rsa(key: &rsa::RsaPrivateKey) -> Result<PrivateKey> {
        let der = key.to_pkcs1_der().map_err(|_| invalid("cannot encode RSA key"))?;
        Ok(PrivateKey {
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            algorithm: Algorithm::RS256,
            public_jwk: json!({
                "kty": "RSA",
                "n": b64(&key.n().to_bytes_be()),
                "e": b64(&key.e().to_bytes_be()),
            }),
        })
    }

    pub fn from_p256(key: &p256::SecretKey) -> Result<PrivateKey> {
        let der = key.to_pkcs8_der().map_err(|_| invalid("cannot encode P-256 key"))?;
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
        let (x, y) = (point.x(), point.y());
        Ok(PrivateKey {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            algorithm: Algorithm::ES256,
            public_jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64(x.map(|x| &x[..]).unwrap_or_default()),
                "y": b64(y.map(|y| &y[..]).unwrap_or_default()),
            }),
        })
    }

    pub fn from_p384(key: &p384::SecretKey) -> Result<PrivateKey> {
        let der = key.to_pkcs8_der().map_err(|_| invalid("cannot encode P-384 key"))?;
        let point = p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
        let (x, y) = (point.x(), point.y());
        Ok(PrivateKey {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            algorithm: Algorithm::ES384,
            public_jwk: json!({
                "kty": "EC",
                "crv": "P-384",
                "x": b64(x.map(|x| &x[..]).unwrap_or_default()),
                "y": b64(y.map(|y| &y[..]).unwrap_or_default()),
            }),
        })
    }

    /// A fresh P-256 key from the OS random source (the DPoP key of a client).
    pub fn generate_p256() -> Result<PrivateKey> {
        use rand::RngCore;
        // A random 32-byte string is a valid scalar except with negligible probability;
        // retrying covers that case without needing another RNG trait version.
        for _ in 0..8 {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
                return PrivateKey::from_p256(&key);
            }
        }
        Err(invalid("cannot generate a P-256 key"))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public half as a JWK (`kty` and `n`/`e` or `crv`/`x`/`y`), as registered in Okta.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_keys_round_trip_through_pem_and_jwk() {
        let generated = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pkcs8 = generated.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let sec1 = generated.to_sec1_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let from_pkcs8 = PrivateKey::parse(&pkcs8).unwrap();
        let from_sec1 = PrivateKey::parse(&sec1).unwrap();
        assert_eq!(from_pkcs8.algorithm(), Algorithm::ES256);
        assert_eq!(from_pkcs8.public_jwk(), from_sec1.public_jwk());

        let mut private_jwk = from_pkcs8.public_jwk().clone();
        private_jwk["d"] = b64(&[7u8; 32]).into();
        let from_jwk = PrivateKey::parse(&private_jwk.to_string()).unwrap();
        assert_eq!(from_jwk.public_jwk(), from_pkcs8.public_jwk());
    }

    #[test]
    fn p384_is_es384() {
        let key = p384::SecretKey::from_slice(&[9u8; 48]).unwrap();
        let pem = key.to_pkcs8_pem(p384::pkcs8::LineEnding::LF).unwrap();
        let parsed = PrivateKey::parse(&pem).unwrap();
        assert_eq!(parsed.algorithm(), Algorithm::ES384);
        assert_eq!(parsed.public_jwk()["crv"], "P-384");
    }

    #[test]
    fn errors_never_echo_the_key() {
        let secret = "-----BEGIN PRIVATE KEY-----\nU0VDUkVUU0VDUkVU\n-----END PRIVATE KEY-----";
        let err = PrivateKey::parse(secret).unwrap_err();
        assert!(!err.to_string().contains("U0VDUkVU"));
        let err = PrivateKey::parse(r#"{"kty":"EC","crv":"P-256","d":"c2VjcmV0"}"#).unwrap_err();
        assert!(!format!("{err:?}").contains("c2VjcmV0"));
        assert!(PrivateKey::parse("garbage").is_err());
        assert!(PrivateKey::parse("{not json").is_err());
    }

    #[test]
    fn debug_shows_only_public_parts() {
        let key = PrivateKey::from_p256(&p256::SecretKey::from_slice(&[5u8; 32]).unwrap()).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("ES256"));
        assert!(!debug.contains(&b64(&[5u8; 32])));
    }

    #[test]
    fn generated_keys_differ() {
        let a = PrivateKey::generate_p256().unwrap();
        let b = PrivateKey::generate_p256().unwrap();
        assert_ne!(a.public_jwk(), b.public_jwk());
    }
}
