//! One control plane per test binary, shared by its tests, each of which works in a namespace of its
//! own. The processes are stopped when the test binary exits; the directory with their logs is removed
//! then, unless a test failed (or `SAMLCRED_KEEP_TESTENV` is set), in which case its path is printed.

use crate::control_plane::{ControlPlane, Options};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static FAILED: AtomicBool = AtomicBool::new(false);
static CLEANUP: Mutex<Option<(Vec<u32>, PathBuf)>> = Mutex::new(None);

/// The test binary's control plane, started on first use. Blocks while starting (a few seconds once
/// the binaries are cached).
pub fn shared() -> &'static ControlPlane {
    let started = SHARED.get_or_init(start_supervised);
    match started {
        Ok(plane) => plane,
        Err(e) => panic!("testenv: the control plane did not start: {e}"),
    }
}

fn start_supervised() -> Result<ControlPlane, String> {
    // The children die with the thread that spawned them (PR_SET_PDEATHSIG), and test threads come
    // and go; so a thread that lives as long as the process starts them.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("testenv-supervisor".into())
        .spawn(move || {
            let _ = tx.send(ControlPlane::start(Options::default()));
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| format!("spawning the supervisor thread: {e}"))?;
    let plane = rx.recv().map_err(|_| "the supervisor thread died".to_string())?.map_err(|e| format!("{e:#}"))?;
    eprintln!(
        "testenv: kube-apiserver {} ready in {:.1}s; kubeconfig {}",
        plane.server(),
        plane.startup_time().as_secs_f64(),
        plane.kubeconfig().display()
    );
    *CLEANUP.lock().unwrap() = Some((plane.pids(), plane.dir().to_path_buf()));
    unsafe { libc::atexit(cleanup_at_exit) };
    Ok(plane)
}

extern "C" fn cleanup_at_exit() {
    let Some((mut pids, dir)) = CLEANUP.lock().ok().and_then(|mut c| c.take()) else { return };
    // The components running now (one may have been restarted since the start).
    if let Some(Ok(plane)) = SHARED.get()
        && let Ok(now) = std::panic::catch_unwind(|| plane.pids())
    {
        pids = now;
    }
    for pid in pids.iter().rev() {
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    if FAILED.load(Ordering::SeqCst) || std::env::var_os("SAMLCRED_KEEP_TESTENV").is_some() {
        eprintln!("testenv: control-plane logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Records that a test failed, so the control plane's logs are kept.
pub fn mark_failed() {
    FAILED.store(true, Ordering::SeqCst);
}

/// An admin client for the shared control plane. Make one per test: a client belongs to the tokio
/// runtime it was made in, and every `#[tokio::test]` has its own.
pub async fn client() -> Result<kube::Client> {
    client_for(shared()).await
}

/// An admin client for `plane`.
pub async fn client_for(plane: &ControlPlane) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(plane.kubeconfig())?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A namespace of one test's own. When the test panics, the control plane's logs are kept.
#[derive(Debug)]
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// Creates a namespace named after `prefix` plus a counter unique in this process.
    pub async fn create(client: &kube::Client, prefix: &str) -> Result<TestNamespace> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id() % 100_000, COUNTER.fetch_add(1, Ordering::SeqCst));
        let ns =
            Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace { name })
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            mark_failed();
        }
    }
}
