//! Leader election that cannot split: contenders started at the same moment on a fresh Lease elect
//! exactly one leader; a leader frozen past its lease and thawed makes no Okta write (exactly one
//! key per rotation); a leader whose renewals are refused stops before the standby acquires.
//! Figures (takeover times) are printed; run with `--nocapture` to see them.

mod support;

use jiff::SignedDuration;
use kube::api::{Api, DeleteParams};
use samlcred::runtime::leader::{self, LeaseSettings};
use serde_json::json;
use std::time::{Duration, Instant};
use support::leader::{lease_holder, start_replica};
use support::{ControllerProcess, World, wait_for};

const LONG: Duration = Duration::from_secs(120);

/// Many trials of four contenders (each with its own connection) racing for a Lease that does not
/// exist yet: in every trial exactly one acquires, and the others are still waiting a while later
/// (a second winner of the race would have returned at once).
#[tokio::test]
async fn simultaneous_contenders_on_a_fresh_lease_elect_exactly_one() {
    let world = World::new("lease-race").await;
    let trials = 20;
    let mut double = 0;
    for trial in 0..trials {
        let lease = format!("race-{trial}");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut contenders = Vec::new();
        for replica in 0..4 {
            let client = testenv::client().await.unwrap();
            let settings = LeaseSettings {
                namespace: world.ns.name.clone(),
                name: lease.clone(),
                identity: format!("replica-{replica}"),
                duration: Duration::from_secs(2),
            };
            let mut stop = stop_rx.clone();
            contenders.push(tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                leader::acquire(client, &settings, stopped).await.unwrap()
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let holder = loop {
            if let Some(holder) = lease_holder(&world, &lease).await {
                break holder;
            }
            assert!(Instant::now() < deadline, "trial {trial}: nobody acquired the lease");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let observe_until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < observe_until {
            assert_eq!(lease_holder(&world, &lease).await.as_deref(), Some(holder.as_str()), "trial {trial}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let finished: Vec<bool> = contenders.iter().map(|c| c.is_finished()).collect();
        stop_tx.send(true).unwrap();
        let mut leaders = 0;
        for contender in contenders {
            if let Some(leadership) = contender.await.unwrap() {
                leaders += 1;
                leadership.release().await;
            }
        }
        assert_eq!(finished.iter().filter(|f| **f).count(), 1, "trial {trial}: contenders done {finished:?}");
        if leaders != 1 {
            double += 1;
        }
    }
    eprintln!("{trials} trials of 4 simultaneous contenders: {double} with more than one leader");
    assert_eq!(double, 0);
}

/// The scenario a new user hits first (chart default: two replicas): two `samlcred controller`
/// processes started together on a Lease that does not exist yet.
#[tokio::test]
async fn two_processes_started_together_elect_exactly_one() {
    let world = World::new("lease-procs").await;
    let ns = world.ns.name.clone();
    for trial in 0..4 {
        let lease = format!("procs-{trial}");
        let args = |_: usize| {
            vec![
                "--leader-elect".to_string(),
                "--leader-election-lease-duration=2s".to_string(),
                format!("--leader-election-namespace={ns}"),
                format!("--leader-election-lease-name={lease}"),
            ]
        };
        let start = |i: usize| {
            let args = args(i);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ControllerProcess::start_with(&[&ns], &args, &[("POD_NAME", &format!("proc-{trial}-{i}"))])
        };
        let replicas = [start(0), start(1)];
        let holder = wait_for("a leader", LONG, || async { lease_holder(&world, &lease).await }).await;
        wait_for("both replicas to have contended", LONG, || async {
            replicas.iter().all(|r| r.log_text().contains("waiting for the lease")).then_some(())
        })
        .await;
        // Two lease durations: a second acquisition would show by then.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let acquired: Vec<bool> = replicas.iter().map(|r| r.log_text().contains("acquired the lease")).collect();
        assert_eq!(acquired.iter().filter(|a| **a).count(), 1, "trial {trial}: {acquired:?}, holder {holder}");
        assert_eq!(lease_holder(&world, &lease).await, Some(holder));
    }
}

/// Rotations running while the leader is frozen (SIGSTOP) past its lease at a random moment and
/// thawed after the standby took over: the thawed leader exits without an Okta write, so every
/// rotation generates exactly one key.
#[tokio::test]
async fn a_leader_frozen_past_its_lease_and_thawed_writes_nothing() {
    let world = World::new("lease-freeze").await;
    let lease_seconds = 3;
    let names = ["replica-a", "replica-b"];
    let mut replicas = [Some(start_replica(&world, names[0], lease_seconds, None)), None];
    wait_for("replica-a to lead", LONG, || async {
        (lease_holder(&world, "samlcred-controller").await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    replicas[1] = Some(start_replica(&world, names[1], lease_seconds, None));
    let mut leader = 0;
    let mut apps = Vec::new();
    let mut takeovers = Vec::new();
    for round in 0..3 {
        let mut round_apps = Vec::new();
        for i in 0..4 {
            let app = world.seed_app(SignedDuration::from_hours(24 * 10));
            let name = format!("r{round}-{i}");
            let spec = json!({"activation": {"delay": "1s"}, "retainPrevious": "1s"});
            world.create_credential(&name, &app.id, spec).await;
            round_apps.push((name, app.id));
        }
        // A random moment of the rotations just started.
        let pause = Duration::from_millis(rand_millis(1500));
        tokio::time::sleep(pause).await;
        let pid = replicas[leader].as_ref().unwrap().pid();
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let frozen = Instant::now();
        let standby = names[1 - leader];
        wait_for("the standby to take over", LONG, || async {
            (lease_holder(&world, "samlcred-controller").await.as_deref() == Some(standby)).then_some(())
        })
        .await;
        takeovers.push(frozen.elapsed());
        // Thaw the deposed leader in the middle of the new leader's work.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
        let code = replicas[leader].as_mut().unwrap().wait_exit(Duration::from_secs(30)).await;
        assert_eq!(code, Some(1), "a thawed deposed leader exits");
        for (name, _) in &round_apps {
            wait_for(&format!("{name} to finish its rotation"), LONG, || async {
                world.credential(name).await.status?.last_rotation_time.map(|_| ())
            })
            .await;
        }
        apps.extend(round_apps);
        // The deposed replica comes back as the standby, as its pod would be restarted.
        replicas[leader] = Some(start_replica(&world, names[leader], lease_seconds, None));
        wait_for("the restarted replica to wait for the lease", LONG, || async {
            replicas[leader].as_ref().unwrap().log_text().contains("waiting for the lease").then_some(())
        })
        .await;
        leader = 1 - leader;
    }
    let keys: Vec<usize> = apps.iter().map(|(_, app)| world.generate_calls(app)).collect();
    let figures: Vec<String> = takeovers.iter().map(|t| format!("{:.1}s", t.as_secs_f64())).collect();
    eprintln!("frozen-leader takeovers (lease {lease_seconds}s): {}; keys per rotation {keys:?}", figures.join(", "));
    assert!(keys.iter().all(|k| *k == 1), "exactly one key per rotation: {keys:?}");
}

fn rand_millis(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() % max
}

/// A leader whose Lease renewals are refused (its RBAC on Leases pulled) while it keeps every other
/// right stops writing to Okta before the standby can acquire: no Okta write lands between the
/// leader's exit and the standby's takeover.
#[tokio::test]
async fn a_leader_refused_its_renewals_stops_before_the_standby_acquires() {
    let world = World::new("lease-rbac").await;
    let ns = world.ns.name.clone();
    let lease_seconds = 4;
    let kubeconfig_a = world.identity_kubeconfig("replica-a", support::WORK_GROUPS);
    let kubeconfig_b = world.identity_kubeconfig("replica-b", support::WORK_GROUPS);
    let mut a = start_replica(&world, "replica-a", lease_seconds, Some(&kubeconfig_a));
    wait_for("replica-a to lead", LONG, || async {
        (lease_holder(&world, "samlcred-controller").await.as_deref() == Some("replica-a")).then_some(())
    })
    .await;
    let b = start_replica(&world, "replica-b", lease_seconds, Some(&kubeconfig_b));
    wait_for("replica-b to wait", LONG, || async { b.log_text().contains("waiting for the lease").then_some(()) })
        .await;

    // Work that keeps the leader writing to Okta: rotations that start as the fault begins.
    let mut apps = Vec::new();
    for i in 0..6 {
        let app = world.seed_app(SignedDuration::from_hours(24 * 10));
        let spec = json!({"activation": {"delay": format!("{}ms", 500 * i + 500)}, "retainPrevious": "1s"});
        world.create_credential(&format!("busy-{i}"), &app.id, spec).await;
        apps.push(app.id);
    }
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> = Api::namespaced(world.client.clone(), &ns);
    bindings.delete("lease-replica-a", &DeleteParams::default()).await.unwrap();
    let cut = Instant::now();
    let code = a.wait_exit(Duration::from_secs(30)).await;
    let exited = cut.elapsed();
    let writes_at_exit = world.okta_writes();
    assert_eq!(code, Some(1), "replica-a exits once it cannot renew");
    wait_for("replica-b to take over", LONG, || async {
        (lease_holder(&world, "samlcred-controller").await.as_deref() == Some("replica-b")).then_some(())
    })
    .await;
    let takeover = cut.elapsed();
    let writes_at_takeover = world.okta_writes();
    eprintln!(
        "renewals refused: leader exited after {:.1}s, standby acquired after {:.1}s (lease {lease_seconds}s, renew deadline {:.1}s)",
        exited.as_secs_f64(),
        takeover.as_secs_f64(),
        lease_seconds as f64 * 2.0 / 3.0
    );
    assert!(exited < takeover, "the deposed leader stopped before the standby acquired");
    assert_eq!(writes_at_exit, writes_at_takeover, "no Okta write between the leader's exit and the takeover");
    for (i, app) in apps.iter().enumerate() {
        wait_for(&format!("busy-{i} to rotate"), LONG, || async {
            world.credential(&format!("busy-{i}")).await.status?.last_rotation_time.map(|_| ())
        })
        .await;
        assert_eq!(world.generate_calls(app), 1, "busy-{i}: exactly one key");
    }
}
