//! `/api/v1/apps/{appId}/credentials/keys/...` and the SAML metadata for a key.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use jiff::{ToSpan as _, Zoned};
use serde_json::Value;

use crate::apps::{not_found, query_map};
use crate::errors::{OktaError, json_response};
use crate::keys::KeyCredential;
use crate::state::SimState;

fn key_not_found(kid: &str) -> OktaError {
    OktaError::not_found(kid, "AppInstanceKeyCredential")
}

/// `GET /api/v1/apps/{appId}/credentials/keys`
pub fn list(state: &SimState, app_id: &str) -> Response<Body> {
    match state.org().app(app_id) {
        Some(app) => json_response(StatusCode::OK, &Value::Array(app.keys.iter().map(KeyCredential::to_jwk).collect())),
        None => not_found(app_id).into_response(),
    }
}

/// `GET /api/v1/apps/{appId}/credentials/keys/{keyId}`
pub fn get(state: &SimState, app_id: &str, kid: &str) -> Response<Body> {
    let org = state.org();
    let Some(app) = org.app(app_id) else {
        return not_found(app_id).into_response();
    };
    match app.key(kid) {
        Some(key) => json_response(StatusCode::OK, &key.to_jwk()),
        None => key_not_found(kid).into_response(),
    }
}

/// Okta's answer for any `validityYears` outside 2..10.
fn invalid_validity() -> OktaError {
    OktaError::validation("generateKey", "Validity years out of range. It should be 2 - 10 years.")
}

/// `POST /api/v1/apps/{appId}/credentials/keys/generate?validityYears=N`: a new key, valid from
/// now for N years, added to the app but not made active.
pub async fn generate(state: Arc<SimState>, app_id: &str, query: Option<&str>) -> Response<Body> {
    let params = query_map(query);
    let years = match params.get("validityYears").map(|v| v.trim().parse::<i64>()) {
        None => return OktaError::missing_parameter("validityYears").into_response(),
        Some(Ok(y)) if (2..=10).contains(&y) => y,
        Some(_) => return invalid_validity().into_response(),
    };
    if state.org().app(app_id).is_none() {
        return not_found(app_id).into_response();
    }
    let now = state.now();
    let not_after = match Zoned::new(now, jiff::tz::TimeZone::UTC).checked_add(years.years()) {
        Ok(z) => z.timestamp(),
        Err(_) => return OktaError::internal().into_response(),
    };
    let issuing = state.clone();
    let issued = tokio::task::spawn_blocking(move || issuing.issue_key(now, not_after)).await;
    let Ok(Ok(key)) = issued else {
        tracing::error!("issuing a key credential failed");
        return OktaError::internal().into_response();
    };
    let jwk = key.to_jwk();
    let mut org = state.org();
    let Some(app) = org.app_mut(app_id) else {
        return not_found(app_id).into_response(); // removed meanwhile
    };
    app.keys.push(key);
    created(&jwk, &state.base_url, app_id)
}

fn created(jwk: &Value, base_url: &str, app_id: &str) -> Response<Body> {
    let mut response = json_response(StatusCode::CREATED, jwk);
    let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&format!("{base_url}/api/v1/apps/{app_id}/credentials/keys/{kid}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// `POST /api/v1/apps/{appId}/credentials/keys/{keyId}/clone?targetAid=...`: the same key
/// (same kid and certificate) becomes a key of the target app too.
pub fn clone(state: &SimState, app_id: &str, kid: &str, query: Option<&str>) -> Response<Body> {
    let params = query_map(query);
    let Some(target_id) = params.get("targetAid").filter(|t| !t.is_empty()) else {
        return OktaError::missing_parameter("targetAid").into_response();
    };
    let mut org = state.org();
    let Some(source) = org.app(app_id) else {
        return not_found(app_id).into_response();
    };
    let Some(key) = source.key(kid).cloned() else {
        return key_not_found(kid).into_response();
    };
    let Some(target) = org.app_mut(target_id) else {
        return not_found(target_id).into_response();
    };
    if target.key(kid).is_some() {
        return OktaError::validation(
            "cloneKey",
            "Key already exists in the list of key credentials for the target app.",
        )
        .into_response();
    }
    let jwk = key.to_jwk();
    target.keys.push(key);
    created(&jwk, &state.base_url, target_id)
}

/// `GET /api/v1/apps/{appId}/sso/saml/metadata?kid=...`
pub fn metadata(state: &SimState, app_id: &str, query: Option<&str>) -> Response<Body> {
    let params = query_map(query);
    let Some(kid) = params.get("kid").filter(|k| !k.is_empty()) else {
        return OktaError::missing_parameter("kid").into_response();
    };
    let org = state.org();
    let Some(app) = org.app(app_id) else {
        return not_found(app_id).into_response();
    };
    let Some(key) = app.key(kid) else {
        return key_not_found(kid).into_response();
    };
    let xml = crate::metadata::idp_metadata(app, key, &state.base_url);
    let mut response = Response::new(Body::from(xml));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml;charset=UTF-8"));
    response
}
