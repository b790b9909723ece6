//! One org's stalls never delay another org's credentials: 20 credentials on an org whose every
//! answer takes 20 s sit beside one healthy org, and the healthy credential rotates about as fast as
//! it does alone. Prints both times; run with `--nocapture`.

mod support;

use jiff::SignedDuration;
use okta_sim::{Fault, FaultKind, OktaSim, SeedApp, SeedKey, SimConfig};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{World, wait_for};

const LONG: Duration = Duration::from_secs(120);

async fn rotate(world: &World, name: &str, app_id: &str) -> Duration {
    let started = Instant::now();
    world.create_credential(name, app_id, json!({"activation": {"delay": "1s"}, "retainPrevious": "1s"})).await;
    wait_for(&format!("{name} to rotate"), LONG, || async {
        world.credential(name).await.status?.last_rotation_time.map(|_| ())
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn a_stalling_org_does_not_delay_a_healthy_one() {
    // The healthy org's rate limit is lifted: this test is about stalls, not 429s (the baseline
    // rotations would otherwise spend the window and the later one wait for its reset).
    let config = SimConfig { rate_limits: okta_sim::RateLimits::unlimited(), ..SimConfig::default() };
    let world = World::with_sim("fairness", config).await;
    let _controller = world.start_controller(&[]);
    // Warm-up and baseline: a healthy credential rotating alone.
    rotate(&world, "warm-up", &world.seed_app(SignedDuration::from_hours(24 * 10)).id).await;
    let alone = rotate(&world, "alone", &world.seed_app(SignedDuration::from_hours(24 * 10)).id).await;

    // A second Okta org whose every answer stalls for 20 s (within the client's 30 s timeout).
    let stalling = OktaSim::start(SimConfig::default()).await.unwrap();
    stalling.add_api_token(support::TOKEN);
    stalling.inject_fault(Fault {
        method: None,
        path_prefix: "/api/".into(),
        count: 100_000,
        kind: FaultKind::Latency(Duration::from_secs(20)),
    });
    world
        .apply(json!({
            "apiVersion": "samlcred.io/v1alpha1", "kind": "OktaOrg",
            "metadata": {"name": "stalling"},
            "spec": {"url": stalling.base_url(), "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}}}
        }))
        .await;
    let now = jiff::Timestamp::now();
    for i in 0..20 {
        let app = stalling.seed_app(SeedApp {
            id: None,
            label: format!("stalled {i}"),
            keys: vec![SeedKey {
                not_before: now - SignedDuration::from_hours(24),
                not_after: now + SignedDuration::from_hours(240),
            }],
            active: 0,
        });
        world.create_credential(&format!("stalled-{i}"), &app.id, json!({"orgRef": {"name": "stalling"}})).await;
    }
    wait_for("the stalling org to hold reconciles", LONG, || async {
        // Calls are logged when answered, 20 s after they arrived: by then the stalled credentials'
        // reconciles are waiting on their next calls.
        (stalling.calls().len() >= 2).then_some(())
    })
    .await;

    let beside = rotate(&world, "beside", &world.seed_app(SignedDuration::from_hours(24 * 10)).id).await;
    let ratio = beside.as_secs_f64() / alone.as_secs_f64();
    eprintln!(
        "healthy rotation alone {:.2}s, beside 20 credentials on a stalling org {:.2}s ({ratio:.2}x; target within 1.2x)",
        alone.as_secs_f64(),
        beside.as_secs_f64()
    );
    assert!(ratio <= 1.2, "a stalling org delayed a healthy one: {ratio:.2}x");
}
