//! The SamlAppCredential reconciler: observe (the credential, Okta, the Secret), ask the planner for
//! the one next step, perform it, record it in status, and say when to come back.

use super::observe::{OktaView, key_record, observe_app};
use super::status::{ConditionState, StatusWriter, Waiting, rotating_condition, set_condition};
use super::{Context, failpoint, workloads};
use crate::api::{
    FIELD_MANAGER, RotationPhase, SamlAppCredential, SamlAppCredentialStatus, SecretDeletionPolicy, annotations,
    conditions, events,
};
use crate::metadata::MetadataError;
use crate::okta::{OktaClient, OktaError};
use crate::rotation::{self, ObservedSecret, Plan, PlanInput, Policy, Rollout, record};
use crate::secret::{self, KeyMaterial, Ownership, Rendered, SecretInput};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
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
            StepError::Okta(_) | StepError::ActivationNotConfirmed { .. } => conditions::REASON_OKTA_ERROR,
            StepError::Org(OrgError::NotFound { .. }) => conditions::REASON_ORG_NOT_FOUND,
            StepError::Org(OrgError::NotAllowed { .. }) => conditions::REASON_ORG_NOT_ALLOWED,
            StepError::Org(OrgError::AppNotAllowed { .. }) => conditions::REASON_APP_NOT_ALLOWED,
            StepError::Org(OrgError::InvalidSpec(_)) | StepError::InvalidSpec => conditions::REASON_INVALID_SPEC,
            StepError::InvalidMetadata(_) => conditions::REASON_INVALID_METADATA,
            StepError::Org(OrgError::Kube(_)) | StepError::Kube(_) => "KubernetesError",
        }
    }

    /// How long until Okta's rate limit lets the step be tried again, when that is why it failed.
    pub fn rate_limit_reset(&self) -> Option<Duration> {
        match self {
            StepError::Okta(err @ OktaError::RateLimited { .. }) => err.retry_after(),
            _ => None,
        }
    }
}

/// When a reconcile whose org used up its share of the workers tries again.
const ORG_SHARE_RETRY: Duration = Duration::from_millis(500);

/// How often a rotation waiting for its restart targets looks at them again.
const ROLLOUT_POLL: jiff::SignedDuration = jiff::SignedDuration::from_secs(5);

/// What one reconcile did, for the status conditions and the requeue.
struct Done {
    status: SamlAppCredentialStatus,
    ready: ConditionState,
    waiting: Option<Waiting>,
    wake_at: Option<Timestamp>,
}

pub async fn reconcile(credential: Arc<SamlAppCredential>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let namespace = credential.namespace().unwrap_or_default();
    let api: Api<SamlAppCredential> = Api::namespaced(ctx.kube.clone(), &namespace);
    let now = Timestamp::now();
    let generation = credential.metadata.generation;
    // The cache can lag behind samlcred's own last status write; what this process remembers of its
    // last failure is at least as new, so the backoff cannot be skipped by a stale read.
    let uid = credential.uid().unwrap_or_default();
    if let Some(wait) = ctx.retry_not_before(&uid).and_then(|at| Duration::try_from(at.duration_since(now)).ok()) {
        // Okta's rate limit has no room before its reset: coming back earlier (say, for
        // samlcred's own status write) would only fail again.
        return Ok(Action::requeue(wait));
    }
    let cached = ctx.recall_failure(&uid, credential.status.clone(), generation);
    if let Some(wait) = backoff_remaining(&ctx.settings, cached.as_ref(), generation, now) {
        // Still backing off from the last failure: this reconcile was triggered by an event (often
        // samlcred's own status write), not by the requeue the failure asked for.
        return Ok(Action::requeue(wait));
    }
    let status = status_for_planning(cached, &credential.spec, generation);
    // Held until the reconcile ends. An org that already uses its share of the workers (it may be
    // stalling) must not take the others' too: give this worker back and come back shortly.
    let Some(_slot) = ctx.org_shares.try_take(&super::org_key(&credential)) else {
        return Ok(Action::requeue(ORG_SHARE_RETRY));
    };

    let started = std::time::Instant::now();
    let writer = StatusWriter::new(&api, &credential);
    let result = step(&credential, &ctx, &writer, status.clone(), now).await;
    ctx.metrics.reconcile_duration(started.elapsed());
    let mut remembered = None;
    let (next, action) = match result {
        Ok(done) => {
            let mut next = done.status;
            ctx.forget_failure(&uid);
            next.failed_attempts = 0;
            next.last_failure_time = None;
            set_condition(&mut next.conditions, done.ready, generation, now);
            let rotating = rotating_condition(&next, done.waiting.as_ref());
            set_condition(&mut next.conditions, rotating, generation, now);
            let action = match done.wake_at {
                Some(at) => ctx.settings.requeue_at(now, at),
                None => Action::requeue(Duration::from_millis(100)),
            };
            (next, action)
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
            let reset_at = failure.rate_limit_reset().and_then(|wait| {
                let wait = jiff::SignedDuration::try_from(wait).ok()?;
                now.checked_add(wait).ok()
            });
            remembered = Some((next.failed_attempts, reset_at));
            let ready = ConditionState { type_: conditions::READY, status: false, reason, message };
            set_condition(&mut next.conditions, ready, generation, now);
            let rotating = rotating_condition(&next, None);
            set_condition(&mut next.conditions, rotating, generation, now);
            let action = match reset_at {
                Some(at) => ctx.settings.requeue_at(now, at),
                None => Action::requeue(ctx.settings.backoff(next.failed_attempts)),
            };
            (next, action)
        }
    };
    writer.write(&next).await?;
    // Only a failure that status records is remembered: should the write lose a race (409), the
    // retry must run the step again and record it, not sit out a backoff nobody can see.
    if let Some((attempts, reset_at)) = remembered {
        ctx.remember_failure(&uid, attempts, now, generation, reset_at);
    }
    ctx.metrics.observe_credential(&credential, &next);
    Ok(action)
}

async fn step(
    credential: &SamlAppCredential,
    ctx: &Context,
    writer: &StatusWriter<'_>,
    status: SamlAppCredentialStatus,
    now: Timestamp,
) -> Result<Done, StepError> {
    let name = credential.name_any();
    let namespace = credential.namespace().unwrap_or_default();
    let spec = &credential.spec;
    let (org_key, okta) = ctx.orgs.for_credential(&namespace, &spec.org_ref, &spec.app_id).await?;
    let older_claimant = ctx.older_claimant(credential, &org_key).await;
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &namespace);
    let observed = observe(credential, &ctx.kube, &okta, &secrets, &status).await?;
    let Observed { view, ownership, rendered, current, .. } = &observed;
    let (ownership, current) = (*ownership, *current);

    let input = plan_input(credential, &status, &observed, older_claimant.as_deref(), now);
    let plan = rotation::plan(&input);
    tracing::debug!(credential = %name, namespace, ?plan, "planned");
    let event = plan.event();
    // The planner reports an unparsable spec (InvalidSpec) before anything that needs the policy.
    let policy = Policy::from_spec(spec).ok();
    let policy = || policy.as_ref().ok_or(StepError::InvalidSpec);
    let ready_now = ready_condition(&status, view, ownership == Ownership::Ours && current);
    let mut done = Done { status: status.clone(), ready: ready_now, waiting: None, wake_at: None };
    if let Plan::ActivateBeforeRollout { message, .. } = &plan {
        // Said before the switch: expiry overrode the wait for the rollout.
        ctx.publish(credential, EventType::Warning, events::ACTIVATED_BEFORE_ROLLOUT, message, "Activate").await;
    }

    match plan {
        Plan::Report { reason, message } => {
            // A report with an event of its own (SecretConflict) announces it once, when it starts.
            let reported = status.conditions.iter().any(|c| c.type_ == conditions::READY && c.reason == reason);
            if let Some((rotation::EventType::Warning, event_reason)) = event
                && !reported
            {
                ctx.publish(credential, EventType::Warning, event_reason, &message, "Report").await;
            }
            done.ready = ConditionState { type_: conditions::READY, status: false, reason, message };
            done.wake_at = Some(now + ctx.settings.okta_resync);
        }
        Plan::Adopt { key } => {
            done.status = record::adopt(&status, &key, policy()?);
            ctx.publish(
                credential,
                EventType::Normal,
                events::KEY_ADOPTED,
                &format!("adopted Okta's active key {}", key.kid),
                "Adopt",
            )
            .await;
        }
        Plan::AdoptExternalChange { key } => {
            done.status = record::adopt_external_change(&status, &key, policy()?, now);
            let note = format!("Okta now signs with key {}, which samlcred did not activate; adopted it", key.kid);
            ctx.publish(credential, EventType::Warning, events::EXTERNAL_KEY_CHANGE, &note, "Adopt").await;
        }
        Plan::RecordActivation { key } => {
            done.status = record::activation(&status, &key, policy()?, now);
            // Also reached on a cache that lags behind this process's own activation: count it once.
            if ctx.first_activation(&credential.uid().unwrap_or_default(), &key.kid) {
                ctx.metrics.rotation("succeeded");
                let note = format!("Okta signs with key {}", key.kid);
                ctx.publish(credential, EventType::Normal, events::KEY_ACTIVATED, &note, "Activate").await;
            }
        }
        Plan::StartRotation { trigger } => {
            done.status = record::start_rotation(&status, trigger, input.rotate_token, now);
            // The intent must be durable before Okta is asked for a key: see rotation's crash recovery.
            writer.write(&with_generation(&done.status, &status)).await?;
        }
        Plan::Generate => {
            let validity = spec.validity_years.clamp(2, 10) as u8;
            let key = key_record(okta.generate_key(&spec.app_id, validity).await?)?;
            failpoint("after-generate");
            done.status = record::pending(&status, &key.observed);
            let note = format!("generated key {} valid until {}", key.observed.kid, key.observed.not_after);
            ctx.publish(credential, EventType::Normal, events::KEY_GENERATED, &note, "Generate").await;
        }
        Plan::ResumeWithOrphan { key } => {
            done.status = record::pending(&status, &key);
            let note = format!("took key {} generated before an interruption instead of generating another", key.kid);
            ctx.publish(credential, EventType::Normal, events::KEY_GENERATED, &note, "Generate").await;
        }
        Plan::Publish { kid } => {
            apply_secret(&secrets, credential, rendered).await?;
            workloads::restart_targets(ctx, credential, rendered).await;
            failpoint("after-publish");
            done.status = record::published(&status, policy()?, now);
            let note = format!("published key {kid} in Secret {}", spec.secret_name);
            ctx.publish(credential, EventType::Normal, events::KEY_PUBLISHED, &note, "Publish").await;
        }
        Plan::AwaitRollout { stuck, message, until, .. } => {
            // A stuck target is announced once, when it starts holding activation.
            let announced = status.conditions.iter().any(|c| {
                c.type_ == conditions::ROTATING
                    && c.reason == conditions::REASON_ROLLOUT_STUCK
                    && c.message.contains(&message)
            });
            if stuck && !announced {
                let note = format!(
                    "activation of key {} waits: {message}",
                    status.pending_key.as_ref().map(|k| k.kid.as_str()).unwrap_or_default()
                );
                ctx.publish(credential, EventType::Warning, events::ROLLOUT_STUCK, &note, "Activate").await;
            }
            done.waiting = Some(Waiting::Rollout { stuck, message });
            // Workloads are not watched (no list/watch on them): look again shortly.
            done.wake_at = Some((now + ROLLOUT_POLL).min(until));
        }
        Plan::Activate { kid } | Plan::ActivateBeforeRollout { kid, .. } => {
            let activating = record::activating(&status);
            writer.write(&with_generation(&activating, &status)).await?;
            let app = okta.activate_key(&spec.app_id, &kid).await?;
            failpoint("after-activate");
            if app.active_kid() != Some(kid.as_str()) {
                return Err(StepError::ActivationNotConfirmed { kid, actual: app.active_kid().map(str::to_string) });
            }
            let key = view.keys.get(&kid).map(|k| k.observed.clone());
            let key = match key {
                Some(key) => key,
                None => key_record(okta.get_key(&spec.app_id, &kid).await?)?.observed,
            };
            done.status = record::activation(&activating, &key, policy()?, now);
            if ctx.first_activation(&credential.uid().unwrap_or_default(), &kid) {
                ctx.metrics.rotation("succeeded");
                let note = format!("Okta signs with key {kid}");
                ctx.publish(credential, EventType::Normal, events::KEY_ACTIVATED, &note, "Activate").await;
            }
        }
        Plan::Retire { kids } => {
            done.status = record::retire(&status, &kids);
            let note = format!("retired key(s) {} from the bundle", kids.join(", "));
            ctx.publish(credential, EventType::Normal, events::KEY_RETIRED, &note, "Retire").await;
        }
        Plan::WriteSecret => {
            apply_secret(&secrets, credential, rendered).await?;
            workloads::restart_targets(ctx, credential, rendered).await;
            done.ready = ready_condition(&status, view, true);
        }
        Plan::AwaitApproval { .. } => {
            done.waiting = Some(Waiting::Approval);
            done.wake_at = Some(now + ctx.settings.okta_resync);
        }
        Plan::WaitUntil(at) => {
            done.wake_at = Some(at);
        }
    }
    Ok(done)
}

/// What a reconcile reads before it plans: Okta's view of the app, the Secret's ownership, and the
/// Secret as status describes it. Only reads (Okta GETs, a Secret GET), so `samlcred plan` uses it too.
pub struct Observed {
    pub view: OktaView,
    pub ownership: Ownership,
    /// The Secret rendered from `status` and the key material Okta returned.
    pub rendered: Rendered,
    /// The existing Secret already holds exactly `rendered` (with the right ownerReferences).
    pub current: bool,
    /// The restart targets' rollout of `rendered`, while a published key waits for it.
    pub rollout: Rollout,
}

/// Reads Okta (the app, its keys, the active key's metadata), the Secret and, while a published key
/// waits for them, the restart targets; writes nothing.
pub async fn observe(
    credential: &SamlAppCredential,
    kube: &kube::Client,
    okta: &OktaClient,
    secrets: &Api<Secret>,
    status: &SamlAppCredentialStatus,
) -> Result<Observed, StepError> {
    let spec = &credential.spec;
    let view = observe_app(okta, &spec.app_id).await?;
    let existing = secrets.get_opt(&spec.secret_name).await?;
    let ownership = secret::ownership(existing.as_ref(), &credential.name_any());
    let metadata_xml = match &status.active_key {
        Some(active) if view.keys.contains_key(&active.kid) => {
            Some(okta.saml_metadata(&spec.app_id, &active.kid).await?)
        }
        _ => None,
    };
    // Metadata samlcred cannot publish stops the reconcile before any step: the Secret stays as it
    // was, and no key is activated that SPs reading metadata.xml could not have learnt.
    let rendered = render(credential, status, &view, metadata_xml.as_deref())?;
    let current =
        existing.as_ref().is_some_and(|s| secret::is_current(s, &rendered) && owner_refs_match(credential, s));
    let published = status.rotation.as_ref().is_some_and(|r| r.phase == RotationPhase::Published);
    let rollout = if published && status.pending_key.is_some() && workloads::waits_for_rollout(spec) {
        workloads::observe_rollout(kube, credential, &rendered).await
    } else {
        Rollout::NotWaiting
    };
    Ok(Observed { view, ownership, rendered, current, rollout })
}

/// The planner's input for a credential, its status and what was observed.
pub fn plan_input<'a>(
    credential: &'a SamlAppCredential,
    status: &'a SamlAppCredentialStatus,
    observed: &'a Observed,
    older_claimant: Option<&'a str>,
    now: Timestamp,
) -> PlanInput<'a> {
    let annotations = credential.annotations();
    PlanInput {
        spec: &credential.spec,
        status,
        app: &observed.view.app,
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
    spec: &crate::api::SamlAppCredentialSpec,
    generation: Option<i64>,
) -> SamlAppCredentialStatus {
    let mut status = recorded.unwrap_or_default();
    if status.observed_generation != generation {
        // A new spec gets a fresh start, not the backoff earned by the old one.
        status.failed_attempts = 0;
        status.last_failure_time = None;
    }
    if let Ok(policy) = Policy::from_spec(spec) {
        // renewalTime follows a changed renewBefore at once, not only after the next rotation.
        status = record::observed(&status, &policy, generation);
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
fn ready_condition(status: &SamlAppCredentialStatus, view: &OktaView, secret_current: bool) -> ConditionState {
    let okta_kid = match &view.app {
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

/// The Secret as status describes it, with the key material Okta returned.
fn render(
    credential: &SamlAppCredential,
    status: &SamlAppCredentialStatus,
    view: &OktaView,
    metadata_xml: Option<&str>,
) -> Result<Rendered, MetadataError> {
    let material = |kid: &str| {
        view.keys.get(kid).map(|k| KeyMaterial {
            kid: &k.observed.kid,
            jwk: k.credential.jwk(),
            certificate_der: &k.der,
            not_after: k.observed.not_after,
            x5t_s256: &k.observed.x5t_s256,
        })
    };
    let input = SecretInput {
        credential: credential.meta().name.as_deref().unwrap_or_default(),
        app_id: &credential.spec.app_id,
        active: status.active_key.as_ref().and_then(|k| material(&k.kid)),
        pending: status.pending_key.as_ref().and_then(|k| material(&k.kid)),
        previous: status.previous_keys.iter().filter_map(|k| material(&k.kid)).collect(),
        metadata_xml,
        template: credential.spec.secret_template.as_ref(),
    };
    secret::render(&input)
}

fn owner_refs_match(credential: &SamlAppCredential, existing: &Secret) -> bool {
    let uid = credential.uid();
    let owned = existing.owner_references().iter().any(|r| Some(&r.uid) == uid.as_ref());
    owned == (credential.spec.secret_deletion_policy == SecretDeletionPolicy::Delete)
}

/// Applies samlcred's part of the Secret. Only samlcred's keys are sent, so keys that others added
/// stay; with the Delete policy an ownerReference lets the garbage collector remove the Secret.
async fn apply_secret(
    secrets: &Api<Secret>,
    credential: &SamlAppCredential,
    rendered: &Rendered,
) -> Result<(), kube::Error> {
    let namespace = credential.namespace().unwrap_or_default();
    let mut object = rendered.to_secret(&credential.spec.secret_name, &namespace);
    if credential.spec.secret_deletion_policy == SecretDeletionPolicy::Delete
        && let Some(owner) = credential.controller_owner_ref(&())
    {
        object.metadata.owner_references = Some(vec![owner]);
    }
    let mut value = serde_json::to_value(&object).unwrap_or_default();
    value["apiVersion"] = "v1".into();
    value["kind"] = "Secret".into();
    secrets
        .patch(&credential.spec.secret_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&value))
        .await?;
    Ok(())
}
