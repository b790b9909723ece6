//! Private keys for signing client assertions and DPoP proofs.
//!
//! Signing is ring's (the TLS stack's crypto provider): RSASSA-PKCS1-v1_5 and ECDSA in constant
//! time. The `rsa` crate, which signed before, is open to the Marvin timing attack
//! (RUSTSEC-2023-0071) and is not linked into samlcred. p256 and p384 only parse EC keys and derive
//! their public points; they sign nothing.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::pkcs8::DecodePrivateKey;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, RsaKeyPair};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::okta::error::{OktaError, Result};

/// The JWS algorithm a key signs with (RFC 7518 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256: every RSA key, as Okta's `private_key_jwt` expects.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
}

impl Algorithm {
    /// The `alg` header value.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
        }
    }
}

enum Signer {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
}

/// A parsed private key (RSA, or EC on P-256 / P-384) and its public JWK.
///
/// `Debug` shows only the algorithm and the public key. The private part lives only in ring's key
/// pair; the decoded copies it was built from are zeroized when dropped.
#[derive(Clone)]
pub struct PrivateKey {
    signer: Arc<Signer>,
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

fn b64_field(jwk: &Value, name: &str) -> Result<Zeroizing<Vec<u8>>> {
    let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| invalid(&format!("JWK has no `{name}`")))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map(Zeroizing::new)
        .map_err(|_| invalid(&format!("JWK `{name}` is not base64url")))
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
        if !pem.starts_with("-----BEGIN ") {
            return Err(invalid("not a PEM private key or a JWK"));
        }
        let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes()).map_err(|_| invalid("malformed PEM"))?;
        let der = Zeroizing::new(der);
        match label {
            "RSA PRIVATE KEY" => {
                PrivateKey::from_rsa(RsaKeyPair::from_der(&der).map_err(|_| invalid("malformed PKCS#1 RSA key"))?)
            }
            "EC PRIVATE KEY" => {
                if let Ok(key) = p256::SecretKey::from_sec1_der(&der) {
                    return PrivateKey::from_p256(&key);
                }
                if let Ok(key) = p384::SecretKey::from_sec1_der(&der) {
                    return PrivateKey::from_p384(&key);
                }
                Err(invalid("malformed or unsupported EC key (P-256 and P-384 only)"))
            }
            "PRIVATE KEY" => {
                if let Ok(key) = RsaKeyPair::from_pkcs8(&der) {
                    return PrivateKey::from_rsa(key);
                }
                if let Ok(key) = p256::SecretKey::from_pkcs8_der(&der) {
                    return PrivateKey::from_p256(&key);
                }
                if let Ok(key) = p384::SecretKey::from_pkcs8_der(&der) {
                    return PrivateKey::from_p384(&key);
                }
                Err(invalid("PKCS#8 key is not RSA (2048 bits or more), P-256 or P-384"))
            }
            _ => Err(invalid("not a PEM private key or a JWK")),
        }
    }

    pub fn from_jwk(json: &str) -> Result<PrivateKey> {
        let jwk: Value = serde_json::from_str(json).map_err(|_| invalid("JWK is not JSON"))?;
        match jwk.get("kty").and_then(Value::as_str) {
            Some("RSA") => {
                // RFC 7518 §6.3.2: a private JWK with `p` carries all of the CRT parameters, and
                // Okta's Admin Console exports them; ring signs with them, never with `d` alone.
                if ["p", "q", "dp", "dq", "qi"].iter().any(|name| jwk.get(name).is_none()) {
                    return Err(invalid("RSA JWK needs p, q, dp, dq and qi (export the whole private JWK)"));
                }
                let field = |name: &str| b64_field(&jwk, name);
                let (n, e, d) = (field("n")?, field("e")?, field("d")?);
                let (p, q, dp, dq, qi) = (field("p")?, field("q")?, field("dp")?, field("dq")?, field("qi")?);
                let components = ring::rsa::KeyPairComponents {
                    public_key: ring::rsa::PublicKeyComponents { n: &n[..], e: &e[..] },
                    d: &d[..],
                    p: &p[..],
                    q: &q[..],
                    dP: &dp[..],
                    dQ: &dq[..],
                    qInv: &qi[..],
                };
                PrivateKey::from_rsa(
                    RsaKeyPair::from_components(&components).map_err(|_| invalid("inconsistent RSA JWK"))?,
                )
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

    fn from_rsa(key: RsaKeyPair) -> Result<PrivateKey> {
        let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public());
        let public_jwk = json!({ "kty": "RSA", "n": b64(&public.n), "e": b64(&public.e) });
        let key = PrivateKey { signer: Arc::new(Signer::Rsa(key)), algorithm: Algorithm::RS256, public_jwk };
        // ring checks the CRT parameters against `n` and `e` only when it signs (each signature
        // is verified before it is returned): sign once now, so a broken key fails at parse.
        key.sign(b"samlcred key check").map_err(|_| invalid("inconsistent RSA key"))?;
        Ok(key)
    }

    pub fn from_p256(key: &p256::SecretKey) -> Result<PrivateKey> {
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
        let d = Zeroizing::new(key.to_bytes().to_vec());
        PrivateKey::from_ec(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            Algorithm::ES256,
            "P-256",
            &d,
            point.as_bytes(),
        )
    }

    pub fn from_p384(key: &p384::SecretKey) -> Result<PrivateKey> {
        let point = p384::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&key.public_key(), false);
        let d = Zeroizing::new(key.to_bytes().to_vec());
        PrivateKey::from_ec(
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            Algorithm::ES384,
            "P-384",
            &d,
            point.as_bytes(),
        )
    }

    /// `point` is the uncompressed public point (`04 || x || y`).
    fn from_ec(
        ring_alg: &'static EcdsaSigningAlgorithm,
        algorithm: Algorithm,
        curve: &str,
        d: &[u8],
        point: &[u8],
    ) -> Result<PrivateKey> {
        let key = EcdsaKeyPair::from_private_key_and_public_key(ring_alg, d, point, &SystemRandom::new())
            .map_err(|_| invalid(&format!("bad {curve} key")))?;
        Ok(PrivateKey { public_jwk: ec_jwk(curve, point), signer: Arc::new(Signer::Ecdsa(key)), algorithm })
    }

    /// A fresh P-256 key from the OS random source (the DPoP key of a client).
    pub fn generate_p256() -> Result<PrivateKey> {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|_| invalid("cannot generate a P-256 key"))?;
        let key =
            EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).map_err(|_| invalid("cannot generate a P-256 key"))?;
        let public_jwk = ec_jwk("P-256", key.public_key().as_ref());
        Ok(PrivateKey { signer: Arc::new(Signer::Ecdsa(key)), algorithm: Algorithm::ES256, public_jwk })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public half as a JWK (`kty` and `n`/`e` or `crv`/`x`/`y`), as registered in Okta.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// The JWS signature of `message` with this key's algorithm (ECDSA as the fixed-size `r || s`
    /// that JWS uses, not DER).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        let failed = |_| OktaError::Config(format!("cannot sign with the {} key", self.algorithm.name()));
        match self.signer.as_ref() {
            Signer::Rsa(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut signature).map_err(failed)?;
                Ok(signature)
            }
            Signer::Ecdsa(key) => Ok(key.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
        }
    }
}

/// The public JWK of an EC key from its uncompressed point.
fn ec_jwk(curve: &str, point: &[u8]) -> Value {
    let (x, y) = point.get(1..).unwrap_or_default().split_at(point.len().saturating_sub(1) / 2);
    json!({ "kty": "EC", "crv": curve, "x": b64(x), "y": b64(y) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    /// The integration tests' throwaway RSA-2048 key.
    const TEST_RSA_PEM: &str = include_str!("../../../tests/okta_support/rsa-2048.pem");

    fn verifies(key: &PrivateKey, message: &[u8], signature: &[u8]) -> bool {
        let jwk = key.public_jwk();
        let field = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        match key.algorithm() {
            Algorithm::RS256 => signature::RsaPublicKeyComponents { n: field("n"), e: field("e") }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
            Algorithm::ES256 | Algorithm::ES384 => {
                let alg = if key.algorithm() == Algorithm::ES256 {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                let point = [vec![4u8], field("x"), field("y")].concat();
                signature::UnparsedPublicKey::new(alg, point).verify(message, signature).is_ok()
            }
        }
    }

    #[test]
    fn rsa_keys_sign_rs256_from_pkcs1_pkcs8_and_jwk() {
        let pkcs1 = PrivateKey::parse(TEST_RSA_PEM).unwrap();
        assert_eq!(pkcs1.algorithm(), Algorithm::RS256);
        let signature = pkcs1.sign(b"message").unwrap();
        assert_eq!(signature.len(), 256);
        assert!(verifies(&pkcs1, b"message", &signature));
        assert!(!verifies(&pkcs1, b"another message", &signature));
        // PKCS#1 v1.5 is deterministic: the same key in every form gives the same signature.
        let (_, pkcs1_der) = pem_rfc7468::decode_vec(TEST_RSA_PEM.as_bytes()).unwrap();
        let pkcs8_der = pkcs8_wrap_rsa(&pkcs1_der);
        let pkcs8 = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &pkcs8_der).unwrap();
        assert_eq!(PrivateKey::parse(&pkcs8).unwrap().sign(b"message").unwrap(), signature);
        assert_eq!(PrivateKey::parse(&pkcs8).unwrap().public_jwk(), pkcs1.public_jwk());
    }

    /// PKCS#8 PrivateKeyInfo around a PKCS#1 key (rsaEncryption, NULL parameters).
    fn pkcs8_wrap_rsa(pkcs1: &[u8]) -> Vec<u8> {
        use p256::pkcs8::der::{Encode, asn1::AnyRef};
        use p256::pkcs8::{AlgorithmIdentifierRef, ObjectIdentifier, PrivateKeyInfo};
        let algorithm = AlgorithmIdentifierRef {
            oid: ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1"),
            parameters: Some(AnyRef::NULL),
        };
        PrivateKeyInfo::new(algorithm, pkcs1).to_der().unwrap()
    }

    #[test]
    fn rsa_jwk_needs_every_crt_parameter() {
        let err =
            PrivateKey::parse(r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","p":"AQAB","q":"AQAB"}"#).unwrap_err();
        assert!(err.to_string().contains("dp, dq and qi"), "{err}");
        let err = PrivateKey::parse(
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","p":"AQAB","q":"AQAB","dp":"AQAB","dq":"AQAB","qi":"AQAB"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("inconsistent"), "{err}");
    }

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
        let signature = from_jwk.sign(b"message").unwrap();
        assert_eq!(signature.len(), 64, "r || s, not DER");
        assert!(verifies(&from_sec1, b"message", &signature));
    }

    #[test]
    fn p384_is_es384() {
        let key = p384::SecretKey::from_slice(&[9u8; 48]).unwrap();
        let pem = key.to_pkcs8_pem(p384::pkcs8::LineEnding::LF).unwrap();
        let parsed = PrivateKey::parse(&pem).unwrap();
        assert_eq!(parsed.algorithm(), Algorithm::ES384);
        assert_eq!(parsed.public_jwk()["crv"], "P-384");
        let signature = parsed.sign(b"message").unwrap();
        assert_eq!(signature.len(), 96);
        assert!(verifies(&parsed, b"message", &signature));
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
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nU0VDUkVU\n-----END ENCRYPTED PRIVATE KEY-----";
        assert!(PrivateKey::parse(encrypted).unwrap_err().to_string().contains("encrypted"));
    }

    #[test]
    fn debug_shows_only_public_parts() {
        let key = PrivateKey::from_p256(&p256::SecretKey::from_slice(&[5u8; 32]).unwrap()).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("ES256"));
        assert!(!debug.contains(&b64(&[5u8; 32])));
    }

    #[test]
    fn generated_keys_differ_and_sign() {
        let a = PrivateKey::generate_p256().unwrap();
        let b = PrivateKey::generate_p256().unwrap();
        assert_ne!(a.public_jwk(), b.public_jwk());
        assert!(verifies(&a, b"m", &a.sign(b"m").unwrap()));
        assert!(!verifies(&b, b"m", &a.sign(b"m").unwrap()));
    }
}
