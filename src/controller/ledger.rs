//! One record per credential of what this process wrote and read, so that a reconcile neither
//! trusts a cache that lags behind samlcred's own writes nor asks Okta again for what it was just
//! told.
//!
//! - **Status.** The status samlcred last wrote is the truth about the credential: only samlcred
//!   writes it. The watch cache can show an older one for a moment after a write; a reconcile then
//!   plans from the record instead (its backoff, its activation, its rotation phase), and the
//!   record is dropped once the cache shows the same status. This is why a status write needs no
//!   resourceVersion precondition (and meets no 409): no reconcile of this process plans from a
//!   status older than its last write, and leader election keeps other processes out.
//! - **Okta.** What the app showed when last read ([`OktaSnapshot`]), kept until the resync
//!   interval ends, and updated by samlcred's own writes (a generated key, an activation). Only
//!   while a step needs them does it also keep the key material and the metadata document.
//! - **Secret.** The resourceVersion and data hash of the Secret as samlcred last wrote or
//!   verified it ([`SecretSeen`]): while the watch shows that version, the Secret is current.
//!
//! All of it lives in memory: after a restart a reconcile starts from the cluster (status and the
//! Secret) and from Okta.

use super::observe::OktaSnapshot;
use crate::api::SamlAppCredentialStatus;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The Secret as samlcred last wrote or verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSeen {
    pub resource_version: Option<String>,
    /// [`crate::secret::data_hash`] of samlcred's data keys.
    pub hash: String,
    /// What the Secret's content follows from (see [`super::observe::secret_inputs`]).
    pub inputs: u64,
}

/// What this process knows of one credential.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The status samlcred last wrote, until the watch cache shows it.
    pub written: Option<Arc<SamlAppCredentialStatus>>,
    /// Okta's rate limit has no room for this credential's step before this.
    pub not_before: Option<Timestamp>,
    pub okta: Option<OktaSnapshot>,
    pub secret: Option<SecretSeen>,
}

/// The records of every credential, by uid.
#[derive(Default)]
pub struct Ledger {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Ledger {
    /// A panic in a reconcile that held the lock leaves the map usable (see `guard`).
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record of a credential, with its status brought up to date: the status to plan from is
    /// the one samlcred last wrote when the cache (`cached`) does not show it yet.
    pub fn read(
        &self,
        uid: &str,
        cached: Option<&SamlAppCredentialStatus>,
    ) -> (Entry, Option<SamlAppCredentialStatus>) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(uid) else {
            return (Entry::default(), cached.cloned());
        };
        if entry.written.as_deref().is_some_and(|written| Some(written) == cached) {
            // The cache caught up; from now on it is as new as the record.
            entry.written = None;
        }
        let status = entry.written.as_deref().cloned().or_else(|| cached.cloned());
        (entry.clone(), status)
    }

    pub fn wrote_status(&self, uid: &str, status: &SamlAppCredentialStatus) {
        self.lock().entry(uid.to_string()).or_default().written = Some(Arc::new(status.clone()));
    }

    pub fn set_not_before(&self, uid: &str, at: Option<Timestamp>) {
        self.update(uid, at.is_some(), |entry| entry.not_before = at);
    }

    pub fn set_okta(&self, uid: &str, snapshot: Option<OktaSnapshot>) {
        self.update(uid, snapshot.is_some(), |entry| entry.okta = snapshot);
    }

    pub fn set_secret(&self, uid: &str, seen: Option<SecretSeen>) {
        self.update(uid, seen.is_some(), |entry| entry.secret = seen);
    }

    /// Changes a credential's record; makes one only when `creates` (clearing a field of a
    /// credential the ledger does not know needs no record).
    fn update(&self, uid: &str, creates: bool, set: impl FnOnce(&mut Entry)) {
        let mut entries = self.lock();
        match entries.get_mut(uid) {
            Some(entry) => set(entry),
            None if creates => set(entries.entry(uid.to_string()).or_default()),
            None => {}
        }
    }

    /// Forgets a credential that was deleted.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
