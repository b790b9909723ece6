//! The credential's Secret as the reconciler sees and writes it: whether it holds what status says
//! (from the watch cache, a verification, or the rendering), and the write of samlcred's part of it.

use super::Context;
use super::cache::CachedSecret;
use super::credential::StepError;
use super::ledger::SecretSeen;
use super::observe::{self, OktaSnapshot};
use super::workloads;
use crate::api::{FIELD_MANAGER, RotationPhase, SamlAppCredential, SamlAppCredentialStatus, SecretDeletionPolicy};
use crate::metadata::MetadataError;
use crate::okta::OktaClient;
use crate::rotation::{self, Rollout};
use crate::secret::{self, KeyMaterial, Ownership, Rendered, SecretInput};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use std::sync::Arc;

/// Writes the Secret for `next` with the material of `snapshot`, restarts the targets (as far as
/// the cluster-wide pace allows: the outcome), and remembers what was written.
pub async fn publish(
    ctx: &Context,
    credential: &SamlAppCredential,
    secrets: &Api<Secret>,
    next: &SamlAppCredentialStatus,
    snapshot: &OktaSnapshot,
) -> Result<workloads::Restarts, StepError> {
    let rendered = render_with(credential, next, snapshot)?;
    let written = apply_secret(secrets, credential, &rendered).await?;
    let restarts = workloads::restart_targets(ctx, credential, &rendered).await;
    let spec = &credential.spec;
    let inputs = observe::secret_inputs(next, credential.metadata.generation, spec.secret_template.as_ref());
    let hash = secret::data_hash(&rendered.data);
    let seen = SecretSeen { resource_version: written, hash, inputs };
    ctx.ledger.set_secret(&credential.uid().unwrap_or_default(), Some(seen));
    Ok(restarts)
}

/// What a reconcile observed before it planned.
pub struct Observed {
    pub app: rotation::ObservedApp,
    pub ownership: Ownership,
    /// The Secret holds what status says (see `Observing::observe`).
    pub current: bool,
    /// The restart targets' rollout of the Secret, while a published key waits for it.
    pub rollout: Rollout,
}

/// Observes the Secret and the restart targets for one credential, from the cache where it can.
pub struct Observing<'a> {
    pub credential: &'a SamlAppCredential,
    pub kube: &'a kube::Client,
    pub secrets: &'a Api<Secret>,
    /// `None` for `samlcred plan`, which reads the API instead.
    pub caches: Option<&'a super::cache::Caches>,
    /// The Secret as samlcred last wrote or verified it; updated by a verification.
    pub seen: Option<SecretSeen>,
}

impl Observing<'_> {
    /// The Secret is current when the cache shows the version samlcred wrote or verified for this
    /// status; otherwise it is read once and checked: against the rendering when the key material
    /// is at hand, else against its own hash annotation and the kids status publishes.
    pub async fn observe(
        &mut self,
        status: &SamlAppCredentialStatus,
        snapshot: OktaSnapshot,
    ) -> Result<Observed, StepError> {
        let credential = self.credential;
        let spec = &credential.spec;
        let namespace = credential.namespace().unwrap_or_default();
        let generation = credential.metadata.generation;
        let inputs = observe::secret_inputs(status, generation, spec.secret_template.as_ref());
        let from_cache = self.caches.and_then(|caches| caches.secret_lookup(&namespace, &spec.secret_name));
        let cached = match &from_cache {
            Some(CachedSecret::Kept(secret)) => Some(secret.clone()),
            _ => None,
        };
        let seen = self.seen.clone();
        let cached_version = cached.as_ref().and_then(|s| s.metadata.resource_version.clone());
        let trusted = seen.as_ref().is_some_and(|seen| {
            seen.inputs == inputs && cached_version.is_some() && seen.resource_version == cached_version
        });
        let rendered = match &snapshot.material {
            Some(_) if !snapshot.trusted => Some(render_with(credential, status, &snapshot)?),
            _ => None,
        };
        let (ownership, current) = if trusted {
            let meta = cached.as_ref().map(|s| &s.metadata);
            let ownership = secret::ownership(meta, &credential.name_any());
            (ownership, ownership == Ownership::Ours && owner_refs_match(credential, meta))
        } else if matches!(from_cache, Some(CachedSecret::Missing)) && seen.is_none() {
            // The synced cache has no such Secret, and samlcred did not just write one.
            (Ownership::Absent, false)
        } else {
            let existing = self.secrets.get_opt(&spec.secret_name).await?;
            if let (Some(caches), Some(existing)) = (self.caches, &existing) {
                caches.keep_secret(&existing.metadata);
            }
            let meta = existing.as_ref().map(|s| &s.metadata);
            let ownership = secret::ownership(meta, &credential.name_any());
            let published = rotation::published(status);
            let kids = published.kids();
            let verified = existing.as_ref().and_then(|existing| match &rendered {
                Some(rendered) => secret::is_current(existing, rendered).then(|| secret::data_hash(&rendered.data)),
                None => secret::verified_hash(existing, &kids)
                    .filter(|hash| seen.as_ref().is_none_or(|seen| seen.inputs != inputs || seen.hash == *hash)),
            });
            let current = ownership == Ownership::Ours && verified.is_some() && owner_refs_match(credential, meta);
            if let (true, Some(hash)) = (current, verified) {
                let resource_version = existing.as_ref().and_then(|s| s.metadata.resource_version.clone());
                self.seen = Some(SecretSeen { resource_version, hash, inputs });
            }
            (ownership, current)
        };
        let published = status.rotation.as_ref().is_some_and(|r| r.phase == RotationPhase::Published);
        let rollout =
            match (&self.seen, published && status.pending_key.is_some() && workloads::waits_for_rollout(spec)) {
                (Some(seen), true) if current => workloads::observe_rollout(self.kube, credential, &seen.hash).await,
                (_, true) => Rollout::InProgress(format!("Secret {} is not written yet", spec.secret_name)),
                (_, false) => Rollout::NotWaiting,
            };
        Ok(Observed { app: snapshot.app.clone(), ownership, current, rollout })
    }
}

/// What `samlcred plan` reads: Okta through GETs only, the Secret, the restart targets. Writes
/// nothing and keeps nothing.
pub async fn observe(
    credential: &SamlAppCredential,
    kube: &kube::Client,
    okta: &Arc<OktaClient>,
    status: &SamlAppCredentialStatus,
) -> Result<Observed, StepError> {
    let now = Timestamp::now();
    let snapshot = observe::read(okta, &credential.spec.app_id, now).await?;
    let kid = status.active_key.as_ref().map(|k| k.kid.clone());
    let apps: Vec<(String, String)> = rotation::shared_apps(&credential.spec.additional_app_ids, status)
        .into_iter()
        .map(|(app, kid)| (app.to_string(), kid.to_string()))
        .collect();
    let snapshot = observe::with_material(snapshot, kid.as_deref(), None, &apps, now).await?;
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), &credential.namespace().unwrap_or_default());
    let mut observing = Observing { credential, kube, secrets: &secrets, caches: None, seen: None };
    observing.observe(status, snapshot).await
}

/// The Secret as status describes it, with the key material of `snapshot`.
pub fn render_with(
    credential: &SamlAppCredential,
    status: &SamlAppCredentialStatus,
    snapshot: &OktaSnapshot,
) -> Result<Rendered, MetadataError> {
    let empty = observe::Material::default();
    let material_of = snapshot.material.as_deref().unwrap_or(&empty);
    let material = |kid: &str| {
        material_of.keys.get(kid).map(|k| KeyMaterial {
            kid: &k.observed.kid,
            jwk: k.credential.jwk(),
            certificate_der: &k.der,
            not_after: k.observed.not_after,
            x5t_s256: &k.observed.x5t_s256,
        })
    };
    let active_kid = status.active_key.as_ref().map(|k| k.kid.as_str());
    let input = SecretInput {
        credential: credential.meta().name.as_deref().unwrap_or_default(),
        app_id: &credential.spec.app_id,
        active: active_kid.and_then(material),
        pending: status.pending_key.as_ref().and_then(|k| material(&k.kid)),
        previous: status.previous_keys.iter().filter_map(|k| material(&k.kid)).collect(),
        metadata_xml: active_kid.and_then(|kid| material_of.metadata_of(kid)),
        app_metadata: rotation::shared_apps(&credential.spec.additional_app_ids, status)
            .into_iter()
            .filter_map(|(app, _)| material_of.app_metadata.get(app).map(|(_, document)| (app, document.as_str())))
            .collect(),
        template: credential.spec.secret_template.as_ref(),
    };
    secret::render(&input)
}

fn owner_refs_match(credential: &SamlAppCredential, existing: Option<&ObjectMeta>) -> bool {
    let uid = credential.uid();
    let refs = existing.and_then(|meta| meta.owner_references.as_deref()).unwrap_or_default();
    let owned = refs.iter().any(|r| Some(&r.uid) == uid.as_ref());
    owned == (credential.spec.secret_deletion_policy == SecretDeletionPolicy::Delete)
}

/// Applies samlcred's part of the Secret. Only samlcred's keys are sent, so keys that others added
/// stay; with the Delete policy an ownerReference lets the garbage collector remove the Secret.
/// Returns the resourceVersion written.
async fn apply_secret(
    secrets: &Api<Secret>,
    credential: &SamlAppCredential,
    rendered: &Rendered,
) -> Result<Option<String>, kube::Error> {
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
    let written = secrets
        .patch(&credential.spec.secret_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&value))
        .await?;
    Ok(written.metadata.resource_version)
}
