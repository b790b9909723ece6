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
