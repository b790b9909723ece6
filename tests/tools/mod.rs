//! The upstream Go tools the tests run (promtool, crane, actionlint), built from the pinned modules in
//! tests/tools/NAME by tests/tools/build.sh, once per machine.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The tool's binary: `$SAMLCRED_<NAME>` (e.g. SAMLCRED_PROMTOOL) when set, otherwise what
/// tests/tools/build.sh prints (it builds only when its cache lacks the pinned version).
pub fn tool(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("SAMLCRED_{}", name.to_uppercase())) {
        return PathBuf::from(path);
    }
    let script = Path::new(ROOT).join("tests/tools/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(name)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(out.status.success(), "{} {name} failed ({})", script.display(), out.status);
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.lines().last().unwrap_or_else(|| panic!("build.sh {name} printed nothing")).trim())
}

/// helm, built with the control plane by tests/kube/build.sh.
pub fn helm() -> PathBuf {
    testenv::bin_dir().expect("the control-plane binaries (tests/kube/build.sh)").join("helm")
}

/// Runs `cmd`, returns its output whether or not it succeeded.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
}

/// Runs `cmd` and panics with its stdout and stderr unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `helm template` of the chart with `--set-json` values (`key=<JSON>`), only the named template.
pub fn render(show_only: &str, set: &[&str]) -> String {
    let dir = scratch("helm");
    let mut cmd = Command::new(helm());
    cmd.env("HELM_CONFIG_HOME", dir.join("config"))
        .env("HELM_CACHE_HOME", dir.join("cache"))
        .env("HELM_DATA_HOME", dir.join("data"))
        .args(["template", "samlcred"])
        .arg(Path::new(ROOT).join("charts/samlcred"))
        .args(["--namespace", "monitoring", "--show-only", show_only]);
    for s in set {
        cmd.args(["--set-json", s]);
    }
    String::from_utf8(run(&mut cmd).stdout).unwrap()
}

/// A fresh directory under target/ for this test binary's files.
pub fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
