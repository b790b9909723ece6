//! Conditions and the status write. Status is written with server-side apply under samlcred's field
//! manager, and not at all when nothing changed, so resyncs cause no churn and no GitOps diff.

use super::ledger::Ledger;
use crate::api::{FIELD_MANAGER, RotationPhase, SamlAppCredential, SamlAppCredentialStatus, conditions};
use crate::rotation::record;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::sync::Mutex;

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

/// What a rotation under way waits for, beyond what status shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Manual activation: the activate annotation.
    Approval,
    /// The restart targets' rollout (`stuck`: a target is missing or stalled).
    Rollout { stuck: bool, message: String },
    /// The next activation window, which opens then.
    Window { opens_at: Timestamp },
}

/// The Rotating condition that follows from status and what the rotation waits for.
pub fn rotating_condition(status: &SamlAppCredentialStatus, waiting: Option<&Waiting>) -> ConditionState {
    match &status.rotation {
        Some(rotation) => {
            let reason = match (rotation.phase, waiting) {
                (_, Some(Waiting::Approval)) => conditions::REASON_AWAITING_APPROVAL,
                (_, Some(Waiting::Rollout { stuck: true, .. })) => conditions::REASON_ROLLOUT_STUCK,
                (_, Some(Waiting::Rollout { stuck: false, .. })) => conditions::REASON_WAITING_FOR_ROLLOUT,
                (_, Some(Waiting::Window { .. })) => conditions::REASON_WAITING_FOR_WINDOW,
                (RotationPhase::Generating, _) => "Generating",
                (RotationPhase::Published, _) => "Published",
                (RotationPhase::Activating, _) => "Activating",
            };
            let message = match (&status.pending_key, waiting) {
                (Some(pending), Some(Waiting::Approval)) => {
                    format!(
                        "key {} is published; annotate samlcred.io/activate={} to activate it",
                        pending.kid, pending.kid
                    )
                }
                (Some(pending), Some(Waiting::Rollout { message, .. })) => {
                    format!("key {} is published; activation waits for the restart targets: {message}", pending.kid)
                }
                (Some(pending), Some(Waiting::Window { opens_at })) => {
                    format!(
                        "key {} is published; activation waits for the activation window that opens at {opens_at}",
                        pending.kid
                    )
                }
                (Some(pending), _) => format!("rotating to key {}", pending.kid),
                (None, _) => "generating a new key".to_string(),
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

/// The RestartsPending condition after a reconcile that asked for the restart targets' restarts
/// (`limit`: restarts per minute).
pub fn restarts_condition(restarts: super::workloads::Restarts, limit: usize) -> ConditionState {
    match restarts {
        super::workloads::Restarts::Waiting { ahead, .. } => ConditionState {
            type_: conditions::RESTARTS_PENDING,
            status: true,
            reason: conditions::REASON_WAITING_FOR_TURN,
            message: format!(
                "waiting for its turn: {ahead} restart(s) queued ahead (at most {limit} restarts per minute)"
            ),
        },
        super::workloads::Restarts::Done => ConditionState {
            type_: conditions::RESTARTS_PENDING,
            status: false,
            reason: conditions::REASON_RESTARTED,
            message: "every restart target was restarted for the Secret's content".into(),
        },
    }
}

/// Writes a credential's status during one reconcile, and records each write in the ledger. No
/// resourceVersion precondition: the reconcile planned from the status samlcred last wrote (the
/// ledger's, when the cache lags), so there is nothing newer it could overwrite.
pub struct StatusWriter<'a> {
    api: &'a Api<SamlAppCredential>,
    name: String,
    uid: String,
    ledger: &'a Ledger,
    last: Mutex<Option<SamlAppCredentialStatus>>,
}

impl<'a> StatusWriter<'a> {
    /// `recorded`: the status the object has (as the ledger knows it).
    pub fn new(
        api: &'a Api<SamlAppCredential>,
        credential: &SamlAppCredential,
        recorded: Option<SamlAppCredentialStatus>,
        ledger: &'a Ledger,
    ) -> StatusWriter<'a> {
        StatusWriter {
            api,
            name: credential.name_any(),
            uid: credential.uid().unwrap_or_default(),
            ledger,
            last: Mutex::new(recorded),
        }
    }

    /// Writes `status` unless it is what the object already has.
    pub async fn write(&self, status: &SamlAppCredentialStatus) -> Result<bool, kube::Error> {
        if self.last.lock().unwrap().as_ref() == Some(status) {
            return Ok(false);
        }
        let patch = json!({
            "apiVersion": SamlAppCredential::api_version(&()),
            "kind": SamlAppCredential::kind(&()),
            // The uid keeps a write for a deleted object off a new one of the same name.
            "metadata": {"name": self.name, "uid": self.uid},
            "status": status,
        });
        self.api.patch_status(&self.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
        self.ledger.wrote_status(&self.uid, status);
        *self.last.lock().unwrap() = Some(status.clone());
        Ok(true)
    }
}
