use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;

fn schema(crd: &CustomResourceDefinition) -> Value {
    let version = &crd.spec.versions[0];
    serde_json::to_value(version.schema.as_ref().unwrap().open_api_v3_schema.as_ref().unwrap()).unwrap()
}

fn spec_property(crd: &CustomResourceDefinition, name: &str) -> Value {
    schema(crd)["properties"]["spec"]["properties"][name].clone()
}

fn rules(schema: &Value) -> Vec<(String, String)> {
    let rules = schema["x-kubernetes-validations"].as_array().cloned().unwrap_or_default();
    rules.iter().map(|r| (r["rule"].as_str().unwrap().into(), r["message"].as_str().unwrap().into())).collect()
}

#[test]
fn crds_yaml_is_three_documents_in_a_fixed_order() {
    let yaml = crds_yaml();
    assert_eq!(yaml, crds_yaml());
    let names: Vec<&str> = yaml.lines().filter_map(|l| l.strip_prefix("  name: ")).collect();
    assert_eq!(names, ["oktaorgs.samlcred.io", "clusteroktaorgs.samlcred.io", "samlappcredentials.samlcred.io"]);
    assert_eq!(yaml.matches("\n---\n").count(), 2);
}

#[test]
fn names_and_scopes() {
    let sac = SamlAppCredential::crd();
    assert_eq!(sac.spec.group, "samlcred.io");
    assert_eq!(sac.spec.versions[0].name, "v1alpha1");
    assert_eq!(sac.spec.scope, "Namespaced");
    assert_eq!(sac.spec.names.short_names, Some(vec!["sac".to_owned()]));
    assert_eq!(sac.spec.names.categories, Some(vec!["samlcred".to_owned()]));
    assert_eq!(OktaOrg::crd().spec.scope, "Namespaced");
    assert_eq!(ClusterOktaOrg::crd().spec.scope, "Cluster");
    assert!(sac.spec.versions[0].subresources.as_ref().unwrap().status.is_some());
}

#[test]
fn printer_columns() {
    let crd = SamlAppCredential::crd();
    let columns = crd.spec.versions[0].additional_printer_columns.clone().unwrap();
    let got: Vec<(&str, &str, i32)> =
        columns.iter().map(|c| (c.name.as_str(), c.json_path.as_str(), c.priority.unwrap_or(0))).collect();
    assert_eq!(
        got,
        [
            ("App", ".spec.appId", 0),
            ("Secret", ".spec.secretName", 0),
            ("Expires", ".status.activeKey.notAfter", 0),
            ("Renewal", ".status.renewalTime", 0),
            ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#, 0),
            ("Age", ".metadata.creationTimestamp", 0),
            ("Kid", ".status.activeKey.kid", 1),
        ]
    );
}

#[test]
fn a_minimal_credential_gets_the_documented_defaults() {
    let spec: SamlAppCredentialSpec =
        serde_json::from_value(json!({"orgRef": {"name": "acme"}, "appId": "0oa1", "secretName": "idp"})).unwrap();
    assert_eq!(spec.org_ref.kind, OrgKind::OktaOrg);
    assert_eq!(spec.validity_years, 10);
    assert_eq!(spec.renew_before, "720h");
    assert_eq!(
        spec.activation,
        Activation {
            policy: ActivationPolicy::Automatic,
            delay: "24h".into(),
            wait_for_rollout: None,
            windows: vec![]
        }
    );
    assert_eq!(spec.retain_previous, "168h");
    assert_eq!(spec.secret_deletion_policy, SecretDeletionPolicy::Retain);
    assert!(!spec.suspend);
    assert!(spec.rollout_restart_targets.is_empty());
    assert_eq!(spec.expiry_warning_days, [60, 30, 7]);
}

#[test]
fn the_api_server_applies_the_same_defaults_as_serde() {
    let crd = SamlAppCredential::crd();
    assert_eq!(spec_property(&crd, "validityYears")["default"], json!(10));
    assert_eq!(spec_property(&crd, "renewBefore")["default"], json!("720h"));
    assert_eq!(spec_property(&crd, "retainPrevious")["default"], json!("168h"));
    assert_eq!(spec_property(&crd, "activation")["default"], json!({"policy": "Automatic", "delay": "24h"}));
    assert_eq!(spec_property(&crd, "secretDeletionPolicy")["default"], json!("Retain"));
    assert_eq!(spec_property(&crd, "suspend")["default"], json!(false));
    assert_eq!(spec_property(&crd, "orgRef")["properties"]["kind"]["default"], json!("OktaOrg"));

    let org = OktaOrg::crd();
    let oauth = &spec_property(&org, "auth")["properties"]["oauth"]["properties"];
    assert_eq!(oauth["scopes"]["default"], json!(["okta.apps.read", "okta.apps.manage"]));
    assert_eq!(oauth["dpop"]["default"], json!("Auto"));
    assert_eq!(spec_property(&org, "rateLimit")["default"], json!({"maxShare": 50}));
}

#[test]
fn default_durations_parse_and_respect_the_renewal_rule() {
    let spec: SamlAppCredentialSpec =
        serde_json::from_value(json!({"orgRef": {"name": "acme"}, "appId": "0oa1", "secretName": "idp"})).unwrap();
    let renew_before = duration::parse(&spec.renew_before).unwrap();
    let validity = std::time::Duration::from_secs(spec.validity_years as u64 * 8760 * 3600);
    assert!(renew_before < validity);
    duration::parse(&spec.activation.delay).unwrap();
    duration::parse(&spec.retain_previous).unwrap();
}

#[test]
fn validation_rules_name_their_field() {
    let crd = SamlAppCredential::crd();
    let spec = &schema(&crd)["properties"]["spec"];
    assert_eq!(
        rules(spec),
        [
            (
                "duration(self.renewBefore).getHours() * 2 <= self.validityYears * 8760".to_owned(),
                crate::api::credential::RENEW_BEFORE_HALF_VALIDITY.to_owned()
            ),
            (
                "!has(self.activation) || !has(self.activation.delay) || duration(self.activation.delay) < duration(self.renewBefore)".to_owned(),
                crate::api::credential::DELAY_BELOW_RENEW_BEFORE.to_owned()
            ),
            (
                "!has(self.additionalAppIds) || !(self.appId in self.additionalAppIds)".to_owned(),
                crate::api::credential::ADDITIONAL_APP_IDS_DISTINCT.to_owned()
            )
        ]
    );
    let additional = spec_property(&crd, "additionalAppIds");
    assert_eq!(
        rules(&additional),
        [("self.all(x, self.exists_one(y, y == x))".into(), "additionalAppIds must not repeat an app".into())]
    );
    assert_eq!(additional["maxItems"], json!(16));
    assert_eq!(additional["items"]["pattern"], json!("^[A-Za-z0-9_-]+$"));
    assert_eq!(rules(&spec_property(&crd, "appId")), [("self == oldSelf".into(), "appId is immutable".into())]);
    assert_eq!(rules(&spec_property(&crd, "renewBefore"))[0].1, "renewBefore must be positive");
    for field in ["renewBefore", "retainPrevious"] {
        assert_eq!(spec_property(&crd, field)["pattern"], json!(duration::PATTERN), "{field}");
        assert_eq!(spec_property(&crd, field)["maxLength"], json!(32), "{field}");
    }
    assert_eq!(spec_property(&crd, "activation")["properties"]["delay"]["pattern"], json!(duration::PATTERN));
    assert_eq!(spec_property(&crd, "validityYears")["minimum"], json!(2.0));
    assert_eq!(spec_property(&crd, "validityYears")["maximum"], json!(10.0));
    assert_eq!(spec_property(&crd, "secretName")["maxLength"], json!(253));
    assert_eq!(spec_property(&crd, "orgRef")["properties"]["kind"]["enum"], json!(["OktaOrg", "ClusterOktaOrg"]));

    for org in [OktaOrg::crd(), ClusterOktaOrg::crd()] {
        assert_eq!(
            rules(&spec_property(&org, "auth")),
            [("has(self.apiToken) != has(self.oauth)".into(), "auth must set exactly one of apiToken or oauth".into())]
        );
        assert_eq!(spec_property(&org, "rateLimit")["properties"]["maxShare"]["minimum"], json!(1.0));
        assert_eq!(spec_property(&org, "url")["pattern"], json!(r"^https?://[^\s/]+(/\S*)?$"));
    }
}

#[test]
fn conditions_merge_by_type_under_server_side_apply() {
    for crd in [SamlAppCredential::crd(), OktaOrg::crd()] {
        let conditions = &schema(&crd)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], json!("map"));
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    fn walk(path: &str, schema: &Value, missing: &mut Vec<String>) {
        if schema.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            missing.push(path.to_owned());
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                walk(&format!("{path}.{name}"), property, missing);
            }
        }
        // Items of a list of strings need no words of their own.
        if let Some(items) = schema.get("items").filter(|items| items["type"] == "object") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    for crd in [SamlAppCredential::crd(), OktaOrg::crd(), ClusterOktaOrg::crd()] {
        let mut missing = vec![];
        for part in ["spec", "status"] {
            walk(part, &schema(&crd)["properties"][part], &mut missing);
        }
        assert!(missing.is_empty(), "{}: undocumented {missing:?}", crd.spec.names.kind);
    }
}

#[test]
fn cluster_org_spec_is_flat_on_the_wire() {
    let spec: ClusterOktaOrgSpec = serde_json::from_value(json!({
        "url": "https://acme.okta.com",
        "auth": {"apiToken": {"secretRef": {"name": "okta", "key": "token"}}},
        "namespaceSelector": {"matchLabels": {"team": "a"}},
    }))
    .unwrap();
    assert_eq!(spec.org.url, "https://acme.okta.com");
    assert_eq!(spec.org.rate_limit.max_share, 50);
    let wire = serde_json::to_value(&spec).unwrap();
    assert_eq!(wire["url"], json!("https://acme.okta.com"));
    assert_eq!(wire["namespaceSelector"]["matchLabels"]["team"], json!("a"));
    let cluster = ClusterOktaOrg::crd();
    assert!(spec_property(&cluster, "namespaceSelector").is_object());
    assert!(spec_property(&cluster, "url").is_object());
}

#[test]
fn status_round_trips_with_camel_case_names() {
    let wire = json!({
        "activeKey": {"kid": "a", "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2036-01-01T00:00:00Z", "x5tS256": "t"},
        "pendingKey": {"kid": "p", "notAfter": "2036-06-01T00:00:00Z", "x5tS256": "u", "activateAfter": "2026-06-02T00:00:00Z"},
        "previousKeys": [{"kid": "o", "notAfter": "2030-01-01T00:00:00Z", "x5tS256": "v", "retainUntil": "2026-06-09T00:00:00Z"}],
        "rotation": {"phase": "Published", "trigger": "Manual", "startedAt": "2026-06-01T00:00:00Z"},
        "lastRotateToken": "x",
        "failedAttempts": 2,
    });
    let status: SamlAppCredentialStatus = serde_json::from_value(wire.clone()).unwrap();
    assert_eq!(status.rotation.as_ref().unwrap().phase, RotationPhase::Published);
    assert_eq!(serde_json::to_value(&status).unwrap(), wire);
    // An empty status writes nothing, so applying it twice is no churn.
    assert_eq!(serde_json::to_value(SamlAppCredentialStatus::default()).unwrap(), json!({}));
}
