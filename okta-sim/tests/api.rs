//! The Apps API endpoints the simulator serves: success and error paths.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use jiff::Timestamp;
use okta_sim::{SeedApp, SeedKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

#[tokio::test]
async fn get_app_returns_the_saml_app_with_its_signing_kid() {
    let sim = start().await;
    let app = seed(&sim, "Grafana", 2);
    let http = client();
    let response = ssws(http.get(format!("{}/api/v1/apps/{}", sim.base_url(), app.id))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(body["id"], app.id.as_str());
    assert_eq!(body["label"], "Grafana");
    assert_eq!(body["signOnMode"], "SAML_2_0");
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["credentials"]["signing"]["kid"], app.kids[0].as_str());
    assert!(body["name"].as_str().unwrap().ends_with("_grafana_1"));
    assert!(app.id.starts_with("0oa") && app.id.len() == 20);

    let missing = ssws(http.get(format!("{}/api/v1/apps/0oanope", sim.base_url()))).send().await.unwrap();
    let error = expect_okta_error(missing, 404, "E0000007").await;
    assert_eq!(error["errorSummary"], "Not found: Resource not found: 0oanope (AppInstance)");
}

#[tokio::test]
async fn list_apps_filters_searches_and_paginates_with_link_headers() {
    let sim = start().await;
    let names = ["alpha", "beta", "alpine", "gamma", "alps"];
    let apps: Vec<_> = names
        .iter()
        .map(|n| sim.seed_app(SeedApp { id: None, label: n.to_string(), keys: vec![], active: 0 }))
        .collect();
    let keyed = seed(&sim, "keyed", 1);
    let http = client();
    let base = sim.base_url();

    // q: prefix of label (or name), case-insensitive.
    let found =
        json_of(ssws(http.get(format!("{base}/api/v1/apps")).query(&[("q", "AL")])).send().await.unwrap()).await;
    let labels: Vec<_> = found.as_array().unwrap().iter().map(|a| a["label"].as_str().unwrap().to_string()).collect();
    assert_eq!(labels, ["alpha", "alpine", "alps"]);

    // filter on the signing kid.
    let filter = format!("credentials.signing.kid eq \"{}\"", keyed.kids[0]);
    let found =
        json_of(ssws(http.get(format!("{base}/api/v1/apps")).query(&[("filter", &filter)])).send().await.unwrap())
            .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["id"], keyed.id.as_str());
    let found = json_of(
        ssws(http.get(format!("{base}/api/v1/apps")).query(&[("filter", "status eq \"INACTIVE\"")]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(found, json!([]));
    let bad =
        ssws(http.get(format!("{base}/api/v1/apps")).query(&[("filter", "label sw \"a\"")])).send().await.unwrap();
    expect_okta_error(bad, 400, "E0000031").await;

    // limit + after, following `Link: <...>; rel="next"` until there is none.
    let mut url = format!("{base}/api/v1/apps?limit=2");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let response = ssws(http.get(&url)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let links: Vec<String> =
            response.headers().get_all("link").iter().map(|v| v.to_str().unwrap().to_string()).collect();
        assert!(links.iter().any(|l| l.ends_with("rel=\"self\"")), "{links:?}");
        let next = links
            .iter()
            .find(|l| l.ends_with("rel=\"next\""))
            .map(|l| l.trim_start_matches('<').split('>').next().unwrap().to_string());
        let page = json_of(response).await;
        assert!(page.as_array().unwrap().len() <= 2);
        seen.extend(page.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_string()));
        pages += 1;
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    let mut expected: Vec<String> = apps.iter().map(|a| a.id.clone()).collect();
    expected.push(keyed.id.clone());
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn replace_app_switches_the_signing_key_and_validates_the_body() {
    let sim = start().await;
    let app = seed(&sim, "Wiki", 2);
    let http = client();
    let url = format!("{}/api/v1/apps/{}", sim.base_url(), app.id);
    let minimal = |kid: &str| json!({"name": "ignored", "label": "Wiki", "signOnMode": "SAML_2_0", "credentials": {"signing": {"kid": kid}}});

    let before = sim.now();
    let response = ssws(http.put(&url)).json(&minimal(&app.kids[1])).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(body["credentials"]["signing"]["kid"], app.kids[1].as_str());
    assert_ne!(body["name"], "ignored", "name is system-assigned");
    let updated: Timestamp = body["lastUpdated"].as_str().unwrap().parse().unwrap();
    assert!(updated.as_second() >= before.as_second());
    assert_eq!(sim.active_kid(&app.id).as_deref(), Some(app.kids[1].as_str()));

    // A kid that is not one of the app's keys.
    let response = ssws(http.put(&url)).json(&minimal("not-a-key")).send().await.unwrap();
    let error = expect_okta_error(response, 400, "E0000001").await;
    assert_eq!(error["errorCauses"].as_array().unwrap().len(), 1);
    assert!(error["errorCauses"][0]["errorSummary"].as_str().unwrap().contains("not-a-key"));
    assert_eq!(sim.active_kid(&app.id).as_deref(), Some(app.kids[1].as_str()), "unchanged");

    // Required fields.
    let response = ssws(http.put(&url)).json(&json!({"signOnMode": "SAML_2_0"})).send().await.unwrap();
    let error = expect_okta_error(response, 400, "E0000001").await;
    assert_eq!(error["errorSummary"], "Api validation failed: label");
    let response = ssws(http.put(&url)).json(&json!({"label": "x"})).send().await.unwrap();
    expect_okta_error(response, 400, "E0000001").await;
    let response = ssws(http.put(&url)).body("{not json").send().await.unwrap();
    expect_okta_error(response, 400, "E0000003").await;
    let response =
        ssws(http.put(format!("{}/api/v1/apps/0oagone", sim.base_url()))).json(&minimal("k")).send().await.unwrap();
    expect_okta_error(response, 404, "E0000007").await;
}

/// Okta's replace keeps what the body leaves out and answers with the whole app; `visibility`
/// and `credentials.userNameTemplate` change like `settings` do.
#[tokio::test]
async fn replace_app_keeps_what_the_body_leaves_out_and_changes_what_it_gives() {
    let sim = start().await;
    let app = seed(&sim, "Wiki", 2);
    let http = client();
    let url = format!("{}/api/v1/apps/{}", sim.base_url(), app.id);
    let before = json_of(ssws(http.get(&url)).send().await.unwrap()).await;

    // Only some settings, some of visibility and a new user name template: no signing kid.
    let body = json!({
        "label": "Wiki 2",
        "signOnMode": "SAML_2_0",
        "visibility": {"autoSubmitToolbar": true, "hide": {"iOS": true}},
        "credentials": {"userNameTemplate": {"template": "${source.email}", "type": "BUILT_IN"}},
        "settings": {"signOn": {"audience": "urn:wiki:2", "attributeStatements": []}},
    });
    let response = ssws(http.put(&url)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let after = json_of(response).await;
    assert_eq!(after, json_of(ssws(http.get(&url)).send().await.unwrap()).await, "the answer is the whole app");

    let mut expected = before.clone();
    expected["label"] = json!("Wiki 2");
    expected["visibility"]["autoSubmitToolbar"] = json!(true);
    expected["visibility"]["hide"]["iOS"] = json!(true);
    expected["credentials"]["userNameTemplate"]["template"] = json!("${source.email}");
    expected["settings"]["signOn"]["audience"] = json!("urn:wiki:2");
    expected["lastUpdated"] = after["lastUpdated"].clone();
    assert_eq!(after, expected);
    assert_eq!(after["credentials"]["signing"]["kid"], app.kids[0].as_str(), "the signing key stays");
    assert_eq!(after["visibility"]["hide"]["web"], false, "kept inside a changed object");
    assert!(after["settings"]["signOn"]["ssoAcsUrl"].is_string(), "sign-ins still work");

    // The bare minimum changes nothing else.
    let minimal = json!({"label": "Wiki 2", "signOnMode": "SAML_2_0"});
    let again = json_of(ssws(http.put(&url)).json(&minimal).send().await.unwrap()).await;
    assert_eq!(again["settings"], after["settings"]);
    assert_eq!(again["visibility"], after["visibility"]);
    assert_eq!(again["credentials"], after["credentials"]);

    // What must be an object is refused otherwise, and nothing changes.
    for bad in [json!({"visibility": "hidden"}), json!({"credentials": {"userNameTemplate": 7}})] {
        let mut body = minimal.clone();
        body.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
        expect_okta_error(ssws(http.put(&url)).json(&body).send().await.unwrap(), 400, "E0000003").await;
    }
    assert_eq!(json_of(ssws(http.get(&url)).send().await.unwrap()).await["visibility"], after["visibility"]);
}

#[tokio::test]
async fn generated_keys_are_real_rsa_keys_in_real_certificates() {
    let sim = start().await;
    let app = seed(&sim, "Jenkins", 1);
    let http = client();
    let url = format!("{}/api/v1/apps/{}/credentials/keys/generate?validityYears=3", sim.base_url(), app.id);
    let before = sim.now();
    let response = ssws(http.post(&url)).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let jwk = json_of(response).await;

    let der = STANDARD.decode(jwk["x5c"][0].as_str().unwrap()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let public = cert.public_key().parsed().unwrap();
    let x509_parser::public_key::PublicKey::RSA(rsa) = public else { panic!("not RSA") };
    let strip = |b: &[u8]| b.iter().skip_while(|x| **x == 0).copied().collect::<Vec<u8>>();
    assert_eq!(URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap(), strip(rsa.modulus));
    assert_eq!(URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap(), strip(rsa.exponent));
    assert_eq!(strip(rsa.modulus).len() * 8, 2048);
    assert_eq!(jwk["x5t#S256"], URL_SAFE_NO_PAD.encode(Sha256::digest(&der)).as_str());
    assert_eq!((jwk["kty"].as_str(), jwk["use"].as_str()), (Some("RSA"), Some("sig")));
    assert_eq!(cert.subject(), cert.issuer(), "self-signed");
    assert_eq!(
        cert.subject().to_string(),
        "C=US, ST=California, L=San Francisco, O=Okta, OU=SSOProvider, CN=samlcred-sim"
    );

    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    assert_eq!(not_before, before.as_second(), "notBefore is the simulator's now");
    let expires: Timestamp = jwk["expiresAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires.as_second(), not_after);
    let three_years = before.to_zoned(jiff::tz::TimeZone::UTC).checked_add(jiff::Span::new().years(3)).unwrap();
    assert_eq!(not_after, three_years.timestamp().as_second());
    let created: Timestamp = jwk["created"].as_str().unwrap().parse().unwrap();
    assert_eq!(created.as_second(), before.as_second());
    assert_eq!(jwk["created"], jwk["lastUpdated"]);

    // Listed, retrievable, not active, and distinct from the seeded key.
    let kid = jwk["kid"].as_str().unwrap();
    assert_ne!(kid, app.kids[0]);
    assert_eq!(sim.active_kid(&app.id).as_deref(), Some(app.kids[0].as_str()));
    let keys = json_of(
        ssws(http.get(format!("{}/api/v1/apps/{}/credentials/keys", sim.base_url(), app.id))).send().await.unwrap(),
    )
    .await;
    assert_eq!(keys.as_array().unwrap().len(), 2);
    assert_ne!(keys[0]["n"], keys[1]["n"], "each key is its own RSA key");
    let one = json_of(
        ssws(http.get(format!("{}/api/v1/apps/{}/credentials/keys/{kid}", sim.base_url(), app.id)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(one, jwk);

    // The call log counts the mutating call.
    let generates = sim.calls().iter().filter(|c| c.method == "POST" && c.path.ends_with("/generate")).count();
    assert_eq!(generates, 1);
}

#[tokio::test]
async fn generate_refuses_validity_outside_two_to_ten_years_with_oktas_error() {
    let sim = start().await;
    let app = seed(&sim, "Vault", 0);
    let http = client();
    let url = |q: &str| format!("{}/api/v1/apps/{}/credentials/keys/generate{q}", sim.base_url(), app.id);
    for bad in ["?validityYears=1", "?validityYears=11", "?validityYears=0", "?validityYears=ten"] {
        let response = ssws(http.post(url(bad))).send().await.unwrap();
        let error = expect_okta_error(response, 400, "E0000001").await;
        assert_eq!(
            error,
            json!({
                "errorCode": "E0000001",
                "errorSummary": "Api validation failed: generateKey",
                "errorLink": "E0000001",
                "errorId": error["errorId"],
                "errorCauses": [{"errorSummary": "Validity years out of range. It should be 2 - 10 years."}],
            }),
            "{bad}"
        );
    }
    let missing = ssws(http.post(url(""))).send().await.unwrap();
    expect_okta_error(missing, 400, "E0000028").await;
    let no_app =
        ssws(http.post(format!("{}/api/v1/apps/0oax/credentials/keys/generate?validityYears=2", sim.base_url())))
            .send()
            .await
            .unwrap();
    expect_okta_error(no_app, 404, "E0000007").await;
    assert!(sim.keys(&app.id).is_empty(), "no key was created by a refused call");
}

#[tokio::test]
async fn seeded_keys_carry_the_given_dates_in_their_certificates() {
    let sim = start().await;
    let not_before: Timestamp = "2020-01-02T03:04:05Z".parse().unwrap();
    let not_after: Timestamp = "2021-01-02T03:04:05Z".parse().unwrap();
    let app = sim.seed_app(SeedApp {
        id: Some("0oaSeeded".into()),
        label: "Old".into(),
        keys: vec![SeedKey { not_before, not_after }],
        active: 0,
    });
    assert_eq!(app.id, "0oaSeeded");
    let jwk = &sim.keys(&app.id)[0];
    assert_eq!(jwk["expiresAt"], "2021-01-02T03:04:05.000Z");
    let der = STANDARD.decode(jwk["x5c"][0].as_str().unwrap()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(cert.validity().not_before.timestamp(), not_before.as_second());
    assert_eq!(cert.validity().not_after.timestamp(), not_after.as_second());

    // Added keys are not active; an out-of-band switch is visible through the API.
    let added = sim.add_key(&app.id, key_around(&sim, 0, 400));
    assert_eq!(sim.active_kid(&app.id).as_deref(), Some(app.kids[0].as_str()));
    sim.set_active_kid(&app.id, &added);
    let body =
        json_of(ssws(client().get(format!("{}/api/v1/apps/{}", sim.base_url(), app.id))).send().await.unwrap()).await;
    assert_eq!(body["credentials"]["signing"]["kid"], added.as_str());
}

#[tokio::test]
async fn get_key_answers_404_for_unknown_kids_and_apps() {
    let sim = start().await;
    let app = seed(&sim, "Kibana", 1);
    let http = client();
    let response = ssws(http.get(format!("{}/api/v1/apps/{}/credentials/keys/nope", sim.base_url(), app.id)))
        .send()
        .await
        .unwrap();
    expect_okta_error(response, 404, "E0000007").await;
    let response =
        ssws(http.get(format!("{}/api/v1/apps/0oanone/credentials/keys", sim.base_url()))).send().await.unwrap();
    expect_okta_error(response, 404, "E0000007").await;
}

#[tokio::test]
async fn clone_copies_a_key_to_another_app_once() {
    let sim = start().await;
    let source = seed(&sim, "Source", 1);
    let target = seed(&sim, "Target", 0);
    let http = client();
    let url = |target_aid: &str| {
        format!(
            "{}/api/v1/apps/{}/credentials/keys/{}/clone?targetAid={target_aid}",
            sim.base_url(),
            source.id,
            source.kids[0]
        )
    };
    let response = ssws(http.post(url(&target.id))).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let jwk = json_of(response).await;
    assert_eq!(jwk["kid"], source.kids[0].as_str());
    assert_eq!(sim.keys(&target.id), vec![jwk.clone()]);
    assert_eq!(sim.keys(&source.id)[0]["x5c"], jwk["x5c"]);

    let again = ssws(http.post(url(&target.id))).send().await.unwrap();
    let error = expect_okta_error(again, 400, "E0000001").await;
    assert_eq!(error["errorSummary"], "Api validation failed: cloneKey");
    assert_eq!(
        error["errorCauses"][0]["errorSummary"],
        "Key already exists in the list of key credentials for the target app."
    );

    let response = ssws(http.post(url("0oamissing"))).send().await.unwrap();
    expect_okta_error(response, 404, "E0000007").await;
    let no_target = format!("{}/api/v1/apps/{}/credentials/keys/{}/clone", sim.base_url(), source.id, source.kids[0]);
    expect_okta_error(ssws(http.post(no_target)).send().await.unwrap(), 400, "E0000028").await;
}

#[tokio::test]
async fn saml_metadata_carries_the_requested_keys_certificate() {
    let sim = start().await;
    let app = seed(&sim, "Grafana", 2);
    let http = client();
    let url = |kid: &str| format!("{}/api/v1/apps/{}/sso/saml/metadata?kid={kid}", sim.base_url(), app.id);
    for kid in &app.kids {
        let response = ssws(http.get(url(kid))).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
        let xml = response.text().await.unwrap();
        let start = xml.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
        let end = xml.find("</ds:X509Certificate>").unwrap();
        let cert: String = xml[start..end].split_whitespace().collect();
        let jwk = sim.keys(&app.id).into_iter().find(|k| k["kid"] == kid.as_str()).unwrap();
        assert_eq!(Value::String(cert), jwk["x5c"][0]);
        assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:metadata"));
    }
    expect_okta_error(ssws(http.get(url("unknown"))).send().await.unwrap(), 404, "E0000007").await;
    let no_kid = format!("{}/api/v1/apps/{}/sso/saml/metadata", sim.base_url(), app.id);
    expect_okta_error(ssws(http.get(no_kid)).send().await.unwrap(), 400, "E0000028").await;
}

#[tokio::test]
async fn wrong_methods_and_unknown_endpoints_get_okta_errors() {
    let sim = start().await;
    let app = seed(&sim, "Any", 0);
    let http = client();
    let response =
        ssws(http.delete(format!("{}/api/v1/apps/{}/credentials/keys", sim.base_url(), app.id))).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "GET");
    expect_okta_error(response, 405, "E0000022").await;
    let response = ssws(http.get(format!("{}/api/v1/apps/{}/credentials/keys/generate", sim.base_url(), app.id)))
        .send()
        .await
        .unwrap();
    expect_okta_error(response, 405, "E0000022").await;
    let response = ssws(http.get(format!("{}/api/v1/users", sim.base_url()))).send().await.unwrap();
    expect_okta_error(response, 404, "E0000007").await;
    // And the removed app is gone.
    sim.remove_app(&app.id);
    let response = ssws(http.get(format!("{}/api/v1/apps/{}", sim.base_url(), app.id))).send().await.unwrap();
    expect_okta_error(response, 404, "E0000007").await;
}
