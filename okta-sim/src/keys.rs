//! App signing key credentials: an RSA-2048 key, the self-signed X.509 certificate Okta wraps it
//! in, and the JSON Web Key the Apps API returns for it. The private key stays with the credential,
//! as it does in Okta, so that sign-ins (`sso.rs`) can be signed with it.

use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::Timestamp;
use rand::RngCore as _;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_RSA_SHA256, SerialNumber};
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// One key credential of an app, as Okta keeps it.
#[derive(Debug, Clone)]
pub struct KeyCredential {
    pub kid: String,
    /// DER of the self-signed certificate (`x5c[0]`, before base64).
    pub cert_der: Vec<u8>,
    /// RSA modulus and exponent, base64url without padding (JWK `n`, `e`).
    pub n: String,
    pub e: String,
    pub created: Timestamp,
    pub last_updated: Timestamp,
    /// The certificate's notAfter; Okta calls it `expiresAt`.
    pub expires_at: Timestamp,
    pub not_before: Timestamp,
    /// The private key; a clone of the credential (a cloned key in Okta) shares it.
    pub private_key: PrivateKey,
}

/// An RSA private key that signs SAML responses. Its `Debug` shows nothing of the key. It is the
/// certificate's own rcgen (ring) key pair: ring signs in about a millisecond even in a debug build,
/// where the `rsa` crate's unoptimised bignums would make every sign-in slow.
#[derive(Clone)]
pub struct PrivateKey(Arc<KeyPair>);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PrivateKey {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message` (XML-DSig `rsa-sha256`).
    pub fn sign_rsa_sha256(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        use rcgen::SigningKey as _;
        self.0.sign(message).context("signing with the app's key")
    }
}

impl KeyCredential {
    /// The JSON Web Key exactly as the Apps API returns it (the seed page's shape).
    pub fn to_jwk(&self) -> serde_json::Value {
        json!({
            "created": okta_time(self.created),
            "lastUpdated": okta_time(self.last_updated),
            "expiresAt": okta_time(self.expires_at),
            "x5c": [self.cert_base64()],
            "e": self.e,
            "n": self.n,
            "kid": self.kid,
            "kty": "RSA",
            "use": "sig",
            "x5t#S256": self.x5t_s256(),
        })
    }

    pub fn cert_base64(&self) -> String {
        STANDARD.encode(&self.cert_der)
    }

    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.cert_der))
    }
}

/// Okta writes timestamps with milliseconds and a `Z`: `2016-09-30T20:36:15.000Z`.
pub fn okta_time(t: Timestamp) -> String {
    let millis = t.as_millisecond();
    let t = Timestamp::from_millisecond(millis).unwrap_or(t);
    format!("{t:.3}")
}

/// Okta's kids are 43 characters of base64url: 32 random bytes.
pub fn new_kid() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Issues a credential from a fresh RSA key (taken from the pool) and a self-signed certificate
/// valid from `not_before` to `not_after`. Both are truncated to whole seconds, as X.509 stores them.
pub fn issue(
    org_name: &str,
    not_before: Timestamp,
    not_after: Timestamp,
    created: Timestamp,
) -> anyhow::Result<KeyCredential> {
    let pkcs8 = crate::keypool::take();
    issue_with_key(&pkcs8, org_name, not_before, not_after, created)
}

pub fn issue_with_key(
    pkcs8_der: &[u8],
    org_name: &str,
    not_before: Timestamp,
    not_after: Timestamp,
    created: Timestamp,
) -> anyhow::Result<KeyCredential> {
    let not_before = whole_seconds(not_before);
    let not_after = whole_seconds(not_after);
    anyhow::ensure!(not_before < not_after, "notBefore must be before notAfter");
    let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8_der.into(), &PKCS_RSA_SHA256)
        .context("the pooled RSA key is not a valid PKCS#8 RSA key")?;

    let mut params = CertificateParams::default();
    // The subject and issuer Okta uses for app signing certificates, in Okta's order (the default
    // parameters carry a CN of their own, which would otherwise come first).
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "US");
    params.distinguished_name.push(DnType::StateOrProvinceName, "California");
    params.distinguished_name.push(DnType::LocalityName, "San Francisco");
    params.distinguished_name.push(DnType::OrganizationName, "Okta");
    params.distinguished_name.push(DnType::OrganizationalUnitName, "SSOProvider");
    params.distinguished_name.push(DnType::CommonName, org_name);
    params.not_before = to_offset_date_time(not_before)?;
    params.not_after = to_offset_date_time(not_after)?;
    let mut serial = [0u8; 8];
    rand::rng().fill_bytes(&mut serial);
    serial[0] &= 0x7f; // keep the serial positive
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key_pair).context("signing the certificate")?;

    // ring hands out the public key as a PKCS#1 RSAPublicKey.
    let public = rsa::RsaPublicKey::from_pkcs1_der(key_pair.public_key_raw()).context("reading the RSA public key")?;
    Ok(KeyCredential {
        kid: new_kid(),
        cert_der: cert.der().to_vec(),
        n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        created,
        last_updated: created,
        expires_at: not_after,
        not_before,
        private_key: PrivateKey(Arc::new(key_pair)),
    })
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

fn to_offset_date_time(t: Timestamp) -> anyhow::Result<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).context("certificate date out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_with_milliseconds() {
        let t: Timestamp = "2016-09-30T20:36:15Z".parse().unwrap();
        assert_eq!(okta_time(t), "2016-09-30T20:36:15.000Z");
        let t: Timestamp = "2016-09-30T20:36:15.123456Z".parse().unwrap();
        assert_eq!(okta_time(t), "2016-09-30T20:36:15.123Z");
    }

    #[test]
    fn kids_are_unique_and_okta_shaped() {
        let (a, b) = (new_kid(), new_kid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn refuses_an_empty_validity() {
        let t: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(issue_with_key(&[], "o", t, t, t).is_err());
    }
}
