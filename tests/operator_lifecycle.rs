//! The rotation lifecycle end to end: a real `samlcred controller` process, a real API server and the
//! Okta simulator. Automatic and Manual activation, adoption without generation, the invariant that the
//! certificate Okta signs with is always in the Secret, and recovery from a crash at every step.

mod support;

use jiff::SignedDuration;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::{World, condition, events, secret_certificates, secret_kids, secret_text, wait_for};

const LONG: Duration = Duration::from_secs(90);

/// A spec that rotates at once (the seeded key expires within renewBefore) and moves quickly.
fn fast_rotation(policy: &str) -> serde_json::Value {
    json!({"renewBefore": "720h", "activation": {"policy": policy, "delay": "2s"}, "retainPrevious": "3s"})
}

/// Waits until the credential finished a rotation and its Secret publishes only the new key.
async fn wait_rotated(world: &World, name: &str) -> samlcred::api::SamlAppCredential {
    let secret_name = format!("{name}-idp");
    wait_for("the rotation to complete and the old key to leave the Secret", LONG, || async {
        let sac = world.credential(name).await;
        let status = sac.status.as_ref()?;
        let active = status.active_key.as_ref()?.kid.clone();
        let done = status.last_rotation_time.is_some() && status.previous_keys.is_empty() && status.rotation.is_none();
        let secret = world.secrets().get_opt(&secret_name).await.unwrap()?;
        (done && secret_kids(&secret) == vec![active]).then_some(sac)
    })
    .await
}

#[tokio::test]
async fn automatic_rotation_keeps_the_signing_certificate_in_the_secret() {
    let world = World::new("e2e-auto").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    let old_kid = app.kids[0].clone();
    world.create_credential("grafana", &app.id, fast_rotation("Automatic")).await;
    let _controller = world.start_controller(&[]);

    // The invariant, sampled continuously: once the Secret exists, the key Okta signs with is in it.
    let stop = Arc::new(AtomicBool::new(false));
    let (samples, violations) = (Arc::new(AtomicUsize::new(0)), Arc::new(std::sync::Mutex::new(Vec::new())));
    let sampler = {
        let (stop, samples, violations) = (stop.clone(), samples.clone(), violations.clone());
        let secrets = world.secrets();
        let sim_state = world.sim.base_url();
        let app_id = app.id.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                // Okta first, then the Secret: a key Okta signs with is never removed from the Secret.
                let url = format!("{sim_state}/__sim/apps/{app_id}/active-kid");
                let okta_kid = http.get(&url).send().await.unwrap().json::<serde_json::Value>().await.unwrap()["kid"]
                    .as_str()
                    .unwrap()
                    .to_string();
                if let Some(secret) = secrets.get_opt("grafana-idp").await.unwrap() {
                    samples.fetch_add(1, Ordering::SeqCst);
                    let kids = secret_kids(&secret);
                    if !kids.contains(&okta_kid) {
                        violations.lock().unwrap().push(format!("Okta signs with {okta_kid}, Secret has {kids:?}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let sac = wait_rotated(&world, "grafana").await;
    stop.store(true, Ordering::SeqCst);
    sampler.await.unwrap();

    let status = sac.status.as_ref().unwrap();
    let new_kid = status.active_key.as_ref().unwrap().kid.clone();
    assert_ne!(new_kid, old_kid);
    assert_eq!(world.sim.active_kid(&app.id).as_deref(), Some(new_kid.as_str()), "Okta signs with the new key");
    assert_eq!(world.generate_calls(&app.id), 1, "exactly one key generated");
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "invariant violated: {violations:?}");
    assert!(samples.load(Ordering::SeqCst) > 10, "too few samples to mean anything");

    let secret = world.secrets().get("grafana-idp").await.unwrap();
    assert_eq!(secret_text(&secret, "kid").as_deref(), Some(new_kid.as_str()));
    assert_eq!(secret_kids(&secret), vec![new_kid.clone()], "the retired key left the bundle");
    assert_eq!(secret_text(&secret, "bundle.pem").unwrap().matches("BEGIN CERTIFICATE").count(), 1);
    let metadata = secret_text(&secret, "metadata.xml").unwrap();
    assert_eq!(samlcred::metadata::signing_certificates(&metadata).unwrap(), secret_certificates(&secret));
    let ready = condition(&sac, "Ready").unwrap();
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("True", "UpToDate"), "{ready:?}");

    let reasons: Vec<String> = events(&world, "grafana").await.into_iter().map(|e| e.1).collect();
    for reason in ["KeyAdopted", "KeyGenerated", "KeyPublished", "KeyActivated", "KeyRetired"] {
        assert!(reasons.iter().any(|r| r == reason), "no {reason} event in {reasons:?}");
    }
}

#[tokio::test]
async fn manual_activation_waits_for_the_annotation() {
    let world = World::new("e2e-manual").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    world.create_credential("sso", &app.id, fast_rotation("Manual")).await;
    let _controller = world.start_controller(&[]);

    let pending = wait_for("the new key to be published and await approval", LONG, || async {
        let sac = world.credential("sso").await;
        let rotating = condition(&sac, "Rotating")?;
        (rotating.1 == "AwaitingApproval").then(|| sac.status.unwrap().pending_key.unwrap().kid)
    })
    .await;
    // Published long past the 2s delay, and still not activated: Manual waits.
    let secret = world.secrets().get("sso-idp").await.unwrap();
    assert!(secret_kids(&secret).contains(&pending), "the pending key is published before activation");
    // metadata.xml names the pending certificate too, after the active one, as bundle.pem does.
    let metadata = secret_text(&secret, "metadata.xml").unwrap();
    let signing = samlcred::metadata::signing_certificates(&metadata).unwrap();
    assert_eq!((signing.len(), signing), (2, secret_certificates(&secret)), "metadata.xml: {metadata}");
    assert_eq!(world.sim.active_kid(&app.id).as_deref(), Some(app.kids[0].as_str()));
    assert!(world.sim.calls().iter().all(|c| c.method != "PUT"), "no activation without approval");

    world.annotate("sso", "samlcred.io/activate", &pending).await;
    wait_for("the approved key to be activated", LONG, || async {
        (world.sim.active_kid(&app.id).as_deref() == Some(pending.as_str())).then_some(())
    })
    .await;
    let sac = wait_rotated(&world, "sso").await;
    assert_eq!(sac.status.unwrap().active_key.unwrap().kid, pending);
    assert_eq!(world.generate_calls(&app.id), 1);
}

#[tokio::test]
async fn a_key_far_from_expiry_is_adopted_without_generating() {
    let world = World::new("e2e-adopt").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("calm", &app.id, json!({})).await;
    let _controller = world.start_controller(&[]);

    let sac = wait_for("Ready", LONG, || async {
        let sac = world.credential("calm").await;
        (condition(&sac, "Ready")?.0 == "True").then_some(sac)
    })
    .await;
    let status = sac.status.unwrap();
    assert_eq!(status.active_key.unwrap().kid, app.kids[0]);
    assert!(status.rotation.is_none() && status.pending_key.is_none());
    let renewal = status.renewal_time.unwrap().0;
    let expected = jiff::Timestamp::now() + SignedDuration::from_hours(24 * 365 - 720);
    assert!(renewal.duration_since(expected).abs() < SignedDuration::from_mins(5), "renewalTime {renewal}");
    assert_eq!(world.generate_calls(&app.id), 0, "no key generated while the active one is far from expiry");
    assert_eq!(world.okta_writes(), 0, "nothing written to Okta");
    let secret = world.secrets().get("calm-idp").await.unwrap();
    assert_eq!(secret_text(&secret, "kid").as_deref(), Some(app.kids[0].as_str()));
    let labels = secret.metadata.labels.unwrap();
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("samlcred"));
    assert_eq!(labels.get("samlcred.io/credential").map(String::as_str), Some("calm"));
}

/// Stops the operator at `failpoint`, starts a fresh one, and checks the rotation completes with
/// exactly one generated key.
async fn crash_and_recover(prefix: &str, failpoint: &str) {
    let world = World::new(prefix).await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    world.create_credential("crashy", &app.id, fast_rotation("Automatic")).await;
    let mut first = world.start_controller(&[("SAMLCRED_FAILPOINT", failpoint)]);
    let code = first.wait_exit(LONG).await;
    assert_eq!(code, Some(86), "the controller should stop at {failpoint}: {}", first.log_text());
    assert_eq!(world.generate_calls(&app.id), 1);

    let _second = world.start_controller(&[]);
    let sac = wait_rotated(&world, "crashy").await;
    assert_eq!(world.generate_calls(&app.id), 1, "exactly one key generated across the crash at {failpoint}");
    let active = sac.status.unwrap().active_key.unwrap().kid;
    assert_ne!(active, app.kids[0]);
    assert_eq!(world.sim.active_kid(&app.id), Some(active.clone()));
    let secret = world.secrets().get("crashy-idp").await.unwrap();
    assert_eq!(secret_text(&secret, "kid"), Some(active));
}

#[tokio::test]
async fn crash_after_generate_before_status_adopts_the_orphan_key() {
    crash_and_recover("e2e-crash-gen", "after-generate").await;
}

#[tokio::test]
async fn crash_after_publish_completes_the_rotation() {
    crash_and_recover("e2e-crash-pub", "after-publish").await;
}

#[tokio::test]
async fn crash_after_activate_before_status_records_the_activation() {
    crash_and_recover("e2e-crash-act", "after-activate").await;
}
