//! One key for several apps (`spec.additionalAppIds`) end to end: a real `samlcred controller`, a
//! real API server and the Okta simulator. The new key is generated once on the primary app,
//! cloned once to each additional app, published with one metadata document per app, and
//! activated on every app; a crash between clone and activation resumes without a second key.

mod support;

use jiff::SignedDuration;
use okta_sim::SeededApp;
use serde_json::json;
use std::time::Duration;
use support::{World, events, secret_certificates, secret_text, wait_for};

const LONG: Duration = Duration::from_secs(90);

/// The primary app (due for rotation) and two additional apps with keys of their own.
fn seed(world: &World) -> (SeededApp, SeededApp, SeededApp) {
    let primary = world.seed_app(SignedDuration::from_hours(24 * 10));
    let b = world.seed_app(SignedDuration::from_hours(24 * 700));
    let c = world.seed_app(SignedDuration::from_hours(24 * 700));
    (primary, b, c)
}

async fn create(world: &World, name: &str, primary: &SeededApp, others: &[&SeededApp]) {
    let others: Vec<&str> = others.iter().map(|app| app.id.as_str()).collect();
    let spec = json!({
        "renewBefore": "720h", "activation": {"delay": "2s"}, "retainPrevious": "3s",
        "additionalAppIds": others,
    });
    world.create_credential(name, &primary.id, spec).await;
}

/// Waits until the rotation is over and the old key has left the Secret; the new kid.
async fn wait_rotated(world: &World, name: &str, old: &str) -> String {
    wait_for("the shared rotation to complete", LONG, || async {
        let status = world.credential(name).await.status?;
        let active = status.active_key?.kid;
        let done = active != old && status.rotation.is_none() && status.previous_keys.is_empty();
        done.then_some(active)
    })
    .await
}

/// Successful clones of `kid` from `source`, by target app.
fn clones(world: &World, source: &str, kid: &str, status: u16) -> Vec<String> {
    let path = format!("/api/v1/apps/{source}/credentials/keys/{kid}/clone");
    let mut targets: Vec<String> = world
        .sim
        .calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.path == path && c.status == status)
        .map(|c| c.query.unwrap_or_default().trim_start_matches("targetAid=").to_string())
        .collect();
    targets.sort();
    targets
}

fn puts(world: &World, app: &str) -> usize {
    let path = format!("/api/v1/apps/{app}");
    world.sim.calls().iter().filter(|c| c.method == "PUT" && c.path == path && c.status == 200).count()
}

fn entity_id(document: &str) -> &str {
    let start = document.find("entityID=\"").expect("an entityID") + "entityID=\"".len();
    &document[start..start + document[start..].find('"').unwrap()]
}

/// Every app signs with `kid`, holds it once with the primary's certificate, and the Secret
/// publishes one metadata document per app with the bundle's certificates.
async fn assert_shared(world: &World, name: &str, kid: &str, primary: &SeededApp, others: &[&SeededApp]) {
    let x5c = |app: &str| {
        let keys = world.sim.keys(app);
        let held: Vec<_> = keys.iter().filter(|k| k["kid"] == kid).collect();
        assert_eq!(held.len(), 1, "app {app} holds key {kid} once: {keys:?}");
        held[0]["x5c"].clone()
    };
    let secret = world.secrets().get(&format!("{name}-idp")).await.unwrap();
    let bundle = secret_certificates(&secret);
    let primary_metadata = secret_text(&secret, "metadata.xml").unwrap();
    for app in others {
        assert_eq!(world.sim.active_kid(&app.id).as_deref(), Some(kid), "app {} signs with the shared key", app.id);
        assert_eq!(x5c(&app.id), x5c(&primary.id), "the clone on {} is the same certificate", app.id);
        let document = secret_text(&secret, &format!("metadata-{}.xml", app.id))
            .unwrap_or_else(|| panic!("the Secret has no metadata for app {}", app.id));
        assert_ne!(entity_id(&document), entity_id(&primary_metadata), "app {}'s own entityID", app.id);
        let signing = samlcred::metadata::signing_certificates(&document).unwrap();
        assert_eq!(signing, bundle, "metadata of {} trusts the keys of bundle.pem", app.id);
    }
    assert_eq!(world.sim.active_kid(&primary.id).as_deref(), Some(kid));
    let status = world.credential(name).await.status.unwrap();
    let recorded: Vec<(String, String)> = status.additional_apps.into_iter().map(|a| (a.app_id, a.kid)).collect();
    let mut wanted: Vec<(String, String)> = others.iter().map(|a| (a.id.clone(), kid.to_string())).collect();
    wanted.sort();
    assert_eq!(recorded, wanted);
}

#[tokio::test]
async fn two_additional_apps_end_on_the_one_new_key_each_cloned_once() {
    let world = World::new("e2e-shared").await;
    let (primary, b, c) = seed(&world);
    create(&world, "multi", &primary, &[&b, &c]).await;
    let _controller = world.start_controller(&[]);
    let kid = wait_rotated(&world, "multi", &primary.kids[0]).await;

    assert_eq!(world.generate_calls(&primary.id), 1, "one key generated, on the primary app");
    assert_eq!(world.generate_calls(&b.id) + world.generate_calls(&c.id), 0, "none on the others");
    let mut targets = vec![b.id.clone(), c.id.clone()];
    targets.sort();
    assert_eq!(clones(&world, &primary.id, &kid, 201), targets, "one clone per additional app");
    assert!(clones(&world, &primary.id, &kid, 400).is_empty(), "no clone repeated");
    assert_eq!((puts(&world, &b.id), puts(&world, &c.id), puts(&world, &primary.id)), (1, 1, 1));
    // Activation comes after every clone: the first PUT follows the last clone.
    let calls = world.sim.calls();
    let last_clone = calls.iter().rposition(|c| c.path.ends_with("/clone")).unwrap();
    let first_put = calls.iter().position(|c| c.method == "PUT").unwrap();
    assert!(first_put > last_clone, "an app was activated before every clone existed");
    assert_shared(&world, "multi", &kid, &primary, &[&b, &c]).await;
    let cloned = events(&world, "multi").await.into_iter().filter(|e| e.1 == "KeyCloned").count();
    assert_eq!(cloned, 1, "one KeyCloned event");

    // samlcred status shows the additional apps and the kid each signs with.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_samlcred"))
        .args(["status", "-n", &world.ns.name, "-o", "json"])
        .env("KUBECONFIG", testenv::shared().kubeconfig())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let apps = &rows[0]["additionalApps"];
    assert_eq!(apps.as_array().map(Vec::len), Some(2), "{rows}");
    assert!(apps.as_array().unwrap().iter().all(|a| a["kid"] == kid.as_str()), "{rows}");
}

/// Stops the operator at `failpoint`, restarts it, and checks that the rotation ends with every
/// app on the new key, one generated key and no second copy of it on any app.
async fn crash_and_resume(prefix: &str, failpoint: &str) -> (World, SeededApp, SeededApp, SeededApp, String) {
    let world = World::new(prefix).await;
    let (primary, b, c) = seed(&world);
    create(&world, "crashy", &primary, &[&b, &c]).await;
    let mut first = world.start_controller(&[("SAMLCRED_FAILPOINT", failpoint)]);
    let code = first.wait_exit(LONG).await;
    assert_eq!(code, Some(86), "the controller should stop at {failpoint}: {}", first.log_text());
    let _second = world.start_controller(&[]);
    let kid = wait_rotated(&world, "crashy", &primary.kids[0]).await;
    assert_eq!(world.generate_calls(&primary.id), 1, "one key generated across the crash at {failpoint}");
    assert_shared(&world, "crashy", &kid, &primary, &[&b, &c]).await;
    (world, primary, b, c, kid)
}

#[tokio::test]
async fn a_crash_between_clone_and_activation_resumes_without_a_second_key() {
    let (world, primary, b, c, kid) = crash_and_resume("e2e-shared-clone", "after-clone").await;
    let mut targets = vec![b.id.clone(), c.id.clone()];
    targets.sort();
    assert_eq!(clones(&world, &primary.id, &kid, 201), targets, "each app got the key once");
    // The clone step ran again after the crash; Okta refused each copy as a duplicate (400).
    assert_eq!(clones(&world, &primary.id, &kid, 400), targets);
}

#[tokio::test]
async fn a_crash_between_the_activations_finishes_the_others_without_a_second_put() {
    let (world, primary, b, c, _) = crash_and_resume("e2e-shared-act", "after-activate-additional").await;
    // The first additional app was switched before the crash and is not PUT again.
    assert_eq!((puts(&world, &b.id), puts(&world, &c.id), puts(&world, &primary.id)), (1, 1, 1));
}
