//! Contract test: every kind of body the simulator answers with is checked against the schema
//! that Okta's spec (../shared/okta/management-minimal.yaml, read at test time) gives for that
//! operation and status.
//!
//! Two checks per body: JSON Schema validation (types, formats, enums, required) with the
//! `jsonschema` crate after turning OpenAPI 3.0 into JSON Schema, and a stricter check of our own
//! that every property the simulator sends is declared by the schema. Okta's schemas allow extra
//! properties, so without the second check a renamed field would pass unnoticed.

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use common::*;
use okta_sim::{Fault, FaultKind};
use serde_json::{Map, Value, json};

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/okta/management-minimal.yaml");

fn spec() -> &'static Value {
    static SPEC_VALUE: OnceLock<Value> = OnceLock::new();
    SPEC_VALUE.get_or_init(|| {
        let text = std::fs::read_to_string(SPEC).unwrap_or_else(|e| {
            panic!("the contract test needs Okta's spec at {SPEC} (shared/okta/ beside the repository): {e}")
        });
        let options = serde_saphyr::options! { budget: None };
        serde_saphyr::from_str_with_options(&text, options).unwrap_or_else(|e| panic!("{SPEC} does not parse: {e}"))
    })
}

fn component(kind: &str, name: &str) -> &'static Value {
    spec()["components"][kind].get(name).unwrap_or_else(|| panic!("no components.{kind}.{name} in the spec"))
}

fn ref_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap()
}

/// The response schema the spec gives for `operation_id` and `status`, and its content types.
/// Statuses the operation does not declare (401, 405, 500 for most) fall back to `Error`, the
/// body Okta uses for all its errors.
fn response_schema(operation_id: &str, status: u16) -> (Value, Vec<String>) {
    let operation = spec()["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .find(|op| op.get("operationId").and_then(Value::as_str) == Some(operation_id))
        .unwrap_or_else(|| panic!("no operation {operation_id} in the spec"));
    let Some(mut response) = operation["responses"].get(status.to_string()).cloned() else {
        assert!(status >= 400, "{operation_id} does not declare {status}");
        return (json!({"$ref": "#/components/schemas/Error"}), vec!["application/json".into()]);
    };
    if let Some(reference) = response.get("$ref").and_then(Value::as_str) {
        response = component("responses", ref_name(reference)).clone();
    }
    let content = response["content"].as_object().expect("response content");
    let types: Vec<String> = content.keys().cloned().collect();
    let schema = content.values().next().unwrap()["schema"].clone();
    (schema, types)
}

/// OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a `null` type; `discriminator`
/// and `example` go (they are not JSON Schema); `$ref`s are collected to be bundled.
fn to_json_schema(schema: &Value, refs: &mut BTreeSet<String>) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                match key.as_str() {
                    "discriminator" | "example" | "nullable" => {}
                    "$ref" => {
                        let name = ref_name(value.as_str().unwrap()).to_string();
                        out.insert(key.clone(), json!(format!("#/$defs/{name}")));
                        refs.insert(name);
                    }
                    // Property names are data, not schemas.
                    "properties" => {
                        let props = value.as_object().unwrap();
                        let converted = props.iter().map(|(k, v)| (k.clone(), to_json_schema(v, refs))).collect();
                        out.insert(key.clone(), Value::Object(converted));
                    }
                    _ => {
                        out.insert(key.clone(), to_json_schema(value, refs));
                    }
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = out.get("type").cloned()
            {
                out.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| to_json_schema(v, refs)).collect()),
        other => other.clone(),
    }
}

/// A self-contained JSON Schema for `schema`, with every schema it references under `$defs`.
fn bundle(schema: &Value) -> Value {
    let mut refs = BTreeSet::new();
    let mut root = to_json_schema(schema, &mut refs);
    let mut defs = Map::new();
    let mut pending: Vec<String> = refs.iter().cloned().collect();
    while let Some(name) = pending.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        let mut found = BTreeSet::new();
        defs.insert(name.clone(), to_json_schema(component("schemas", &name), &mut found));
        pending.extend(found.into_iter().filter(|n| !defs.contains_key(n)));
    }
    root["$defs"] = Value::Object(defs);
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root
}

/// Follows `$ref`s and OpenAPI discriminators (the Apps API answers a `SamlApplication` where
/// the spec says `Application`) to the schema that describes `instance`. Inside an `allOf`
/// the discriminator is not followed again: `SamlApplication` is `allOf: [Application, ...]`.
fn resolve<'a>(schema: &'a Value, instance: &Value, discriminate: bool) -> &'a Value {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
        return schema;
    };
    let target = component("schemas", ref_name(reference));
    if let Some(discriminator) = target.get("discriminator").filter(|_| discriminate) {
        let property = discriminator["propertyName"].as_str().unwrap();
        if let Some(mapped) =
            instance.get(property).and_then(Value::as_str).and_then(|v| discriminator["mapping"].get(v))
        {
            let mapped = component("schemas", ref_name(mapped.as_str().unwrap()));
            return mapped;
        }
    }
    target
}

/// Properties a schema declares (through `allOf`), or `None` when it allows any.
fn declared_properties(schema: &Value, instance: &Value, discriminate: bool, out: &mut Map<String, Value>) -> bool {
    let schema = resolve(schema, instance, discriminate);
    if schema.get("additionalProperties").is_some_and(|a| a != &Value::Bool(false)) {
        return false;
    }
    let mut strict = true;
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            out.entry(name.clone()).or_insert_with(|| sub.clone());
        }
    }
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        strict &= declared_properties(part, instance, false, out);
    }
    if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
        return false;
    }
    strict && (schema.get("properties").is_some() || schema.get("allOf").is_some())
}

/// Every property in `instance` must be declared by `schema`: a renamed field fails here.
fn undeclared_properties(schema: &Value, instance: &Value, path: &str, problems: &mut Vec<String>) {
    match instance {
        Value::Object(map) => {
            let mut declared = Map::new();
            let strict = declared_properties(schema, instance, true, &mut declared);
            for (key, value) in map {
                match declared.get(key) {
                    Some(sub) => undeclared_properties(sub, value, &format!("{path}/{key}"), problems),
                    None if strict => problems.push(format!("{path}/{key} is not in the spec's schema")),
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            let schema = resolve(schema, instance, true);
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    undeclared_properties(item_schema, item, &format!("{path}/{i}"), problems);
                }
            }
        }
        _ => {}
    }
}

/// Validates one answer; returns the problems found (empty: it conforms).
fn check(operation_id: &str, status: u16, content_type: &str, body: &str) -> Vec<String> {
    let (schema, types) = response_schema(operation_id, status);
    let mut problems = Vec::new();
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !types.iter().any(|t| t == media) {
        problems.push(format!("content type {media} is not one of {types:?}"));
    }
    let instance: Value = if media == "application/json" {
        match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => return vec![format!("body is not JSON: {e}")],
        }
    } else {
        Value::String(body.to_string())
    };
    // The discriminator picks the concrete schema before JSON Schema sees it.
    let concrete = match &schema {
        s if s.get("$ref").is_some() => {
            json!({"$ref": format!("#/components/schemas/{}", ref_name(resolve_name(s, &instance)))})
        }
        s if s.get("items").is_some_and(|i| i.get("$ref").is_some()) => {
            let first = instance.as_array().and_then(|a| a.first()).cloned().unwrap_or(Value::Null);
            json!({"type": "array", "items": {"$ref": format!("#/components/schemas/{}", resolve_name(&s["items"], &first))}})
        }
        s => s.clone(),
    };
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&bundle(&concrete))
        .unwrap_or_else(|e| panic!("schema for {operation_id} {status} does not compile: {e}"));
    for error in validator.iter_errors(&instance) {
        problems.push(format!("{}: {error}", error.instance_path()));
    }
    undeclared_properties(&concrete, &instance, "", &mut problems);
    problems
}

fn resolve_name<'a>(schema: &'a Value, instance: &Value) -> &'a str {
    let reference = schema["$ref"].as_str().unwrap();
    let target = component("schemas", ref_name(reference));
    if let Some(d) = target.get("discriminator") {
        let property = d["propertyName"].as_str().unwrap();
        if let Some(mapped) = instance.get(property).and_then(Value::as_str).and_then(|v| d["mapping"].get(v)) {
            return ref_name(mapped.as_str().unwrap());
        }
    }
    ref_name(reference)
}

struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

async fn answer(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    Answer { status, content_type, body: response.text().await.unwrap() }
}

#[test]
fn the_strict_check_catches_a_renamed_property() {
    let schema = json!({"$ref": "#/components/schemas/JsonWebKey"});
    let good = json!({"kid": "k", "kty": "RSA", "x5t#S256": "t", "expiresAt": "2030-01-01T00:00:00.000Z"});
    let mut problems = Vec::new();
    undeclared_properties(&schema, &good, "", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let renamed = json!({"keyId": "k", "kty": "RSA"});
    undeclared_properties(&schema, &renamed, "", &mut problems);
    assert_eq!(problems, ["/keyId is not in the spec's schema"]);
}

#[test]
fn the_jwk_has_exactly_the_fields_of_oktas_example() {
    // The spec's example spells one key `x5t#S256"` (see shared/okta/NOTICE.md); real answers,
    // like the seed page, say `x5t#S256`.
    let example = &component("examples", "KeyCredentialExample")["value"];
    let fields: BTreeSet<String> =
        example.as_object().unwrap().keys().map(|k| k.trim_end_matches('"').to_string()).collect();
    let now: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let key = okta_sim::keys::issue("org", now, now + days(730), now).unwrap();
    let ours: BTreeSet<String> = key.to_jwk().as_object().unwrap().keys().cloned().collect();
    assert_eq!(ours, fields);
}

#[tokio::test]
async fn every_answer_conforms_to_the_spec_for_its_operation() {
    let sim = start().await;
    let app = seed(&sim, "Contract", 2);
    let bare = seed(&sim, "Bare", 0);
    let http = client();
    let base = sim.base_url();
    let app_url = format!("{base}/api/v1/apps/{}", app.id);
    let keys_url = format!("{app_url}/credentials/keys");
    let put_body =
        json!({"label": "Contract", "signOnMode": "SAML_2_0", "credentials": {"signing": {"kid": app.kids[1]}}});

    let mut cases: Vec<(&str, u16, Answer)> = vec![
        ("listApplications", 200, answer(ssws(http.get(format!("{base}/api/v1/apps?limit=5")))).await),
        ("getApplication", 200, answer(ssws(http.get(&app_url))).await),
        ("getApplication", 200, answer(ssws(http.get(format!("{base}/api/v1/apps/{}", bare.id)))).await),
        ("getApplication", 404, answer(ssws(http.get(format!("{base}/api/v1/apps/0oanone")))).await),
        ("getApplication", 401, answer(http.get(&app_url)).await),
        ("replaceApplication", 200, answer(ssws(http.put(&app_url)).json(&put_body)).await),
        (
            "replaceApplication",
            400,
            answer(
                ssws(http.put(&app_url)).json(
                    &json!({"label": "x", "signOnMode": "SAML_2_0", "credentials": {"signing": {"kid": "nope"}}}),
                ),
            )
            .await,
        ),
        (
            "replaceApplication",
            404,
            answer(ssws(http.put(format!("{base}/api/v1/apps/0oanone"))).json(&put_body)).await,
        ),
        ("listApplicationKeys", 200, answer(ssws(http.get(&keys_url))).await),
        ("getApplicationKey", 200, answer(ssws(http.get(format!("{keys_url}/{}", app.kids[0])))).await),
        ("getApplicationKey", 404, answer(ssws(http.get(format!("{keys_url}/nope")))).await),
        ("generateApplicationKey", 201, answer(ssws(http.post(format!("{keys_url}/generate?validityYears=5")))).await),
        ("generateApplicationKey", 400, answer(ssws(http.post(format!("{keys_url}/generate?validityYears=12")))).await),
        (
            "generateApplicationKey",
            404,
            answer(ssws(http.post(format!("{base}/api/v1/apps/0oanone/credentials/keys/generate?validityYears=5"))))
                .await,
        ),
        (
            "cloneApplicationKey",
            201,
            answer(ssws(http.post(format!("{keys_url}/{}/clone?targetAid={}", app.kids[0], bare.id)))).await,
        ),
        (
            "cloneApplicationKey",
            400,
            answer(ssws(http.post(format!("{keys_url}/{}/clone?targetAid={}", app.kids[0], bare.id)))).await,
        ),
        (
            "previewSAMLmetadataForApplication",
            200,
            answer(ssws(http.get(format!("{app_url}/sso/saml/metadata?kid={}", app.kids[0])))).await,
        ),
        (
            "previewSAMLmetadataForApplication",
            404,
            answer(ssws(http.get(format!("{app_url}/sso/saml/metadata?kid=nope")))).await,
        ),
        ("listApplicationKeys", 405, answer(ssws(http.delete(&keys_url))).await),
    ];

    // 403: a token without the manage scope.
    let key = ClientKey::ec();
    sim.add_oauth_client(okta_sim::OAuthClient {
        client_id: "0oaro".into(),
        public_jwk: key.public_jwk.clone(),
        scopes: vec!["okta.apps.read".into()],
        require_dpop: false,
    });
    let token = json_of(
        token_request(
            &http,
            &base,
            &key.assertion("0oaro", &format!("{base}/oauth2/v1/token")),
            "okta.apps.read",
            None,
        )
        .await,
    )
    .await;
    let access = token["access_token"].as_str().unwrap().to_string();
    cases.push((
        "generateApplicationKey",
        403,
        answer(http.post(format!("{keys_url}/generate?validityYears=5")).bearer_auth(&access)).await,
    ));
    // 500 and 429 through a fault and a tight limit.
    sim.inject_fault(Fault {
        method: None,
        path_prefix: app_url.trim_start_matches(&base).to_string(),
        count: 1,
        kind: FaultKind::Status { status: 500, error_code: "E0000009".into(), summary: "Internal Server Error".into() },
    });
    cases.push(("getApplication", 500, answer(ssws(http.get(&app_url))).await));
    sim.set_rate_limits(okta_sim::RateLimits {
        app_instance: okta_sim::BucketLimit::per_minute(0),
        ..okta_sim::RateLimits::unlimited()
    });
    cases.push(("getApplication", 429, answer(ssws(http.get(&app_url))).await));

    let mut failures = Vec::new();
    for (operation, status, answer) in &cases {
        assert_eq!(answer.status, *status, "{operation}: unexpected status, body {}", answer.body);
        for problem in check(operation, *status, &answer.content_type, &answer.body) {
            failures.push(format!("{operation} {status}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "answers that do not match Okta's spec:\n{}", failures.join("\n"));
}
