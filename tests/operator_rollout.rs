//! activation.waitForRollout: activation waits until every restart target has rolled out the pod
//! template restarted for the Secret with the pending certificate; a missing or stalled target
//! holds it with RolloutStuck and a Warning event; expiry still wins.
//!
//! There is no kubelet and no Deployment controller here (kube-controller-manager runs only the
//! garbage collector, namespace and ServiceAccount controllers), so the tests write the Deployment's
//! status the way the Deployment controller reports it: observedGeneration, replicas, and the
//! updated, ready and available counts, or a Progressing=False ProgressDeadlineExceeded condition.

mod support;

use jiff::SignedDuration;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;
use support::{World, condition, events, wait_for};

const LONG: Duration = Duration::from_secs(90);

async fn deployment(world: &World, name: &str, replicas: i32) {
    world
        .apply(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "sp", "image": "registry.example/sp:1"}]}
                }
            }
        }))
        .await;
}

fn deployments(world: &World) -> Api<Deployment> {
    Api::namespaced(world.client.clone(), &world.ns.name)
}

/// Writes the Deployment's status as its controller would, for the current generation.
async fn report_status(world: &World, name: &str, status: Value) {
    let current = deployments(world).get(name).await.unwrap();
    let mut status = status;
    status["observedGeneration"] = current.metadata.generation.unwrap_or(0).into();
    deployments(world)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
        .await
        .unwrap();
}

/// Waits until the new key is published (the restart for it happened with the publish).
async fn published(world: &World, credential: &str) {
    wait_for("the new key to be published", LONG, || async {
        let rotation = world.credential(credential).await.status?.rotation?;
        (rotation.phase == samlcred::api::RotationPhase::Published).then_some(())
    })
    .await;
}

/// Waits until samlcred has restarted the Deployment (its pod template carries the Secret hash).
async fn restarted(world: &World, name: &str) {
    wait_for(&format!("samlcred to restart {name}"), LONG, || async {
        let d = deployments(world).get(name).await.ok()?;
        d.spec.template.metadata?.annotations?.get("samlcred.io/secret-hash").map(|_| ())
    })
    .await;
}

async fn rotating_reason(world: &World, name: &str) -> Option<(String, String)> {
    let (_, reason, message) = condition(&world.credential(name).await, "Rotating")?;
    Some((reason, message))
}

/// `samlcred plan` for the namespace (async: the simulator it asks runs on this test's runtime).
async fn plan_output(world: &World) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_samlcred"))
        .args(["plan", "-n", &world.ns.name, "--allow-insecure-okta-http"])
        .env("KUBECONFIG", testenv::shared().kubeconfig())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "samlcred plan: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn activation_waits_until_the_targets_rolled_out_the_new_secret() {
    let world = World::new("rollout-wait").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    deployment(&world, "web", 2).await;
    let spec = json!({
        "activation": {"delay": "1s"}, "retainPrevious": "1s",
        "rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}]
    });
    world.create_credential("waits", &app.id, spec).await;
    let _controller = world.start_controller(&[]);
    let before = app.kids[0].clone();

    restarted(&world, "web").await;
    published(&world, "waits").await;
    let (reason, message) = wait_for("Rotating=WaitingForRollout", LONG, || async {
        let (reason, message) = rotating_reason(&world, "waits").await?;
        (reason == "WaitingForRollout").then_some((reason, message))
    })
    .await;
    assert!(message.contains("Deployment web"), "{reason}: {message}");
    // Half-way: one of two pods updated.
    report_status(
        &world,
        "web",
        json!({"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2}),
    )
    .await;
    wait_for("the message to follow the rollout", LONG, || async {
        let (_, message) = rotating_reason(&world, "waits").await?;
        message.contains("1 of 2 replicas updated").then_some(())
    })
    .await;
    let plan = plan_output(&world).await;
    assert!(plan.contains("waits for the restart targets") && plan.contains("Deployment web"), "{plan}");
    assert_eq!(world.sim.active_kid(&app.id), Some(before.clone()), "activation must wait for the rollout");

    report_status(
        &world,
        "web",
        json!({"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
    )
    .await;
    let pending = world.credential("waits").await.status.unwrap().pending_key.unwrap().kid;
    wait_for("activation once the rollout completed", LONG, || async {
        (world.sim.active_kid(&app.id).as_deref() == Some(pending.as_str())).then_some(())
    })
    .await;
    assert_eq!(world.generate_calls(&app.id), 1);
}

#[tokio::test]
async fn a_stalled_target_holds_activation_with_a_warning_until_it_recovers() {
    let world = World::new("rollout-stuck").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    deployment(&world, "stalled", 1).await;
    let spec = json!({
        "activation": {"delay": "1s"}, "retainPrevious": "1s",
        "rolloutRestartTargets": [{"kind": "Deployment", "name": "stalled"}]
    });
    world.create_credential("held", &app.id, spec).await;
    let _controller = world.start_controller(&[]);
    restarted(&world, "stalled").await;
    published(&world, "held").await;
    let stalled = json!({
        "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                        "message": "ReplicaSet has timed out progressing."}]
    });
    report_status(&world, "stalled", stalled).await;
    wait_for("Rotating=RolloutStuck", LONG, || async {
        let (reason, message) = rotating_reason(&world, "held").await?;
        (reason == "RolloutStuck" && message.contains("ProgressDeadlineExceeded")).then_some(())
    })
    .await;
    let warnings = wait_for("a RolloutStuck Warning event", LONG, || async {
        let found: Vec<_> = events(&world, "held").await.into_iter().filter(|e| e.1 == "RolloutStuck").collect();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(warnings[0].0, "Warning");
    assert_eq!(world.sim.active_kid(&app.id), Some(app.kids[0].clone()), "a stuck rollout holds activation");

    // Someone fixes the workload: the rollout completes and activation follows.
    let done = json!({
        "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]
    });
    report_status(&world, "stalled", done).await;
    let pending = world.credential("held").await.status.unwrap().pending_key.unwrap().kid;
    wait_for("activation after the fix", LONG, || async {
        (world.sim.active_kid(&app.id).as_deref() == Some(pending.as_str())).then_some(())
    })
    .await;
    let stuck_events = events(&world, "held").await.into_iter().filter(|e| e.1 == "RolloutStuck").count();
    assert_eq!(stuck_events, 1, "the stuck target is announced once");
}

#[tokio::test]
async fn expiry_wins_over_a_missing_target() {
    let world = World::new("rollout-expiry").await;
    // 12 hours left: inside the 24h margin, so activation does not wait for the missing target.
    let app = world.seed_app(SignedDuration::from_hours(12));
    let spec = json!({
        "activation": {"delay": "1s"}, "retainPrevious": "1s",
        "rolloutRestartTargets": [{"kind": "Deployment", "name": "gone"}]
    });
    world.create_credential("urgent", &app.id, spec).await;
    let _controller = world.start_controller(&[]);
    wait_for("activation despite the missing target", LONG, || async {
        let status = world.credential("urgent").await.status?;
        (status.last_rotation_time.is_some() && world.sim.active_kid(&app.id) != Some(app.kids[0].clone()))
            .then_some(())
    })
    .await;
    let recorded = events(&world, "urgent").await;
    let early: Vec<_> = recorded.iter().filter(|e| e.1 == "ActivatedBeforeRollout").collect();
    assert_eq!(early.len(), 1, "{recorded:?}");
    assert_eq!(early[0].0, "Warning");
    assert!(early[0].2.contains("Deployment gone: not found") && early[0].2.contains("expires"), "{}", early[0].2);
}

#[tokio::test]
async fn wait_for_rollout_false_activates_after_the_delay_alone() {
    let world = World::new("rollout-off").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    deployment(&world, "web", 1).await;
    let spec = json!({
        "activation": {"delay": "1s", "waitForRollout": false}, "retainPrevious": "1s",
        "rolloutRestartTargets": [{"kind": "Deployment", "name": "web"}]
    });
    world.create_credential("eager", &app.id, spec).await;
    let _controller = world.start_controller(&[]);
    wait_for("activation without any rollout", LONG, || async {
        world.credential("eager").await.status?.last_rotation_time.map(|_| ())
    })
    .await;
    restarted(&world, "web").await;
}

/// A restart target samlcred may not touch (no rights on apps: 403) never blocks the rotation: a
/// Warning event names it and the rotation completes.
#[tokio::test]
async fn a_forbidden_restart_target_gets_a_warning_and_the_rotation_goes_on() {
    let world = World::new("rollout-forbidden").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    deployment(&world, "locked", 1).await;
    let spec = json!({
        "activation": {"delay": "1s", "waitForRollout": false}, "retainPrevious": "1s",
        "rolloutRestartTargets": [{"kind": "Deployment", "name": "locked"}]
    });
    world.create_credential("goes-on", &app.id, spec).await;
    // Every right the operator uses except those on apps/v1 workloads.
    let kubeconfig = world.identity_kubeconfig("no-apps", &["", "samlcred.io", "events.k8s.io"]);
    let kubeconfig = kubeconfig.display().to_string();
    let _controller = world.start_controller(&[("KUBECONFIG", &kubeconfig)]);
    wait_for("the rotation to complete despite the forbidden target", LONG, || async {
        world.credential("goes-on").await.status?.last_rotation_time.map(|_| ())
    })
    .await;
    let recorded = events(&world, "goes-on").await;
    let refused: Vec<_> = recorded.iter().filter(|e| e.0 == "Warning" && e.2.contains("could not restart")).collect();
    assert!(!refused.is_empty(), "a Warning event names the refused restart: {recorded:?}");
    assert!(refused[0].2.contains("Deployment locked") && refused[0].2.contains("forbidden"), "{}", refused[0].2);
    assert_eq!(world.generate_calls(&app.id), 1);
}

/// Whether samlcred has restarted the Deployment (its pod template carries a Secret hash).
async fn is_restarted(world: &World, name: &str) -> bool {
    let d = deployments(world).get(name).await.unwrap();
    d.spec.template.metadata.and_then(|m| m.annotations).is_some_and(|a| a.contains_key("samlcred.io/secret-hash"))
}

#[tokio::test]
async fn restarts_are_paced_cluster_wide_and_the_waiting_ones_say_so() {
    let world = World::new("rollout-paced").await;
    let names = ["one", "two", "three"];
    for name in names {
        let app = world.seed_app(SignedDuration::from_hours(24 * 700));
        deployment(&world, &format!("{name}-web"), 1).await;
        let spec = json!({
            "activation": {"waitForRollout": false},
            "rolloutRestartTargets": [{"kind": "Deployment", "name": format!("{name}-web")}]
        });
        world.create_credential(name, &app.id, spec).await;
    }
    // Each credential's first Secret write asks to restart its Deployment: three restarts at once.
    let _controller = world.start_controller(&[("SAMLCRED_MAX_RESTARTS_PER_MINUTE", "1")]);

    let restarted_now = || async {
        let mut done = vec![];
        for name in names {
            if is_restarted(&world, &format!("{name}-web")).await {
                done.push(name);
            }
        }
        done
    };
    let waiting = |name: &'static str| {
        let world = &world;
        async move {
            let (status, reason, message) = condition(&world.credential(name).await, "RestartsPending")?;
            (status == "True" && reason == "WaitingForTurn").then_some(message)
        }
    };
    let first = wait_for("the first restart", LONG, || async { restarted_now().await.first().copied() }).await;
    let first_at = std::time::Instant::now();
    let others: Vec<&str> = names.into_iter().filter(|n| *n != first).collect();
    // The two others queue, one behind the other, and their status says so.
    let mut messages = vec![];
    for name in &others {
        let message = wait_for(&format!("{name} to wait for its turn"), LONG, || waiting(name)).await;
        messages.push(message);
    }
    messages.sort();
    assert!(messages[0].starts_with("waiting for its turn: 0 restart(s) queued ahead"), "{messages:?}");
    assert!(messages[1].starts_with("waiting for its turn: 1 restart(s) queued ahead"), "{messages:?}");
    assert!(messages[1].contains("at most 1 restarts per minute"), "{messages:?}");
    assert_eq!(restarted_now().await, [first], "only one restart in the first minute");
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_samlcred"))
        .args(["status", "-n", &world.ns.name])
        .env("KUBECONFIG", testenv::shared().kubeconfig())
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert_eq!(table.matches("RestartsPending").count(), 2, "{table}");
    let plan = plan_output(&world).await;
    assert_eq!(plan.matches("restart targets waiting for its turn").count(), 2, "{plan}");

    // The next one goes a minute after the first, and the last still waits, now first in line.
    let second = wait_for("the second restart", Duration::from_secs(120), || async {
        let done = restarted_now().await;
        (done.len() > 1).then(|| done.into_iter().find(|n| *n != first).unwrap())
    })
    .await;
    let gap = first_at.elapsed();
    assert!(gap >= Duration::from_secs(55), "the second restart came {gap:?} after the first");
    assert_eq!(restarted_now().await.len(), 2, "the third waits for the next minute");
    let third = others.into_iter().find(|n| *n != second).unwrap();
    assert!(waiting(third).await.is_some(), "{third} still waits for its turn");
    wait_for("the second's condition to say it was restarted", LONG, || async {
        let (status, reason, _) = condition(&world.credential(second).await, "RestartsPending")?;
        (status == "False" && reason == "Restarted").then_some(())
    })
    .await;
    let restarts = events(&world, second).await.into_iter().filter(|e| e.1 == "RolloutRestarted").count();
    assert_eq!(restarts, 1, "one RolloutRestarted event for the paced restart");
}
