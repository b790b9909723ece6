//! What the reconcilers read of the cluster: reflector stores of everything samlcred watches, and
//! an index from a watched object to the credentials it concerns.
//!
//! Reconciles observe from these instead of GETting the org, its Secrets, the namespace and the
//! credential's Secret on every pass; the watch mappers look credentials up in the index instead
//! of scanning every credential on every event (10,000 credentials and as many Secrets make that
//! 10^8 steps at each start).
//!
//! Secrets are kept as metadata only, reduced to what samlcred reads (name, resourceVersion,
//! ownerReferences, samlcred's own labels and annotations), and only those samlcred writes or a
//! credential or org refers to: of the cluster's other Secrets (a Helm release is ~100 KiB each)
//! the cache knows only that they exist ([`SecretStore`]).

use super::orgs::OrgKey;
use crate::api::{ClusterOktaOrg, OktaOrg, OrgKind, SamlAppCredential, annotations};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

mod kept;
mod phases;
mod relist;
mod secrets;
pub use phases::Phases;
pub use relist::{NoSharedBackoff, relisting_watcher};
pub use secrets::{CachedSecret, SecretStore, reduce_secret, watch_into};

/// The stores of one controller process.
#[derive(Clone)]
pub struct Caches {
    /// One store per watched scope (a namespace, or all of them).
    pub credentials: Vec<Store<SamlAppCredential>>,
    /// Secrets' metadata, reduced by [`reduce_secret`]; one store per scope.
    pub secrets: Vec<SecretStore>,
    pub okta_orgs: Vec<Store<OktaOrg>>,
    pub cluster_orgs: Store<ClusterOktaOrg>,
    /// Namespaces' metadata, for ClusterOktaOrg selectors; only when every namespace is watched
    /// (otherwise samlcred may read only its own namespaces, by name).
    pub namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    /// One index per credential store.
    pub indexes: Vec<std::sync::Arc<Index>>,
    /// The resync phases of every credential the indexes hold (shared by them).
    pub phases: std::sync::Arc<Phases>,
}

impl Caches {
    /// Waits until every store has listed once, up to `timeout`; false when one has not.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let stores = async {
            for store in &self.credentials {
                ready(store).await;
            }
            for store in &self.secrets {
                store.wait_until_ready().await;
            }
            for store in &self.okta_orgs {
                ready(store).await;
            }
            ready(&self.cluster_orgs).await;
            if let Some(namespaces) = &self.namespaces {
                ready(namespaces).await;
            }
        };
        tokio::time::timeout(timeout, stores).await.is_ok()
    }

    /// What the Secret cache knows of a Secret; `None` when no store watches its namespace or
    /// before the first list.
    pub fn secret_lookup(&self, namespace: &str, name: &str) -> Option<CachedSecret> {
        self.secret_store(namespace)?.get(namespace, name)
    }

    /// The Secret store that watches `namespace`.
    fn secret_store(&self, namespace: &str) -> Option<&SecretStore> {
        self.secrets.iter().find(|store| store.covers(namespace))
    }

    /// Where in the resync interval the credential's resyncs fall; `None` for one the indexes
    /// do not hold yet.
    pub fn phase(&self, uid: &str) -> Option<f64> {
        self.phases.of(uid)
    }

    /// A kept Secret's reduced metadata.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<PartialObjectMeta<Secret>>> {
        match self.secret_lookup(namespace, name)? {
            CachedSecret::Kept(secret) => Some(secret),
            CachedSecret::Missing | CachedSecret::Unkept => None,
        }
    }

    /// Keeps a Secret that was read by name because its store had not kept it.
    pub fn keep_secret(&self, meta: &ObjectMeta) {
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        if let Some(store) = self.secret_store(namespace) {
            store.keep(meta);
        }
    }

    pub fn okta_org(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<OktaOrg>> {
        let key = ObjectRef::new(name).within(namespace);
        self.okta_orgs.iter().find_map(|store| store.get(&key))
    }

    pub fn cluster_org(&self, name: &str) -> Option<std::sync::Arc<ClusterOktaOrg>> {
        self.cluster_orgs.get(&ObjectRef::new(name))
    }

    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.as_ref()?.get(&ObjectRef::new(name)).map(|ns| ns.labels().clone())
    }

    pub fn credential(&self, object: &ObjectRef<SamlAppCredential>) -> Option<std::sync::Arc<SamlAppCredential>> {
        self.credentials.iter().find_map(|store| store.get(object))
    }

    /// Every watched credential that manages this app ID.
    pub fn credentials_for_app(&self, app_id: &str) -> Vec<std::sync::Arc<SamlAppCredential>> {
        let refs = self.indexes.iter().flat_map(|index| index.by_app(app_id));
        refs.filter_map(|object| self.credential(&object)).filter(|c| c.spec.app_id == app_id).collect()
    }
}

/// Asked afresh each time: a waiter that shares the store's ready signal with the controller's own
/// runner is not always woken (seen with kube-runtime 5.0).
async fn ready<K>(store: &Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await.is_err() {}
}

/// Namespaces are read for their labels only.
pub fn reduce_namespace(namespace: &mut PartialObjectMeta<Namespace>) {
    let meta = std::mem::take(&mut namespace.metadata);
    namespace.metadata = ObjectMeta {
        name: meta.name,
        uid: meta.uid,
        resource_version: meta.resource_version,
        labels: meta.labels,
        ..ObjectMeta::default()
    };
}

/// A credential as the store keeps it: without managedFields, labels and annotations other than
/// the two samlcred reads ([`annotations::ROTATE`], [`annotations::ACTIVATE`]). Under GitOps a
/// `kubectl.kubernetes.io/last-applied-configuration` annotation repeats the whole spec.
pub fn reduce_credential(credential: &mut SamlAppCredential) {
    let meta = &mut credential.metadata;
    meta.managed_fields = None;
    meta.labels = None;
    if let Some(kept) = meta.annotations.as_mut() {
        kept.retain(|key, _| key == annotations::ROTATE || key == annotations::ACTIVATE);
    }
    if meta.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
        meta.annotations = None;
    }
}

/// What the index files a credential under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Filed {
    object: ObjectRef<SamlAppCredential>,
    secret: (String, String),
    app_id: String,
    org: OrgKey,
}

#[derive(Default)]
struct IndexState {
    by_uid: HashMap<String, Filed>,
    by_secret: HashMap<(String, String), HashSet<String>>,
    by_app: HashMap<String, HashSet<String>>,
    by_org: HashMap<OrgKey, HashSet<String>>,
    /// Uids listed since the watch (re)started; `None` outside a relist.
    relisted: Option<HashSet<String>>,
}

/// Credentials by the Secret they publish, the app they manage and the org they use. Fed the
/// events of the credential watch of one scope ([`Index::observe`]); it files them in the
/// process's [`Phases`] too.
#[derive(Default)]
pub struct Index {
    state: Mutex<IndexState>,
    phases: std::sync::Arc<Phases>,
}

impl IndexState {
    fn insert(&mut self, uid: String, filed: Filed) {
        self.remove(&uid);
        self.by_secret.entry(filed.secret.clone()).or_default().insert(uid.clone());
        self.by_app.entry(filed.app_id.clone()).or_default().insert(uid.clone());
        self.by_org.entry(filed.org.clone()).or_default().insert(uid.clone());
        self.by_uid.insert(uid, filed);
    }

    fn remove(&mut self, uid: &str) {
        let Some(filed) = self.by_uid.remove(uid) else { return };
        fn drop_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, HashSet<String>>, key: &K, uid: &str) {
            if let Some(set) = map.get_mut(key) {
                set.remove(uid);
                if set.is_empty() {
                    map.remove(key);
                }
            }
        }
        drop_from(&mut self.by_secret, &filed.secret, uid);
        drop_from(&mut self.by_app, &filed.app_id, uid);
        drop_from(&mut self.by_org, &filed.org, uid);
    }

    fn objects(&self, uids: Option<&HashSet<String>>) -> Vec<ObjectRef<SamlAppCredential>> {
        uids.into_iter().flatten().filter_map(|uid| self.by_uid.get(uid)).map(|f| f.object.clone()).collect()
    }
}

impl Index {
    /// An index that files its credentials in `phases`, shared with the other scopes' indexes.
    pub fn sharing(phases: std::sync::Arc<Phases>) -> Index {
        Index { state: Mutex::default(), phases }
    }

    /// Takes one event of the credential watch into the index.
    pub fn observe(&self, event: &watcher::Event<SamlAppCredential>) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            watcher::Event::Init => state.relisted = Some(HashSet::new()),
            watcher::Event::InitApply(credential) | watcher::Event::Apply(credential) => {
                let Some(uid) = credential.uid() else { return };
                if let Some(listed) = state.relisted.as_mut()
                    && matches!(event, watcher::Event::InitApply(_))
                {
                    listed.insert(uid.clone());
                }
                self.phases.insert(&uid);
                state.insert(uid, filed(credential));
            }
            watcher::Event::Delete(credential) => {
                if let Some(uid) = credential.uid() {
                    state.remove(&uid);
                    self.phases.remove(&uid);
                }
            }
            watcher::Event::InitDone => {
                // Credentials deleted while the watch was down get no Delete event.
                let listed = state.relisted.take().unwrap_or_default();
                let gone: Vec<String> = state.by_uid.keys().filter(|uid| !listed.contains(*uid)).cloned().collect();
                for uid in gone {
                    state.remove(&uid);
                    self.phases.remove(&uid);
                }
            }
        }
    }

    fn read(&self) -> std::sync::MutexGuard<'_, IndexState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The credentials that publish into this Secret.
    pub fn by_secret(&self, namespace: &str, name: &str) -> Vec<ObjectRef<SamlAppCredential>> {
        let state = self.read();
        state.objects(state.by_secret.get(&(namespace.to_string(), name.to_string())))
    }

    /// The credentials that manage this app ID (in any org).
    pub fn by_app(&self, app_id: &str) -> Vec<ObjectRef<SamlAppCredential>> {
        let state = self.read();
        state.objects(state.by_app.get(app_id))
    }

    /// The credentials whose orgRef names this org object.
    pub fn by_org(&self, org: &OrgKey) -> Vec<ObjectRef<SamlAppCredential>> {
        let state = self.read();
        state.objects(state.by_org.get(org))
    }

    /// How many credentials the index holds.
    pub fn len(&self) -> usize {
        self.read().by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn filed(credential: &SamlAppCredential) -> Filed {
    let namespace = credential.namespace().unwrap_or_default();
    Filed {
        // By name only: a trigger needs no resourceVersion or uid (ObjectRef equality ignores them).
        object: ObjectRef::new(&credential.name_any()).within(&namespace),
        secret: (namespace, credential.spec.secret_name.clone()),
        app_id: credential.spec.app_id.clone(),
        org: super::org_key(credential),
    }
}

/// The org object an OktaOrg or ClusterOktaOrg event is about.
pub fn org_of_okta_org(org: &OktaOrg) -> OrgKey {
    OrgKey { kind: OrgKind::OktaOrg, namespace: org.namespace(), name: org.name_any() }
}

pub fn org_of_cluster_org(org: &ClusterOktaOrg) -> OrgKey {
    OrgKey { kind: OrgKind::ClusterOktaOrg, namespace: None, name: org.name_any() }
}

#[cfg(test)]
mod tests;
