//! A ClusterOktaOrg end to end: it reads its Secret in the cluster resource namespace and admits only
//! the namespaces its namespaceSelector matches. Its own test binary (so its own API server): every
//! controller process reconciles every ClusterOktaOrg, and another test's controller, configured with
//! another cluster resource namespace, would fight over its status.

mod support;

use jiff::SignedDuration;
use serde_json::json;
use std::time::Duration;
use support::{ControllerProcess, World, condition, org_ready, wait_for};
use testenv::TestNamespace;

const LONG: Duration = Duration::from_secs(90);

#[tokio::test]
async fn cluster_org_admits_only_selected_namespaces() {
    let world = World::new("e2e-corg").await; // the allowed namespace
    let client = world.client.clone();
    let other = TestNamespace::create(&client, "e2e-corg-denied").await.unwrap();
    let resources = TestNamespace::create(&client, "e2e-corg-system").await.unwrap();
    let team = world.ns.name.clone();
    let label = json!({"metadata": {"labels": {"samlcred-e2e/team": team}}});
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    namespaces.patch(&world.ns.name, &Default::default(), &kube::api::Patch::Merge(&label)).await.unwrap();

    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client.clone(), &resources.name);
    let token: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(json!({"metadata": {"name": "okta-token"}, "stringData": {"token": support::TOKEN}}))
            .unwrap();
    secrets.create(&Default::default(), &token).await.unwrap();
    let org_name = format!("shared-{}", world.ns.name);
    let corgs: kube::Api<samlcred::api::ClusterOktaOrg> = kube::Api::all(client.clone());
    let corg: samlcred::api::ClusterOktaOrg = serde_json::from_value(json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "ClusterOktaOrg",
        "metadata": {"name": org_name},
        "spec": {
            "url": world.sim.base_url(),
            "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}},
            "namespaceSelector": {"matchLabels": {"samlcred-e2e/team": team}}
        }
    }))
    .unwrap();
    corgs.create(&Default::default(), &corg).await.unwrap();

    let app_allowed = world.seed_app(SignedDuration::from_hours(24 * 365));
    let app_denied = world.seed_app(SignedDuration::from_hours(24 * 365));
    let org_ref = json!({"orgRef": {"kind": "ClusterOktaOrg", "name": org_name}});
    world.create_credential("allowed", &app_allowed.id, org_ref.clone()).await;
    let denied: samlcred::api::SamlAppCredential = serde_json::from_value(json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
        "metadata": {"name": "denied"},
        "spec": {"orgRef": org_ref["orgRef"], "appId": app_denied.id, "secretName": "denied-idp"}
    }))
    .unwrap();
    let denied_api: kube::Api<samlcred::api::SamlAppCredential> = kube::Api::namespaced(client.clone(), &other.name);
    denied_api.create(&Default::default(), &denied).await.unwrap();

    let crn = format!("--cluster-resource-namespace={}", resources.name);
    let _controller = ControllerProcess::start_with(&[&world.ns.name, &other.name], &[&crn], &[]);

    let ready = org_ready(&world, "ClusterOktaOrg", &org_name, None).await;
    assert_eq!(ready.0, "True", "the ClusterOktaOrg reads its Secret in the cluster resource namespace: {ready:?}");
    wait_for("the allowed credential to be Ready", LONG, || async {
        (condition(&world.credential("allowed").await, "Ready")?.0 == "True").then_some(())
    })
    .await;
    let refused = wait_for("the other namespace to be refused", LONG, || async {
        let sac = denied_api.get("denied").await.ok()?;
        condition(&sac, "Ready").filter(|c| c.0 == "False" && c.1 == "OrgNotAllowed")
    })
    .await;
    assert!(refused.2.contains("namespaceSelector"), "{refused:?}");
    let denied_secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &other.name);
    assert!(denied_secrets.get_opt("denied-idp").await.unwrap().is_none(), "no Secret for a refused namespace");
    let denied_app_calls = world.sim.calls().iter().filter(|c| c.path.contains(&app_denied.id)).count();
    assert_eq!(denied_app_calls, 0, "Okta is never asked about the refused namespace's app");
    corgs.delete(&org_name, &Default::default()).await.unwrap();
}
