//! Rate limits, the concurrency limit, injected faults, and the HTTP control API.

mod common;

use std::time::Duration;

use common::*;
use okta_sim::{BucketLimit, Fault, FaultKind, RateLimits, SimConfig};
use serde_json::json;

fn limits(collection: u32, instance: u32, window: Duration) -> RateLimits {
    RateLimits {
        apps_collection: BucketLimit { limit: collection, window },
        app_instance: BucketLimit { limit: instance, window },
        token: BucketLimit { limit: 100, window },
    }
}

fn header_u64(response: &reqwest::Response, name: &str) -> u64 {
    response.headers().get(name).unwrap_or_else(|| panic!("{name} missing")).to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn every_answer_carries_rate_limit_headers_and_429_follows_the_limit() {
    let sim =
        start_with(SimConfig { rate_limits: limits(3, 5, Duration::from_secs(60)), ..SimConfig::default() }).await;
    let app = seed(&sim, "App", 0);
    let http = client();
    let keys = format!("{}/api/v1/apps/{}/credentials/keys", sim.base_url(), app.id);
    let now = jiff::Timestamp::now().as_second().unsigned_abs();
    for expected_remaining in [2, 1, 0] {
        let response = ssws(http.get(&keys)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(header_u64(&response, "x-rate-limit-limit"), 3);
        assert_eq!(header_u64(&response, "x-rate-limit-remaining"), expected_remaining);
        let reset = header_u64(&response, "x-rate-limit-reset");
        assert!(reset >= now + 59 && reset <= now + 62, "reset {reset} vs now {now}");
    }
    let refused = ssws(http.get(&keys)).send().await.unwrap();
    assert_eq!(header_u64(&refused, "x-rate-limit-remaining"), 0);
    let error = expect_okta_error(refused, 429, "E0000047").await;
    assert_eq!(error["errorSummary"], "API call exceeded rate limit due to too many requests.");
    // Even an unauthenticated answer counts and is limited: the limiter runs first.
    let anonymous = http.get(&keys).send().await.unwrap();
    assert_eq!(anonymous.status(), 429);

    // /api/v1/apps/{id} is a bucket of its own, and errors carry headers too.
    let instance = ssws(http.get(format!("{}/api/v1/apps/{}", sim.base_url(), app.id))).send().await.unwrap();
    assert_eq!(instance.status(), 200);
    assert_eq!(header_u64(&instance, "x-rate-limit-limit"), 5);
    assert_eq!(header_u64(&instance, "x-rate-limit-remaining"), 4);
    let missing = ssws(http.get(format!("{}/api/v1/apps/0oamissing", sim.base_url()))).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(header_u64(&missing, "x-rate-limit-remaining"), 3);
}

#[tokio::test]
async fn a_short_window_refills_the_bucket() {
    let window = Duration::from_millis(300);
    let sim = start_with(SimConfig { rate_limits: limits(2, 2, window), ..SimConfig::default() }).await;
    let http = client();
    let url = format!("{}/api/v1/apps", sim.base_url());
    let started = std::time::Instant::now();
    assert_eq!(ssws(http.get(&url)).send().await.unwrap().status(), 200);
    assert_eq!(ssws(http.get(&url)).send().await.unwrap().status(), 200);
    assert_eq!(ssws(http.get(&url)).send().await.unwrap().status(), 429);
    // The window is what is under test here: wait it out, then the bucket is full again.
    tokio::time::sleep(window.saturating_sub(started.elapsed()) + Duration::from_millis(20)).await;
    let again = ssws(http.get(&url)).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(header_u64(&again, "x-rate-limit-remaining"), 1);

    // Limits can change at run time.
    sim.set_rate_limits(limits(1, 1, Duration::from_secs(60)));
    assert_eq!(ssws(http.get(&url)).send().await.unwrap().status(), 200);
    assert_eq!(ssws(http.get(&url)).send().await.unwrap().status(), 429);
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_are_refused_at_once() {
    let sim =
        start_with(SimConfig { concurrency_limit: 1, rate_limits: RateLimits::unlimited(), ..SimConfig::default() })
            .await;
    let http = client();
    let url = format!("{}/api/v1/apps", sim.base_url());
    sim.inject_fault(Fault {
        method: None,
        path_prefix: "/api/v1/apps".into(),
        count: 1,
        kind: FaultKind::Latency(Duration::from_millis(1500)),
    });
    let slow = tokio::spawn(ssws(http.get(&url)).send());
    // Wait until the slow call holds the only slot.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.in_flight() == 0 {
        assert!(std::time::Instant::now() < deadline, "the slow call never arrived");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = ssws(http.get(&url)).send().await.unwrap();
    assert_eq!(header_u64(&refused, "x-rate-limit-limit"), 1, "the concurrency limit");
    assert_eq!(header_u64(&refused, "x-rate-limit-remaining"), 0);
    expect_okta_error(refused, 429, "E0000047").await;
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);
    assert_eq!(ssws(http.get(&url)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn status_faults_answer_instead_of_okta_for_the_next_n_calls() {
    let sim = start().await;
    let app = seed(&sim, "App", 0);
    let http = client();
    let generate = format!("{}/api/v1/apps/{}/credentials/keys/generate?validityYears=2", sim.base_url(), app.id);
    sim.inject_fault(Fault {
        method: Some(http::Method::POST),
        path_prefix: format!("/api/v1/apps/{}/credentials/keys/generate", app.id),
        count: 2,
        kind: FaultKind::Status { status: 503, error_code: "E0000009".into(), summary: "Service Unavailable".into() },
    });
    for _ in 0..2 {
        let response = ssws(http.post(&generate)).send().await.unwrap();
        let error = expect_okta_error(response, 503, "E0000009").await;
        assert_eq!(error["errorSummary"], "Service Unavailable");
    }
    assert!(sim.keys(&app.id).is_empty(), "a status fault does not carry the call out");
    assert_eq!(ssws(http.post(&generate)).send().await.unwrap().status(), 201);
    let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [503, 503, 201]);
}

#[tokio::test]
async fn rate_limit_header_faults_send_any_text_and_may_refuse() {
    let sim = start().await;
    let app = seed(&sim, "App", 0);
    let http = client();
    let url = format!("{}/api/v1/apps/{}", sim.base_url(), app.id);
    let values = okta_sim::RateLimitOverride {
        limit: Some("-3".into()),
        remaining: Some("lots".into()),
        reset: Some(u64::MAX.to_string()),
        refuse: false,
    };
    sim.inject_fault(Fault {
        method: None,
        path_prefix: "/api/v1/apps/".into(),
        count: 1,
        kind: FaultKind::RateLimitHeaders(values),
    });
    let odd = ssws(http.get(&url)).send().await.unwrap();
    assert_eq!(odd.status(), 200, "the call is carried out");
    let header = |r: &reqwest::Response, name: &str| r.headers()[name].to_str().unwrap().to_string();
    assert_eq!(header(&odd, "x-rate-limit-limit"), "-3");
    assert_eq!(header(&odd, "x-rate-limit-remaining"), "lots");
    assert_eq!(header(&odd, "x-rate-limit-reset"), "18446744073709551615");

    // Only the values given are replaced; with refuse the answer is Okta's 429.
    let values = okta_sim::RateLimitOverride { reset: Some("0".into()), refuse: true, ..Default::default() };
    sim.inject_fault(Fault {
        method: None,
        path_prefix: "/api/v1/apps/".into(),
        count: 1,
        kind: FaultKind::RateLimitHeaders(values),
    });
    let refused = ssws(http.get(&url)).send().await.unwrap();
    assert_eq!(header(&refused, "x-rate-limit-reset"), "0");
    assert!(header(&refused, "x-rate-limit-limit").parse::<u32>().is_ok());
    expect_okta_error(refused, 429, "E0000047").await;
    assert_eq!(ssws(http.get(&url)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn spoiling_faults_carry_the_call_out_and_lose_the_answer() {
    let sim = start().await;
    let app = seed(&sim, "App", 0);
    let http = client();
    let generate = format!("{}/api/v1/apps/{}/credentials/keys/generate?validityYears=2", sim.base_url(), app.id);
    let fault = |kind| Fault { method: Some(http::Method::POST), path_prefix: "/api/v1/apps/".into(), count: 1, kind };

    sim.inject_fault(fault(FaultKind::TruncatedBody));
    let truncated = ssws(http.post(&generate)).send().await.unwrap();
    assert_eq!(truncated.status(), 201);
    let announced = truncated.content_length().expect("Content-Length");
    let body = truncated.bytes().await;
    assert!(body.is_err(), "the body ends early: {body:?} (announced {announced} bytes)");

    sim.inject_fault(fault(FaultKind::NonJsonBody));
    let html = ssws(http.post(&generate)).send().await.unwrap();
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.text().await.unwrap().starts_with("<html>"));

    sim.inject_fault(fault(FaultKind::ConnectionReset));
    let reset = ssws(http.post(&generate)).send().await;
    assert!(reset.is_err(), "the connection was reset: {reset:?}");

    // All three generates happened in Okta, though no client saw a usable answer.
    assert_eq!(sim.keys(&app.id).len(), 3);
    let statuses: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [201, 201, 0]);
    // The simulator still serves after a reset.
    assert_eq!(
        ssws(http.get(format!("{}/api/v1/apps/{}", sim.base_url(), app.id))).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn the_control_api_does_over_http_what_the_library_does() {
    let sim = start().await;
    let http = client();
    let base = sim.base_url();
    let control = |path: &str| format!("{base}/__sim{path}");

    let health = json_of(http.get(control("/health")).send().await.unwrap()).await;
    assert_eq!(health["base_url"], base.as_str());
    assert_eq!(http.post(control("/api-tokens")).json(&json!({"token": "demo"})).send().await.unwrap().status(), 204);

    let now = sim.now();
    let seeded = http
        .post(control("/apps"))
        .json(&json!({
            "label": "Demo",
            "keys": [
                {"not_before": (now - days(300)).to_string(), "not_after": (now + days(65)).to_string()},
                {"not_before": now.to_string(), "not_after": (now + days(730)).to_string()}
            ],
            "active": 0
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 201);
    let seeded = json_of(seeded).await;
    let id = seeded["id"].as_str().unwrap().to_string();
    let kids: Vec<String> =
        seeded["kids"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    assert_eq!(sim.active_kid(&id).as_deref(), Some(kids[0].as_str()));

    let app = http.get(format!("{base}/api/v1/apps/{id}")).header("Authorization", "SSWS demo").send().await.unwrap();
    assert_eq!(app.status(), 200);

    let put = http.put(control(&format!("/apps/{id}/active-kid"))).json(&json!({"kid": kids[1]})).send().await.unwrap();
    assert_eq!(put.status(), 204);
    let active = json_of(http.get(control(&format!("/apps/{id}/active-kid"))).send().await.unwrap()).await;
    assert_eq!(active["kid"], kids[1].as_str());
    let bad = http.put(control(&format!("/apps/{id}/active-kid"))).json(&json!({"kid": "nope"})).send().await.unwrap();
    assert_eq!(bad.status(), 404);

    let added = http
        .post(control(&format!("/apps/{id}/keys")))
        .json(&json!({"not_before": now.to_string(), "not_after": (now + days(10)).to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let keys = json_of(http.get(control(&format!("/apps/{id}/keys"))).send().await.unwrap()).await;
    assert_eq!(keys.as_array().unwrap().len(), 3);
    let backwards = http
        .post(control(&format!("/apps/{id}/keys")))
        .json(&json!({"not_before": now.to_string(), "not_after": now.to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(backwards.status(), 400);

    let advanced =
        json_of(http.post(control("/clock/advance")).json(&json!({"seconds": 86400})).send().await.unwrap()).await;
    let advanced: jiff::Timestamp = advanced["now"].as_str().unwrap().parse().unwrap();
    assert!(advanced >= now + days(1));

    let fault = json!({"method": "GET", "path_prefix": "/api/v1/apps", "count": 1,
                       "kind": {"type": "status", "value": {"status": 500, "error_code": "E0000009", "summary": "Internal Server Error"}}});
    assert_eq!(http.post(control("/faults")).json(&fault).send().await.unwrap().status(), 204);
    let failed =
        http.get(format!("{base}/api/v1/apps/{id}")).header("Authorization", "SSWS demo").send().await.unwrap();
    let error = expect_okta_error(failed, 500, "E0000009").await;
    assert_eq!(error["errorLink"], "E0000000");
    let latency = json!({"path_prefix": "/api", "count": 1, "kind": {"type": "latency", "value": 10}});
    assert_eq!(http.post(control("/faults")).json(&latency).send().await.unwrap().status(), 204);

    let limits = json!({"apps_collection": {"limit": 7, "window": 1000}, "app_instance": {"limit": 8, "window": 1000}, "token": {"limit": 9, "window": 1000}});
    assert_eq!(http.put(control("/rate-limits")).json(&limits).send().await.unwrap().status(), 204);
    assert_eq!(json_of(http.get(control("/rate-limits")).send().await.unwrap()).await, limits);

    let calls = json_of(http.get(control("/calls")).send().await.unwrap()).await;
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 2, "control calls are not logged: {calls:?}");
    assert_eq!((calls[0]["status"].as_u64(), calls[1]["status"].as_u64()), (Some(200), Some(500)));
    assert_eq!(calls[0]["auth"], "SSWS");

    assert_eq!(http.delete(control(&format!("/apps/{id}"))).send().await.unwrap().status(), 204);
    assert_eq!(http.delete(control(&format!("/apps/{id}"))).send().await.unwrap().status(), 404);
    assert_eq!(http.post(control("/reset")).send().await.unwrap().status(), 204);
    assert!(sim.calls().is_empty());
    assert!(sim.now() < advanced, "the clock is back to real time");
    let after_reset =
        http.get(format!("{base}/api/v1/apps")).header("Authorization", "SSWS demo").send().await.unwrap();
    assert_eq!(after_reset.status(), 401, "tokens are forgotten");
}

#[tokio::test]
async fn a_delayed_call_is_carried_out_even_when_the_client_gives_up() {
    let sim = start().await;
    let app = seed(&sim, "App", 0);
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap();
    let generate = format!("{}/api/v1/apps/{}/credentials/keys/generate?validityYears=2", sim.base_url(), app.id);
    sim.inject_fault(Fault {
        method: Some(http::Method::POST),
        path_prefix: "/api/v1/apps/".into(),
        count: 1,
        kind: FaultKind::Latency(Duration::from_millis(600)),
    });
    let gave_up = ssws(impatient.post(&generate)).send().await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()));
    // Wait (bounded) for the simulator to finish the call it was given.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sim.calls().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the delayed call never completed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.calls()[0].status, 201);
    assert_eq!(sim.keys(&app.id).len(), 1, "Okta generated the key all the same");
}

#[tokio::test]
async fn the_token_endpoint_has_its_own_bucket() {
    let window = Duration::from_secs(60);
    let rate_limits = RateLimits {
        apps_collection: BucketLimit { limit: 100, window },
        app_instance: BucketLimit { limit: 100, window },
        token: BucketLimit { limit: 1, window },
    };
    let sim = start_with(SimConfig { rate_limits, ..SimConfig::default() }).await;
    let key = ClientKey::ec();
    sim.add_oauth_client(okta_sim::OAuthClient {
        client_id: "0oac".into(),
        public_jwk: key.public_jwk.clone(),
        scopes: vec!["okta.apps.read".into()],
        require_dpop: false,
    });
    let http = client();
    let token_url = format!("{}/oauth2/v1/token", sim.base_url());
    let first = token_request(&http, &sim.base_url(), &key.assertion("0oac", &token_url), "okta.apps.read", None).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header_u64(&first, "x-rate-limit-limit"), 1);
    let second =
        token_request(&http, &sim.base_url(), &key.assertion("0oac", &token_url), "okta.apps.read", None).await;
    expect_okta_error(second, 429, "E0000047").await;
    // The apps buckets are untouched.
    let apps = ssws(http.get(format!("{}/api/v1/apps", sim.base_url()))).send().await.unwrap();
    assert_eq!(header_u64(&apps, "x-rate-limit-remaining"), 99);
}
