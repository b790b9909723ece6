//! Faults injected through the control API: the next N matching calls misbehave.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::config::{Fault, FaultKind, RateLimitOverride};
use crate::errors::OktaError;

#[derive(Debug, Default)]
pub struct FaultBook {
    pending: Mutex<Vec<Fault>>,
}

impl FaultBook {
    pub fn add(&self, fault: Fault) {
        if fault.count > 0 {
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).push(fault);
        }
    }

    pub fn clear(&self) {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The fault for this call, if any; the first matching fault (in the order added) is used up.
    pub fn take(&self, method: &Method, path: &str) -> Option<FaultKind> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let index = pending
            .iter()
            .position(|f| f.method.as_ref().is_none_or(|m| m == method) && path.starts_with(f.path_prefix.as_str()))?;
        let fault = &mut pending[index];
        fault.count -= 1;
        let kind = fault.kind.clone();
        if fault.count == 0 {
            pending.remove(index);
        }
        Some(kind)
    }
}

/// The answer for a `Status` fault: Okta's error body with the given code and summary.
pub fn status_response(status: u16, error_code: &str, summary: &str) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    OktaError::new(status, error_code, summary).into_response()
}

/// Keeps the status and headers and announces the whole body (`Content-Length`), but sends only
/// its first half and then closes the connection: what a connection cut mid-answer looks like.
pub async fn truncate(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    // A stream, so that the server cannot know the body falls short before sending it; the
    // pause lets the half that was sent reach the client before the connection closes.
    let stream = futures::stream::unfold(Some(half), |pending| async move {
        match pending {
            Some(chunk) => Some((Ok::<_, std::convert::Infallible>(chunk), None)),
            None => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                None
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Replaces the `X-Rate-Limit-*` headers with the fault's values, verbatim. A value that cannot be
/// a header at all (a line break, say) leaves the simulator's own.
pub fn override_rate_headers(headers: &mut HeaderMap, values: &RateLimitOverride) {
    let pairs = [
        ("x-rate-limit-limit", &values.limit),
        ("x-rate-limit-remaining", &values.remaining),
        ("x-rate-limit-reset", &values.reset),
    ];
    for (name, value) in pairs {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
}

/// Keeps the status, but answers with an HTML page, as a proxy in front of Okta might.
pub fn non_json(response: Response<Body>) -> Response<Body> {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    let page = format!(
        "<html><head><title>{0}</title></head><body><h1>{0}</h1><p>okta-sim injected fault</p></body></html>",
        parts.status
    );
    Response::from_parts(parts, Body::from(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(method: Option<Method>, prefix: &str, count: u32) -> Fault {
        Fault { method, path_prefix: prefix.into(), count, kind: FaultKind::TruncatedBody }
    }

    #[test]
    fn a_fault_applies_to_the_next_n_matching_calls_only() {
        let book = FaultBook::default();
        book.add(fault(Some(Method::POST), "/api/v1/apps/", 2));
        assert_eq!(book.take(&Method::GET, "/api/v1/apps/x"), None);
        assert_eq!(book.take(&Method::POST, "/oauth2/v1/token"), None);
        assert!(book.take(&Method::POST, "/api/v1/apps/x/credentials/keys/generate").is_some());
        assert!(book.take(&Method::POST, "/api/v1/apps/y").is_some());
        assert_eq!(book.take(&Method::POST, "/api/v1/apps/y"), None);
    }

    #[test]
    fn a_fault_without_method_matches_any_method() {
        let book = FaultBook::default();
        book.add(fault(None, "/api", 1));
        assert!(book.take(&Method::PUT, "/api/v1/apps/x").is_some());
    }
}
