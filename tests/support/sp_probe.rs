//! Sign-ins through real SAML service providers while samlcred works: `tests/sp/probe.py` (pysaml2 and
//! xmlsec1, set up by `tests/sp/setup.sh`, found through `SAMLCRED_SP_PYTHON`) signs in through the
//! simulator's SSO URL about every 100 ms and validates each sign-in with three SPs, each trusting one
//! file of the credential's Secret: `metadata.xml`, `bundle.pem`, `certificate.pem`.
//!
//! The files live in a directory that mirrors the Secret as the kubelet mirrors a mounted Secret: a
//! poll every 50 ms writes each data key that changed (temp file + rename, so a reader never sees half
//! a file) and removes keys that left; before the Secret exists there are no files, and sign-ins fail.
//! So counting starts at [`Probe::mark`], which waits until the mirror holds the Secret's files.
//!
//! The probe starts an attempt every 100 ms or when the last one ends, whichever is later. A sign-in
//! costs six xmlsec1 processes (two signatures, three SPs; about 50 ms of CPU each), so on two busy
//! cores it manages 2-3 sign-ins a second: a failure window much shorter than that can go unseen.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use okta_sim::OktaSim;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::task::JoinHandle;

/// The SPs, by the Secret key each trusts.
pub const METADATA_XML: &str = "metadata.xml";
pub const BUNDLE_PEM: &str = "bundle.pem";
pub const CERTIFICATE_PEM: &str = "certificate.pem";
pub const SPS: [&str; 3] = [METADATA_XML, BUNDLE_PEM, CERTIFICATE_PEM];

const MIRROR_EVERY: Duration = Duration::from_millis(50);
const PROBE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sp/probe.py");

/// The Python of the SP venv; panics (never skips) when the environment does not name one.
pub fn sp_python() -> PathBuf {
    match std::env::var_os("SAMLCRED_SP_PYTHON") {
        Some(p) if Path::new(&p).is_file() => PathBuf::from(p),
        Some(p) => panic!("SAMLCRED_SP_PYTHON={} is not a file; run `bash tests/sp/setup.sh`", p.to_string_lossy()),
        None => panic!(
            "the sign-in probe needs pysaml2 and xmlsec1: run `SAMLCRED_SP_PYTHON=$(bash tests/sp/setup.sh) cargo test ...` \
             (make test does)"
        ),
    }
}

/// One sign-in attempt as the probe reported it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// When the probe asked for the sign-in (Unix seconds).
    pub started: f64,
    pub took_ms: u64,
    /// The x5t#S256 of the certificate in the response's signature.
    pub signer: Option<String>,
    /// Per SP: `None` when accepted, else why not.
    pub results: BTreeMap<String, Option<String>>,
}

impl Attempt {
    fn parse(line: &str) -> Option<Attempt> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let results = v["results"]
            .as_object()?
            .iter()
            .map(|(sp, r)| {
                let failure = (r["ok"] != true).then(|| r["reason"].as_str().unwrap_or("?").to_string());
                (sp.clone(), failure)
            })
            .collect();
        Some(Attempt {
            started: v["started"].as_f64()?,
            took_ms: v["took_ms"].as_u64().unwrap_or(0),
            signer: v["signer_x5t_s256"].as_str().map(str::to_string),
            results,
        })
    }

    pub fn failed(&self, sp: &str) -> Option<&str> {
        self.results.get(sp).and_then(|r| r.as_deref())
    }
}

/// A running probe with its Secret mirror; both stop when it is dropped.
pub struct Probe {
    child: Child,
    stdin: Option<ChildStdin>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    reader: Option<JoinHandle<()>>,
    mirror: JoinHandle<()>,
    mirrored: Arc<AtomicBool>,
    marked: Option<f64>,
    /// The directory the SPs read (the Secret's files) and the probe's stderr log.
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Probe {
    /// Starts mirroring Secret `secret_name` into a directory and signing in to `app_id` of `sim`.
    pub async fn start(sim: &OktaSim, app_id: &str, secrets: Api<Secret>, secret_name: &str) -> Probe {
        static STARTS: AtomicU32 = AtomicU32::new(0);
        let n = STARTS.fetch_add(1, Ordering::SeqCst);
        let base = testenv::shared().dir().join(format!("sp-probe-{secret_name}-{}-{n}", std::process::id()));
        let dir = base.join("secret");
        std::fs::create_dir_all(&dir).unwrap();
        let log = base.join("probe.log");

        let mirrored = Arc::new(AtomicBool::new(false));
        let mirror = tokio::spawn(mirror_secret(secrets, secret_name.to_string(), dir.clone(), mirrored.clone()));

        let sso = sim.sso(app_id);
        let mut child = Command::new(sp_python())
            .arg(PROBE_SCRIPT)
            .arg("watch")
            .arg("--dir")
            .arg(&dir)
            .args(["--sso-url", &sso.url, "--idp-entity-id", &sso.entity_id])
            .args(["--sp-entity-id", sso.audience.as_deref().expect("the app has an audience")])
            .args(["--acs-url", sso.acs_url.as_deref().expect("the app has an ACS URL")])
            .args(["--interval", "0.1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("starting tests/sp/probe.py");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let attempts = attempts.clone();
            // Kept beside the log for a look after a failure: times, signers and reasons, no documents.
            let mut record = std::fs::File::create(base.join("attempts.jsonl")).unwrap();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = writeln!(record, "{line}");
                    if let Some(attempt) = Attempt::parse(&line) {
                        attempts.lock().unwrap().push(attempt);
                    }
                }
            })
        };
        let mut probe =
            Probe { child, stdin, attempts, reader: Some(reader), mirror, mirrored, marked: None, dir, log };
        probe.wait_first_attempt().await;
        probe
    }

    /// The probe answers its first sign-in within a bounded time, or the test fails with its log.
    async fn wait_first_attempt(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.attempts.lock().unwrap().is_empty() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the sign-in probe exited ({status}): {}", self.log_text());
            }
            assert!(Instant::now() < deadline, "the sign-in probe made no attempt in 60 s: {}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts counting: from the first publish on. Waits (bounded) until the mirror holds the
    /// Secret's files, so that the time a not-yet-existing Secret takes is not counted.
    pub async fn mark(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self.mirrored.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the Secret was not mirrored within 90 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.marked = Some(unix_now());
    }

    /// Attempts so far (all of them, marked or not).
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    /// Waits until the probe has finished an attempt that started after now, so the sign-ins of the
    /// state just reached are counted.
    pub async fn settle(&self) {
        let after = unix_now();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.attempts.lock().unwrap().iter().any(|a| a.started >= after) {
            assert!(Instant::now() < deadline, "the probe made no attempt in 30 s: {}", self.log_text());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the probe (stdin closed, as its contract says; killed if it lingers) and the mirror, and
    /// returns the figures from [`Probe::mark`] on (everything if never marked).
    pub async fn stop(mut self) -> Figures {
        self.stdin.take(); // EOF: the probe finishes its attempt and exits
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        self.mirror.abort();
        let attempts = self.attempts();
        Figures::of(&attempts, self.marked)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.mirror.abort();
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        let _ = self.child.start_kill();
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Keeps `dir` equal to the Secret's data, as the kubelet keeps a Secret volume.
async fn mirror_secret(secrets: Api<Secret>, name: String, dir: PathBuf, mirrored: Arc<AtomicBool>) {
    let mut written: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    loop {
        // A failed read keeps the files as they are (the kubelet keeps the last good copy).
        if let Ok(found) = secrets.get_opt(&name).await {
            let data: BTreeMap<String, Vec<u8>> =
                found.and_then(|s| s.data).map(|d| d.into_iter().map(|(k, v)| (k, v.0)).collect()).unwrap_or_default();
            for (key, value) in &data {
                if written.get(key) != Some(value) {
                    let tmp = dir.join(format!(".{key}.tmp"));
                    std::fs::write(&tmp, value).unwrap();
                    std::fs::rename(&tmp, dir.join(key)).unwrap();
                }
            }
            for gone in written.keys().filter(|k| !data.contains_key(*k)) {
                let _ = std::fs::remove_file(dir.join(gone));
            }
            mirrored.store(SPS.iter().all(|k| data.contains_key(*k)), Ordering::SeqCst);
            written = data;
        }
        tokio::time::sleep(MIRROR_EVERY).await;
    }
}

/// What one SP saw from the mark on.
#[derive(Debug, Clone, Default)]
pub struct SpFigures {
    pub attempts: usize,
    pub failures: usize,
    /// From the first failed attempt of the longest run of failures to the next accepted one (or the
    /// end of the last attempt when none followed).
    pub longest_failure: Duration,
    /// (seconds after the mark, reason) of the first failures.
    pub first_failures: Vec<(f64, String)>,
    /// Whether the last attempt was accepted.
    pub last_accepted: bool,
}

/// The probe's figures per SP, from the mark on; attempts before it are only counted.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub per_sp: BTreeMap<String, SpFigures>,
    pub before_mark: usize,
    /// Distinct signing certificates (x5t#S256) seen from the mark on, in order of appearance.
    pub signers: Vec<String>,
    /// From the first counted attempt's start to the last one's.
    pub span: Duration,
    /// When [`Probe::mark`] was called (Unix seconds).
    pub marked_at: Option<f64>,
}

impl Figures {
    fn of(attempts: &[Attempt], marked: Option<f64>) -> Figures {
        let from = marked.unwrap_or(f64::MIN);
        let counted: Vec<&Attempt> = attempts.iter().filter(|a| a.started >= from).collect();
        let mut figures =
            Figures { before_mark: attempts.len() - counted.len(), marked_at: marked, ..Figures::default() };
        if let (Some(first), Some(last)) = (counted.first(), counted.last()) {
            figures.span = Duration::from_secs_f64((last.started - first.started).max(0.0));
        }
        for a in &counted {
            if let Some(s) = &a.signer
                && !figures.signers.contains(s)
            {
                figures.signers.push(s.clone());
            }
        }
        for sp in SPS {
            let mut f = SpFigures::default();
            let mut streak_start: Option<f64> = None;
            for a in &counted {
                f.attempts += 1;
                match a.failed(sp) {
                    Some(why) => {
                        f.failures += 1;
                        if f.first_failures.len() < 5 {
                            f.first_failures.push((a.started - marked.unwrap_or(counted[0].started), why.to_string()));
                        }
                        streak_start.get_or_insert(a.started);
                    }
                    None => {
                        if let Some(start) = streak_start.take() {
                            f.longest_failure = f.longest_failure.max(Duration::from_secs_f64(a.started - start));
                        }
                    }
                }
            }
            f.last_accepted = counted.last().is_some_and(|a| a.failed(sp).is_none());
            if let (Some(start), Some(last)) = (streak_start, counted.last()) {
                let end = last.started + last.took_ms as f64 / 1000.0;
                f.longest_failure = f.longest_failure.max(Duration::from_secs_f64((end - start).max(0.0)));
            }
            figures.per_sp.insert(sp.to_string(), f);
        }
        figures
    }

    /// Seconds from the mark to `at` (for reports: e.g. when Okta switched keys).
    pub fn since_mark(&self, at: jiff::Timestamp) -> f64 {
        at.as_millisecond() as f64 / 1000.0 - self.marked_at.unwrap_or(0.0)
    }

    pub fn sp(&self, sp: &str) -> &SpFigures {
        &self.per_sp[sp]
    }

    /// Panics unless every SP in `sps` accepted every sign-in from the mark on, and there were enough
    /// sign-ins to mean something.
    pub fn assert_no_failures(&self, sps: &[&str], what: &str) {
        let attempts = self.per_sp.values().map(|f| f.attempts).max().unwrap_or(0);
        assert!(attempts >= 5, "{what}: only {attempts} sign-ins were attempted\n{self}");
        let failing: Vec<&str> = sps.iter().copied().filter(|sp| self.sp(sp).failures > 0).collect();
        if !failing.is_empty() {
            testenv::mark_failed();
            panic!("{what}: sign-ins failed for {failing:?}\n{self}");
        }
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sign-in probe: counted over {:.1} s ({} attempts before the mark); signing certificates seen {:?}",
            self.span.as_secs_f64(),
            self.before_mark,
            self.signers
        )?;
        for (sp, s) in &self.per_sp {
            writeln!(
                f,
                "  {sp:<16} {:>5} attempts {:>4} failures  longest failure {:>6} ms",
                s.attempts,
                s.failures,
                s.longest_failure.as_millis()
            )?;
            for (at, why) in &s.first_failures {
                writeln!(f, "    +{at:.2}s {why}")?;
            }
        }
        Ok(())
    }
}

/// The signing certificates (x5t#S256, in order) an independent SP, pysaml2, takes from `metadata`
/// (the text of a metadata.xml), per entityID.
pub fn metadata_signing_certs(metadata: &str) -> BTreeMap<String, Vec<String>> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let file = testenv::shared().dir().join(format!("sp-metadata-{}-{n}.xml", std::process::id()));
    std::fs::write(&file, metadata).unwrap();
    let out = std::process::Command::new(sp_python())
        .arg(PROBE_SCRIPT)
        .args(["metadata-certs", "--metadata"])
        .arg(&file)
        .output()
        .expect("running tests/sp/probe.py metadata-certs");
    assert!(out.status.success(), "probe.py metadata-certs failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata-certs answers JSON");
    let _ = std::fs::remove_file(&file);
    v["entities"]
        .as_object()
        .expect("entities")
        .iter()
        .map(|(entity, certs)| {
            let certs = certs.as_array().into_iter().flatten().filter_map(|c| c.as_str().map(str::to_string));
            (entity.clone(), certs.collect())
        })
        .collect()
}
