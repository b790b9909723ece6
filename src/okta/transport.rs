//! One HTTP exchange with Okta: paced by the rate limiter, bounded by the timeout, reported to
//! the metrics hook. No authentication and no retries here; those live in the client.
//!
//! Whatever the other side sends, an exchange ends: one deadline covers the whole of it (sending,
//! the head, the body), and a body is read in chunks only up to [`MAX_BODY_BYTES`], whatever
//! `Content-Length` claims or omits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use url::Url;

use super::error::{OktaError, Result};
use super::ratelimit::{RateLimitHeaders, RateLimiter, bucket_for};

/// Answers beyond this are not read. Okta's largest answer samlcred asks for, a page of 200 apps,
/// is a fraction of it; anything bigger is not Okta's API talking, and must not fill the memory.
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// What one Okta request did, for metrics: `samlcred_okta_requests_total{endpoint,status}` and
/// `samlcred_okta_rate_limit_remaining{bucket}`.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    /// The endpoint template, e.g. `GET /api/v1/apps/{appId}`: low cardinality.
    pub endpoint: &'a str,
    /// HTTP status, or `None` when no answer arrived (transport failure, timeout).
    pub status: Option<u16>,
    pub bucket: &'a str,
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub elapsed: Duration,
}

/// Receives one record per HTTP exchange with Okta.
pub trait MetricsHook: Send + Sync {
    fn record(&self, record: &RequestRecord<'_>);
}

/// Decides, right before each request that changes something in Okta (anything but GET), whether
/// it may be sent. The operator closes it when it may no longer hold its leader lease.
pub trait WriteFence: Send + Sync {
    /// `Err` with the reason to refuse the write.
    fn check(&self) -> std::result::Result<(), String>;
}

/// An answer with its body fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub rate: RateLimitHeaders,
}

pub struct Outgoing<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub endpoint: &'a str,
}

pub struct Transport {
    pub http: reqwest::Client,
    pub limiter: Arc<RateLimiter>,
    pub metrics: Option<Arc<dyn MetricsHook>>,
    pub fence: Option<Arc<dyn WriteFence>>,
    pub timeout: Duration,
    /// The longest wait for a rate-limit reset before a request; beyond it the request fails
    /// with `RateLimited` instead.
    pub max_rate_limit_wait: Duration,
}

/// Why a body could not be read whole.
enum BodyError {
    Broken(reqwest::Error),
    TooLarge,
}

/// Reads the body chunk by chunk and stops at the cap.
async fn read_capped(response: &mut reqwest::Response) -> std::result::Result<Bytes, BodyError> {
    if response.content_length().is_some_and(|announced| announced > MAX_BODY_BYTES as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Broken)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

impl Transport {
    pub async fn send(&self, out: Outgoing<'_>) -> Result<Answer> {
        let bucket = bucket_for(&out.method, out.url.path());
        // Held until the answer is recorded; dropped on any early return (the fence, a timeout,
        // a broken connection, a cancelled call) it settles as a request without an answer.
        let permit = self.limiter.acquire(&bucket, self.max_rate_limit_wait).await.inspect_err(|err| {
            tracing::warn!(endpoint = out.endpoint, bucket = %bucket, "{err}; not waiting in place");
        })?;
        // Checked after the pacing wait, which can be long, and right before the bytes leave.
        if out.method != Method::GET
            && let Some(fence) = &self.fence
            && let Err(reason) = fence.check()
        {
            tracing::warn!(endpoint = out.endpoint, "Okta write refused by the fence: {reason}");
            return Err(OktaError::Fenced { reason });
        }
        let started = Instant::now();
        let mut request = self.http.request(out.method.clone(), out.url).headers(out.headers);
        if let Some(body) = out.body {
            request = request.body(body);
        }
        let exchange = async {
            let mut response = request.send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = read_capped(&mut response).await;
            Ok::<_, reqwest::Error>((status, headers, body))
        };
        let outcome = tokio::time::timeout(self.timeout, exchange).await;
        let elapsed = started.elapsed();
        let (status, headers, body) = match outcome {
            Err(_) => {
                drop(permit);
                self.report(out.endpoint, None, &bucket, None, elapsed);
                tracing::debug!(endpoint = out.endpoint, "Okta request timed out");
                return Err(OktaError::Timeout { timeout: self.timeout });
            }
            Ok(Err(err)) => {
                drop(permit);
                self.report(out.endpoint, None, &bucket, None, elapsed);
                tracing::debug!(endpoint = out.endpoint, error = %err, "Okta request failed");
                return Err(transport_error(&err));
            }
            Ok(Ok(parts)) => parts,
        };
        let rate = RateLimitHeaders::parse(&headers, std::time::SystemTime::now());
        permit.answered(&rate, status);
        self.report(out.endpoint, Some(status), &bucket, Some(&rate), elapsed);
        tracing::debug!(
            endpoint = out.endpoint,
            status,
            bucket = %bucket,
            remaining = rate.remaining,
            elapsed_ms = elapsed.as_millis() as u64,
            "Okta answered"
        );
        let body = body.map_err(|err| OktaError::UndecodableBody {
            status,
            reason: match err {
                BodyError::Broken(err) => format!("body not fully received: {}", describe(&err)),
                BodyError::TooLarge => format!("the body exceeds {} MiB; not read further", MAX_BODY_BYTES >> 20),
            },
        })?;
        Ok(Answer { status, headers, body, rate })
    }

    fn report(
        &self,
        endpoint: &str,
        status: Option<u16>,
        bucket: &str,
        rate: Option<&RateLimitHeaders>,
        elapsed: Duration,
    ) {
        if let Some(metrics) = &self.metrics {
            metrics.record(&RequestRecord {
                endpoint,
                status,
                bucket,
                limit: rate.and_then(|r| r.limit),
                remaining: rate.and_then(|r| r.remaining),
                elapsed,
            });
        }
    }
}

fn transport_error(err: &reqwest::Error) -> OktaError {
    OktaError::Transport { message: describe(err), connect: err.is_connect() }
}

/// The error and its causes on one line; reqwest's top-level message alone is vague.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
