//! Okta's own Python SDK (PyPI `okta`) against the simulator: `../tests/okta-sdk/drive.py` lists
//! apps page by page, gets and replaces an app with the SDK's typed model, lists, gets, generates
//! and clones keys, previews metadata, reads errors as the SDK's `OktaAPIError`, lives through a 429
//! with the SDK's retry, and signs in with `private_key_jwt`, without and with DPoP (then resends
//! each assertion the SDK signed: Okta has used every one up). What the SDK expects of Okta and
//! the simulator does not do is a failed check here.
//!
//! Needs `SAMLCRED_OKTA_SDK_PYTHON=$(bash tests/okta-sdk/setup.sh)` (make test sets it).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use okta_sim::{CallRecord, OAuthClient, RateLimits, SimConfig};
use serde_json::Value;

const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/okta-sdk/drive.py");

fn sdk_python() -> PathBuf {
    let python = std::env::var_os("SAMLCRED_OKTA_SDK_PYTHON").unwrap_or_else(|| {
        panic!("this test runs Okta's Python SDK: run `SAMLCRED_OKTA_SDK_PYTHON=$(bash tests/okta-sdk/setup.sh) cargo test -p okta-sim` (make test does)")
    });
    PathBuf::from(python)
}

/// A scratch directory for the driver (its key file, its working directory), removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> WorkDir {
        let dir = std::env::temp_dir().join(format!("okta-sim-sdk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn register(sim: &okta_sim::OktaSim, client_id: &str, key: &ClientKey, require_dpop: bool) {
    sim.add_oauth_client(OAuthClient {
        client_id: client_id.into(),
        public_jwk: key.public_jwk.clone(),
        scopes: vec!["okta.apps.read".into(), "okta.apps.manage".into()],
        require_dpop,
    });
}

fn calls_to(calls: &[CallRecord], method: &str, path: &str) -> Vec<u16> {
    calls.iter().filter(|c| c.method == method && c.path == path).map(|c| c.status).collect()
}

#[tokio::test]
async fn oktas_python_sdk_drives_the_simulator_as_it_drives_okta() {
    // Okta's own limits: the driver tightens one bucket for its 429 check and restores it.
    let sim = start_with(SimConfig { rate_limits: RateLimits::default(), ..SimConfig::default() }).await;
    let apps: Vec<_> = [2, 2, 1, 1, 1].iter().enumerate().map(|(i, &n)| seed(&sim, &format!("SDK {i}"), n)).collect();
    let ids: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
    // The SDK signs client assertions with RS256 only.
    let key = ClientKey::rsa();
    register(&sim, "0oasdkclient", &key, false);
    register(&sim, "0oasdkdpop", &key, true);
    let work = WorkDir::new();
    let key_file = work.0.join("client-key.pem");
    std::fs::write(&key_file, &key.private_pem).unwrap();

    let started = std::time::Instant::now();
    let run = tokio::process::Command::new(sdk_python())
        .arg(DRIVER)
        // The SDK reads `okta.yaml` from the working directory: an empty one has none.
        .current_dir(&work.0)
        .env("OKTA_SIM_URL", sim.base_url())
        .env("OKTA_SIM_API_TOKEN", TOKEN)
        .env("OKTA_SIM_CLIENT_ID", "0oasdkclient")
        .env("OKTA_SIM_DPOP_CLIENT_ID", "0oasdkdpop")
        .env("OKTA_SIM_PRIVATE_KEY", &key_file)
        .env("OKTA_SIM_APP_IDS", ids.join(","))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run).await.expect("drive.py finishes").expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("drive.py said {stdout:?} ({e}); stderr:\n{stderr}"));
    let checks = report["checks"].as_array().unwrap();
    let failed: Vec<&Value> = checks.iter().filter(|c| c["ok"] != true).collect();
    eprintln!("okta SDK: {} checks, {} failed, in {:.1}s", checks.len(), failed.len(), started.elapsed().as_secs_f64());
    for check in checks {
        eprintln!("  {} {}", if check["ok"] == true { "ok  " } else { "FAIL" }, check["name"].as_str().unwrap());
    }
    assert!(
        failed.is_empty(),
        "what Okta's SDK found: {}\nstderr:\n{stderr}",
        serde_json::to_string_pretty(&failed).unwrap()
    );
    assert!(out.status.success(), "drive.py: {}\nstderr:\n{stderr}", out.status);
    assert!(checks.len() >= 30, "every step reported: {checks:?}");

    // What the simulator saw of it.
    let calls = sim.calls();
    let instance = format!("/api/v1/apps/{}", ids[1]);
    let gets = calls_to(&calls, "GET", &instance);
    let refused = gets.iter().position(|&s| s == 429).expect("a GET was refused with 429");
    assert_eq!(gets.get(refused + 1), Some(&200), "and the SDK's retry got the app: {gets:?}");
    // Without DPoP: a token, then the driver's replay of its assertion, refused. With DPoP: a
    // `use_dpop_nonce` challenge, a token for a fresh assertion (the challenge used the first one
    // up), then the replays of both, refused.
    assert_eq!(calls_to(&calls, "POST", "/oauth2/v1/token"), [200, 401, 400, 200, 401, 401]);
    let schemes: Vec<&str> = calls.iter().filter(|c| c.path.starts_with("/api/")).map(|c| c.auth.as_str()).collect();
    assert!(schemes.iter().all(|s| ["SSWS", "Bearer", "DPoP"].contains(s)), "{schemes:?}");
    assert!(["SSWS", "Bearer", "DPoP"].iter().all(|s| schemes.contains(s)), "{schemes:?}");
    assert!(calls.iter().all(|c| !c.path.starts_with("/api/") || c.status != 401), "no API call was refused");
    sim.shutdown().await;
}
