//! The ExpiringSoon condition of a credential, from [`rotation::expiry`], on the status a
//! reconcile is about to write.

use super::status::{ConditionState, set_condition};
use crate::api::{SamlAppCredential, SamlAppCredentialStatus, conditions};
use crate::rotation;
use jiff::Timestamp;

/// Sets ExpiringSoon and `expiryWarning` on `next`; returns the note of the Warning event
/// ExpiringSoon when a threshold was crossed for the first time (to emit once `next` is written).
pub fn apply(
    credential: &SamlAppCredential,
    next: &mut SamlAppCredentialStatus,
    held: Option<&str>,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<String> {
    let expiry = rotation::expiry::expiry(next, &credential.spec.expiry_warning_days, held, now);
    next.expiry_warning = expiry.record.clone();
    let state = ConditionState {
        type_: conditions::EXPIRING_SOON,
        status: expiry.expiring,
        reason: expiry.reason,
        message: expiry.message.clone(),
    };
    set_condition(&mut next.conditions, state, generation, now);
    expiry.warn.then_some(expiry.message)
}
