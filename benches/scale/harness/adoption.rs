//! The phases on a fleet that is not settled yet: the floor client's adoption and rotation, the
//! controller's adoption, and create -> Secret latency for newcomers to the settled fleet.

use super::cluster::{CONTROLLER_USER, FLOOR_USER, client_from};
use super::controller::Controller;
use super::fleet::{self, Cred, Fleet, is_ready, rotated_from};
use super::floor::Floor;
use super::okta_log;
use super::report::{Target, count, mib, millis, per, ratio, seconds};
use super::run::{Run, active_kids, spread, while_running};
use super::scenario::Config;
use anyhow::{Context, Result};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// What the floor measured, for the ratios.
pub struct FloorFigures {
    pub adoption_seconds: f64,
    pub rotation_seconds: f64,
}

/// How long a fleet of `n` may take to become Ready before the run gives up: generous (main's
/// controller takes about 0.12 s per credential here), the run is a measurement.
pub fn ready_timeout(n: usize) -> Duration {
    Duration::from_secs(300) + Duration::from_millis(500) * n as u32
}

pub async fn floor_phase(run: &mut Run, config: &Config, fleet: &Fleet) -> Result<FloorFigures> {
    let n = fleet.len();
    let client = client_from(&run.floor_kubeconfig).await?;
    let floor = Floor::new(&run.sim.base_url(), fleet::TOKEN, client, usize::from(config.concurrency))?;

    let from = Timestamp::now();
    floor.adopt(&fleet.label).await?;
    let ready =
        run.watch.wait_all("floor credentials Ready", &fleet.creds, ready_timeout(n), |_, s| is_ready(s)).await?;
    let adoption_seconds = ready.duration_since(from).as_secs_f64();
    let window = run.window(FLOOR_USER, &fleet.apps(), from, Timestamp::now()).await?;
    let r = &mut run.report;
    r.section("floor");
    r.info("floor: time to all Ready", seconds(adoption_seconds), &format!("{n} credentials"));
    r.info("floor: Okta calls per adoption", count(per(window.app_calls.len(), n)), &window.kinds_note());
    r.info("floor: Kubernetes writes per adoption", count(per(window.kube.writes, n)), &window.kube.writes_note());
    r.info("floor: Kubernetes requests per adoption", count(per(window.kube.requests, n)), "one LIST, then writes");
    r.detail("floor_adoption", window.to_json());

    let subset = spread(&fleet.creds, config.rotations);
    let old = active_kids(&run.watch, &subset)?;
    let from = Timestamp::now();
    floor.rotate(&subset, config.activation_delay).await?;
    let timeout = ready_timeout(n);
    let done = run.watch.wait_all("floor rotations", &subset, timeout, |c, s| rotated_from(s, &old[&c.app])).await?;
    let rotation_seconds = done.duration_since(from).as_secs_f64();
    let apps: HashSet<String> = subset.iter().map(|c| c.app.clone()).collect();
    let window = run.window(FLOOR_USER, &apps, from, Timestamp::now()).await?;
    let k = subset.len();
    let r = &mut run.report;
    let note = format!("{k} at once, activation delay {:?}", config.activation_delay);
    r.info("floor: time to rotate the subset", seconds(rotation_seconds), &note);
    r.info("floor: Okta calls per rotation", count(per(window.app_calls.len(), k)), &window.kinds_note());
    r.info("floor: Kubernetes writes per rotation", count(per(window.kube.writes, k)), &window.kube.writes_note());
    r.detail("floor_rotation", window.to_json());
    Ok(FloorFigures { adoption_seconds, rotation_seconds })
}

/// Starts the controller on the fleet; returns it running once the fleet has settled.
pub async fn adoption_phase(run: &mut Run, config: &Config, fleet: &Fleet, floor: &FloorFigures) -> Result<Controller> {
    let n = fleet.len();
    let from = Timestamp::now();
    let mut controller = run.start_controller("adoption", None)?;
    let watch = &run.watch;
    let all_ready = watch.wait_all("credentials Ready", &fleet.creds, ready_timeout(n), |_, s| is_ready(s));
    let ready = while_running(&mut controller, all_ready).await?;
    let took = ready.duration_since(from).as_secs_f64();
    let settled = run.settle(Duration::from_secs(3), Duration::from_secs(60)).await?;
    let to = settled.max(ready) + SignedDuration::from_millis(1);
    let window = run.window(CONTROLLER_USER, &fleet.apps(), from, to).await?;
    let reconciles = controller.reconciles().await;
    let usage = controller.usage();
    let kube = &window.kube;
    let r = &mut run.report;
    r.section("adoption");
    r.info("time to all Ready", seconds(took), &format!("{n} credentials, from the controller's start"));
    let note = format!("floor {:.1} s", floor.adoption_seconds);
    r.check("time to all Ready / floor", ratio(took / floor.adoption_seconds), Target::AtMost(1.5), &note);
    // Credentials adopted early meet their first turn of the resync interval before the last is
    // adopted: those GETs are the schedule's, not the adoption's.
    let (scheduled, _) = okta_log::by_schedule(
        &window.refs(),
        &run.watch.uids_by_app(),
        config.okta_resync,
        super::settled::SCHEDULE_SLACK,
        true,
    );
    let r = &mut run.report;
    r.info("Okta calls during adoption", count(window.app_calls.len() as f64), &window.kinds_note());
    let note = format!("{scheduled} resyncs at their turn left out (interval {} s)", config.okta_resync.as_secs());
    let calls = count(per(window.app_calls.len() - scheduled, n));
    r.check("Okta calls per adoption", calls, Target::AtMost(3.0), &note);
    r.info("Okta calls not about an app (org checks)", count(window.org_calls as f64), "whole adoption");
    let credential_writes = kube.writes - kube.org_writes;
    r.check(
        "Kubernetes writes per adoption",
        count(per(credential_writes, n)),
        Target::AtMost(2.0),
        &kube.writes_note(),
    );
    r.info("Kubernetes writes not about a credential", count(kube.org_writes as f64), "org status, per org");
    let note = format!("{} answered 404", kube.not_found);
    r.info("Kubernetes requests per adoption", count(per(kube.requests, n)), &note);
    r.info("409 answers during adoption", count(kube.conflicts as f64), &format!("of {} writes", kube.writes));
    let note = "count of samlcred_reconcile_duration_seconds (reconciles that ran a step)";
    r.info("reconciles per credential", count(reconciles.map(|c| c / n as f64)), note);
    let note = format!("VmHWM with {n} credentials; the target is set for 10,000");
    r.check("controller peak RSS, adoption", mib(usage.peak_rss_mib), Target::AtMost(64.0), &note);
    r.info("controller CPU seconds, adoption", seconds(usage.cpu_seconds), "utime+stime, from its start until settled");
    let mut detail = window.to_json();
    detail["cpu_seconds"] = json!(usage.cpu_seconds);
    r.detail("adoption", detail);
    Ok(controller)
}

/// Creates credentials one at a time into the settled fleet and times each until its Secret
/// exists; returns them (they are part of the settled fleet from then on).
pub async fn latency_phase(run: &mut Run, config: &Config, controller: &mut Controller) -> Result<Vec<Cred>> {
    use k8s_openapi::api::core::v1::Secret;
    let ns = "latency";
    run.cluster.namespace(ns, &[(fleet::FLEET_LABEL, ns)]).await?;
    let apps = fleet::seed_apps(&run.sim, ns, config.latency_samples);
    let mut latencies = Vec::new();
    let mut creds = Vec::new();
    for (i, app) in apps.into_iter().enumerate() {
        let cred = Cred { namespace: ns.into(), name: format!("late-{i}"), app };
        let secrets: kube::Api<Secret> = kube::Api::namespaced(run.cluster.admin.clone(), ns);
        let name = fleet::secret_name(&cred.name);
        let appeared = tokio::spawn(async move {
            kube::runtime::wait::await_condition(secrets, &name, |s: Option<&Secret>| s.is_some()).await
        });
        let started = Instant::now();
        fleet::create_credential(&run.cluster, ns, &cred, &config.delay()).await?;
        let wait = async {
            let joined = tokio::time::timeout(Duration::from_secs(60), appeared).await;
            joined.context("no Secret within 60 s of the create")??.map(drop).map_err(anyhow::Error::from)
        };
        while_running(controller, wait).await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        creds.push(cred);
    }
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    let note = format!("{} credentials created one at a time into the settled fleet", latencies.len());
    run.report.section("latency");
    run.report.info("create -> Secret p50", millis(quantile(0.5)), &note);
    run.report.info("create -> Secret p99", millis(quantile(0.99)), &note);
    run.report.detail("latency_ms", json!(latencies));
    // The newcomers finish (status written) before the fleet counts as settled.
    let watch = &run.watch;
    let ready = watch.wait_all("latency credentials Ready", &creds, Duration::from_secs(120), |_, s| is_ready(s));
    while_running(controller, ready).await?;
    run.settle(Duration::from_secs(3), Duration::from_secs(60)).await?;
    Ok(creds)
}
