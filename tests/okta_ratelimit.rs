//! Rate limiting against the simulator: samlcred stays within `maxShare` of each bucket without
//! a single 429, waits for the reset after a 429 caused by someone else, and reports every
//! request to the metrics hook.

mod okta_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use okta_sim::{BucketLimit, OktaSim, RateLimits, SeedApp, SeedKey, SeededApp, SimConfig};
use samlcred::okta::{Auth, ErrorClass, MetricsHook, OktaClient, OktaError, OrgConfig, RequestRecord};
use url::Url;

const TOKEN: &str = "00rate-token";

#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    endpoint: String,
    status: Option<u16>,
    bucket: String,
    limit: Option<u32>,
    remaining: Option<u32>,
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Recorded>>);

impl MetricsHook for Recorder {
    fn record(&self, record: &RequestRecord<'_>) {
        self.0.lock().unwrap().push(Recorded {
            endpoint: record.endpoint.to_string(),
            status: record.status,
            bucket: record.bucket.to_string(),
            limit: record.limit,
            remaining: record.remaining,
        });
    }
}

fn limits(instance: BucketLimit) -> RateLimits {
    RateLimits { app_instance: instance, ..RateLimits::unlimited() }
}

async fn start(instance: BucketLimit) -> (OktaSim, SeededApp) {
    let sim = OktaSim::start(SimConfig { rate_limits: limits(instance), ..SimConfig::default() }).await.unwrap();
    sim.add_api_token(TOKEN);
    let now = sim.now();
    let app = sim.seed_app(SeedApp {
        id: None,
        label: "Paced".into(),
        keys: vec![SeedKey {
            not_before: now - jiff::SignedDuration::from_hours(1),
            not_after: now + jiff::SignedDuration::from_hours(24 * 60),
        }],
        active: 0,
    });
    (sim, app)
}

fn client(sim: &OktaSim, share: u8, metrics: Option<Arc<Recorder>>) -> OktaClient {
    let mut config = OrgConfig::new(Url::parse(&sim.base_url()).unwrap(), Auth::ApiToken(TOKEN.to_string().into()));
    config.allow_insecure_http = true;
    config.max_share_percent = share;
    config.retry = okta_support::retry_policy();
    config.metrics = metrics.map(|m| m as Arc<dyn MetricsHook>);
    OktaClient::new(config).unwrap()
}

#[tokio::test]
async fn concurrent_calls_stay_within_the_share_without_a_429() {
    let window = Duration::from_millis(1900);
    let (sim, app) = start(BucketLimit { limit: 10, window }).await;
    let recorder = Arc::new(Recorder::default());
    let client = client(&sim, 50, Some(recorder.clone()));

    let started = Instant::now();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let client = client.clone();
            let id = app.id.clone();
            tokio::spawn(async move { client.get_app(&id).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();

    assert!(sim.calls().iter().all(|c| c.status == 200), "no 429");
    // 50% of 10 is 5 per window: 12 calls need three windows, so at least two resets.
    assert!(elapsed >= window * 2, "{elapsed:?}");
    assert!(elapsed < window * 5, "{elapsed:?}");
    let records = recorder.0.lock().unwrap().clone();
    assert_eq!(records.len(), 12);
    for record in &records {
        assert_eq!(record.endpoint, "GET /api/v1/apps/{appId}");
        assert_eq!(record.bucket, "/api/v1/apps/{id}");
        assert_eq!(record.status, Some(200));
        assert_eq!(record.limit, Some(10));
        // Okta never saw more than half of the bucket used in any window.
        assert!(record.remaining.unwrap() >= 5, "{record:?}");
    }
    let status = client.rate_limit_status("/api/v1/apps/{id}").unwrap();
    assert_eq!(status.limit, Some(10));
}

/// Another integration of the org exhausts the bucket: the client meets a 429, waits for the
/// announced reset, and then succeeds.
#[tokio::test]
async fn a_429_from_someone_elses_traffic_waits_for_the_reset() {
    let window = Duration::from_secs(2);
    let (sim, app) = start(BucketLimit { limit: 4, window }).await;
    samlcred::okta::install_crypto_provider();
    let other = reqwest::Client::new();
    let url = format!("{}/api/v1/apps/{}", sim.base_url(), app.id);
    for _ in 0..4 {
        let answer = other.get(&url).header("authorization", format!("SSWS {TOKEN}")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
    }

    // A client that will not wait gets the typed error with the reset.
    let impatient = {
        let mut config = OrgConfig::new(Url::parse(&sim.base_url()).unwrap(), Auth::ApiToken(TOKEN.to_string().into()));
        config.allow_insecure_http = true;
        config.retry.max_rate_limit_wait = Duration::ZERO;
        OktaClient::new(config).unwrap()
    };
    let err = impatient.get_app(&app.id).await.unwrap_err();
    assert!(matches!(err, OktaError::RateLimited { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(err.error_code(), Some("E0000047"));
    assert!(err.retry_after().unwrap() <= window + Duration::from_secs(1));

    let recorder = Arc::new(Recorder::default());
    let patient = client(&sim, 50, Some(recorder.clone()));
    let fetched = patient.get_app(&app.id).await.unwrap();
    assert_eq!(fetched.id, app.id);
    let statuses: Vec<Option<u16>> = recorder.0.lock().unwrap().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(200)]);
}

// ----- bad answers never crash or hang the client -----

use okta_sim::{Fault, FaultKind, RateLimitOverride};
use okta_support::hostile::{self, LookAlike};

fn header_fault(path: &str, values: RateLimitOverride) -> Fault {
    Fault { method: None, path_prefix: path.into(), count: 1, kind: FaultKind::RateLimitHeaders(values) }
}

fn epoch_in(from_now: Duration) -> u64 {
    (std::time::SystemTime::now() + from_now).duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Whatever text Okta (or a proxy) puts in `X-Rate-Limit-*`, a call returns: no panic, no wait of
/// decades.
#[tokio::test]
async fn any_rate_limit_header_value_is_survived() {
    let (sim, app) = start(BucketLimit::per_minute(1000)).await;
    let client = client(&sim, 50, None);
    let path = format!("/api/v1/apps/{}", app.id);
    let decades = epoch_in(Duration::from_secs(40 * 365 * 86_400)).to_string();
    // Not numbers, out of every integer range, or absurd as instants ("0" is a Reset in 1970;
    // as a Remaining it would be a real figure, so it is not among these).
    let odd =
        ["18446744073709551615", "18446744073709551616", "4294967295", "-1", "-9223372036854775808", "soon", "", "1e9"];
    let epoch = RateLimitOverride { reset: Some("0".into()), ..Default::default() };
    sim.inject_fault(header_fault(&path, epoch));
    client.get_app(&app.id).await.unwrap();
    for value in odd.iter().copied().chain([decades.as_str()]) {
        for values in [
            RateLimitOverride { reset: Some(value.into()), ..Default::default() },
            RateLimitOverride { limit: Some(value.into()), ..Default::default() },
            RateLimitOverride { remaining: Some(value.into()), ..Default::default() },
            RateLimitOverride {
                limit: Some(value.into()),
                remaining: Some(value.into()),
                reset: Some(value.into()),
                refuse: false,
            },
        ] {
            sim.inject_fault(header_fault(&path, values.clone()));
            let answer = tokio::time::timeout(Duration::from_secs(10), client.get_app(&app.id)).await;
            let fetched = answer.unwrap_or_else(|_| panic!("hung after {values:?}"));
            assert_eq!(fetched.unwrap_or_else(|e| panic!("{values:?}: {e}")).id, app.id);
        }
    }
    // A 429 that claims a reset decades ahead ends the call, typed, in seconds; once Okta answers
    // normally again, so does the client.
    for value in [u64::MAX.to_string(), decades] {
        let (sim, app) = start(BucketLimit::per_minute(1000)).await;
        let client = self::client(&sim, 50, None);
        let refusal = RateLimitOverride { reset: Some(value.clone()), refuse: true, ..Default::default() };
        let mut refusals = header_fault(&format!("/api/v1/apps/{}", app.id), refusal);
        refusals.count = okta_support::retry_policy().max_attempts;
        sim.inject_fault(refusals);
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(20), client.get_app(&app.id)).await;
        let err = answer.unwrap_or_else(|_| panic!("hung after a 429 with reset {value}")).unwrap_err();
        assert!(matches!(err, OktaError::RateLimited { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
        let answer = tokio::time::timeout(Duration::from_secs(10), client.get_app(&app.id)).await;
        answer.unwrap_or_else(|_| panic!("still waiting for the reset {value}")).unwrap();
    }
}

/// A wait for Okta's reset beyond the client's limit fails the call at once with a RateLimited
/// error that says when the reset is, instead of holding the caller for ten minutes.
#[tokio::test]
async fn a_pacing_wait_beyond_the_limit_fails_at_once_with_the_reset() {
    let (sim, app) = start(BucketLimit::per_minute(1000)).await;
    let client = client(&sim, 50, None);
    let path = format!("/api/v1/apps/{}", app.id);
    // Okta says the bucket is spent until ten minutes from now.
    let reset = epoch_in(Duration::from_secs(600)).to_string();
    let spent = RateLimitOverride { remaining: Some("0".into()), reset: Some(reset.clone()), ..Default::default() };
    sim.inject_fault(header_fault(&path, spent));
    client.get_app(&app.id).await.unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), client.get_app(&app.id)).await;
    let err = answer.expect("the client waited for the reset instead of failing").unwrap_err();
    assert!(matches!(err, OktaError::RateLimited { .. }), "{err}");
    let wait = err.retry_after().unwrap();
    assert!(wait > Duration::from_secs(590) && wait <= Duration::from_secs(601), "{wait:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(sim.calls().len(), 1, "nothing sent while the bucket is spent");

    // The same after a 429 that announces a reset half an hour ahead: every later call fails fast.
    let (sim, app) = start(BucketLimit::per_minute(1000)).await;
    let client = self::client(&sim, 50, None);
    let path = format!("/api/v1/apps/{}", app.id);
    let refusal = RateLimitOverride {
        reset: Some(epoch_in(Duration::from_secs(1800)).to_string()),
        refuse: true,
        ..Default::default()
    };
    sim.inject_fault(header_fault(&path, refusal));
    let err = client.get_app(&app.id).await.unwrap_err();
    assert!(matches!(err, OktaError::RateLimited { .. }), "{err}");
    let answer = tokio::time::timeout(Duration::from_secs(10), client.get_app(&app.id)).await;
    let err = answer.expect("the client waited half an hour").unwrap_err();
    assert!(err.retry_after().unwrap() > Duration::from_secs(1700), "{err}");
    assert_eq!(sim.calls().len(), 1);
}

/// Okta's clock is 90 s behind ours, so every `X-Rate-Limit-Reset` looks 90 s past. Corrected by
/// the `Date` of the answer, the windows still hold at most the share.
#[tokio::test]
async fn a_skewed_okta_clock_keeps_the_share() {
    let config = LookAlike { limit: 10, window_secs: 3, skew_secs: -90, concurrency_refusal_every: None };
    let (base, seen) = hostile::look_alike(config).await;
    let client = client_for(&base, 50, 3);
    let started = Instant::now();
    let calls: Vec<_> = (0..15)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.verify_credentials().await })
        })
        .collect();
    for call in calls {
        tokio::time::timeout(Duration::from_secs(30), call).await.expect("hung").unwrap().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let windows = hostile::per_window(&seen);
    eprintln!("skew -90s, limit 10, share 50%: per window {windows:?} in {:?}", started.elapsed());
    assert!(windows.iter().all(|(_, n)| *n <= 5), "more than 5 requests in a window: {windows:?}");
    assert!(seen.iter().all(|s| s.status == 200), "{seen:?}");
}

/// Okta's concurrency limit refuses some requests with a 429 whose headers describe that limit
/// (Limit 75, a Remaining of 0 or not, a reset a second away). The bucket's share still holds.
#[tokio::test]
async fn concurrency_429s_keep_the_share() {
    let config = LookAlike { limit: 10, window_secs: 3, skew_secs: 0, concurrency_refusal_every: Some(4) };
    let (base, seen) = hostile::look_alike(config).await;
    let client = client_for(&base, 50, 6);
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.verify_credentials().await })
        })
        .collect();
    for call in calls {
        tokio::time::timeout(Duration::from_secs(60), call).await.expect("hung").unwrap().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let windows = hostile::per_window(&seen);
    eprintln!("concurrency 429 every 4th request, limit 10, share 50%: per window {windows:?}");
    assert!(seen.iter().any(|s| s.status == 429), "no concurrency refusal happened: {seen:?}");
    assert!(windows.iter().all(|(_, n)| *n <= 5), "more than 5 requests in a window: {windows:?}");
}

fn client_for(base: &str, share: u8, attempts: u32) -> OktaClient {
    let mut config = OrgConfig::new(Url::parse(base).unwrap(), Auth::ApiToken(TOKEN.to_string().into()));
    config.allow_insecure_http = true;
    config.max_share_percent = share;
    config.retry = okta_support::retry_policy();
    config.retry.max_attempts = attempts;
    OktaClient::new(config).unwrap()
}

/// Calls dropped while their request is in flight give their slot back: nothing is left in
/// flight, and the next call is not stuck behind a probe that will never answer.
#[tokio::test]
async fn cancelled_calls_leave_nothing_in_flight() {
    let (sim, app) = start(BucketLimit::per_minute(1000)).await;
    let client = client(&sim, 50, None);
    let path = format!("/api/v1/apps/{}", app.id);
    sim.inject_fault(Fault {
        method: None,
        path_prefix: path,
        count: 1,
        kind: FaultKind::Latency(Duration::from_secs(5)),
    });
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let id = app.id.clone();
            tokio::spawn(async move { client.get_app(&id).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for call in &calls {
        call.abort();
    }
    for call in calls {
        assert!(call.await.unwrap_err().is_cancelled());
    }
    let answer = tokio::time::timeout(Duration::from_secs(3), client.get_app(&app.id)).await;
    answer.expect("the next call waits for an answer to a cancelled request").unwrap();
    assert_eq!(client.rate_limit_status("/api/v1/apps/{id}").unwrap().in_flight, 0);
}
