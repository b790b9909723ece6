//! Finds the control-plane binaries, building them from their pinned Go modules on first use.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The script that builds etcd, kube-apiserver, kube-controller-manager, kubectl and helm into a
/// cache keyed by the pinned module versions, and prints the directory.
pub fn build_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/kube/build.sh"))
}

/// The directory holding the binaries: `$SAMLCRED_KUBE_BIN` when set, otherwise what the build
/// script prints (it builds only when the cache lacks them).
pub fn bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.clone());
    }
    let dir = match std::env::var_os("SAMLCRED_KUBE_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = build_script();
            let out = Command::new("bash")
                .arg(&script)
                .stderr(std::process::Stdio::inherit())
                .output()
                .with_context(|| format!("running {}", script.display()))?;
            if !out.status.success() {
                bail!("{} failed ({})", script.display(), out.status);
            }
            let stdout = String::from_utf8(out.stdout)?;
            PathBuf::from(stdout.lines().last().context("build script printed no directory")?.trim())
        }
    };
    for tool in ["etcd", "kube-apiserver", "kubectl"] {
        if !dir.join(tool).is_file() {
            bail!("{} has no {tool}; run tests/kube/build.sh", dir.display());
        }
    }
    Ok(DIR.get_or_init(|| dir).clone())
}
