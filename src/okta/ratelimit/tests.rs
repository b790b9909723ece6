//! The limiter's decisions, step by step, without a server.

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

#[test]
fn a_concurrency_429_pauses_without_teaching_the_window() {
    let limiter = RateLimiter::new(50);
    let now = SystemTime::now();
    let reset = now + Duration::from_secs(60);
    assert!(matches!(limiter.decide("b", now), Decision::Go));
    limiter.record_answer("b", &headers(10, 9, reset), 200);
    assert!(matches!(limiter.decide("b", now), Decision::Go));
    // The concurrency limit's own figures: Limit 75, room left, a reset a second away.
    let soon = now + Duration::from_secs(1);
    limiter.record_answer("b", &headers(75, 74, soon), 429);
    match limiter.decide("b", now) {
        Decision::WaitUntil(at) => assert_eq!(at, soon + RESET_MARGIN),
        _ => panic!("expected a pause after the 429"),
    }
    let status = limiter.status("b").unwrap();
    assert_eq!((status.limit, status.used_in_window), (Some(10), 2), "the window and its count stay");
    // After the pause the same window goes on: three more, not a fresh five.
    let later = soon + RESET_MARGIN;
    for _ in 0..3 {
        assert!(matches!(limiter.decide("b", later), Decision::Go));
    }
    assert!(matches!(limiter.decide("b", later), Decision::WaitUntil(at) if at == reset + RESET_MARGIN));
}

#[test]
fn a_bucket_429_holds_until_its_reset() {
    let limiter = RateLimiter::new(50);
    let now = SystemTime::now();
    assert!(matches!(limiter.decide("b", now), Decision::Go));
    limiter.record_answer("b", &headers(10, 9, now + Duration::from_secs(5)), 200);
    assert!(matches!(limiter.decide("b", now), Decision::Go));
    // Others spent the bucket, and Okta's window rolled: the 429 names a later reset.
    let rolled = now + Duration::from_secs(8);
    limiter.record_answer("b", &headers(10, 0, rolled), 429);
    let just_after_first_reset = now + Duration::from_secs(6);
    assert!(
        matches!(limiter.decide("b", just_after_first_reset), Decision::WaitUntil(at) if at == rolled + RESET_MARGIN)
    );
    assert!(matches!(limiter.decide("b", rolled + RESET_MARGIN), Decision::Go));
}

#[test]
fn a_429_without_a_limit_known_keeps_probing() {
    let limiter = RateLimiter::new(50);
    let now = SystemTime::now();
    assert!(matches!(limiter.decide("b", now), Decision::Go));
    limiter.record_answer("b", &headers(75, 0, now + Duration::from_secs(1)), 429);
    assert_eq!(limiter.status("b").unwrap().limit, None);
    let later = now + Duration::from_secs(1) + RESET_MARGIN;
    assert!(matches!(limiter.decide("b", later), Decision::Go));
    assert!(matches!(limiter.decide("b", later), Decision::WaitForAnswer));
}

#[test]
fn the_share_of_a_huge_limit_does_not_overflow() {
    let limiter = RateLimiter::new(100);
    assert_eq!(limiter.allowed_per_window(u32::MAX), u32::MAX);
    assert_eq!(RateLimiter::new(50).allowed_per_window(u32::MAX), u32::MAX / 2);
    assert_eq!(RateLimiter::new(50).allowed_per_window(1), 1);
}

#[tokio::test]
async fn a_dropped_permit_settles_as_a_failure() {
    let limiter = RateLimiter::new(50);
    let permit = limiter.acquire("b", Duration::ZERO).await.unwrap();
    assert_eq!(limiter.status("b").unwrap().in_flight, 1);
    drop(permit);
    assert_eq!(limiter.status("b").unwrap().in_flight, 0);
    // The probe's slot is free again.
    let permit = limiter.acquire("b", Duration::ZERO).await.unwrap();
    permit.answered(&headers(10, 9, SystemTime::now() + Duration::from_secs(60)), 200);
    assert_eq!(limiter.status("b").unwrap().in_flight, 0);

    // A waiter cancelled in the middle of its wait holds nothing either.
    let waiting = tokio::time::timeout(Duration::from_millis(50), async {
        let _first = limiter.acquire("c", Duration::ZERO).await.unwrap();
        limiter.acquire("c", Duration::from_secs(60)).await.map(drop)
    });
    assert!(waiting.await.is_err());
    assert_eq!(limiter.status("c").unwrap().in_flight, 0);
}

#[tokio::test]
async fn a_wait_beyond_the_limit_is_refused_with_the_reset() {
    let limiter = RateLimiter::new(50);
    let reset = SystemTime::now() + Duration::from_secs(600);
    limiter.acquire("b", Duration::ZERO).await.unwrap().answered(&headers(10, 0, reset), 200);
    let started = std::time::Instant::now();
    let err = limiter.acquire("b", Duration::from_secs(120)).await.map(drop).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(100));
    let wait = err.retry_after().unwrap();
    assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(601), "{wait:?}");
    assert_eq!(err.kind(), "RateLimited");
    assert_eq!(limiter.status("b").unwrap().used_in_window, 1, "a refused wait sends nothing");
}
