//! Okta's per-minute rate limit buckets and its concurrent-request limit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{BucketLimit, RateLimits};

/// The buckets the simulated endpoints fall into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// `/api/v1/apps*`: everything under `/api/v1/apps` except the instance itself.
    AppsCollection,
    /// `/api/v1/apps/{id}` exactly.
    AppInstance,
    /// `/oauth2/v1/token`.
    Token,
    /// Paths Okta would count under "most other API actions"; nothing is served there.
    Other,
}

/// What a request learns from its bucket, and reports in the `X-Rate-Limit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// UTC epoch second at which the window resets.
    pub reset: u64,
}

#[derive(Debug)]
struct Window {
    limit: BucketLimit,
    started: Option<Instant>,
    used: u32,
}

impl Window {
    fn new(limit: BucketLimit) -> Self {
        Window { limit, started: None, used: 0 }
    }

    fn admit(&mut self, now: Instant) -> Verdict {
        let started = match self.started {
            Some(s) if now.duration_since(s) < self.limit.window => s,
            _ => {
                self.used = 0;
                self.started = Some(now);
                now
            }
        };
        let allowed = self.used < self.limit.limit;
        if allowed {
            self.used += 1;
        }
        let left = self.limit.window.saturating_sub(now.duration_since(started));
        Verdict {
            allowed,
            limit: self.limit.limit,
            remaining: self.limit.limit.saturating_sub(self.used),
            reset: epoch_seconds_after(left),
        }
    }
}

/// Okta's reset is a whole epoch second; round up so a client waiting until then is never early.
fn epoch_seconds_after(left: Duration) -> u64 {
    let at = SystemTime::now() + left;
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

#[derive(Debug)]
pub struct RateLimiter {
    windows: Mutex<[Window; 4]>,
}

/// "Most other API actions" (Okta: 1,200 per minute for Workforce Identity).
const OTHER: BucketLimit = BucketLimit { limit: 1200, window: Duration::from_secs(60) };

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        RateLimiter { windows: Mutex::new(Self::windows(limits)) }
    }

    fn windows(limits: RateLimits) -> [Window; 4] {
        [
            Window::new(limits.apps_collection),
            Window::new(limits.app_instance),
            Window::new(limits.token),
            Window::new(OTHER),
        ]
    }

    /// Counts one request against `bucket` (a refused request is not counted).
    pub fn admit(&self, bucket: Bucket) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows[bucket as usize].admit(Instant::now())
    }

    /// New limits; every window starts afresh.
    pub fn set_limits(&self, limits: RateLimits) {
        *self.windows.lock().unwrap_or_else(|e| e.into_inner()) = Self::windows(limits);
    }

    pub fn limits(&self) -> RateLimits {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        RateLimits { apps_collection: windows[0].limit, app_instance: windows[1].limit, token: windows[2].limit }
    }
}

/// Okta's concurrent-request limit: requests beyond it are refused at once, not queued.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    limit: AtomicUsize,
    in_flight: AtomicUsize,
}

/// Holds one request slot; the slot frees when dropped.
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ConcurrencyLimit {
    pub fn new(limit: usize) -> Self {
        ConcurrencyLimit { limit: AtomicUsize::new(limit), in_flight: AtomicUsize::new(0) }
    }

    pub fn try_enter(&self) -> Option<Slot<'_>> {
        let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(&self.in_flight);
        (before < self.limit.load(Ordering::SeqCst)).then_some(slot)
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_its_limit_then_refuses_until_it_resets() {
        let mut w = Window::new(BucketLimit { limit: 2, window: Duration::from_secs(60) });
        let t0 = Instant::now();
        assert_eq!((w.admit(t0).allowed, w.admit(t0).remaining), (true, 0));
        let refused = w.admit(t0 + Duration::from_secs(59));
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        let next = w.admit(t0 + Duration::from_secs(60));
        assert!(next.allowed);
        assert_eq!(next.remaining, 1);
    }

    #[test]
    fn buckets_are_counted_separately() {
        let limits = RateLimits {
            apps_collection: BucketLimit::per_minute(1),
            app_instance: BucketLimit::per_minute(1),
            token: BucketLimit::per_minute(1),
        };
        let limiter = RateLimiter::new(limits);
        assert!(limiter.admit(Bucket::AppsCollection).allowed);
        assert!(!limiter.admit(Bucket::AppsCollection).allowed);
        assert!(limiter.admit(Bucket::AppInstance).allowed);
        assert!(limiter.admit(Bucket::Token).allowed);
    }

    #[test]
    fn concurrency_slots_are_released_on_drop() {
        let limit = ConcurrencyLimit::new(1);
        let first = limit.try_enter();
        assert!(first.is_some());
        assert!(limit.try_enter().is_none());
        drop(first);
        assert!(limit.try_enter().is_some());
        assert_eq!(limit.in_flight(), 0);
    }
}
