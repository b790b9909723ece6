//! The operator process: two replicas with leader election (only the leader writes; when it dies the
//! standby takes over within the lease duration and no rotation happens twice), and the metrics and
//! health endpoints after a rotation.

mod support;

use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{ControllerProcess, World, wait_for};

const LONG: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn lease_holder(world: &World) -> Option<String> {
    let leases: kube::Api<Lease> = kube::Api::namespaced(world.client.clone(), &world.ns.name);
    leases.get_opt("samlcred-controller").await.ok()??.spec?.holder_identity
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let world = World::new("e2e-leader").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    // Manual activation parks the rotation at Published, so the takeover happens mid-rotation.
    world
        .create_credential(
            "ha",
            &app.id,
            json!({"activation": {"policy": "Manual", "delay": "1s"}, "retainPrevious": "1s"}),
        )
        .await;
    let ns = world.ns.name.clone();
    let lease_args = ["--leader-elect", "--leader-election-lease-duration=4s"];
    let lease_ns = format!("--leader-election-namespace={ns}");
    let mut first =
        ControllerProcess::start_with(&[&ns], &[lease_args[0], lease_args[1], &lease_ns], &[("POD_NAME", "replica-a")]);
    wait_for("replica-a to hold the lease", LONG, || async {
        (lease_holder(&world).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let second =
        ControllerProcess::start_with(&[&ns], &[lease_args[0], lease_args[1], &lease_ns], &[("POD_NAME", "replica-b")]);

    let pending = wait_for("the new key to be published, awaiting approval", LONG, || async {
        let sac = world.credential("ha").await;
        let status = sac.status?;
        (status.rotation.as_ref()?.phase == samlcred::api::RotationPhase::Published)
            .then(|| status.pending_key.unwrap().kid)
    })
    .await;
    assert_eq!(lease_holder(&world).await.as_deref(), Some("replica-a"));
    wait_for("replica-b to be waiting as a standby", LONG, || async {
        second.log_text().contains("waiting for the lease").then_some(())
    })
    .await;
    assert!(!second.log_text().contains("acquired the lease"), "the standby must not reconcile");

    first.kill();
    let killed = Instant::now();
    wait_for("replica-b to take over", LONG, || async {
        (lease_holder(&world).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!("takeover after {:.1}s (lease duration 4s)", takeover.as_secs_f64());
    assert!(takeover < Duration::from_secs(12), "takeover took {takeover:?}");

    world.annotate("ha", "samlcred.io/activate", &pending).await;
    wait_for("the new leader to activate the key", LONG, || async {
        (world.sim.active_kid(&app.id).as_deref() == Some(pending.as_str())).then_some(())
    })
    .await;
    assert_eq!(world.generate_calls(&app.id), 1, "no rotation happened twice across the failover");
}

#[tokio::test]
async fn metrics_and_health_after_a_rotation() {
    let world = World::new("e2e-metrics").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    world.create_credential("observed", &app.id, json!({"activation": {"delay": "1s"}, "retainPrevious": "1s"})).await;
    let (metrics_port, health_port) = (free_port(), free_port());
    let ns = world.ns.name.clone();
    let _controller = ControllerProcess::start_with(
        &[&ns],
        &[
            &format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
            &format!("--health-bind-address=127.0.0.1:{health_port}"),
        ],
        &[],
    );
    let http = reqwest::Client::new();
    wait_for("/readyz", LONG, || async {
        let answer = http.get(format!("http://127.0.0.1:{health_port}/readyz")).send().await.ok()?;
        answer.status().is_success().then_some(())
    })
    .await;
    let healthz = http.get(format!("http://127.0.0.1:{health_port}/healthz")).send().await.unwrap();
    assert!(healthz.status().is_success());
    wait_for("a completed rotation", LONG, || async {
        world.credential("observed").await.status?.last_rotation_time.map(|_| ())
    })
    .await;

    let text = wait_for("metrics after the rotation", LONG, || async {
        let text = http.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.ok()?.text().await.ok()?;
        text.contains("samlcred_rotations_total{result=\"succeeded\"} 1").then_some(text)
    })
    .await;
    let sample = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(name) && l.contains(&format!("namespace=\"{ns}\"")) || l.starts_with(&format!("{name} "))
            })
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let now = jiff::Timestamp::now().as_second() as f64;
    let not_after = sample("samlcred_certificate_not_after_timestamp_seconds");
    assert!(not_after > now + 9.0 * 365.0 * 86400.0, "the new certificate is valid for ~10 years: {not_after}");
    let renewal = sample("samlcred_certificate_renewal_timestamp_seconds");
    // notAfter - 720h, up to 10% of it (72h) earlier: the credential's renewal spread.
    let earlier = not_after - renewal - 720.0 * 3600.0;
    assert!((0.0..=72.0 * 3600.0).contains(&earlier), "renewal = notAfter - 720h - spread: {earlier}s");
    assert!(
        text.contains(&format!(
            "samlcred_credential_ready{{namespace=\"{ns}\",name=\"observed\",condition=\"Ready\"}} 1"
        )),
        "{text}"
    );
    assert!(text.contains("samlcred_reconcile_duration_seconds_count"), "{text}");
    assert!(text.contains("samlcred_okta_requests_total{endpoint=\"POST /api/v1/apps/{appId}/credentials/keys/generate\",status=\"201\"} 1"), "{text}");
    assert!(text.contains("samlcred_okta_rate_limit_remaining{bucket="), "{text}");
    // Error series exist from the start (at 0), so alerts on their rate work before the first error.
    assert!(text.contains("samlcred_reconcile_errors_total{reason=\"OktaError\"} 0"), "{text}");
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_hands_the_lease_over_at_once() {
    let world = World::new("e2e-sigterm").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("calm", &app.id, json!({})).await;
    let ns = world.ns.name.clone();
    // A long lease: a standby taking over well before it expires proves the leader released it.
    let args = ["--leader-elect", "--leader-election-lease-duration=60s"];
    let lease_ns = format!("--leader-election-namespace={ns}");
    let mut first = ControllerProcess::start_with(&[&ns], &[args[0], args[1], &lease_ns], &[("POD_NAME", "replica-a")]);
    wait_for("replica-a to lead and the credential to be Ready", LONG, || async {
        let ready = support::condition(&world.credential("calm").await, "Ready").is_some_and(|c| c.0 == "True");
        (ready && lease_holder(&world).await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let _second = ControllerProcess::start_with(&[&ns], &[args[0], args[1], &lease_ns], &[("POD_NAME", "replica-b")]);

    first.terminate();
    let stopped = Instant::now();
    let code = first.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "a clean exit on SIGTERM: {}", first.log_text());
    let log = first.log_text();
    assert!(log.contains("released the lease") && log.contains("samlcred controller stopped"), "{log}");
    wait_for("replica-b to take over", LONG, || async {
        (lease_holder(&world).await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    assert!(stopped.elapsed() < Duration::from_secs(30), "the standby waited for the 60s lease to expire");
}
