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

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use tokio::sync::Notify;

/// Margin after a reset before the first request of the next window: absorbs clock skew and
/// the time a request takes to reach Okta, so it is not counted in the window that just ended.
const RESET_MARGIN: Duration = Duration::from_millis(40);

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

/// What the headers of one answer said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub reset: Option<SystemTime>,
}

impl RateLimitHeaders {
    pub fn parse(headers: &HeaderMap) -> RateLimitHeaders {
        let number = |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        RateLimitHeaders {
            limit: number("x-rate-limit-limit").and_then(|v| u32::try_from(v).ok()),
            remaining: number("x-rate-limit-remaining").and_then(|v| u32::try_from(v).ok()),
            reset: number("x-rate-limit-reset").map(|secs| UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    /// Time from now until the reset (zero when it is past or unknown).
    pub fn reset_after(&self) -> Duration {
        self.reset.and_then(|reset| reset.duration_since(SystemTime::now()).ok()).unwrap_or_default()
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
}

pub struct RateLimiter {
    share_percent: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
    changed: Notify,
}

enum Decision {
    Go,
    WaitUntil(SystemTime),
    WaitForAnswer,
}

impl RateLimiter {
    pub fn new(max_share_percent: u8) -> RateLimiter {
        RateLimiter {
            share_percent: u32::from(max_share_percent.clamp(1, 100)),
            buckets: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        }
    }

    /// Requests samlcred may send per window in a bucket of `limit`.
    pub fn allowed_per_window(&self, limit: u32) -> u32 {
        (limit * self.share_percent / 100).max(1)
    }

    /// Waits until a request of `bucket` may be sent and counts it. Every call must be followed
    /// by exactly one `record_answer` or `record_failure` for the same bucket.
    pub async fn acquire(&self, bucket: &str) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let decision = self.decide(bucket, SystemTime::now());
            match decision {
                Decision::Go => return,
                Decision::WaitForAnswer => notified.await,
                Decision::WaitUntil(at) => {
                    let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
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
            bucket.blocked_until = None;
            start_new_window(bucket);
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

    /// Feeds the headers of an answer (any status) back into the bucket.
    pub fn record_answer(&self, name: &str, headers: &RateLimitHeaders, status: u16) {
        let now = SystemTime::now();
        {
            let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let bucket = buckets.entry(name.to_string()).or_default();
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
            if let Some(limit) = headers.limit {
                bucket.limit = Some(limit);
            }
            if let Some(reset) = headers.reset {
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
                        // Okta's window rolled before ours (clock skew). Count everything Okta
                        // saw in it as ours, which can only make us slower, never over the share.
                        bucket.reset_at = Some(reset);
                        bucket.remaining = headers.remaining;
                        if let (Some(limit), Some(remaining)) = (bucket.limit, headers.remaining) {
                            bucket.used = limit.saturating_sub(remaining);
                        }
                    }
                    Some(_) => {}
                }
            }
            if status == 429 {
                let until = headers.reset.filter(|reset| *reset > now).unwrap_or(now + Duration::from_secs(1));
                bucket.blocked_until = Some(until + RESET_MARGIN);
                bucket.remaining = Some(0);
            }
        }
        self.changed.notify_waiters();
    }

    /// The request got no answer (connection failure, timeout).
    pub fn record_failure(&self, name: &str) {
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
        })
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
mod tests {
    use super::*;
    use http::Method;

    fn headers(limit: u32, remaining: u32, reset: SystemTime) -> RateLimitHeaders {
        RateLimitHeaders { limit: Some(limit), remaining: Some(remaining), reset: Some(reset) }
    }

    #[test]
    fn buckets_follow_oktas_table() {
        assert_eq!(bucket_for(&Method::GET, "/api/v1/apps/0oa1"), "/api/v1/apps/{id}");
        assert_eq!(bucket_for(&Method::PUT, "/api/v1/apps/0oa1"), "/api/v1/apps/{id}");
        assert_eq!(bucket_for(&Method::GET, "/api/v1/apps"), "/api/v1/apps");
        assert_eq!(bucket_for(&Method::POST, "/api/v1/apps/0oa1/credentials/keys/generate"), "/api/v1/apps");
        assert_eq!(bucket_for(&Method::GET, "/api/v1/apps/0oa1/credentials/keys/k"), "/api/v1/apps");
        assert_eq!(bucket_for(&Method::POST, "/oauth2/v1/token"), "/oauth2/v1/token");
    }

    #[test]
    fn parses_headers() {
        let mut map = HeaderMap::new();
        map.insert("X-Rate-Limit-Limit", "100".parse().unwrap());
        map.insert("X-Rate-Limit-Remaining", "99".parse().unwrap());
        map.insert("X-Rate-Limit-Reset", "1700000000".parse().unwrap());
        let parsed = RateLimitHeaders::parse(&map);
        assert_eq!(parsed.limit, Some(100));
        assert_eq!(parsed.remaining, Some(99));
        assert_eq!(parsed.reset, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        assert_eq!(RateLimitHeaders::parse(&HeaderMap::new()), RateLimitHeaders::default());
    }

    #[test]
    fn probes_one_request_until_the_limit_is_known() {
        let limiter = RateLimiter::new(50);
        let now = SystemTime::now();
        assert!(matches!(limiter.decide("b", now), Decision::Go));
        assert!(matches!(limiter.decide("b", now), Decision::WaitForAnswer));
        limiter.record_answer("b", &headers(10, 9, now + Duration::from_secs(60)), 200);
        assert!(matches!(limiter.decide("b", now), Decision::Go));
    }

    #[test]
    fn never_exceeds_the_share_of_a_window() {
        let limiter = RateLimiter::new(50);
        let now = SystemTime::now();
        let reset = now + Duration::from_secs(60);
        assert!(matches!(limiter.decide("b", now), Decision::Go));
        limiter.record_answer("b", &headers(10, 9, reset), 200);
        // 50% of 10 is 5; one is already used.
        for _ in 0..4 {
            assert!(matches!(limiter.decide("b", now), Decision::Go));
        }
        match limiter.decide("b", now) {
            Decision::WaitUntil(at) => assert_eq!(at, reset + RESET_MARGIN),
            _ => panic!("expected to wait for the reset"),
        }
        // After the reset a fresh share is available.
        let later = reset + RESET_MARGIN;
        assert!(matches!(limiter.decide("b", later), Decision::Go));
        assert_eq!(limiter.status("b").unwrap().used_in_window, 1);
    }

    #[test]
    fn leaves_room_when_others_drained_the_bucket() {
        let limiter = RateLimiter::new(50);
        let now = SystemTime::now();
        let reset = now + Duration::from_secs(60);
        assert!(matches!(limiter.decide("b", now), Decision::Go));
        // Other integrations used almost everything: one request left for the whole org.
        limiter.record_answer("b", &headers(10, 1, reset), 200);
        assert!(matches!(limiter.decide("b", now), Decision::Go));
        assert!(matches!(limiter.decide("b", now), Decision::WaitUntil(_)));
    }

    #[test]
    fn a_429_blocks_until_the_reset() {
        let limiter = RateLimiter::new(50);
        let now = SystemTime::now();
        let reset = now + Duration::from_secs(3);
        assert!(matches!(limiter.decide("b", now), Decision::Go));
        limiter.record_answer("b", &headers(10, 0, reset), 429);
        match limiter.decide("b", now) {
            Decision::WaitUntil(at) => assert!(at >= reset),
            _ => panic!("expected to wait after a 429"),
        }
        assert!(matches!(limiter.decide("b", reset + RESET_MARGIN), Decision::Go));
    }

    #[test]
    fn ignores_answers_from_an_ended_window() {
        let limiter = RateLimiter::new(100);
        let start = SystemTime::now() - Duration::from_secs(10);
        let old_reset = start + Duration::from_secs(1);
        assert!(matches!(limiter.decide("b", start), Decision::Go));
        assert!(matches!(limiter.decide("b", start), Decision::WaitForAnswer));
        limiter.record_answer("b", &headers(5, 4, old_reset), 200);
        // Time has passed the reset: a new window, and a late answer of the old one changes nothing.
        assert!(matches!(limiter.decide("b", SystemTime::now()), Decision::Go));
        limiter.record_answer("b", &headers(5, 0, old_reset), 200);
        assert_eq!(limiter.status("b").unwrap().remaining, None);
        assert!(matches!(limiter.decide("b", SystemTime::now()), Decision::Go));
    }
}
