//! Fair shares of the reconcile workers between Okta orgs. One org that stalls (slow answers, a
//! proxy that hangs until the timeout) must not hold every worker while the other orgs' credentials
//! wait: each org may run at most half of the workers (at least one) at a time. A reconcile that
//! finds its org's share taken gives its worker back at once and comes back shortly.

use super::orgs::OrgKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The workers each org may use, handed out as permits.
pub struct OrgShares {
    per_org: usize,
    orgs: Mutex<HashMap<OrgKey, Arc<Semaphore>>>,
}

impl OrgShares {
    /// Shares for `workers` reconcile workers: half of them per org, at least one.
    pub fn new(workers: usize) -> OrgShares {
        OrgShares { per_org: (workers / 2).max(1), orgs: Mutex::new(HashMap::new()) }
    }

    /// A worker slot of `org`, or `None` when the org already uses its share. Held for the
    /// reconcile; dropping it frees the slot.
    pub fn try_take(&self, org: &OrgKey) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut orgs = self.orgs.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            orgs.entry(org.clone()).or_insert_with(|| Arc::new(Semaphore::new(self.per_org))).clone()
        };
        semaphore.try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OrgKind;

    fn key(name: &str) -> OrgKey {
        OrgKey { kind: OrgKind::OktaOrg, namespace: Some("ns".into()), name: name.into() }
    }

    #[test]
    fn an_org_gets_half_the_workers_and_others_keep_theirs() {
        let shares = OrgShares::new(4);
        let held: Vec<_> = (0..2).map(|_| shares.try_take(&key("slow")).expect("within the share")).collect();
        assert!(shares.try_take(&key("slow")).is_none(), "a third worker is beyond the share");
        assert!(shares.try_take(&key("healthy")).is_some(), "another org is not affected");
        drop(held);
        assert!(shares.try_take(&key("slow")).is_some(), "slots come back on drop");
        assert!(OrgShares::new(1).try_take(&key("x")).is_some(), "one worker: one per org");
    }
}
