//! The phases on a settled fleet: a restart, a mass rotation, resyncs, and memory with unrelated
//! Secrets in the cluster.

use super::adoption::FloorFigures;
use super::cluster::{CONTROLLER_USER, Cluster};
use super::controller::{Controller, Usage};
use super::fleet::{self, Fleet, rotated_from};
use super::okta_log;
use super::report::{Report, Target, count, mib, per, ratio, seconds};
use super::run::{Run, Window, active_kids, run_for, spread, while_running};
use super::scenario::Config;
use anyhow::Result;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How late after its turn a resync may still be counted as the schedule's.
pub const SCHEDULE_SLACK: SignedDuration = SignedDuration::from_secs(5);

/// Restarts the controller on the settled fleet; returns it, and its usage after the window.
pub async fn restart_phase(run: &mut Run, config: &Config, settled: &Fleet) -> Result<(Controller, Usage)> {
    let n = settled.len();
    let from = Timestamp::now();
    let mut controller = run.start_controller("restart", None)?;
    run_for(&mut controller, config.restart_window).await?;
    let window = run.window(CONTROLLER_USER, &settled.apps(), from, Timestamp::now()).await?;
    let usage = controller.usage();
    let secs = config.restart_window.as_secs();
    let calls = window.app_calls.len();
    // Each credential keeps its turn of the resync interval across a restart, so about
    // n * window / interval of them resync in the window anyway: those calls are the schedule's,
    // not the restart's.
    let (scheduled, off) =
        okta_log::by_schedule(&window.refs(), &run.watch.uids_by_app(), config.okta_resync, SCHEDULE_SLACK, false);
    let expected = n as f64 * config.restart_window.as_secs_f64() / config.okta_resync.as_secs_f64();
    let r = &mut run.report;
    r.section("restart");
    let figure = format!("Okta calls about apps in the first {secs} s after a restart");
    let note = format!("{n} settled credentials; {}", window.kinds_note());
    r.info(&figure, count(calls as f64), &note);
    let note = format!(
        "within {} s of a credential's turn; about {expected:.0} turns fall in the window (interval {} s)",
        SCHEDULE_SLACK.as_secs(),
        config.okta_resync.as_secs()
    );
    r.info("of them, scheduled resyncs", count(scheduled as f64), &note);
    r.check("Okta calls the restart caused", count(off as f64), Target::Exactly(0.0), "not at a credential's turn");
    r.check("Okta calls per credential at a restart", count(per(off, n)), Target::Exactly(0.0), "");
    r.info("Okta calls not about an app at a restart", count(window.org_calls as f64), "org checks");
    let figure = format!("Kubernetes writes in the first {secs} s after a restart");
    let note = format!("{} requests; {}", window.kube.requests, window.kube.writes_note());
    r.info(&figure, count(window.kube.writes as f64), &note);
    r.check(
        "controller peak RSS after a restart",
        mib(usage.peak_rss_mib),
        Target::AtMost(64.0),
        "no unrelated Secrets",
    );
    r.info(&format!("controller CPU seconds in the first {secs} s"), seconds(usage.cpu_seconds), "");
    r.detail("restart", window.to_json());
    Ok((controller, usage))
}

/// Annotates a subset `samlcred.io/rotate` at once and waits until each is Ready on a new key.
pub async fn rotation_phase(
    run: &mut Run,
    config: &Config,
    fleet: &Fleet,
    controller: &mut Controller,
    floor: &FloorFigures,
) -> Result<()> {
    // The restart before may still be re-reading the fleet; rotations are counted on a quiet one.
    while_running(controller, run.settle(Duration::from_secs(3), Duration::from_secs(1200))).await?;
    let subset = spread(&fleet.creds, config.rotations);
    let old = active_kids(&run.watch, &subset)?;
    let k = subset.len();
    let reconciles_before = controller.reconciles().await;
    let from = Timestamp::now();
    fleet::annotate_rotate(&run.cluster, &subset, "scale-rotation").await?;
    let timeout = Duration::from_secs(180) + Duration::from_secs(1) * k as u32;
    let watch = &run.watch;
    let rotated = watch.wait_all("rotations", &subset, timeout, |c, s| rotated_from(s, &old[&c.app]));
    let done = while_running(controller, rotated).await?;
    let took = done.duration_since(from).as_secs_f64();
    let settled = run.settle(Duration::from_secs(3), Duration::from_secs(60)).await?;
    let apps: HashSet<String> = subset.iter().map(|c| c.app.clone()).collect();
    let window = run.window(CONTROLLER_USER, &apps, from, settled.max(done) + SignedDuration::from_millis(1)).await?;
    let generated = okta_log::generations(&window.refs());
    let one_key = |app: &String| generated.get(app) == Some(&1) && run.sim.keys(app).len() == 2;
    let exactly_one = subset.iter().filter(|c| one_key(&c.app)).count();
    let reconciles = match (reconciles_before, controller.reconciles().await) {
        (Some(a), Some(b)) => Some((b - a) / k as f64),
        _ => None,
    };
    let r = &mut run.report;
    r.section("rotation");
    let note = format!("{k} annotated at once; activation delay {:?}", config.activation_delay);
    r.info("time to rotate the subset", seconds(took), &note);
    let note = format!("floor {:.1} s", floor.rotation_seconds);
    r.info("rotation time / floor", ratio(took / floor.rotation_seconds), &note);
    let calls = count(per(window.app_calls.len(), k));
    r.check("Okta calls per rotation", calls, Target::AtMost(6.0), &window.kinds_note());
    let note = "one 201 generate and two keys in Okta";
    r.check("rotations that generated exactly one key", count(exactly_one as f64), Target::Exactly(k as f64), note);
    r.info("Kubernetes writes per rotation", count(per(window.kube.writes, k)), &window.kube.writes_note());
    r.info("reconciles per rotation", count(reconciles), "");
    r.detail("rotation", window.to_json());
    Ok(())
}

/// Resyncs with a short interval. Okta's real resync is hourly and its buckets per minute; here
/// the interval is `interval`, so a minute is scaled by the same factor: a "minute" is interval/60.
/// The first interval after the start is "after a restart", the rest steady state.
pub async fn resync_phase(run: &mut Run, config: &Config, settled: &Fleet, interval: Duration) -> Result<()> {
    let n = settled.len();
    let start = Timestamp::now();
    let mut controller = run.start_controller("resync", Some(interval))?;
    let span = interval * (1 + config.steady_intervals);
    run_for(&mut controller, span).await?;
    let interval = SignedDuration::try_from(interval)?;
    let end = start + SignedDuration::try_from(span)?;
    let after_restart = run.window(CONTROLLER_USER, &settled.apps(), start, start + interval).await?;
    let steady = run.window(CONTROLLER_USER, &settled.apps(), start + interval, end).await?;
    let usage = controller.stop(Duration::from_secs(30)).await?;
    let minute = interval / 60;
    let gap = SignedDuration::from_secs(2).max(minute * 3);
    let visits = okta_log::visits(&steady.refs(), gap);
    let r = &mut run.report;
    r.section("resync");
    let calls = steady.app_calls.len();
    let note = format!("{calls} calls in {visits} resyncs (an app's calls at most {}s apart)", gap.as_secs_f64());
    r.check("Okta calls per resync", count(per(calls, visits)), Target::AtMost(1.0), &note);
    let writes = count(per(steady.kube.writes, visits));
    r.check("Kubernetes writes per resync", writes, Target::Exactly(0.0), &steady.kube.writes_note());
    let per_interval = visits as f64 / n as f64 / f64::from(config.steady_intervals);
    let note = if per_interval < 0.9 {
        "expected 1; fewer: the controller could not keep up with the interval, so the figures below \
         describe a saturated controller"
    } else {
        "expected 1"
    };
    r.info("resyncs per credential per interval", count(per_interval), note);
    burstiness(r, "steady", &steady, (start + interval, end), minute, gap);
    burstiness(r, "after a restart", &after_restart, (start, start + interval), minute, gap);
    r.check("controller peak RSS, resync phase", mib(usage.peak_rss_mib), Target::AtMost(64.0), "");
    let note = format!("{:.0} s", span.as_secs_f64());
    r.info("controller CPU seconds, resync phase", seconds(usage.cpu_seconds), &note);
    r.detail(
        "resync",
        json!({"after_restart": after_restart.to_json(), "steady": steady.to_json(), "visits": visits,
               "cpu_seconds": usage.cpu_seconds, "scaled_minute_s": minute.as_secs_f64()}),
    );
    Ok(())
}

/// The busiest scaled minute and 10 s of `window` against their mean.
fn burstiness(
    r: &mut Report,
    label: &str,
    window: &Window,
    (from, to): (Timestamp, Timestamp),
    minute: SignedDuration,
    gap: SignedDuration,
) {
    let refs = window.refs();
    let minutes = okta_log::bins(&refs, from, to, minute);
    let (mean, busiest) = okta_log::mean_and_peak(&minutes);
    let (mean_ten, busiest_ten) = okta_log::mean_and_peak(&okta_log::bins(&refs, from, to, minute / 6));
    // What chance alone gives a schedule of independent random resyncs: the busiest of k Poisson
    // bins of mean m is about m + sqrt(2 m ln k).
    let per_bin = okta_log::visits(&refs, gap) as f64 / minutes.len().max(1) as f64;
    let chance = 1.0 + (2.0 * (minutes.len().max(2) as f64).ln() / per_bin.max(1e-9)).sqrt();
    let scale = format!("a minute is {:.2} s here (the interval for 1 h)", minute.as_secs_f64());
    r.info(&format!("Okta calls per scaled minute, mean ({label})"), count(mean), &scale);
    let note = format!("busiest {busiest}; a random schedule would give about {chance:.2}x by chance");
    let busiest = ratio((mean > 0.0).then(|| busiest as f64 / mean));
    r.check(&format!("busiest scaled minute / mean ({label})"), busiest, Target::AtMost(1.5), &note);
    let busiest = ratio((mean_ten > 0.0).then(|| busiest_ten as f64 / mean_ten));
    r.info(&format!("busiest scaled 10 s / mean ({label})"), busiest, &format!("busiest {busiest_ten}"));
}

/// Creates the unrelated Secrets, restarts the controller, and compares its RSS with `baseline`
/// (the restart of the same fleet without them).
pub async fn memory_phase(run: &mut Run, config: &Config, baseline: Usage) -> Result<()> {
    let m = config.unrelated_secrets;
    let started = Instant::now();
    create_unrelated_secrets(&run.cluster, m).await?;
    let created = started.elapsed().as_secs_f64();
    let mut controller = run.start_controller("unrelated-secrets", None)?;
    run_for(&mut controller, config.restart_window).await?;
    let usage = controller.stop(Duration::from_secs(30)).await?;
    let r = &mut run.report;
    r.section("memory");
    let note = format!("{m} Secrets of 100 KiB (created in {created:.0} s), after {:?}", config.restart_window);
    r.info("controller peak RSS after a restart, with unrelated Secrets", mib(usage.peak_rss_mib), &note);
    let note = format!("{:.1} MiB without them; the target is set for 10,000", baseline.peak_rss_mib);
    let added = mib(usage.peak_rss_mib - baseline.peak_rss_mib);
    r.check("RSS added by the unrelated Secrets", added, Target::AtMost(5.0), &note);
    Ok(())
}

/// Secrets the size of Helm release Secrets (100 KiB, incompressible), in namespaces of their own.
async fn create_unrelated_secrets(cluster: &Cluster, count: usize) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Secret;
    use rand::RngCore;
    const PER_NAMESPACE: usize = 500;
    let mut blob = vec![0u8; 100 * 1024];
    rand::rng().fill_bytes(&mut blob);
    let blob = k8s_openapi::ByteString(blob);
    for ns in 0..count.div_ceil(PER_NAMESPACE) {
        cluster.namespace(&format!("unrelated-{ns}"), &[]).await?;
    }
    let secrets = (0..count).map(|i| {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("sh.helm.release.v1.app-{i}.v1")),
                labels: Some([("owner".to_string(), "helm".to_string())].into()),
                ..Default::default()
            },
            type_: Some("helm.sh/release.v1".into()),
            data: Some([("release".to_string(), blob.clone())].into()),
            ..Default::default()
        };
        let ns = format!("unrelated-{}", i / PER_NAMESPACE);
        let api: kube::Api<Secret> = kube::Api::namespaced(cluster.admin.clone(), &ns);
        async move { api.create(&Default::default(), &secret).await.map(drop) }
    });
    futures::stream::iter(secrets).buffer_unordered(8).try_collect::<Vec<()>>().await?;
    Ok(())
}
