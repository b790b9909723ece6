//! Reading `X-Rate-Limit-*` defensively: the values come from the network, so anything that is not
//! a plausible figure is treated as absent, never trusted and never allowed to overflow.
//!
//! Two corrections make `X-Rate-Limit-Reset` usable:
//! - **Clock skew.** Reset is an instant on Okta's clock. The answer's `Date` tells Okta's clock at
//!   the same moment, so the difference to ours moves Reset onto our clock. Both headers are whole
//!   seconds, so differences under [`SKEW_TOLERANCE`] are rounding, not skew, and are left alone;
//!   beyond it the offset is rounded so that the corrected reset is never earlier than the true
//!   one (late costs a fraction of a second, early would count a request in a spent window).
//! - **Plausibility.** Okta's API buckets are counted per minute; a reset more than
//!   [`MAX_RESET_AHEAD`] away (after the correction) is taken as unknown rather than as an order
//!   to wait for hours or decades. The limiter then falls back to its cautious defaults.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

/// Resets further ahead than this are not believed.
pub const MAX_RESET_AHEAD: Duration = Duration::from_secs(3600);

/// Clock differences smaller than this are the whole-second rounding of `Date` and `Reset`.
pub const SKEW_TOLERANCE: Duration = Duration::from_secs(2);

/// What the headers of one answer said, in our clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// Okta's `X-Rate-Limit-Reset` moved onto our clock; `None` when absent or implausible.
    pub reset: Option<SystemTime>,
}

impl RateLimitHeaders {
    /// Reads the headers of an answer received at `now`.
    pub fn parse(headers: &HeaderMap, now: SystemTime) -> RateLimitHeaders {
        let number = |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let reset = number("x-rate-limit-reset")
            .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
            .and_then(|reset| shift(reset, -okta_clock_offset(headers, now)))
            .filter(|reset| reset.duration_since(now).ok().is_none_or(|ahead| ahead <= MAX_RESET_AHEAD));
        RateLimitHeaders {
            limit: number("x-rate-limit-limit").and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0),
            remaining: number("x-rate-limit-remaining").and_then(|v| u32::try_from(v).ok()),
            reset,
        }
    }

    /// Time from now until the reset (zero when it is past or unknown).
    pub fn reset_after(&self) -> Duration {
        self.reset.and_then(|reset| reset.duration_since(SystemTime::now()).ok()).unwrap_or_default()
    }
}

/// Okta's clock minus ours, in whole seconds, rounded down so that subtracting it from a reset
/// errs late; 0 without a readable `Date` or within the tolerance.
fn okta_clock_offset(headers: &HeaderMap, now: SystemTime) -> i64 {
    let Some(date) = headers.get(http::header::DATE).and_then(|v| v.to_str().ok()) else {
        return 0;
    };
    let parsed = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(date.trim());
    let (Ok(okta), Ok(ours)) = (parsed, jiff::Timestamp::try_from(now)) else {
        return 0;
    };
    let offset = okta.duration_since(ours);
    if offset.unsigned_abs() < SKEW_TOLERANCE {
        return 0;
    }
    // Date is Okta's clock floored to the second, so the true offset lies in [offset, offset + 1s):
    // flooring keeps the correction from pulling a reset earlier than it is.
    offset.as_secs() - i64::from(offset.subsec_nanos() < 0)
}

fn shift(at: SystemTime, secs: i64) -> Option<SystemTime> {
    let by = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 { at.checked_add(by) } else { at.checked_sub(by) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn http_date(at: SystemTime) -> String {
        let at = jiff::Timestamp::try_from(at).unwrap();
        jiff::fmt::rfc2822::DateTimePrinter::new().timestamp_to_rfc9110_string(&at).unwrap()
    }

    #[test]
    fn parses_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_699_999_990);
        let headers = map(&[
            ("X-Rate-Limit-Limit", "100"),
            ("X-Rate-Limit-Remaining", "99"),
            ("X-Rate-Limit-Reset", "1700000000"),
        ]);
        let parsed = RateLimitHeaders::parse(&headers, now);
        assert_eq!(parsed.limit, Some(100));
        assert_eq!(parsed.remaining, Some(99));
        assert_eq!(parsed.reset, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        assert_eq!(RateLimitHeaders::parse(&HeaderMap::new(), now), RateLimitHeaders::default());
    }

    #[test]
    fn nonsense_is_absent_never_a_panic() {
        let now = SystemTime::now();
        let decades = (now + Duration::from_secs(40 * 365 * 86_400)).duration_since(UNIX_EPOCH).unwrap().as_secs();
        let decades = decades.to_string();
        for value in ["18446744073709551615", "18446744073709551616", "-1", "soon", "", " ", "1e9", "0x10", &decades] {
            let headers = map(&[
                ("x-rate-limit-limit", value),
                ("x-rate-limit-remaining", value),
                ("x-rate-limit-reset", value),
                ("date", value),
            ]);
            let parsed = RateLimitHeaders::parse(&headers, now);
            assert!(parsed.reset.is_none(), "{value}: {parsed:?}");
            assert!(parsed.limit.is_none() || value == decades, "{value}: {parsed:?}");
            assert_eq!(parsed.reset_after(), Duration::ZERO);
        }
        // A limit of 0 would mean nothing may ever be sent: not a figure to pace by.
        assert_eq!(RateLimitHeaders::parse(&map(&[("x-rate-limit-limit", "0")]), now).limit, None);
        // A reset in the past is kept: it says the window is over.
        let past = RateLimitHeaders::parse(&map(&[("x-rate-limit-reset", "0")]), now);
        assert_eq!(past.reset, Some(UNIX_EPOCH));
    }

    #[test]
    fn resets_are_moved_onto_our_clock() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_300);
        // Okta's clock is 90 s behind: its reset 10 s ahead of its own now is 10 s ahead of ours.
        let okta_now = now - Duration::from_secs(90);
        let okta_reset = (okta_now + Duration::from_secs(10)).duration_since(UNIX_EPOCH).unwrap().as_secs();
        let headers = map(&[("date", &http_date(okta_now)), ("x-rate-limit-reset", &okta_reset.to_string())]);
        let reset = RateLimitHeaders::parse(&headers, now).reset.unwrap();
        let ahead = reset.duration_since(now).unwrap();
        assert!(ahead >= Duration::from_millis(9_700) && ahead <= Duration::from_secs(11), "{ahead:?}");

        // Okta 90 s ahead: the reset 10 s ahead of its clock is 10 s ahead of ours too.
        let okta_now = now + Duration::from_secs(90);
        let okta_reset = (okta_now + Duration::from_secs(10)).duration_since(UNIX_EPOCH).unwrap().as_secs();
        let headers = map(&[("date", &http_date(okta_now)), ("x-rate-limit-reset", &okta_reset.to_string())]);
        let ahead = RateLimitHeaders::parse(&headers, now).reset.unwrap().duration_since(now).unwrap();
        assert!(ahead >= Duration::from_millis(9_700) && ahead <= Duration::from_secs(11), "{ahead:?}");

        // Within the tolerance, Reset is taken as it is.
        let headers = map(&[("date", &http_date(now)), ("x-rate-limit-reset", "1700000010")]);
        assert_eq!(RateLimitHeaders::parse(&headers, now).reset, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_010)));
    }

    #[test]
    fn a_reset_hours_ahead_is_unknown() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_an_hour = map(&[("x-rate-limit-reset", "1700003600")]);
        assert!(RateLimitHeaders::parse(&in_an_hour, now).reset.is_some());
        let later = map(&[("x-rate-limit-reset", "1700003601")]);
        assert_eq!(RateLimitHeaders::parse(&later, now).reset, None);
    }
}
