//! Edge cases of the operator end to end: a real `samlcred controller` process, a real API server and
//! the Okta simulator. Idempotent resyncs, drift in Okta, a vanished app, two claimants, suspend, a
//! Secret someone else owns, keys others added, deletion policies, a Secret deleted by hand, restart
//! targets, Okta errors, broken orgs and the rotate annotation.

mod support;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use okta_sim::{Fault, FaultKind, SeedKey};
use samlcred::api::{OktaOrg, SamlAppCredential};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{World, condition, events, secret_certificates, secret_kids, secret_text, wait_for};

const LONG: Duration = Duration::from_secs(90);
/// Okta is read again every second: drift, a vanished app and resync counts show up quickly.
const FAST_RESYNC: (&str, &str) = ("SAMLCRED_OKTA_RESYNC_INTERVAL", "1s");

/// Waits until the credential is Ready=True and its Secret exists; returns both.
async fn wait_ready(world: &World, name: &str) -> (SamlAppCredential, Secret) {
    wait_for(&format!("{name} to be Ready"), LONG, || async {
        let sac = world.credential(name).await;
        if condition(&sac, "Ready")?.0 != "True" {
            return None;
        }
        let secret = world.secrets().get_opt(&sac.spec.secret_name).await.unwrap()?;
        Some((sac, secret))
    })
    .await
}

/// Waits until the Ready condition is False with `reason`; returns the credential.
async fn wait_not_ready(world: &World, name: &str, reason: &str) -> SamlAppCredential {
    wait_for(&format!("{name} to be Ready=False {reason}"), LONG, || async {
        let sac = world.credential(name).await;
        let ready = condition(&sac, "Ready")?;
        (ready.0 == "False" && ready.1 == reason).then_some(sac)
    })
    .await
}

/// GET /api/v1/apps/{id} calls so far: one per reconcile that read the app.
fn app_reads(world: &World, app_id: &str) -> usize {
    let path = format!("/api/v1/apps/{app_id}");
    world.sim.calls().iter().filter(|c| c.method == "GET" && c.path == path).count()
}

/// Waits until the app was read `n` more times than `since`: that many reconciles looked at Okta.
async fn wait_app_reads(world: &World, app_id: &str, since: usize, n: usize) {
    wait_for(&format!("{n} more reads of app {app_id}"), LONG, || async {
        (app_reads(world, app_id) >= since + n).then_some(())
    })
    .await
}

fn rv<K: kube::Resource>(object: &K) -> String {
    object.meta().resource_version.clone().unwrap_or_default()
}

fn active_kid(sac: &SamlAppCredential) -> Option<String> {
    sac.status.as_ref()?.active_key.as_ref().map(|k| k.kid.clone())
}

async fn patch_spec(world: &World, name: &str, spec: Value) {
    let patch = json!({"spec": spec});
    world.credentials().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// Waits until a rotation finished: a new active key, nothing pending or retained, the Secret follows.
async fn wait_rotated_away_from(world: &World, name: &str, old_kid: &str) -> (SamlAppCredential, Secret) {
    wait_for("the rotation to complete", LONG, || async {
        let sac = world.credential(name).await;
        let status = sac.status.as_ref()?;
        let active = status.active_key.as_ref()?.kid.clone();
        let done = active != old_kid
            && status.rotation.is_none()
            && status.pending_key.is_none()
            && status.previous_keys.is_empty();
        let secret = world.secrets().get_opt(&sac.spec.secret_name).await.unwrap()?;
        (done && secret_kids(&secret) == vec![active] && condition(&sac, "Ready")?.0 == "True").then_some((sac, secret))
    })
    .await
}

/// A rotation that completes within seconds once started.
fn quick_activation() -> Value {
    json!({"activation": {"policy": "Automatic", "delay": "1s"}, "retainPrevious": "1s"})
}

#[tokio::test]
async fn resyncs_of_an_unchanged_state_write_nothing() {
    let world = World::new("edge-idem").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("idem", &app.id, json!({})).await;
    let _controller = world.start_controller(&[FAST_RESYNC]);

    let (sac, secret) = wait_ready(&world, "idem").await;
    // The org's own controller writes its Ready condition on its own schedule: compare from there.
    let orgs = Api::<OktaOrg>::namespaced(world.client.clone(), &world.ns.name);
    let org = wait_for("the OktaOrg to report Ready", LONG, || async {
        let org = orgs.get("acme").await.unwrap();
        let ready = org.status.as_ref()?.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(org)
    })
    .await;
    let reads = app_reads(&world, &app.id);
    wait_app_reads(&world, &app.id, reads, 4).await;

    let after = world.credential("idem").await;
    assert_eq!(rv(&after), rv(&sac), "the credential changed on resync: {:?} -> {:?}", sac.status, after.status);
    let secret_after = world.secrets().get("idem-idp").await.unwrap();
    assert_eq!(rv(&secret_after), rv(&secret), "the Secret was rewritten on resync");
    let org_after = orgs.get("acme").await.unwrap();
    assert_eq!(rv(&org_after), rv(&org), "the OktaOrg status churned: {:?} -> {:?}", org.status, org_after.status);
    assert_eq!(world.okta_writes(), 0);
}

#[tokio::test]
async fn a_key_switched_in_okta_is_adopted_with_a_warning() {
    let world = World::new("edge-drift").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("drift", &app.id, json!({})).await;
    let _controller = world.start_controller(&[FAST_RESYNC]);
    wait_ready(&world, "drift").await;

    let now = Timestamp::now();
    let new_kid = world.sim.add_key(
        &app.id,
        SeedKey {
            not_before: now - SignedDuration::from_hours(1),
            not_after: now + SignedDuration::from_hours(24 * 700),
        },
    );
    world.sim.set_active_kid(&app.id, &new_kid);

    let (sac, secret) = wait_for("the external key change to be adopted", LONG, || async {
        let sac = world.credential("drift").await;
        let secret = world.secrets().get("drift-idp").await.unwrap();
        let adopted = active_kid(&sac).as_deref() == Some(new_kid.as_str())
            && secret_text(&secret, "kid").as_deref() == Some(new_kid.as_str())
            && condition(&sac, "Ready")?.0 == "True";
        adopted.then_some((sac, secret))
    })
    .await;
    assert_eq!(secret_kids(&secret)[0], new_kid);
    let annotations = secret.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("samlcred.io/kid"), Some(&new_kid));
    assert!(sac.status.unwrap().pending_key.is_none());
    let warnings: Vec<_> = events(&world, "drift").await.into_iter().filter(|e| e.1 == "ExternalKeyChange").collect();
    assert!(!warnings.is_empty(), "no ExternalKeyChange event");
    assert!(warnings.iter().all(|e| e.0 == "Warning"), "{warnings:?}");
    assert!(warnings[0].2.contains(&new_kid), "{warnings:?}");
    assert_eq!(world.okta_writes(), 0, "adopting an external change writes nothing to Okta");
}

#[tokio::test]
async fn an_app_gone_from_okta_keeps_the_secret() {
    let world = World::new("edge-gone").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("gone", &app.id, json!({})).await;
    let _controller = world.start_controller(&[FAST_RESYNC]);
    let (_, secret) = wait_ready(&world, "gone").await;

    world.sim.remove_app(&app.id);
    let sac = wait_not_ready(&world, "gone", "AppNotFound").await;
    assert!(condition(&sac, "Ready").unwrap().2.contains(&app.id));
    // A few more reconciles of the missing app: the Secret still stays as it was.
    let reads = app_reads(&world, &app.id);
    wait_app_reads(&world, &app.id, reads, 2).await;
    let after = world.secrets().get("gone-idp").await.unwrap();
    assert_eq!(rv(&after), rv(&secret), "the Secret was modified");
    assert_eq!(after.data, secret.data);
    assert_eq!(world.okta_writes(), 0);
}

#[tokio::test]
async fn two_credentials_on_one_app_the_older_wins() {
    let world = World::new("edge-conflict").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    // The older is named so that it sorts after the newer: age decides, not the name.
    world.create_credential("zeta", &app.id, json!({})).await;
    let _controller = world.start_controller(&[]);
    let (older, _) = wait_ready(&world, "zeta").await;
    let created = older.metadata.creation_timestamp.clone().unwrap().0;
    // creationTimestamp has whole seconds: let the clock move past the older one's second.
    wait_for("the next second", LONG, || async { (Timestamp::now().as_second() > created.as_second()).then_some(()) })
        .await;
    world.create_credential("alpha", &app.id, json!({})).await;

    let newer = wait_not_ready(&world, "alpha", "Conflict").await;
    assert!(condition(&newer, "Ready").unwrap().2.contains("zeta"), "{:?}", condition(&newer, "Ready"));
    let older = world.credential("zeta").await;
    assert_eq!(condition(&older, "Ready").unwrap().0, "True");
    let managed = world.secrets().list(&ListParams::default().labels("app.kubernetes.io/managed-by=samlcred")).await;
    let names: Vec<String> = managed.unwrap().items.iter().map(|s| s.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, vec!["zeta-idp".to_string()], "only the winner's Secret exists");
    assert!(world.secrets().get_opt("alpha-idp").await.unwrap().is_none());

    // The winner goes: the other takes the app over at once (the deletion triggers it), not at its
    // next resync an hour later.
    world.credentials().delete("zeta", &Default::default()).await.unwrap();
    let started = std::time::Instant::now();
    wait_ready(&world, "alpha").await;
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?} to take over", started.elapsed());
}

#[tokio::test]
async fn suspend_writes_the_secret_but_nothing_to_okta() {
    let world = World::new("edge-suspend").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 10));
    world.create_credential("paused", &app.id, json!({"suspend": true})).await;
    let _controller = world.start_controller(&[]);

    let sac = wait_not_ready(&world, "paused", "Suspended").await;
    assert_eq!(active_kid(&sac).as_deref(), Some(app.kids[0].as_str()));
    let secret = world.secrets().get("paused-idp").await.unwrap();
    assert_eq!(secret_text(&secret, "kid").as_deref(), Some(app.kids[0].as_str()), "the current key is published");
    assert_eq!(secret_kids(&secret), vec![app.kids[0].clone()]);
    let writes: Vec<_> = world.sim.calls().into_iter().filter(|c| c.method == "POST" || c.method == "PUT").collect();
    assert!(writes.is_empty(), "Okta was written to while suspended: {writes:?}");
    assert_eq!(world.generate_calls(&app.id), 0);

    patch_spec(&world, "paused", json!({"suspend": false})).await;
    wait_for("the rotation to start and generate a key", LONG, || async {
        let sac = world.credential("paused").await;
        sac.status.as_ref()?.pending_key.as_ref().map(|_| ())
    })
    .await;
    assert_eq!(world.generate_calls(&app.id), 1, "exactly one key generated after unsuspending");
}

#[tokio::test]
async fn a_foreign_secret_is_left_alone_until_marked_adoptable() {
    let world = World::new("edge-foreign").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world
        .apply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "foreign-idp"},
            "stringData": {"other": "x"}
        }))
        .await;
    let before = world.secrets().get("foreign-idp").await.unwrap();
    world.create_credential("foreign", &app.id, json!({})).await;
    // The Secret watch only sees samlcred's Secrets: the adopt annotation is noticed on a resync.
    let _controller = world.start_controller(&[FAST_RESYNC]);

    let sac = wait_not_ready(&world, "foreign", "SecretConflict").await;
    assert!(condition(&sac, "Ready").unwrap().2.contains("samlcred.io/adopt"));
    let reads = app_reads(&world, &app.id);
    wait_app_reads(&world, &app.id, reads, 2).await;
    let unchanged = world.secrets().get("foreign-idp").await.unwrap();
    assert_eq!(rv(&unchanged), rv(&before), "a Secret samlcred does not own was modified");
    assert_eq!(unchanged.data, before.data);
    let reasons: Vec<String> = events(&world, "foreign").await.into_iter().map(|e| e.1).collect();
    assert!(reasons.iter().any(|r| r == "SecretConflict"), "no SecretConflict event in {reasons:?}");

    let patch = json!({"metadata": {"annotations": {"samlcred.io/adopt": "true"}}});
    world.secrets().patch("foreign-idp", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let (_, secret) = wait_ready(&world, "foreign").await;
    assert_eq!(secret_text(&secret, "kid").as_deref(), Some(app.kids[0].as_str()));
    assert_eq!(secret_text(&secret, "other").as_deref(), Some("x"), "the adopted Secret lost its own key");
    for key in ["certificate.pem", "bundle.pem", "metadata.xml", "jwks.json", "kid"] {
        assert!(secret_text(&secret, key).is_some(), "no {key} in the adopted Secret");
    }
    let labels = secret.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("samlcred.io/credential").map(String::as_str), Some("foreign"));
}

#[tokio::test]
async fn keys_others_added_survive_a_rotation() {
    let world = World::new("edge-extra").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("extra", &app.id, quick_activation()).await;
    let _controller = world.start_controller(&[]);
    wait_ready(&world, "extra").await;

    // Another field manager adds a key of its own, with server-side apply.
    let theirs = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "extra-idp"},
                        "stringData": {"sp-config.yaml": "entityId: grafana"}});
    world.secrets().patch("extra-idp", &PatchParams::apply("someone-else"), &Patch::Apply(&theirs)).await.unwrap();

    world.annotate("extra", "samlcred.io/rotate", "1").await;
    let (_, secret) = wait_rotated_away_from(&world, "extra", &app.kids[0]).await;
    assert_eq!(world.generate_calls(&app.id), 1);
    assert_eq!(
        secret_text(&secret, "sp-config.yaml").as_deref(),
        Some("entityId: grafana"),
        "another's key was removed"
    );
}

#[tokio::test]
async fn secret_deletion_policy_delete_and_retain() {
    let world = World::new("edge-delpol").await;
    let doomed = world.seed_app(SignedDuration::from_hours(24 * 365));
    let kept = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("doomed", &doomed.id, json!({"secretDeletionPolicy": "Delete"})).await;
    world.create_credential("kept", &kept.id, json!({"secretDeletionPolicy": "Retain"})).await;
    let _controller = world.start_controller(&[]);
    let (doomed_sac, doomed_secret) = wait_ready(&world, "doomed").await;
    let (_, kept_secret) = wait_ready(&world, "kept").await;
    let owners = doomed_secret.metadata.owner_references.clone().unwrap_or_default();
    assert!(owners.iter().any(|o| Some(&o.uid) == doomed_sac.metadata.uid.as_ref()), "no ownerReference: {owners:?}");
    assert!(kept_secret.metadata.owner_references.unwrap_or_default().is_empty());

    world.credentials().delete("kept", &DeleteParams::default()).await.unwrap();
    world.credentials().delete("doomed", &DeleteParams::default()).await.unwrap();
    wait_for("the Delete policy's Secret to be garbage-collected", Duration::from_secs(60), || async {
        world.secrets().get_opt("doomed-idp").await.unwrap().is_none().then_some(())
    })
    .await;
    wait_for("both credentials to be gone", LONG, || async {
        let left = world.credentials().list(&ListParams::default()).await.unwrap().items.len();
        (left == 0).then_some(())
    })
    .await;
    let retained = world.secrets().get_opt("kept-idp").await.unwrap().expect("the Retain policy's Secret was deleted");
    assert_eq!(retained.data, kept_secret.data);
}

#[tokio::test]
async fn a_secret_deleted_by_hand_is_recreated() {
    let world = World::new("edge-recreate").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("again", &app.id, json!({"secretTemplate": {"labels": {"team": "sso"}}})).await;
    let _controller = world.start_controller(&[]);
    let (_, secret) = wait_ready(&world, "again").await;

    world.secrets().delete("again-idp", &DeleteParams::default()).await.unwrap();
    let recreated = wait_for("the Secret to be recreated", LONG, || async {
        let s = world.secrets().get_opt("again-idp").await.unwrap()?;
        (s.metadata.uid != secret.metadata.uid).then_some(s)
    })
    .await;
    assert_eq!(recreated.data, secret.data, "the recreated Secret differs");
    assert_eq!(recreated.metadata.labels, secret.metadata.labels);
    assert_eq!(recreated.metadata.annotations, secret.metadata.annotations);
    assert_eq!(recreated.type_.as_deref(), Some("Opaque"));
    assert_eq!(world.okta_writes(), 0);
}

/// The hash samlcred puts on pod templates for the Secret's current data.
fn expected_hash(secret: &Secret) -> String {
    let data = secret.data.clone().unwrap_or_default();
    let rendered = samlcred::secret::Rendered {
        data: data.into_iter().filter(|(k, _)| samlcred::secret::DATA_KEYS.contains(&k.as_str())).collect(),
        labels: Default::default(),
        annotations: Default::default(),
    };
    samlcred::controller::workloads::data_hash(&rendered)
}

fn template_hash(deployment: &Deployment) -> Option<String> {
    let template = deployment.spec.template.metadata.as_ref()?;
    template.annotations.as_ref()?.get("samlcred.io/secret-hash").cloned()
}

#[tokio::test]
async fn rollout_restart_targets_follow_the_secret() {
    let world = World::new("edge-restart").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world
        .apply(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "grafana"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "grafana"}},
                "template": {
                    "metadata": {"labels": {"app": "grafana"}},
                    "spec": {"containers": [{"name": "grafana", "image": "grafana/grafana:11.0.0"}]}
                }
            }
        }))
        .await;
    let mut spec = quick_activation();
    spec["rolloutRestartTargets"] = json!([{"kind": "Deployment", "name": "grafana"}]);
    // No Deployment controller runs here to report the rollout; waiting for it is tested in
    // tests/operator_rollout.rs.
    spec["activation"]["waitForRollout"] = json!(false);
    world.create_credential("graf", &app.id, spec).await;
    let _controller = world.start_controller(&[]);
    let deployments: Api<Deployment> = Api::namespaced(world.client.clone(), &world.ns.name);

    let (_, secret) = wait_ready(&world, "graf").await;
    let first = wait_for("the pod template to carry the Secret's hash", LONG, || async {
        let hash = template_hash(&deployments.get("grafana").await.unwrap())?;
        (hash == expected_hash(&secret)).then_some(hash)
    })
    .await;

    world.annotate("graf", "samlcred.io/rotate", "r1").await;
    let (_, rotated) = wait_rotated_away_from(&world, "graf", &app.kids[0]).await;
    let second = wait_for("the pod template to carry the new hash", LONG, || async {
        let hash = template_hash(&deployments.get("grafana").await.unwrap())?;
        (hash == expected_hash(&rotated)).then_some(hash)
    })
    .await;
    assert_ne!(first, second, "the rotation did not change the hash");
    let restarts: Vec<_> = events(&world, "graf").await.into_iter().filter(|e| e.1 == "RolloutRestarted").collect();
    assert!(restarts.iter().any(|e| e.0 == "Normal" && e.2.contains("grafana")), "no RolloutRestarted: {restarts:?}");
}

/// Whether `message` carries an Okta errorId the way `ErrorBody` displays it: `[errorId oae…]`,
/// 3 + 22 characters as okta-sim (and Okta) makes them.
fn error_id_in(message: &str) -> Option<String> {
    let start = message.find("[errorId ")? + "[errorId ".len();
    let id: String = message[start..].chars().take_while(|c| *c != ']').collect();
    let shaped = id.starts_with("oae")
        && id.len() == 25
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    shaped.then_some(id)
}

fn status_fault(app_id: &str, status: u16, code: &str, summary: &str, count: u32) -> Fault {
    Fault {
        method: Some(http::Method::GET),
        path_prefix: format!("/api/v1/apps/{app_id}"),
        count,
        kind: FaultKind::Status { status, error_code: code.into(), summary: summary.into() },
    }
}

#[tokio::test]
async fn okta_server_errors_surface_back_off_and_clear() {
    let world = World::new("edge-5xx").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    // Three reconciles' worth of failing reads (the client tries each call 4 times), then Okta recovers.
    world.sim.inject_fault(status_fault(&app.id, 500, "E0000009", "Internal Server Error", 12));
    world.create_credential("flaky", &app.id, json!({})).await;
    let mut controller = world.start_controller(&[]);

    let first_failure = wait_for("a first failed attempt", LONG, || async {
        let sac = world.credential("flaky").await;
        (sac.status.as_ref()?.failed_attempts >= 1).then(Instant::now)
    })
    .await;
    let (sac, second_failure) = wait_for("Ready=False OktaError after two failed attempts", LONG, || async {
        let sac = world.credential("flaky").await;
        let ready = condition(&sac, "Ready")?;
        (ready.1 == "OktaError" && sac.status.as_ref()?.failed_attempts >= 2).then(|| (sac, Instant::now()))
    })
    .await;
    // The controller backs off (5s, jittered by 20%) between failed attempts instead of hammering Okta.
    let gap = second_failure - first_failure;
    assert!(gap >= Duration::from_millis(2500), "second failed attempt only {gap:?} after the first");
    let (status, _, message) = condition(&sac, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("E0000009"), "{message}");
    assert!(error_id_in(&message).is_some(), "no errorId in {message:?}");
    assert!(sac.status.as_ref().unwrap().last_failure_time.is_some());
    let warnings: Vec<_> = events(&world, "flaky").await.into_iter().filter(|e| e.1 == "OktaError").collect();
    assert!(warnings.iter().any(|e| e.0 == "Warning" && error_id_in(&e.2).is_some()), "{warnings:?}");
    assert!(controller.running(), "the controller died: {}", controller.log_text());

    let (sac, _) = wait_ready(&world, "flaky").await;
    let status = sac.status.unwrap();
    assert_eq!(status.failed_attempts, 0);
    assert!(status.last_failure_time.is_none());
    assert_eq!(status.active_key.unwrap().kid, app.kids[0]);
    assert!(controller.running());
}

#[tokio::test]
async fn metadata_samlcred_cannot_publish_leaves_the_secret_as_it_was() {
    let world = World::new("edge-metadata").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("meta", &app.id, json!({"activation": {"policy": "Manual"}})).await;
    let mut controller = world.start_controller(&[FAST_RESYNC]);
    let (_, before) = wait_ready(&world, "meta").await;

    // A proxy's HTML error page instead of Okta's metadata, for the next two reads; then a rotation.
    world.sim.inject_fault(Fault {
        method: Some(http::Method::GET),
        path_prefix: format!("/api/v1/apps/{}/sso/saml/metadata", app.id),
        count: 2,
        kind: FaultKind::NonJsonBody,
    });
    world.annotate("meta", "samlcred.io/rotate", "r1").await;
    let sac = wait_not_ready(&world, "meta", "InvalidMetadata").await;
    let message = condition(&sac, "Ready").unwrap().2;
    assert!(message.contains("metadata") && message.contains("html"), "{message}");
    let warnings: Vec<_> = events(&world, "meta").await.into_iter().filter(|e| e.0 == "Warning").collect();
    assert!(warnings.iter().any(|e| e.2.contains("metadata")), "{warnings:?}");
    let secret = world.secrets().get("meta-idp").await.unwrap();
    assert_eq!(rv(&secret), rv(&before), "the Secret was written");
    // The key is generated before the metadata is read for its publication; it waits, unpublished.
    assert_eq!(world.generate_calls(&app.id), 1, "one key for the rotation");
    assert_eq!(world.sim.active_kid(&app.id), Some(app.kids[0].clone()), "activated on refused metadata");

    // Okta's own document again: the rotation goes on, and metadata.xml names both certificates.
    let secret = wait_for("the pending key in metadata.xml", LONG, || async {
        let secret = world.secrets().get("meta-idp").await.unwrap();
        let signing = samlcred::metadata::signing_certificates(&secret_text(&secret, "metadata.xml")?).ok()?;
        (signing.len() == 2).then_some(secret)
    })
    .await;
    let metadata = secret_text(&secret, "metadata.xml").unwrap();
    assert_eq!(samlcred::metadata::signing_certificates(&metadata).unwrap(), secret_certificates(&secret));
    assert!(controller.running(), "the controller died: {}", controller.log_text());
}

#[tokio::test]
async fn okta_access_denied_is_reported_and_survived() {
    let world = World::new("edge-403").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    let summary = "You do not have permission to perform the requested action";
    world.sim.inject_fault(status_fault(&app.id, 403, "E0000006", summary, 1000));
    world.create_credential("denied", &app.id, json!({})).await;
    let mut controller = world.start_controller(&[]);

    let sac = wait_not_ready(&world, "denied", "OktaError").await;
    let message = condition(&sac, "Ready").unwrap().2;
    assert!(message.contains("E0000006") && message.contains("denied"), "{message}");
    assert!(error_id_in(&message).is_some(), "no errorId in {message:?}");
    let warnings: Vec<_> = events(&world, "denied").await.into_iter().filter(|e| e.1 == "OktaError").collect();
    assert!(warnings.iter().any(|e| e.0 == "Warning"), "{warnings:?}");
    assert!(world.secrets().get_opt("denied-idp").await.unwrap().is_none());
    assert!(controller.running(), "the controller died: {}", controller.log_text());
    // A 403 is terminal: one call per reconcile, not the client's retries, and reconciles back off.
    let first_failure = Instant::now();
    wait_for("a second failed attempt", LONG, || async {
        let sac = world.credential("denied").await;
        (sac.status.as_ref()?.failed_attempts >= 2).then_some(())
    })
    .await;
    let gap = first_failure.elapsed();
    assert!(gap >= Duration::from_millis(2500), "second failed attempt only {gap:?} after the first");
    let failed = world.credential("denied").await.status.unwrap().failed_attempts as usize;
    let reads = app_reads(&world, &app.id);
    assert!(reads <= failed + 2, "{reads} reads of the app for {failed} failed attempts: no backoff");
    assert!(controller.running(), "the controller died: {}", controller.log_text());
}

#[tokio::test]
async fn org_problems_are_reported() {
    let world = World::new("edge-org").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    const BAD_TOKEN: &str = "definitely-not-the-e2e-token";
    world
        .apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad-token"},
                      "stringData": {"token": BAD_TOKEN}}))
        .await;
    world
        .apply(json!({
            "apiVersion": "samlcred.io/v1alpha1", "kind": "OktaOrg",
            "metadata": {"name": "badorg"},
            "spec": {"url": world.sim.base_url(), "auth": {"apiToken": {"secretRef": {"name": "bad-token", "key": "token"}}}}
        }))
        .await;
    world.create_credential("orphan", &app.id, json!({"orgRef": {"name": "missing"}})).await;
    world.create_credential("wrongtoken", &app.id, json!({"orgRef": {"name": "badorg"}})).await;
    let _controller = world.start_controller(&[]);

    let orphan = wait_not_ready(&world, "orphan", "OrgNotFound").await;
    assert!(condition(&orphan, "Ready").unwrap().2.contains("missing"));

    let orgs: Api<OktaOrg> = Api::namespaced(world.client.clone(), &world.ns.name);
    let org_ready = wait_for("the OktaOrg with a wrong token to be Ready=False", LONG, || async {
        let org = orgs.get("badorg").await.unwrap();
        let c = org.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (c.status == "False").then_some(c)
    })
    .await;
    assert_eq!(org_ready.reason, "AuthenticationFailed");
    assert!(org_ready.message.contains("E0000011"), "{}", org_ready.message);
    assert!(!org_ready.message.contains(BAD_TOKEN), "the token leaked: {}", org_ready.message);

    let wrong = wait_for("the credential of the bad org to be Ready=False", LONG, || async {
        let sac = world.credential("wrongtoken").await;
        (condition(&sac, "Ready")?.0 == "False" && !condition(&sac, "Ready")?.2.is_empty()).then_some(sac)
    })
    .await;
    let (_, reason, message) = condition(&wrong, "Ready").unwrap();
    assert_eq!(reason, "OktaError", "{message}");
    assert!(message.contains("did not accept the credentials"), "{message}");
    let text = serde_json::to_string(&wrong.status).unwrap();
    assert!(!text.contains(BAD_TOKEN), "the token leaked into status: {text}");
    assert!(world.secrets().get_opt("wrongtoken-idp").await.unwrap().is_none());
    // The good org is unaffected.
    let acme = wait_for("acme to be Ready", LONG, || async {
        let org = orgs.get("acme").await.unwrap();
        let c = org.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (c.status == "True").then_some(c)
    })
    .await;
    assert_eq!(acme.reason, "Authenticated");
}

#[tokio::test]
async fn the_rotate_annotation_rotates_once_per_token() {
    let world = World::new("edge-rotate").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("manual", &app.id, quick_activation()).await;
    let _controller = world.start_controller(&[FAST_RESYNC]);
    wait_ready(&world, "manual").await;
    assert_eq!(world.generate_calls(&app.id), 0);

    world.annotate("manual", "samlcred.io/rotate", "abc").await;
    let (sac, _) = wait_rotated_away_from(&world, "manual", &app.kids[0]).await;
    let status = sac.status.unwrap();
    assert_eq!(status.last_rotate_token.as_deref(), Some("abc"));
    assert!(status.last_rotation_time.is_some());
    assert_eq!(world.generate_calls(&app.id), 1, "exactly one rotation for the token");

    // Applying the same token again (and touching the object so that it is reconciled) does nothing.
    let patch = json!({"metadata": {"annotations": {"samlcred.io/rotate": "abc", "touched": "yes"}}});
    world.credentials().patch("manual", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let reads = app_reads(&world, &app.id);
    wait_app_reads(&world, &app.id, reads, 3).await;
    assert_eq!(world.generate_calls(&app.id), 1, "the same token rotated again");
    let sac = world.credential("manual").await;
    assert!(sac.status.as_ref().unwrap().rotation.is_none());
    assert_eq!(condition(&sac, "Ready").unwrap().0, "True");
}
