//! DPoP proofs (RFC 9449): a JWT signed with the client's key, sent in the `DPoP` header.

use std::collections::HashSet;

use axum::http::Method;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::AuthBook;

/// How far a proof's `iat` may lie from real time. Proofs are signed with the client's clock,
/// which is real time, so they are not checked against the simulator's (movable) clock.
const MAX_AGE_SECONDS: i64 = 300;
const MAX_FUTURE_SECONDS: i64 = 60;

/// What the proof must say about the request it accompanies.
pub struct Expect<'a> {
    pub method: &'a Method,
    /// The request URL without query or fragment (`htu`).
    pub url: &'a str,
    /// For resource requests: the access token, whose hash must be the proof's `ath`.
    pub access_token: Option<&'a str>,
    /// For the token endpoint: the proof must carry a nonce this simulator handed out.
    pub nonce: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ProofError {
    /// The proof is missing, malformed, badly signed or does not match the request.
    Invalid(String),
    /// The proof is fine but lacks a (known) nonce: answer `use_dpop_nonce`.
    NeedsNonce,
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProofError::Invalid(why) => f.write_str(why),
            ProofError::NeedsNonce => f.write_str("Authorization server requires nonce in DPoP proof."),
        }
    }
}

fn invalid(why: &str) -> ProofError {
    ProofError::Invalid(why.to_string())
}

/// Verifies a proof and records its `jti`; returns the thumbprint (`jkt`) of the proof's key.
pub fn verify(book: &mut AuthBook, proof: &str, expect: &Expect<'_>) -> Result<String, ProofError> {
    if proof.is_empty() {
        return Err(invalid("The DPoP proof JWT header is missing."));
    }
    let raw_header = raw_header(proof).ok_or_else(|| invalid("The DPoP proof JWT is malformed."))?;
    if raw_header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("The DPoP proof JWT 'typ' header must be 'dpop+jwt'."));
    }
    let jwk_value = raw_header.get("jwk").ok_or_else(|| invalid("The DPoP proof JWT has no 'jwk' header."))?;
    if jwk_value.get("d").is_some() {
        return Err(invalid("The DPoP proof JWT 'jwk' header must not contain a private key."));
    }
    let jwk: Jwk = serde_json::from_value(jwk_value.clone())
        .map_err(|_| invalid("The DPoP proof JWT 'jwk' header is not a valid public key."))?;
    let header = jsonwebtoken::decode_header(proof).map_err(|_| invalid("The DPoP proof JWT is malformed."))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::ES256) {
        return Err(invalid("The DPoP proof JWT uses an unsupported algorithm."));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("The DPoP proof JWT 'jwk' header is not usable."))?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims = HashSet::new();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
        .map_err(|_| invalid("The DPoP proof JWT signature is invalid."))?
        .claims;

    let claim = |name: &str| claims.get(name).and_then(Value::as_str);
    if claim("htm") != Some(expect.method.as_str()) {
        return Err(invalid("The DPoP proof 'htm' does not match the request method."));
    }
    if claim("htu").map(strip_query) != Some(expect.url) {
        return Err(invalid("The DPoP proof 'htu' does not match the request URL."));
    }
    let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(|| invalid("The DPoP proof has no 'iat'."))?;
    let now = jiff::Timestamp::now().as_second();
    if iat > now + MAX_FUTURE_SECONDS || iat < now - MAX_AGE_SECONDS {
        return Err(invalid("The DPoP proof 'iat' is outside the accepted window."));
    }
    let jti = claim("jti").ok_or_else(|| invalid("The DPoP proof has no 'jti'."))?.to_string();
    if book.used_proof_ids.contains(&jti) {
        return Err(invalid("The DPoP proof 'jti' has already been used."));
    }
    if let Some(token) = expect.access_token
        && claim("ath") != Some(access_token_hash(token).as_str())
    {
        return Err(invalid("The DPoP proof 'ath' does not match the access token."));
    }
    if expect.nonce && !claim("nonce").is_some_and(|n| book.dpop_nonces.contains(n)) {
        return Err(ProofError::NeedsNonce);
    }
    let jkt = jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| invalid("Cannot compute the JWK thumbprint."))?;
    book.used_proof_ids.insert(jti);
    Ok(jkt)
}

/// `ath`: base64url SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

fn raw_header(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    let first = jwt.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(first.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_proof_is_refused_with_okta_wording() {
        let mut book = AuthBook::default();
        let expect = Expect { method: &Method::POST, url: "http://x/oauth2/v1/token", access_token: None, nonce: true };
        assert_eq!(
            verify(&mut book, "", &expect),
            Err(ProofError::Invalid("The DPoP proof JWT header is missing.".into()))
        );
    }

    #[test]
    fn ath_is_base64url_sha256() {
        // SHA-256("abc") = ba7816bf...
        assert_eq!(access_token_hash("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }

    #[test]
    fn htu_comparison_ignores_the_query() {
        assert_eq!(strip_query("http://h/p?x=1#f"), "http://h/p");
    }
}
