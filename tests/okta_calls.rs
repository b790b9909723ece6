//! Every Okta call of the client against the in-process simulator, with an API token, plus the
//! failure modes: server errors, timeouts, broken and undecodable bodies, redirects.

mod okta_support;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use okta_sim::{CallRecord, Fault, FaultKind, OktaSim, SeedApp, SeedKey, SeededApp, SimConfig};
use samlcred::okta::{AppQuery, Auth, Cloned, ErrorClass, KeyCredential, OktaClient, OktaError, OrgConfig};

const TOKEN: &str = "00sim-api-token";

fn config(base_url: &str) -> OrgConfig {
    okta_support::org_config(base_url, Auth::ApiToken(TOKEN.to_string().into()), Duration::from_millis(1500))
}

async fn start() -> (OktaSim, OktaClient) {
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    sim.add_api_token(TOKEN);
    let client = OktaClient::new(config(&sim.base_url())).unwrap();
    (sim, client)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn seed(sim: &OktaSim, label: &str, keys: usize) -> SeededApp {
    let now = sim.now();
    let keys = (0..keys)
        .map(|i| SeedKey { not_before: now - days(400 + i as i64), not_after: now + days(30 + 100 * i as i64) })
        .collect();
    sim.seed_app(SeedApp { id: None, label: label.into(), keys, active: 0 })
}

fn calls_to(sim: &OktaSim, method: &str, path_suffix: &str) -> Vec<CallRecord> {
    sim.calls().into_iter().filter(|c| c.method == method && c.path.ends_with(path_suffix)).collect()
}

#[tokio::test]
async fn get_app_reads_the_active_kid() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Grafana", 2);
    let app = client.get_app(&seeded.id).await.unwrap();
    assert_eq!(app.id, seeded.id);
    assert_eq!(app.label, "Grafana");
    assert_eq!(app.sign_on_mode, "SAML_2_0");
    assert_eq!(app.active_kid(), Some(seeded.kids[0].as_str()));
    assert!(sim.calls().iter().all(|c| c.auth == "SSWS"));
}

#[tokio::test]
async fn keys_are_listed_fetched_and_their_certificates_check_out() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Keys", 2);
    let keys = client.list_keys(&seeded.id).await.unwrap();
    let mut kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    kids.sort();
    let mut expected: Vec<&str> = seeded.kids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(kids, expected);

    // The JWKs come back exactly as Okta sent them, for the Secret's jwks.json.
    let raw: Vec<serde_json::Value> = keys.iter().map(|k| k.jwk().clone()).collect();
    assert_eq!(raw, sim.keys(&seeded.id));

    for key in &keys {
        let cert = key.certificate().unwrap();
        assert_eq!(Some(cert.x5t_s256.as_str()), key.x5t_s256.as_deref());
        assert!(cert.not_before < cert.not_after);
        let fetched = client.get_key(&seeded.id, &key.kid).await.unwrap();
        assert_eq!(&fetched, key);
    }
    let active = keys.iter().find(|k| k.kid == seeded.kids[0]).unwrap();
    let cert = active.certificate().unwrap();
    let expected_not_after = sim.now() + days(30);
    assert!(
        (cert.not_after.as_second() - expected_not_after.as_second()).abs() <= 1,
        "{} vs {}",
        cert.not_after,
        expected_not_after
    );
}

#[tokio::test]
async fn generate_then_activate_switches_the_key_and_keeps_the_rest_of_the_app() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Rotate", 1);
    let before = client.get_app(&seeded.id).await.unwrap();

    let key = client.generate_key(&seeded.id, 3).await.unwrap();
    assert!(!seeded.kids.contains(&key.kid));
    assert_eq!(sim.keys(&seeded.id).len(), 2);
    assert_eq!(sim.active_kid(&seeded.id).as_deref(), Some(seeded.kids[0].as_str()));
    let cert = key.certificate().unwrap();
    let three_years = sim.now().as_second() + 3 * 365 * 86_400;
    assert!((cert.not_after.as_second() - three_years).abs() < 3 * 86_400);

    let after = client.activate_key(&seeded.id, &key.kid).await.unwrap();
    assert_eq!(after.active_kid(), Some(key.kid.as_str()));
    assert_eq!(sim.active_kid(&seeded.id).as_deref(), Some(key.kid.as_str()));
    // A fresh GET precedes the PUT.
    let instance: Vec<String> =
        sim.calls().into_iter().filter(|c| c.path == format!("/api/v1/apps/{}", seeded.id)).map(|c| c.method).collect();
    assert_eq!(instance, ["GET", "GET", "PUT"]);
    // Nothing but the kid (and Okta's lastUpdated) changed.
    let mut before_extra = before.extra.clone();
    let mut after_extra = after.extra.clone();
    before_extra.remove("lastUpdated");
    after_extra.remove("lastUpdated");
    assert_eq!(before_extra, after_extra);
    assert_eq!(before.label, after.label);
    assert_eq!(before.name, after.name);
}

#[tokio::test]
async fn activating_an_unknown_kid_is_a_terminal_validation_error() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Bad kid", 1);
    let err = client.activate_key(&seeded.id, "no-such-kid").await.unwrap_err();
    assert!(matches!(err, OktaError::Validation { status: 400, .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(err.error_id().is_some());
    assert_eq!(sim.active_kid(&seeded.id).as_deref(), Some(seeded.kids[0].as_str()));
}

#[tokio::test]
async fn validity_outside_2_to_10_never_reaches_okta() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Validity", 1);
    for years in [1, 11] {
        let err = client.generate_key(&seeded.id, years).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::Terminal, "{err}");
    }
    assert!(calls_to(&sim, "POST", "/generate").is_empty());
    for years in [2, 10] {
        client.generate_key(&seeded.id, years).await.unwrap();
    }
}

#[tokio::test]
async fn clone_copies_a_key_and_a_second_clone_is_refused() {
    let (sim, client) = start().await;
    let source = seed(&sim, "Source", 1);
    let target = seed(&sim, "Target", 1);
    let kid = &source.kids[0];
    let Cloned::Created(cloned) = client.clone_key(&source.id, kid, &target.id).await.unwrap() else {
        panic!("the first clone creates the key");
    };
    assert_eq!(&cloned.kid, kid);
    let target_keys = client.list_keys(&target.id).await.unwrap();
    assert!(target_keys.iter().any(|k| &k.kid == kid));
    let source_key = client.get_key(&source.id, kid).await.unwrap();
    assert_eq!(cloned.x5c, source_key.x5c, "a clone keeps the certificate");

    // Okta answers a second clone with 400 "Key already exists": done, not an error.
    let again = client.clone_key(&source.id, kid, &target.id).await.unwrap();
    assert!(matches!(again, Cloned::AlreadyThere), "{again:?}");
    assert_eq!(calls_to(&sim, "POST", "/clone").len(), 2);
    assert_eq!(client.list_keys(&target.id).await.unwrap().len(), target_keys.len(), "no second key");

    // Any other refusal stays an error: a key the source does not have, a missing target.
    let err = client.clone_key(&source.id, "nokey", &target.id).await.unwrap_err();
    assert!(matches!(err, OktaError::NotFound { .. }), "{err}");
    let err = client.clone_key(&source.id, kid, "0oamissing").await.unwrap_err();
    assert!(matches!(err, OktaError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn saml_metadata_carries_the_certificate_of_the_kid() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Metadata", 2);
    for kid in &seeded.kids {
        let key = client.get_key(&seeded.id, kid).await.unwrap();
        let xml = client.saml_metadata(&seeded.id, kid).await.unwrap();
        assert!(xml.contains("EntityDescriptor"), "{xml}");
        let compact: String = xml.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(compact.contains(&key.x5c[0]));
    }
    let metadata_call = &calls_to(&sim, "GET", "/sso/saml/metadata")[0];
    assert_eq!(metadata_call.query.as_deref(), Some(format!("kid={}", seeded.kids[0]).as_str()));
}

#[tokio::test]
async fn list_apps_follows_next_links_to_the_end() {
    let (sim, client) = start().await;
    let mut ids: Vec<String> = (0..5).map(|i| seed(&sim, &format!("App {i}"), 1).id).collect();
    seed(&sim, "Other", 1);
    let apps =
        client.list_apps(&AppQuery { q: Some("App".into()), limit: Some(2), ..AppQuery::default() }).await.unwrap();
    let mut listed: Vec<String> = apps.into_iter().map(|a| a.id).collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    let pages = calls_to(&sim, "GET", "/api/v1/apps");
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[1].query.as_deref().unwrap().contains("after="));

    let everything = client.list_apps(&AppQuery::default()).await.unwrap();
    assert_eq!(everything.len(), 6);
}

#[tokio::test]
async fn verify_credentials_accepts_a_good_token_and_rejects_a_bad_one() {
    let (sim, client) = start().await;
    client.verify_credentials().await.unwrap();
    let mut bad = config(&sim.base_url());
    bad.auth = Auth::ApiToken("wrong".to_string().into());
    let err = OktaClient::new(bad).unwrap().verify_credentials().await.unwrap_err();
    assert!(matches!(err, OktaError::Unauthorized { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(err.error_code(), Some("E0000011"));
    // An API token cannot be refreshed: exactly one attempt.
    assert_eq!(calls_to(&sim, "GET", "/api/v1/apps").len(), 2);
}

#[tokio::test]
async fn a_missing_app_is_not_found() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Gone", 1);
    sim.remove_app(&seeded.id);
    let err = client.get_app(&seeded.id).await.unwrap_err();
    assert!(matches!(err, OktaError::NotFound { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert!(err.error_id().is_some());
    assert_eq!(sim.calls().len(), 1);
}

// ----- faults -----

fn fault(method: &str, path: &str, count: u32, kind: FaultKind) -> Fault {
    Fault { method: Some(method.parse().unwrap()), path_prefix: path.to_string(), count, kind }
}

fn server_error(status: u16) -> FaultKind {
    FaultKind::Status { status, error_code: "E0000009".into(), summary: "Internal Server Error".into() }
}

#[tokio::test]
async fn reads_are_retried_through_server_errors() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Flaky", 1);
    let path = format!("/api/v1/apps/{}", seeded.id);
    sim.inject_fault(fault("GET", &path, 2, server_error(503)));
    let app = client.get_app(&seeded.id).await.unwrap();
    assert_eq!(app.id, seeded.id);
    let statuses: Vec<u16> = calls_to(&sim, "GET", &path).iter().map(|c| c.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
}

#[tokio::test]
async fn persistent_server_errors_end_in_a_retryable_error() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Down", 1);
    let path = format!("/api/v1/apps/{}/credentials/keys", seeded.id);
    sim.inject_fault(fault("GET", &path, 10, server_error(500)));
    let err = client.list_keys(&seeded.id).await.unwrap_err();
    assert!(matches!(err, OktaError::Server { status: 500, .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Retryable);
    assert_eq!(err.error_code(), Some("E0000009"));
    assert_eq!(calls_to(&sim, "GET", &path).len(), 3, "bounded attempts");
}

/// Generate is not idempotent: after any failure that may have reached Okta, the client must
/// return the error instead of generating again (which would leave an orphan key).
#[tokio::test]
async fn generate_is_never_blindly_retried() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Orphans", 1);
    let path = format!("/api/v1/apps/{}/credentials/keys/generate", seeded.id);
    let kinds = [
        server_error(500),
        FaultKind::TruncatedBody,
        FaultKind::NonJsonBody,
        FaultKind::ConnectionReset,
        FaultKind::Latency(Duration::from_secs(3)),
    ];
    let mut completed = 0;
    for kind in kinds {
        sim.inject_fault(fault("POST", &path, 1, kind.clone()));
        // The fault spoils one call only: a retry would have succeeded.
        let err = client.generate_key(&seeded.id, 2).await.unwrap_err();
        assert!(err.is_retryable(), "{kind:?}: {err}");
        // The simulator logs a call when it finishes it; the delayed one never finishes,
        // because the client hung up first.
        if !matches!(kind, FaultKind::Latency(_)) {
            completed += 1;
        }
        assert_eq!(calls_to(&sim, "POST", &path).len(), completed, "{kind:?} was retried");
    }
    // The faults that spoil an answer after Okta acted did create keys; the caller finds them
    // by listing.
    let seeded_and_spoiled = 1 + 3;
    assert_eq!(sim.keys(&seeded.id).len(), seeded_and_spoiled);
}

#[tokio::test]
async fn a_429_on_generate_is_retried_because_okta_did_not_act() {
    let (sim, client) = start().await;
    // A short window, so that the reset the 429 announces is worth waiting for.
    let short = okta_sim::BucketLimit { limit: 100, window: Duration::from_secs(2) };
    sim.set_rate_limits(okta_sim::RateLimits { apps_collection: short, app_instance: short, token: short });
    let seeded = seed(&sim, "Limited", 1);
    let path = format!("/api/v1/apps/{}/credentials/keys/generate", seeded.id);
    sim.inject_fault(fault(
        "POST",
        &path,
        1,
        FaultKind::Status {
            status: 429,
            error_code: "E0000047".into(),
            summary: "API call exceeded rate limit due to too many requests.".into(),
        },
    ));
    client.generate_key(&seeded.id, 2).await.unwrap();
    let statuses: Vec<u16> = calls_to(&sim, "POST", &path).iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 201]);
    assert_eq!(sim.keys(&seeded.id).len(), 2);
}

#[tokio::test]
async fn timeouts_are_retried_for_reads_and_reported_when_persistent() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Slow", 1);
    let path = format!("/api/v1/apps/{}", seeded.id);
    sim.inject_fault(fault("GET", &path, 1, FaultKind::Latency(Duration::from_secs(3))));
    client.get_app(&seeded.id).await.unwrap();

    sim.inject_fault(fault("GET", &path, 5, FaultKind::Latency(Duration::from_secs(3))));
    let err = client.get_app(&seeded.id).await.unwrap_err();
    assert!(matches!(err, OktaError::Timeout { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Retryable);
}

#[tokio::test]
async fn truncated_and_non_json_bodies_give_clear_errors() {
    let (sim, client) = start().await;
    for kind in [FaultKind::TruncatedBody, FaultKind::NonJsonBody] {
        let seeded = seed(&sim, "Broken", 1);
        let keys = format!("/api/v1/apps/{}/credentials/keys", seeded.id);
        sim.inject_fault(fault("GET", &keys, 10, kind.clone()));
        let err = client.list_keys(&seeded.id).await.unwrap_err();
        assert!(matches!(err, OktaError::UndecodableBody { status: 200, .. }), "{kind:?}: {err}");
        assert!(err.to_string().contains("undecodable"), "{err}");
        sim.reset();
        sim.add_api_token(TOKEN);
    }
    // A single spoiled answer to a read is simply read again.
    let seeded = seed(&sim, "Broken once", 1);
    let app = format!("/api/v1/apps/{}", seeded.id);
    sim.inject_fault(fault("GET", &app, 1, FaultKind::TruncatedBody));
    client.get_app(&seeded.id).await.unwrap();
}

#[tokio::test]
async fn connection_resets_are_retried_for_reads() {
    let (sim, client) = start().await;
    let seeded = seed(&sim, "Reset", 1);
    let path = format!("/api/v1/apps/{}", seeded.id);
    sim.inject_fault(fault("GET", &path, 1, FaultKind::ConnectionReset));
    client.get_app(&seeded.id).await.unwrap();
    sim.inject_fault(fault("GET", &path, 10, FaultKind::ConnectionReset));
    let err = client.get_app(&seeded.id).await.unwrap_err();
    assert!(matches!(err, OktaError::Transport { .. }), "{err}");
}

// ----- the seed page -----

/// The response body of `seed/generate-app-key-credential.md`, as the page prints it: long
/// values are wrapped for display, which JSON itself does not allow inside strings.
const SEED_PAGE_JSON: &str = r#"{
  "created": "2016-09-30T20:36:15.000Z",
  "lastUpdated": "2016-09-30T20:36:15.000Z",
  "expiresAt": "2018-09-30T20:36:14.000Z",
  "x5c": [
    "MIIDojCCAoqgAwIBAgIGAVd8z8kEMA0GCSqGSIb3DQEBBQUAMIGRMQswCQYDVQQGEwJVUz
     ETMBEGA1UECAwKQ2FsaWZvcm5pYTEWMBQGA1UEBwwNU2FuIEZyYW5jaXNjbzENMAsGA1UE
     CgwET2t0YTEUMBIGA1UECwwLU1NPUHJvdmlkZXIxEjAQBgNVBAMMCW15c3RpY29ycDEcMB
     oGCSqGSIb3DQEJARYNaW5mb0Bva3RhLmNvbTAeFw0xNjA5MzAyMDM1MTRaFw0xODA5MzAy
     MDM2MTRaMIGRMQswCQYDVQQGEwJVUzETMBEGA1UECAwKQ2FsaWZvcm5pYTEWMBQGA1UEBw
     wNU2FuIEZyYW5jaXNjbzENMAsGA1UECgwET2t0YTEUMBIGA1UECwwLU1NPUHJvdmlkZXIx
     EjAQBgNVBAMMCW15c3RpY29ycDEcMBoGCSqGSIb3DQEJARYNaW5mb0Bva3RhLmNvbTCCAS
     IwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAIJsMX3q/IMqFTPfhGJHILgRGHrrvYnZ
     zL2snGvC4CssqBC1Az6PIAE+RtO1vT+6v1sRevHMICbi/ut4xB29C3fo33Y3syerVHEJD9
     sZ4Ht0/NjTSHrznjTjE2Ij2/1JuZY/XF+Kp8/bR+rP3Fa3mlcKJZqnwcdII3F6bbW8HPyz
     s8D8ytJJU1yc9xcm0rp+xqswWvRS9TMTRiV61OhE8ilMj+vjScIDQwOqD1LX0uiiQnjRIL
     rkK2NSUbFc9PC3oVELrWqZdloDCQd+xTI0TlxV6/i50K56o0YGWIne1IYdfazuK0tXTE8k
     wsvXEZ0tDRq/jVhBpoAtfQ8hKLxVEFKCAwEAATANBgkqhkiG9w0BAQUFAAOCAQEAfcgMeP
     D2nCGUImDmK7GcKIAH6fJCVfcpyHNZLYChB38yJgJ3F30mFZ0W/PM9pIW8ktLKh1lBp59p
     RwC4ITbpMMoWwK2EU/edocmi8qeVpG3ldXs5IeEMIoKt2c7Ndh8dTsj+fPdXDpF0iKPXtA
     3wgPvWxgioW6xCvePo98isevN7WGEEdEVzjdNdR7e4nPvJfKeGncvifV2rw0WOUIZQa524
     AQdfoY2fEKn9eFwPxFsKx1WV5nc6+WU5gcSkhmbzF+HohLCjVFMWwsUQNYpPBtzY9gM45G
     /bIs7EizkKT1ew0SRDI+Ws9roUKsquCWJWiAGxVEqheQvf4dauAOtqGQ=="
  ],
  "e": "AQAB",
  "n": "gmwxfer8gyoVM9-EYkcguBEYeuu9idnMvayca8LgKyyoELUDPo8gAT5G07W9P7q_WxF6
        8cwgJuL-63jEHb0Ld-jfdjezJ6tUcQkP2xnge3T82NNIevOeNOMTYiPb_Um5lj9cX4qn
        z9tH6s_cVreaVwolmqfBx0gjcXpttbwc_LOzwPzK0klTXJz3FybSun7GqzBa9FL1MxNG
        JXrU6ETyKUyP6-NJwgNDA6oPUtfS6KJCeNEguuQrY1JRsVz08LehUQutapl2WgMJB37F
        MjROXFXr-LnQrnqjRgZYid7Uhh19rO4rS1dMTyTCy9cRnS0NGr-NWEGmgC19DyEovFUFhQ",
  "kid": "w__Yr9AElCftDtLP5CmjzZFMKXndqHtx7B3QPkg9jrI",
  "kty": "RSA",
  "use": "sig",
  "x5t#S256": "ypBvmMYkQGPqxKL4SMdH9B7IXrtGADrvgEc-GKGQ7XY"
}"#;

/// Joins the display-wrapped lines inside JSON strings.
fn unwrap_display_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            in_string = !in_string;
        }
        if in_string && c == '\n' {
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[test]
fn the_seed_pages_key_deserializes() {
    let key: KeyCredential = serde_json::from_str(&unwrap_display_lines(SEED_PAGE_JSON)).unwrap();
    assert_eq!(key.kid, "w__Yr9AElCftDtLP5CmjzZFMKXndqHtx7B3QPkg9jrI");
    assert_eq!(key.kty.as_deref(), Some("RSA"));
    assert_eq!(key.use_.as_deref(), Some("sig"));
    assert_eq!(key.e.as_deref(), Some("AQAB"));
    assert_eq!(key.x5t_s256.as_deref(), Some("ypBvmMYkQGPqxKL4SMdH9B7IXrtGADrvgEc-GKGQ7XY"));
    assert_eq!(key.expires_at, Some("2018-09-30T20:36:14Z".parse::<Timestamp>().unwrap()));
    // The page's thumbprint is illustrative and does not match its certificate: the check
    // catches exactly that kind of inconsistency.
    let err = key.certificate().unwrap_err();
    assert!(matches!(err, OktaError::Certificate { .. }), "{err}");
    // Without the thumbprint the certificate itself reads fine, and its notAfter agrees with
    // the key's expiresAt.
    let mut jwk = key.jwk().clone();
    jwk.as_object_mut().unwrap().remove("x5t#S256");
    let unchecked: KeyCredential = serde_json::from_value(jwk).unwrap();
    let cert = unchecked.certificate().unwrap();
    assert_eq!(Some(cert.not_after), key.expires_at);
    assert_eq!(cert.not_before, "2016-09-30T20:35:14Z".parse().unwrap());
}

// ----- redirects -----

/// A server that counts requests and answers with `answer` for any path.
async fn counting_server(
    answer: impl Fn(&str) -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let own_base = base.clone();
    let router = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let answer = answer.clone();
        let own_base = own_base.clone();
        async move { answer(&own_base) }
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, hits)
}

#[tokio::test]
async fn credentials_never_follow_a_redirect_or_a_link_to_another_host() {
    use axum::response::IntoResponse;
    use std::sync::atomic::Ordering;

    let (elsewhere, elsewhere_hits) = counting_server(|_| axum::Json(serde_json::json!([])).into_response()).await;
    let target = elsewhere.clone();
    let (redirecting, _) = counting_server(move |_| {
        (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, format!("{target}/api/v1/apps/0oa1"))])
            .into_response()
    })
    .await;
    let client = OktaClient::new(config(&redirecting)).unwrap();
    let err = client.get_app("0oa1").await.unwrap_err();
    assert!(matches!(err, OktaError::Redirect { status: 302, .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Terminal);

    let target = elsewhere.clone();
    let (paging, _) = counting_server(move |_| {
        (
            [(axum::http::header::LINK, format!("<{target}/api/v1/apps?after=x>; rel=\"next\""))],
            axum::Json(serde_json::json!([])),
        )
            .into_response()
    })
    .await;
    let client = OktaClient::new(config(&paging)).unwrap();
    let err = client.list_apps(&AppQuery::default()).await.unwrap_err();
    assert!(err.to_string().contains("another host"), "{err}");

    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);
}

// ----- hostile servers: bodies are capped, one deadline covers the whole exchange -----

use okta_support::hostile;
use std::time::Instant;

const JSON_CHUNKED: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

/// One chunk of chunked transfer encoding holding `size` bytes of `[`.
fn http_chunk(size: usize) -> Vec<u8> {
    let mut chunk = format!("{size:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'[', size));
    chunk.extend_from_slice(b"\r\n");
    chunk
}

fn hostile_client(base: &str, timeout: Duration) -> OktaClient {
    OktaClient::new(okta_support::org_config(base, Auth::ApiToken(TOKEN.to_string().into()), timeout)).unwrap()
}

/// A body that never ends, sent as fast as loopback goes (chunked, or with a Content-Length of
/// 10 GiB): the client stops reading at its cap and says so, long before the deadline.
#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap() {
    // The server stops at 64 MiB and then idles: enough to be "endless" for a 4 MiB cap, and a
    // bound on what a client without a cap would buffer before its deadline.
    const SENT: usize = 64 << 20;
    let chunked = hostile::raw_server(|stream| async move {
        hostile::stream_body(stream, JSON_CHUNKED, &http_chunk(64 << 10), Duration::ZERO, SENT).await
    })
    .await;
    let announced = hostile::raw_server(|stream| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10737418240\r\n\r\n";
        hostile::stream_body(stream, head, &[b'['; 64 << 10], Duration::ZERO, SENT).await
    })
    .await;
    for base in [chunked, announced] {
        let client = hostile_client(&base, Duration::from_secs(4));
        let started = Instant::now();
        let err = client.get_app("0oa1").await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(matches!(err, OktaError::UndecodableBody { status: 200, .. }), "{err}");
        assert!(err.to_string().contains("4 MiB"), "the error names the cap: {err}");
        assert!(elapsed < Duration::from_secs(4), "cut only after {elapsed:?}");
    }
}

/// A body trickled one byte at a time, or a head whose headers trickle forever: each attempt
/// ends at the one deadline of the exchange.
#[tokio::test]
async fn a_trickle_meets_the_one_deadline() {
    let body = hostile::raw_server(|stream| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
        hostile::stream_body(stream, head, b"[", Duration::from_millis(50), usize::MAX).await
    })
    .await;
    let headers = hostile::raw_server(|stream| async move {
        hostile::stream_body(stream, "HTTP/1.1 200 OK\r\n", b"X-Slow: y\r\n", Duration::from_millis(50), usize::MAX)
            .await
    })
    .await;
    for base in [body, headers] {
        let client = hostile_client(&base, Duration::from_millis(800));
        let started = Instant::now();
        let err = client.get_app("0oa1").await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(matches!(err, OktaError::Timeout { .. }), "{err}");
        // Three attempts of 800 ms each, plus short backoffs.
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    }
}

/// Headers that never end, sent fast: refused as soon as the head is too large.
#[tokio::test]
async fn endless_headers_are_refused_quickly() {
    let base = hostile::raw_server(|stream| async move {
        let line = format!("X-Filler: {}\r\n", "a".repeat(1000));
        hostile::stream_body(stream, "HTTP/1.1 200 OK\r\n", line.as_bytes(), Duration::ZERO, 64 << 20).await
    })
    .await;
    let client = hostile_client(&base, Duration::from_secs(5));
    let started = Instant::now();
    let err = client.get_app("0oa1").await.unwrap_err();
    assert!(matches!(err, OktaError::Transport { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}
