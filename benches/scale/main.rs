//! `make bench-scale`: N credentials (default 1,000; `SCALE_N=10000` for the full run) over
//! namespaces of 50, one ClusterOktaOrg, the release `samlcred controller` (`--concurrency 4`,
//! every namespace) against the real API server and okta-sim with its limits lifted, beside a floor
//! client that makes only the necessary calls. Prints every figure beside its target (issue 12) and
//! writes them to `target/bench-scale/result.json`.
//!
//! `SCALE_PHASE=limits` (`make bench-scale-limits`) runs the onboarding and rotation of
//! `SCALE_LIMITS_N` apps (default 1,000) under Okta's real bucket sizes instead, with windows of
//! `SCALE_LIMITS_WINDOW_MS` (default 2,900 ms for 60 s) and writes `result-limits.json`.
//!
//! Misses are printed as MISSED; the exit code stays 0 unless `SCALE_STRICT=1`. See
//! docs/benchmarks.md for every knob.

#[path = "harness/mod.rs"]
mod harness;

use harness::scenario::Config;
use std::path::PathBuf;
use std::time::Duration;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this benchmark takes no arguments.
    let limits = std::env::var("SCALE_PHASE").is_ok_and(|p| p == "limits");
    let n = env_number(if limits { "SCALE_LIMITS_N" } else { "SCALE_N" }, 1000) as usize;
    let out = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-scale"));
    let dir = out.join(if limits { "run-limits" } else { "run" });
    // The resync phase's interval: 60 s up to 1,000 credentials, longer for more (at most 300 s),
    // so that the resync demand (N per interval) stays within reach of a controller.
    let resync = env_number("SCALE_RESYNC_S", (n as u64 * 60 / 1000).clamp(60, 300));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("removing the previous run's directory");
    }
    let config = Config {
        n,
        per_namespace: env_number("SCALE_PER_NAMESPACE", 50) as usize,
        concurrency: env_number("SCALE_CONCURRENCY", 4) as u16,
        activation_delay: Duration::from_secs(env_number("SCALE_ACTIVATION_DELAY_S", 2)),
        restart_window: Duration::from_secs(env_number("SCALE_RESTART_WINDOW_S", 60)),
        rotations: env_number("SCALE_ROTATIONS", (n as u64 / 10).max(1)) as usize,
        latency_samples: env_number("SCALE_LATENCY_SAMPLES", 40) as usize,
        resync: Some(Duration::from_secs(resync)),
        steady_intervals: env_number("SCALE_STEADY_INTERVALS", if resync <= 60 { 2 } else { 1 }) as u32,
        unrelated_secrets: env_number("SCALE_UNRELATED_SECRETS", n as u64) as usize,
        okta_resync: Duration::from_secs(env_number("SCALE_OKTA_RESYNC_S", 3600)),
        dir: dir.clone(),
    };
    eprintln!("scale: {config:?}");
    let result = if limits {
        let window = Duration::from_millis(env_number("SCALE_LIMITS_WINDOW_MS", 2900));
        harness::limits::run_limits(config, window)
    } else if std::env::var("SCALE_PHASE").is_ok_and(|p| p == "memory") {
        harness::scenario::run_memory(config)
    } else {
        harness::scenario::run_main(config)
    };
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("scale: the run failed: {e:#}\nlogs in {}", dir.display());
            std::process::exit(2);
        }
    };
    println!("{}", report.table());
    let json = out.join(if limits { "result-limits.json" } else { "result.json" });
    report.write_json(&json).expect("writing the result");
    println!("figures written to {}; logs in {}", json.display(), dir.display());
    if std::env::var_os("SCALE_KEEP").is_none() {
        // etcd's data and the audit log are large and say nothing the logs and JSON do not.
        let _ = std::fs::remove_dir_all(dir.join("cluster/etcd-data"));
        let _ = std::fs::remove_file(dir.join("cluster/audit.log"));
    }
    if std::env::var("SCALE_STRICT").is_ok_and(|v| v == "1") && !report.misses().is_empty() {
        std::process::exit(1);
    }
}
