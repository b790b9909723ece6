//! OAuth 2.0 client credentials with `private_key_jwt`, against the org authorization server
//! (`/oauth2/v1/token`, the only one that grants `okta.*` scopes).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::dpop::{DpopMode, DpopSigner, NonceScope, random_id};
use super::jws;
use super::key::PrivateKey;
use crate::okta::error::{ErrorBody, OktaError, Result};
use crate::okta::transport::{Outgoing, Transport};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Okta accepts assertions valid for at most an hour; a short life limits replay.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// Refresh this long before expiry at most, so that no request carries a token that expires on
/// its way; short-lived tokens refresh after 80% of their life instead.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// An access token and how to present it.
#[derive(Clone)]
pub struct AccessToken {
    pub value: SecretString,
    pub dpop: bool,
    /// Identifies the token so that a 401 invalidates only the token it was sent with.
    pub generation: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("dpop", &self.dpop)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

struct CachedToken {
    token: AccessToken,
    refresh_at: Instant,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<u64>,
    /// The scopes Okta granted, space-separated (may be fewer than requested).
    scope: Option<String>,
}

pub struct OAuthClient {
    client_id: String,
    key: PrivateKey,
    key_id: Option<String>,
    scopes: Vec<String>,
    token_url: Url,
    mode: DpopMode,
    pub(crate) dpop: DpopSigner,
    /// Auto mode learned that this client must use DPoP.
    dpop_required: AtomicBool,
    /// The scopes of the last token Okta issued.
    granted: std::sync::Mutex<Option<Vec<String>>>,
    generation: AtomicU64,
    // Holding this lock across the token request is what makes the refresher single: every
    // caller that finds the token stale queues here and then finds the fresh one.
    cache: tokio::sync::Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("key", &self.key)
            .field("key_id", &self.key_id)
            .field("scopes", &self.scopes)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    pub fn new(
        client_id: String,
        key: PrivateKey,
        key_id: Option<String>,
        scopes: Vec<String>,
        base_url: &Url,
        mode: DpopMode,
    ) -> Result<OAuthClient> {
        let token_url =
            base_url.join("/oauth2/v1/token").map_err(|err| OktaError::Config(format!("token URL: {err}")))?;
        if scopes.is_empty() {
            return Err(OktaError::Config("OAuth needs at least one scope".into()));
        }
        Ok(OAuthClient {
            client_id,
            key,
            key_id,
            scopes,
            token_url,
            mode,
            dpop: DpopSigner::generate()?,
            dpop_required: AtomicBool::new(false),
            granted: std::sync::Mutex::new(None),
            generation: AtomicU64::new(0),
            cache: tokio::sync::Mutex::new(None),
        })
    }

    /// The scopes Okta granted with the last token, once a token was obtained.
    pub fn granted_scopes(&self) -> Option<Vec<String>> {
        self.granted.lock().unwrap().clone()
    }

    /// Whether requests of this client are DPoP-bound right now.
    pub fn uses_dpop(&self) -> bool {
        match self.mode {
            DpopMode::Required => true,
            DpopMode::Disabled => false,
            DpopMode::Auto => self.dpop_required.load(Ordering::Relaxed),
        }
    }

    /// A valid token, from the cache or from one token request shared by all waiting callers.
    /// `stale` names a token generation the resource server rejected: it is not reused.
    pub async fn token(&self, transport: &Transport, stale: Option<u64>) -> Result<AccessToken> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
            && stale != Some(cached.token.generation)
        {
            return Ok(cached.token.clone());
        }
        let fresh = self.request_token(transport).await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// A new assertion for each token request: Okta consumes its `jti` on every request, even
    /// one it answers with `use_dpop_nonce`, so the retry with the nonce must not resend it.
    fn client_assertion(&self) -> Result<SecretString> {
        let header = jws::Header { typ: "JWT", kid: self.key_id.clone(), jwk: None };
        let now = jiff::Timestamp::now().as_second();
        let claims = AssertionClaims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: self.token_url.as_str(),
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs() as i64,
            jti: random_id(),
        };
        jws::sign(&self.key, &header, &claims)
            .map_err(|err| OktaError::Config(format!("cannot sign client assertion: {err}")))
    }

    async fn request_token(&self, transport: &Transport) -> Result<CachedToken> {
        let mut use_dpop = self.uses_dpop();
        let mut nonce_retried = false;
        let mut switched_to_dpop = false;
        loop {
            let assertion = self.client_assertion()?;
            let scope = self.scopes.join(" ");
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", &scope)
                .append_pair("client_assertion_type", ASSERTION_TYPE)
                .append_pair("client_assertion", assertion.expose_secret())
                .finish();
            let mut headers = HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
            headers.insert(http::header::ACCEPT, HeaderValue::from_static("application/json"));
            if use_dpop {
                let proof = self.dpop.proof(&Method::POST, &self.token_url, None, NonceScope::TokenEndpoint)?;
                headers.insert("dpop", sensitive(&proof)?);
            }
            let answer = transport
                .send(Outgoing {
                    method: Method::POST,
                    url: self.token_url.clone(),
                    headers,
                    body: Some(body.into_bytes()),
                    endpoint: "POST /oauth2/v1/token",
                })
                .await?;
            if let Some(nonce) = answer.headers.get("dpop-nonce").and_then(|v| v.to_str().ok()) {
                self.dpop.set_nonce(NonceScope::TokenEndpoint, nonce);
            }
            if (200..300).contains(&answer.status) {
                return self.accept_token(&answer.body, answer.status, use_dpop);
            }
            let error = ErrorBody::parse(&answer.body);
            let code = error.error_code.as_deref().unwrap_or_default();
            if answer.status == 400 && code == "use_dpop_nonce" && use_dpop && !nonce_retried {
                nonce_retried = true;
                tracing::debug!("token endpoint asked for a DPoP nonce; retrying with it");
                continue;
            }
            if answer.status == 400
                && code == "invalid_dpop_proof"
                && self.mode == DpopMode::Auto
                && !use_dpop
                && !switched_to_dpop
            {
                switched_to_dpop = true;
                use_dpop = true;
                self.dpop_required.store(true, Ordering::Relaxed);
                tracing::info!("Okta requires DPoP for this client; switching to DPoP-bound tokens");
                continue;
            }
            return Err(match answer.status {
                // The token endpoint answers 400 for a client it will not serve (bad scope,
                // unknown client, bad assertion): to us that is a credential problem.
                400 | 401 => OktaError::Unauthorized { body: error },
                status => OktaError::from_status(status, &answer.body, answer.rate.reset_after()),
            });
        }
    }

    fn accept_token(&self, body: &[u8], status: u16, sent_dpop: bool) -> Result<CachedToken> {
        let parsed: TokenResponse = serde_json::from_slice(body).map_err(|err| OktaError::UndecodableBody {
            status,
            // serde's message names a position, never the content.
            reason: format!("token response: {err}"),
        })?;
        let dpop = parsed.token_type.as_deref().map(|kind| kind.eq_ignore_ascii_case("DPoP")).unwrap_or(sent_dpop);
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3600));
        let ahead = REFRESH_AHEAD.min(lifetime / 5);
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(scope) = &parsed.scope {
            *self.granted.lock().unwrap() = Some(scope.split_whitespace().map(str::to_string).collect());
        }
        tracing::debug!(lifetime_s = lifetime.as_secs(), dpop, generation, "obtained Okta access token");
        Ok(CachedToken {
            token: AccessToken { value: SecretString::from(parsed.access_token), dpop, generation },
            refresh_at: Instant::now() + lifetime - ahead,
        })
    }
}

/// A header value that http and its users print as `Sensitive`.
pub(crate) fn sensitive(secret: &SecretString) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(secret.expose_secret())
        .map_err(|_| OktaError::Config("credential is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}
