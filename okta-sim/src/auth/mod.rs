//! Who may call the API: SSWS API tokens, and OAuth 2.0 access tokens (Bearer or DPoP-bound)
//! issued by the token endpoint to service apps.

pub mod dpop;
pub mod oauth;
pub mod ssws;

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, header};
use jiff::Timestamp;

use crate::config::OAuthClient;
use crate::errors::OktaError;

pub const SCOPE_READ: &str = "okta.apps.read";
pub const SCOPE_MANAGE: &str = "okta.apps.manage";

/// An access token the token endpoint issued.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub client_id: String,
    pub scopes: Vec<String>,
    /// On the simulator's clock, so tests can expire tokens with `advance_clock`.
    pub expires_at: Timestamp,
    /// JWK SHA-256 thumbprint of the DPoP key the token is bound to (`cnf.jkt`).
    pub dpop_jkt: Option<String>,
}

/// Everything the simulator knows about credentials.
#[derive(Debug, Default)]
pub struct AuthBook {
    pub api_tokens: HashSet<String>,
    pub clients: HashMap<String, OAuthClient>,
    pub access_tokens: HashMap<String, AccessToken>,
    /// `jti`s of client assertions already exchanged for a token.
    pub used_assertion_ids: HashSet<String>,
    /// `jti`s of DPoP proofs already seen.
    pub used_proof_ids: HashSet<String>,
    /// Nonces handed out with `use_dpop_nonce`.
    pub dpop_nonces: HashSet<String>,
    /// Every secret a client presented (API tokens, access tokens, client assertions, DPoP
    /// proofs), the first [`MAX_PRESENTED`] distinct ones: what a test looks for in what the client
    /// printed, where none may appear.
    pub presented: HashSet<String>,
}

/// How many distinct presented secrets [`AuthBook::presented`] keeps.
pub const MAX_PRESENTED: usize = 10_000;

impl AuthBook {
    /// Remembers a secret a client sent (an empty one is nothing).
    pub fn presented(&mut self, secret: &str) {
        if !secret.is_empty() && self.presented.len() < MAX_PRESENTED {
            self.presented.insert(secret.to_string());
        }
    }
}

/// Which scopes an endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Manage,
}

/// An authentication failure: Okta's error plus the `WWW-Authenticate` challenge, if any.
#[derive(Debug)]
pub struct Denied {
    pub error: OktaError,
    pub challenge: Option<String>,
}

impl Denied {
    fn new(error: OktaError) -> Self {
        Denied { error, challenge: None }
    }

    fn challenge(mut self, value: String) -> Self {
        self.challenge = Some(value);
        self
    }

    pub fn into_response(self) -> Response<Body> {
        let mut response = self.error.into_response();
        if let Some(v) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// The scheme of the `Authorization` header, for the call log.
pub fn scheme_label(headers: &HeaderMap) -> String {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return "none".to_string();
    };
    let scheme = value.split_whitespace().next().unwrap_or("");
    match scheme.to_ascii_lowercase().as_str() {
        "ssws" => "SSWS".to_string(),
        "bearer" => "Bearer".to_string(),
        "dpop" => "DPoP".to_string(),
        "" => "none".to_string(),
        _ => scheme.to_string(),
    }
}

/// Checks the caller's credentials and that they carry the scope `need` requires.
///
/// `request_url` is the URL as the client addressed it (without query), for the DPoP `htu`.
pub fn authorize(
    book: &mut AuthBook,
    headers: &HeaderMap,
    method: &Method,
    request_url: &str,
    need: Need,
    now: Timestamp,
) -> Result<(), Denied> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
    let credential = credential.trim();
    book.presented(credential);
    if let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) {
        book.presented(proof);
    }
    let scopes = match scheme.to_ascii_lowercase().as_str() {
        "ssws" => {
            return if ssws::is_valid(book, credential) {
                Ok(())
            } else {
                Err(Denied::new(OktaError::invalid_token()))
            };
        }
        "bearer" => {
            let token = live_token(book, credential, now)?;
            if token.dpop_jkt.is_some() {
                // A DPoP-bound token presented as a plain bearer token.
                return Err(Denied::new(OktaError::invalid_token())
                    .challenge("DPoP algs=\"RS256 ES256\", error=\"invalid_token\"".to_string()));
            }
            token.scopes
        }
        "dpop" => {
            let token = live_token(book, credential, now)?;
            let proof = headers.get("dpop").and_then(|v| v.to_str().ok()).unwrap_or("");
            let expected = dpop::Expect { method, url: request_url, access_token: Some(credential), nonce: false };
            let jkt = dpop::verify(book, proof, &expected).map_err(|why| {
                Denied::new(OktaError::invalid_token()).challenge(format!(
                    "DPoP algs=\"RS256 ES256\", error=\"invalid_dpop_proof\", error_description=\"{why}\""
                ))
            })?;
            if token.dpop_jkt.as_deref() != Some(jkt.as_str()) {
                return Err(Denied::new(OktaError::invalid_token()).challenge(
                    "DPoP algs=\"RS256 ES256\", error=\"invalid_token\", error_description=\"The access token is not bound to this DPoP key.\"".to_string(),
                ));
            }
            token.scopes
        }
        _ => return Err(Denied::new(OktaError::invalid_token())),
    };
    let allowed = match need {
        // Okta: okta.apps.manage includes read access.
        Need::Read => scopes.iter().any(|s| s == SCOPE_READ || s == SCOPE_MANAGE),
        Need::Manage => scopes.iter().any(|s| s == SCOPE_MANAGE),
    };
    if allowed {
        Ok(())
    } else {
        let wanted = if need == Need::Read { SCOPE_READ } else { SCOPE_MANAGE };
        Err(Denied::new(OktaError::access_denied())
            .challenge(format!("Bearer error=\"insufficient_scope\", scope=\"{wanted}\"")))
    }
}

fn live_token(book: &AuthBook, token: &str, now: Timestamp) -> Result<AccessToken, Denied> {
    match book.access_tokens.get(token) {
        Some(t) if t.expires_at > now => Ok(t.clone()),
        Some(_) => Err(Denied::new(OktaError::invalid_token())
            .challenge("Bearer error=\"invalid_token\", error_description=\"The token has expired.\"".to_string())),
        None => Err(Denied::new(OktaError::invalid_token())),
    }
}
