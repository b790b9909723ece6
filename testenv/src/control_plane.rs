//! Starts etcd, kube-apiserver and (optionally) kube-controller-manager as child processes on free
//! loopback ports, and stops them again.

use crate::{binaries, pki};
use anyhow::{Context, Result, bail};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where certificates, the kubeconfig, etcd's data and the logs go. A fresh temporary directory
    /// when `None`.
    pub dir: Option<PathBuf>,
    /// Port for kube-apiserver; a free one when `None`.
    pub apiserver_port: Option<u16>,
    /// Start kube-controller-manager with the garbage collector, namespace and service-account
    /// controllers (ownerReference clean-up needs it).
    pub controller_manager: bool,
    /// How long to wait for `/readyz`.
    pub ready_timeout: Duration,
    /// An audit policy (YAML). When set, kube-apiserver writes the events it selects as JSON lines to
    /// `audit.log` in the directory ([`ControlPlane::audit_log`]), for counting who sent which requests.
    pub audit_policy: Option<String>,
    /// etcd's `--quota-backend-bytes`; etcd's default (2 GiB) when `None`.
    pub etcd_quota_bytes: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dir: None,
            apiserver_port: None,
            controller_manager: true,
            ready_timeout: Duration::from_secs(120),
            audit_policy: None,
            etcd_quota_bytes: None,
        }
    }
}

struct RunningProcess {
    name: &'static str,
    args: Vec<String>,
    child: Child,
}

/// A running etcd + kube-apiserver (+ kube-controller-manager). Dropping it stops the processes.
pub struct ControlPlane {
    dir: PathBuf,
    bin_dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    audit_log: Option<PathBuf>,
    startup: Duration,
    processes: Mutex<Vec<RunningProcess>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").field("dir", &self.dir).field("server", &self.server).finish()
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn kill_on_parent_death(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // If the process (or thread) that started the control plane dies without cleaning up, the kernel
    // kills the children instead of leaving stray API servers behind.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl ControlPlane {
    /// Starts a control plane and waits until kube-apiserver answers `/readyz`.
    pub fn start(options: Options) -> Result<ControlPlane> {
        let started = Instant::now();
        let bin_dir = binaries::bin_dir()?;
        let dir = match &options.dir {
            Some(d) => d.clone(),
            None => {
                let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
                std::env::temp_dir().join(format!("samlcred-testenv-{}-{nanos}", std::process::id()))
            }
        };
        if dir.join("etcd-data").exists() {
            std::fs::remove_dir_all(dir.join("etcd-data"))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pki = pki::write_pki(&dir)?;
        let (etcd_port, peer_port) = (free_port()?, free_port()?);
        let api_port = match options.apiserver_port {
            Some(p) => p,
            None => free_port()?,
        };
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server, &pki))?;

        let mut plane = ControlPlane {
            dir: dir.clone(),
            bin_dir: bin_dir.clone(),
            kubeconfig,
            server,
            audit_log: None,
            startup: Duration::ZERO,
            processes: Mutex::new(Vec::new()),
        };

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd_args = vec![
            "--name=testenv".into(),
            format!("--data-dir={}", dir.join("etcd-data").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=testenv={peer_url}"),
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ];
        if let Some(bytes) = options.etcd_quota_bytes {
            etcd_args.push(format!("--quota-backend-bytes={bytes}"));
        }
        plane.spawn("etcd", &etcd_args)?;

        let sa_key = pki.service_account_key.display().to_string();
        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--secure-port={api_port}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--client-ca-file={}", pki.ca_cert.display()),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--allow-privileged=true".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            format!("--service-account-issuer=https://127.0.0.1:{api_port}/"),
            format!("--service-account-key-file={}", pki.service_account_public_key.display()),
            format!("--service-account-signing-key-file={sa_key}"),
            "--endpoint-reconciler-type=none".into(),
            "--v=1".into(),
        ];
        if let Some(policy) = &options.audit_policy {
            let policy_file = dir.join("audit-policy.yaml");
            std::fs::write(&policy_file, policy)?;
            let log = dir.join("audit.log");
            apiserver_args.push(format!("--audit-policy-file={}", policy_file.display()));
            apiserver_args.push(format!("--audit-log-path={}", log.display()));
            apiserver_args.push("--audit-log-format=json".into());
            // Every event, unbatched: counts are read while the server runs.
            apiserver_args.push("--audit-log-mode=blocking".into());
            apiserver_args.push("--audit-log-maxsize=0".into());
            plane.audit_log = Some(log);
        }
        plane.spawn("kube-apiserver", &apiserver_args)?;

        plane.wait_ready(options.ready_timeout)?;

        if options.controller_manager {
            let kubeconfig = plane.kubeconfig.display().to_string();
            plane.spawn(
                "kube-controller-manager",
                &[
                    format!("--kubeconfig={kubeconfig}"),
                    format!("--authentication-kubeconfig={kubeconfig}"),
                    format!("--authorization-kubeconfig={kubeconfig}"),
                    "--leader-elect=false".into(),
                    "--controllers=garbagecollector,namespace,serviceaccount".into(),
                    format!("--service-account-private-key-file={sa_key}"),
                    format!("--root-ca-file={}", pki.ca_cert.display()),
                    "--use-service-account-credentials=false".into(),
                    "--bind-address=127.0.0.1".into(),
                    format!("--secure-port={}", free_port()?),
                    format!("--cert-dir={}", dir.join("kcm-certs").display()),
                    "--v=1".into(),
                ],
            )?;
        }
        plane.startup = started.elapsed();
        Ok(plane)
    }

    fn spawn(&self, name: &'static str, args: &[String]) -> Result<()> {
        let child = self.command(name, args, false)?.spawn().with_context(|| format!("starting {name}"))?;
        self.processes.lock().unwrap().push(RunningProcess { name, args: args.to_vec(), child });
        Ok(())
    }

    fn command(&self, name: &str, args: &[String], append: bool) -> Result<Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(self.dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new(self.bin_dir.join(name));
        cmd.args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        kill_on_parent_death(&mut cmd);
        Ok(cmd)
    }

    /// Kills one component (`etcd`, `kube-apiserver`) with SIGKILL, as a crash would, keeps it down
    /// for `down`, and starts it again with the same flags and data; waits for `/readyz` when it is
    /// the API server or etcd. Returns how long the API server was unready, from the kill until it
    /// answered again. For chaos tests of clients: every client sees the outage.
    pub fn restart(&self, name: &str, down: Duration) -> Result<Duration> {
        let killed = Instant::now();
        let (name, args) = {
            let mut processes = self.processes.lock().unwrap();
            let p = processes.iter_mut().find(|p| p.name == name).with_context(|| format!("no process {name}"))?;
            let _ = p.child.kill();
            let _ = p.child.wait();
            (p.name, p.args.clone())
        };
        std::thread::sleep(down);
        let cmd = self.command(name, &args, true)?;
        // Started from a thread that lives as long as the process: the child dies with the thread
        // that spawned it (PR_SET_PDEATHSIG), and the caller's may be short-lived.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name(format!("testenv-{name}")).spawn(move || {
            let mut cmd = cmd;
            let _ = tx.send(cmd.spawn());
            loop {
                std::thread::park();
            }
        })?;
        let child = rx.recv().context("the spawning thread died")?.with_context(|| format!("restarting {name}"))?;
        {
            let mut processes = self.processes.lock().unwrap();
            if let Some(p) = processes.iter_mut().find(|p| p.name == name) {
                p.child = child;
            }
        }
        self.wait_ready(Duration::from_secs(120))?;
        Ok(killed.elapsed())
    }

    /// Fails fast with the end of its log when one of the processes has exited.
    fn check_alive(&self) -> Result<()> {
        for p in self.processes.lock().unwrap().iter_mut() {
            if let Some(status) = p.child.try_wait()? {
                let log = self.dir.join(format!("{}.log", p.name));
                bail!("{} exited ({status}); last lines of {}:\n{}", p.name, log.display(), tail(&log, 30));
            }
        }
        Ok(())
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let out = self.kubectl().args(["get", "--raw=/readyz"]).output()?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver not ready after {timeout:?}: {}\nlast lines of its log:\n{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    tail(&self.dir.join("kube-apiserver.log"), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The kubeconfig file of the cluster admin (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Where certificates, data and logs live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory holding etcd, kube-apiserver, kube-controller-manager, kubectl and helm.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The audit log, when [`Options::audit_policy`] was set.
    pub fn audit_log(&self) -> Option<&Path> {
        self.audit_log.as_deref()
    }

    /// Time from the start call until `/readyz` answered.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// A `kubectl` command already pointed at this cluster.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// The process ids of the running components (used by the exit-time clean-up).
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.processes.lock().unwrap().iter().map(|p| p.child.id()).collect()
    }

    /// Stops every process: SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&self) {
        let mut processes = self.processes.lock().unwrap();
        for p in processes.iter_mut().rev() {
            unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(p.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        processes.clear();
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kubeconfig_yaml(server: &str, pki: &pki::PkiFiles) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: testenv
  context:
    cluster: testenv
    user: admin
    namespace: default
current-context: testenv
",
        ca = pki.ca_cert.display(),
        cert = pki.admin_cert.display(),
        key = pki.admin_key.display(),
    )
}
