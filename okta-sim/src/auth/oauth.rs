//! `POST /oauth2/v1/token`: client credentials with a `private_key_jwt` client assertion, as
//! Okta's org authorization server serves them to service apps.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rand::RngCore as _;
use serde_json::{Value, json};

use super::dpop::{self, ProofError};
use super::{AccessToken, AuthBook};
use crate::config::OAuthClient;
use crate::errors::{OAuthError, json_response};

pub const TOKEN_PATH: &str = "/oauth2/v1/token";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Okta's org authorization server issues access tokens for one hour.
pub const TOKEN_LIFETIME: SignedDuration = SignedDuration::from_hours(1);
/// Okta refuses client assertions that expire more than an hour from now.
const MAX_ASSERTION_LIFETIME_SECONDS: i64 = 3600;

/// Handles one token request. `token_url` is this endpoint's absolute URL (`aud` and `htu`).
pub fn token(
    book: &mut AuthBook,
    headers: &HeaderMap,
    form_body: &[u8],
    token_url: &str,
    now: Timestamp,
) -> Response<Body> {
    match issue(book, headers, form_body, token_url, now) {
        Ok(body) => {
            let mut response = json_response(StatusCode::OK, &body);
            response
                .headers_mut()
                .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache, no-store"));
            response
        }
        Err(error) => error.into_response(),
    }
}

fn issue(
    book: &mut AuthBook,
    headers: &HeaderMap,
    form_body: &[u8],
    token_url: &str,
    now: Timestamp,
) -> Result<Value, OAuthError> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(form_body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");

    if field("grant_type") != "client_credentials" {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials].",
        ));
    }
    if field("client_assertion_type") != ASSERTION_TYPE || field("client_assertion").is_empty() {
        return Err(OAuthError::invalid_client(
            "Client authentication failed. Either the client or the client credentials are invalid.",
        ));
    }
    let assertion = field("client_assertion");
    book.presented(assertion);
    let client = find_client(book, assertion, field("client_id"))?;
    // Client authentication comes first, and it consumes the assertion whatever the rest of the
    // request earns (a token, `invalid_scope`, `use_dpop_nonce`): Okta accepts a `jti` once per
    // token request, so a client that is asked for a DPoP nonce must sign a new assertion.
    if let Some(jti) = verify_assertion(book, &client, assertion, token_url)? {
        book.used_assertion_ids.insert(jti);
    }

    let requested: Vec<String> = field("scope").split_whitespace().map(str::to_string).collect();
    if requested.is_empty() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        ));
    }
    if let Some(missing) = requested.iter().find(|s| !client.scopes.contains(s)) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!("The following scopes are not allowed: [{missing}]"),
        ));
    }

    let proof = headers.get("dpop").and_then(|v| v.to_str().ok()).unwrap_or("");
    book.presented(proof);
    let dpop_jkt = if client.require_dpop || !proof.is_empty() {
        let expect = dpop::Expect { method: &Method::POST, url: token_url, access_token: None, nonce: true };
        match dpop::verify(book, proof, &expect) {
            Ok(jkt) => Some(jkt),
            Err(ProofError::NeedsNonce) => {
                let nonce = random_token();
                book.dpop_nonces.insert(nonce.clone());
                let mut error = OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "use_dpop_nonce",
                    "Authorization server requires nonce in DPoP proof.",
                );
                error.dpop_nonce = Some(nonce);
                return Err(error);
            }
            Err(ProofError::Invalid(why)) => return Err(OAuthError::invalid_dpop_proof(why)),
        }
    } else {
        None
    };

    let access_token = random_token();
    let token_type = if dpop_jkt.is_some() { "DPoP" } else { "Bearer" };
    book.presented(&access_token);
    book.access_tokens.insert(
        access_token.clone(),
        AccessToken {
            client_id: client.client_id.clone(),
            scopes: requested.clone(),
            expires_at: now + TOKEN_LIFETIME,
            dpop_jkt,
        },
    );
    Ok(json!({
        "token_type": token_type,
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "access_token": access_token,
        "scope": requested.join(" "),
    }))
}

/// The client named by `client_id`, or else by the assertion's (unverified) `iss`.
fn find_client(book: &AuthBook, assertion: &str, client_id: &str) -> Result<OAuthClient, OAuthError> {
    let id = if client_id.is_empty() {
        jsonwebtoken::dangerous::insecure_decode::<Value>(assertion)
            .ok()
            .and_then(|t| t.claims.get("iss").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    } else {
        client_id.to_string()
    };
    book.clients.get(&id).cloned().ok_or_else(|| OAuthError::invalid_client("The client_id is not valid."))
}

/// Checks the `private_key_jwt` assertion; returns its `jti` (not yet recorded as used).
fn verify_assertion(
    book: &AuthBook,
    client: &OAuthClient,
    assertion: &str,
    token_url: &str,
) -> Result<Option<String>, OAuthError> {
    let bad_signature = || OAuthError::invalid_client("The client_assertion signature is invalid.");
    let jwk: Jwk = serde_json::from_value(client.public_jwk.clone())
        .map_err(|_| OAuthError::invalid_client("The client's registered JWK is not usable."))?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| bad_signature())?;
    let registered_kid = client.public_jwk.get("kid").and_then(Value::as_str);
    if let (Some(sent), Some(registered)) = (header.kid.as_deref(), registered_kid)
        && sent != registered
    {
        return Err(bad_signature());
    }
    let algorithm_fits = match client.public_jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => matches!(header.alg, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512),
        Some("EC") => header.alg == Algorithm::ES256,
        _ => false,
    };
    if !algorithm_fits {
        return Err(bad_signature());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad_signature())?;
    // Assertions are signed on the client's clock, which is real time: `exp` is checked against
    // real time, not the simulator's movable clock.
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[token_url]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    validation.leeway = 30;
    let claims = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "The client_assertion token is expired.",
                ErrorKind::InvalidAudience => {
                    "The audience claim for client_assertion must be the endpoint invoked for the request."
                }
                ErrorKind::MissingRequiredClaim(_) => "The client_assertion token is missing a required claim.",
                _ => "The client_assertion signature is invalid.",
            };
            return Err(OAuthError::invalid_client(why));
        }
    };
    let claim = |name: &str| claims.get(name).and_then(Value::as_str);
    if claim("iss") != Some(client.client_id.as_str()) || claim("sub") != Some(client.client_id.as_str()) {
        return Err(OAuthError::invalid_client(
            "The issuer and subject claims of the client_assertion must be the client_id.",
        ));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp > Timestamp::now().as_second() + MAX_ASSERTION_LIFETIME_SECONDS + validation.leeway as i64 {
        return Err(OAuthError::invalid_client(
            "The client_assertion token has an expiration too far into the future.",
        ));
    }
    let jti = claim("jti").map(str::to_string);
    if jti.as_ref().is_some_and(|j| book.used_assertion_ids.contains(j)) {
        return Err(OAuthError::invalid_client("The client_assertion token has already been used."));
    }
    Ok(jti)
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
