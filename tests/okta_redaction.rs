//! Redaction: tokens, private keys, client assertions and DPoP proofs never appear in any log
//! line (captured at trace level for the whole process), in errors or in Debug output.
//!
//! A test binary of its own, so that its global subscriber sees every thread.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use okta_sim::{OAuthClient, OktaSim, SeedApp, SeedKey, SeededApp, SimConfig};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use samlcred::okta::{Auth, DpopMode, OktaClient, OrgConfig, PrivateKey, RetryPolicy};
use serde_json::{Value, json};
use url::Url;

/// A throwaway RSA-2048 key made for these tests only (generating one in a debug build takes
/// many seconds).
const TEST_RSA_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAnl/rafvFHfaxT/wEw2Ewe9AebyLYFp5uCfJmoQvoitobSYVD\nJfeI5mfvBJFn0BeBRas6Jv4aJVsbmbcSJu9l+671WYTapoAXx1CB8OR7OafEcufo\nJXSrwdFjbVbkdPL8pxTWRT2JLP4+VsgF5RehdETm6c3nHGLaOu4M6TfbFn4u64vg\nkYlalIxMpe7gdkIqjjCxJxh3WyWLSuf4RG181ANtRbvr5omsRE2FUryG899J4+Ap\nsjsRtm3vmAnkjNtA08pcoe9RQzxHplZme9cNaLO5AkHryJ0AyAmmou6ws1LEyTUJ\na6bA/6uw7eU6AA1j4mQd8l1m1WcqznWZJSqaEQIDAQABAoIBAADpH/M9OYjEEoiZ\nXt+kD0F5qgsijKfd+QJWofoawEINd1WzY0ufF5WXkxDC00bSM8dA8PXTb+FiG4+v\n3/YDBLeZ7cWPgCsFQTMUsUKU1b6Nn+a3Pab60O1YNQr7vRbiZMst0VOW7dMpPRYw\n/T5a0JiuDWkvwBHyNuYFg2PTPeUXCf7DKj/GFtzPYDtL2BwSg7d9oVT7Xhz84Xax\nJAXS8cW+yOCirVVShn1Kd/pVOS7rcTWYLeTqV117l/a+d253K1KoD8izrD9BF0+q\nvQ1boyZv9o9h7rBsyi+BRIpnANVrFnyAKytUJnkjhCooM8VxUFzYspe7HbxydVi2\n7nTRpp8CgYEA2zUKad0WZ3AEIXkadRafjuRn3IB7ISobesE0ytoY0qvhqg57fj5U\n80mRmgBVjpLvUN4djKRVDBXXk6NTjOZe3OQzs44E4Q6rcV3GVU0PL7DOn/T52Gdu\nso866FUNkVjsOudp5osEjDj9r3SJeOMsirAjYAJC5PUfX6dKPc7As0cCgYEAuPUC\niBHbBgGcLld2u9HLSR6CaZPpBOGsWRC0nd75VyXUHt5VZWReEGZwVE1lmb0+PHqu\n65FOHGRETtGo+dVn0GjuHCk7M64NVtgY62neR2tHQ9eeTcl5hktLfErK4ibv1Ma9\nqQzM6b0QFAnPSrHv0CSDBPpg14s66bgiS8TZA+cCgYEAkL+5nKZNgQhK8f+SJPdH\nbYgNvWFp7UBs3OZwAfN6qMKvRShDC94FIpHV/6dw17DXLsM9J/3r2wshS3ByX3xP\n7/UQ3uRM/IA/XaDassEr4gYSqzWNNgU259oEwB5J00yw0US2fXIXErEfc5i0nosE\ngqBE+8UCf0YN7Y/+SkoYnUkCgYAAhaiJK8u7e5uuQc7y/sedIDnsBF/fBKgQ5Ewu\nOefoSBIOOEBzddISJ8ffZQyJX5BiaVI/FfzrdZj/w/W/JswROYqah79ECRS+jwOa\n/oSDHRlpZp1qyMvQBjxjUG68LrH0ns8AQCn/6um1tMViB5iOtNut0usdEKaM7Fkk\nb5zRNwKBgA0iKYPed693xhHcbSjg/MI0Mh9I1UHXUoQGdp2M1FWyZnFM4mWZst4s\nmjNXfV4mIKlYTAXzDgkPCrrYnRDB8EJRTnuk0SXLQYVrfAQvHmS2bX2BbOQzexXC\nf6nMNwA7ChJRrzH6CNyeKVn28u7MoYv6EWG4T29G9gOTR4dn5gaL\n-----END RSA PRIVATE KEY-----";

const SCOPES: [&str; 2] = ["okta.apps.read", "okta.apps.manage"];

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The test RSA key as a private JWK, the form Okta's Admin Console hands out.
fn rsa_private_jwk() -> String {
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(TEST_RSA_PEM).unwrap();
    let primes = key.primes();
    json!({
        "kty": "RSA",
        "n": b64(&key.n().to_bytes_be()),
        "e": b64(&key.e().to_bytes_be()),
        "d": b64(&key.d().to_bytes_be()),
        "p": b64(&primes[0].to_bytes_be()),
        "q": b64(&primes[1].to_bytes_be()),
    })
    .to_string()
}

fn ec_pkcs8_pem(seed: u8) -> String {
    use p256::pkcs8::EncodePrivateKey;
    p256::SecretKey::from_slice(&[seed; 32]).unwrap().to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap().to_string()
}

fn oauth(client_id: &str, private_key: &str, dpop: DpopMode) -> Auth {
    Auth::OAuth {
        client_id: client_id.into(),
        private_key: PrivateKey::parse(private_key).unwrap(),
        key_id: None,
        scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
        dpop,
    }
}

fn config(base_url: &str, auth: Auth) -> OrgConfig {
    let mut config = OrgConfig::new(Url::parse(base_url).unwrap(), auth);
    config.allow_insecure_http = true;
    config.timeout = Duration::from_secs(5);
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(5),
    };
    config
}

fn register(sim: &OktaSim, client_id: &str, private_key: &str, require_dpop: bool) {
    let public_jwk = PrivateKey::parse(private_key).unwrap().public_jwk().clone();
    sim.add_oauth_client(OAuthClient {
        client_id: client_id.into(),
        public_jwk,
        scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
        require_dpop,
    });
}

fn seed(sim: &OktaSim) -> SeededApp {
    let now = sim.now();
    sim.seed_app(SeedApp {
        id: None,
        label: "Auth".into(),
        keys: vec![SeedKey {
            not_before: now - jiff::SignedDuration::from_hours(24),
            not_after: now + jiff::SignedDuration::from_hours(24 * 90),
        }],
        active: 0,
    })
}

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
    for part in ["d", "p", "q"] {
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
