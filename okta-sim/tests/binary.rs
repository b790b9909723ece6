//! The `okta-sim` binary: prints its base URL on stdout, takes API tokens from the environment,
//! seeds the demo app, and documents the control API in `--help`.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_okta-sim");

#[test]
fn help_documents_the_control_api() {
    let out = Command::new(BIN).arg("--help").output().expect("run okta-sim --help");
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in
        ["--api-token", "--seed-demo", "--rate-window-ms", "/__sim/apps", "/__sim/faults", "/__sim/clock/advance"]
    {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
}

/// Kills the simulator process even when an assertion fails.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_and_prints_its_url() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut child = Command::new(BIN)
        .arg("--seed-demo")
        .env("OKTA_SIM_API_TOKEN", "env-token,second-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start okta-sim");
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read the base URL");
    let base = line.trim().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let http = reqwest::Client::new();
    for token in ["env-token", "second-token"] {
        let apps = http
            .get(format!("{base}/api/v1/apps"))
            .header("Authorization", format!("SSWS {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(apps.status(), 200);
        let apps: serde_json::Value = apps.json().await.unwrap();
        assert_eq!(apps[0]["label"], "Demo SAML App");
    }
    let health: serde_json::Value =
        http.get(format!("{base}/__sim/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["base_url"], base.as_str());
}
