//! Proof that the local control plane is a real one: CRDs become Established, custom objects can be
//! created, watched and server-side applied, CEL rules reject bad objects, RBAC denies what is not
//! granted, and the garbage collector deletes owned objects.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};
use serde_json::json;
use std::time::Duration;
use testenv::TestNamespace;
use tokio::time::timeout;

const GROUP: &str = "testenv.samlcred.io";

fn widget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{GROUP}")},
        "spec": {
            "group": GROUP,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object",
                        "properties": {
                            "size": {"type": "integer"},
                            "max": {"type": "integer"},
                            "colour": {"type": "string"}
                        },
                        "x-kubernetes-validations": [
                            {"rule": "self.size <= self.max", "message": "spec.size must not exceed spec.max"}
                        ]
                    }}
                }}
            }]
        }
    }))
    .unwrap()
}

/// Installs the Widget CRD once per test binary and waits until the API server serves it.
async fn install_widget_crd(client: &kube::Client) -> Api<CustomResourceDefinition> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = format!("widgets.{GROUP}");
    crds.patch(&name, &PatchParams::apply("testenv-harness").force(), &Patch::Apply(widget_crd())).await.unwrap();
    timeout(Duration::from_secs(30), await_condition(crds.clone(), &name, conditions::is_crd_established()))
        .await
        .expect("the CRD was not Established within 30s")
        .unwrap();
    crds
}

fn widgets(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, "v1", "Widget"));
    Api::namespaced_with(client.clone(), ns, &resource)
}

fn widget(name: &str, size: i64, max: i64) -> serde_json::Value {
    json!({
        "apiVersion": format!("{GROUP}/v1"), "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, "max": max}
    })
}

#[tokio::test]
async fn crd_becomes_established() {
    let client = testenv::client().await.unwrap();
    let crds = install_widget_crd(&client).await;
    let crd = crds.get(&format!("widgets.{GROUP}")).await.unwrap();
    let conditions = crd.status.unwrap().conditions.unwrap();
    assert!(conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"), "{conditions:?}");
}

#[tokio::test]
async fn custom_objects_are_created_watched_and_server_side_applied() {
    let client = testenv::client().await.unwrap();
    install_widget_crd(&client).await;
    let ns = TestNamespace::create(&client, "harness-ssa").await.unwrap();
    let api = widgets(&client, &ns.name);

    let mut events = watcher(api.clone(), watcher::Config::default()).applied_objects().boxed();
    let created: DynamicObject = serde_json::from_value(widget("w1", 1, 5)).unwrap();
    api.create(&PostParams::default(), &created).await.unwrap();
    let seen = timeout(Duration::from_secs(10), events.try_next()).await.expect("no watch event").unwrap().unwrap();
    assert_eq!(seen.metadata.name.as_deref(), Some("w1"));

    // Two field managers own different fields; each apply keeps the other's.
    let owner_a = PatchParams::apply("manager-a");
    let owner_b = PatchParams::apply("manager-b");
    let patch_a = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "spec": {"size": 2, "max": 5}});
    let patch_b = json!({"apiVersion": format!("{GROUP}/v1"), "kind": "Widget", "spec": {"colour": "blue"}});
    api.patch("w1", &owner_a.clone().force(), &Patch::Apply(&patch_a)).await.unwrap();
    let after_b = api.patch("w1", &owner_b, &Patch::Apply(&patch_b)).await.unwrap();
    assert_eq!(after_b.data["spec"], json!({"size": 2, "max": 5, "colour": "blue"}));

    // Re-applying the same intent is a no-op: the resourceVersion does not move.
    let again = api.patch("w1", &owner_b, &Patch::Apply(&patch_b)).await.unwrap();
    assert_eq!(again.metadata.resource_version, after_b.metadata.resource_version);

    let updated = timeout(Duration::from_secs(10), async {
        while let Some(obj) = events.try_next().await.unwrap() {
            if obj.data["spec"]["colour"] == "blue" {
                return obj;
            }
        }
        panic!("watch ended")
    })
    .await
    .expect("the watch did not deliver the applied change");
    assert_eq!(updated.data["spec"]["size"], 2);
}

#[tokio::test]
async fn cel_validation_rejects_a_bad_object() {
    let client = testenv::client().await.unwrap();
    install_widget_crd(&client).await;
    let ns = TestNamespace::create(&client, "harness-cel").await.unwrap();
    let api = widgets(&client, &ns.name);
    let bad: DynamicObject = serde_json::from_value(widget("too-big", 9, 5)).unwrap();
    let err = api.create(&PostParams::default(), &bad).await.expect_err("the API server accepted size > max");
    let kube::Error::Api(status) = err else { panic!("unexpected error {err}") };
    assert_eq!(status.code, 422);
    assert!(status.message.contains("spec.size must not exceed spec.max"), "{}", status.message);
}

#[tokio::test]
async fn rbac_denies_what_is_not_granted() {
    let plane = testenv::shared();
    let out = plane
        .kubectl()
        .args(["auth", "can-i", "list", "secrets", "--as=system:serviceaccount:default:nobody", "-A"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    let out = plane.kubectl().args(["auth", "can-i", "list", "secrets", "-A"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes", "the admin is in system:masters");
}

#[tokio::test]
async fn owned_objects_are_garbage_collected() {
    let client = testenv::client().await.unwrap();
    let ns = TestNamespace::create(&client, "harness-gc").await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap();
    let owner = api.create(&PostParams::default(), &owner).await.unwrap();
    let child: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": "child",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid.unwrap()}]
    }}))
    .unwrap();
    let child_uid = api.create(&PostParams::default(), &child).await.unwrap().metadata.uid.unwrap();

    api.delete("owner", &DeleteParams::background()).await.unwrap();
    timeout(Duration::from_secs(60), await_condition(api.clone(), "child", conditions::is_deleted(&child_uid)))
        .await
        .expect("the garbage collector did not delete the owned ConfigMap within 60s")
        .unwrap();
    assert!(api.get_opt("child").await.unwrap().is_none());
}
