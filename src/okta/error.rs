//! Errors of the Okta client, typed from Okta's error body.
//!
//! Nothing in here ever holds a token, a private key, a client assertion or a DPoP proof: the
//! variants carry only what Okta said (errorCode, errorSummary, errorId, errorCauses) and what
//! went wrong on our side, so `Display` and `Debug` are safe to log and to put into events.

use std::time::Duration;

use serde::Deserialize;

/// Whether retrying the same request later can succeed without anything else changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Rate limits, server errors, timeouts, broken connections.
    Retryable,
    /// Bad requests, missing permissions, missing objects, bad configuration.
    Terminal,
}

/// Okta's error body (`Error` in the management spec), also used for the token endpoint's
/// `{error, error_description}` after translation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub error_code: Option<String>,
    pub error_summary: Option<String>,
    pub error_id: Option<String>,
    pub error_causes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawErrorBody {
    error_code: Option<String>,
    error_summary: Option<String>,
    error_id: Option<String>,
    #[serde(default)]
    error_causes: Vec<RawErrorCause>,
    // The OAuth endpoints answer with RFC 6749 fields instead.
    #[serde(rename = "error")]
    oauth_error: Option<String>,
    #[serde(rename = "error_description")]
    oauth_error_description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawErrorCause {
    error_summary: Option<String>,
}

impl ErrorBody {
    /// Reads whatever error shape the body has; an unreadable body gives an empty one, because
    /// the status code alone still classifies the error.
    pub(crate) fn parse(body: &[u8]) -> ErrorBody {
        let Ok(raw) = serde_json::from_slice::<RawErrorBody>(body) else {
            return ErrorBody::default();
        };
        ErrorBody {
            error_code: raw.error_code.or(raw.oauth_error),
            error_summary: raw.error_summary.or(raw.oauth_error_description),
            error_id: raw.error_id,
            error_causes: raw.error_causes.into_iter().filter_map(|cause| cause.error_summary).collect(),
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.error_code, &self.error_summary) {
            (Some(code), Some(summary)) => write!(f, "{code}: {summary}")?,
            (Some(code), None) => write!(f, "{code}")?,
            (None, Some(summary)) => write!(f, "{summary}")?,
            (None, None) => write!(f, "no error details")?,
        }
        if !self.error_causes.is_empty() {
            write!(f, " ({})", self.error_causes.join("; "))?;
        }
        if let Some(id) = &self.error_id {
            write!(f, " [errorId {id}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OktaError {
    /// 400 (and other 4xx not listed below): the request is wrong until the spec or Okta changes.
    #[error("Okta rejected the request ({status}): {body}")]
    Validation { status: u16, body: ErrorBody },
    /// 401 after one token refresh, or a token endpoint that refused the client.
    #[error("Okta did not accept the credentials: {body}")]
    Unauthorized { body: ErrorBody },
    /// 403: the credentials lack a scope or an admin role.
    #[error("Okta denied access: {body}")]
    Forbidden { body: ErrorBody },
    /// 404: the app or key does not exist.
    #[error("not found in Okta: {body}")]
    NotFound { body: ErrorBody },
    /// 429: the bucket is exhausted until `reset_after` from now.
    #[error("Okta rate limit exceeded, resets in {}s: {body}", reset_after.as_secs())]
    RateLimited { reset_after: Duration, body: ErrorBody },
    /// 5xx.
    #[error("Okta server error ({status}): {body}")]
    Server { status: u16, body: ErrorBody },
    /// The connection failed or broke before a full answer arrived.
    #[error("cannot reach Okta: {message}")]
    Transport { message: String, connect: bool },
    /// No full answer within the configured timeout.
    #[error("Okta did not answer within {}ms", timeout.as_millis())]
    Timeout { timeout: Duration },
    /// An answer arrived but its body is not what the API promises.
    #[error("undecodable answer from Okta ({status}): {reason}")]
    UndecodableBody { status: u16, reason: String },
    /// Okta answered with a redirect; we never follow one, so credentials stay on this host.
    #[error("Okta answered {status} redirecting to {location:?}; redirects are not followed")]
    Redirect { status: u16, location: String },
    /// The org configuration (URL, key, scopes) cannot work.
    #[error("invalid Okta configuration: {0}")]
    Config(String),
    /// A certificate in a key credential is malformed or disagrees with its thumbprint.
    #[error("invalid certificate in key {kid}: {reason}")]
    Certificate { kid: String, reason: String },
    /// The write fence refused a request that would change Okta; it was not sent.
    #[error("write to Okta not sent: {reason}")]
    Fenced { reason: String },
}

impl OktaError {
    pub fn class(&self) -> ErrorClass {
        match self {
            OktaError::RateLimited { .. }
            | OktaError::Server { .. }
            | OktaError::Transport { .. }
            | OktaError::Timeout { .. }
            | OktaError::UndecodableBody { .. }
            | OktaError::Fenced { .. } => ErrorClass::Retryable,
            OktaError::Validation { .. }
            | OktaError::Unauthorized { .. }
            | OktaError::Forbidden { .. }
            | OktaError::NotFound { .. }
            | OktaError::Redirect { .. }
            | OktaError::Config(_)
            | OktaError::Certificate { .. } => ErrorClass::Terminal,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// Okta's errorId, for logs and events: it is what Okta support asks for.
    pub fn error_id(&self) -> Option<&str> {
        self.body().and_then(|body| body.error_id.as_deref())
    }

    /// Okta's errorCode (E0000xxx) or OAuth error code.
    pub fn error_code(&self) -> Option<&str> {
        self.body().and_then(|body| body.error_code.as_deref())
    }

    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            OktaError::Validation { body, .. }
            | OktaError::Unauthorized { body }
            | OktaError::Forbidden { body }
            | OktaError::NotFound { body }
            | OktaError::RateLimited { body, .. }
            | OktaError::Server { body, .. } => Some(body),
            _ => None,
        }
    }

    /// How long the caller should wait before trying again, when Okta said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OktaError::RateLimited { reset_after, .. } => Some(*reset_after),
            _ => None,
        }
    }

    /// A short stable name for metrics labels and condition reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            OktaError::Validation { .. } => "Validation",
            OktaError::Unauthorized { .. } => "Unauthorized",
            OktaError::Forbidden { .. } => "Forbidden",
            OktaError::NotFound { .. } => "NotFound",
            OktaError::RateLimited { .. } => "RateLimited",
            OktaError::Server { .. } => "Server",
            OktaError::Transport { .. } => "Transport",
            OktaError::Timeout { .. } => "Timeout",
            OktaError::UndecodableBody { .. } => "UndecodableBody",
            OktaError::Redirect { .. } => "Redirect",
            OktaError::Config(_) => "Config",
            OktaError::Certificate { .. } => "Certificate",
            OktaError::Fenced { .. } => "Fenced",
        }
    }

    /// Builds the error for a non-success status. `reset_after` is only used for 429.
    pub(crate) fn from_status(status: u16, body: &[u8], reset_after: Duration) -> OktaError {
        let body = ErrorBody::parse(body);
        match status {
            401 => OktaError::Unauthorized { body },
            403 => OktaError::Forbidden { body },
            404 => OktaError::NotFound { body },
            429 => OktaError::RateLimited { reset_after, body },
            500..=599 => OktaError::Server { status, body },
            _ => OktaError::Validation { status, body },
        }
    }
}

pub type Result<T, E = OktaError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_okta_error_body_with_causes() {
        let body = br#"{"errorCode":"E0000001","errorSummary":"Api validation failed: generateKey",
            "errorLink":"E0000001","errorId":"oaeX","errorCauses":[{"errorSummary":"Validity years out of range."}]}"#;
        let err = OktaError::from_status(400, body, Duration::ZERO);
        assert!(matches!(err, OktaError::Validation { status: 400, .. }));
        assert_eq!(err.error_id(), Some("oaeX"));
        assert_eq!(err.error_code(), Some("E0000001"));
        assert_eq!(err.class(), ErrorClass::Terminal);
        let text = err.to_string();
        assert!(text.contains("Validity years out of range."), "{text}");
        assert!(text.contains("errorId oaeX"), "{text}");
    }

    #[test]
    fn parses_oauth_error_body() {
        let body = br#"{"error":"invalid_client","error_description":"The client_assertion is invalid."}"#;
        let err = OktaError::from_status(401, body, Duration::ZERO);
        assert_eq!(err.error_code(), Some("invalid_client"));
        assert!(err.to_string().contains("client_assertion is invalid"));
    }

    #[test]
    fn classifies_statuses() {
        let reset = Duration::from_secs(7);
        let rate_limited = OktaError::from_status(429, b"{}", reset);
        assert_eq!(rate_limited.class(), ErrorClass::Retryable);
        assert_eq!(rate_limited.retry_after(), Some(reset));
        assert_eq!(OktaError::from_status(503, b"", reset).class(), ErrorClass::Retryable);
        assert_eq!(OktaError::from_status(404, b"<html>", reset).class(), ErrorClass::Terminal);
        assert_eq!(OktaError::from_status(403, b"", reset).kind(), "Forbidden");
        assert_eq!(OktaError::from_status(409, b"", reset).kind(), "Validation");
    }

    #[test]
    fn non_json_body_still_classifies() {
        let err = OktaError::from_status(502, b"<html>bad gateway</html>", Duration::ZERO);
        assert!(matches!(err, OktaError::Server { status: 502, .. }));
        assert_eq!(err.error_id(), None);
    }
}
