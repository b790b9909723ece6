//! The Okta fault matrix (issue 13, part 4): a real `samlcred controller` rotating a key while the
//! simulator misbehaves in the middle of the rotation. 429 storms (with a Reset at the window's end,
//! in the past, and far ahead), 5xx, answers lost after Okta did the work (generate and PUT),
//! truncated and garbage bodies, the API token revoked and restored, DPoP nonces rotated, and
//! connections refused. Each prints the operator's call rate during the fault and the time it took
//! to finish the rotation after the fault was lifted; each checks that exactly one key was generated
//! and that the call rate stayed bounded.
//!
//! Size: CHAOS_STORM_SECONDS (default 3; `make chaos` sets 20), how long each fault lasts.

mod support;

use jiff::SignedDuration;
use okta_sim::{Fault, FaultKind, RateLimitOverride, SeededApp};
use serde_json::json;
use std::time::{Duration, Instant};
use support::chaos::{Gate, Rotating, converged, size};
use support::{ControllerProcess, World, wait_for};

const LONG: Duration = Duration::from_secs(180);

/// Okta calls per second the operator may make during a fault, retries included: the client's
/// in-place attempts (4, backed off) and the reconciler's backoff keep it far below this.
const MAX_RATE: f64 = 3.0;

fn storm() -> Duration {
    Duration::from_secs(size("CHAOS_STORM_SECONDS", 3))
}

/// One rotating credential `c` (Automatic, published a few seconds before it activates) under a
/// controller of its own.
struct Case {
    world: World,
    app: SeededApp,
    rotating: Rotating,
    controller: ControllerProcess,
}

impl Case {
    async fn start(prefix: &str, org: &str) -> Case {
        let world = World::new(prefix).await;
        Case::start_in(world, org).await
    }

    async fn start_in(world: World, org: &str) -> Case {
        let app = world.seed_app(SignedDuration::from_hours(24 * 10));
        let spec = json!({"orgRef": {"name": org}, "activation": {"delay": "2s"}, "retainPrevious": "1s"});
        world.create_credential("c", &app.id, spec).await;
        let controller = world.start_controller(&[]);
        let rotating =
            Rotating { name: "c".into(), app_id: app.id.clone(), old_kid: app.kids[0].clone(), manual: false };
        Case { world, app, rotating, controller }
    }

    /// Waits until the new key is published (and not yet active): the middle of the rotation.
    async fn published(&self) {
        wait_for("the new key to be published", LONG, || async {
            self.world.credential("c").await.status?.pending_key.map(|_| ())
        })
        .await;
    }

    /// A fault on every call about the app, until lifted.
    fn every_call(&self, kind: FaultKind) -> Fault {
        Fault { method: None, path_prefix: format!("/api/v1/apps/{}", self.app.id), count: u32::MAX, kind }
    }

    /// Runs `lift` after the storm; returns (calls per second during it, recovery after it).
    async fn storm(&mut self, lift: impl FnOnce(&World)) -> (f64, Duration) {
        let requests = self.controller.okta_requests();
        let began = Instant::now();
        while began.elapsed() < storm() {
            assert!(self.controller.running(), "the controller died: {}", self.controller.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rate = (self.controller.okta_requests() - requests) / began.elapsed().as_secs_f64();
        lift(&self.world);
        (rate, self.recovered().await)
    }

    /// Time until the rotation is complete.
    async fn recovered(&self) -> Duration {
        let lifted = Instant::now();
        wait_for("the rotation to complete after the fault", LONG, || async {
            converged(&self.world, &self.rotating).await.then_some(())
        })
        .await;
        lifted.elapsed()
    }

    /// Prints the figures and checks them: bounded retries, exactly one key, still running.
    async fn report(&mut self, fault: &str, rate: f64, recovery: Duration) {
        let keys = self.world.sim.keys(&self.app.id).len();
        println!(
            "okta fault {fault}: storm={}s calls_per_s={rate:.2} recovery={:.1}s keys_generated={} \
             (target: calls_per_s <= {MAX_RATE}, 1 key)",
            storm().as_secs(),
            recovery.as_secs_f64(),
            keys - 1
        );
        assert!(rate <= MAX_RATE, "{fault}: {rate:.2} calls/s during the fault");
        self.checked(fault, keys).await;
    }

    async fn checked(&mut self, fault: &str, keys: usize) {
        assert_eq!(keys, 2, "{fault}: exactly one key generated");
        assert!(self.controller.running(), "{fault}: {}", self.controller.log_text());
        self.controller.save_metrics();
        support::secret_scan::assert_clean(&self.world, fault, &[]).await;
    }
}

/// Answers 429 with `X-Rate-Limit-Remaining: 0` and this Reset on every call about the app.
async fn rate_limit_storm(prefix: &str, fault: &str, reset: i64) {
    let mut case = Case::start(prefix, "acme").await;
    case.published().await;
    let values = RateLimitOverride {
        limit: Some("100".into()),
        remaining: Some("0".into()),
        reset: Some(reset.to_string()),
        refuse: true,
    };
    case.world.sim.inject_fault(case.every_call(FaultKind::RateLimitHeaders(values)));
    let (rate, recovery) = case.storm(|w| w.sim.clear_faults()).await;
    case.report(fault, rate, recovery).await;
}

fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[tokio::test]
async fn a_429_storm() {
    rate_limit_storm("chaos-429", "429-storm(reset-at-end)", now_s() + storm().as_secs() as i64).await;
}

#[tokio::test]
async fn a_429_storm_with_a_reset_in_the_past() {
    rate_limit_storm("chaos-429-past", "429-storm(reset-in-past)", now_s() - 3600).await;
}

#[tokio::test]
async fn a_429_storm_with_a_reset_far_ahead() {
    rate_limit_storm("chaos-429-far", "429-storm(reset-10y-ahead)", now_s() + 10 * 365 * 86_400).await;
}

#[tokio::test]
async fn server_errors() {
    let mut case = Case::start("chaos-5xx", "acme").await;
    case.published().await;
    let kind =
        FaultKind::Status { status: 503, error_code: "E0000009".into(), summary: "Internal Server Error".into() };
    case.world.sim.inject_fault(case.every_call(kind));
    let (rate, recovery) = case.storm(|w| w.sim.clear_faults()).await;
    case.report("503", rate, recovery).await;
}

#[tokio::test]
async fn truncated_and_garbage_bodies() {
    for (prefix, fault, kind) in [
        ("chaos-trunc", "truncated-bodies", FaultKind::TruncatedBody),
        ("chaos-html", "garbage(html)-bodies", FaultKind::NonJsonBody),
    ] {
        let mut case = Case::start(prefix, "acme").await;
        case.published().await;
        case.world.sim.inject_fault(case.every_call(kind));
        let (rate, recovery) = case.storm(|w| w.sim.clear_faults()).await;
        case.report(fault, rate, recovery).await;
    }
}

/// Okta does the work, and the answer is lost (the connection is reset, or cut half-way): the
/// operator must find the key it generated, or the switch it made, instead of doing it again.
#[tokio::test]
async fn answers_lost_after_okta_did_the_work() {
    for (method, suffix, kind, fault) in [
        ("POST", "/credentials/keys/generate", FaultKind::ConnectionReset, "generate-answer-reset"),
        ("POST", "/credentials/keys/generate", FaultKind::TruncatedBody, "generate-answer-truncated"),
        ("PUT", "", FaultKind::ConnectionReset, "put-answer-reset"),
        ("PUT", "", FaultKind::TruncatedBody, "put-answer-truncated"),
    ] {
        let world = World::new("chaos-lost").await;
        let app = world.seed_app(SignedDuration::from_hours(24 * 10));
        let path_prefix = format!("/api/v1/apps/{}{suffix}", app.id);
        world.sim.inject_fault(Fault { method: Some(method.parse().unwrap()), path_prefix, count: 1, kind });
        let spec = json!({"activation": {"delay": "1s"}, "retainPrevious": "1s"});
        world.create_credential("c", &app.id, spec).await;
        let controller = world.start_controller(&[]);
        let rotating =
            Rotating { name: "c".into(), app_id: app.id.clone(), old_kid: app.kids[0].clone(), manual: false };
        let mut case = Case { world, app, rotating, controller };
        let rotation = case.recovered().await;
        // The write whose answer was lost is not made again blindly: one generate call in all, and
        // at most one more PUT (the repeat of an idempotent switch to the same kid).
        let calls = case.world.sim.calls();
        let writes = |m: &str, p: &str| calls.iter().filter(|c| c.method == m && c.path.ends_with(p)).count();
        let (generates, puts) = (writes("POST", "/credentials/keys/generate"), writes("PUT", &case.app.id));
        let keys = case.world.sim.keys(&case.app.id).len();
        println!(
            "okta fault {fault}: rotation_done_in={:.1}s generate_calls={generates} put_calls={puts} \
             okta_requests={} keys_generated={} (target: 1 generate, <= 2 PUT, 1 key)",
            rotation.as_secs_f64(),
            case.controller.okta_requests(),
            keys - 1
        );
        assert_eq!(generates, 1, "{fault}: the lost generate was not repeated");
        assert!(puts <= 2, "{fault}: {puts} PUTs");
        case.checked(fault, keys).await;
    }
}

#[tokio::test]
async fn the_api_token_revoked_mid_rotation_then_restored() {
    let mut case = Case::start("chaos-401", "acme").await;
    case.published().await;
    case.world.sim.revoke_api_token(support::TOKEN);
    let (rate, recovery) = case.storm(|w| w.sim.add_api_token(support::TOKEN)).await;
    case.report("401(token-revoked-then-restored)", rate, recovery).await;
}

#[tokio::test]
async fn dpop_nonces_rotated_mid_rotation() {
    let world = World::new("chaos-dpop").await;
    world.add_oauth_org("oauth", "0oa-chaos").await;
    let mut case = Case::start_in(world, "oauth").await;
    case.published().await;
    // Nonces and tokens forgotten every second of the storm: each call may meet a 401 and each token
    // request a `use_dpop_nonce`.
    let tokens = |w: &World| w.sim.calls().iter().filter(|c| c.path == "/oauth2/v1/token").count();
    let before = tokens(&case.world);
    let requests = case.controller.okta_requests();
    let began = Instant::now();
    // The rotation goes on during this fault (its own calls are a burst of about ten), so the rate
    // is taken over at least 10 s, not over make test's 3 s storm.
    while began.elapsed() < storm().max(Duration::from_secs(10)) {
        case.world.sim.rotate_dpop_nonces();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let rate = (case.controller.okta_requests() - requests) / began.elapsed().as_secs_f64();
    let recovery = case.recovered().await;
    let (window, tokens) = (began.elapsed().as_secs(), tokens(&case.world) - before);
    println!("okta fault dpop-nonce-rotation: nonces rotated every second for {window}s; token requests {tokens}");
    case.report("dpop-nonce-rotation", rate, recovery).await;
}

#[tokio::test]
async fn connections_refused_mid_rotation() {
    let world = World::new("chaos-refused").await;
    let gate = Gate::open(&world.sim.base_url()).await;
    let url = gate.url();
    let spec = json!({"url": url, "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}}});
    world.apply(json!({"apiVersion": "samlcred.io/v1alpha1", "kind": "OktaOrg", "metadata": {"name": "gated"}, "spec": spec})).await;
    let mut case = Case::start_in(world, "gated").await;
    case.published().await;
    gate.close();
    let (rate, recovery) = case.storm(|_| gate.reopen()).await;
    case.report("connection-refused", rate, recovery).await;
}

/// The scan finds what it looks for: a token planted in an Event, and a line of the namespace's
/// private key planted in a file named as a controller log, are both hits (then removed, so the
/// World's own scan at its end passes).
#[tokio::test]
async fn the_secret_scan_finds_planted_secrets() {
    let world = World::new("chaos-scan").await;
    world.add_oauth_org("oauth", "0oa-scan").await;
    let key = support::secret_text(&world.secrets().get("okta-svc-key").await.unwrap(), "private.pem").unwrap();
    let key_line = key.lines().nth(1).unwrap().to_string();
    let event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "planted"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "test", "reportingInstance": "test",
        "action": "Test", "reason": "Planted", "type": "Normal", "note": format!("token {}", support::TOKEN),
        "regarding": {"kind": "SamlAppCredential", "name": "x", "namespace": world.ns.name},
    });
    world.apply(event).await;
    let log = testenv::shared().dir().join(format!("controller-{}-planted.log", world.ns.name));
    std::fs::write(&log, format!("a line with {key_line} in it\n")).unwrap();

    let scan = support::secret_scan::scan(&world.client, &world.ns.name, world.sim.presented_secrets(), &[]).await;
    println!("secret scan planted: secrets={} bytes_scanned={} hits={}", scan.secrets, scan.bytes, scan.hits.len());
    assert!(scan.hits.iter().any(|h| h.starts_with("e2e-")), "the planted token: {:?}", scan.hits);
    let key_prefix = &key_line[..4];
    assert!(scan.hits.iter().any(|h| h.starts_with(key_prefix)), "the planted key line: {:?}", scan.hits);

    std::fs::remove_file(&log).unwrap();
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(world.client.clone(), &world.ns.name);
    events.delete("planted", &Default::default()).await.unwrap();
}
