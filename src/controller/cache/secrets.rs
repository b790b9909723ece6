//! The Secret cache: reduced metadata of the Secrets samlcred reads, and of every other Secret
//! only that it exists.
//!
//! A cluster holds many Secrets samlcred never reads (each Helm release is one). Keeping even
//! their reduced metadata costs about a kilobyte each; this cache keeps, for those, the 8-byte
//! hash of their namespace and name, so that a lookup can still tell "no such Secret" (no call
//! needed) from "exists, not kept" (read it by name, then keep it). Whether a Secret is kept is
//! decided when its event arrives: samlcred's own (by label) always, others while a credential
//! or an org refers to them.

use super::kept::KeptSecret;
use crate::api::{annotations, labels};
use futures::{Stream, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

type Key = (String, String);

/// What the cache knows of one Secret.
#[derive(Debug, Clone)]
pub enum CachedSecret {
    /// Kept: its reduced metadata.
    Kept(Arc<PartialObjectMeta<Secret>>),
    /// The cluster has no such Secret.
    Missing,
    /// It exists but was not kept when it was last seen: read it by name.
    Unkept,
}

/// What one list (and the watch after it) showed.
#[derive(Default)]
struct Seen {
    kept: HashMap<Key, KeptSecret>,
    others: HashSet<u64>,
}

impl Seen {
    /// Files a Secret as kept (samlcred's own, or referred to now) or only known to exist.
    fn file(&mut self, secret: &PartialObjectMeta<Secret>, keep: impl Fn(&PartialObjectMeta<Secret>) -> bool) {
        let key = key_of(secret);
        let hash = hashed(&key.0, &key.1);
        if labelled_ours(secret) || keep(secret) {
            self.others.remove(&hash);
            self.kept.insert(key, KeptSecret::of(secret));
        } else {
            self.kept.remove(&key);
            self.others.insert(hash);
        }
    }

    fn forget(&mut self, secret: &PartialObjectMeta<Secret>) {
        let key = key_of(secret);
        self.others.remove(&hashed(&key.0, &key.1));
        self.kept.remove(&key);
    }
}

#[derive(Default)]
struct State {
    /// What the watch shows now.
    seen: Seen,
    /// What a relist has seen so far; swapped in when it is done.
    relist: Option<Seen>,
    listed: bool,
}

/// Secrets of one scope, fed by its metadata watch ([`SecretStore::observe`]).
#[derive(Clone)]
pub struct SecretStore {
    /// The namespace watched; `None` for all of them.
    scope: Option<String>,
    state: Arc<RwLock<State>>,
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

fn hashed(namespace: &str, name: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    (namespace, name).hash(&mut hasher);
    hasher.finish()
}

fn key_of(secret: &PartialObjectMeta<Secret>) -> Key {
    (secret.namespace().unwrap_or_default(), secret.name_any())
}

/// Whether samlcred's labels mark the Secret as one it writes.
fn labelled_ours(secret: &PartialObjectMeta<Secret>) -> bool {
    let labels = secret.labels();
    labels.get(labels::MANAGED_BY).is_some_and(|v| v == labels::MANAGED_BY_VALUE)
        || labels.contains_key(labels::CREDENTIAL)
}

impl SecretStore {
    pub fn new(scope: Option<String>) -> SecretStore {
        SecretStore { scope, state: Arc::default(), ready: Arc::new(tokio::sync::watch::Sender::new(false)) }
    }

    /// Whether this store watches `namespace`.
    pub fn covers(&self, namespace: &str) -> bool {
        self.scope.as_deref().is_none_or(|scope| scope == namespace)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one event of the (reduced) Secret watch; `keep` says whether a Secret that is not
    /// labelled as samlcred's is referred to now.
    pub fn observe(
        &self,
        event: &watcher::Event<PartialObjectMeta<Secret>>,
        keep: impl Fn(&PartialObjectMeta<Secret>) -> bool,
    ) {
        let mut state = self.write();
        let state = &mut *state;
        match event {
            watcher::Event::Init => state.relist = Some(Default::default()),
            watcher::Event::InitApply(secret) => state.relist.get_or_insert_with(Default::default).file(secret, keep),
            watcher::Event::InitDone => {
                if let Some(seen) = state.relist.take() {
                    state.seen = seen;
                }
                state.listed = true;
                self.ready.send_replace(true);
            }
            watcher::Event::Apply(secret) => state.seen.file(secret, keep),
            watcher::Event::Delete(secret) => state.seen.forget(secret),
        }
    }

    /// What the cache knows of a Secret; `None` before the first list finished.
    pub fn get(&self, namespace: &str, name: &str) -> Option<CachedSecret> {
        let state = self.read();
        if !state.listed {
            return None;
        }
        let key = (namespace.to_string(), name.to_string());
        Some(match state.seen.kept.get(&key) {
            Some(secret) => CachedSecret::Kept(Arc::new(secret.expand(namespace, name))),
            None if state.seen.others.contains(&hashed(namespace, name)) => CachedSecret::Unkept,
            None => CachedSecret::Missing,
        })
    }

    /// Keeps a Secret that was read by name because the cache had not kept it: its next reads
    /// come from the cache. A watch event that has already replaced it wins.
    pub fn keep(&self, meta: &ObjectMeta) {
        let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else { return };
        let mut state = self.write();
        if state.seen.others.remove(&hashed(&namespace, &name)) {
            let mut secret: PartialObjectMeta<Secret> = meta.clone().into_response_partial();
            reduce_secret(&mut secret);
            state.seen.kept.insert((namespace, name), KeptSecret::of(&secret));
        }
    }

    /// How many Secrets are kept, and how many are only known to exist.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.read();
        (state.seen.kept.len(), state.seen.others.len())
    }

    /// Waits until the first list finished.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }
}

/// The metadata watch of Secrets (through `api`) that feeds `store`, reduced: its events, for
/// the controller's triggers. `keep` says whether a Secret not labelled as samlcred's is
/// referred to now.
pub fn watch_into(
    api: Api<PartialObjectMeta<Secret>>,
    store: SecretStore,
    keep: impl Fn(&PartialObjectMeta<Secret>) -> bool + Send + 'static,
) -> impl Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>> + Send {
    super::relisting_watcher(api, watcher::Config::default()).default_backoff().modify(reduce_secret).map_ok(
        move |event| {
            store.observe(&event, &keep);
            event
        },
    )
}

/// A Secret's metadata reduced to what samlcred reads of it.
pub fn reduce_secret(secret: &mut PartialObjectMeta<Secret>) {
    let meta = std::mem::take(&mut secret.metadata);
    let keep_labels = [labels::MANAGED_BY, labels::CREDENTIAL];
    let keep_annotations = [annotations::ADOPT, annotations::KID, annotations::SECRET_HASH];
    let pick = |map: Option<BTreeMap<String, String>>, keep: &[&str]| {
        let picked: BTreeMap<String, String> =
            map.unwrap_or_default().into_iter().filter(|(k, _)| keep.contains(&k.as_str())).collect();
        (!picked.is_empty()).then_some(picked)
    };
    secret.metadata = ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        owner_references: meta.owner_references,
        deletion_timestamp: meta.deletion_timestamp,
        labels: pick(meta.labels, &keep_labels),
        annotations: pick(meta.annotations, &keep_annotations),
        ..ObjectMeta::default()
    };
}
