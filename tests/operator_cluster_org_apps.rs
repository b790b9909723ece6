//! A ClusterOktaOrg's spec.apps: which apps each namespace may manage through the shared org. A
//! credential for another app is Ready=False AppNotAllowed with no Okta call, and a Conflict with a
//! credential of another namespace does not name that namespace's objects. Its own test binary (its
//! own API server), as every controller reconciles every ClusterOktaOrg.

mod support;

use jiff::SignedDuration;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::Patch;
use samlcred::api::{ClusterOktaOrg, SamlAppCredential};
use serde_json::json;
use std::time::Duration;
use support::{ControllerProcess, World, condition, wait_for};
use testenv::TestNamespace;

const LONG: Duration = Duration::from_secs(90);

#[tokio::test]
async fn spec_apps_limits_what_each_namespace_may_manage() {
    let world = World::new("e2e-apps-a").await;
    let client = world.client.clone();
    let team_b = TestNamespace::create(&client, "e2e-apps-b").await.unwrap();
    let resources = TestNamespace::create(&client, "e2e-apps-system").await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for (ns, team) in [(&world.ns.name, "a"), (&team_b.name, "b")] {
        let label = json!({"metadata": {"labels": {"samlcred-e2e/apps-team": format!("{team}-{}", world.ns.name)}}});
        namespaces.patch(ns, &Default::default(), &Patch::Merge(&label)).await.unwrap();
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &resources.name);
    let token: Secret =
        serde_json::from_value(json!({"metadata": {"name": "okta-token"}, "stringData": {"token": support::TOKEN}}))
            .unwrap();
    secrets.create(&Default::default(), &token).await.unwrap();

    let mine = world.seed_app(SignedDuration::from_hours(24 * 365));
    let theirs = world.seed_app(SignedDuration::from_hours(24 * 365));
    let shared = world.seed_app(SignedDuration::from_hours(24 * 365));
    let selector = |team: &str| json!({"matchLabels": {"samlcred-e2e/apps-team": format!("{team}-{}", world.ns.name)}});
    let org_name = format!("apps-{}", world.ns.name);
    let corg: ClusterOktaOrg = serde_json::from_value(json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "ClusterOktaOrg",
        "metadata": {"name": org_name},
        "spec": {
            "url": world.sim.base_url(),
            "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}},
            "apps": [
                {"namespaceSelector": selector("a"), "appIds": [mine.id, shared.id]},
                {"namespaceSelector": selector("b"), "appIds": [theirs.id, shared.id]}
            ]
        }
    }))
    .unwrap();
    let corgs: Api<ClusterOktaOrg> = Api::all(client.clone());
    corgs.create(&Default::default(), &corg).await.unwrap();

    let org_ref = json!({"kind": "ClusterOktaOrg", "name": org_name});
    // Team b claims the shared app first; team a's later claim is the Conflict.
    let b_credentials: Api<SamlAppCredential> = Api::namespaced(client.clone(), &team_b.name);
    let first: SamlAppCredential = serde_json::from_value(json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
        "metadata": {"name": "team-b-private-name"},
        "spec": {"orgRef": org_ref, "appId": shared.id, "secretName": "shared-idp"}
    }))
    .unwrap();
    b_credentials.create(&Default::default(), &first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // creation timestamps have second resolution
    world.create_credential("own", &mine.id, json!({"orgRef": org_ref})).await;
    world.create_credential("foreign", &theirs.id, json!({"orgRef": org_ref})).await;
    world.create_credential("late", &shared.id, json!({"orgRef": org_ref})).await;

    let crn = format!("--cluster-resource-namespace={}", resources.name);
    let _controller = ControllerProcess::start_with(&[&world.ns.name, &team_b.name], &[&crn], &[]);

    wait_for("a's own app to be Ready", LONG, || async {
        (condition(&world.credential("own").await, "Ready")?.0 == "True").then_some(())
    })
    .await;
    let refused = wait_for("b's app to be refused to a", LONG, || async {
        condition(&world.credential("foreign").await, "Ready").filter(|c| c.0 == "False" && c.1 == "AppNotAllowed")
    })
    .await;
    assert!(refused.2.contains("spec.apps") && refused.2.contains(&theirs.id), "{refused:?}");
    let calls_for_theirs = world.sim.calls().iter().filter(|c| c.path.contains(&theirs.id)).count();
    assert_eq!(calls_for_theirs, 0, "no Okta call for an app the namespace may not manage");

    let conflict = wait_for("the later claim on the shared app to be a Conflict", LONG, || async {
        condition(&world.credential("late").await, "Ready").filter(|c| c.0 == "False" && c.1 == "Conflict")
    })
    .await;
    assert!(
        !conflict.2.contains(&team_b.name) && !conflict.2.contains("team-b-private-name"),
        "a Conflict never names another namespace's objects: {conflict:?}"
    );
    assert!(conflict.2.contains("in another namespace"), "{conflict:?}");
    let b_first = wait_for("b's claim to be Ready", LONG, || async {
        let sac = b_credentials.get("team-b-private-name").await.ok()?;
        condition(&sac, "Ready").filter(|c| c.0 == "True")
    })
    .await;
    assert_eq!(b_first.0, "True");
    corgs.delete(&org_name, &Default::default()).await.unwrap();
}
