//! The SamlAppCredential reconciler: observe (the credential, Okta, the Secret), ask the planner for
//! the one next step, perform it, record it in status, and say when to come back.

use super::ledger::Entry;
use super::observe::{self, Need, OktaSnapshot, key_record};
use super::secrets::{Observed, Observing, publish};
use super::status::{ConditionState, StatusWriter, Waiting, restarts_condition, rotating_condition, set_condition};
use super::workloads::{self, Restarts};
use super::{Context, failpoint};
use crate::api::{RotationPhase, SamlAppCredential, SamlAppCredentialStatus, annotations, conditions, events};
use crate::metadata::MetadataError;
use crate::okta::{Cloned, ErrorClass, OktaError};
use crate::rotation::{self, ObservedSecret, Plan, PlanInput, Policy, record};
use crate::secret::Ownership;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use std::sync::Arc;
use std::time::Duration;

/// Why a reconcile could not finish its step. Becomes Ready=False, a Warning event and a backoff.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Okta(#[from] OktaError),
    #[error("{0}")]
    Org(#[from] super::orgs::OrgError),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the spec's durations cannot be parsed")]
    InvalidSpec,
    #[error("Okta answered the activation of {kid} but still signs with {actual:?}")]
    ActivationNotConfirmed { kid: String, actual: Option<String> },
    #[error("additional app {app}: Okta answered the activation of {kid} but still signs with {actual:?}")]
    AppActivationNotConfirmed { app: String, kid: String, actual: Option<String> },
    /// A call for one of spec.additionalAppIds failed; names the app.
    #[error("additional app {app}: {source}")]
    AdditionalApp { app: String, source: Box<OktaError> },
    /// Okta's clone of the pending key on an additional app is not the same certificate.
    #[error("additional app {app}: Okta's clone of key {kid} has another certificate; it is not activated")]
    CloneMismatch { app: String, kid: String },
    /// The Secret cannot be rendered, so it is left as it is.
    #[error("Okta's SAML metadata for the active key cannot be published: {0}")]
    InvalidMetadata(#[from] MetadataError),
}

impl StepError {
    /// The condition reason and event reason for this failure.
    pub fn reason(&self) -> &'static str {
        use super::orgs::OrgError;
        match self {
            StepError::Okta(OktaError::RateLimited { .. }) => conditions::REASON_RATE_LIMITED,
            StepError::AdditionalApp { source, .. } if matches!(**source, OktaError::RateLimited { .. }) => {
                conditions::REASON_RATE_LIMITED
            }
            StepError::Okta(_)
            | StepError::ActivationNotConfirmed { .. }
            | StepError::AppActivationNotConfirmed { .. }
            | StepError::AdditionalApp { .. }
            | StepError::CloneMismatch { .. } => conditions::REASON_OKTA_ERROR,
            StepError::Org(OrgError::NotFound { .. }) => conditions::REASON_ORG_NOT_FOUND,
            StepError::Org(OrgError::NotAllowed { .. }) => conditions::REASON_ORG_NOT_ALLOWED,
            StepError::Org(OrgError::AppNotAllowed { .. }) => conditions::REASON_APP_NOT_ALLOWED,
            StepError::Org(OrgError::InvalidSpec(_)) | StepError::InvalidSpec => conditions::REASON_INVALID_SPEC,
            StepError::InvalidMetadata(_) => conditions::REASON_INVALID_METADATA,
            StepError::Org(OrgError::Kube(_)) | StepError::Kube(_) => "KubernetesError",
        }
    }

    /// Whether trying again soon can help: a rate limit, a 5xx or a timeout can pass; a 403, a
    /// missing org or an unparsable spec waits for a change.
    pub fn class(&self) -> ErrorClass {
        use super::orgs::OrgError;
        match self {
            StepError::Okta(e) => e.class(),
            StepError::AdditionalApp { source, .. } => source.class(),
            StepError::CloneMismatch { .. } => ErrorClass::Terminal,
            StepError::Org(OrgError::Kube(_))
            | StepError::Kube(_)
            | StepError::ActivationNotConfirmed { .. }
            | StepError::AppActivationNotConfirmed { .. } => ErrorClass::Retryable,
            StepError::Org(_) | StepError::InvalidSpec | StepError::InvalidMetadata(_) => ErrorClass::Terminal,
        }
    }

    /// How long until Okta's rate limit lets the step be tried again, when that is why it failed.
    pub fn rate_limit_reset(&self) -> Option<Duration> {
        match self {
            StepError::Okta(err @ OktaError::RateLimited { .. }) => err.retry_after(),
            StepError::AdditionalApp { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}

/// When a reconcile whose org used up its share of the workers tries again.
const ORG_SHARE_RETRY: Duration = Duration::from_millis(500);

/// How often a rotation waiting for its restart targets looks at them again.
const ROLLOUT_POLL: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

/// A planned wait shorter than this keeps the key material for the step after it (an activation
/// due minutes after publication renders the Secret again); a longer one frees it.
const KEEP_MATERIAL_FOR: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// How often a reconcile that finds the caches not yet synced comes back.
const CACHE_SYNC_RETRY: Duration = Duration::from_secs(1);

/// What one reconcile did, for the status conditions, the event and the requeue.
struct Done {
    status: SamlAppCredentialStatus,
    ready: ConditionState,
    waiting: Option<Waiting>,
    wake_at: Option<Timestamp>,
    /// The note of the plan's event ([`Plan::event`]); `None`: nothing to say this time.
    note: Option<String>,
    /// What holds the rotation that should replace the active certificate ([`rotation::expiry::held`]).
    held: Option<String>,
    /// What became of the restart targets' restarts, when this reconcile asked for them.
    restarts: Option<Restarts>,
}

pub async fn reconcile(credential: Arc<SamlAppCredential>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    // A reconcile must not take a Secret that the cache has not listed yet for absent.
    if !ctx.caches_ready(CACHE_SYNC_RETRY).await {
        return Ok(Action::requeue(CACHE_SYNC_RETRY));
    }
    let namespace = credential.namespace().unwrap_or_default();
    let api: Api<SamlAppCredential> = Api::namespaced(ctx.kube.clone(), &namespace);
    let now = Timestamp::now();
    let generation = credential.metadata.generation;
    let uid = credential.uid().unwrap_or_default();
    // The status samlcred last wrote, should the cache not show it yet: see `ledger`.
    let (entry, recorded) = ctx.ledger.read(&uid, credential.status.as_ref());
    if let Some(wait) = entry.not_before.and_then(|at| Duration::try_from(at.duration_since(now)).ok()) {
        // Okta's rate limit has no room before its reset: coming back earlier (say, for
        // samlcred's own status write) would only fail again.
        return Ok(Action::requeue(wait));
    }
    if let Some(wait) = backoff_remaining(&ctx.settings, recorded.as_ref(), generation, now) {
        // Still backing off from the last failure: this reconcile was triggered by an event (often
        // samlcred's own status write), not by the requeue the failure asked for.
        return Ok(Action::requeue(wait));
    }
    let policy = policy_of(&credential);
    let status = status_for_planning(recorded.clone(), &policy, generation);
    // Held until the reconcile ends. An org that already uses its share of the workers (it may be
    // stalling) must not take the others' too: give this worker back and come back shortly.
    let Some(_slot) = ctx.org_shares.try_take(&super::org_key(&credential)) else {
        return Ok(Action::requeue(ORG_SHARE_RETRY));
    };

    let started = std::time::Instant::now();
    let writer = StatusWriter::new(&api, &credential, recorded, &ctx.ledger);
    let result = step(&credential, &ctx, &writer, &entry, status.clone(), &policy, now).await;
    ctx.metrics.reconcile_duration(started.elapsed());
    let mut not_before = None;
    let (mut next, action, held) = match result {
        Ok(done) => {
            let held = done.held;
            let mut next = done.status;
            next.failed_attempts = 0;
            next.last_failure_time = None;
            set_condition(&mut next.conditions, done.ready, generation, now);
            let rotating = rotating_condition(&next, done.waiting.as_ref());
            set_condition(&mut next.conditions, rotating, generation, now);
            let known = next.conditions.iter().any(|c| c.type_ == conditions::RESTARTS_PENDING);
            if let Some(restarts) = done.restarts.filter(|r| known || *r != Restarts::Done) {
                set_condition(
                    &mut next.conditions,
                    restarts_condition(restarts, ctx.restarts.limit()),
                    generation,
                    now,
                );
            }
            // Back when an expiry warning threshold is crossed, to warn in time.
            let crossing = rotation::expiry::next_crossing(&next, &credential.spec.expiry_warning_days, now);
            let action = match done.wake_at.map(|at| crossing.map_or(at, |c| at.min(c))) {
                Some(at) => ctx.settings.requeue_at(now, at),
                None => Action::requeue(Duration::from_millis(100)),
            };
            (next, action, held)
        }
        Err(failure) => {
            let reason = failure.reason();
            ctx.metrics.reconcile_error(reason);
            let message = failure.to_string();
            tracing::warn!(credential = %credential.name_any(), namespace, reason, "{message}");
            ctx.publish(&*credential, EventType::Warning, events::OKTA_ERROR, &message, reason).await;
            let mut next = status.clone();
            next.failed_attempts = status.failed_attempts.saturating_add(1);
            next.last_failure_time = Some(record::time(now));
            // A rate limit says when to come back: at the reset, not after the backoff, and without
            // waiting for it inside this reconcile.
            not_before = failure.rate_limit_reset().and_then(|wait| {
                let wait = jiff::SignedDuration::try_from(wait).ok()?;
                now.checked_add(wait).ok()
            });
            let held = Some(format!("the last attempt failed ({reason}): {message}"));
            let ready = ConditionState { type_: conditions::READY, status: false, reason, message };
            set_condition(&mut next.conditions, ready, generation, now);
            let rotating = rotating_condition(&next, None);
            set_condition(&mut next.conditions, rotating, generation, now);
            let action = match (not_before, failure.class()) {
                (Some(at), _) => ctx.settings.requeue_at(now, at),
                // Trying again soon cannot help (a 403, a bad spec): a change of the credential,
                // its org or the org's Secret triggers a reconcile, and the resync comes anyway.
                (None, ErrorClass::Terminal) => ctx.settings.requeue_at(now, now + ctx.settings.okta_resync),
                (None, ErrorClass::Retryable) => Action::requeue(ctx.settings.backoff(next.failed_attempts)),
            };
            (next, action, held)
        }
    };
    let warning = super::expiry::apply(&credential, &mut next, held.as_deref(), generation, now);
    writer.write(&next).await?;
    if let Some(note) = warning {
        // After the write that records it: a warning is emitted once per threshold, restarts included.
        ctx.publish(&*credential, EventType::Warning, events::EXPIRING_SOON, &note, "Warn").await;
    }
    // Only a rate limit that status records is remembered: should the write fail, the retry must
    // run the step again and record it, not sit out a reset nobody can see.
    ctx.ledger.set_not_before(&uid, not_before);
    ctx.metrics.observe_credential(&credential, &next);
    Ok(action)
}

/// Observes, plans, performs the one step. Okta is read only as far as the plan needs (see
/// `observe`): a plan made on what the ledger kept is checked against what it needs, and made
/// again after reading more.
async fn step(
    credential: &SamlAppCredential,
    ctx: &Context,
    writer: &StatusWriter<'_>,
    entry: &Entry,
    status: SamlAppCredentialStatus,
    policy: &Result<Policy, String>,
    now: Timestamp,
) -> Result<Done, StepError> {
    let name = credential.name_any();
    let namespace = credential.namespace().unwrap_or_default();
    let uid = credential.uid().unwrap_or_default();
    let spec = &credential.spec;
    let (org_key, okta) = ctx.orgs.for_credential(&namespace, &spec.org_ref, &spec.app_id).await?;
    let older_claimant = ctx.older_claimant(credential, &org_key).await;
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);

    // After a restart a settled credential waits on what status says; its first resync is spread
    // over the interval by its uid, so a restart does not read every app at once.
    let kept = entry.okta.clone().filter(|s| s.is_of(&okta, &spec.app_id)).or_else(|| {
        let trusted = OktaSnapshot::trusted(&status, okta.clone(), &spec.app_id, now);
        settled(&status, credential.metadata.generation).then_some(trusted).flatten()
    });
    let phase = ctx.caches.phase(&uid).unwrap_or_else(|| super::spread(&uid));
    let mut snapshot = match kept {
        Some(snapshot) => snapshot,
        None => observe::read(&okta, &spec.app_id, now).await?,
    };
    snapshot.phase = phase;
    let generation = credential.metadata.generation;
    if snapshot.resync_at(ctx.settings.okta_resync) <= now || snapshot.generation.is_some_and(|g| Some(g) != generation)
    {
        snapshot = observe::refresh(snapshot, now).await?;
    }
    let mut observing = Observing {
        credential,
        kube: &ctx.kube,
        secrets: &secrets,
        caches: Some(&ctx.caches),
        seen: entry.secret.clone(),
    };
    let (mut observed, mut plan) = (None, None);
    // At most: the kept view, then a read, then the material.
    for _ in 0..3 {
        let current = observing.observe(&status, snapshot.clone()).await?;
        let input = plan_input(credential, &status, policy, &current, older_claimant.as_deref(), now);
        let planned = rotation::plan(&input);
        let need = observe::need(&planned, &status);
        let satisfied = observe::satisfies(&snapshot, &need);
        (observed, plan) = (Some(current), Some(planned));
        if satisfied {
            break;
        }
        snapshot = match need {
            Need::Material(kid, rotation, apps) => {
                observe::with_material(snapshot, kid.as_deref(), rotation, &apps, now).await?
            }
            Need::Read | Need::Nothing => observe::read(&okta, &spec.app_id, now).await?,
        };
    }
    let (Some(observed), Some(plan)) = (observed, plan) else { unreachable!("the loop runs at least once") };
    let secret_hash = observing.seen.as_ref().map(|seen| seen.hash.clone());
    if let Some(seen) = observing.seen.take() {
        ctx.ledger.set_secret(&uid, Some(seen));
    }
    tracing::debug!(credential = %name, namespace, ?plan, "planned");
    let held = rotation::expiry::held(&plan, policy.as_ref().ok());
    let policy = || policy.as_ref().map_err(|_| StepError::InvalidSpec);
    let ready_now = ready_condition(&status, &snapshot.app, observed.ownership == Ownership::Ours && observed.current);
    let mut done = Done {
        status: status.clone(),
        ready: ready_now,
        waiting: None,
        wake_at: None,
        note: None,
        held,
        restarts: None,
    };
    match &plan {
        Plan::Report { reason, message } => {
            // A report with an event of its own (SecretConflict) announces it once, when it starts.
            let reported = status.conditions.iter().any(|c| c.type_ == conditions::READY && c.reason == *reason);
            done.note = (!reported).then(|| message.clone());
            done.ready = ConditionState { type_: conditions::READY, status: false, reason, message: message.clone() };
            done.wake_at = Some(now + ctx.settings.okta_resync);
        }
        Plan::Adopt { key } => {
            // The Secret is written with the adopted key in the same step: an adoption costs one
            // Secret write and one status write.
            let next = record::adopt(&status, key, policy()?);
            done.restarts = Some(publish(ctx, credential, &secrets, &next, &snapshot).await?);
            done.ready = ready_condition(&next, &snapshot.app, true);
            done.status = next;
            done.note = Some(format!("adopted Okta's active key {}", key.kid));
        }
        Plan::AdoptExternalChange { key } => {
            done.status = record::adopt_external_change(&status, key, policy()?, now);
            done.note =
                Some(format!("Okta now signs with key {}, which samlcred did not activate; adopted it", key.kid));
        }
        Plan::RecordActivation { key } => {
            // Okta already signed with the pending key: samlcred's activation was not recorded (a crash).
            done.status = record::activation(&status, key, policy()?, now);
            ctx.metrics.rotation("succeeded");
            done.note = Some(format!("Okta signs with key {}", key.kid));
        }
        Plan::StartRotation { trigger } => {
            done.status = record::start_rotation(&status, *trigger, plan_rotate_token(credential), now);
            // The intent must be durable before Okta is asked for a key: see rotation's crash recovery.
            writer.write(&with_generation(&done.status, &status)).await?;
        }
        Plan::Generate => {
            let validity = spec.validity_years.clamp(2, 10) as u8;
            let generated = okta.generate_key(&spec.app_id, validity).await;
            // A failed generate may still have made a key: the next reconcile reads Okta afresh.
            let key = match generated.map_err(StepError::from).and_then(|k| Ok(key_record(k)?)) {
                Ok(key) => key,
                Err(e) => {
                    ctx.ledger.set_okta(&uid, None);
                    return Err(e);
                }
            };
            failpoint("after-generate");
            done.status = record::pending(&status, &key.observed);
            done.note = Some(format!("generated key {} valid until {}", key.observed.kid, key.observed.not_after));
            snapshot = snapshot.with_generated(&key);
        }
        Plan::ResumeWithOrphan { key } => {
            done.status = record::pending(&status, key);
            done.note =
                Some(format!("took key {} generated before an interruption instead of generating another", key.kid));
        }
        Plan::Clone { kid, apps } => {
            let pending = status.pending_key.as_ref().map(|k| k.x5t_s256.as_str()).unwrap_or_default();
            for app in apps {
                let additional = |source| StepError::AdditionalApp { app: app.clone(), source: Box::new(source) };
                match okta.clone_key(&spec.app_id, kid, app).await {
                    // A clone repeated after a crash: the app holds the key already.
                    Ok(Cloned::AlreadyThere) => {}
                    Ok(Cloned::Created(key)) => {
                        let thumbprint = key.certificate().map_err(additional)?.x5t_s256;
                        if thumbprint != pending {
                            return Err(StepError::CloneMismatch { app: app.clone(), kid: kid.clone() });
                        }
                    }
                    Err(e) => {
                        ctx.ledger.set_okta(&uid, None);
                        return Err(additional(e));
                    }
                }
            }
            failpoint("after-clone");
            done.status = record::cloned(&status, apps);
            done.note = Some(format!("cloned key {kid} to app(s) {}", apps.join(", ")));
        }
        Plan::Publish { kid } => {
            done.restarts = Some(publish(ctx, credential, &secrets, &status, &snapshot).await?);
            failpoint("after-publish");
            done.status = record::published(&status, policy()?, now);
            done.note = Some(format!("published key {kid} in Secret {}", spec.secret_name));
        }
        Plan::AwaitRollout { stuck, message, until, .. } => {
            // A stuck target is announced once, when it starts holding activation.
            let announced = status.conditions.iter().any(|c| {
                c.type_ == conditions::ROTATING
                    && c.reason == conditions::REASON_ROLLOUT_STUCK
                    && c.message.contains(message.as_str())
            });
            if *stuck && !announced {
                let pending = status.pending_key.as_ref().map(|k| k.kid.as_str()).unwrap_or_default();
                done.note = Some(format!("activation of key {pending} waits: {message}"));
            }
            done.waiting = Some(Waiting::Rollout { stuck: *stuck, message: message.clone() });
            // Workloads are not watched (no list/watch on them): look again shortly.
            done.wake_at = Some((now + ROLLOUT_POLL).min(*until));
        }
        Plan::AwaitWindow { opens_at, .. } => {
            done.waiting = Some(Waiting::Window { opens_at: *opens_at });
            done.wake_at = Some(rotation::earliest(*opens_at, &status));
        }
        Plan::Activate { kid } | Plan::ActivateBeforeRollout { kid, .. } | Plan::ActivateOutsideWindow { kid, .. } => {
            let activating = record::activating(&status);
            writer.write(&with_generation(&activating, &status)).await?;
            // The additional apps first: appId switching is what marks the activation done.
            for app in rotation::apps_to_activate(&spec.additional_app_ids, &status) {
                let answer = match okta.ensure_active_key(app, kid).await {
                    Ok(answer) => answer,
                    Err(source) => {
                        ctx.ledger.set_okta(&uid, None);
                        return Err(StepError::AdditionalApp { app: app.to_string(), source: Box::new(source) });
                    }
                };
                if answer.active_kid() != Some(kid.as_str()) {
                    ctx.ledger.set_okta(&uid, None);
                    return Err(StepError::AppActivationNotConfirmed {
                        app: app.to_string(),
                        kid: kid.clone(),
                        actual: answer.active_kid().map(str::to_string),
                    });
                }
                failpoint("after-activate-additional");
            }
            let app = match okta.activate_key(&spec.app_id, kid).await {
                Ok(app) => app,
                Err(e) => {
                    ctx.ledger.set_okta(&uid, None);
                    return Err(e.into());
                }
            };
            failpoint("after-activate");
            if app.active_kid() != Some(kid.as_str()) {
                ctx.ledger.set_okta(&uid, None);
                return Err(StepError::ActivationNotConfirmed {
                    kid: kid.clone(),
                    actual: app.active_kid().map(str::to_string),
                });
            }
            let key = match &snapshot.app {
                rotation::ObservedApp::Found { keys, .. } => keys.iter().find(|k| k.kid == *kid).cloned(),
                rotation::ObservedApp::NotFound => None,
            };
            let key = match key {
                Some(key) => key,
                None => key_record(okta.get_key(&spec.app_id, kid).await?)?.observed,
            };
            done.status = record::activation(&activating, &key, policy()?, now);
            ctx.metrics.rotation("succeeded");
            done.note = Some(match &plan {
                Plan::ActivateBeforeRollout { message, .. } | Plan::ActivateOutsideWindow { message, .. } => {
                    format!("{message}; Okta signs with key {kid}")
                }
                _ => format!("Okta signs with key {kid}"),
            });
            snapshot = snapshot.with_active(kid);
        }
        Plan::Retire { kids } => {
            done.status = record::retire(&status, kids);
            done.note = Some(format!("retired key(s) {} from the bundle", kids.join(", ")));
        }
        Plan::WriteSecret => {
            done.restarts = Some(publish(ctx, credential, &secrets, &status, &snapshot).await?);
            done.ready = ready_condition(&status, &snapshot.app, true);
        }
        Plan::AwaitApproval { .. } => {
            done.waiting = Some(Waiting::Approval);
            done.wake_at = Some(now + ctx.settings.okta_resync);
        }
        Plan::WaitUntil(at) => {
            done.wake_at = Some(*at);
        }
    }
    // Restarts that waited for their turn (status says so, also after a restart of samlcred) are
    // asked for again while the Secret they are for is the current one.
    let restarts_waiting =
        status.conditions.iter().any(|c| c.type_ == conditions::RESTARTS_PENDING && c.status == "True");
    if let (None, true, true, Some(hash)) = (done.restarts, restarts_waiting, observed.current, &secret_hash) {
        done.restarts = Some(workloads::restart_for(ctx, credential, hash, false).await);
    }
    if let Some(Restarts::Waiting { retry_in, .. }) = done.restarts {
        let turn = now + jiff::SignedDuration::try_from(retry_in).unwrap_or_default();
        done.wake_at = done.wake_at.map(|at| at.min(turn));
    }
    if let (Some((type_, reason)), Some(note)) = (plan.event(), done.note.as_deref()) {
        let type_ = match type_ {
            rotation::EventType::Normal => EventType::Normal,
            rotation::EventType::Warning => EventType::Warning,
        };
        ctx.publish(credential, type_, reason, note, action_of(&plan)).await;
    }
    // Okta is read again for drift at the credential's next turn in the resync schedule.
    (snapshot.generation, snapshot.phase) = (generation, phase);
    let resync_at = snapshot.resync_at(ctx.settings.okta_resync);
    done.wake_at = done.wake_at.map(|at| at.min(resync_at));
    let keep = done.wake_at.is_none_or(|at| at.duration_since(now) < KEEP_MATERIAL_FOR);
    ctx.ledger.set_okta(&uid, Some(if keep { snapshot } else { snapshot.compact() }));
    Ok(done)
}

/// The event action of a step.
fn action_of(plan: &Plan) -> &'static str {
    match plan {
        Plan::Report { .. } => "Report",
        Plan::Adopt { .. } | Plan::AdoptExternalChange { .. } => "Adopt",
        Plan::Generate | Plan::ResumeWithOrphan { .. } => "Generate",
        Plan::Clone { .. } => "Clone",
        Plan::Publish { .. } | Plan::WriteSecret => "Publish",
        Plan::RecordActivation { .. }
        | Plan::Activate { .. }
        | Plan::ActivateBeforeRollout { .. }
        | Plan::ActivateOutsideWindow { .. }
        | Plan::AwaitWindow { .. }
        | Plan::AwaitRollout { .. }
        | Plan::AwaitApproval { .. } => "Activate",
        Plan::Retire { .. } => "Retire",
        Plan::StartRotation { .. } | Plan::WaitUntil(_) => "Rotate",
    }
}

fn plan_rotate_token(credential: &SamlAppCredential) -> Option<&str> {
    credential.annotations().get(annotations::ROTATE).map(String::as_str)
}

/// A credential whose status says all is done: an active key, no rotation under way (or a
/// published key waiting for its activation), no failure, the current spec, and Ready.
fn settled(status: &SamlAppCredentialStatus, generation: Option<i64>) -> bool {
    let waiting = status.rotation.as_ref().is_none_or(|r| r.phase == RotationPhase::Published);
    let ready = status.conditions.iter().any(|c| c.type_ == conditions::READY && c.status == "True");
    status.active_key.is_some()
        && waiting
        && status.failed_attempts == 0
        && status.observed_generation == generation
        && ready
}

/// The credential's policy: its spec's, with the renewal spread its uid gives it.
pub fn policy_of(credential: &SamlAppCredential) -> Result<Policy, String> {
    Policy::of(&credential.spec).map(|policy| policy.spread(super::spread(&credential.uid().unwrap_or_default())))
}

/// The planner's input for a credential, its status and what was observed.
pub fn plan_input<'a>(
    credential: &'a SamlAppCredential,
    status: &'a SamlAppCredentialStatus,
    policy: &'a Result<Policy, String>,
    observed: &'a Observed,
    older_claimant: Option<&'a str>,
    now: Timestamp,
) -> PlanInput<'a> {
    let annotations = credential.annotations();
    PlanInput {
        spec: &credential.spec,
        policy,
        status,
        app: &observed.app,
        secret: ObservedSecret { ownership: observed.ownership, current: observed.current },
        rotate_token: annotations.get(annotations::ROTATE).map(String::as_str),
        activate_kid: annotations.get(annotations::ACTIVATE).map(String::as_str),
        older_claimant,
        rollout: &observed.rollout,
        now,
    }
}

/// The status a reconcile plans from: the recorded one, brought up to the current spec.
pub fn status_for_planning(
    recorded: Option<SamlAppCredentialStatus>,
    policy: &Result<Policy, String>,
    generation: Option<i64>,
) -> SamlAppCredentialStatus {
    let mut status = recorded.unwrap_or_default();
    if status.observed_generation != generation {
        // A new spec gets a fresh start, not the backoff earned by the old one.
        status.failed_attempts = 0;
        status.last_failure_time = None;
    }
    if let Ok(policy) = policy {
        // renewalTime follows a changed renewBefore at once, not only after the next rotation.
        status = record::observed(&status, policy, generation);
    }
    status.observed_generation = generation;
    status
}

/// How long the backoff after the last failure still runs, for an unchanged spec.
pub fn backoff_remaining(
    settings: &super::Settings,
    status: Option<&SamlAppCredentialStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> Option<Duration> {
    let status = status?;
    if status.failed_attempts <= 0 || status.observed_generation != generation {
        return None;
    }
    let failed_at = status.last_failure_time.as_ref()?.0;
    let floor = jiff::SignedDuration::try_from(settings.backoff_floor(status.failed_attempts)).ok()?;
    let remaining = failed_at.checked_add(floor).ok()?.duration_since(now);
    remaining.is_positive().then(|| Duration::try_from(remaining).unwrap_or_default())
}

/// The status with the observedGeneration the final write will carry, for the intermediate writes.
fn with_generation(next: &SamlAppCredentialStatus, base: &SamlAppCredentialStatus) -> SamlAppCredentialStatus {
    SamlAppCredentialStatus { observed_generation: base.observed_generation, ..next.clone() }
}

/// Ready: the Secret holds the certificate of the key Okta signs with, and status agrees with Okta.
fn ready_condition(
    status: &SamlAppCredentialStatus,
    app: &rotation::ObservedApp,
    secret_current: bool,
) -> ConditionState {
    let okta_kid = match app {
        rotation::ObservedApp::Found { active_kid, .. } => active_kid.clone(),
        rotation::ObservedApp::NotFound => None,
    };
    let status_kid = status.active_key.as_ref().map(|k| k.kid.clone());
    if secret_current && okta_kid.is_some() && okta_kid == status_kid {
        let kid = okta_kid.unwrap_or_default();
        ConditionState {
            type_: conditions::READY,
            status: true,
            reason: conditions::REASON_UP_TO_DATE,
            message: format!("the Secret holds the certificate of key {kid}, which Okta signs with"),
        }
    } else {
        ConditionState {
            type_: conditions::READY,
            status: false,
            reason: "Reconciling",
            message: "bringing the Secret in line with the key Okta signs with".into(),
        }
    }
}
