//! Control-plane faults (issue 13, part 2): kube-apiserver killed and restarted, and etcd killed and
//! restarted, in the middle of rotations. The operator recovers without restarting itself, generates
//! no second key and loses no step; the invariant sampler watches throughout. A test binary of its
//! own: the control plane it restarts is this binary's.
//!
//! Sizes: CHAOS_RESTARTS per component (default 1), CHAOS_CREDENTIALS rotating during each (default 3);
//! After each restart a credential created then must be reconciled within [`NEW_WORK_BOUND`]: the
//! operator's watches must have come back (each backs off on its own; a resourceVersion that is
//! gone makes a relist).

mod support;

use jiff::SignedDuration;
use okta_sim::{RateLimits, SimConfig};
use serde_json::json;
use std::time::{Duration, Instant};
use support::chaos::{Rotating, Sampler, all_converged, quantile, size};
use support::{World, wait_for};

const LONG: Duration = Duration::from_secs(180);
/// How long the test waits for a credential created after a restart.
const NEW_WORK: Duration = Duration::from_secs(300);
/// How long that may take: a watch's backoff (at most 30 s) while the server was away, then one
/// more if it must list again. Before each watch backed off on its own, p50 was 75 s, max 173 s.
const NEW_WORK_BOUND: Duration = Duration::from_secs(60);

#[tokio::test]
async fn api_server_and_etcd_restarts_mid_rotation_lose_no_step() {
    let restarts = size("CHAOS_RESTARTS", 1);
    let per_round = size("CHAOS_CREDENTIALS", 3);
    let sim = SimConfig { rate_limits: RateLimits::unlimited(), ..SimConfig::default() };
    let world = World::with_sim("chaos-plane", sim).await;
    let sampler = Sampler::start(&world);
    let mut controller = world.start_controller(&[]);
    let pid = controller.pid();

    let mut figures = Vec::new();
    for component in ["kube-apiserver", "etcd"] {
        let (mut recoveries, mut outages, mut noticed) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..restarts {
            let mut rotating = Vec::new();
            for i in 0..per_round {
                let app = world.seed_app(SignedDuration::from_hours(24 * 10));
                let name = format!("{}-{round}-{i}", &component[..4]);
                let spec = json!({"activation": {"delay": "2s"}, "retainPrevious": "1s"});
                world.create_credential(&name, &app.id, spec).await;
                sampler.watch(&app.id, &format!("{name}-idp"));
                rotating.push(Rotating { name, app_id: app.id, old_kid: app.kids[0].clone(), manual: false });
            }
            // The middle of the rotations: the first new key is published.
            wait_for("a new key to be published", NEW_WORK, || async {
                let sac = world.credentials().get(&rotating[0].name).await.ok()?;
                sac.status?.pending_key.map(|_| ())
            })
            .await;
            let plane = testenv::shared();
            let outage = tokio::task::spawn_blocking(move || plane.restart(component, Duration::from_secs(3)))
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("restarting {component}: {e:#}"));
            let back = Instant::now();
            outages.push(outage);
            wait_for(&format!("the rotations to complete after {component} came back"), LONG, || {
                all_converged(&world, &rotating)
            })
            .await;
            recoveries.push(back.elapsed());
            // New work after the restart: how long until a credential created now is reconciled
            // (its Secret written). The operator's watches must have come back for that.
            {
                let app = world.seed_app(SignedDuration::from_hours(24 * 365));
                let late = format!("{}-{round}-late", &component[..4]);
                world.create_credential(&late, &app.id, json!({})).await;
                let created = Instant::now();
                wait_for(&format!("{late} to be reconciled after the {component} restart"), NEW_WORK, || async {
                    world.secrets().get_opt(&format!("{late}-idp")).await.ok()?.map(|_| ())
                })
                .await;
                noticed.push(created.elapsed());
            }
            assert!(
                controller.running(),
                "the operator exited after the {component} restart:\n{}",
                controller.log_text()
            );
            assert_eq!(controller.pid(), pid, "the operator did not restart");
            for r in &rotating {
                assert_eq!(world.sim.keys(&r.app_id).len(), 2, "{}: exactly one key generated", r.name);
                assert_eq!(world.generate_calls(&r.app_id), 1, "{}: one generate call", r.name);
            }
        }
        let new_work = format!(
            "p50={:.1}s max={:.1}s",
            quantile(&noticed, 0.5).as_secs_f64(),
            quantile(&noticed, 1.0).as_secs_f64()
        );
        assert!(
            quantile(&noticed, 1.0) <= NEW_WORK_BOUND,
            "after a {component} restart new work waited {new_work}, more than {NEW_WORK_BOUND:?}"
        );
        figures.push(format!(
            "control plane: {component} restarted {restarts}x mid-rotation (down {:.1}s p50): rotations done after \
             it was back p50={:.1}s max={:.1}s; a credential created after that reconciled in {new_work}; \
             operator restarts=0, duplicate_keys=0",
            quantile(&outages, 0.5).as_secs_f64(),
            quantile(&recoveries, 0.5).as_secs_f64(),
            quantile(&recoveries, 1.0).as_secs_f64(),
        ));
    }
    let sampled = sampler.stop().await;
    for line in &figures {
        println!("{line}");
    }
    println!("control plane: invariant samples={} violations={}", sampled.samples, sampled.violations.len());
    assert!(sampled.violations.is_empty(), "{:?}", sampled.violations);
}
