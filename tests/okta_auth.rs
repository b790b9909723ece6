//! Authentication against the simulator: API tokens, OAuth client credentials with
//! `private_key_jwt` (RSA and EC keys, PEM and JWK), DPoP in each mode with the nonce flow, the
//! single token refresher, and redaction of every secret from logs and Debug output.

use std::time::Duration;

use okta_sim::{CallRecord, OAuthClient, OktaSim, SimConfig};
use samlcred::okta::{Auth, DpopMode, ErrorClass, OktaClient, OktaError, PrivateKey};
use serde_json::json;

mod okta_support;

use okta_support::{
    SCOPES, TEST_RSA_PEM, config, ec_pkcs8_pem, ec_private_jwk, oauth, register, rsa_private_jwk, seed,
};

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
