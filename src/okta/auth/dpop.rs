//! DPoP (RFC 9449) proofs: each request carries a fresh JWT signed with the client's own key,
//! so a leaked access token is useless without that key.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::jws;
use super::key::PrivateKey;
use crate::okta::error::{OktaError, Result};

/// Whether the client binds its tokens with DPoP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DpopMode {
    /// Start without DPoP and switch when the token endpoint says the client requires it.
    #[default]
    Auto,
    Required,
    Disabled,
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    htm: &'a str,
    htu: &'a str,
    iat: i64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

/// One key pair per client, generated at start, and the nonces the servers handed out.
pub struct DpopSigner {
    key: PrivateKey,
    header: jws::Header,
    // Okta's authorization server and resource server issue nonces independently.
    token_nonce: Mutex<Option<String>>,
    resource_nonce: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceScope {
    TokenEndpoint,
    Resource,
}

impl std::fmt::Debug for DpopSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopSigner").field("public_jwk", self.key.public_jwk()).finish_non_exhaustive()
    }
}

impl DpopSigner {
    pub fn generate() -> Result<DpopSigner> {
        let key = PrivateKey::generate_p256()?;
        let header = jws::Header { typ: "dpop+jwt", kid: None, jwk: Some(key.public_jwk().clone()) };
        Ok(DpopSigner { key, header, token_nonce: Mutex::new(None), resource_nonce: Mutex::new(None) })
    }

    pub fn public_jwk(&self) -> &serde_json::Value {
        self.key.public_jwk()
    }

    fn slot(&self, scope: NonceScope) -> &Mutex<Option<String>> {
        match scope {
            NonceScope::TokenEndpoint => &self.token_nonce,
            NonceScope::Resource => &self.resource_nonce,
        }
    }

    /// Remembers the latest `DPoP-Nonce` a server sent.
    pub fn set_nonce(&self, scope: NonceScope, nonce: &str) {
        *self.slot(scope).lock().unwrap_or_else(|p| p.into_inner()) = Some(nonce.to_string());
    }

    pub fn nonce(&self, scope: NonceScope) -> Option<String> {
        self.slot(scope).lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A proof for one request. `access_token` is given for resource requests (it becomes `ath`).
    pub fn proof(
        &self,
        method: &http::Method,
        url: &Url,
        access_token: Option<&SecretString>,
        scope: NonceScope,
    ) -> Result<SecretString> {
        let claims = ProofClaims {
            htm: method.as_str(),
            htu: &htu(url),
            iat: jiff::Timestamp::now().as_second(),
            jti: random_id(),
            ath: access_token.map(|token| URL_SAFE_NO_PAD.encode(Sha256::digest(token.expose_secret()))),
            nonce: self.nonce(scope),
        };
        jws::sign(&self.key, &self.header, &claims)
            .map_err(|err| OktaError::Config(format!("cannot sign DPoP proof: {err}")))
    }
}

/// The `htu` claim: the request URL without query and fragment (RFC 9449 §4.2).
pub fn htu(url: &Url) -> String {
    let mut bare = url.clone();
    bare.set_query(None);
    bare.set_fragment(None);
    bare.to_string()
}

/// 128 random bits, base64url: unique enough for `jti`.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Header, Validation, jwk::Jwk};

    fn decode(jwt: &str, signer: &DpopSigner) -> (Header, serde_json::Value) {
        let header = jsonwebtoken::decode_header(jwt).unwrap();
        let jwk: Jwk = serde_json::from_value(signer.public_jwk().clone()).unwrap();
        let key = DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation).unwrap();
        (header, data.claims)
    }

    #[test]
    fn proof_has_the_rfc_9449_shape() {
        let signer = DpopSigner::generate().unwrap();
        let url = Url::parse("https://acme.okta.com/api/v1/apps/0oa1?limit=1#frag").unwrap();
        let token = SecretString::from("access-token-value");
        let proof = signer.proof(&http::Method::PUT, &url, Some(&token), NonceScope::Resource).unwrap();
        let (header, claims) = decode(proof.expose_secret(), &signer);
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        let jwk = serde_json::to_value(header.jwk.unwrap()).unwrap();
        assert!(jwk.get("d").is_none(), "the proof must carry only the public key");
        assert_eq!(claims["htm"], "PUT");
        assert_eq!(claims["htu"], "https://acme.okta.com/api/v1/apps/0oa1");
        let expected_ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"access-token-value"));
        assert_eq!(claims["ath"], expected_ath);
        assert!(claims.get("nonce").is_none());
        assert!(claims["jti"].as_str().unwrap().len() >= 16);
    }

    #[test]
    fn proof_carries_the_nonce_of_its_scope_and_fresh_jti() {
        let signer = DpopSigner::generate().unwrap();
        let url = Url::parse("https://acme.okta.com/oauth2/v1/token").unwrap();
        signer.set_nonce(NonceScope::TokenEndpoint, "n-1");
        let first = signer.proof(&http::Method::POST, &url, None, NonceScope::TokenEndpoint).unwrap();
        let second = signer.proof(&http::Method::POST, &url, None, NonceScope::Resource).unwrap();
        let (_, first) = decode(first.expose_secret(), &signer);
        let (_, second) = decode(second.expose_secret(), &signer);
        assert_eq!(first["nonce"], "n-1");
        assert!(first.get("ath").is_none());
        assert!(second.get("nonce").is_none());
        assert_ne!(first["jti"], second["jti"]);
    }
}
