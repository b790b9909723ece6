//! One rate limiter and one claim per Okta org, not per org object: two OktaOrgs naming the same
//! Okta org share a limiter (so maxShare holds across them, and across a rebuild of a client after
//! its token rotated), and two credentials on the same app through different org objects are a
//! Conflict (the older wins).

mod okta_support;
mod support;

use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use okta_support::hostile::{self, LookAlike};
use samlcred::api::OrgKind;
use samlcred::controller::orgs::{OrgClients, OrgKey, OrgSettings};
use serde_json::json;
use std::time::Duration;
use support::{World, condition, wait_for};

const LONG: Duration = Duration::from_secs(90);

async fn okta_org(world: &World, name: &str, url: &str) {
    world
        .apply(json!({
            "apiVersion": "samlcred.io/v1alpha1", "kind": "OktaOrg",
            "metadata": {"name": name},
            "spec": {"url": url, "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}},
                     "rateLimit": {"maxShare": 50}}
        }))
        .await;
}

#[tokio::test]
async fn two_org_objects_for_one_okta_org_share_its_rate_limit() {
    let world = World::new("one-org-limit").await;
    let config = LookAlike { limit: 10, window_secs: 3, skew_secs: 0, concurrency_refusal_every: None };
    let (base, seen) = hostile::look_alike(config).await;
    okta_org(&world, "first", &base).await;
    // The same Okta org, spelled with a trailing slash.
    okta_org(&world, "second", &format!("{base}/")).await;
    let orgs = OrgClients::new(
        world.client.clone(),
        OrgSettings {
            cluster_resource_namespace: "unused".into(),
            allow_insecure_http: true,
            metrics: None,
            fence: None,
        },
    );
    let key = |name: &str| OrgKey { kind: OrgKind::OktaOrg, namespace: Some(world.ns.name.clone()), name: name.into() };
    let first = orgs.client(&key("first"), None).await.unwrap();
    let mut second = orgs.client(&key("second"), None).await.unwrap();
    assert_eq!(orgs.origin_of(&key("first")), orgs.origin_of(&key("second")));

    let mut calls = Vec::new();
    for i in 0..16 {
        if i == 8 {
            // The token rotates: the second org's client is rebuilt; its limiter must not start afresh.
            let patch =
                json!({"stringData": {"token": support::TOKEN}, "metadata": {"annotations": {"rotated": "yes"}}});
            let secrets: Api<Secret> = world.secrets();
            secrets.patch("okta-token", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
            second = orgs.client(&key("second"), None).await.unwrap();
        }
        let client = if i % 2 == 0 { first.clone() } else { second.clone() };
        calls.push(tokio::spawn(async move { client.verify_credentials().await }));
    }
    for call in calls {
        tokio::time::timeout(Duration::from_secs(60), call).await.expect("hung").unwrap().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let windows = hostile::per_window(&seen);
    eprintln!("two OktaOrgs for one Okta org, limit 10, maxShare 50% each: per window {windows:?}");
    assert!(windows.iter().all(|(_, n)| *n <= 5), "maxShare broken across org objects: {windows:?}");
}

#[tokio::test]
async fn two_org_objects_on_one_app_are_a_conflict() {
    let world = World::new("one-org-claim").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    okta_org(&world, "acme-again", &format!("{}/", world.sim.base_url())).await;
    world.create_credential("older", &app.id, json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // creation timestamps have second resolution
    world.create_credential("newer", &app.id, json!({"orgRef": {"name": "acme-again"}})).await;
    let _controller = world.start_controller(&[]);
    let conflict = wait_for("the newer credential to be a Conflict", LONG, || async {
        condition(&world.credential("newer").await, "Ready").filter(|c| c.0 == "False" && c.1 == "Conflict")
    })
    .await;
    assert!(conflict.2.contains("older"), "{conflict:?}");
    wait_for("the older credential to be Ready", LONG, || async {
        (condition(&world.credential("older").await, "Ready")?.0 == "True").then_some(())
    })
    .await;
}
