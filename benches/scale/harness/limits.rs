//! The run under Okta's real bucket sizes: `/api/v1/apps*` 100 a minute, `/api/v1/apps/{id}` 600
//! a minute (Okta's published figures for most org types; token 600), with each window shortened
//! from 60 s to `window`, set through `PUT /__sim/rate-limits`. The floor, then the controller,
//! onboard N apps and then rotate all of them, at maxShare 50%. Times are also given scaled back
//! to real minutes (x 60 s / window).

use super::cluster::{CONTROLLER_USER, FLOOR_USER, client_from, start_control_plane};
use super::fleet::{self, Fleet, is_ready, rotated_from};
use super::floor::Floor;
use super::report::{Report, Target, count, per, ratio, seconds};
use super::run::{Run, Window, active_kids, while_running};
use super::scenario::Config;
use super::{PhaseLog, okta_log};
use anyhow::Result;
use jiff::Timestamp;
use okta_sim::{BucketLimit, RateLimits, SimConfig};
use serde_json::json;
use std::time::Duration;

pub fn run_limits(config: Config, window: Duration) -> Result<Report> {
    let plane = start_control_plane(&config.dir.join("cluster"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(phases(plane, &config, window));
    plane.stop();
    result
}

async fn set_limits(base_url: &str, window: Duration) -> Result<()> {
    let bucket = |limit| BucketLimit { limit, window };
    let limits = RateLimits { apps_collection: bucket(100), app_instance: bucket(600), token: bucket(600) };
    let answer = reqwest::Client::new().put(format!("{base_url}/__sim/rate-limits")).json(&limits).send().await?;
    anyhow::ensure!(answer.status().is_success(), "PUT /__sim/rate-limits answered {}", answer.status());
    Ok(())
}

struct Side {
    onboard: f64,
    rotate: f64,
}

async fn phases(plane: &'static testenv::ControlPlane, config: &Config, window: Duration) -> Result<Report> {
    let log = PhaseLog::default();
    let setup = log.start("setup");
    let sim = SimConfig { rate_limits: RateLimits::unlimited(), ..SimConfig::default() };
    let mut run =
        Run::setup(plane, sim, config.concurrency, config.okta_resync, config.dir.clone(), log.clone()).await?;
    let (n, per_ns, delay) = (config.n, config.per_namespace, config.delay());
    let fleet = fleet::create(&run.cluster, &run.sim, "fleet", n, per_ns, &delay).await?;
    let floor_fleet = fleet::create(&run.cluster, &run.sim, "floor", n, per_ns, &delay).await?;
    set_limits(&run.sim.base_url(), window).await?;
    drop(setup);
    let factor = 60.0 / window.as_secs_f64();
    run.report.detail(
        "settings",
        json!({"n": n, "window_ms": window.as_millis() as u64, "factor": factor, "max_share_percent": 50,
               "limits_per_window": {"apps_collection": 100, "app_instance": 600, "token": 600}}),
    );
    // Generous: the necessary calls alone take about 2 N / 50 windows; allow 25 times as many.
    let timeout = Duration::from_secs(600) + window * n as u32;

    let floor = {
        let _phase = log.start("limits: floor onboards and rotates");
        let client = client_from(&run.floor_kubeconfig).await?;
        let floor = Floor::new(&run.sim.base_url(), fleet::TOKEN, client, usize::from(config.concurrency))?;
        let creds = &floor_fleet.creds;
        let from = Timestamp::now();
        floor.adopt(&floor_fleet.label).await?;
        let ready = run.watch.wait_all("floor Ready", creds, timeout, |_, s| is_ready(s)).await?;
        let old = active_kids(&run.watch, creds)?;
        let rotating = Timestamp::now();
        floor.rotate(creds, config.activation_delay).await?;
        let done = run.watch.wait_all("floor rotated", creds, timeout, |c, s| rotated_from(s, &old[&c.app])).await?;
        report_side(&mut run, "floor", FLOOR_USER, &floor_fleet, [from, ready, rotating, done], factor).await?
    };
    fleet::delete(&run.cluster, &run.sim, &floor_fleet).await?;

    let controller = {
        let _phase = log.start("limits: controller onboards and rotates");
        let creds = &fleet.creds;
        let from = Timestamp::now();
        let mut controller = run.start_controller("limits", None)?;
        let watch = &run.watch;
        let ready = while_running(&mut controller, watch.wait_all("Ready", creds, timeout, |_, s| is_ready(s))).await?;
        // What the adoption still does after all Ready counts for the adoption. Pacing pauses the
        // controller for up to a window and a second: quiet means longer than that.
        let quiet = window * 2 + Duration::from_secs(2);
        while_running(&mut controller, run.settle(quiet, Duration::from_secs(1200))).await?;
        let old = active_kids(&run.watch, creds)?;
        let rotating = Timestamp::now();
        fleet::annotate_rotate(&run.cluster, creds, "scale-limits").await?;
        let watch = &run.watch;
        let rotated = watch.wait_all("rotated", creds, timeout, |c, s| rotated_from(s, &old[&c.app]));
        let done = while_running(&mut controller, rotated).await?;
        controller.stop(Duration::from_secs(30)).await?;
        report_side(&mut run, "controller", CONTROLLER_USER, &fleet, [from, ready, rotating, done], factor).await?
    };
    let r = &mut run.report;
    r.info("onboarding time / floor", ratio(controller.onboard / floor.onboard), "same limits, same share");
    r.info("rotation time / floor", ratio(controller.rotate / floor.rotate), "same limits, same share");
    let note = "each merges two or more requests, which are not counted";
    r.info("audit log lines that did not parse", count(run.audit.unparsed_lines as f64), note);
    let entries: Vec<_> = log.entries().into_iter().map(|(n, s)| json!({"phase": n, "seconds": s})).collect();
    r.detail("phases", json!(entries));
    Ok(run.report)
}

/// Reports one side's onboarding and rotation: `times` are its start, all Ready, the start of the
/// rotations, all rotated.
async fn report_side(
    run: &mut Run,
    side: &str,
    user: &str,
    fleet: &Fleet,
    times: [Timestamp; 4],
    factor: f64,
) -> Result<Side> {
    let n = fleet.len();
    let [from, ready, rotating, done] = times;
    let onboard = ready.duration_since(from).as_secs_f64();
    let rotate = done.duration_since(rotating).as_secs_f64();
    let adoption = run.window(user, &fleet.apps(), from, rotating).await?;
    let rotation = run.window(user, &fleet.apps(), rotating, Timestamp::now()).await?;
    let in_apps_bucket = |w: &Window| {
        let calls = w.app_calls.iter().filter(|c| !c.kind.ends_with("/apps/{appId}")).count();
        format!("{:.2} of them in /api/v1/apps*; {}", calls as f64 / n as f64, w.kinds_note())
    };
    let refused = |w: &Window| w.app_calls.iter().filter(|c| c.status == 429).count();
    let real = |s: f64| format!("{:.0} min at Okta's real windows", s * factor / 60.0);
    let r = &mut run.report;
    r.section("limits");
    r.info(&format!("{side}: time to onboard {n} apps"), seconds(onboard), &real(onboard));
    r.info(&format!("{side}: time to rotate {n} apps"), seconds(rotate), &real(rotate));
    let calls = count(per(adoption.app_calls.len(), n));
    r.info(&format!("{side}: Okta calls per adoption"), calls, &in_apps_bucket(&adoption));
    let calls = count(per(rotation.app_calls.len(), n));
    r.info(&format!("{side}: Okta calls per rotation"), calls, &in_apps_bucket(&rotation));
    r.info(&format!("{side}: 429 answers"), count((refused(&adoption) + refused(&rotation)) as f64), "");
    let generated = okta_log::generations(&rotation.refs());
    let one = fleet.creds.iter().filter(|c| generated.get(&c.app) == Some(&1)).count();
    let figure = format!("{side}: rotations that generated exactly one key");
    r.check(&figure, count(one as f64), Target::Exactly(n as f64), "");
    r.detail(&format!("limits_{side}"), json!({"adoption": adoption.to_json(), "rotation": rotation.to_json()}));
    Ok(Side { onboard, rotate })
}
