//! The rotation lifecycle end to end: a real `samlcred controller` process, a real API server and the
//! Okta simulator. Automatic and Manual activation, adoption without generation, the invariant that the
//! certificate Okta signs with is always in the Secret, and recovery from a crash at every step.
//! Throughout, real SAML service providers (pysaml2, `support::sp_probe`) sign in through the
//! simulator and read the Secret as a mounted volume: from the first publish on, those trusting
//! `metadata.xml` or `bundle.pem` must never see a failed sign-in.

mod support;

use jiff::{SignedDuration, Timestamp};
use okta_sim::SeedKey;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::sp_probe::{BUNDLE_PEM, CERTIFICATE_PEM, Figures, METADATA_XML, Probe, metadata_signing_certs};
use support::{World, condition, events, secret_certificates, secret_kids, secret_text, wait_for};

const LONG: Duration = Duration::from_secs(90);

/// Starts signing in to `app_id` through SPs that read Secret `secret`. Started before the controller
/// (its first sign-ins fail: there is no Secret yet), so that it is signing in by the time the Secret
/// is first published; `mark()` then starts the count.
async fn probe(world: &World, app_id: &str, secret: &str) -> Probe {
    Probe::start(&world.sim, app_id, world.secrets(), secret).await
}

/// Stops the probe, prints its figures and checks the contract: from the first publish on, no failed
/// sign-in for an SP that trusts metadata.xml or bundle.pem. (certificate.pem holds only the active
/// certificate, so its SP fails around each activation: counted and printed, not asserted.)
async fn sign_ins_never_failed(world: &World, probe: Probe, what: &str) -> Figures {
    probe.settle().await;
    let figures = probe.stop().await;
    println!("{what}: {figures}");
    let switches: Vec<String> = world
        .sim
        .calls()
        .iter()
        .filter(|c| c.method == "PUT" && c.status == 200)
        .map(|c| format!("+{:.2}s", figures.since_mark(c.at)))
        .collect();
    println!("{what}: Okta switched keys (PUT app) at {switches:?} after the mark");
    println!(
        "{what}: certificate.pem SP: {} of {} sign-ins failed (not asserted)",
        figures.sp(CERTIFICATE_PEM).failures,
        figures.sp(CERTIFICATE_PEM).attempts
    );
    figures.assert_no_failures(&[BUNDLE_PEM, METADATA_XML], what);
    figures
}

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
    let mut sign_ins = probe(&world, &app.id, "grafana-idp").await;
    let _controller = world.start_controller(&[]);
    sign_ins.mark().await;

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
    for reason in ["KeyGenerated", "KeyPublished", "KeyActivated", "KeyRetired"] {
        assert!(reasons.iter().any(|r| r == reason), "no {reason} event in {reasons:?}");
    }
    let figures = sign_ins_never_failed(&world, sign_ins, "automatic rotation").await;
    assert_eq!(figures.signers.len(), 2, "the probe saw sign-ins with the old and the new key: {figures}");
}

#[tokio::test]
async fn manual_activation_waits_for_the_annotation() {
    let world = World::new("e2e-manual").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    world.create_credential("sso", &app.id, fast_rotation("Manual")).await;
    let mut sign_ins = probe(&world, &app.id, "sso-idp").await;
    let _controller = world.start_controller(&[]);
    sign_ins.mark().await;

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

    sign_ins.settle().await; // sign-ins with the old key while the new one is published
    world.annotate("sso", "samlcred.io/activate", &pending).await;
    wait_for("the approved key to be activated", LONG, || async {
        (world.sim.active_kid(&app.id).as_deref() == Some(pending.as_str())).then_some(())
    })
    .await;
    let sac = wait_rotated(&world, "sso").await;
    assert_eq!(sac.status.unwrap().active_key.unwrap().kid, pending);
    assert_eq!(world.generate_calls(&app.id), 1);
    let figures = sign_ins_never_failed(&world, sign_ins, "manual activation").await;
    assert_eq!(figures.signers.len(), 2, "the probe saw sign-ins with the old and the new key: {figures}");
}

#[tokio::test]
async fn metadata_xml_trusts_the_active_and_the_pending_key_while_published() {
    let world = World::new("e2e-md-pending").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    world.create_credential("md", &app.id, fast_rotation("Manual")).await;
    let _controller = world.start_controller(&[]);
    let pending = wait_for("the new key to be published and await approval", LONG, || async {
        let sac = world.credential("md").await;
        (condition(&sac, "Rotating")?.1 == "AwaitingApproval").then(|| sac.status.unwrap().pending_key.unwrap().kid)
    })
    .await;

    let secret = world.secrets().get("md-idp").await.unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&secret_text(&secret, "jwks.json").unwrap()).unwrap();
    let published: Vec<(String, String)> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap().to_string(), k["x5t#S256"].as_str().unwrap().to_string()))
        .collect();
    let kids: Vec<&str> = published.iter().map(|(kid, _)| kid.as_str()).collect();
    assert_eq!(kids, [app.kids[0].as_str(), pending.as_str()], "jwks.json: the active key, then the pending one");

    // What an independent SP (pysaml2) trusts after loading the Secret's metadata.xml.
    let trusted = metadata_signing_certs(&secret_text(&secret, "metadata.xml").unwrap());
    let entity = world.sim.sso(&app.id).entity_id;
    let certs = trusted.get(&entity).unwrap_or_else(|| panic!("metadata.xml does not describe {entity}: {trusted:?}"));
    let expected: Vec<&str> = published.iter().map(|(_, x5t)| x5t.as_str()).collect();
    assert_eq!(certs, &expected, "metadata.xml's signing certificates, as pysaml2 reads them, against jwks.json");
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
    // notAfter - renewBefore, up to 10% of renewBefore (72h) earlier: the credential's renewal spread.
    let expected = jiff::Timestamp::now() + SignedDuration::from_hours(24 * 365 - 720);
    let earlier = expected.duration_since(renewal);
    assert!(
        earlier > -SignedDuration::from_mins(5)
            && earlier < SignedDuration::from_hours(72) + SignedDuration::from_mins(5),
        "renewalTime {renewal}"
    );
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
    let mut sign_ins = probe(&world, &app.id, "crashy-idp").await;
    let mut first = world.start_controller(&[("SAMLCRED_FAILPOINT", failpoint)]);
    sign_ins.mark().await;
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
    let figures = sign_ins_never_failed(&world, sign_ins, &format!("crash at {failpoint}")).await;
    assert_eq!(figures.signers.len(), 2, "the probe saw sign-ins with the old and the new key: {figures}");
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

#[tokio::test]
async fn sign_ins_recover_soon_after_an_external_key_change() {
    let world = World::new("e2e-external").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("ext", &app.id, json!({})).await;
    let mut sign_ins = probe(&world, &app.id, "ext-idp").await;
    let _controller = world.start_controller(&[("SAMLCRED_OKTA_RESYNC_INTERVAL", "1s")]);
    sign_ins.mark().await;
    wait_for("Ready", LONG, || async {
        (condition(&world.credential("ext").await, "Ready")?.0 == "True").then_some(())
    })
    .await;
    sign_ins.settle().await;

    // An admin switches the app to a key nobody published (as in the Admin Console).
    let now = Timestamp::now();
    let key = SeedKey {
        not_before: now - SignedDuration::from_hours(1),
        not_after: now + SignedDuration::from_hours(24 * 700),
    };
    let new_kid = world.sim.add_key(&app.id, key);
    let switched = Instant::now();
    let switched_at = Timestamp::now();
    world.sim.set_active_kid(&app.id, &new_kid);
    wait_for("samlcred to adopt and publish the key switched in Okta", LONG, || async {
        let secret = world.secrets().get("ext-idp").await.ok()?;
        (secret_text(&secret, "kid").as_deref() == Some(new_kid.as_str())).then_some(())
    })
    .await;
    let published_after = switched.elapsed();
    sign_ins.settle().await;
    let attempts = sign_ins.attempts();
    let figures = sign_ins.stop().await;
    println!("external key change: {figures}");

    // Sign-ins with a key nobody published fail until samlcred has adopted and published it: the
    // outage per SP runs from the switch to the first accepted sign-in with the new key (an upper
    // bound: the probe samples a few times a second).
    let new_x5t = world.sim.keys(&app.id).iter().find(|k| k["kid"] == new_kid.as_str()).unwrap()["x5t#S256"]
        .as_str()
        .unwrap()
        .to_string();
    let switched_s = switched_at.as_millisecond() as f64 / 1000.0;
    for sp in [BUNDLE_PEM, METADATA_XML, CERTIFICATE_PEM] {
        let recovered = attempts
            .iter()
            .find(|a| {
                a.started >= switched_s && a.signer.as_deref() == Some(new_x5t.as_str()) && a.failed(sp).is_none()
            })
            .unwrap_or_else(|| panic!("{sp}: no sign-in with the new key was accepted\n{figures}"));
        let outage = Duration::from_secs_f64(recovered.started - switched_s);
        let failed = attempts.iter().filter(|a| a.started >= switched_s && a.failed(sp).is_some()).count();
        println!(
            "external key change: {sp} SP: {failed} failed sign-ins, accepted again {} ms after the switch \
             (samlcred published the key after {} ms)",
            outage.as_millis(),
            published_after.as_millis()
        );
        assert!(outage < Duration::from_secs(30), "{sp}: sign-ins failed for {outage:?}\n{figures}");
        assert!(figures.sp(sp).last_accepted, "{sp}: sign-ins did not stay recovered\n{figures}");
    }
}
