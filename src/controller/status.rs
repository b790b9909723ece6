//! Conditions and the status write. Status is written with server-side apply under samlcred's field
//! manager, and not at all when nothing changed, so resyncs cause no churn and no GitOps diff.

use crate::api::{FIELD_MANAGER, RotationPhase, SamlAppCredential, SamlAppCredentialStatus, conditions};
use crate::rotation::record;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

/// A condition as samlcred decides it; the transition time is filled in by [`set_condition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionState {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Puts `state` into `conditions` (lastTransitionTime moves only when the status flips).
pub fn set_condition(conditions: &mut Vec<Condition>, state: ConditionState, generation: Option<i64>, now: Timestamp) {
    record::set_condition(conditions, state.type_, state.status, state.reason, &state.message, generation, now);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// The Rotating condition that follows from status.
pub fn rotating_condition(status: &SamlAppCredentialStatus, awaiting_approval: bool) -> ConditionState {
    match &status.rotation {
        Some(rotation) => {
            let reason = match (rotation.phase, awaiting_approval) {
                (_, true) => conditions::REASON_AWAITING_APPROVAL,
                (RotationPhase::Generating, _) => "Generating",
                (RotationPhase::Published, _) => "Published",
                (RotationPhase::Activating, _) => "Activating",
            };
            let message = match &status.pending_key {
                Some(pending) if awaiting_approval => {
                    format!(
                        "key {} is published; annotate samlcred.io/activate={} to activate it",
                        pending.kid, pending.kid
                    )
                }
                Some(pending) => format!("rotating to key {}", pending.kid),
                None => "generating a new key".to_string(),
            };
            ConditionState { type_: conditions::ROTATING, status: true, reason, message }
        }
        None => ConditionState {
            type_: conditions::ROTATING,
            status: false,
            reason: conditions::REASON_IDLE,
            message: "no rotation under way".into(),
        },
    }
}

/// Writes `status` when it differs from what the object has.
pub async fn write_status(
    api: &Api<SamlAppCredential>,
    credential: &SamlAppCredential,
    status: &SamlAppCredentialStatus,
) -> Result<bool, kube::Error> {
    if credential.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let patch = json!({
        "apiVersion": SamlAppCredential::api_version(&()),
        "kind": SamlAppCredential::kind(&()),
        "status": status,
    });
    api.patch_status(&credential.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(true)
}
