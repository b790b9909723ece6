//! Redaction: tokens, private keys, client assertions and DPoP proofs never appear in any log
//! line (captured at trace level for the whole process), in errors or in Debug output.
//!
//! A test binary of its own, so that its global subscriber sees every thread.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use okta_sim::{OktaSim, SimConfig};
use samlcred::okta::{Auth, DpopMode, OktaClient};
use serde_json::{Value, json};

mod okta_support;

use okta_support::{config, ec_pkcs8_pem, oauth, register, rsa_private_jwk, seed};

/// Everything any tracing event wrote, at trace level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// What a stand-in Okta saw: the secrets our client sent, to look for in the logs.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

const KNOWN_ACCESS_TOKEN: &str = "AT-known-access-token-value-0123456789";

async fn token_endpoint(State(seen): State<Seen>, headers: HeaderMap, body: String) -> axum::response::Response {
    let mut secrets = seen.0.lock().unwrap();
    for pair in url::form_urlencoded::parse(body.as_bytes()) {
        if pair.0 == "client_assertion" {
            secrets.push(pair.1.into_owned());
        }
    }
    let dpop = headers.get("dpop").map(|v| v.to_str().unwrap().to_string());
    let token_type = if dpop.is_some() { "DPoP" } else { "Bearer" };
    secrets.extend(dpop);
    let body = json!({"access_token": KNOWN_ACCESS_TOKEN, "token_type": token_type, "expires_in": 3600});
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn apps_endpoint(State(seen): State<Seen>, headers: HeaderMap) -> axum::response::Response {
    let mut secrets = seen.0.lock().unwrap();
    for name in ["authorization", "dpop"] {
        if let Some(value) = headers.get(name) {
            secrets.push(value.to_str().unwrap().to_string());
        }
    }
    (StatusCode::OK, axum::Json(json!([]))).into_response()
}

async fn stand_in_okta() -> (String, Seen) {
    let seen = Seen::default();
    let router = axum::Router::new()
        .route("/oauth2/v1/token", post(token_endpoint))
        .route("/api/v1/apps", get(apps_endpoint))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_errors_or_debug_output() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace,okta_sim=off"))
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let rsa_jwk = rsa_private_jwk();
    let ec_pem = ec_pkcs8_pem(12);
    let mut outputs = Vec::new();

    // A stand-in Okta that records exactly what was sent: assertion, proofs, tokens.
    let (base, seen) = stand_in_okta().await;
    for (key, dpop) in [(&rsa_jwk, DpopMode::Required), (&ec_pem, DpopMode::Disabled)] {
        let client = OktaClient::new(config(&base, oauth("client", key, dpop))).unwrap();
        client.verify_credentials().await.unwrap();
        outputs.push(format!("{client:?}"));
    }

    // The simulator, through DPoP's nonce flow and a failing call.
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    register(&sim, "dpop", &rsa_jwk, true);
    let cfg = config(&sim.base_url(), oauth("dpop", &rsa_jwk, DpopMode::Auto));
    outputs.push(format!("{cfg:?}"));
    let client = OktaClient::new(cfg).unwrap();
    client.activate_key(&app.id, &app.kids[0]).await.unwrap();
    let err = client.get_key(&app.id, "missing").await.unwrap_err();
    outputs.push(format!("{err} {err:?}"));
    sim.add_api_token("00-ssws-secret-token");
    let ssws = config(&sim.base_url(), Auth::ApiToken("00-ssws-secret-token".to_string().into()));
    outputs.push(format!("{ssws:?}"));
    let ssws = OktaClient::new(ssws).unwrap();
    ssws.get_app(&app.id).await.unwrap();
    outputs.push(format!("{ssws:?}"));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("Okta answered"), "the capture saw the client's logs: {}", &logs[..logs.len().min(3000)]);
    let everything = format!("{logs}\n{}", outputs.join("\n"));

    let mut secrets: Vec<String> = seen.0.lock().unwrap().clone();
    assert!(secrets.len() >= 4, "the stand-in saw assertions, proofs and tokens");
    secrets.push(KNOWN_ACCESS_TOKEN.into());
    secrets.push("00-ssws-secret-token".into());
    let private_jwk: Value = serde_json::from_str(&rsa_jwk).unwrap();
    for part in ["d", "p", "q", "dp", "dq", "qi"] {
        secrets.push(private_jwk[part].as_str().unwrap().to_string());
    }
    let pem_body: Vec<&str> = ec_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    secrets.extend(pem_body.iter().map(|l| l.to_string()));
    for secret in &secrets {
        // Every JWT part and the tokens themselves; a JWT's signature alone is enough to match.
        let needle = secret.rsplit('.').next().unwrap();
        assert!(!everything.contains(needle), "a secret leaked: {}...", &needle[..8]);
    }
    // No JWT at all (assertions and proofs start with a base64 `{"`).
    assert!(!everything.contains("eyJ"), "a JWT leaked into the logs");
}
