//! The phases of the main run, in order, each with its own window of Okta calls and Kubernetes
//! requests:
//! 1. floor: the floor client adopts its fleet, rotates a subset; its fleet is then deleted;
//! 2. adoption: a controller starts on N pre-created credentials; time to all Ready, then settled;
//! 3. latency: credentials created one at a time into the settled fleet, create -> Secret;
//! 4. restart: SIGTERM, a new controller; what it does in its first minutes;
//! 5. rotation: a subset annotated `samlcred.io/rotate` at once;
//! 6. resync: a controller with a short resync interval: the first interval after its start, then
//!    steady state;
//! 7. memory: unrelated 100 KiB Secrets created, a restart, its RSS against the restart of step 4.

use super::PhaseLog;
use super::audit::{AuditLog, KubeCounts};
use super::cluster::{CONTROLLER_USER, Cluster, FLOOR_USER, client_from, start_control_plane};
use super::controller::{Controller, ControllerArgs, Usage};
use super::fleet::{self, Cred, Fleet, Watch, is_ready, rotated_from};
use super::floor::Floor;
use super::okta_log::{self, Call};
use super::report::{Report, Target};
use anyhow::{Context, Result};
use jiff::{SignedDuration, Timestamp};
use okta_sim::{OktaSim, RateLimits, SimConfig};
use serde_json::json;
use std::collections::{HashMap, HashSet};
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
    /// Unrelated 100 KiB Secrets for the memory phase (0 skips it).
    pub unrelated_secrets: usize,
    /// Where the control plane's files and the controllers' logs go.
    pub dir: PathBuf,
}

/// Starts the control plane (before any async runtime: see `start_control_plane`), runs the
/// phases on a two-worker runtime (the machine has two cores), and returns the report.
pub fn run_main(config: Config) -> Result<Report> {
    let plane = start_control_plane(&config.dir.join("cluster"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(main_phases(plane, &config));
    plane.stop();
    result
}

/// What every phase uses.
pub struct Run {
    pub cluster: Cluster,
    pub sim: OktaSim,
    pub audit: AuditLog,
    pub watch: Watch,
    pub controller_args: ControllerArgs,
    pub floor_kubeconfig: PathBuf,
    pub phases: PhaseLog,
    pub report: Report,
    pub dir: PathBuf,
    started: usize,
}

impl Run {
    pub async fn setup(
        plane: &'static testenv::ControlPlane,
        sim_config: SimConfig,
        config: &Config,
        phases: PhaseLog,
    ) -> Result<Run> {
        samlcred::okta::install_crypto_provider();
        let cluster = Cluster::connect(plane).await?;
        let sim = OktaSim::start(SimConfig { reuse_stock_keys: true, ..sim_config }).await?;
        fleet::create_org(&cluster, &sim).await?;
        let controller_kubeconfig = cluster.identity(CONTROLLER_USER).await?;
        let floor_kubeconfig = cluster.identity(FLOOR_USER).await?;
        let audit = AuditLog::new(cluster.audit_log(), &[CONTROLLER_USER, FLOOR_USER]);
        let watch = Watch::start(&cluster).await?;
        let controller_args = ControllerArgs {
            kubeconfig: controller_kubeconfig,
            concurrency: config.concurrency,
            okta_resync: Duration::from_secs(3600),
        };
        Ok(Run {
            cluster,
            sim,
            audit,
            watch,
            controller_args,
            floor_kubeconfig,
            phases,
            report: Report::default(),
            dir: config.dir.clone(),
            started: 0,
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        okta_log::classify(&self.sim.calls())
    }

    pub fn start_controller(&mut self, name: &str, resync: Option<Duration>) -> Result<Controller> {
        self.started += 1;
        let mut args = self.controller_args.clone();
        if let Some(resync) = resync {
            args.okta_resync = resync;
        }
        Controller::start(&args, &self.dir.join(format!("controller-{}-{name}.log", self.started)))
    }

    /// Waits until neither Okta nor the API server has seen a request of the controller for
    /// `quiet`; gives up (and says so) after `max`. Returns the moment the last request was seen.
    pub async fn settle(&mut self, quiet: Duration, max: Duration) -> Result<Timestamp> {
        let started = Instant::now();
        let mut last = (usize::MAX, usize::MAX);
        let mut changed = Instant::now();
        let mut changed_at = Timestamp::now();
        loop {
            self.audit.sync(&self.cluster.admin).await?;
            let now = (self.sim.calls().len(), self.audit.requests.len());
            if now != last {
                (last, changed, changed_at) = (now, Instant::now(), Timestamp::now());
            } else if changed.elapsed() >= quiet {
                return Ok(changed_at);
            }
            if started.elapsed() > max {
                eprintln!("scale:   still busy after {max:?}; measuring up to now");
                return Ok(Timestamp::now());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Okta calls about `apps` and the controller's Kubernetes requests in `[from, to)`.
    pub async fn window(
        &mut self,
        user: &str,
        apps: &HashSet<String>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Window> {
        self.audit.sync(&self.cluster.admin).await?;
        let calls = self.calls();
        let app_calls: Vec<Call> = okta_log::for_apps(&calls, apps, from, to).into_iter().cloned().collect();
        let org_calls = okta_log::org_level(&calls, from, to).len();
        Ok(Window { app_calls, org_calls, kube: self.audit.window(user, from, to) })
    }
}

/// What happened in one window.
pub struct Window {
    pub app_calls: Vec<Call>,
    pub org_calls: usize,
    pub kube: KubeCounts,
}

impl Window {
    pub fn refs(&self) -> Vec<&Call> {
        self.app_calls.iter().collect()
    }

    pub fn okta_json(&self) -> serde_json::Value {
        json!({"app_calls": self.app_calls.len(), "org_level_calls": self.org_calls,
               "by_kind": okta_log::by_kind(&self.refs()),
               "status_429": self.app_calls.iter().filter(|c| c.status == 429).count()})
    }
}

/// Waits for `future` while checking every half second that the controller still runs.
pub async fn while_running<T>(
    controller: &mut Controller,
    future: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::pin!(future);
    loop {
        tokio::select! {
            result = &mut future => return result,
            _ = tokio::time::sleep(Duration::from_millis(500)) => controller.check_running()?,
        }
    }
}

/// Lets the controller run for `duration` (a measurement window), failing if it exits meanwhile.
pub async fn run_for(controller: &mut Controller, duration: Duration) -> Result<()> {
    while_running(controller, async {
        tokio::time::sleep(duration).await;
        Ok(())
    })
    .await
}

/// `count` credentials spread evenly over the fleet.
pub fn spread(creds: &[Cred], count: usize) -> Vec<Cred> {
    let count = count.min(creds.len()).max(1);
    (0..count).map(|i| creds[i * creds.len() / count].clone()).collect()
}

fn per(value: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| value as f64 / n as f64)
}

async fn main_phases(plane: &'static testenv::ControlPlane, config: &Config) -> Result<Report> {
    let total = Instant::now();
    let phases = PhaseLog::default();
    let phase = phases.start("setup");
    let sim = SimConfig { rate_limits: RateLimits::unlimited(), ..SimConfig::default() };
    let mut run = Run::setup(plane, sim, config, phases.clone()).await?;
    let run_start = Timestamp::now();
    let delay = format!("{}s", config.activation_delay.as_secs());
    let fleet = fleet::create(&run.cluster, &run.sim, "fleet", config.n, config.per_namespace, &delay).await?;
    let floor_fleet = fleet::create(&run.cluster, &run.sim, "floor", config.n, config.per_namespace, &delay).await?;
    drop(phase);
    run.report.detail(
        "settings",
        json!({"n": config.n, "namespaces": fleet.namespaces().len(), "per_namespace": config.per_namespace,
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

    let adoption = {
        let _phase = phases.start("adoption");
        adoption_phase(&mut run, &fleet, &floor).await?
    };
    let mut settled = fleet.creds.clone();
    let mut controller = adoption;
    if config.latency_samples > 0 {
        let _phase = phases.start("create -> Secret latency");
        settled.extend(latency_phase(&mut run, config, &mut controller).await?);
    }
    controller.stop(Duration::from_secs(30)).await?;

    let settled = Fleet { label: "settled".into(), creds: settled };
    let (controller, restart_rss) = {
        let _phase = phases.start("restart of a settled fleet");
        restart_phase(&mut run, config, &settled).await?
    };
    let mut controller = controller;
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
        memory_phase(&mut run, config, restart_rss).await?;
    }

    run.audit.sync(&run.cluster.admin).await?;
    let all = run.audit.window(CONTROLLER_USER, run_start, Timestamp::now());
    let share = per(all.conflicts, all.writes).map(|r| r * 100.0);
    let note = format!("{} of {} controller writes in the whole run", all.conflicts, all.writes);
    run.report.add("kubernetes", "409 answers, share of writes", share, "%", Target::Below(1.0), &note);
    run.report.detail("kubernetes_whole_run", all.to_json());
    let phase_times: Vec<_> = phases.entries().into_iter().map(|(n, s)| json!({"phase": n, "seconds": s})).collect();
    run.report.detail("phases", json!(phase_times));
    run.report.detail("total_seconds", json!(total.elapsed().as_secs_f64()));
    Ok(run.report)
}

/// What the floor measured, for the ratios.
pub struct FloorFigures {
    pub adoption_seconds: f64,
    pub rotation_seconds: f64,
}

async fn floor_phase(run: &mut Run, config: &Config, fleet: &Fleet) -> Result<FloorFigures> {
    let n = fleet.len();
    let floor_client = client_from(&run.floor_kubeconfig).await?;
    let floor = Floor::new(&run.sim.base_url(), fleet::TOKEN, floor_client, usize::from(config.concurrency))?;
    let timeout = Duration::from_secs(120) + Duration::from_millis(100) * n as u32;

    let from = Timestamp::now();
    floor.adopt(&fleet.label).await?;
    let ready = run.watch.wait_all("floor credentials Ready", &fleet.creds, timeout, |_, s| is_ready(s)).await?;
    let adoption_seconds = ready.duration_since(from).as_secs_f64();
    let window = run.window(FLOOR_USER, &fleet.apps(), from, Timestamp::now()).await?;
    let r = &mut run.report;
    r.add("floor", "floor: time to all Ready", Some(adoption_seconds), "s", Target::None, &format!("{n} credentials"));
    r.add(
        "floor",
        "floor: Okta calls per adoption",
        per(window.app_calls.len(), n),
        "",
        Target::None,
        "GET app, keys, metadata",
    );
    r.add(
        "floor",
        "floor: Kubernetes writes per adoption",
        per(window.kube.writes, n),
        "",
        Target::None,
        "Secret, status",
    );
    r.add("floor", "floor: Kubernetes requests per adoption", per(window.kube.requests, n), "", Target::None, "");
    r.detail("floor_adoption", json!({"okta": window.okta_json(), "kubernetes": window.kube.to_json()}));

    let subset = spread(&fleet.creds, config.rotations);
    let old = active_kids(&run.watch, &subset)?;
    let from = Timestamp::now();
    floor.rotate(&subset, config.activation_delay).await?;
    let done = run.watch.wait_all("floor rotations", &subset, timeout, |c, s| rotated_from(s, &old[&c.app])).await?;
    let rotation_seconds = done.duration_since(from).as_secs_f64();
    let apps: HashSet<String> = subset.iter().map(|c| c.app.clone()).collect();
    let window = run.window(FLOOR_USER, &apps, from, Timestamp::now()).await?;
    let k = subset.len();
    let r = &mut run.report;
    r.add(
        "floor",
        "floor: time to rotate the subset",
        Some(rotation_seconds),
        "s",
        Target::None,
        &format!("{k} at once, activation delay {:?}", config.activation_delay),
    );
    r.add(
        "floor",
        "floor: Okta calls per rotation",
        per(window.app_calls.len(), k),
        "",
        Target::None,
        "generate, GET+PUT app, metadata",
    );
    r.add("floor", "floor: Kubernetes writes per rotation", per(window.kube.writes, k), "", Target::None, "");
    r.detail("floor_rotation", json!({"okta": window.okta_json(), "kubernetes": window.kube.to_json()}));
    Ok(FloorFigures { adoption_seconds, rotation_seconds })
}

async fn adoption_phase(run: &mut Run, fleet: &Fleet, floor: &FloorFigures) -> Result<Controller> {
    let n = fleet.len();
    let timeout = Duration::from_secs(120) + Duration::from_millis(100) * n as u32;
    let from = Timestamp::now();
    let mut controller = run.start_controller("adoption", None)?;
    let watch = &run.watch;
    let ready =
        while_running(&mut controller, watch.wait_all("credentials Ready", &fleet.creds, timeout, |_, s| is_ready(s)))
            .await?;
    let seconds = ready.duration_since(from).as_secs_f64();
    let settled = run.settle(Duration::from_secs(3), Duration::from_secs(60)).await?;
    let window =
        run.window(CONTROLLER_USER, &fleet.apps(), from, settled.max(ready) + SignedDuration::from_millis(1)).await?;
    let reconciles = controller.reconciles().await;
    let usage = controller.usage();
    let r = &mut run.report;
    r.add(
        "adoption",
        "time to all Ready",
        Some(seconds),
        "s",
        Target::None,
        &format!("{n} credentials, from the controller's start"),
    );
    r.add(
        "adoption",
        "time to all Ready / floor",
        Some(seconds / floor.adoption_seconds),
        "x",
        Target::AtMost(1.5),
        &format!("floor {:.1} s", floor.adoption_seconds),
    );
    let kinds = okta_log::by_kind(&window.refs());
    let kinds_note = kinds.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
    r.add("adoption", "Okta calls per adoption", per(window.app_calls.len(), n), "", Target::AtMost(3.0), &kinds_note);
    r.add(
        "adoption",
        "Okta calls not about an app (org checks)",
        Some(window.org_calls as f64),
        "",
        Target::None,
        "whole adoption",
    );
    let note = window.kube.writes_note();
    r.add("adoption", "Kubernetes writes per adoption", per(window.kube.writes, n), "", Target::AtMost(2.0), &note);
    r.add(
        "adoption",
        "Kubernetes requests per adoption",
        per(window.kube.requests, n),
        "",
        Target::None,
        &format!("{} answered 404", window.kube.not_found),
    );
    r.add(
        "adoption",
        "409 answers during adoption",
        Some(window.kube.conflicts as f64),
        "",
        Target::None,
        &format!("of {} writes", window.kube.writes),
    );
    r.add(
        "adoption",
        "reconciles per credential",
        reconciles.map(|c| c / n as f64),
        "",
        Target::None,
        "count of samlcred_reconcile_duration_seconds",
    );
    r.add(
        "adoption",
        "controller peak RSS, adoption",
        Some(usage.peak_rss_mib),
        "MiB",
        Target::AtMost(64.0),
        &format!("VmHWM with {n} credentials; the target is set for 10,000"),
    );
    r.add(
        "adoption",
        "controller CPU seconds, adoption",
        Some(usage.cpu_seconds),
        "s",
        Target::None,
        "utime+stime, from its start until settled",
    );
    r.detail(
        "adoption",
        json!({"okta": window.okta_json(), "kubernetes": window.kube.to_json(), "cpu_seconds": usage.cpu_seconds}),
    );
    Ok(controller)
}

async fn latency_phase(run: &mut Run, config: &Config, controller: &mut Controller) -> Result<Vec<Cred>> {
    use k8s_openapi::api::core::v1::Secret;
    let ns = "latency";
    run.cluster.namespace(ns, &[(fleet::FLEET_LABEL, ns)]).await?;
    let apps = fleet::seed_apps(&run.sim, ns, config.latency_samples);
    let delay = format!("{}s", config.activation_delay.as_secs());
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
        fleet::create_credential(&run.cluster, ns, &cred, &delay).await?;
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
    run.report.add("latency", "create -> Secret p50", Some(quantile(0.5)), "ms", Target::None, &note);
    run.report.add("latency", "create -> Secret p99", Some(quantile(0.99)), "ms", Target::None, &note);
    run.report.detail("latency_ms", json!(latencies));
    // Let the newcomers finish (status written) before the fleet counts as settled.
    let watch = &run.watch;
    while_running(
        controller,
        watch.wait_all("latency credentials Ready", &creds, Duration::from_secs(120), |_, s| is_ready(s)),
    )
    .await?;
    run.settle(Duration::from_secs(3), Duration::from_secs(60)).await?;
    Ok(creds)
}

/// Returns the new controller and its peak RSS after the restart window.
async fn restart_phase(run: &mut Run, config: &Config, settled: &Fleet) -> Result<(Controller, Usage)> {
    let n = settled.len();
    let from = Timestamp::now();
    let mut controller = run.start_controller("restart", None)?;
    run_for(&mut controller, config.restart_window).await?;
    let window = run.window(CONTROLLER_USER, &settled.apps(), from, Timestamp::now()).await?;
    let usage = controller.usage();
    let secs = config.restart_window.as_secs();
    let kinds = okta_log::by_kind(&window.refs());
    let kinds_note = kinds.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
    let r = &mut run.report;
    r.add(
        "restart",
        &format!("Okta calls about apps in the first {secs} s after a restart"),
        Some(window.app_calls.len() as f64),
        "",
        Target::Exactly(0.0),
        &format!("{n} settled credentials; {kinds_note}"),
    );
    r.add(
        "restart",
        "Okta calls per credential at a restart",
        per(window.app_calls.len(), n),
        "",
        Target::Exactly(0.0),
        "",
    );
    r.add(
        "restart",
        "Okta calls not about an app at a restart",
        Some(window.org_calls as f64),
        "",
        Target::None,
        "org checks",
    );
    r.add(
        "restart",
        &format!("Kubernetes writes in the first {secs} s after a restart"),
        Some(window.kube.writes as f64),
        "",
        Target::None,
        &format!("{} requests; {}", window.kube.requests, window.kube.writes_note()),
    );
    r.add(
        "restart",
        "controller peak RSS after a restart",
        Some(usage.peak_rss_mib),
        "MiB",
        Target::AtMost(64.0),
        "no unrelated Secrets",
    );
    r.add(
        "restart",
        &format!("controller CPU seconds in the first {secs} s"),
        Some(usage.cpu_seconds),
        "s",
        Target::None,
        "",
    );
    r.detail("restart", json!({"okta": window.okta_json(), "kubernetes": window.kube.to_json()}));
    Ok((controller, usage))
}

async fn rotation_phase(
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
    let done =
        while_running(controller, watch.wait_all("rotations", &subset, timeout, |c, s| rotated_from(s, &old[&c.app])))
            .await?;
    let seconds = done.duration_since(from).as_secs_f64();
    let settled = run.settle(Duration::from_secs(3), Duration::from_secs(60)).await?;
    let apps: HashSet<String> = subset.iter().map(|c| c.app.clone()).collect();
    let window = run.window(CONTROLLER_USER, &apps, from, settled.max(done) + SignedDuration::from_millis(1)).await?;
    let generated = okta_log::generations(&window.refs());
    let exactly_one =
        subset.iter().filter(|c| generated.get(&c.app) == Some(&1) && run.sim.keys(&c.app).len() == 2).count();
    let reconciles = match (reconciles_before, controller.reconciles().await) {
        (Some(a), Some(b)) => Some((b - a) / k as f64),
        _ => None,
    };
    let kinds = okta_log::by_kind(&window.refs());
    let kinds_note = kinds.iter().map(|(kind, v)| format!("{kind}: {v}")).collect::<Vec<_>>().join(", ");
    let r = &mut run.report;
    r.add(
        "rotation",
        "time to rotate the subset",
        Some(seconds),
        "s",
        Target::None,
        &format!("{k} annotated at once; activation delay {:?}", config.activation_delay),
    );
    r.add(
        "rotation",
        "rotation time / floor",
        Some(seconds / floor.rotation_seconds),
        "x",
        Target::None,
        &format!("floor {:.1} s", floor.rotation_seconds),
    );
    r.add("rotation", "Okta calls per rotation", per(window.app_calls.len(), k), "", Target::AtMost(6.0), &kinds_note);
    r.add(
        "rotation",
        "rotations that generated exactly one key",
        Some(exactly_one as f64),
        "",
        Target::Exactly(k as f64),
        "one 201 generate and two keys in Okta",
    );
    r.add(
        "rotation",
        "Kubernetes writes per rotation",
        per(window.kube.writes, k),
        "",
        Target::None,
        &window.kube.writes_note(),
    );
    r.add("rotation", "reconciles per rotation", reconciles, "", Target::None, "");
    r.detail("rotation", json!({"okta": window.okta_json(), "kubernetes": window.kube.to_json()}));
    Ok(())
}

/// Okta's real resync is hourly and its buckets are per minute; here the interval is `interval`,
/// so a minute is scaled by the same factor (interval / 1 h): a "minute" is interval/60.
async fn resync_phase(run: &mut Run, config: &Config, settled: &Fleet, interval: Duration) -> Result<()> {
    let n = settled.len();
    let start = Timestamp::now();
    let mut controller = run.start_controller("resync", Some(interval))?;
    let span = interval * (1 + config.steady_intervals);
    run_for(&mut controller, span).await?;
    let interval_s = SignedDuration::try_from(interval)?;
    let minute = interval_s / 60;
    let ten = minute / 6;
    let after_restart = run.window(CONTROLLER_USER, &settled.apps(), start, start + interval_s).await?;
    let steady_from = start + interval_s;
    let steady =
        run.window(CONTROLLER_USER, &settled.apps(), steady_from, start + SignedDuration::try_from(span)?).await?;
    let usage = controller.stop(Duration::from_secs(30)).await?;
    let gap = SignedDuration::from_secs(2).max(minute * 3);
    let visits = okta_log::visits(&steady.refs(), gap);
    let scale = format!("interval {}s for 1 h: a minute is {:.2} s", interval.as_secs(), minute.as_secs_f64());
    let r = &mut run.report;
    r.add(
        "resync",
        "Okta calls per resync",
        per(steady.app_calls.len(), visits),
        "",
        Target::AtMost(1.0),
        &format!(
            "{} calls in {visits} resyncs (visits: an app's calls {}s apart at most)",
            steady.app_calls.len(),
            gap.as_secs_f64()
        ),
    );
    r.add(
        "resync",
        "Kubernetes writes per resync",
        per(steady.kube.writes, visits),
        "",
        Target::Exactly(0.0),
        &format!("{} writes: {}", steady.kube.writes, steady.kube.writes_note()),
    );
    let per_interval = visits as f64 / n as f64 / f64::from(config.steady_intervals);
    let note = if per_interval < 0.9 {
        "expected 1; fewer: the controller could not keep up with the interval, so the figures below describe a saturated controller"
    } else {
        "expected 1"
    };
    r.add("resync", "resyncs per credential per interval", Some(per_interval), "", Target::None, note);
    for (label, window, from, to) in [
        ("steady", &steady, steady_from, steady_from + interval_s * i32::try_from(config.steady_intervals)?),
        ("after a restart", &after_restart, start, start + interval_s),
    ] {
        let refs = window.refs();
        let minutes = okta_log::bins(&refs, from, to, minute);
        let (mean, busiest_minute) = okta_log::mean_and_peak(&minutes);
        let (mean10, busiest_ten) = okta_log::mean_and_peak(&okta_log::bins(&refs, from, to, ten));
        // What chance alone gives a schedule of independent random resyncs: the busiest of k
        // Poisson bins of mean m is about m + sqrt(2 m ln k).
        let per_bin = okta_log::visits(&refs, gap) as f64 / minutes.len().max(1) as f64;
        let chance = 1.0 + (2.0 * (minutes.len().max(2) as f64).ln() / per_bin.max(1e-9)).sqrt();
        let note = format!("busiest {busiest_minute}; a random schedule would give about {chance:.2}x by chance");
        r.add("resync", &format!("Okta calls per scaled minute, mean ({label})"), Some(mean), "", Target::None, &scale);
        r.add(
            "resync",
            &format!("busiest scaled minute / mean ({label})"),
            (mean > 0.0).then(|| busiest_minute as f64 / mean),
            "x",
            Target::AtMost(1.5),
            &note,
        );
        r.add(
            "resync",
            &format!("busiest scaled 10 s / mean ({label})"),
            (mean10 > 0.0).then(|| busiest_ten as f64 / mean10),
            "x",
            Target::None,
            &format!("busiest {busiest_ten}"),
        );
    }
    r.add("resync", "controller peak RSS, resync phase", Some(usage.peak_rss_mib), "MiB", Target::AtMost(64.0), "");
    r.add(
        "resync",
        "controller CPU seconds, resync phase",
        Some(usage.cpu_seconds),
        "s",
        Target::None,
        &format!("{:.0} s", span.as_secs_f64()),
    );
    r.detail("resync", json!({"after_restart": after_restart.okta_json(), "steady": steady.okta_json(), "steady_kubernetes": steady.kube.to_json(), "visits": visits, "cpu_seconds": usage.cpu_seconds}));
    Ok(())
}

async fn memory_phase(run: &mut Run, config: &Config, baseline: Usage) -> Result<()> {
    let m = config.unrelated_secrets;
    let created = Instant::now();
    create_unrelated_secrets(&run.cluster, m).await?;
    let created = created.elapsed().as_secs_f64();
    let mut controller = run.start_controller("unrelated-secrets", None)?;
    run_for(&mut controller, config.restart_window).await?;
    let usage = controller.stop(Duration::from_secs(30)).await?;
    let added = usage.peak_rss_mib - baseline.peak_rss_mib;
    let r = &mut run.report;
    r.add(
        "memory",
        "controller peak RSS after a restart, with unrelated Secrets",
        Some(usage.peak_rss_mib),
        "MiB",
        Target::None,
        &format!("{m} Secrets of 100 KiB (created in {created:.0} s)"),
    );
    r.add(
        "memory",
        "RSS added by the unrelated Secrets",
        Some(added),
        "MiB",
        Target::AtMost(5.0),
        &format!("{:.1} MiB without them; the target is set for 10,000", baseline.peak_rss_mib),
    );
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
    futures::stream::iter((0..count).map(|i| {
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
        let api: kube::Api<Secret> =
            kube::Api::namespaced(cluster.admin.clone(), &format!("unrelated-{}", i / PER_NAMESPACE));
        async move { api.create(&Default::default(), &secret).await.map(|_| ()) }
    }))
    .buffer_unordered(8)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

/// The active kid in status of each of `creds`, by app.
pub fn active_kids(watch: &Watch, creds: &[Cred]) -> Result<HashMap<String, String>> {
    let kids: HashMap<String, String> = creds
        .iter()
        .filter_map(|c| {
            let sac = watch.get(c)?;
            Some((c.app.clone(), fleet::active_kid(&sac)?.to_string()))
        })
        .collect();
    anyhow::ensure!(kids.len() == creds.len(), "not every credential to rotate has an active key in status");
    Ok(kids)
}
