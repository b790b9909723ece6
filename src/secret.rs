//! The Secret samlcred publishes for the service providers: pure rendering, comparison and
//! ownership. The same keys give the same bytes; `metadata.xml` is made by [`crate::metadata`].
//!
//! The writer applies [`Rendered::to_secret`] with server-side apply under
//! [`crate::api::FIELD_MANAGER`]: it sends only samlcred's keys, so keys that others added to the
//! Secret stay untouched, and keys samlcred stops sending are removed by the API server.
//! [`merged_data`] computes the same result for a writer that replaces the whole object.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::{SecretTemplate, annotations, labels};
use crate::metadata::{self, MetadataError};

/// Data keys of the Secret.
pub const CERTIFICATE_PEM: &str = "certificate.pem";
pub const BUNDLE_PEM: &str = "bundle.pem";
pub const METADATA_XML: &str = "metadata.xml";
pub const JWKS_JSON: &str = "jwks.json";
pub const KID: &str = "kid";

/// The data keys samlcred owns in its Secret, besides one [`app_metadata_key`] per additional app.
pub const DATA_KEYS: [&str; 5] = [CERTIFICATE_PEM, BUNDLE_PEM, METADATA_XML, JWKS_JSON, KID];

/// The data key of an additional app's SAML metadata: `metadata-<appId>.xml`.
pub fn app_metadata_key(app_id: &str) -> String {
    format!("metadata-{app_id}.xml")
}

/// Whether samlcred owns this data key: one of [`DATA_KEYS`], or an additional app's metadata
/// (`metadata-*.xml`; app IDs are letters, digits, `_` and `-`).
pub fn is_data_key(key: &str) -> bool {
    DATA_KEYS.contains(&key)
        || key.strip_prefix("metadata-").and_then(|rest| rest.strip_suffix(".xml")).is_some_and(|app| {
            !app.is_empty() && app.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// One key credential, as the Secret shows it.
#[derive(Debug, Clone, Copy)]
pub struct KeyMaterial<'a> {
    pub kid: &'a str,
    /// The JWK exactly as Okta returned it.
    pub jwk: &'a Value,
    /// DER of the certificate (`x5c[0]`).
    pub certificate_der: &'a [u8],
    pub not_after: Timestamp,
    pub x5t_s256: &'a str,
}

/// Everything the Secret is made of.
#[derive(Debug, Clone)]
pub struct SecretInput<'a> {
    /// Name of the SamlAppCredential.
    pub credential: &'a str,
    pub app_id: &'a str,
    /// The key Okta signs with; `None` only while an app without one gets its first key.
    pub active: Option<KeyMaterial<'a>>,
    pub pending: Option<KeyMaterial<'a>>,
    /// Retained previous keys, in status order.
    pub previous: Vec<KeyMaterial<'a>>,
    /// Okta's SAML IdP metadata for the active kid, as Okta sent it.
    pub metadata_xml: Option<&'a str>,
    /// Each additional app's SAML IdP metadata, as Okta sent it: (app ID, document). The apps sign
    /// with the same keys, so each gets the same signing KeyDescriptors as `metadata.xml`.
    pub app_metadata: Vec<(&'a str, &'a str)>,
    pub template: Option<&'a SecretTemplate>,
}

/// What samlcred writes into the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub data: BTreeMap<String, ByteString>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The Secret's content. `metadata.xml` is Okta's metadata with a signing KeyDescriptor per
/// certificate of `bundle.pem`; a metadata document samlcred cannot publish is an error.
pub fn render(input: &SecretInput) -> Result<Rendered, MetadataError> {
    let keys: Vec<&KeyMaterial> = input.active.iter().chain(&input.pending).chain(&input.previous).collect();
    let mut data = BTreeMap::new();
    let mut put = |key: &str, value: Vec<u8>| data.insert(key.to_owned(), ByteString(value));
    put(BUNDLE_PEM, keys.iter().map(|key| pem(key.certificate_der)).collect::<String>().into_bytes());
    put(JWKS_JSON, jwks(&keys));

    let template = input.template.cloned().unwrap_or_default();
    let mut labels = template.labels;
    labels.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
    labels.insert(labels::CREDENTIAL.into(), input.credential.into());
    let mut annotations = template.annotations;
    annotations.insert(annotations::APP_ID.into(), input.app_id.into());

    if let Some(active) = &input.active {
        put(CERTIFICATE_PEM, pem(active.certificate_der).into_bytes());
        put(KID, active.kid.as_bytes().to_vec());
        if let Some(document) = input.metadata_xml {
            let certificates: Vec<&[u8]> = keys.iter().map(|key| key.certificate_der).collect();
            put(METADATA_XML, metadata::with_signing_certificates(document, &certificates)?.into_bytes());
        }
        for (app, document) in &input.app_metadata {
            let certificates: Vec<&[u8]> = keys.iter().map(|key| key.certificate_der).collect();
            put(&app_metadata_key(app), metadata::with_signing_certificates(document, &certificates)?.into_bytes());
        }
        annotations.insert(annotations::KID.into(), active.kid.into());
        annotations.insert(annotations::NOT_AFTER.into(), rfc3339(active.not_after));
        annotations.insert(annotations::X5T_S256.into(), active.x5t_s256.into());
    }
    // Lets a reader of the Secret's metadata alone (samlcred after a restart) tell that the data is
    // still what samlcred wrote.
    annotations.insert(annotations::SECRET_HASH.into(), data_hash(&data));
    Ok(Rendered { data, labels, annotations })
}

/// Hex SHA-256 over samlcred's data keys and values, in key order: the Secret's
/// `samlcred.io/secret-hash`, and the same annotation on restarted pod templates.
pub fn data_hash(data: &BTreeMap<String, ByteString>) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in data.iter().filter(|(key, _)| is_data_key(key)) {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.0.len() as u64).to_be_bytes());
        hasher.update(&value.0);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Rendered {
    /// The object to apply: only samlcred's fields.
    pub fn to_secret(&self, name: &str, namespace: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                labels: Some(self.labels.clone()),
                annotations: Some(self.annotations.clone()),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(self.data.clone()),
            ..Secret::default()
        }
    }
}

/// Whether `existing` already holds everything rendered, so that writing changes nothing. Keys
/// others added do not matter; a samlcred data key that is no longer rendered does.
pub fn is_current(existing: &Secret, rendered: &Rendered) -> bool {
    let empty = BTreeMap::new();
    let data = existing.data.as_ref().unwrap_or(&empty);
    let ours = data.keys().chain(rendered.data.keys()).filter(|key| is_data_key(key));
    let ours_match = ours.into_iter().all(|key| data.get(key) == rendered.data.get(key));
    let contains = |have: Option<&BTreeMap<String, String>>, want: &BTreeMap<String, String>| {
        want.iter().all(|(k, v)| have.and_then(|have| have.get(k)) == Some(v))
    };
    ours_match
        && contains(existing.metadata.labels.as_ref(), &rendered.labels)
        && contains(existing.metadata.annotations.as_ref(), &rendered.annotations)
}

/// The hash of samlcred's data in `existing` when that data is still what samlcred wrote (it
/// matches the Secret's own `samlcred.io/secret-hash`) and publishes `kids`, in bundle order. What
/// lets samlcred trust a Secret without rendering it, after a restart.
pub fn verified_hash(existing: &Secret, kids: &[&str]) -> Option<String> {
    let empty = BTreeMap::new();
    let data = existing.data.as_ref().unwrap_or(&empty);
    let hash = data_hash(data);
    let annotated = existing.metadata.annotations.as_ref().and_then(|a| a.get(annotations::SECRET_HASH));
    if annotated != Some(&hash) {
        return None;
    }
    let kid = data.get(KID).map(|v| v.0.as_slice());
    if kid != kids.first().map(|k| k.as_bytes()) {
        return None;
    }
    let jwks: Value = serde_json::from_slice(&data.get(JWKS_JSON)?.0).ok()?;
    let listed: Vec<&str> = jwks["keys"].as_array()?.iter().filter_map(|k| k["kid"].as_str()).collect();
    (listed == kids).then_some(hash)
}

/// The Secret's data after a write: what others added, with samlcred's keys replaced.
pub fn merged_data(existing: Option<&Secret>, rendered: &Rendered) -> BTreeMap<String, ByteString> {
    let mut data = existing.and_then(|secret| secret.data.clone()).unwrap_or_default();
    data.retain(|key, _| !is_data_key(key));
    data.extend(rendered.data.clone());
    data
}

/// Who the Secret named in the spec belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// No such Secret: samlcred creates it.
    Absent,
    /// samlcred made it for this credential.
    Ours,
    /// Someone else's, annotated `samlcred.io/adopt: "true"`: samlcred takes it over on its next write.
    Adoptable,
    /// Someone else's (another credential's, or not samlcred's at all): never modified.
    Foreign,
}

/// Who the Secret with this metadata belongs to (`None`: there is no such Secret).
pub fn ownership(existing: Option<&ObjectMeta>, credential: &str) -> Ownership {
    let Some(meta) = existing else {
        return Ownership::Absent;
    };
    let label = |key: &str| meta.labels.as_ref().and_then(|labels| labels.get(key)).map(String::as_str);
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|notes| notes.get(key)).map(String::as_str);
    match (label(labels::MANAGED_BY), label(labels::CREDENTIAL)) {
        (Some(labels::MANAGED_BY_VALUE), Some(owner)) if owner == credential => Ownership::Ours,
        // Another credential's Secret: adopting it would make the two fight over it.
        (Some(labels::MANAGED_BY_VALUE), Some(_)) => Ownership::Foreign,
        _ if annotation(annotations::ADOPT) == Some("true") => Ownership::Adoptable,
        _ => Ownership::Foreign,
    }
}

/// One PEM block, base64 wrapped at 64 columns.
pub fn pem(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn jwks(keys: &[&KeyMaterial]) -> Vec<u8> {
    let set = Value::Object(Map::from_iter([(
        "keys".to_owned(),
        Value::Array(keys.iter().map(|key| sorted(key.jwk)).collect()),
    )]));
    let mut out = serde_json::to_vec_pretty(&set).expect("JSON values serialize");
    out.push(b'\n');
    out
}

/// `value` with object members in key order, whatever order the map type keeps.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by_key(|(key, _)| *key);
            Value::Object(members.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn rfc3339(at: Timestamp) -> String {
    Timestamp::from_second(at.as_second()).unwrap_or(at).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    struct Fixture {
        jwks: [Value; 3],
        ders: [Vec<u8>; 3],
        template: SecretTemplate,
    }

    fn fixture() -> Fixture {
        let jwk = |kid: &str| json!({"kid": kid, "kty": "RSA", "use": "sig", "x5c": [kid], "e": "AQAB", "n": "xyz"});
        Fixture {
            jwks: [jwk("active"), jwk("pending"), jwk("previous")],
            ders: [vec![1u8; 100], vec![2u8; 10], vec![3u8; 48]],
            template: SecretTemplate {
                labels: BTreeMap::from([
                    ("team".into(), "sso".into()),
                    (labels::MANAGED_BY.into(), "someone-else".into()),
                ]),
                annotations: BTreeMap::from([("note".into(), "hi".into())]),
            },
        }
    }

    fn input(f: &Fixture) -> SecretInput<'_> {
        let key = |i: usize, kid: &'static str, not_after: &str| KeyMaterial {
            kid,
            jwk: &f.jwks[i],
            certificate_der: &f.ders[i],
            not_after: at(not_after),
            x5t_s256: "thumb",
        };
        SecretInput {
            credential: "grafana",
            app_id: "0oa1",
            active: Some(key(0, "active", "2036-01-01T00:00:00.5Z")),
            pending: Some(key(1, "pending", "2037-01-01T00:00:00Z")),
            previous: vec![key(2, "previous", "2030-01-01T00:00:00Z")],
            metadata_xml: Some(OKTA_METADATA),
            app_metadata: vec![],
            template: Some(&f.template),
        }
    }

    const OKTA_METADATA: &str = r#"<?xml version="1.0" encoding="UTF-8"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="http://www.okta.com/0oa1"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>AQEB</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="https://example.okta.com/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#;

    fn text(rendered: &Rendered, key: &str) -> String {
        String::from_utf8(rendered.data[key].0.clone()).unwrap()
    }

    #[test]
    fn pem_is_wrapped_at_64_columns() {
        let pem = pem(&[7u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        // 100 bytes are 136 base64 characters.
        assert_eq!(lines[1..lines.len() - 1].iter().map(|l| l.len()).collect::<Vec<_>>(), [64, 64, 8]);
        assert_eq!(STANDARD.decode(lines[1..4].concat()).unwrap(), vec![7u8; 100]);
        assert!(pem.ends_with("-----\n"));
    }

    #[test]
    fn data_holds_active_then_pending_then_previous() {
        let f = fixture();
        let rendered = render(&input(&f)).unwrap();
        assert_eq!(
            rendered.data.keys().collect::<Vec<_>>(),
            ["bundle.pem", "certificate.pem", "jwks.json", "kid", "metadata.xml"]
        );
        assert_eq!(text(&rendered, CERTIFICATE_PEM), pem(&f.ders[0]));
        assert_eq!(text(&rendered, BUNDLE_PEM), [pem(&f.ders[0]), pem(&f.ders[1]), pem(&f.ders[2])].concat());
        assert_eq!(text(&rendered, KID), "active");
        let metadata = text(&rendered, METADATA_XML);
        assert_eq!(metadata::signing_certificates(&metadata).unwrap(), f.ders);
        assert!(metadata.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><md:EntityDescriptor"#), "{metadata}");
        let jwks: Value = serde_json::from_slice(&rendered.data[JWKS_JSON].0).unwrap();
        assert_eq!(
            jwks["keys"].as_array().unwrap().iter().map(|k| &k["kid"]).collect::<Vec<_>>(),
            ["active", "pending", "previous"]
        );
        assert_eq!(jwks["keys"][1], f.jwks[1]);
    }

    #[test]
    fn metadata_that_cannot_be_published_is_an_error() {
        let f = fixture();
        let mut html = input(&f);
        html.metadata_xml = Some("<html><body>Service unavailable</body></html>");
        assert!(matches!(render(&html), Err(MetadataError::WrongRoot { .. })));
        // Without an active key there is no metadata.xml, so Okta's document does not matter.
        html.active = None;
        assert!(!render(&html).unwrap().data.contains_key(METADATA_XML));
    }

    #[test]
    fn labels_and_annotations_ours_win_over_the_template() {
        let f = fixture();
        let rendered = render(&input(&f)).unwrap();
        assert_eq!(
            rendered.labels,
            BTreeMap::from([
                (labels::MANAGED_BY.to_owned(), "samlcred".to_owned()),
                (labels::CREDENTIAL.to_owned(), "grafana".to_owned()),
                ("team".to_owned(), "sso".to_owned()),
            ])
        );
        assert_eq!(
            rendered.annotations,
            BTreeMap::from([
                (annotations::APP_ID.to_owned(), "0oa1".to_owned()),
                (annotations::KID.to_owned(), "active".to_owned()),
                (annotations::NOT_AFTER.to_owned(), "2036-01-01T00:00:00Z".to_owned()),
                (annotations::X5T_S256.to_owned(), "thumb".to_owned()),
                (annotations::SECRET_HASH.to_owned(), data_hash(&rendered.data)),
                ("note".to_owned(), "hi".to_owned()),
            ])
        );
        let secret = rendered.to_secret("idp", "apps");
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("apps"));
    }

    #[test]
    fn a_secret_is_verified_by_its_own_hash_and_kids() {
        let f = fixture();
        let rendered = render(&input(&f)).unwrap();
        let mut secret = rendered.to_secret("idp", "apps");
        let kids: Vec<String> = {
            let jwks: Value = serde_json::from_slice(&rendered.data[JWKS_JSON].0).unwrap();
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()
        };
        let kids: Vec<&str> = kids.iter().map(String::as_str).collect();
        assert_eq!(verified_hash(&secret, &kids), Some(data_hash(&rendered.data)));
        assert_eq!(verified_hash(&secret, &kids[..1]), None, "a bundle with other kids than status says");
        secret.data.as_mut().unwrap().insert(BUNDLE_PEM.into(), ByteString(b"edited".to_vec()));
        assert_eq!(verified_hash(&secret, &kids), None, "data edited after samlcred wrote it");
    }

    #[test]
    fn the_same_keys_give_the_same_bytes() {
        let f = fixture();
        let first = render(&input(&f)).unwrap();
        assert_eq!(first, render(&input(&f)).unwrap());
        // Member order in Okta's answer does not matter.
        let shuffled = json!({"x5c": ["active"], "use": "sig", "n": "xyz", "kty": "RSA", "kid": "active", "e": "AQAB"});
        let mut reordered = input(&f);
        reordered.active.as_mut().unwrap().jwk = &shuffled;
        assert_eq!(render(&reordered).unwrap().data[JWKS_JSON], first.data[JWKS_JSON]);
        let expected_start = "{\n  \"keys\": [\n    {\n      \"e\": \"AQAB\",\n      \"kid\": \"active\",";
        assert!(text(&first, JWKS_JSON).starts_with(expected_start), "{}", text(&first, JWKS_JSON));
        assert!(text(&first, JWKS_JSON).ends_with("]\n}\n"));
    }

    #[test]
    fn without_an_active_key_only_the_bundle_is_published() {
        let f = fixture();
        let mut no_active = input(&f);
        no_active.active = None;
        let rendered = render(&no_active).unwrap();
        assert_eq!(rendered.data.keys().collect::<Vec<_>>(), ["bundle.pem", "jwks.json"]);
        assert_eq!(text(&rendered, BUNDLE_PEM), [pem(&f.ders[1]), pem(&f.ders[2])].concat());
        assert!(!rendered.annotations.contains_key(annotations::KID));
    }

    #[test]
    fn current_ignores_what_others_added_but_not_stale_keys_of_ours() {
        let f = fixture();
        let rendered = render(&input(&f)).unwrap();
        let mut secret = rendered.to_secret("idp", "apps");
        secret.data.as_mut().unwrap().insert("extra".into(), ByteString(b"theirs".to_vec()));
        secret.metadata.labels.as_mut().unwrap().insert("other".into(), "x".into());
        assert!(is_current(&secret, &rendered));

        let mut changed = secret.clone();
        changed.data.as_mut().unwrap().insert(KID.into(), ByteString(b"old".to_vec()));
        assert!(!is_current(&changed, &rendered));

        let mut unlabelled = secret.clone();
        unlabelled.metadata.labels.as_mut().unwrap().remove(labels::CREDENTIAL);
        assert!(!is_current(&unlabelled, &rendered));

        let mut without_active = input(&f);
        without_active.active = None;
        assert!(!is_current(&secret, &render(&without_active).unwrap()), "certificate.pem must go");

        let merged = merged_data(Some(&changed), &rendered);
        assert_eq!(merged["extra"].0, b"theirs");
        assert_eq!(merged[KID].0, b"active");
        assert_eq!(merged.len(), 6);
    }

    #[test]
    fn each_additional_app_gets_its_own_metadata_with_the_shared_keys() {
        let f = fixture();
        let other = OKTA_METADATA.replace("http://www.okta.com/0oa1", "http://www.okta.com/0oa2");
        let mut shared = input(&f);
        shared.app_metadata = vec![("0oa2", other.as_str())];
        let rendered = render(&shared).unwrap();
        let app_metadata = text(&rendered, "metadata-0oa2.xml");
        assert!(app_metadata.contains(r#"entityID="http://www.okta.com/0oa2""#), "{app_metadata}");
        assert_eq!(metadata::signing_certificates(&app_metadata).unwrap(), f.ders, "same keys as bundle.pem");
        assert_eq!(text(&rendered, METADATA_XML), text(&render(&input(&f)).unwrap(), METADATA_XML));
        // The app's entry is samlcred's: it is hashed, compared and replaced like the others.
        let alone = render(&input(&f)).unwrap();
        assert_ne!(data_hash(&rendered.data), data_hash(&alone.data));
        let secret = rendered.to_secret("idp", "apps");
        assert!(is_current(&secret, &rendered));
        assert!(!is_current(&secret, &alone), "an app dropped from the spec loses its entry");
        assert!(!merged_data(Some(&secret), &alone).contains_key("metadata-0oa2.xml"));
        assert!(is_data_key("metadata-0oa2.xml") && !is_data_key("metadata-.xml") && !is_data_key("metadata-a/b.xml"));
        assert!(!is_data_key("idp-metadata.xml"));
    }

    #[test]
    fn ownership_of_the_secret() {
        let secret = |labels: &[(&str, &str)], annotations: &[(&str, &str)]| Secret {
            metadata: ObjectMeta {
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..ObjectMeta::default()
            },
            ..Secret::default()
        };
        let ours = [(labels::MANAGED_BY, "samlcred"), (labels::CREDENTIAL, "grafana")];
        let cases = [
            (None, Ownership::Absent),
            (Some(secret(&ours, &[])), Ownership::Ours),
            (Some(secret(&[], &[])), Ownership::Foreign),
            (Some(secret(&[], &[(annotations::ADOPT, "true")])), Ownership::Adoptable),
            (Some(secret(&[], &[(annotations::ADOPT, "yes")])), Ownership::Foreign),
            (
                Some(secret(
                    &[(labels::MANAGED_BY, "samlcred"), (labels::CREDENTIAL, "other")],
                    &[(annotations::ADOPT, "true")],
                )),
                Ownership::Foreign,
            ),
            (Some(secret(&[(labels::CREDENTIAL, "grafana")], &[])), Ownership::Foreign),
        ];
        for (i, (existing, want)) in cases.iter().enumerate() {
            assert_eq!(ownership(existing.as_ref().map(|s| &s.metadata), "grafana"), *want, "case {i}");
        }
    }
}
