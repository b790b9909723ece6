//! How each step changes status: pure functions from the old status to the new one.
//!
//! Times are stored to the second, as Kubernetes serializes them, so that a status read back from
//! the API server equals the one written and writing it again changes nothing.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{ObservedKey, Policy, renewal_time};
use crate::api::{
    ActiveKey, AdditionalApp, PendingKey, PreviousKey, Rotation, RotationPhase, RotationTrigger,
    SamlAppCredentialStatus,
};

/// `at`, truncated to the second.
pub fn time(at: Timestamp) -> Time {
    Time(Timestamp::from_second(at.as_second()).unwrap_or(at))
}

fn plus(at: Timestamp, duration: SignedDuration) -> Time {
    time(at.checked_add(duration).unwrap_or(Timestamp::MAX))
}

fn active(key: &ObservedKey) -> ActiveKey {
    ActiveKey {
        kid: key.kid.clone(),
        not_before: time(key.not_before),
        not_after: time(key.not_after),
        x5t_s256: key.x5t_s256.clone(),
    }
}

fn retained(key: ActiveKey, policy: &Policy, now: Timestamp) -> PreviousKey {
    PreviousKey {
        kid: key.kid,
        not_after: key.not_after,
        x5t_s256: key.x5t_s256,
        retain_until: plus(now, policy.retain_previous),
    }
}

fn set_active(status: &mut SamlAppCredentialStatus, key: &ObservedKey, policy: &Policy) {
    status.renewal_time = Some(time(renewal_time(key.not_after, policy)));
    status.active_key = Some(active(key));
}

/// `key` becomes active, the replaced active key is retained, and no rotation is under way.
fn switch_active(
    status: &SamlAppCredentialStatus,
    key: &ObservedKey,
    policy: &Policy,
    now: Timestamp,
) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    if let Some(old) = next.active_key.take() {
        next.previous_keys.push(retained(old, policy, now));
    }
    next.pending_key = None;
    next.rotation = None;
    set_active(&mut next, key, policy);
    next
}

/// What every write of status carries: the generation acted on, and the renewal time under the
/// current spec (renewBefore may have changed since the key was activated).
pub fn observed(status: &SamlAppCredentialStatus, policy: &Policy, generation: Option<i64>) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    next.observed_generation = generation;
    next.renewal_time = next.active_key.as_ref().map(|key| time(renewal_time(key.not_after.0, policy)));
    next
}

/// [`super::Plan::Adopt`]: Okta's signing key becomes the active key.
pub fn adopt(status: &SamlAppCredentialStatus, key: &ObservedKey, policy: &Policy) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    set_active(&mut next, key, policy);
    next
}

/// [`super::Plan::AdoptExternalChange`]: the key someone chose in Okta becomes active. The replaced
/// active key is retained like after a rotation (SPs may still see assertions it signed); a rotation
/// under way is abandoned, since activating its key would undo the person's choice.
pub fn adopt_external_change(
    status: &SamlAppCredentialStatus,
    key: &ObservedKey,
    policy: &Policy,
    now: Timestamp,
) -> SamlAppCredentialStatus {
    let mut next = switch_active(status, key, policy, now);
    next.previous_keys.retain(|previous| previous.kid != key.kid);
    next
}

/// [`super::Plan::StartRotation`]: the intent, persisted before anything is generated. The rotate
/// token present now is consumed whatever the trigger, so it does not start a second rotation.
pub fn start_rotation(
    status: &SamlAppCredentialStatus,
    trigger: RotationTrigger,
    rotate_token: Option<&str>,
    now: Timestamp,
) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    next.rotation = Some(Rotation { phase: RotationPhase::Generating, trigger, started_at: time(now) });
    if let Some(token) = rotate_token {
        next.last_rotate_token = Some(token.to_owned());
    }
    next
}

/// After [`super::Plan::Generate`] or [`super::Plan::ResumeWithOrphan`]: the key to rotate in. Still
/// phase Generating: it is not in the Secret yet.
pub fn pending(status: &SamlAppCredentialStatus, key: &ObservedKey) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    next.pending_key = Some(PendingKey {
        kid: key.kid.clone(),
        not_after: time(key.not_after),
        x5t_s256: key.x5t_s256.clone(),
        activate_after: None,
        cloned_to: Vec::new(),
    });
    next
}

/// After [`super::Plan::Clone`]: the pending key is on these additional apps too (kept sorted, so
/// the same clones give the same status).
pub fn cloned(status: &SamlAppCredentialStatus, apps: &[String]) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    if let Some(pending) = &mut next.pending_key {
        pending.cloned_to.extend(apps.iter().cloned());
        pending.cloned_to.sort();
        pending.cloned_to.dedup();
    }
    next
}

/// After [`super::Plan::Publish`] wrote the Secret: phase Published, activation due after the delay.
pub fn published(status: &SamlAppCredentialStatus, policy: &Policy, now: Timestamp) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    if let Some(rotation) = &mut next.rotation {
        rotation.phase = RotationPhase::Published;
    }
    if let Some(pending) = &mut next.pending_key {
        pending.activate_after = Some(plus(now, policy.activation_delay));
    }
    next
}

/// Before the PUT of [`super::Plan::Activate`].
pub fn activating(status: &SamlAppCredentialStatus) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    if let Some(rotation) = &mut next.rotation {
        rotation.phase = RotationPhase::Activating;
    }
    next
}

/// After Okta confirmed the pending key signs ([`super::Plan::Activate`] or
/// [`super::Plan::RecordActivation`]): it becomes active, the old active key is retained, the
/// rotation is over. The additional apps the key was cloned to sign with it too: appId is switched
/// last, so when Okta signs with the key on appId, the others do already.
pub fn activation(
    status: &SamlAppCredentialStatus,
    key: &ObservedKey,
    policy: &Policy,
    now: Timestamp,
) -> SamlAppCredentialStatus {
    let cloned = status.pending_key.as_ref().filter(|p| p.kid == key.kid).map(|p| p.cloned_to.as_slice());
    let mut next = switch_active(status, key, policy, now);
    if let Some(cloned) = cloned.filter(|apps| !apps.is_empty()) {
        next.additional_apps.retain(|app| !cloned.contains(&app.app_id));
        next.additional_apps
            .extend(cloned.iter().map(|app| AdditionalApp { app_id: app.clone(), kid: key.kid.clone() }));
        next.additional_apps.sort_by(|a, b| a.app_id.cmp(&b.app_id));
    }
    next.last_rotation_time = Some(time(now));
    next
}

/// [`super::Plan::Retire`]: these previous keys leave status, and so the Secret's bundle.
pub fn retire(status: &SamlAppCredentialStatus, kids: &[String]) -> SamlAppCredentialStatus {
    let mut next = status.clone();
    next.previous_keys.retain(|key| !kids.contains(&key.kid));
    next
}

/// Sets the condition of type `type_`. lastTransitionTime moves only when the status changes, so the
/// same state written twice is the same status (no churn for GitOps diffs or watchers).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    let mut next = Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: generation,
        last_transition_time: time(now),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status == status {
                next.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = next;
        }
        None => conditions.push(next),
    }
}
