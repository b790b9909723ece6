//! The test-only control API under `/__sim` (a prefix Okta never uses). It does what the
//! `OktaSim` methods do, over HTTP, for the demo and anything else in another process.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;

use crate::config::{Fault, OAuthClient, RateLimits, SeedApp, SeedKey, SsoUpdate};
use crate::state::{ControlError, SimState};

/// The routes, documented for `okta-sim --help` and the README (keep the three in step).
pub const ROUTES: &str = "\
Control API (test-only, JSON; a prefix Okta never uses):
  GET    /__sim/health                  {\"base_url\"}: the simulator is up
  POST   /__sim/reset                   forget apps, credentials, faults, calls; clock back to real time
  POST   /__sim/api-tokens              {\"token\"}: accept `Authorization: SSWS <token>` (all scopes)
  POST   /__sim/oauth-clients           {\"client_id\", \"public_jwk\", \"scopes\": [..], \"require_dpop\"}
  POST   /__sim/apps                    {\"id\"?, \"label\", \"keys\": [{\"not_before\", \"not_after\"}], \"active\"}
                                        -> 201 {\"id\", \"kids\"}
  DELETE /__sim/apps/{id}               remove the app (Okta then answers 404 for it)
  GET    /__sim/apps/{id}/keys          the app's keys as JWKs, as the API returns them
  POST   /__sim/apps/{id}/keys          {\"not_before\", \"not_after\"} -> 201 {\"kid\"} (not made active)
  GET    /__sim/apps/{id}/active-kid    {\"kid\"}
  PUT    /__sim/apps/{id}/active-kid    {\"kid\"}: switch the signing key out of band
  GET    /__sim/apps/{id}/sso           {\"url\", \"entity_id\", \"subject\", \"acs_url\", \"audience\"}: the app's SSO URL
                                        (GET or POST it to sign in) and what its assertions say
  PUT    /__sim/apps/{id}/sso           {\"subject\"?, \"sign_on\"?: {..}}: who signs in (default user@example.com);
                                        sign_on fields are merged into settings.signOn -> the GET answer
  GET    /__sim/clock                   {\"now\"}
  POST   /__sim/clock/advance           {\"seconds\"}: move the simulator's clock forward
  POST   /__sim/faults                  {\"method\"?, \"path_prefix\", \"count\", \"kind\"}, kind one of:
                                          {\"type\": \"status\", \"value\": {\"status\", \"error_code\", \"summary\"}}
                                          {\"type\": \"latency\", \"value\": <milliseconds>}
                                          {\"type\": \"truncated_body\"} | {\"type\": \"non_json_body\"}
                                          {\"type\": \"connection_reset\"}
                                          {\"type\": \"rate_limit_headers\", \"value\": {\"limit\"?, \"remaining\"?,
                                           \"reset\"? (any text), \"refuse\"? (answer 429)}}
  DELETE /__sim/faults                  drop every pending fault
  GET    /__sim/calls                   every API call so far: method, path, query, status, auth, at
  GET    /__sim/rate-limits             current limits
  PUT    /__sim/rate-limits             {\"apps_collection\": {\"limit\", \"window\" (ms)}, \"app_instance\", \"token\"}
Times are RFC 3339 (e.g. 2030-01-01T00:00:00Z).";

pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/health", get(health))
        .route("/reset", post(reset))
        .route("/api-tokens", post(add_api_token))
        .route("/oauth-clients", post(add_oauth_client))
        .route("/apps", post(seed_app))
        .route("/apps/{id}", delete(remove_app))
        .route("/apps/{id}/keys", get(keys).post(add_key))
        .route("/apps/{id}/active-kid", get(active_kid).put(set_active_kid))
        .route("/apps/{id}/sso", get(sso).put(update_sso))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance_clock))
        .route("/faults", post(add_fault).delete(clear_faults))
        .route("/calls", get(calls))
        .route("/rate-limits", get(rate_limits).put(set_rate_limits))
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let status = match self {
            ControlError::NoSuchApp(_) | ControlError::NoSuchKey(..) => StatusCode::NOT_FOUND,
            ControlError::DuplicateApp(_) => StatusCode::CONFLICT,
            ControlError::ActiveOutOfRange(..)
            | ControlError::Key(_)
            | ControlError::InvalidSubject
            | ControlError::NoSignOnSettings => StatusCode::BAD_REQUEST,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

async fn health(State(state): State<Arc<SimState>>) -> Response {
    Json(json!({ "base_url": state.base_url })).into_response()
}

async fn reset(State(state): State<Arc<SimState>>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

async fn add_api_token(State(state): State<Arc<SimState>>, Json(body): Json<TokenBody>) -> StatusCode {
    state.auth().api_tokens.insert(body.token);
    StatusCode::NO_CONTENT
}

async fn add_oauth_client(State(state): State<Arc<SimState>>, Json(client): Json<OAuthClient>) -> StatusCode {
    state.auth().clients.insert(client.client_id.clone(), client);
    StatusCode::NO_CONTENT
}

async fn seed_app(State(state): State<Arc<SimState>>, Json(seed): Json<SeedApp>) -> Response {
    // Issuing keys may wait for the key pool: keep it off the async workers.
    match tokio::task::spawn_blocking(move || state.seed_app(seed)).await {
        Ok(Ok(seeded)) => (StatusCode::CREATED, Json(seeded)).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn remove_app(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    if state.remove_app(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        ControlError::NoSuchApp(id).into_response()
    }
}

async fn keys(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    if state.org().app(&id).is_none() {
        return ControlError::NoSuchApp(id).into_response();
    }
    Json(state.keys(&id)).into_response()
}

async fn add_key(State(state): State<Arc<SimState>>, Path(id): Path<String>, Json(key): Json<SeedKey>) -> Response {
    match tokio::task::spawn_blocking(move || state.add_key(&id, key)).await {
        Ok(Ok(kid)) => (StatusCode::CREATED, Json(json!({ "kid": kid }))).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn active_kid(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    if state.org().app(&id).is_none() {
        return ControlError::NoSuchApp(id).into_response();
    }
    Json(json!({ "kid": state.active_kid(&id) })).into_response()
}

#[derive(Deserialize)]
struct KidBody {
    kid: String,
}

async fn set_active_kid(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(body): Json<KidBody>,
) -> Response {
    match state.set_active_kid(&id, &body.kid) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn sso(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match state.sso(&id) {
        Ok(info) => Json(info).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn update_sso(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(update): Json<SsoUpdate>,
) -> Response {
    match state.update_sso(&id, update) {
        Ok(info) => Json(info).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn clock(State(state): State<Arc<SimState>>) -> Response {
    Json(json!({ "now": state.now() })).into_response()
}

#[derive(Deserialize)]
struct AdvanceBody {
    seconds: u64,
}

async fn advance_clock(State(state): State<Arc<SimState>>, Json(body): Json<AdvanceBody>) -> Response {
    state.advance_clock(std::time::Duration::from_secs(body.seconds));
    Json(json!({ "now": state.now() })).into_response()
}

async fn add_fault(State(state): State<Arc<SimState>>, Json(fault): Json<Fault>) -> StatusCode {
    state.faults.add(fault);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}

async fn calls(State(state): State<Arc<SimState>>) -> Response {
    Json(state.calls()).into_response()
}

async fn rate_limits(State(state): State<Arc<SimState>>) -> Response {
    Json(state.rate.limits()).into_response()
}

async fn set_rate_limits(State(state): State<Arc<SimState>>, Json(limits): Json<RateLimits>) -> StatusCode {
    state.set_rate_limits(limits);
    StatusCode::NO_CONTENT
}
