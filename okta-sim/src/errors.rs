//! Okta's error body (`Error` in management-minimal.yaml) and the errors the simulator answers with.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use rand::Rng;
use serde_json::json;

/// One error as Okta reports it: an HTTP status and the `Error` body.
#[derive(Debug, Clone)]
pub struct OktaError {
    pub status: StatusCode,
    pub code: String,
    pub summary: String,
    pub causes: Vec<String>,
}

impl OktaError {
    pub fn new(status: StatusCode, code: &str, summary: impl Into<String>) -> Self {
        OktaError { status, code: code.to_string(), summary: summary.into(), causes: Vec::new() }
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    /// E0000001: a request Okta understood but refuses (bad values).
    pub fn validation(what: &str, cause: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "E0000001", format!("Api validation failed: {what}")).with_cause(cause)
    }

    /// E0000003: the body is not JSON, or not the JSON that was expected.
    pub fn malformed_body() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "E0000003", "The request body was not well-formed.")
    }

    /// E0000028: a required query parameter is missing.
    pub fn missing_parameter(name: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "E0000028", "The request is missing a required parameter.")
            .with_cause(format!("{name}: The request is missing a required parameter."))
    }

    /// E0000011: no credentials, unknown token, expired token.
    pub fn invalid_token() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "E0000011", "Invalid token provided")
    }

    /// E0000006: authenticated, but the token lacks the scope the endpoint needs.
    pub fn access_denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "E0000006", "You do not have permission to perform the requested action")
    }

    /// E0000007: Okta names the missing resource and its type in the summary.
    pub fn not_found(id: &str, kind: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "E0000007", format!("Not found: Resource not found: {id} ({kind})"))
    }

    pub fn no_such_endpoint(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "E0000007", format!("Not found: Resource not found: {path} (Endpoint)"))
    }

    /// E0000022: the path exists but not with this method.
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "E0000022", "The endpoint does not support the provided HTTP method")
    }

    /// E0000047: per-minute or concurrent rate limit exceeded.
    pub fn too_many_requests() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "E0000047", "API call exceeded rate limit due to too many requests.")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "E0000009", "Internal Server Error")
    }

    /// The `Error` body. `errorId` is fresh for every answer, as Okta's is.
    pub fn body(&self, error_id: &str) -> serde_json::Value {
        // Okta links every code to itself, except the generic 500 which links to E0000000.
        let link = if self.code == "E0000009" { "E0000000" } else { self.code.as_str() };
        let causes: Vec<_> = self.causes.iter().map(|c| json!({ "errorSummary": c })).collect();
        json!({
            "errorCode": self.code,
            "errorSummary": self.summary,
            "errorLink": link,
            "errorId": error_id,
            "errorCauses": causes,
        })
    }

    pub fn into_response(self) -> Response<Body> {
        let id = new_error_id();
        let mut response = json_response(self.status, &self.body(&id));
        if let Ok(v) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-okta-request-id", v);
        }
        response
    }
}

/// Okta error ids look like `oaeXXXXXXXXXXXXXXXXXXXXXX` (3 + 22 characters).
pub fn new_error_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let tail: String = (0..22).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("oae{tail}")
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("a serde_json::Value always serializes");
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An OAuth 2.0 error (RFC 6749 section 5.2), as the token endpoint answers.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Set with `use_dpop_nonce`: the nonce the client must put in its next proof.
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status, error, description: description.into(), dpop_nonce: None }
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub fn invalid_dpop_proof(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = json_response(self.status, &body);
        if let Some(nonce) = self.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            response.headers_mut().insert("dpop-nonce", nonce);
        }
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_every_field_okta_sends() {
        let body = OktaError::validation("generateKey", "Validity years out of range. It should be 2 - 10 years.")
            .body("oaeX");
        assert_eq!(body["errorCode"], "E0000001");
        assert_eq!(body["errorLink"], "E0000001");
        assert_eq!(body["errorSummary"], "Api validation failed: generateKey");
        assert_eq!(body["errorId"], "oaeX");
        assert_eq!(body["errorCauses"][0]["errorSummary"], "Validity years out of range. It should be 2 - 10 years.");
    }

    #[test]
    fn error_ids_are_fresh_and_okta_shaped() {
        let (a, b) = (new_error_id(), new_error_id());
        assert_ne!(a, b);
        assert!(a.starts_with("oae") && a.len() == 25);
    }
}
