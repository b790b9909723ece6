//! The main run, its phases in order, each counting in a window of time of its own:
//! 1. floor: the floor client adopts its fleet and rotates a subset; its fleet is then deleted;
//! 2. adoption: a controller starts on N pre-created credentials; time to all Ready, then settled;
//! 3. latency: credentials created one at a time into the settled fleet, create -> Secret;
//! 4. restart: SIGTERM, a new controller, what it does in its first minutes;
//! 5. rotation: a subset annotated `samlcred.io/rotate` at once;
//! 6. resync: a controller with a short resync interval: the first interval after its start, then
//!    steady state;
//! 7. memory: unrelated 100 KiB Secrets created, a restart, its RSS against the restart of step 4.

use super::PhaseLog;
use super::adoption::{adoption_phase, floor_phase, latency_phase};
use super::cluster::{CONTROLLER_USER, start_control_plane};
use super::fleet::{self, Fleet};
use super::report::{Report, Target, count, per, percent};
use super::run::Run;
use super::settled::{memory_phase, restart_phase, resync_phase, rotation_phase};
use anyhow::Result;
use jiff::Timestamp;
use okta_sim::{RateLimits, SimConfig};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What to run. The bench reads it from the environment; the smoke test sets a small one.
#[derive(Debug, Clone)]
pub struct Config {
    pub n: usize,
    pub per_namespace: usize,
    pub concurrency: u16,
    /// Every credential's activation.delay (Automatic): short, so that rotations finish in the run.
    pub activation_delay: Duration,
    /// How long the first minutes after a restart are watched.
    pub restart_window: Duration,
    /// Credentials rotated at once (and by the floor).
    pub rotations: usize,
    /// Credentials created one at a time for create -> Secret latency (0 skips the phase).
    pub latency_samples: usize,
    /// The resync interval of the resync phase (None skips it), and how many intervals of steady
    /// state are watched after the first one.
    pub resync: Option<Duration>,
    pub steady_intervals: u32,
    /// The controllers' `--okta-resync-interval` outside the resync phase (the product's default
    /// is 1 h). Each credential resyncs at its own turn of the interval, so a window of w seconds
    /// sees about n * w / interval scheduled resyncs; they are not adoption or restart calls.
    pub okta_resync: Duration,
    /// Unrelated 100 KiB Secrets for the memory phase (0 skips it).
    pub unrelated_secrets: usize,
    /// Where the control plane's files and the controllers' logs go.
    pub dir: PathBuf,
}

impl Config {
    /// The spec's `activation.delay`.
    pub fn delay(&self) -> String {
        format!("{}s", self.activation_delay.as_secs())
    }
}

/// Starts the control plane (before any async runtime: see `start_control_plane`), runs the
/// phases on a two-worker runtime (the machine has two cores), and returns the report.
pub fn run_main(config: Config) -> Result<Report> {
    on_control_plane(&config, phases)
}

fn on_control_plane<'c, F, Fut>(config: &'c Config, run: F) -> Result<Report>
where
    F: FnOnce(&'static testenv::ControlPlane, &'c Config) -> Fut,
    Fut: std::future::Future<Output = Result<Report>>,
{
    let plane = start_control_plane(&config.dir.join("cluster"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(run(plane, config));
    plane.stop();
    result
}

/// `SCALE_PHASE=memory`: only what the peak RSS figures need (adoption of N credentials, then a
/// restart of the settled fleet), for profiling the controller's memory (see
/// `SCALE_CONTROLLER_WRAPPER`) without the floor, rotation and resync phases.
pub fn run_memory(config: Config) -> Result<Report> {
    on_control_plane(&config, memory_only)
}

async fn memory_only(plane: &'static testenv::ControlPlane, config: &Config) -> Result<Report> {
    let phases = PhaseLog::default();
    let setup = phases.start("setup");
    let sim = SimConfig { rate_limits: RateLimits::unlimited(), ..SimConfig::default() };
    let mut run =
        Run::setup(plane, sim, config.concurrency, config.okta_resync, config.dir.clone(), phases.clone()).await?;
    let fleet = fleet::create(&run.cluster, &run.sim, "fleet", config.n, config.per_namespace, &config.delay()).await?;
    drop(setup);
    let adoption = phases.start("adoption");
    let mut controller = run.start_controller("adoption", None)?;
    let timeout = super::adoption::ready_timeout(config.n);
    let all_ready = run.watch.wait_all("credentials Ready", &fleet.creds, timeout, |_, s| fleet::is_ready(s));
    super::run::while_running(&mut controller, all_ready).await?;
    run.settle(Duration::from_secs(3), Duration::from_secs(60)).await?;
    let adopted = controller.stop(Duration::from_secs(30)).await?;
    drop(adoption);
    let restart = phases.start("restart of a settled fleet");
    let mut controller = run.start_controller("restart", None)?;
    super::run::run_for(&mut controller, config.restart_window).await?;
    let restarted = controller.stop(Duration::from_secs(30)).await?;
    drop(restart);
    let r = &mut run.report;
    r.section("memory");
    let note = format!("VmHWM with {} credentials; the target is set for 10,000", config.n);
    r.check("controller peak RSS, adoption", super::report::mib(adopted.peak_rss_mib), Target::AtMost(64.0), &note);
    let note = format!("{} s after the start", config.restart_window.as_secs());
    r.check(
        "controller peak RSS after a restart",
        super::report::mib(restarted.peak_rss_mib),
        Target::AtMost(64.0),
        &note,
    );
    let phase_times: Vec<_> = phases.entries().into_iter().map(|(n, s)| json!({"phase": n, "seconds": s})).collect();
    r.detail("phases", json!(phase_times));
    Ok(run.report)
}

async fn phases(plane: &'static testenv::ControlPlane, config: &Config) -> Result<Report> {
    let total = Instant::now();
    let phases = PhaseLog::default();
    let setup = phases.start("setup");
    let sim = SimConfig { rate_limits: RateLimits::unlimited(), ..SimConfig::default() };
    let mut run =
        Run::setup(plane, sim, config.concurrency, config.okta_resync, config.dir.clone(), phases.clone()).await?;
    let run_start = Timestamp::now();
    let (n, per_ns, delay) = (config.n, config.per_namespace, config.delay());
    let fleet = fleet::create(&run.cluster, &run.sim, "fleet", n, per_ns, &delay).await?;
    let floor_fleet = fleet::create(&run.cluster, &run.sim, "floor", n, per_ns, &delay).await?;
    drop(setup);
    run.report.detail(
        "settings",
        json!({"n": n, "namespaces": fleet.namespaces().len(), "per_namespace": per_ns,
               "org": "one ClusterOktaOrg for every namespace", "concurrency": config.concurrency,
               "activation_delay_s": config.activation_delay.as_secs(), "rotations": config.rotations,
               "restart_window_s": config.restart_window.as_secs(), "resync_s": config.resync.map(|d| d.as_secs()),
               "unrelated_secrets": config.unrelated_secrets, "okta_limits": "lifted"}),
    );

    let floor = {
        let _phase = phases.start("floor: adoption and rotation");
        floor_phase(&mut run, config, &floor_fleet).await?
    };
    fleet::delete(&run.cluster, &run.sim, &floor_fleet).await?;
    let mut controller = {
        let _phase = phases.start("adoption");
        adoption_phase(&mut run, config, &fleet, &floor).await?
    };
    let mut settled = fleet.creds.clone();
    if config.latency_samples > 0 {
        let _phase = phases.start("create -> Secret latency");
        settled.extend(latency_phase(&mut run, config, &mut controller).await?);
    }
    controller.stop(Duration::from_secs(30)).await?;
    let settled = Fleet { label: "settled".into(), creds: settled };
    let (mut controller, restart_usage) = {
        let _phase = phases.start("restart of a settled fleet");
        restart_phase(&mut run, config, &settled).await?
    };
    {
        let _phase = phases.start("rotation");
        rotation_phase(&mut run, config, &fleet, &mut controller, &floor).await?;
    }
    controller.stop(Duration::from_secs(30)).await?;
    if let Some(interval) = config.resync {
        let _phase = phases.start("resync: after a restart, then steady state");
        resync_phase(&mut run, config, &settled, interval).await?;
    }
    if config.unrelated_secrets > 0 {
        let _phase = phases.start("memory with unrelated Secrets");
        memory_phase(&mut run, config, restart_usage).await?;
    }

    run.audit.sync(&run.cluster.admin).await?;
    let all = run.audit.window(CONTROLLER_USER, run_start, Timestamp::now());
    let r = &mut run.report;
    r.section("kubernetes");
    let note = format!("{} of {} controller writes in the whole run", all.conflicts, all.writes);
    r.check("409 answers, share of writes", percent(per(all.conflicts * 100, all.writes)), Target::Below(1.0), &note);
    let note = "each merges two or more requests of any identity, which are not counted";
    r.info("audit log lines that did not parse", count(run.audit.unparsed_lines as f64), note);
    r.detail("kubernetes_whole_run", all.to_json());
    let phase_times: Vec<_> = phases.entries().into_iter().map(|(n, s)| json!({"phase": n, "seconds": s})).collect();
    r.detail("phases", json!(phase_times));
    r.detail("total_seconds", json!(total.elapsed().as_secs_f64()));
    Ok(run.report)
}
