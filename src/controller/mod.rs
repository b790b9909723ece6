//! The reconcilers and what they share. `credential` rotates keys, `org_status` checks that orgs'
//! credentials work; `orgs` turns an orgRef into an Okta client; `observe` reads Okta; `status` and
//! `workloads` write back; `guard` keeps a panicking reconcile from ending the process.

pub mod cache;
pub mod credential;
pub mod expiry;
pub mod fairness;
pub mod guard;
pub mod ledger;
pub mod observe;
pub mod org_status;
pub mod orgs;
pub mod pacer;
pub mod secrets;
pub mod status;
pub mod workloads;

use crate::api::{OrgKind, SamlAppCredential};
use crate::metrics::Metrics;
use cache::Caches;
use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use ledger::Ledger;
use orgs::{OrgClients, OrgKey};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Timing knobs of the reconcilers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often Okta is read again when nothing is due (drift detection); jittered by ±10%.
    pub okta_resync: Duration,
    /// First retry delay after a failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Upper bound of the retry delay.
    pub backoff_cap: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            okta_resync: Duration::from_secs(3600),
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(600),
        }
    }
}

const BACKOFF_JITTER: f64 = 0.2;

fn jitter(d: Duration, fraction: f64) -> Duration {
    let factor = 1.0 + rand::rng().random_range(-fraction..=fraction);
    d.mul_f64(factor.max(0.0))
}

impl Settings {
    /// Come back at `at`, but no later than the resync interval. Jitter keeps thousands of
    /// credentials renewed at the same moment from all waking together.
    pub fn requeue_at(&self, now: Timestamp, at: Timestamp) -> Action {
        Action::requeue(self.requeue_delay(now, at))
    }

    fn requeue_delay(&self, now: Timestamp, at: Timestamp) -> Duration {
        let until = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
        let resync = jitter(self.okta_resync, 0.1);
        if until >= resync {
            return resync;
        }
        let spread = (until / 100).min(Duration::from_secs(30));
        until + spread.mul_f64(rand::rng().random_range(0.0..=1.0)) + Duration::from_millis(50)
    }

    /// Exponential backoff after `failures` consecutive failures, capped, with ±20% jitter.
    pub fn backoff(&self, failures: i32) -> Duration {
        jitter(self.nominal_backoff(failures), BACKOFF_JITTER)
    }

    /// The shortest delay [`Settings::backoff`] picks: before it has passed since the last failure,
    /// a reconcile (say, one triggered by samlcred's own status write) does not call Okta again.
    pub fn backoff_floor(&self, failures: i32) -> Duration {
        self.nominal_backoff(failures).mul_f64(1.0 - BACKOFF_JITTER)
    }

    fn nominal_backoff(&self, failures: i32) -> Duration {
        let exponent = failures.saturating_sub(1).clamp(0, 20) as u32;
        self.backoff_base.saturating_mul(2u32.saturating_pow(exponent)).min(self.backoff_cap)
    }
}

/// A fraction in [0, 1) that a credential's uid picks, the same in every process and on every
/// start: where in an interval the credential's turn falls.
pub fn spread(uid: &str) -> f64 {
    let digest = Sha256::digest(uid.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// The one bag of shared handles the reconcilers get.
pub struct Context {
    pub kube: kube::Client,
    pub orgs: OrgClients,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// What samlcred watches, and the indexes over it.
    pub caches: Caches,
    /// What this process wrote and read, per credential.
    pub ledger: Arc<Ledger>,
    /// Each org's share of the reconcile workers.
    pub org_shares: fairness::OrgShares,
    /// The cluster-wide pace of rollout restarts (`--max-restarts-per-minute`).
    pub restarts: pacer::RestartPacer,
}

impl Context {
    /// Whether every cache has listed once; waits up to `timeout` for them.
    pub async fn caches_ready(&self, timeout: Duration) -> bool {
        self.caches.wait_ready(timeout).await
    }

    /// Publishes an event on the credential; a failure to publish is logged, never fatal.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        on: &K,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
    ) {
        let event =
            Event { type_, reason: reason.into(), note: Some(note.into()), action: action.into(), secondary: None };
        if let Err(e) = self.recorder.publish(&event, &on.object_ref(&())).await {
            tracing::warn!(reason, "could not publish event: {e}");
        }
    }

    /// The oldest other watched credential that manages the same Okta org and app, when it is older.
    pub async fn older_claimant(&self, credential: &SamlAppCredential, org: &OrgKey) -> Option<String> {
        let everyone = self.caches.credentials_for_app(&credential.spec.app_id);
        // Which Okta org another credential's org object names is known once its client was built;
        // build it now for the (rare) other credentials on the same app, so none is missed.
        for other in everyone.iter().filter(|c| c.spec.app_id == credential.spec.app_id && c.uid() != credential.uid())
        {
            let key = org_key(other);
            if key != *org && self.orgs.origin_of(&key).is_none() {
                let _ = self.orgs.client(&key, None).await;
            }
        }
        let origin = |key: &OrgKey| self.orgs.origin_of(key);
        older_claimant(credential, org, everyone.iter().map(|c| &**c), origin)
    }
}

/// The oldest of `others` that manages the same Okta org and app as `credential`, when it is older
/// (creation time, then namespace and name); by name in the same namespace, and only as "in another
/// namespace" otherwise, so a Conflict never shows one team another team's objects. Two org objects
/// are the same Okta org when `origin` gives both the same URL origin (an OktaOrg and a
/// ClusterOktaOrg for one org, say); an org object samlcred has not used yet counts by its name. The
/// controller and `samlcred plan` both decide conflicts with it.
pub fn older_claimant<'a>(
    credential: &SamlAppCredential,
    org: &OrgKey,
    others: impl Iterator<Item = &'a SamlAppCredential>,
    origin: impl Fn(&OrgKey) -> Option<String>,
) -> Option<String> {
    let age = |c: &SamlAppCredential| {
        (c.metadata.creation_timestamp.as_ref().map(|t| t.0), c.namespace().unwrap_or_default(), c.name_any())
    };
    let mine = age(credential);
    let my_origin = origin(org);
    let same_org = |other: &SamlAppCredential| {
        let key = org_key(other);
        key == *org || (my_origin.is_some() && origin(&key) == my_origin)
    };
    others
        .filter(|other| other.uid() != credential.uid() && other.spec.app_id == credential.spec.app_id)
        .filter(|other| same_org(other))
        .filter(|other| other.metadata.deletion_timestamp.is_none() && age(other) < mine)
        .min_by_key(|other| age(other))
        .map(|other| match other.namespace() {
            // Another tenant's object names stay with that tenant: say only that it exists.
            Some(ns) if Some(&ns) != credential.namespace().as_ref() => "in another namespace".to_string(),
            _ => other.name_any(),
        })
}

/// The org object a credential's orgRef names.
pub fn org_key(credential: &SamlAppCredential) -> OrgKey {
    let r = &credential.spec.org_ref;
    OrgKey {
        kind: r.kind,
        namespace: match r.kind {
            OrgKind::OktaOrg => credential.namespace(),
            OrgKind::ClusterOktaOrg => None,
        },
        name: r.name.clone(),
    }
}

/// Test-only crash points: when `SAMLCRED_FAILPOINT` names this point, the process exits at once,
/// as a crash or a kill would stop it. End-to-end tests use it to prove recovery from every step.
/// `panic:NAME` panics there instead, to prove that a panicking reconcile costs only itself.
pub fn failpoint(name: &str) {
    static POINT: OnceLock<Option<String>> = OnceLock::new();
    let point = POINT.get_or_init(|| std::env::var("SAMLCRED_FAILPOINT").ok()).as_deref();
    if point == Some(name) {
        eprintln!("samlcred: failpoint {name} reached, exiting");
        std::process::exit(86);
    }
    if point.and_then(|p| p.strip_prefix("panic:")) == Some(name) {
        panic!("failpoint {name}: a test-only panic");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let settings = Settings::default();
        for (failures, nominal) in [(1, 5.0), (2, 10.0), (3, 20.0), (8, 600.0), (40, 600.0)] {
            let got = settings.backoff(failures).as_secs_f64();
            assert!(got >= nominal * 0.8 - 1e-9 && got <= nominal * 1.2 + 1e-9, "{failures} failures: {got}s");
        }
    }

    #[test]
    fn backoff_floor_is_the_shortest_jittered_backoff() {
        let settings = Settings::default();
        for failures in [1, 2, 3, 8] {
            let floor = settings.backoff_floor(failures);
            assert!((0..100).all(|_| settings.backoff(failures) >= floor), "{failures} failures");
        }
        assert_eq!(settings.backoff_floor(1), Duration::from_secs(4));
    }

    #[test]
    fn requeue_is_capped_by_the_resync_interval() {
        let settings = Settings { okta_resync: Duration::from_secs(100), ..Default::default() };
        let now = Timestamp::now();
        let far = settings.requeue_delay(now, now + jiff::SignedDuration::from_hours(1000));
        assert!(far >= Duration::from_secs(90) && far <= Duration::from_secs(110), "{far:?}");
        let soon = settings.requeue_delay(now, now + jiff::SignedDuration::from_secs(10));
        assert!(soon >= Duration::from_secs(10) && soon <= Duration::from_millis(10_200), "{soon:?}");
        let past = settings.requeue_delay(now, now - jiff::SignedDuration::from_secs(10));
        assert!(past < Duration::from_secs(1), "{past:?}");
    }
}
