//! SSWS tokens, OAuth 2.0 client credentials with private_key_jwt, scopes, and DPoP.

mod common;

use std::time::Duration;

use common::*;
use jiff::Timestamp;
use okta_sim::OAuthClient;
use serde_json::{Value, json};

fn register(sim: &okta_sim::OktaSim, id: &str, key: &ClientKey, scopes: &[&str], require_dpop: bool) {
    sim.add_oauth_client(OAuthClient {
        client_id: id.into(),
        public_jwk: key.public_jwk.clone(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        require_dpop,
    });
}

fn token_url(sim: &okta_sim::OktaSim) -> String {
    format!("{}/oauth2/v1/token", sim.base_url())
}

async fn oauth_error(response: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body = json_of(response).await;
    assert_eq!(body["error"], error, "{body}");
    assert!(body["error_description"].is_string());
    body
}

#[tokio::test]
async fn ssws_tokens_are_checked_and_every_call_is_logged_with_its_scheme() {
    let sim = start().await;
    let app = seed(&sim, "App", 0);
    let http = client();
    let url = format!("{}/api/v1/apps/{}", sim.base_url(), app.id);
    assert_eq!(ssws(http.get(&url)).send().await.unwrap().status(), 200);
    let wrong = http.get(&url).header("Authorization", "SSWS wrong").send().await.unwrap();
    let error = expect_okta_error(wrong, 401, "E0000011").await;
    assert_eq!(error["errorSummary"], "Invalid token provided");
    expect_okta_error(http.get(&url).send().await.unwrap(), 401, "E0000011").await;
    let auth: Vec<String> = sim.calls().into_iter().map(|c| c.auth).collect();
    assert_eq!(auth, ["SSWS", "SSWS", "none"]);
}

#[tokio::test]
async fn client_credentials_with_an_ec_key_give_a_one_hour_bearer_token() {
    let sim = start().await;
    let app = seed(&sim, "App", 0);
    let key = ClientKey::ec();
    register(&sim, "0oaclient", &key, &["okta.apps.read", "okta.apps.manage"], false);
    let http = client();
    let response = token_request(
        &http,
        &sim.base_url(),
        &key.assertion("0oaclient", &token_url(&sim)),
        "okta.apps.read okta.apps.manage",
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let token = json_of(response).await;
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    assert_eq!(token["scope"], "okta.apps.read okta.apps.manage");
    let access = token["access_token"].as_str().unwrap();

    let url = format!("{}/api/v1/apps/{}", sim.base_url(), app.id);
    let ok = http.get(&url).bearer_auth(access).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let generate = format!("{}/api/v1/apps/{}/credentials/keys/generate?validityYears=2", sim.base_url(), app.id);
    assert_eq!(http.post(&generate).bearer_auth(access).send().await.unwrap().status(), 201);
    assert_eq!(sim.calls().last().unwrap().auth, "Bearer");

    // One hour later (on the simulator's clock) the token is dead.
    sim.advance_clock(Duration::from_secs(3601));
    let expired = http.get(&url).bearer_auth(access).send().await.unwrap();
    expect_okta_error(expired, 401, "E0000011").await;
}

#[tokio::test]
async fn an_rsa_client_with_a_kid_works_and_a_wrong_kid_does_not() {
    let sim = start().await;
    let key = ClientKey::rsa();
    let mut jwk = key.public_jwk.clone();
    jwk["kid"] = json!("client-key-1");
    sim.add_oauth_client(OAuthClient {
        client_id: "0oarsa".into(),
        public_jwk: jwk,
        scopes: vec!["okta.apps.read".into()],
        require_dpop: false,
    });
    let http = client();
    let claims = || json!({"iss": "0oarsa", "sub": "0oarsa", "aud": token_url(&sim), "exp": Timestamp::now().as_second() + 300, "jti": random_id()});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("client-key-1".into());
    let good = key.sign(header.clone(), &claims());
    assert_eq!(token_request(&http, &sim.base_url(), &good, "okta.apps.read", None).await.status(), 200);
    header.kid = Some("other".into());
    let bad = key.sign(header, &claims());
    oauth_error(token_request(&http, &sim.base_url(), &bad, "okta.apps.read", None).await, 401, "invalid_client").await;
}

#[tokio::test]
async fn client_assertions_are_verified() {
    let sim = start().await;
    let key = ClientKey::ec();
    register(&sim, "0oac", &key, &["okta.apps.read"], false);
    let http = client();
    let base = sim.base_url();
    let now = Timestamp::now().as_second();
    let claims = |patch: Value| {
        let mut c = json!({"iss": "0oac", "sub": "0oac", "aud": token_url(&sim), "exp": now + 300, "jti": random_id()});
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let refused = [
        ("wrong audience", key.assertion_with(claims(json!({"aud": "https://elsewhere/oauth2/v1/token"})))),
        ("wrong issuer", key.assertion_with(claims(json!({"iss": "0oaother"})))),
        ("wrong subject", key.assertion_with(claims(json!({"sub": "0oaother"})))),
        ("expired", key.assertion_with(claims(json!({"exp": now - 600})))),
        ("no exp", key.assertion_with(claims(json!({"exp": null})))),
        ("exp too far", key.assertion_with(claims(json!({"exp": now + 7200})))),
        ("signed by another key", ClientKey::ec().assertion_with(claims(json!({})))),
        ("unknown client", key.assertion_with(claims(json!({"iss": "0oanobody", "sub": "0oanobody"})))),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (why, assertion) in refused {
        let response = token_request(&http, &base, &assertion, "okta.apps.read", None).await;
        assert_eq!(response.status(), 401, "{why}");
        assert_eq!(json_of(response).await["error"], "invalid_client", "{why}");
    }
    // A jti is good for one token only.
    let once = key.assertion_with(claims(json!({"jti": "same-jti"})));
    assert_eq!(token_request(&http, &base, &once, "okta.apps.read", None).await.status(), 200);
    let replay = token_request(&http, &base, &once, "okta.apps.read", None).await;
    let body = oauth_error(replay, 401, "invalid_client").await;
    assert!(body["error_description"].as_str().unwrap().contains("already been used"));
}

/// Okta authenticates the client first and consumes the assertion's `jti` on every token request,
/// whatever the answer: a refused scope or a DPoP nonce challenge uses the assertion up too.
#[tokio::test]
async fn every_token_request_consumes_its_assertion() {
    let sim = start().await;
    let key = ClientKey::rsa();
    register(&sim, "0oaplain", &key, &["okta.apps.read"], false);
    register(&sim, "0oabound", &key, &["okta.apps.read"], true);
    let http = client();
    let (base, tu) = (sim.base_url(), token_url(&sim));
    let used = |response: reqwest::Response| async move {
        let body = oauth_error(response, 401, "invalid_client").await;
        assert_eq!(body["error_description"], "The client_assertion token has already been used.");
    };

    let assertion = key.assertion("0oaplain", &tu);
    oauth_error(token_request(&http, &base, &assertion, "okta.apps.manage", None).await, 400, "invalid_scope").await;
    used(token_request(&http, &base, &assertion, "okta.apps.read", None).await).await;

    let assertion = key.assertion("0oabound", &tu);
    oauth_error(token_request(&http, &base, &assertion, "okta.apps.read", None).await, 400, "invalid_dpop_proof").await;
    used(token_request(&http, &base, &assertion, "okta.apps.read", Some(&key.dpop("POST", &tu, None, None))).await)
        .await;

    let assertion = key.assertion("0oabound", &tu);
    let challenge =
        token_request(&http, &base, &assertion, "okta.apps.read", Some(&key.dpop("POST", &tu, None, None))).await;
    let nonce = challenge.headers()["dpop-nonce"].to_str().unwrap().to_string();
    oauth_error(challenge, 400, "use_dpop_nonce").await;
    let with_nonce = || key.dpop("POST", &tu, Some(&nonce), None);
    used(token_request(&http, &base, &assertion, "okta.apps.read", Some(&with_nonce())).await).await;
    let fresh = key.assertion("0oabound", &tu);
    assert_eq!(token_request(&http, &base, &fresh, "okta.apps.read", Some(&with_nonce())).await.status(), 200);
    let calls: Vec<u16> = sim.calls().iter().map(|c| c.status).collect();
    assert_eq!(calls, [400, 401, 400, 401, 400, 401, 200]);
}

#[tokio::test]
async fn scopes_are_enforced_at_the_token_endpoint_and_per_api_endpoint() {
    let sim = start().await;
    let app = seed(&sim, "App", 1);
    let key = ClientKey::ec();
    register(&sim, "0oaro", &key, &["okta.apps.read"], false);
    let http = client();
    let base = sim.base_url();
    let denied = token_request(&http, &base, &key.assertion("0oaro", &token_url(&sim)), "okta.apps.manage", None).await;
    oauth_error(denied, 400, "invalid_scope").await;
    let missing = token_request(&http, &base, &key.assertion("0oaro", &token_url(&sim)), "", None).await;
    oauth_error(missing, 400, "invalid_scope").await;

    let token =
        json_of(token_request(&http, &base, &key.assertion("0oaro", &token_url(&sim)), "okta.apps.read", None).await)
            .await;
    let access = token["access_token"].as_str().unwrap();
    let read =
        http.get(format!("{base}/api/v1/apps/{}/credentials/keys", app.id)).bearer_auth(access).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let generate = http
        .post(format!("{base}/api/v1/apps/{}/credentials/keys/generate?validityYears=2", app.id))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert!(generate.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
    expect_okta_error(generate, 403, "E0000006").await;
    let put = http
        .put(format!("{base}/api/v1/apps/{}", app.id))
        .bearer_auth(access)
        .json(&json!({"label": "x", "signOnMode": "SAML_2_0"}))
        .send()
        .await
        .unwrap();
    expect_okta_error(put, 403, "E0000006").await;
    assert_eq!(sim.keys(&app.id).len(), 1, "nothing generated");
}

#[tokio::test]
async fn token_requests_need_client_credentials_and_a_private_key_jwt() {
    let sim = start().await;
    let http = client();
    let response = http
        .post(token_url(&sim))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=a&password=b")
        .send()
        .await
        .unwrap();
    oauth_error(response, 400, "unsupported_grant_type").await;
    let response = http
        .post(token_url(&sim))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=x&client_secret=y")
        .send()
        .await
        .unwrap();
    oauth_error(response, 401, "invalid_client").await;
}

/// The DPoP dance: no proof, then `use_dpop_nonce`, then a DPoP-bound token used with proofs.
#[tokio::test]
async fn dpop_clients_get_a_nonce_challenge_then_a_bound_token() {
    let sim = start().await;
    let app = seed(&sim, "App", 0);
    let key = ClientKey::ec();
    register(&sim, "0oadpop", &key, &["okta.apps.read", "okta.apps.manage"], true);
    let http = client();
    let base = sim.base_url();
    let tu = token_url(&sim);
    let scope = "okta.apps.read";

    let no_proof = token_request(&http, &base, &key.assertion("0oadpop", &tu), scope, None).await;
    let body = oauth_error(no_proof, 400, "invalid_dpop_proof").await;
    assert_eq!(body["error_description"], "The DPoP proof JWT header is missing.");

    let assertion = key.assertion("0oadpop", &tu);
    let challenge = token_request(&http, &base, &assertion, scope, Some(&key.dpop("POST", &tu, None, None))).await;
    let nonce = challenge.headers().get("dpop-nonce").expect("DPoP-Nonce header").to_str().unwrap().to_string();
    oauth_error(challenge, 400, "use_dpop_nonce").await;

    // The challenge consumed the assertion, as Okta does: the retry with the nonce needs a new one.
    let replay = token_request(&http, &base, &assertion, scope, Some(&key.dpop("POST", &tu, Some(&nonce), None))).await;
    let body = oauth_error(replay, 401, "invalid_client").await;
    assert_eq!(body["error_description"], "The client_assertion token has already been used.");

    // Bad proofs with the nonce are still refused (each request with a new assertion).
    let assertion = || key.assertion("0oadpop", &tu);
    let wrong_htm = key.dpop("GET", &tu, Some(&nonce), None);
    oauth_error(token_request(&http, &base, &assertion(), scope, Some(&wrong_htm)).await, 400, "invalid_dpop_proof")
        .await;
    let wrong_htu = key.dpop("POST", "http://elsewhere/oauth2/v1/token", Some(&nonce), None);
    oauth_error(token_request(&http, &base, &assertion(), scope, Some(&wrong_htu)).await, 400, "invalid_dpop_proof")
        .await;
    let mut claims =
        json!({"htm": "POST", "htu": tu, "iat": Timestamp::now().as_second(), "jti": random_id(), "nonce": nonce});
    let mut header = jsonwebtoken::Header::new(key.alg);
    header.typ = Some("JWT".into());
    header.jwk = Some(serde_json::from_value(key.public_jwk.clone()).unwrap());
    let wrong_typ = key.sign(header, &claims);
    oauth_error(token_request(&http, &base, &assertion(), scope, Some(&wrong_typ)).await, 400, "invalid_dpop_proof")
        .await;
    claims["iat"] = json!(Timestamp::now().as_second() - 3600);
    let stale = key.dpop_with(claims);
    oauth_error(token_request(&http, &base, &assertion(), scope, Some(&stale)).await, 400, "invalid_dpop_proof").await;

    // A new assertion, a proof with the nonce: a DPoP token.
    let proof = key.dpop("POST", &tu, Some(&nonce), None);
    let granted = token_request(&http, &base, &assertion(), scope, Some(&proof)).await;
    assert_eq!(granted.status(), 200);
    let token = json_of(granted).await;
    assert_eq!(token["token_type"], "DPoP");
    let access = token["access_token"].as_str().unwrap().to_string();

    let url = format!("{base}/api/v1/apps/{}", app.id);
    let call = |proof: Option<String>, scheme: &'static str| {
        let mut request = http.get(&url).header("Authorization", format!("{scheme} {access}"));
        if let Some(p) = proof {
            request = request.header("DPoP", p);
        }
        request.send()
    };
    let ok = call(Some(key.dpop("GET", &url, None, Some(&access))), "DPoP").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(sim.calls().last().unwrap().auth, "DPoP");

    let refused = [
        ("as a bearer token", call(None, "Bearer").await.unwrap()),
        ("without a proof", call(None, "DPoP").await.unwrap()),
        ("proof without ath", call(Some(key.dpop("GET", &url, None, None)), "DPoP").await.unwrap()),
        ("proof for another token", call(Some(key.dpop("GET", &url, None, Some("other"))), "DPoP").await.unwrap()),
        ("proof for another method", call(Some(key.dpop("PUT", &url, None, Some(&access))), "DPoP").await.unwrap()),
        (
            "proof by another key",
            call(Some(ClientKey::ec().dpop("GET", &url, None, Some(&access))), "DPoP").await.unwrap(),
        ),
    ];
    for (why, response) in refused {
        assert_eq!(response.status(), 401, "{why}");
        assert!(response.headers().contains_key("www-authenticate"), "{why}");
    }
    // A proof is good once.
    let proof = key.dpop("GET", &url, None, Some(&access));
    assert_eq!(call(Some(proof.clone()), "DPoP").await.unwrap().status(), 200);
    assert_eq!(call(Some(proof), "DPoP").await.unwrap().status(), 401);
}
