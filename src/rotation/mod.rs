//! The rotation planner: a pure function from everything samlcred observed to the one next step.
//!
//! The reconciler observes (the credential, the Okta app and its keys, the Secret), asks [`plan`],
//! performs that single step, records it in status with the functions of [`record`], and comes back.
//! Nothing here does I/O, so every state and every crash point is a unit test (`tests.rs`).
//!
//! # The steps, in the order they are considered
//!
//! | situation | step |
//! | --- | --- |
//! | an older credential claims the same org+app | `Report(Conflict)` |
//! | Okta answers 404 for the app | `Report(AppNotFound)` (the Secret is kept) |
//! | the Secret exists and is not ours nor marked adoptable | `Report(SecretConflict)` |
//! | Okta signs with the pending kid | `RecordActivation` |
//! | status has no active key and no rotation, Okta signs with a usable key | `Adopt` |
//! | Okta signs with a kid that is neither active nor pending | `AdoptExternalChange` |
//! | phase Generating, no pending key, a key created since `startedAt` | `ResumeWithOrphan` |
//! | phase Generating, no pending key | `Generate` |
//! | phase Generating, pending key recorded, an additional app without it | `Clone` |
//! | phase Generating, pending key recorded (and cloned) | `Publish` |
//! | previous keys past `retainUntil` | `Retire` |
//! | the Secret differs from what status says | `WriteSecret` |
//! | phase Activating, or Published and due/approved | `Activate` |
//! | ... but a restart target has not rolled out the new Secret | `AwaitRollout` (until expiry is near, then `ActivateBeforeRollout`) |
//! | ... but no activation window is open | `AwaitWindow` (unless none opens before expiry is near, then `ActivateOutsideWindow`) |
//! | phase Published, Manual, not approved | `AwaitApproval` |
//! | phase Published, Automatic, before `activateAfter` | `WaitUntil(activateAfter)` |
//! | no usable signing key in Okta | `StartRotation(NoActiveKey)` |
//! | rotate annotation differs from `lastRotateToken` | `StartRotation(Manual)` |
//! | renewal time reached | `StartRotation(Expiry)` |
//! | otherwise | `WaitUntil(earliest of renewal time and retainUntil)` |
//!
//! With `suspend: true`, every step that would write to Okta (`Generate`, `Activate`, and
//! `StartRotation`, which leads to `Generate`) becomes `Report(Suspended)`; the others go on.
//!
//! # Crash recovery
//!
//! Generating a key is not idempotent and keys cannot be deleted, so the intent to generate is
//! persisted (`StartRotation`: phase Generating, `startedAt`) *before* calling Okta. Each crash point
//! is then recovered by the next plan from what Okta and the Secret show:
//! - after generate, before the pending key reached status: phase is Generating with no pending key,
//!   and Okta lists a key created since `startedAt` that is neither active nor previous:
//!   `ResumeWithOrphan` takes it instead of generating a second one. The same covers a generate call
//!   that timed out after Okta created the key.
//! - after the Secret was written by `Publish`, before status said Published: `Publish` again; the
//!   Secret write is identical, so it changes nothing.
//! - after a clone, before `clonedTo` reached status: `Clone` again; Okta refuses a second clone
//!   of the same key with a 400 ("Key already exists"), which counts as done. No key is generated
//!   for an additional app, so none can be orphaned there.
//! - after phase Activating was recorded, before the PUT: `Activate` again (the PUT is idempotent;
//!   an app that already signs with the key is not PUT again). The additional apps are switched
//!   first and appId last, so a crash between them is still phase Activating with Okta signing
//!   with the old key on appId: `Activate` again finishes the others.
//! - after the PUT, before status: Okta signs with the pending kid, so `RecordActivation`.
//! - after a status change that changes the Secret's content (adopt, activation, retire), before the
//!   Secret was written: `WriteSecret`. Activation is planned only once the Secret is current, so the
//!   certificate Okta signs with is in the Secret from the first publish on.

pub mod expiry;
pub mod record;
#[cfg(test)]
mod tests;
pub mod window;

use jiff::{SignedDuration, Timestamp};

use crate::api::{
    ActivationPolicy, PendingKey, RotationPhase, RotationTrigger, SamlAppCredentialSpec, SamlAppCredentialStatus,
    conditions, duration,
};
use crate::secret::Ownership;
pub use window::{WindowError, WindowField, WindowProblem, Windows};

/// A key credential of the app, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedKey {
    pub kid: String,
    /// When Okta created the key; how a key generated before a crash is recognised.
    pub created: Timestamp,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub x5t_s256: String,
}

/// What Okta shows of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedApp {
    /// Okta answered 404.
    NotFound,
    Found {
        /// `credentials.signing.kid`: the key Okta signs with.
        active_kid: Option<String>,
        /// Every key credential of the app.
        keys: Vec<ObservedKey>,
    },
}

/// What the cluster shows of the Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedSecret {
    pub ownership: Ownership,
    /// The Secret already holds exactly what [`crate::secret::render`] makes of the current status
    /// (see [`crate::secret::is_current`]); false when it is absent.
    pub current: bool,
}

/// What the restart targets show, when activation waits for them (`activation.waitForRollout`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Rollout {
    /// Nothing to wait for: no targets, waitForRollout is false, or no key is published.
    #[default]
    NotWaiting,
    /// Every target runs the pod template restarted for the Secret with the pending certificate.
    Complete,
    /// Still rolling out; the message says which target is at what.
    InProgress(String),
    /// A target is missing or its rollout stalled; waiting will not help without a person.
    Stuck(String),
}

/// Everything the planner looks at.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub spec: &'a SamlAppCredentialSpec,
    /// The spec's durations, parsed once by the reconciler ([`Policy::from_spec`]); the error
    /// message when they cannot be.
    pub policy: &'a Result<Policy, String>,
    pub status: &'a SamlAppCredentialStatus,
    pub app: &'a ObservedApp,
    pub secret: ObservedSecret,
    /// Value of the `samlcred.io/rotate` annotation.
    pub rotate_token: Option<&'a str>,
    /// Value of the `samlcred.io/activate` annotation.
    pub activate_kid: Option<&'a str>,
    /// Name of an older SamlAppCredential that manages the same org and app, if any.
    pub older_claimant: Option<&'a str>,
    /// The restart targets' rollout of the Secret with the pending key (phase Published).
    pub rollout: &'a Rollout,
    pub now: Timestamp,
}

/// The one next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing can progress; set Ready=False with this reason (one of [`conditions`]) and message.
    Report { reason: &'static str, message: String },
    /// Record Okta's signing key as the active key ([`record::adopt`]) and write the Secret with
    /// it. No event: nothing changed in Okta, and status says it (an adoption costs two writes).
    Adopt { key: ObservedKey },
    /// Someone switched the app to another key in Okta: adopt it ([`record::adopt_external_change`]);
    /// Warning event ExternalKeyChange.
    AdoptExternalChange { key: ObservedKey },
    /// Okta already signs with the pending key (a crash after the PUT): [`record::activation`].
    RecordActivation { key: ObservedKey },
    /// Persist the intent to rotate before generating ([`record::start_rotation`]).
    StartRotation { trigger: RotationTrigger },
    /// Generate a key in Okta, then [`record::pending`]; event KeyGenerated.
    Generate,
    /// A key generated before a crash: take it as the pending key ([`record::pending`]).
    ResumeWithOrphan { key: ObservedKey },
    /// Clone the pending key to these additional apps (a 400 "already exists" counts as done),
    /// then [`record::cloned`]; event KeyCloned.
    Clone { kid: String, apps: Vec<String> },
    /// Write the Secret with the pending key in its bundle, then [`record::published`]; event
    /// KeyPublished.
    Publish { kid: String },
    /// [`record::activating`], PUT each additional app the key was cloned to, then appId, with
    /// this kid, then [`record::activation`]; event KeyActivated.
    Activate { kid: String },
    /// Drop these previous keys ([`record::retire`]); the Secret follows; event KeyRetired.
    Retire { kids: Vec<String> },
    /// Apply the Secret rendered from the current status.
    WriteSecret,
    /// Manual activation: waiting for `samlcred.io/activate: <kid>`.
    AwaitApproval { kid: String },
    /// Activation is due but a restart target has not rolled out the Secret with `kid` yet; look
    /// again soon, and no later than `until`, when expiry overrides the wait. `stuck`: the target is
    /// missing or its rollout stalled (Warning event RolloutStuck).
    AwaitRollout { kid: String, stuck: bool, message: String, until: Timestamp },
    /// As [`Plan::Activate`], without waiting for the rollout any longer: the active certificate
    /// expires soon. Warning event ActivatedBeforeRollout with `message`, then KeyActivated.
    ActivateBeforeRollout { kid: String, message: String },
    /// Activation is due but no activation window is open: wait until `opens_at`.
    AwaitWindow { kid: String, opens_at: Timestamp },
    /// As [`Plan::Activate`], outside the activation windows: none opens before the active
    /// certificate's expiry is near. Warning event ActivatedOutsideWindow with `message`.
    ActivateOutsideWindow { kid: String, message: String },
    /// All is done until then.
    WaitUntil(Timestamp),
}

/// How an event is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl Plan {
    /// The Event to emit once this step has been performed (reason from [`crate::api::events`]).
    pub fn event(&self) -> Option<(EventType, &'static str)> {
        use crate::api::events::*;
        let normal = |reason| Some((EventType::Normal, reason));
        match self {
            Plan::AdoptExternalChange { .. } => Some((EventType::Warning, EXTERNAL_KEY_CHANGE)),
            Plan::Generate | Plan::ResumeWithOrphan { .. } => normal(KEY_GENERATED),
            Plan::Clone { .. } => normal(KEY_CLONED),
            Plan::Publish { .. } => normal(KEY_PUBLISHED),
            Plan::Activate { .. } | Plan::RecordActivation { .. } => normal(KEY_ACTIVATED),
            Plan::ActivateBeforeRollout { .. } => Some((EventType::Warning, ACTIVATED_BEFORE_ROLLOUT)),
            Plan::ActivateOutsideWindow { .. } => Some((EventType::Warning, ACTIVATED_OUTSIDE_WINDOW)),
            Plan::AwaitRollout { stuck: true, .. } => Some((EventType::Warning, ROLLOUT_STUCK)),
            Plan::Retire { .. } => normal(KEY_RETIRED),
            Plan::Report { reason, .. } if *reason == conditions::REASON_SECRET_CONFLICT => {
                Some((EventType::Warning, SECRET_CONFLICT))
            }
            _ => None,
        }
    }
}

/// How long before the active certificate expires activation stops waiting for a rollout: 24h, or
/// half of renewBefore when that is shorter (so a short renewBefore still waits a while).
pub const ROLLOUT_EXPIRY_MARGIN: SignedDuration = SignedDuration::from_hours(24);

/// How far apart Okta's clock and ours may be when comparing a key's `created` with `startedAt`.
/// Missing a key generated just after a crash would mean generating a second one; taking a key made
/// by someone else minutes before is harmless (it is a fresh key of the app).
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// The share of renewBefore over which renewals are spread: a credential starts its rotation up to
/// this much of renewBefore earlier, never later (see [`Policy::spread`]).
pub const RENEWAL_SPREAD_SHARE: f64 = 0.10;

/// The spec's durations and windows, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub renew_before: SignedDuration,
    pub activation: ActivationPolicy,
    pub activation_delay: SignedDuration,
    pub retain_previous: SignedDuration,
    pub suspend: bool,
    /// `activation.windows`; empty: activation whenever due.
    pub windows: Windows,
    /// How much earlier than renewBefore asks this credential's rotation starts: its share of
    /// [`RENEWAL_SPREAD_SHARE`], so that credentials created together do not rotate together.
    pub renewal_spread: SignedDuration,
}

/// Why a spec cannot be planned with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Duration(#[from] duration::DurationError),
    #[error(transparent)]
    Window(#[from] WindowError),
}

impl Policy {
    /// The policy of a spec, or the message that says which duration cannot be parsed.
    pub fn of(spec: &SamlAppCredentialSpec) -> Result<Policy, String> {
        Policy::from_spec(spec).map_err(|e| e.to_string())
    }

    pub fn from_spec(spec: &SamlAppCredentialSpec) -> Result<Policy, SpecError> {
        let parse = |text: &str| {
            let parsed = duration::parse(text)?;
            // Below Go's limit (about 292 years), so always representable.
            Ok::<_, SpecError>(SignedDuration::try_from(parsed).unwrap_or(SignedDuration::MAX))
        };
        Ok(Policy {
            renew_before: parse(&spec.renew_before)?,
            activation: spec.activation.policy,
            activation_delay: parse(&spec.activation.delay)?,
            retain_previous: parse(&spec.retain_previous)?,
            suspend: spec.suspend,
            windows: Windows::parse(&spec.activation.windows)?,
            renewal_spread: SignedDuration::ZERO,
        })
    }

    /// This policy for the credential whose place in the spread is `fraction` (0..1, from its
    /// uid: `controller::spread`): its renewal starts `fraction` of [`RENEWAL_SPREAD_SHARE`] of
    /// renewBefore earlier.
    pub fn spread(mut self, fraction: f64) -> Policy {
        let share = RENEWAL_SPREAD_SHARE * fraction.clamp(0.0, 1.0);
        self.renewal_spread = SignedDuration::from_secs((self.renew_before.as_secs() as f64 * share) as i64);
        self
    }
}

/// When the next rotation starts: the active certificate's notAfter minus renewBefore, minus the
/// credential's spread ([`Policy::spread`]).
pub fn renewal_time(not_after: Timestamp, policy: &Policy) -> Timestamp {
    not_after
        .checked_sub(policy.renew_before)
        .and_then(|at| at.checked_sub(policy.renewal_spread))
        .unwrap_or(Timestamp::MIN)
}

/// The keys the Secret publishes for a status, in bundle order: active, then pending, then previous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published<'a> {
    pub active: Option<&'a str>,
    pub pending: Option<&'a str>,
    pub previous: Vec<&'a str>,
}

pub fn published(status: &SamlAppCredentialStatus) -> Published<'_> {
    Published {
        active: status.active_key.as_ref().map(|key| key.kid.as_str()),
        pending: status.pending_key.as_ref().map(|key| key.kid.as_str()),
        previous: status.previous_keys.iter().map(|key| key.kid.as_str()).collect(),
    }
}

impl Published<'_> {
    /// Every kid, in bundle order.
    pub fn kids(&self) -> Vec<&str> {
        self.active.iter().chain(&self.pending).chain(&self.previous).copied().collect()
    }
}

/// When the reconciler should come back for this plan: the time of a wait, or `None` for "act now".
pub fn next_wake(plan: &Plan) -> Option<Timestamp> {
    match plan {
        Plan::WaitUntil(at) => Some(*at),
        _ => None,
    }
}

/// Decides the one next step. Each stage below either decides or passes; see the module
/// documentation for the whole order.
pub fn plan(input: &PlanInput) -> Plan {
    let policy = match input.policy {
        Ok(policy) => policy,
        Err(err) => return report(conditions::REASON_INVALID_SPEC, err.clone()),
    };
    let (okta_kid, keys) = match input.app {
        ObservedApp::Found { active_kid, keys } => (active_kid.as_deref(), keys.as_slice()),
        ObservedApp::NotFound => (None, [].as_slice()),
    };
    let planner = Planner {
        input,
        status: input.status,
        policy,
        keys,
        okta_active: okta_kid.and_then(|kid| keys.iter().find(|key| key.kid == kid)),
    };
    planner
        .blocked()
        .or_else(|| planner.follow_okta())
        .or_else(|| planner.generating())
        .or_else(|| planner.retire())
        .or_else(|| planner.write_secret())
        .or_else(|| planner.activation())
        .unwrap_or_else(|| planner.next_rotation())
}

struct Planner<'a> {
    input: &'a PlanInput<'a>,
    status: &'a SamlAppCredentialStatus,
    policy: &'a Policy,
    keys: &'a [ObservedKey],
    /// The key Okta signs with, when Okta lists it.
    okta_active: Option<&'a ObservedKey>,
}

impl Planner<'_> {
    /// Conditions under which nothing may be written at all.
    fn blocked(&self) -> Option<Plan> {
        let spec = self.input.spec;
        if let Some(other) = self.input.older_claimant {
            let message = format!("SamlAppCredential {other} already manages app {} of this org", spec.app_id);
            return Some(report(conditions::REASON_CONFLICT, message));
        }
        if *self.input.app == ObservedApp::NotFound {
            return Some(report(conditions::REASON_APP_NOT_FOUND, format!("Okta has no app {}", spec.app_id)));
        }
        if self.input.secret.ownership == Ownership::Foreign {
            let message = format!(
                "Secret {} exists and is not managed by this SamlAppCredential; \
                 annotate it samlcred.io/adopt=true to let samlcred take it over",
                spec.secret_name
            );
            return Some(report(conditions::REASON_SECRET_CONFLICT, message));
        }
        None
    }

    /// Okta is the source of truth for which key signs: status follows it first.
    fn follow_okta(&self) -> Option<Plan> {
        let key = self.okta_active?;
        let active_kid = self.status.active_key.as_ref().map(|active| active.kid.as_str());
        if Some(key.kid.as_str()) == active_kid {
            return None;
        }
        let key = key.clone();
        Some(if self.status.pending_key.as_ref().is_some_and(|pending| pending.kid == key.kid) {
            Plan::RecordActivation { key }
        } else if active_kid.is_none() && self.status.rotation.is_none() {
            Plan::Adopt { key }
        } else {
            Plan::AdoptExternalChange { key }
        })
    }

    /// Phase Generating: get exactly one new key, then publish it.
    fn generating(&self) -> Option<Plan> {
        let rotation = self.status.rotation.as_ref().filter(|r| r.phase == RotationPhase::Generating)?;
        Some(match &self.status.pending_key {
            Some(pending) => match uncloned(&self.input.spec.additional_app_ids, pending) {
                apps if apps.is_empty() => Plan::Publish { kid: pending.kid.clone() },
                apps => self.okta_write(Plan::Clone { kid: pending.kid.clone(), apps }),
            },
            None => match orphan(self.keys, self.status, rotation.started_at.0) {
                Some(key) => Plan::ResumeWithOrphan { key: key.clone() },
                None => self.okta_write(Plan::Generate),
            },
        })
    }

    fn retire(&self) -> Option<Plan> {
        let now = self.input.now;
        let kids: Vec<String> = self
            .status
            .previous_keys
            .iter()
            .filter(|key| key.retain_until.0 <= now)
            .map(|key| key.kid.clone())
            .collect();
        (!kids.is_empty()).then_some(Plan::Retire { kids })
    }

    /// Before anything else changes in Okta, the Secret holds what status says.
    fn write_secret(&self) -> Option<Plan> {
        let has_content = self.status.active_key.is_some() || self.status.pending_key.is_some();
        let secret = self.input.secret;
        (has_content && (!secret.current || secret.ownership != Ownership::Ours)).then_some(Plan::WriteSecret)
    }

    /// Phases Published and Activating: switch Okta to the pending key when due or approved.
    fn activation(&self) -> Option<Plan> {
        let rotation = self.status.rotation.as_ref()?;
        let Some(pending) = &self.status.pending_key else {
            // Published or Activating without a pending key cannot be reached through `record`;
            // should status be edited by hand, start over rather than guess.
            return Some(self.okta_write(Plan::StartRotation { trigger: rotation.trigger }));
        };
        let activate = Plan::Activate { kid: pending.kid.clone() };
        if rotation.phase == RotationPhase::Activating || rotation.trigger == RotationTrigger::NoActiveKey {
            // Activating was already decided; and nothing signs successfully without an active key,
            // so there is nothing to wait for.
            return Some(self.okta_write(activate));
        }
        Some(match self.policy.activation {
            ActivationPolicy::Manual if self.input.activate_kid == Some(pending.kid.as_str()) => {
                self.after_rollout(&pending.kid)
            }
            ActivationPolicy::Manual => Plan::AwaitApproval { kid: pending.kid.clone() },
            ActivationPolicy::Automatic => match pending.activate_after.as_ref().map(|at| at.0) {
                Some(at) if at > self.input.now => Plan::WaitUntil(earliest(at, self.status)),
                _ => self.after_rollout(&pending.kid),
            },
        })
    }

    /// An activation that is due, once the restart targets run the Secret with the pending key.
    /// Expiry beats the wait: an SP that has not reloaded fails for a while, an expired
    /// certificate fails every SP.
    fn after_rollout(&self, kid: &str) -> Plan {
        let (stuck, message) = match self.input.rollout {
            Rollout::NotWaiting | Rollout::Complete => return self.in_window(kid),
            Rollout::InProgress(message) => (false, message),
            Rollout::Stuck(message) => (true, message),
        };
        let until = self.rollout_deadline();
        if until <= self.input.now {
            let message = format!(
                "activating key {kid} before the rollout finished ({message}): the active certificate expires at {}",
                self.status.active_key.as_ref().map(|k| k.not_after.0.to_string()).unwrap_or_default()
            );
            return self.okta_write(Plan::ActivateBeforeRollout { kid: kid.into(), message });
        }
        Plan::AwaitRollout { kid: kid.into(), stuck, message: message.clone(), until }
    }

    /// An activation that is due and rolled out, inside an activation window. Expiry beats the
    /// windows as it beats the rollout: when none opens before [`Planner::rollout_deadline`],
    /// activate now rather than at the last moment.
    fn in_window(&self, kid: &str) -> Plan {
        let now = self.input.now;
        let windows = &self.policy.windows;
        if windows.is_open(now) {
            return self.okta_write(Plan::Activate { kid: kid.into() });
        }
        let deadline = self.rollout_deadline();
        if let Some(opens_at) = windows.next_open(now, deadline) {
            return Plan::AwaitWindow { kid: kid.into(), opens_at };
        }
        let expires = self.status.active_key.as_ref().map(|k| k.not_after.0.to_string()).unwrap_or_default();
        let message = format!(
            "activating key {kid} outside the activation windows: none opens before {deadline}, \
             and the active certificate expires at {expires}"
        );
        self.okta_write(Plan::ActivateOutsideWindow { kid: kid.into(), message })
    }

    /// When waiting for a rollout stops: [`ROLLOUT_EXPIRY_MARGIN`] (or half of renewBefore)
    /// before the active certificate expires.
    fn rollout_deadline(&self) -> Timestamp {
        let Some(active) = &self.status.active_key else { return self.input.now };
        let margin = ROLLOUT_EXPIRY_MARGIN.min(self.policy.renew_before / 2);
        active.not_after.0.checked_sub(margin).unwrap_or(Timestamp::MIN)
    }

    /// No rotation under way: start one if due, otherwise wait for the next thing that will be.
    fn next_rotation(&self) -> Plan {
        let Some(active) = self.status.active_key.as_ref().filter(|_| self.okta_active.is_some()) else {
            return self.okta_write(Plan::StartRotation { trigger: RotationTrigger::NoActiveKey });
        };
        let token = self.input.rotate_token;
        if token.is_some() && token != self.status.last_rotate_token.as_deref() {
            return self.okta_write(Plan::StartRotation { trigger: RotationTrigger::Manual });
        }
        let renewal = renewal_time(active.not_after.0, self.policy);
        if renewal <= self.input.now {
            return self.okta_write(Plan::StartRotation { trigger: RotationTrigger::Expiry });
        }
        Plan::WaitUntil(earliest(renewal, self.status))
    }

    /// Steps that write to Okta wait while the credential is suspended. `StartRotation` counts: it
    /// leads straight to `Generate`.
    fn okta_write(&self, plan: Plan) -> Plan {
        if self.policy.suspend {
            report(conditions::REASON_SUSPENDED, "spec.suspend is true: no changes are made in Okta".into())
        } else {
            plan
        }
    }
}

fn report(reason: &'static str, message: String) -> Plan {
    Plan::Report { reason, message }
}

/// A key generated for this rotation whose recording was lost: created since the rotation started
/// and not otherwise known. The oldest wins should there ever be several.
fn orphan<'k>(
    keys: &'k [ObservedKey],
    status: &SamlAppCredentialStatus,
    started_at: Timestamp,
) -> Option<&'k ObservedKey> {
    let since = started_at.checked_sub(CLOCK_SKEW).unwrap_or(Timestamp::MIN);
    let known = |kid: &str| {
        status.active_key.as_ref().is_some_and(|key| key.kid == kid)
            || status.previous_keys.iter().any(|key| key.kid == kid)
    };
    keys.iter()
        .filter(|key| key.created >= since && !known(&key.kid))
        .min_by(|a, b| (a.created, &a.kid).cmp(&(b.created, &b.kid)))
}

/// The additional apps the pending key has not been cloned to yet, in spec order.
fn uncloned(additional: &[String], pending: &PendingKey) -> Vec<String> {
    additional.iter().filter(|app| !pending.cloned_to.contains(app)).cloned().collect()
}

/// The additional apps whose metadata the Secret carries, each with a kid of the shared key it
/// holds (Okta serves an app's metadata only for its own keys): the active kid once samlcred
/// activated it there, else the pending kid once it was cloned there. Apps in neither state (added
/// since the last rotation) are left out. In spec order.
pub fn shared_apps<'a>(additional: &'a [String], status: &'a SamlAppCredentialStatus) -> Vec<(&'a str, &'a str)> {
    let active = status.active_key.as_ref().map(|key| key.kid.as_str());
    additional
        .iter()
        .filter_map(|app| {
            let activated = status.additional_apps.iter().find(|a| a.app_id == *app && Some(a.kid.as_str()) == active);
            let cloned = status.pending_key.as_ref().filter(|pending| pending.cloned_to.contains(app));
            let kid = activated.map(|a| a.kid.as_str()).or(cloned.map(|pending| pending.kid.as_str()))?;
            Some((app.as_str(), kid))
        })
        .collect()
}

/// The additional apps an activation of the pending key switches: those it was cloned to that
/// the spec still names, in spec order.
pub fn apps_to_activate<'a>(additional: &'a [String], status: &SamlAppCredentialStatus) -> Vec<&'a str> {
    let Some(pending) = &status.pending_key else { return vec![] };
    additional.iter().filter(|app| pending.cloned_to.contains(app)).map(String::as_str).collect()
}

/// `at`, or an earlier retainUntil: the next time something is due.
pub fn earliest(at: Timestamp, status: &SamlAppCredentialStatus) -> Timestamp {
    status.previous_keys.iter().map(|key| key.retain_until.0).fold(at, Timestamp::min)
}
