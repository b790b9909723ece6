//! Leader election on a coordination.k8s.io Lease, so that several replicas can run and only one
//! writes.
//!
//! Every change of the Lease is a compare-and-swap: a create that fails when the Lease exists, or a
//! patch that carries the resourceVersion this replica read as a precondition and fails with 409
//! when anyone wrote in between. Two contenders can therefore never both win, whatever their timing. A standby judges
//! a lease expired by its own clock: only when the Lease's record has not changed for its
//! `leaseDurationSeconds` since this replica first saw that record (as client-go does), so clock
//! skew between replicas does not matter.
//!
//! The leader renews every `retry_period` and counts itself leader only until `renew_deadline`
//! (shorter than the lease duration) after the start of its last successful renewal. Okta writes
//! pass through [`LeaseFence`], which refuses them outside that time, so a leader that was frozen,
//! cut off or refused its renewals stops writing before a standby can acquire. A replica that lost
//! the lease exits at once; the planner recovers from a step cut short (see `rotation`).

use crate::okta::WriteFence;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Where the lease lives and how long it lasts.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease lasts without renewal; a standby takes over after this time.
    pub duration: Duration,
}

impl LeaseSettings {
    /// How long after the start of its last successful renewal the leader still counts itself
    /// leader: two thirds of the lease, as client-go's defaults (15 s lease, 10 s deadline).
    pub fn renew_deadline(&self) -> Duration {
        self.duration.mul_f64(2.0 / 3.0)
    }

    /// How often the leader renews and a standby looks again.
    pub fn retry_period(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(100))
    }

    /// Writes are refused this long before the renew deadline, for the request in flight.
    fn write_margin(&self) -> Duration {
        self.duration / 10
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// The gate on Okta writes: open only while this replica holds the lease with margin. (Without
/// leader election there is no fence at all.)
#[derive(Debug, Clone)]
pub struct LeaseFence {
    /// The end of this replica's leadership; `None` before it was acquired and after it was lost.
    held_until: Arc<Mutex<Option<Instant>>>,
    /// Writes stop this long before `held_until`, for the request in flight.
    margin: Duration,
}

impl LeaseFence {
    /// A fence that stays closed until [`LeaseFence::extend`] opens it.
    pub fn closed(margin: Duration) -> LeaseFence {
        LeaseFence { held_until: Arc::new(Mutex::new(None)), margin }
    }

    /// This replica holds the lease until `until` (monotonic; never moves backwards).
    fn extend(&self, until: Instant) {
        let mut held = self.held_until.lock().unwrap();
        *held = Some(held.map_or(until, |held| held.max(until)));
    }

    /// Closes the fence (the lease is lost or released).
    fn close(&self) {
        *self.held_until.lock().unwrap() = None;
    }

    /// How much longer writes are allowed.
    pub fn remaining(&self) -> Duration {
        let held = *self.held_until.lock().unwrap();
        let until = held.and_then(|held| held.checked_sub(self.margin));
        until.map_or(Duration::ZERO, |until| until.saturating_duration_since(Instant::now()))
    }
}

impl WriteFence for LeaseFence {
    fn check(&self) -> Result<(), String> {
        if self.remaining().is_zero() {
            return Err("this replica may no longer hold the leader lease".into());
        }
        Ok(())
    }
}

/// Held while this process leads; [`Leadership::release`] gives the lease up so a standby takes
/// over at once.
pub struct Leadership {
    renewer: JoinHandle<()>,
    lease: Arc<Mutex<Lease>>,
    api: Api<Lease>,
    fence: LeaseFence,
    identity: String,
}

/// The outcome of one look at the Lease.
enum Attempt {
    /// Boxed: a Lease is large and the other outcome carries nothing.
    Acquired(Box<Lease>),
    HeldByOther,
}

/// Waits until this process holds the lease. Returns `None` if `shutdown` fires first. The
/// leadership's fence is open while the lease is held; the process exits as soon as it is lost.
pub async fn acquire(
    client: kube::Client,
    settings: &LeaseSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<Option<Leadership>> {
    let fence = LeaseFence::closed(settings.write_margin());
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "waiting for the lease");
    tokio::pin!(shutdown);
    let mut observed: Option<Observed> = None;
    let lease = loop {
        let started = Instant::now();
        let attempt = tokio::time::timeout(
            settings.retry_period().max(Duration::from_secs(5)),
            try_acquire(&api, settings, &mut observed),
        )
        .await;
        match attempt {
            Ok(Ok(Attempt::Acquired(lease))) => {
                fence.extend(started + settings.renew_deadline());
                break *lease;
            }
            Ok(Ok(Attempt::HeldByOther)) => {}
            Ok(Err(e)) => tracing::warn!(lease = %settings.name, "reading or taking the lease: {e}"),
            Err(_) => tracing::warn!(lease = %settings.name, "reading or taking the lease timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.retry_period()) => {}
            _ = &mut shutdown => return Ok(None),
        }
    };
    tracing::info!(identity = %settings.identity, "acquired the lease; reconciling");
    let lease = Arc::new(Mutex::new(lease));
    let renewer = tokio::spawn(renew(api.clone(), settings.clone(), lease.clone(), fence.clone()));
    Ok(Some(Leadership { renewer, lease, api, fence, identity: settings.identity.clone() }))
}

/// A record of the Lease as this standby first saw it.
struct Observed {
    resource_version: Option<String>,
    since: Instant,
}

async fn try_acquire(
    api: &Api<Lease>,
    settings: &LeaseSettings,
    observed: &mut Option<Observed>,
) -> Result<Attempt, kube::Error> {
    let now = Timestamp::now();
    let Some(current) = api.get_opt(&settings.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(settings.name.clone()), ..Default::default() },
            spec: Some(held_spec(settings, now, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(created) => Ok(Attempt::Acquired(Box::new(created))),
            // Another replica created it first.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::HeldByOther),
            Err(e) => Err(e),
        };
    };
    let spec = current.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    let version = current.metadata.resource_version.clone();
    if observed.as_ref().is_none_or(|o| o.resource_version != version) {
        *observed = Some(Observed { resource_version: version, since: Instant::now() });
    }
    let held_for = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    let unchanged_for = observed.as_ref().map(|o| o.since.elapsed()).unwrap_or_default();
    let expired = unchanged_for >= held_for;
    match holder {
        // A lease this identity holds is a restart of this replica: it may resume.
        Some(h) if h == settings.identity => {}
        Some(_) if !expired => return Ok(Attempt::HeldByOther),
        _ => {}
    }
    let next = held_spec(settings, now, Some(&spec));
    match swap(api, &settings.name, &current, &next).await {
        Ok(taken) => Ok(Attempt::Acquired(Box::new(taken))),
        // Someone wrote the Lease since it was read: renewed by its holder, or taken by a peer.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::HeldByOther),
        Err(e) => Err(e),
    }
}

/// Writes `spec` over the Lease `read` if nobody changed it since: a merge patch whose
/// resourceVersion is a precondition (409 otherwise). A patch, so RBAC needs no update verb.
async fn swap(api: &Api<Lease>, name: &str, read: &Lease, spec: &LeaseSpec) -> Result<Lease, kube::Error> {
    let mut spec = serde_json::to_value(spec).unwrap_or_default();
    if spec.get("holderIdentity").is_none() {
        // Absent in a merge patch means unchanged; a released Lease has no holder.
        spec["holderIdentity"] = serde_json::Value::Null;
    }
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": read.metadata.resource_version},
        "spec": spec,
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await
}

/// The spec of a Lease this replica takes over from `previous`.
fn held_spec(settings: &LeaseSettings, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
    let same_holder = previous.and_then(|p| p.holder_identity.as_deref()) == Some(settings.identity.as_str());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(settings.lease_seconds()),
        acquire_time: match (same_holder, previous) {
            (true, Some(p)) => p.acquire_time.clone(),
            _ => Some(MicroTime(now)),
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same_holder || previous.is_none() { transitions } else { transitions + 1 }),
        ..Default::default()
    }
}

/// Renews the lease until it is lost; then closes the fence and exits the process.
async fn renew(api: Api<Lease>, settings: LeaseSettings, lease: Arc<Mutex<Lease>>, fence: LeaseFence) {
    let mut last_renewal = Instant::now();
    loop {
        tokio::time::sleep(settings.retry_period()).await;
        let started = Instant::now();
        let deadline = last_renewal + settings.renew_deadline();
        let held = lease.lock().unwrap().clone();
        let mut next = held.spec.clone().unwrap_or_default();
        next.renew_time = Some(MicroTime(Timestamp::now()));
        let budget = deadline.saturating_duration_since(started).max(Duration::from_millis(1));
        let outcome = tokio::time::timeout(budget, swap(&api, &settings.name, &held, &next)).await;
        match outcome {
            Ok(Ok(renewed)) if holder(&renewed) == Some(settings.identity.as_str()) => {
                // A renewal that returns after the deadline came too late: the fence stays shut.
                if Instant::now() < deadline {
                    fence.extend(started + settings.renew_deadline());
                    last_renewal = started;
                    *lease.lock().unwrap() = renewed;
                    continue;
                }
                lost(&fence, "the renewal returned after the renew deadline");
            }
            Ok(Ok(_)) => lost(&fence, "another replica holds the lease"),
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                lost(&fence, "the lease was changed by another replica")
            }
            Ok(Err(e)) => tracing::warn!(lease = %settings.name, "renewing the lease: {e}"),
            Err(_) => tracing::warn!(lease = %settings.name, "renewing the lease timed out"),
        }
        if Instant::now() >= deadline {
            lost(&fence, "no renewal succeeded within the renew deadline");
        }
    }
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// The lease is gone: shut the fence, then stop the process so only the new leader writes.
fn lost(fence: &LeaseFence, why: &str) {
    fence.close();
    tracing::error!("lost the lease ({why}); stopping at once so that only the new leader writes");
    std::process::exit(1);
}

impl Leadership {
    /// The gate for Okta writes, open while this replica holds the lease with margin.
    pub fn fence(&self) -> LeaseFence {
        self.fence.clone()
    }

    /// Gives the lease up (after the controllers stopped): the holder is cleared with a
    /// compare-and-swap, so a lease already taken by another replica is left alone.
    pub async fn release(self) {
        self.renewer.abort();
        let _ = self.renewer.await;
        self.fence.close();
        let held = self.lease.lock().unwrap().clone();
        let mut next = held.spec.clone().unwrap_or_default();
        next.holder_identity = None;
        next.lease_duration_seconds = Some(1);
        next.renew_time = Some(MicroTime(Timestamp::now()));
        let name = held.metadata.name.clone().unwrap_or_default();
        match tokio::time::timeout(Duration::from_secs(5), swap(&self.api, &name, &held, &next)).await {
            Ok(Ok(_)) => tracing::info!(identity = %self.identity, "released the lease"),
            Ok(Err(e)) => tracing::warn!("releasing the lease: {e}"),
            Err(_) => tracing::warn!("releasing the lease timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_fence_refuses_until_extended_and_a_lost_one_for_good() {
        let fence = LeaseFence::closed(Duration::from_millis(10));
        assert!(fence.check().is_err());
        fence.extend(Instant::now() + Duration::from_secs(5));
        assert!(fence.check().is_ok());
        fence.close();
        assert!(fence.check().is_err());
    }

    #[test]
    fn the_fence_shuts_a_margin_before_the_deadline() {
        let fence = LeaseFence::closed(Duration::from_secs(2));
        fence.extend(Instant::now() + Duration::from_secs(1));
        assert!(fence.check().is_err(), "1 s left is inside the 2 s margin");
    }

    #[test]
    fn renew_deadline_is_shorter_than_the_lease() {
        let settings = LeaseSettings {
            namespace: "n".into(),
            name: "l".into(),
            identity: "a".into(),
            duration: Duration::from_secs(15),
        };
        assert_eq!(settings.renew_deadline(), Duration::from_secs(10));
        assert_eq!(settings.retry_period(), Duration::from_secs(3));
        assert!(settings.renew_deadline() + settings.write_margin() < settings.duration);
    }
}
