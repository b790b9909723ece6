//! The CRDs in `crds/` on a real kube-apiserver: they install and become Established, defaults are
//! applied, and bad specs are rejected by the API server with a message that names the field.

mod support;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testenv::TestNamespace;

fn api(client: &kube::Client, ns: &str, kind: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("samlcred.io", "v1alpha1", kind));
    match kind {
        "ClusterOktaOrg" => Api::all_with(client.clone(), &resource),
        _ => Api::namespaced_with(client.clone(), ns, &resource),
    }
}

fn credential(name: &str) -> Value {
    json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
        "metadata": {"name": name},
        "spec": {"orgRef": {"name": "acme"}, "appId": "0oa1b2c3d4e5f6g7h8i9", "secretName": "grafana-saml-idp"}
    })
}

fn org(kind: &str, name: &str) -> Value {
    json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": kind,
        "metadata": {"name": name},
        "spec": {"url": "https://acme.okta.com", "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}}}
    })
}

/// Sets `value` at the JSON pointer `path` (creating objects on the way); `Value::Null` removes it.
fn with(mut object: Value, path: &str, value: Value) -> Value {
    let (parent, leaf) = path.rsplit_once('/').unwrap();
    let mut node = &mut object;
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        node = node.as_object_mut().unwrap().entry(part).or_insert_with(|| json!({}));
    }
    if value.is_null() {
        node.as_object_mut().unwrap().remove(leaf);
    } else {
        node[leaf] = value;
    }
    object
}

async fn create(client: &kube::Client, ns: &str, object: &Value) -> Result<DynamicObject, kube::Error> {
    let kind = object["kind"].as_str().unwrap();
    let obj: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    api(client, ns, kind).create(&PostParams::default(), &obj).await
}

#[tokio::test]
async fn crds_install_and_apply_defaults() {
    let client = testenv::client().await.unwrap();
    support::install_crds().await;
    let ns = TestNamespace::create(&client, "crd-defaults").await.unwrap();
    let created = create(&client, &ns.name, &credential("defaults")).await.unwrap();
    let spec = &created.data["spec"];
    assert_eq!(spec["validityYears"], 10);
    assert_eq!(spec["renewBefore"], "720h");
    assert_eq!(spec["activation"], json!({"policy": "Automatic", "delay": "24h"}));
    assert_eq!(spec["retainPrevious"], "168h");
    assert_eq!(spec["secretDeletionPolicy"], "Retain");
    assert_eq!(spec["orgRef"]["kind"], "OktaOrg");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["expiryWarningDays"], json!([60, 30, 7]));
    let windowed = with(
        credential("windowed"),
        "/spec/activation/windows",
        json!([{"schedule": "30 2 * * TUE", "duration": "2h"}]),
    );
    let created = create(&client, &ns.name, &windowed).await.unwrap();
    assert_eq!(
        created.data["spec"]["activation"]["windows"],
        json!([{"schedule": "30 2 * * TUE", "duration": "2h", "timeZone": "UTC"}])
    );
    let sixteen: Vec<String> = (0..16).map(|i| format!("0oa{i}")).collect();
    let shared = with(credential("shared"), "/spec/additionalAppIds", json!(sixteen));
    let created = create(&client, &ns.name, &shared).await.unwrap();
    assert_eq!(created.data["spec"]["additionalAppIds"], json!(sixteen), "16 distinct apps are accepted");

    let org = create(&client, &ns.name, &with(org("OktaOrg", "acme"), "/spec/auth", json!({"oauth": {"clientId": "0oa1", "privateKeySecretRef": {"name": "okta-svc-key", "key": "private.pem"}}})))
        .await
        .unwrap();
    assert_eq!(org.data["spec"]["auth"]["oauth"]["scopes"], json!(["okta.apps.read", "okta.apps.manage"]));
    assert_eq!(org.data["spec"]["auth"]["oauth"]["dpop"], "Auto");
    assert_eq!(org.data["spec"]["rateLimit"]["maxShare"], 50);
}

#[tokio::test]
async fn bad_specs_are_rejected_naming_the_field() {
    let client = testenv::client().await.unwrap();
    support::install_crds().await;
    let ns = TestNamespace::create(&client, "crd-reject").await.unwrap();
    let sac = || credential("bad");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("validityYears below 2", with(sac(), "/spec/validityYears", json!(1)), "spec.validityYears"),
        ("validityYears above 10", with(sac(), "/spec/validityYears", json!(11)), "spec.validityYears"),
        ("renewBefore malformed", with(sac(), "/spec/renewBefore", json!("thirty days")), "spec.renewBefore"),
        ("renewBefore negative", with(sac(), "/spec/renewBefore", json!("-5h")), "spec.renewBefore"),
        ("renewBefore zero", with(sac(), "/spec/renewBefore", json!("0")), "spec.renewBefore"),
        (
            "renewBefore not shorter than the validity",
            with(with(sac(), "/spec/validityYears", json!(2)), "/spec/renewBefore", json!("17520h")),
            "spec.renewBefore",
        ),
        (
            "renewBefore over half of the validity: a fresh key would be due at once",
            with(with(sac(), "/spec/validityYears", json!(2)), "/spec/renewBefore", json!("9000h")),
            "spec.renewBefore: Invalid value: renewBefore must be at most half of the certificate validity",
        ),
        (
            "renewBefore above ten years",
            with(sac(), "/spec/renewBefore", json!("90000h")),
            "renewBefore must be at most 10 years (87600h)",
        ),
        (
            "activation.delay not shorter than renewBefore",
            with(with(sac(), "/spec/renewBefore", json!("48h")), "/spec/activation/delay", json!("48h")),
            "spec.activation.delay: Invalid value: activation.delay must be shorter than renewBefore",
        ),
        (
            "activation.delay above ten years",
            with(sac(), "/spec/activation/delay", json!("90000h")),
            "activation.delay must be at most 10 years (87600h)",
        ),
        (
            "retainPrevious above ten years",
            with(sac(), "/spec/retainPrevious", json!("87601h")),
            "retainPrevious must be at most 10 years (87600h)",
        ),
        ("activation.delay malformed", with(sac(), "/spec/activation/delay", json!("soon")), "spec.activation.delay"),
        (
            "activation.policy unknown",
            with(sac(), "/spec/activation/policy", json!("Sometimes")),
            "spec.activation.policy",
        ),
        (
            "activation window with a six-field schedule",
            with(sac(), "/spec/activation/windows", json!([{"schedule": "0 0 2 * * TUE", "duration": "1h"}])),
            "spec.activation.windows[0].schedule",
        ),
        (
            "activation window with a nickname schedule",
            with(sac(), "/spec/activation/windows", json!([{"schedule": "@daily", "duration": "1h"}])),
            "spec.activation.windows[0].schedule",
        ),
        (
            "activation window of zero duration",
            with(sac(), "/spec/activation/windows", json!([{"schedule": "0 2 * * *", "duration": "0s"}])),
            "an activation window's duration must be positive",
        ),
        (
            "activation window with a malformed duration",
            with(sac(), "/spec/activation/windows", json!([{"schedule": "0 2 * * *", "duration": "2 hours"}])),
            "spec.activation.windows[0].duration",
        ),
        (
            "activation window with a time zone that is not an IANA name",
            with(
                sac(),
                "/spec/activation/windows",
                json!([{"schedule": "0 2 * * *", "duration": "1h", "timeZone": "UTC+2 (Berlin)"}]),
            ),
            "spec.activation.windows[0].timeZone",
        ),
        (
            "expiryWarningDays of zero",
            with(sac(), "/spec/expiryWarningDays", json!([30, 0])),
            "expiryWarningDays must be between 1 and 3650",
        ),
        ("retainPrevious malformed", with(sac(), "/spec/retainPrevious", json!("1w")), "spec.retainPrevious"),
        ("secretName not a DNS name", with(sac(), "/spec/secretName", json!("Bad_Name")), "spec.secretName"),
        ("secretName missing", with(sac(), "/spec/secretName", Value::Null), "spec.secretName"),
        ("appId missing", with(sac(), "/spec/appId", Value::Null), "spec.appId"),
        ("orgRef.kind unknown", with(sac(), "/spec/orgRef/kind", json!("Organisation")), "spec.orgRef.kind"),
        (
            "secretDeletionPolicy unknown",
            with(sac(), "/spec/secretDeletionPolicy", json!("Shred")),
            "spec.secretDeletionPolicy",
        ),
        (
            "rolloutRestartTargets kind unknown",
            with(sac(), "/spec/rolloutRestartTargets", json!([{"kind": "Pod", "name": "grafana"}])),
            "spec.rolloutRestartTargets[0].kind",
        ),
        (
            "additionalAppIds naming appId",
            with(sac(), "/spec/additionalAppIds", json!(["0oa2", sac()["spec"]["appId"].clone()])),
            "spec.additionalAppIds: Invalid value: additionalAppIds must not name appId",
        ),
        (
            "additionalAppIds repeating an app",
            with(sac(), "/spec/additionalAppIds", json!(["0oa2", "0oa2"])),
            "additionalAppIds must not repeat an app",
        ),
        (
            "additionalAppIds with a malformed ID",
            with(sac(), "/spec/additionalAppIds", json!(["0oa2/../x"])),
            "spec.additionalAppIds[0]",
        ),
        (
            "additionalAppIds with more than 16 apps",
            with(sac(), "/spec/additionalAppIds", json!((0..17).map(|i| format!("0oa{i}")).collect::<Vec<_>>())),
            "spec.additionalAppIds",
        ),
        ("OktaOrg url not http(s)", with(org("OktaOrg", "bad"), "/spec/url", json!("ftp://acme.okta.com")), "spec.url"),
        (
            "OktaOrg with both auth methods",
            with(
                org("OktaOrg", "bad"),
                "/spec/auth/oauth",
                json!({"clientId": "0oa1", "privateKeySecretRef": {"name": "okta-svc-key", "key": "private.pem"}}),
            ),
            "exactly one of apiToken or oauth",
        ),
        (
            "OktaOrg with no auth",
            with(org("OktaOrg", "bad"), "/spec/auth", json!({})),
            "exactly one of apiToken or oauth",
        ),
        (
            "OktaOrg maxShare 0",
            with(org("OktaOrg", "bad"), "/spec/rateLimit/maxShare", json!(0)),
            "spec.rateLimit.maxShare",
        ),
        (
            "ClusterOktaOrg maxShare above 100",
            with(org("ClusterOktaOrg", "bad"), "/spec/rateLimit/maxShare", json!(101)),
            "spec.rateLimit.maxShare",
        ),
    ];
    let mut failures = Vec::new();
    for (case, object, field) in &cases {
        match create(&client, &ns.name, object).await {
            Ok(_) => failures.push(format!("{case}: accepted")),
            Err(kube::Error::Api(status)) if status.code == 422 && status.message.contains(field) => {}
            Err(e) => failures.push(format!("{case}: expected a 422 naming {field}, got {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[tokio::test]
async fn app_id_cannot_change() {
    let client = testenv::client().await.unwrap();
    support::install_crds().await;
    let ns = TestNamespace::create(&client, "crd-immutable").await.unwrap();
    create(&client, &ns.name, &credential("pinned")).await.unwrap();
    let sacs = api(&client, &ns.name, "SamlAppCredential");
    let patch = json!({"spec": {"appId": "0oaSomethingElse"}});
    let err = sacs.patch("pinned", &PatchParams::default(), &Patch::Merge(&patch)).await.expect_err("appId changed");
    let kube::Error::Api(status) = err else { panic!("unexpected error {err}") };
    assert_eq!(status.code, 422);
    assert!(status.message.contains("spec.appId") && status.message.contains("immutable"), "{}", status.message);
    // Other fields still change.
    let patch = json!({"spec": {"suspend": true}});
    let updated = sacs.patch("pinned", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    assert_eq!(updated.data["spec"]["suspend"], true);
}

#[tokio::test]
async fn printer_columns_short_name_and_category() {
    let client = testenv::client().await.unwrap();
    support::install_crds().await;
    let ns = TestNamespace::create(&client, "crd-columns").await.unwrap();
    create(&client, &ns.name, &credential("columns")).await.unwrap();
    let out = testenv::shared().kubectl().args(["get", "sac", "-n", &ns.name, "-o", "wide"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = text.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "APP", "SECRET", "EXPIRES", "RENEWAL", "READY", "AGE", "KID"], "{text}");
    let out = testenv::shared().kubectl().args(["get", "samlcred", "-n", &ns.name, "-o", "name"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("samlappcredential.samlcred.io/columns"));
}
