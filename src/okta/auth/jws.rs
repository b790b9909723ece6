//! Compact JWS (RFC 7515 §7.1): `base64url(header) . base64url(claims) . base64url(signature)`,
//! the form of client assertions and DPoP proofs. Only the encoding is here; the signature is
//! ring's (`PrivateKey::sign`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use super::key::PrivateKey;
use crate::okta::error::{OktaError, Result};

/// The header fields samlcred sets besides `alg`, which always comes from the key.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// `JWT` for client assertions, `dpop+jwt` for DPoP proofs.
    pub typ: &'static str,
    pub kid: Option<String>,
    /// The public key itself (DPoP proofs).
    pub jwk: Option<Value>,
}

#[derive(Serialize)]
struct Wire<'a> {
    typ: &'a str,
    alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwk: Option<&'a Value>,
}

/// Signs `claims` with `key` into a compact JWS.
pub fn sign(key: &PrivateKey, header: &Header, claims: &impl Serialize) -> Result<SecretString> {
    let wire =
        Wire { typ: header.typ, alg: key.algorithm().name(), kid: header.kid.as_deref(), jwk: header.jwk.as_ref() };
    let signing_input = format!("{}.{}", part(&wire)?, part(claims)?);
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(SecretString::from(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))))
}

fn part(value: &impl Serialize) -> Result<String> {
    serde_json::to_vec(value)
        .map(|json| URL_SAFE_NO_PAD.encode(json))
        // serde_json's message names the failing type or position, never the content.
        .map_err(|err| OktaError::Config(format!("cannot encode a JWT: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
    use secrecy::ExposeSecret;
    use serde_json::json;

    const TEST_RSA_PEM: &str = include_str!("../../../tests/okta_support/rsa-2048.pem");

    /// An independent JWT library reads what we signed: the header, the claims, the signature.
    fn decode(jwt: &str, key: &PrivateKey) -> (jsonwebtoken::Header, Value) {
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).unwrap();
        (header, data.claims)
    }

    #[test]
    fn rs256_and_es256_tokens_are_standard_jwts() {
        let rsa = PrivateKey::parse(TEST_RSA_PEM).unwrap();
        let ec = PrivateKey::generate_p256().unwrap();
        let claims = json!({ "iss": "client", "jti": "j-1", "iat": 1_700_000_000 });
        for (key, alg) in [(&rsa, jsonwebtoken::Algorithm::RS256), (&ec, jsonwebtoken::Algorithm::ES256)] {
            let header = Header { typ: "JWT", kid: Some("k1".into()), jwk: None };
            let jwt = sign(key, &header, &claims).unwrap();
            let (decoded, decoded_claims) = decode(jwt.expose_secret(), key);
            assert_eq!(decoded.alg, alg);
            assert_eq!(decoded.typ.as_deref(), Some("JWT"));
            assert_eq!(decoded.kid.as_deref(), Some("k1"));
            assert!(decoded.jwk.is_none());
            assert_eq!(decoded_claims, claims);
            assert_eq!(jwt.expose_secret().matches('.').count(), 2);
            assert!(!jwt.expose_secret().contains('='), "base64url without padding");
        }
    }

    #[test]
    fn a_tampered_token_does_not_verify() {
        let key = PrivateKey::generate_p256().unwrap();
        let jwt = sign(&key, &Header { typ: "JWT", ..Header::default() }, &json!({ "sub": "a" })).unwrap();
        let (head, rest) = jwt.expose_secret().split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged = format!("{head}.{}.{signature}", URL_SAFE_NO_PAD.encode(br#"{"sub":"b"}"#));
        let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).unwrap();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        assert!(jsonwebtoken::decode::<Value>(&forged, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).is_err());
    }
}
