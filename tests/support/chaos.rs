//! The chaos harness's shared parts (issue 13): run sizes from the environment, the invariant
//! sampler that watches Okta and the Secrets throughout a run, and quantiles for the figures.
//!
//! `make test` runs each chaos file at a small size; `make chaos` sets the sizes up (CHAOS_TRIALS,
//! CHAOS_STORM_SECONDS, ...) and prints the figures.

use super::World;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A size of the run from the environment (`make chaos` sets them), else `default`.
pub fn size(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{var}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// The `q` quantile (0..=1, nearest rank) of `values`; zero when empty.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The DER certificates of a PEM bundle, in order.
pub fn pem_certificates(bundle: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(bundle.as_bytes()).filter_map(Result::ok).map(|p| p.contents).collect()
}

/// One credential of a trial: its name, app, the key it started with, and its activation policy.
pub struct Rotating {
    pub name: String,
    pub app_id: String,
    pub old_kid: String,
    pub manual: bool,
}

/// Whether the rotation is complete: Okta signs with a new key, the status records it with no
/// rotation under way and the old key retired, and the Secret publishes only that key.
pub async fn converged(world: &World, r: &Rotating) -> bool {
    let Some(okta) = world.sim.active_kid(&r.app_id) else { return false };
    let Ok(sac) = world.credentials().get(&r.name).await else { return false };
    let Some(status) = sac.status else { return false };
    let recorded = status.active_key.as_ref().map(|k| &k.kid) == Some(&okta);
    let done = rotation_done(&status);
    let Ok(Some(secret)) = world.secrets().get_opt(&format!("{}-idp", r.name)).await else { return false };
    okta != r.old_kid && recorded && done && super::secret_kids(&secret) == vec![okta]
}

/// Whether the status records a finished rotation: none under way, the old key retired.
pub fn rotation_done(status: &samlcred::api::SamlAppCredentialStatus) -> bool {
    status.rotation.is_none() && status.previous_keys.is_empty() && status.last_rotation_time.is_some()
}

/// Whether every one of `rotating` is complete ([`converged`]).
pub async fn all_converged(world: &World, rotating: &[Rotating]) -> Option<()> {
    for r in rotating {
        if !converged(world, r).await {
            return None;
        }
    }
    Some(())
}

/// What the sampler saw.
#[derive(Debug, Default)]
pub struct SamplerFigures {
    /// Samples that found a published Secret to check.
    pub samples: usize,
    pub violations: Vec<String>,
}

/// Samples, every 50 ms until stopped, each watched (app, Secret) pair: Okta's active certificate
/// (read from the simulator first) must be in the Secret's `bundle.pem` and in its `metadata.xml`
/// from the first publish on, and a Secret once published must not vanish.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    targets: Arc<Mutex<Vec<(String, String)>>>,
    samples: Arc<AtomicUsize>,
    violations: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(world: &World) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let targets: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let samples = Arc::new(AtomicUsize::new(0));
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let (secrets, base) = (world.secrets(), world.sim.base_url());
        let task = {
            let (stop, targets, samples, violations) =
                (stop.clone(), targets.clone(), samples.clone(), violations.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                let mut published = std::collections::HashSet::new();
                while !stop.load(Ordering::SeqCst) {
                    let watched = targets.lock().unwrap().clone();
                    for (app_id, secret_name) in watched {
                        match sample(&http, &base, &secrets, &app_id, &secret_name).await {
                            Ok(Sample::Checked) => {
                                published.insert(secret_name.clone());
                                samples.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(Sample::Absent) if published.contains(&secret_name) => {
                                violations.lock().unwrap().push(format!("{secret_name}: the published Secret vanished"))
                            }
                            Ok(Sample::Absent | Sample::Unknown) => {}
                            Err(violation) => violations.lock().unwrap().push(violation),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        Sampler { stop, targets, samples, violations, task }
    }

    /// Watches one more credential's app and Secret from now on.
    pub fn watch(&self, app_id: &str, secret: &str) {
        self.targets.lock().unwrap().push((app_id.to_string(), secret.to_string()));
    }

    /// Stops watching (the credential is gone; its Secret stays behind, unwatched).
    pub fn forget(&self, secret: &str) {
        self.targets.lock().unwrap().retain(|(_, s)| s != secret);
    }

    pub async fn stop(self) -> SamplerFigures {
        self.stop.store(true, Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("the sampler stops").unwrap();
        SamplerFigures {
            samples: self.samples.load(Ordering::SeqCst),
            violations: self.violations.lock().unwrap().clone(),
        }
    }
}

/// What one sample found, when nothing was wrong.
enum Sample {
    Checked,
    /// The Secret does not exist.
    Absent,
    /// The simulator or the API server did not answer in time (a control-plane fault, say).
    Unknown,
}

/// One sample; `Err` says what was wrong.
async fn sample(
    http: &reqwest::Client,
    base: &str,
    secrets: &Api<Secret>,
    app_id: &str,
    secret_name: &str,
) -> Result<Sample, String> {
    use base64::Engine;
    let get = |path: String| async move {
        let answer = http.get(format!("{base}/__sim/apps/{app_id}/{path}")).send().await.ok()?;
        answer.json::<Value>().await.ok()
    };
    // Okta first, then the Secret: the key Okta signs with now must already be in the Secret.
    let (Some(active), Some(keys)) = (get("active-kid".into()).await, get("keys".into()).await) else {
        return Ok(Sample::Unknown);
    };
    let kid = active["kid"].as_str().unwrap_or_default().to_string();
    let key = keys.as_array().into_iter().flatten().find(|k| k["kid"] == kid.as_str());
    let Some(x5c) = key.and_then(|k| k["x5c"][0].as_str()) else { return Ok(Sample::Unknown) };
    let certificate = base64::engine::general_purpose::STANDARD.decode(x5c).unwrap();
    let secret = match tokio::time::timeout(Duration::from_secs(5), secrets.get_opt(secret_name)).await {
        Ok(Ok(Some(secret))) => secret,
        Ok(Ok(None)) => return Ok(Sample::Absent),
        _ => return Ok(Sample::Unknown),
    };
    let bundle = super::secret_text(&secret, "bundle.pem").unwrap_or_default();
    if !pem_certificates(&bundle).contains(&certificate) {
        return Err(format!("{secret_name}: Okta signs with {kid}, which bundle.pem lacks"));
    }
    let metadata = super::secret_text(&secret, "metadata.xml").unwrap_or_default();
    match samlcred::metadata::signing_certificates(&metadata) {
        Ok(certs) if certs.contains(&certificate) => Ok(Sample::Checked),
        Ok(_) => Err(format!("{secret_name}: Okta signs with {kid}, which metadata.xml lacks")),
        Err(e) => Err(format!("{secret_name}: metadata.xml does not parse: {e}")),
    }
}

/// A TCP gate in front of a server (the simulator): while open it forwards every connection; closed,
/// nothing listens on its port, so connections are refused, and the ones open are cut.
pub struct Gate {
    port: u16,
    target: std::net::SocketAddr,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Gate {
    /// Opens a gate to `target` (`http://host:port`).
    pub async fn open(target: &str) -> Gate {
        let target = target.trim_start_matches("http://").parse().unwrap();
        let listener = Gate::bind(0);
        let port = listener.local_addr().unwrap().port();
        let gate = Gate { port, target, task: Mutex::new(None) };
        gate.serve(listener);
        gate
    }

    fn bind(port: u16) -> tokio::net::TcpListener {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(([127, 0, 0, 1], port).into()).unwrap();
        socket.listen(64).unwrap()
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target;
        let task = tokio::spawn(async move {
            // Owned here: aborting this task drops the listener and cuts every connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops listening and cuts the open connections: from now on, connections are refused.
    pub fn close(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub fn reopen(&self) {
        self.serve(Gate::bind(self.port));
    }
}
