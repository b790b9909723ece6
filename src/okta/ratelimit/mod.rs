//! Client-side pacing driven by Okta's `X-Rate-Limit-*` headers.
//!
//! Okta counts requests per org and per bucket in fixed windows and tells, on every answer, the
//! bucket's `Limit`, what `Remaining` in the current window and when it `Reset`s (epoch
//! seconds). The same buckets serve every integration of the org, so samlcred allows itself
//! only `maxShare` percent of each limit per window and keeps the rest for the others.
//!
//! Within its share samlcred sends at once (a burst costs nothing as long as the window's total
//! stays under the share), and once the share is spent it waits for the reset. Until the
//! first answer of a bucket tells its limit, only one request of that bucket is in flight, so a
//! cold start cannot overrun an unknown limit.
//!
//! Three rules keep bad or surprising answers from breaking that:
//! - headers are read defensively and moved onto our clock (`headers`);
//! - a 429 only ever slows samlcred down: it teaches the window only when it speaks of this
//!   bucket, because past Okta's concurrent-request limit its headers describe that limit instead;
//! - no wait is longer than the caller allows: beyond it, `acquire` fails with `RateLimited` and
//!   the reset, so the caller can come back then instead of holding a worker.
//!
//! Every request holds a [`Permit`] from `acquire` until its answer is recorded; a permit dropped
//! without an answer (timeout, broken connection, a cancelled future) settles as a failure, so an
//! in-flight count can never leak.

mod headers;

pub use headers::{MAX_RESET_AHEAD, RateLimitHeaders, SKEW_TOLERANCE};

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use super::error::{ErrorBody, OktaError};

/// Margin after a reset before the first request of the next window: absorbs clock skew and
/// the time a request takes to reach Okta, so it is not counted in the window that just ended.
const RESET_MARGIN: Duration = Duration::from_millis(40);

/// How long nothing is sent after a 429 that names no believable reset.
const UNKNOWN_RESET_PAUSE: Duration = Duration::from_secs(1);

/// The bucket Okta counts a request in, per its rate-limit table for the Apps API: the single
/// app instance (GET/PUT/DELETE of `/api/v1/apps/{id}`) is one bucket, the collection and all
/// sub-resources of apps are another.
pub fn bucket_for(method: &http::Method, path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v1", "apps", _id]
            if matches!(*method, http::Method::GET | http::Method::PUT | http::Method::DELETE) =>
        {
            "/api/v1/apps/{id}".to_string()
        }
        ["api", "v1", "apps", ..] => "/api/v1/apps".to_string(),
        _ => format!("/{}", segments.join("/")),
    }
}

#[derive(Debug, Default)]
struct Bucket {
    limit: Option<u32>,
    /// Okta's count for the current window, lowered by every request sent since.
    remaining: Option<u32>,
    /// End of the current window as Okta announced it; `None` when a new window has begun
    /// locally and no answer has told its end yet.
    reset_at: Option<SystemTime>,
    /// Requests samlcred started in the current window.
    used: u32,
    in_flight: u32,
    /// After a 429, nothing is sent before this.
    blocked_until: Option<SystemTime>,
}

/// A snapshot of one bucket for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketStatus {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub used_in_window: u32,
    /// Requests sent and not yet answered (or given up).
    pub in_flight: u32,
}

/// The pacing of one Okta org. Shared by every client of that org (several org objects may name
/// the same Okta org, and a client is rebuilt when its credentials rotate), since Okta counts the
/// org's requests, not the client's.
pub struct RateLimiter {
    share_percent: AtomicU32,
    buckets: Mutex<HashMap<String, Bucket>>,
    changed: Notify,
}

enum Decision {
    Go,
    WaitUntil(SystemTime),
    WaitForAnswer,
}

/// One request's place in its bucket, from `acquire` until the answer. Settle it with
/// [`Permit::answered`]; dropped unsettled, it counts as a request that got no answer.
#[must_use = "a permit settles as a failure when dropped"]
pub struct Permit<'a> {
    limiter: &'a RateLimiter,
    bucket: String,
    settled: bool,
}

impl Permit<'_> {
    /// Feeds the headers of the answer (any status) back into the bucket.
    pub fn answered(mut self, headers: &RateLimitHeaders, status: u16) {
        self.settled = true;
        self.limiter.record_answer(&self.bucket, headers, status);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.limiter.record_failure(&self.bucket);
        }
    }
}

impl RateLimiter {
    pub fn new(max_share_percent: u8) -> RateLimiter {
        RateLimiter {
            share_percent: AtomicU32::new(u32::from(max_share_percent.clamp(1, 100))),
            buckets: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        }
    }

    /// Changes the share (the org object that configures it was edited, or another one names the
    /// same Okta org: the one built last applies).
    pub fn set_max_share(&self, max_share_percent: u8) {
        self.share_percent.store(u32::from(max_share_percent.clamp(1, 100)), Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Requests samlcred may send per window in a bucket of `limit`.
    pub fn allowed_per_window(&self, limit: u32) -> u32 {
        let share = u64::from(limit) * u64::from(self.share_percent.load(Ordering::Relaxed)) / 100;
        u32::try_from(share).unwrap_or(u32::MAX).max(1)
    }

    /// Waits until a request of `bucket` may be sent and counts it. A wait longer than
    /// `max_wait` is not started: the error is `RateLimited` with the time until the request
    /// could go.
    pub async fn acquire(&self, bucket: &str, max_wait: Duration) -> Result<Permit<'_>, OktaError> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let decision = self.decide(bucket, SystemTime::now());
            match decision {
                Decision::Go => return Ok(Permit { limiter: self, bucket: bucket.to_string(), settled: false }),
                Decision::WaitForAnswer => notified.await,
                Decision::WaitUntil(at) => {
                    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                    if wait > max_wait {
                        tracing::debug!(
                            bucket,
                            wait_ms = wait.as_millis() as u64,
                            "Okta rate limit: not waiting that long"
                        );
                        let summary = format!("not sent: bucket {bucket} has no room for samlcred before its reset");
                        let body = ErrorBody { error_summary: Some(summary), ..ErrorBody::default() };
                        return Err(OktaError::RateLimited { reset_after: wait, body });
                    }
                    tracing::debug!(bucket, wait_ms = wait.as_millis() as u64, "pacing Okta requests");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = notified => {}
                    }
                }
            }
        }
    }

    fn decide(&self, name: &str, now: SystemTime) -> Decision {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(name.to_string()).or_default();
        if let Some(until) = bucket.blocked_until {
            if now < until {
                return Decision::WaitUntil(until);
            }
            // The window goes on: only its reset, below, starts a new one. (A refusal by the
            // concurrency limit ends a short pause, not the window's count.)
            bucket.blocked_until = None;
        }
        if let Some(reset) = bucket.reset_at
            && now >= reset + RESET_MARGIN
        {
            start_new_window(bucket);
        }
        let Some(limit) = bucket.limit else {
            // Unknown limit: probe with a single request.
            if bucket.in_flight == 0 {
                bucket.in_flight += 1;
                bucket.used += 1;
                return Decision::Go;
            }
            return Decision::WaitForAnswer;
        };
        let allowed = self.allowed_per_window(limit);
        let okta_has_room = bucket.remaining.is_none_or(|remaining| remaining > 0);
        if bucket.used < allowed && okta_has_room {
            bucket.used += 1;
            bucket.in_flight += 1;
            bucket.remaining = bucket.remaining.map(|r| r.saturating_sub(1));
            return Decision::Go;
        }
        match bucket.reset_at {
            Some(reset) => Decision::WaitUntil(reset + RESET_MARGIN),
            None if bucket.in_flight > 0 => Decision::WaitForAnswer,
            // Every request of this window failed before an answer: nothing says when the
            // window ends, so wait one conservative second.
            None => {
                bucket.reset_at = Some(now + Duration::from_secs(1));
                Decision::WaitUntil(now + Duration::from_secs(1) + RESET_MARGIN)
            }
        }
    }

    fn record_answer(&self, name: &str, headers: &RateLimitHeaders, status: u16) {
        let now = SystemTime::now();
        {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let bucket = buckets.entry(name.to_string()).or_default();
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
            if status == 429 {
                record_refusal(bucket, headers, now);
            } else {
                learn_window(bucket, headers, now);
            }
        }
        self.changed.notify_waiters();
    }

    /// The request got no answer (connection failure, timeout, cancelled).
    fn record_failure(&self, name: &str) {
        {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(bucket) = buckets.get_mut(name) {
                bucket.in_flight = bucket.in_flight.saturating_sub(1);
            }
        }
        self.changed.notify_waiters();
    }

    pub fn status(&self, name: &str) -> Option<BucketStatus> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.get(name).map(|bucket| BucketStatus {
            limit: bucket.limit,
            remaining: bucket.remaining,
            used_in_window: bucket.used,
            in_flight: bucket.in_flight,
        })
    }
}

/// What an answer other than a 429 tells about the bucket and its window.
fn learn_window(bucket: &mut Bucket, headers: &RateLimitHeaders, now: SystemTime) {
    if let Some(limit) = headers.limit {
        bucket.limit = Some(limit);
    }
    let Some(reset) = headers.reset else { return };
    match bucket.reset_at {
        // An answer from a window that already ended here: nothing to learn.
        None if reset <= now => {}
        None => {
            bucket.reset_at = Some(reset);
            bucket.remaining = min_known(bucket.remaining, headers.remaining);
        }
        Some(current) if reset == current => {
            // Answers can arrive out of order; the lowest count is the latest.
            bucket.remaining = min_known(bucket.remaining, headers.remaining);
        }
        Some(current) if reset > current => {
            // Okta's window rolled before ours (clock skew). Count everything Okta saw in it as
            // ours, which can only make us slower, never over the share.
            bucket.reset_at = Some(reset);
            bucket.remaining = headers.remaining;
            if let (Some(limit), Some(remaining)) = (bucket.limit, headers.remaining) {
                bucket.used = bucket.used.max(limit.saturating_sub(remaining));
            }
        }
        Some(_) => {}
    }
}

/// A 429: nothing more is sent until its reset (or a short pause when it names none). Okta refuses
/// for two reasons: the bucket's window is spent, or too many of the org's requests are in flight
/// at once. The headers of the second describe the concurrency limit (its own Limit, a Remaining
/// that need not be 0, an estimated Reset), so the 429 teaches the window only when it speaks of
/// this bucket: the bucket's known Limit, and Remaining 0. Either way the window's count stays.
fn record_refusal(bucket: &mut Bucket, headers: &RateLimitHeaders, now: SystemTime) {
    let reset = headers.reset.filter(|reset| *reset > now);
    let until = reset.unwrap_or(now + UNKNOWN_RESET_PAUSE) + RESET_MARGIN;
    bucket.blocked_until = Some(bucket.blocked_until.map_or(until, |blocked| blocked.max(until)));
    let of_this_bucket = bucket.limit.is_some() && headers.limit == bucket.limit && headers.remaining == Some(0);
    if of_this_bucket {
        bucket.remaining = Some(0);
        if let Some(reset) = reset
            && bucket.reset_at.is_none_or(|current| reset > current)
        {
            bucket.reset_at = Some(reset);
        }
    }
}

fn start_new_window(bucket: &mut Bucket) {
    bucket.used = 0;
    bucket.remaining = None;
    bucket.reset_at = None;
}

fn min_known(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
