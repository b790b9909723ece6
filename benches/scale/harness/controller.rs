//! The operator under measurement: the `samlcred controller` binary of this build, watching every
//! namespace under its own ServiceAccount, and what `/proc` and `/metrics` say about it.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to run the controller.
#[derive(Debug, Clone)]
pub struct ControllerArgs {
    pub kubeconfig: PathBuf,
    pub concurrency: u16,
    pub okta_resync: Duration,
}

pub struct Controller {
    child: tokio::process::Child,
    pid: u32,
    metrics: String,
    pub log: PathBuf,
}

/// Peak resident memory and CPU time of the process so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// VmHWM, in MiB.
    pub peak_rss_mib: f64,
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Controller {
    pub fn start(args: &ControllerArgs, log: &Path) -> Result<Controller> {
        let (metrics_port, health_port) = (free_port()?, free_port()?);
        let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        // SCALE_CONTROLLER_WRAPPER (for example benches/scale/heaptrack.sh) runs the controller
        // through a program that execs it, so the pid (and VmHWM) stay the controller's.
        let mut cmd = match std::env::var_os("SCALE_CONTROLLER_WRAPPER") {
            Some(wrapper) => {
                let mut cmd = tokio::process::Command::new(wrapper);
                cmd.arg(env!("CARGO_BIN_EXE_samlcred"));
                cmd
            }
            None => tokio::process::Command::new(env!("CARGO_BIN_EXE_samlcred")),
        };
        // SCALE_LOG_LEVEL (for example info,samlcred=debug) to see what a run did; info by default.
        let log_level = std::env::var("SCALE_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        cmd.args(["controller", "--allow-insecure-okta-http", "--log-format=json"])
            .arg(format!("--log-level={log_level}"))
            .arg(format!("--concurrency={}", args.concurrency))
            .arg(format!("--okta-resync-interval={}s", args.okta_resync.as_secs()))
            .arg(format!("--metrics-bind-address=127.0.0.1:{metrics_port}"))
            .arg(format!("--health-bind-address=127.0.0.1:{health_port}"))
            // No ValidatingWebhookConfiguration points at it here (and 9443 may be taken).
            .arg("--webhook-bind-address=")
            .env("KUBECONFIG", &args.kubeconfig)
            .stdin(std::process::Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        // If the harness dies, so does the controller.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting samlcred controller")?;
        let pid = child.id().context("the controller exited at once")?;
        Ok(Controller { child, pid, metrics: format!("http://127.0.0.1:{metrics_port}/metrics"), log: log.into() })
    }

    /// Fails with the end of the log when the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow::bail!("the controller exited ({status}); end of {}:\n{}", self.log.display(), tail.join("\n"));
        }
        Ok(())
    }

    pub fn usage(&self) -> Usage {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let hwm_kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<f64>().ok()).sum();
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Usage { peak_rss_mib: hwm_kib / 1024.0, cpu_seconds: ticks / per_second }
    }

    /// The value of one series of `/metrics` (summed over its labels), if exported.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(&self.metrics).await.ok()?.text().await.ok()?;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        (!values.is_empty()).then(|| values.iter().sum())
    }

    /// Reconciles so far: the count of the reconcile-duration histogram (samlcred exports no
    /// counter of its own; the histogram counts reconciles that ran a step, not early returns).
    pub async fn reconciles(&self) -> Option<f64> {
        self.metric("samlcred_reconcile_duration_seconds_count").await
    }

    /// SIGTERM, as Kubernetes stops a pod; SIGKILL when it has not exited within `grace`. Returns
    /// the usage read just before the signal.
    pub async fn stop(mut self, grace: Duration) -> Result<Usage> {
        let usage = self.usage();
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!("scale: the controller did not stop within {grace:?} of SIGTERM; killing it");
                self.child.kill().await?;
            }
        }
        Ok(usage)
    }
}
