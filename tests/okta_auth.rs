//! Authentication against the simulator: API tokens, OAuth client credentials with
//! `private_key_jwt` (RSA and EC keys, PEM and JWK), DPoP in each mode with the nonce flow, the
//! single token refresher, and redaction of every secret from logs and Debug output.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use okta_sim::{CallRecord, OAuthClient, OktaSim, SeedApp, SeedKey, SeededApp, SimConfig};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use samlcred::okta::{Auth, DpopMode, ErrorClass, OktaClient, OktaError, OrgConfig, PrivateKey, RetryPolicy};
use serde_json::json;
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

fn ec_private_jwk(seed: u8) -> String {
    let key = PrivateKey::from_p256(&p256::SecretKey::from_slice(&[seed; 32]).unwrap()).unwrap();
    let mut jwk = key.public_jwk().clone();
    jwk["d"] = b64(&[seed; 32]).into();
    jwk.to_string()
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

fn token_calls(sim: &OktaSim) -> Vec<CallRecord> {
    sim.calls().into_iter().filter(|c| c.path == "/oauth2/v1/token").collect()
}

fn api_calls(sim: &OktaSim) -> Vec<CallRecord> {
    sim.calls().into_iter().filter(|c| c.path.starts_with("/api/")).collect()
}

fn statuses(calls: &[CallRecord]) -> Vec<u16> {
    calls.iter().map(|c| c.status).collect()
}

#[tokio::test]
async fn api_token_is_sent_as_ssws() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    sim.add_api_token("00token");
    let app = seed(&sim);
    let client = OktaClient::new(config(&sim.base_url(), Auth::ApiToken("00token".to_string().into()))).unwrap();
    client.get_app(&app.id).await.unwrap();
    assert!(!client.uses_dpop());
    assert!(token_calls(&sim).is_empty());
    assert_eq!(api_calls(&sim)[0].auth, "SSWS");
}

#[tokio::test]
async fn oauth_works_with_rsa_and_ec_keys_in_pem_and_jwk() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let keys = [
        ("rsa-pem", TEST_RSA_PEM.to_string()),
        ("rsa-jwk", rsa_private_jwk()),
        ("ec-pem", ec_pkcs8_pem(3)),
        ("ec-jwk", ec_private_jwk(4)),
    ];
    for (client_id, key) in &keys {
        register(&sim, client_id, key, false);
        let client = OktaClient::new(config(&sim.base_url(), oauth(client_id, key, DpopMode::Disabled))).unwrap();
        let fetched = client.get_app(&app.id).await.unwrap();
        assert_eq!(fetched.id, app.id, "{client_id}");
        client.list_keys(&app.id).await.unwrap();
    }
    assert_eq!(statuses(&token_calls(&sim)), [200, 200, 200, 200]);
    let api = api_calls(&sim);
    assert_eq!(api.len(), 8);
    assert!(api.iter().all(|c| c.auth == "Bearer" && c.status == 200));
}

#[tokio::test]
async fn the_assertion_names_the_registered_kid() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let key = ec_pkcs8_pem(5);
    let mut public_jwk = PrivateKey::parse(&key).unwrap().public_jwk().clone();
    public_jwk["kid"] = "key-2024".into();
    sim.add_oauth_client(OAuthClient {
        client_id: "kid-client".into(),
        public_jwk,
        scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
        require_dpop: false,
    });
    for (kid, works) in [("key-2024", true), ("another-key", false)] {
        let auth = Auth::OAuth {
            client_id: "kid-client".into(),
            private_key: PrivateKey::parse(&key).unwrap(),
            key_id: Some(kid.into()),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
            dpop: DpopMode::Disabled,
        };
        let client = OktaClient::new(config(&sim.base_url(), auth)).unwrap();
        let result = client.get_app(&app.id).await;
        assert_eq!(result.is_ok(), works, "{kid}: {result:?}");
        if let Err(err) = result {
            assert!(matches!(err, OktaError::Unauthorized { .. }), "{err}");
            assert_eq!(err.error_code(), Some("invalid_client"));
            assert_eq!(err.class(), ErrorClass::Terminal);
        }
    }
}

#[tokio::test]
async fn missing_scope_is_forbidden() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let key = ec_pkcs8_pem(6);
    sim.add_oauth_client(OAuthClient {
        client_id: "reader".into(),
        public_jwk: PrivateKey::parse(&key).unwrap().public_jwk().clone(),
        scopes: vec!["okta.apps.read".into()],
        require_dpop: false,
    });
    let auth = Auth::OAuth {
        client_id: "reader".into(),
        private_key: PrivateKey::parse(&key).unwrap(),
        key_id: None,
        scopes: vec!["okta.apps.read".into()],
        dpop: DpopMode::Auto,
    };
    let client = OktaClient::new(config(&sim.base_url(), auth)).unwrap();
    client.get_app(&app.id).await.unwrap();
    let err = client.generate_key(&app.id, 2).await.unwrap_err();
    assert!(matches!(err, OktaError::Forbidden { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(err.error_id().is_some());
}

#[tokio::test]
async fn dpop_required_goes_through_the_nonce_flow() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let key = ec_pkcs8_pem(7);
    register(&sim, "dpop-client", &key, false);
    let client = OktaClient::new(config(&sim.base_url(), oauth("dpop-client", &key, DpopMode::Required))).unwrap();
    assert!(client.uses_dpop());
    let keys = client.list_keys(&app.id).await.unwrap();
    client.get_key(&app.id, &keys[0].kid).await.unwrap();
    client.activate_key(&app.id, &keys[0].kid).await.unwrap();
    // First token request without a nonce, told `use_dpop_nonce`, then again with it.
    assert_eq!(statuses(&token_calls(&sim)), [400, 200]);
    let api = api_calls(&sim);
    assert_eq!(api.len(), 4);
    assert!(api.iter().all(|c| c.auth == "DPoP" && c.status == 200), "{api:?}");
}

#[tokio::test]
async fn dpop_auto_switches_when_the_client_requires_it() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let key = TEST_RSA_PEM.to_string();
    register(&sim, "strict", &key, true);
    let client = OktaClient::new(config(&sim.base_url(), oauth("strict", &key, DpopMode::Auto))).unwrap();
    assert!(!client.uses_dpop());
    client.get_app(&app.id).await.unwrap();
    assert!(client.uses_dpop());
    // Without DPoP: invalid_dpop_proof; with a proof but no nonce: use_dpop_nonce; then a token.
    assert_eq!(statuses(&token_calls(&sim)), [400, 400, 200]);
    assert_eq!(api_calls(&sim)[0].auth, "DPoP");
}

#[tokio::test]
async fn dpop_auto_stays_with_bearer_when_okta_does_not_ask() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let key = ec_private_jwk(8);
    register(&sim, "relaxed", &key, false);
    let client = OktaClient::new(config(&sim.base_url(), oauth("relaxed", &key, DpopMode::Auto))).unwrap();
    client.get_app(&app.id).await.unwrap();
    assert!(!client.uses_dpop());
    assert_eq!(statuses(&token_calls(&sim)), [200]);
    assert_eq!(api_calls(&sim)[0].auth, "Bearer");
}

#[tokio::test]
async fn dpop_disabled_fails_clearly_when_okta_requires_it() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let key = ec_pkcs8_pem(9);
    register(&sim, "strict", &key, true);
    let client = OktaClient::new(config(&sim.base_url(), oauth("strict", &key, DpopMode::Disabled))).unwrap();
    let err = client.get_app(&app.id).await.unwrap_err();
    assert!(matches!(err, OktaError::Unauthorized { .. }), "{err}");
    assert_eq!(err.error_code(), Some("invalid_dpop_proof"));
    assert_eq!(statuses(&token_calls(&sim)), [400]);
    assert!(api_calls(&sim).is_empty());
}

#[tokio::test]
async fn fifty_concurrent_callers_share_one_token_request_and_one_refresh() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let key = ec_pkcs8_pem(10);
    register(&sim, "busy", &key, false);
    let client = OktaClient::new(config(&sim.base_url(), oauth("busy", &key, DpopMode::Required))).unwrap();

    let wave = |client: OktaClient, app_id: String| async move {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let client = client.clone();
                let app_id = app_id.clone();
                tokio::spawn(async move { client.get_app(&app_id).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    };
    wave(client.clone(), app.id.clone()).await;
    let tokens = token_calls(&sim);
    assert_eq!(tokens.iter().filter(|c| c.status == 200).count(), 1, "{tokens:?}");

    // Every token expires at once: each caller meets a 401, and still only one refresh happens.
    sim.advance_clock(Duration::from_secs(2 * 3600));
    wave(client.clone(), app.id.clone()).await;
    let tokens = token_calls(&sim);
    assert_eq!(tokens.iter().filter(|c| c.status == 200).count(), 2, "{tokens:?}");
    let api = api_calls(&sim);
    assert_eq!(api.iter().filter(|c| c.status == 200).count(), 100);
    assert!(api.iter().filter(|c| c.status == 401).count() <= 50);
}

#[tokio::test]
async fn an_unrefreshable_401_is_terminal_after_one_refresh() {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    let app = seed(&sim);
    let key = ec_pkcs8_pem(11);
    register(&sim, "revoked", &key, false);
    let client = OktaClient::new(config(&sim.base_url(), oauth("revoked", &key, DpopMode::Disabled))).unwrap();
    client.get_app(&app.id).await.unwrap();
    // The client's credentials are revoked while its token still works; the token then expires.
    sim.reset();
    let app = seed(&sim);
    let err = client.get_app(&app.id).await.unwrap_err();
    assert!(matches!(err, OktaError::Unauthorized { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);
    // One 401, one refresh attempt refused by the token endpoint, no loop.
    assert_eq!(statuses(&api_calls(&sim)), [401]);
    assert_eq!(statuses(&token_calls(&sim)), [401]);
}

/// Tokens are renewed before they expire (after 80% of a short life), not after a 401.
#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::response::IntoResponse;

    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    let router = axum::Router::new()
        .route(
            "/oauth2/v1/token",
            axum::routing::post(move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    axum::Json(
                        json!({"access_token": format!("short-lived-{n}"), "token_type": "Bearer", "expires_in": 1}),
                    )
                    .into_response()
                }
            }),
        )
        .route("/api/v1/apps", axum::routing::get(|| async { axum::Json(json!([])).into_response() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let client = OktaClient::new(config(&base, oauth("short", &ec_pkcs8_pem(13), DpopMode::Disabled))).unwrap();
    client.verify_credentials().await.unwrap();
    client.verify_credentials().await.unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 1, "a fresh token is reused");
    // The passage of time is what is under test here: 0.9 s of a 1 s token is past 80%.
    tokio::time::sleep(Duration::from_millis(900)).await;
    client.verify_credentials().await.unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2, "renewed ahead of expiry");
}
