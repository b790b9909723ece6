//! The scale benchmark's instrument, shared by `make bench-scale` (`benches/scale/main.rs`, release)
//! and the smoke run in `make test` (`tests/scale_smoke.rs`, debug, N=50), so that neither can rot.
//!
//! Every part is real: kube-apiserver and etcd from testenv (with an audit log, to count each
//! client's requests by identity), okta-sim in-process (its call log counts Okta calls), the
//! `samlcred controller` binary as a child process under a ServiceAccount of its own, and a floor
//! client that makes only the necessary calls, under another ServiceAccount.
//!
//! - `cluster`: the control plane, CRDs, identities.
//! - `audit`: Kubernetes requests per identity and time window, from the audit log.
//! - `okta_log`: Okta calls per app, kind and time window, from the simulator's call log.
//! - `fleet`: seeding apps, creating namespaces and credentials, watching them become Ready.
//! - `floor`: the floor client.
//! - `controller`: the controller process, its metrics, RSS and CPU time.
//! - `run`: what every phase uses, and the windows of time they count in.
//! - `scenario`: the main run's phases in order (`adoption`: the floor, the controller's adoption,
//!   latency; `settled`: restart, rotation, resync, memory); `limits`: the run under Okta's real
//!   bucket sizes; `report`: figures beside their targets, as a table and JSON.
#![allow(dead_code)]

pub mod adoption;
pub mod audit;
pub mod cluster;
pub mod controller;
pub mod fleet;
pub mod floor;
pub mod limits;
pub mod okta_log;
pub mod report;
pub mod run;
pub mod scenario;
pub mod settled;

use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns `Some`, or fails after `timeout` naming `what`.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints a phase's name and, when dropped, how long it took; the durations also go to the report.
pub struct Phase {
    name: String,
    started: Instant,
    log: std::sync::Arc<std::sync::Mutex<Vec<(String, f64)>>>,
}

/// The phases run so far and their durations in seconds.
#[derive(Clone, Default)]
pub struct PhaseLog(std::sync::Arc<std::sync::Mutex<Vec<(String, f64)>>>);

impl PhaseLog {
    pub fn start(&self, name: &str) -> Phase {
        eprintln!("scale: {name} ...");
        Phase { name: name.to_string(), started: Instant::now(), log: self.0.clone() }
    }

    pub fn entries(&self) -> Vec<(String, f64)> {
        self.0.lock().unwrap().clone()
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        eprintln!("scale: {} took {seconds:.1} s", self.name);
        self.log.lock().unwrap().push((self.name.clone(), seconds));
    }
}
