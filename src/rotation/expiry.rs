//! Expiry warnings: the active certificate nears its notAfter (within one of
//! `spec.expiryWarningDays`) and no rotation is going ahead to replace it: the credential is
//! suspended, a Manual activation waits for approval, a rollout is stuck, or a step fails or is
//! blocked. A credential whose renewal is still ahead, or whose rotation goes on, is not warned:
//! samlcred replaces its certificate by itself.
//!
//! Each threshold warns once per active key; `status.expiryWarning` remembers the last one, so a
//! restart or a resync does not warn again.

use jiff::Timestamp;

use super::{Plan, Policy};
use crate::api::{ExpiryWarning, SamlAppCredentialStatus, conditions};

const DAY: i64 = 86_400;

/// The ExpiringSoon condition, and the warning to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub expiring: bool,
    pub reason: &'static str,
    pub message: String,
    /// A threshold crossed for the first time for the active key: emit the Warning event
    /// ExpiringSoon with `message`.
    pub warn: bool,
    /// What `status.expiryWarning` becomes.
    pub record: Option<ExpiryWarning>,
}

/// What holds the rotation that should replace the active certificate, for a plan that did not
/// fail; `None`: nothing does (a rotation goes on, or its renewal time is still ahead).
pub fn held(plan: &Plan, policy: Option<&Policy>) -> Option<String> {
    match plan {
        Plan::Report { reason, message } => Some(format!("{reason}: {message}")),
        Plan::AwaitApproval { kid } => {
            Some(format!("Manual activation of key {kid} waits for approval (samlcred.io/activate={kid})"))
        }
        Plan::AwaitRollout { stuck: true, message, .. } => {
            Some(format!("activation waits for a stuck rollout: {message}"))
        }
        _ if policy.is_some_and(|p| p.suspend) => Some("spec.suspend is true: no changes are made in Okta".into()),
        _ => None,
    }
}

/// The expiry state of `status` at `now`, under the `thresholds` (days before notAfter) and what
/// holds the rotation (see [`held`]; a failing step is held too).
pub fn expiry(status: &SamlAppCredentialStatus, thresholds: &[i32], held: Option<&str>, now: Timestamp) -> Expiry {
    let not_expiring = |message: String, record| Expiry {
        expiring: false,
        reason: conditions::REASON_NOT_EXPIRING,
        message,
        warn: false,
        record,
    };
    let Some(active) = &status.active_key else {
        return not_expiring("there is no active certificate yet".into(), None);
    };
    let recorded = status.expiry_warning.clone().filter(|w| w.kid == active.kid);
    let not_after = active.not_after.0;
    let left = not_after.as_second().saturating_sub(now.as_second());
    // The smallest threshold crossed: the one the certificate is within now.
    let Some(days) = thresholds.iter().copied().filter(|d| left <= i64::from(*d) * DAY).min() else {
        let message = match thresholds.is_empty() {
            true => "expiry warnings are off (spec.expiryWarningDays is empty)".into(),
            false => format!(
                "the active certificate expires at {not_after}, beyond the expiry warnings ({} days)",
                list(thresholds)
            ),
        };
        return not_expiring(message, recorded);
    };
    let when = match left {
        ..=0 => format!("expired at {not_after}"),
        _ => format!("expires at {not_after}, in {} day(s)", left / DAY),
    };
    let Some(held) = held else {
        // No day count here: a message that changes every day would rewrite status every day.
        let message = format!(
            "the active certificate (key {}) expires at {not_after}, within {days} days; samlcred is replacing it{}",
            active.kid,
            match (&status.rotation, &status.renewal_time) {
                (None, Some(renewal)) if renewal.0 > now => format!(" (renewal at {})", renewal.0),
                _ => String::new(),
            }
        );
        return Expiry {
            expiring: false,
            reason: conditions::REASON_ROTATION_SCHEDULED,
            message,
            warn: false,
            record: recorded,
        };
    };
    let warn = recorded.as_ref().is_none_or(|w| w.days > days);
    let message = format!(
        "the active certificate (key {}) {when}, within {days} days, and no rotation is going ahead: {held}",
        active.kid
    );
    Expiry {
        expiring: true,
        reason: conditions::REASON_ROTATION_HELD,
        message,
        warn,
        record: if warn { Some(ExpiryWarning { kid: active.kid.clone(), days }) } else { recorded },
    }
}

/// When the active certificate next crosses one of the `thresholds`, so that the reconciler is back
/// then, whatever else it waits for.
pub fn next_crossing(status: &SamlAppCredentialStatus, thresholds: &[i32], now: Timestamp) -> Option<Timestamp> {
    let not_after = status.active_key.as_ref()?.not_after.0;
    thresholds
        .iter()
        .filter_map(|days| not_after.checked_sub(jiff::SignedDuration::from_secs(i64::from(*days) * DAY)).ok())
        .filter(|at| *at > now)
        .min()
}

fn list(thresholds: &[i32]) -> String {
    let mut sorted = thresholds.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
}
