//! Bad answers from Okta never crash or hang the operator: a real `samlcred controller` process, a
//! real API server and the Okta simulator answering what no healthy Okta would. A Reset centuries
//! ahead, a reconcile that panics, a bucket spent for ten minutes.

mod support;

use jiff::SignedDuration;
use okta_sim::{Fault, FaultKind, RateLimitOverride};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{ControllerProcess, World, condition, events, wait_for};

const LONG: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Every answer about the app carries these rate-limit headers.
fn every_answer(app_id: &str, values: RateLimitOverride) -> Fault {
    Fault {
        method: None,
        path_prefix: format!("/api/v1/apps/{app_id}"),
        count: 100_000,
        kind: FaultKind::RateLimitHeaders(values),
    }
}

/// Like `wait_for`, but fails at once, with the log, when the controller process dies meanwhile.
async fn wait_alive<T, F, Fut>(controller: &mut ControllerProcess, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + LONG;
    loop {
        if !controller.running() {
            testenv::mark_failed();
            panic!("the controller died waiting for {what}:\n{}", controller.log_text());
        }
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            testenv::mark_failed();
            panic!("timed out after {LONG:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics_text(port: u16) -> Option<String> {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.ok()?.text().await.ok()
}

#[tokio::test]
async fn a_reset_centuries_ahead_does_not_stop_the_controller() {
    let world = World::new("hostile-reset").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    let values = RateLimitOverride { reset: Some(u64::MAX.to_string()), ..Default::default() };
    world.sim.inject_fault(every_answer(&app.id, values));
    world.create_credential("odd-reset", &app.id, json!({})).await;
    let mut controller = world.start_controller(&[]);

    wait_alive(&mut controller, "odd-reset to be Ready despite the Reset header", || async {
        let sac = world.credential("odd-reset").await;
        (condition(&sac, "Ready")?.0 == "True").then_some(())
    })
    .await;
    assert!(controller.running(), "{}", controller.log_text());
}

#[tokio::test]
async fn a_panicking_reconcile_costs_only_itself() {
    let world = World::new("hostile-panic").await;
    // This credential's rotation panics right after the new key is published, every time.
    let rotating = world.seed_app(SignedDuration::from_hours(24 * 10));
    world.create_credential("doomed", &rotating.id, json!({"activation": {"delay": "1s"}})).await;
    let calm = world.seed_app(SignedDuration::from_hours(24 * 365));
    let metrics_port = free_port();
    let ns = world.ns.name.clone();
    let mut controller = ControllerProcess::start_with(
        &[&ns],
        &[&format!("--metrics-bind-address=127.0.0.1:{metrics_port}")],
        &[("SAMLCRED_FAILPOINT", "panic:after-publish")],
    );

    let note = wait_alive(&mut controller, "a ReconcilePanicked event on doomed", || async {
        let found = events(&world, "doomed").await.into_iter().find(|e| e.1 == "ReconcilePanicked")?;
        assert_eq!(found.0, "Warning");
        Some(found.2)
    })
    .await;
    assert!(note.contains("src/controller/mod.rs"), "the note names where: {note}");
    assert!(!note.contains("test-only panic"), "the note never carries the panic's message: {note}");

    // The process goes on: a credential created afterwards is reconciled to Ready.
    world.create_credential("calm", &calm.id, json!({})).await;
    wait_for("calm to be Ready while doomed keeps panicking", LONG, || async {
        (condition(&world.credential("calm").await, "Ready")?.0 == "True").then_some(())
    })
    .await;
    let text = wait_for("the panic counted", LONG, || async {
        let text = metrics_text(metrics_port).await?;
        text.contains("samlcred_reconcile_panics_total{kind=\"SamlAppCredential\"} ").then_some(text)
    })
    .await;
    let panics: f64 = text
        .lines()
        .find(|l| l.starts_with("samlcred_reconcile_panics_total{kind=\"SamlAppCredential\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap();
    assert!(panics >= 1.0, "{text}");
    assert!(text.contains("samlcred_reconcile_panics_total{kind=\"OktaOrg\"} 0"), "{text}");
    assert!(controller.running(), "{}", controller.log_text());
    assert!(!controller.log_text().contains("test-only panic"), "the log never carries the panic's message");
}

#[tokio::test]
async fn a_bucket_spent_for_minutes_requeues_at_the_reset() {
    let world = World::new("hostile-wait").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("patient", &app.id, json!({})).await;
    // Resyncs every 2 s: each reads the app, the only call a settled credential makes.
    let mut controller = world.start_controller(&[("SAMLCRED_OKTA_RESYNC_INTERVAL", "2s")]);
    wait_for("patient to be Ready", LONG, || async {
        (condition(&world.credential("patient").await, "Ready")?.0 == "True").then_some(())
    })
    .await;

    // From now on Okta says both buckets are spent for the next ten minutes; the next resync must
    // not wait in place for that. A changed spec reads the app at once, and teaches the limiter.
    let reset = jiff::Timestamp::now().as_second() + 600;
    let values =
        RateLimitOverride { remaining: Some("0".into()), reset: Some(reset.to_string()), ..Default::default() };
    world.sim.inject_fault(every_answer(&app.id, values));
    // One read teaches the limiter that the bucket is spent.
    // The credential's calls (the org's own check lists apps at every resync too).
    let app_calls =
        || world.sim.calls().iter().filter(|c| c.path.starts_with(&format!("/api/v1/apps/{}", app.id))).count();
    let reads_before = app_calls();
    let patch = json!({"spec": {"renewBefore": "721h"}});
    world
        .credentials()
        .patch("patient", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();

    let sac = wait_for("Ready=False RateLimited", LONG, || async {
        let sac = world.credential("patient").await;
        (condition(&sac, "Ready")?.1 == "RateLimited").then_some(sac)
    })
    .await;
    let limited_at = Instant::now();
    let (status, _, message) = condition(&sac, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("resets in"), "{message}");
    let attempts = sac.status.as_ref().unwrap().failed_attempts;
    let calls = app_calls();
    assert!(calls > reads_before, "the spent bucket was read once");

    // Requeued at the reset, ten minutes away: no retry at the 5 s backoff nor at the 2 s resync,
    // no call to Okta.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let sac = world.credential("patient").await;
    assert_eq!(sac.status.as_ref().unwrap().failed_attempts, attempts, "retried before the reset");
    assert_eq!(app_calls(), calls, "called Okta before the reset");
    assert!(limited_at.elapsed() >= Duration::from_secs(12));
    assert!(controller.running(), "{}", controller.log_text());
    let warnings: Vec<_> = events(&world, "patient").await.into_iter().filter(|e| e.1 == "OktaError").collect();
    assert!(warnings.iter().any(|e| e.2.contains("rate limit")), "{warnings:?}");
}
