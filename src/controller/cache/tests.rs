use super::*;
use crate::api::SamlAppCredentialSpec;

fn credential(ns: &str, name: &str, uid: &str, secret: &str, app: &str, org: &str) -> SamlAppCredential {
    let spec: SamlAppCredentialSpec = serde_json::from_value(serde_json::json!({
        "orgRef": {"name": org}, "appId": app, "secretName": secret
    }))
    .unwrap();
    let mut credential = SamlAppCredential::new(name, spec);
    credential.metadata.namespace = Some(ns.into());
    credential.metadata.uid = Some(uid.into());
    credential
}

fn names(refs: Vec<ObjectRef<SamlAppCredential>>) -> Vec<String> {
    let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
    names.sort();
    names
}

fn org(ns: &str, name: &str) -> OrgKey {
    OrgKey { kind: OrgKind::OktaOrg, namespace: Some(ns.into()), name: name.into() }
}

#[test]
fn files_credentials_by_secret_app_and_org() {
    let index = Index::default();
    index.observe(&watcher::Event::Apply(credential("a", "one", "u1", "s", "app1", "acme")));
    index.observe(&watcher::Event::Apply(credential("a", "two", "u2", "s2", "app1", "acme")));
    index.observe(&watcher::Event::Apply(credential("b", "three", "u3", "s", "app2", "acme")));
    assert_eq!(names(index.by_secret("a", "s")), ["one"]);
    assert_eq!(names(index.by_secret("b", "s")), ["three"]);
    assert_eq!(names(index.by_app("app1")), ["one", "two"]);
    assert_eq!(names(index.by_org(&org("a", "acme"))), ["one", "two"]);
    assert_eq!(names(index.by_org(&org("b", "acme"))), ["three"]);
    assert!(index.by_secret("a", "nothing").is_empty());
}

#[test]
fn an_update_moves_the_credential_and_a_delete_removes_it() {
    let index = Index::default();
    index.observe(&watcher::Event::Apply(credential("a", "one", "u1", "s", "app1", "acme")));
    index.observe(&watcher::Event::Apply(credential("a", "one", "u1", "t", "app9", "other")));
    assert!(index.by_secret("a", "s").is_empty(), "the old Secret name no longer maps");
    assert!(index.by_app("app1").is_empty());
    assert_eq!(names(index.by_secret("a", "t")), ["one"]);
    assert_eq!(names(index.by_org(&org("a", "other"))), ["one"]);
    index.observe(&watcher::Event::Delete(credential("a", "one", "u1", "t", "app9", "other")));
    assert!(index.is_empty());
    assert!(index.by_app("app9").is_empty());
}

#[test]
fn a_relist_drops_what_was_deleted_while_the_watch_was_down() {
    let index = Index::default();
    index.observe(&watcher::Event::Apply(credential("a", "kept", "u1", "s1", "app1", "acme")));
    index.observe(&watcher::Event::Apply(credential("a", "gone", "u2", "s2", "app2", "acme")));
    index.observe(&watcher::Event::Init);
    index.observe(&watcher::Event::InitApply(credential("a", "kept", "u1", "s1", "app1", "acme")));
    index.observe(&watcher::Event::InitDone);
    assert_eq!(index.len(), 1);
    assert!(index.by_app("app2").is_empty());
    assert_eq!(names(index.by_app("app1")), ["kept"]);
}

#[test]
fn a_reduced_secret_keeps_only_what_samlcred_reads() {
    let mut secret: PartialObjectMeta<Secret> = serde_json::from_value(serde_json::json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {
            "name": "release.v1", "namespace": "a", "uid": "x", "resourceVersion": "7",
            "labels": {"owner": "helm", "samlcred.io/credential": "one"},
            "annotations": {"meta.helm.sh/release-name": "big", "samlcred.io/adopt": "true"},
            "managedFields": [{"manager": "helm", "operation": "Update"}]
        }
    }))
    .unwrap();
    reduce_secret(&mut secret);
    let meta = &secret.metadata;
    assert_eq!(meta.name.as_deref(), Some("release.v1"));
    assert_eq!(meta.resource_version.as_deref(), Some("7"));
    assert_eq!(meta.labels.as_ref().unwrap().keys().collect::<Vec<_>>(), ["samlcred.io/credential"]);
    assert_eq!(meta.annotations.as_ref().unwrap().keys().collect::<Vec<_>>(), ["samlcred.io/adopt"]);
    assert!(meta.managed_fields.is_none());
}
