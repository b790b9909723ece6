//! What every phase uses: the cluster, the simulator, the audit log, the watch of credentials, the
//! controller's identity and the report; and the windows of time a phase counts calls in.

use super::PhaseLog;
use super::audit::{AuditLog, KubeCounts};
use super::cluster::{CONTROLLER_USER, Cluster, FLOOR_USER};
use super::controller::{Controller, ControllerArgs};
use super::fleet::{self, Cred, Watch};
use super::okta_log::{self, Call};
use super::report::Report;
use anyhow::Result;
use jiff::Timestamp;
use okta_sim::{OktaSim, SimConfig};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// The cluster's CRDs, the simulator (issuing keys over its stock: see `reuse_stock_keys`), the
    /// ClusterOktaOrg, both identities, the audit log and the watch.
    pub async fn setup(
        plane: &'static testenv::ControlPlane,
        sim_config: SimConfig,
        concurrency: u16,
        okta_resync: Duration,
        dir: PathBuf,
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
        let controller_args = ControllerArgs { kubeconfig: controller_kubeconfig, concurrency, okta_resync };
        let report = Report::default();
        Ok(Run { cluster, sim, audit, watch, controller_args, floor_kubeconfig, phases, report, dir, started: 0 })
    }

    pub fn calls(&self) -> Vec<Call> {
        okta_log::classify(&self.sim.calls())
    }

    /// Starts a controller (resyncing Okta hourly, the product's default, unless `resync`), its
    /// log named after `name`.
    pub fn start_controller(&mut self, name: &str, resync: Option<Duration>) -> Result<Controller> {
        self.started += 1;
        let mut args = self.controller_args.clone();
        if let Some(resync) = resync {
            args.okta_resync = resync;
        }
        Controller::start(&args, &self.dir.join(format!("controller-{}-{name}.log", self.started)))
    }

    /// Waits until neither Okta nor the API server has seen a request of a measured identity for
    /// `quiet`; gives up (and says so) after `max`. Returns when the last request was seen.
    pub async fn settle(&mut self, quiet: Duration, max: Duration) -> Result<Timestamp> {
        let started = Instant::now();
        let mut last = (usize::MAX, usize::MAX);
        let (mut changed, mut changed_at) = (Instant::now(), Timestamp::now());
        loop {
            self.audit.sync(&self.cluster.admin).await?;
            // Resyncs (one GET app each, at each credential's turn) go on all the time in a large
            // fleet; quiet means nothing else happens.
            let busy =
                self.calls().iter().filter(|c| !(c.kind == "GET /api/v1/apps/{appId}" && c.status == 200)).count();
            let now = (busy, self.audit.requests.len());
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

    /// Okta calls about `apps` and the requests of `user` in `[from, to)`.
    pub async fn window(
        &mut self,
        user: &str,
        apps: &HashSet<String>,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Window> {
        self.audit.sync(&self.cluster.admin).await?;
        let calls = self.calls();
        let app_calls = okta_log::for_apps(&calls, apps, from, to).into_iter().cloned().collect();
        let org_calls = okta_log::org_level(&calls, from, to).len();
        Ok(Window { app_calls, org_calls, kube: self.audit.window(user, from, to) })
    }
}

/// What happened in one window.
pub struct Window {
    pub app_calls: Vec<Call>,
    /// Calls about no app (token requests, the org check's app listing).
    pub org_calls: usize,
    pub kube: KubeCounts,
}

impl Window {
    pub fn refs(&self) -> Vec<&Call> {
        self.app_calls.iter().collect()
    }

    /// The Okta calls by kind, as one line.
    pub fn kinds_note(&self) -> String {
        let kinds = okta_log::by_kind(&self.refs());
        kinds.iter().map(|(kind, count)| format!("{kind}: {count}")).collect::<Vec<_>>().join(", ")
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({"okta": {"app_calls": self.app_calls.len(), "org_level_calls": self.org_calls,
                        "by_kind": okta_log::by_kind(&self.refs()),
                        "status_429": self.app_calls.iter().filter(|c| c.status == 429).count()},
               "kubernetes": self.kube.to_json()})
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
