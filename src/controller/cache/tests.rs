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

#[test]
fn a_kept_secret_reads_back_as_its_reduced_metadata() {
    let mut secret: PartialObjectMeta<Secret> = serde_json::from_value(serde_json::json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {
            "name": "one-idp", "namespace": "a", "uid": "u1", "resourceVersion": "9",
            "deletionTimestamp": "2026-12-01T10:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "samlcred", "samlcred.io/credential": "one", "team": "x"},
            "annotations": {"samlcred.io/kid": "k1", "samlcred.io/secret-hash": "h"},
            "ownerReferences": [{"apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
                                 "name": "one", "uid": "c1", "controller": true}]
        }
    }))
    .unwrap();
    reduce_secret(&mut secret);
    let kept = super::kept::KeptSecret::of(&secret);
    assert_eq!(kept.expand("a", "one-idp").metadata, secret.metadata);
    let mut bare = secret_meta("b", "plain", "3", false);
    reduce_secret(&mut bare);
    assert_eq!(super::kept::KeptSecret::of(&bare).expand("b", "plain").metadata, bare.metadata);
}

#[test]
fn a_stored_credential_keeps_only_the_annotations_samlcred_reads() {
    let mut credential: SamlAppCredential = serde_json::from_value(serde_json::json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
        "metadata": {
            "name": "one", "namespace": "a", "uid": "u1", "resourceVersion": "9", "generation": 2,
            "labels": {"team": "x"},
            "annotations": {"samlcred.io/rotate": "t1", "samlcred.io/activate": "k2",
                            "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
            "managedFields": [{"manager": "kubectl", "operation": "Update"}]
        },
        "spec": {"orgRef": {"name": "acme"}, "appId": "app1", "secretName": "one-idp"}
    }))
    .unwrap();
    reduce_credential(&mut credential);
    let meta = &credential.metadata;
    let kept: Vec<&String> = meta.annotations.as_ref().unwrap().keys().collect();
    assert_eq!(kept, ["samlcred.io/activate", "samlcred.io/rotate"]);
    assert!(meta.labels.is_none() && meta.managed_fields.is_none());
    assert_eq!((meta.generation, meta.uid.as_deref()), (Some(2), Some("u1")));

    let mut plain = credential.clone();
    plain.metadata.annotations = Some([("other".to_string(), "v".to_string())].into());
    reduce_credential(&mut plain);
    assert!(plain.metadata.annotations.is_none());
}

fn secret_meta(ns: &str, name: &str, rv: &str, ours: bool) -> PartialObjectMeta<Secret> {
    let labels =
        if ours { serde_json::json!({"app.kubernetes.io/managed-by": "samlcred"}) } else { serde_json::json!({}) };
    serde_json::from_value(serde_json::json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "labels": labels}
    }))
    .unwrap()
}

fn kept_version(store: &SecretStore, ns: &str, name: &str) -> Option<String> {
    match store.get(ns, name)? {
        CachedSecret::Kept(secret) => secret.metadata.resource_version.clone(),
        CachedSecret::Missing => Some("missing".into()),
        CachedSecret::Unkept => Some("unkept".into()),
    }
}

#[test]
fn the_secret_store_keeps_what_samlcred_reads_and_only_knows_the_rest_exists() {
    let store = SecretStore::new(Some("a".into()));
    let referred = |s: &PartialObjectMeta<Secret>| s.metadata.name.as_deref() == Some("token");
    assert!(store.get("a", "mine").is_none(), "nothing is known before the first list");
    store.observe(&watcher::Event::Init, referred);
    for secret in [
        secret_meta("a", "mine", "1", true),
        secret_meta("a", "helm", "2", false),
        secret_meta("a", "token", "3", false),
    ] {
        store.observe(&watcher::Event::InitApply(secret), referred);
    }
    assert!(store.get("a", "mine").is_none(), "a list in progress is not an answer");
    store.observe(&watcher::Event::InitDone, referred);
    assert_eq!(kept_version(&store, "a", "mine").as_deref(), Some("1"));
    assert_eq!(kept_version(&store, "a", "token").as_deref(), Some("3"));
    assert_eq!(kept_version(&store, "a", "helm").as_deref(), Some("unkept"));
    assert_eq!(kept_version(&store, "a", "absent").as_deref(), Some("missing"));
    assert_eq!(store.counts(), (2, 1));
    assert!(store.covers("a") && !store.covers("b"));

    // A Secret read by name is kept from then on; a watch event that came first wins.
    let mut read = secret_meta("a", "helm", "2", false).metadata;
    read.annotations = Some([("meta.helm.sh/release-name".to_string(), "big".to_string())].into());
    store.keep(&read);
    assert_eq!(kept_version(&store, "a", "helm").as_deref(), Some("2"));
    assert!(
        store.get("a", "helm").is_some_and(|c| matches!(c, CachedSecret::Kept(s) if s.metadata.annotations.is_none()))
    );
    store.keep(&secret_meta("a", "mine", "0", true).metadata);
    assert_eq!(kept_version(&store, "a", "mine").as_deref(), Some("1"), "a stale read replaced the watched version");

    // Labelled as samlcred's later: kept; deleted: missing.
    store.observe(&watcher::Event::Apply(secret_meta("a", "other", "4", false)), referred);
    assert_eq!(kept_version(&store, "a", "other").as_deref(), Some("unkept"));
    store.observe(&watcher::Event::Apply(secret_meta("a", "other", "5", true)), referred);
    assert_eq!(kept_version(&store, "a", "other").as_deref(), Some("5"));
    store.observe(&watcher::Event::Delete(secret_meta("a", "other", "5", true)), referred);
    assert_eq!(kept_version(&store, "a", "other").as_deref(), Some("missing"));

    // A relist replaces everything: what it did not list is gone.
    store.observe(&watcher::Event::Init, referred);
    store.observe(&watcher::Event::InitApply(secret_meta("a", "mine", "9", true)), referred);
    assert_eq!(
        kept_version(&store, "a", "helm").as_deref(),
        Some("2"),
        "answers from before the relist until it is done"
    );
    store.observe(&watcher::Event::InitDone, referred);
    assert_eq!(kept_version(&store, "a", "mine").as_deref(), Some("9"));
    assert_eq!(kept_version(&store, "a", "helm").as_deref(), Some("missing"));
    assert_eq!(store.counts(), (1, 0));
}
