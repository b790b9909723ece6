//! What Okta shows of one app, read in as few calls as the next step needs.
//!
//! Planning needs only the app's active kid and its keys' kids and dates ([`ObservedApp`]);
//! rendering the Secret also needs each key's JWK and certificate and the SAML metadata of the
//! active key ([`Material`]). A reconcile starts from what the ledger kept of the last read
//! ([`OktaSnapshot`]) and reads more only when the planned step asks for it ([`Need`]):
//!
//! | read | calls |
//! | --- | --- |
//! | the app and its keys ([`read`]) | GET app, GET keys |
//! | a resync ([`refresh`]) | GET app; GET keys too when the active kid changed |
//! | material for rendering ([`with_material`]) | GET keys unless kept, GET metadata of the active kid |
//! | ... with additional apps (`spec.additionalAppIds`) | GET metadata of each app that holds the shared key, unless kept |
//!
//! Additional apps are never read for planning: only the steps that write to them (clone,
//! activate) and the Secret's per-app metadata call Okta for them.

use crate::api::{SamlAppCredentialStatus, SecretTemplate};
use crate::okta::{KeyCredential, OktaClient, OktaError};
use crate::rotation::{ObservedApp, ObservedKey, Plan};
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// One key credential with its parsed certificate.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub observed: ObservedKey,
    pub credential: KeyCredential,
    pub der: Vec<u8>,
}

/// What the Secret is rendered from, beyond status.
#[derive(Debug, Clone, Default)]
pub struct Material {
    /// Every key of the app, as the last GET keys listed them (plus keys samlcred generated since).
    pub keys: BTreeMap<String, KeyRecord>,
    /// The SAML metadata document of one kid, as Okta sent it: (kid, document).
    pub metadata: Option<(String, String)>,
    /// The rotation (by its startedAt) during which the metadata document was read; `None`
    /// outside a rotation.
    pub metadata_rotation: Option<Timestamp>,
    /// The SAML metadata document of each additional app that holds the shared key, as Okta sent
    /// it, with the rotation during which it was read: app ID -> (rotation, document).
    pub app_metadata: BTreeMap<String, (Option<Timestamp>, String)>,
}

impl Material {
    /// The metadata document of `kid`, when this material has it.
    pub fn metadata_of(&self, kid: &str) -> Option<&str> {
        self.metadata.as_ref().filter(|(of, _)| of == kid).map(|(_, document)| document.as_str())
    }
}

/// What samlcred last saw of an app in Okta.
#[derive(Debug, Clone)]
pub struct OktaSnapshot {
    /// The client it was read with: a changed org or token makes a new client, and a new read.
    pub client: Arc<OktaClient>,
    pub app_id: String,
    /// When the app was last read; the next resync is due one interval later.
    pub read_at: Timestamp,
    /// Made from status after a restart, not read from Okta: good for waiting, not for acting.
    pub trusted: bool,
    pub app: ObservedApp,
    /// Kept only while a step is likely to render the Secret soon.
    pub material: Option<Arc<Material>>,
    /// The credential's generation when the snapshot was last used: a changed spec reads the app
    /// again, as a resync does.
    pub generation: Option<i64>,
    /// Where in each resync interval this credential's resyncs fall (its rank by the draw of
    /// its uid, [`super::cache::Phases`]): the fleet's resyncs are spread evenly over the
    /// interval, however many credentials were adopted or restarted at once.
    pub phase: f64,
}

impl OktaSnapshot {
    /// Whether this snapshot is of this app through this client.
    pub fn is_of(&self, client: &Arc<OktaClient>, app_id: &str) -> bool {
        Arc::ptr_eq(&self.client, client) && self.app_id == app_id
    }

    /// When Okta is read again for drift: the first point of the credential's schedule (its
    /// phase, then every interval) after the last read, so never more than an interval later.
    pub fn resync_at(&self, interval: std::time::Duration) -> Timestamp {
        let interval = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
        let offset = (interval as f64 * self.phase.clamp(0.0, 1.0)) as i64;
        let read = self.read_at.as_millisecond();
        let turns = (read - offset).div_euclid(interval).saturating_add(1);
        let at = turns.saturating_mul(interval).saturating_add(offset);
        Timestamp::from_millisecond(at).unwrap_or(Timestamp::MAX)
    }

    pub fn active_kid(&self) -> Option<&str> {
        match &self.app {
            ObservedApp::Found { active_kid, .. } => active_kid.as_deref(),
            ObservedApp::NotFound => None,
        }
    }

    /// What a status that samlcred wrote says Okta showed: after a restart, a settled credential
    /// waits on this instead of reading Okta at once, until its turn in the resync schedule.
    pub fn trusted(
        status: &SamlAppCredentialStatus,
        client: Arc<OktaClient>,
        app_id: &str,
        read_at: Timestamp,
    ) -> Option<OktaSnapshot> {
        let active = status.active_key.as_ref()?;
        let mut keys = vec![ObservedKey {
            kid: active.kid.clone(),
            created: active.not_before.0,
            not_before: active.not_before.0,
            not_after: active.not_after.0,
            x5t_s256: active.x5t_s256.clone(),
        }];
        if let Some(pending) = &status.pending_key {
            keys.push(ObservedKey {
                kid: pending.kid.clone(),
                // Unknown without reading Okta; only an acting step uses it, and acting reads first.
                created: Timestamp::MIN,
                not_before: Timestamp::MIN,
                not_after: pending.not_after.0,
                x5t_s256: pending.x5t_s256.clone(),
            });
        }
        Some(OktaSnapshot {
            client,
            app_id: app_id.to_string(),
            read_at,
            trusted: true,
            app: ObservedApp::Found { active_kid: Some(active.kid.clone()), keys },
            material: None,
            generation: status.observed_generation,
            phase: 0.0,
        })
    }

    /// The snapshot after samlcred generated `key`.
    pub fn with_generated(mut self, key: &KeyRecord) -> OktaSnapshot {
        if let ObservedApp::Found { keys, .. } = &mut self.app {
            keys.retain(|k| k.kid != key.observed.kid);
            keys.push(key.observed.clone());
        }
        if let Some(material) = self.material.take() {
            let mut material = (*material).clone();
            material.keys.insert(key.observed.kid.clone(), key.clone());
            self.material = Some(Arc::new(material));
        }
        self
    }

    /// The snapshot after Okta confirmed that it signs with `kid`.
    pub fn with_active(mut self, kid: &str) -> OktaSnapshot {
        if let ObservedApp::Found { active_kid, .. } = &mut self.app {
            *active_kid = Some(kid.to_string());
        }
        self
    }

    /// The snapshot without its key material (once no step needs it soon).
    pub fn compact(mut self) -> OktaSnapshot {
        self.material = None;
        self
    }
}

/// What a planned step needs of Okta before it can be performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Waiting and reporting go on what is known.
    Nothing,
    /// A step that acts must act on what Okta showed, not on what status remembers.
    Read,
    /// A step that writes the Secret needs the keys' material and the metadata of this kid (the
    /// active one once the step is done; `None` while there is none), read during the rotation
    /// given (by its startedAt): publishing a new key reads Okta's metadata again, in case it
    /// changed since the last rotation. The list: each additional app whose metadata the
    /// Secret carries, with the kid to read it for ([`crate::rotation::shared_apps`]).
    Material(Option<String>, Option<Timestamp>, Vec<(String, String)>),
}

/// The additional apps whose metadata a Secret for `status` carries, with the kid to read each
/// for. From status alone (the apps the shared key reached); rendering keeps those the spec names.
fn shared_apps(status: &SamlAppCredentialStatus) -> Vec<(String, String)> {
    let mut apps: Vec<String> = status.additional_apps.iter().map(|a| a.app_id.clone()).collect();
    apps.extend(status.pending_key.iter().flat_map(|p| p.cloned_to.iter().cloned()));
    apps.sort();
    apps.dedup();
    crate::rotation::shared_apps(&apps, status).into_iter().map(|(app, kid)| (app.into(), kid.into())).collect()
}

/// What `plan` needs, for a credential whose status is `status` (before the step).
pub fn need(plan: &Plan, status: &SamlAppCredentialStatus) -> Need {
    let active = status.active_key.as_ref().map(|k| k.kid.clone());
    match plan {
        Plan::Report { .. }
        | Plan::WaitUntil(_)
        | Plan::AwaitApproval { .. }
        | Plan::AwaitRollout { .. }
        | Plan::AwaitWindow { .. } => Need::Nothing,
        // Status only: what it removes needs nothing of Okta.
        Plan::Retire { .. } => Need::Nothing,
        Plan::Adopt { key } => Need::Material(Some(key.kid.clone()), None, shared_apps(status)),
        Plan::Publish { .. } => {
            Need::Material(active, status.rotation.as_ref().map(|r| r.started_at.0), shared_apps(status))
        }
        Plan::WriteSecret => Need::Material(active, None, shared_apps(status)),
        Plan::AdoptExternalChange { .. }
        | Plan::RecordActivation { .. }
        | Plan::StartRotation { .. }
        | Plan::Generate
        | Plan::ResumeWithOrphan { .. }
        | Plan::Clone { .. }
        | Plan::Activate { .. }
        | Plan::ActivateBeforeRollout { .. }
        | Plan::ActivateOutsideWindow { .. } => Need::Read,
    }
}

/// Whether `snapshot` has what `need` asks for.
pub fn satisfies(snapshot: &OktaSnapshot, need: &Need) -> bool {
    match need {
        Need::Nothing => true,
        Need::Read => !snapshot.trusted,
        Need::Material(kid, rotation, apps) => {
            let fresh = |m: &Material| rotation.is_none() || m.metadata_rotation == *rotation;
            let apps_kept = |m: &Material| apps.iter().all(|(app, _)| app_metadata_kept(m, app, *rotation));
            !snapshot.trusted
                && snapshot.material.as_ref().is_some_and(|m| {
                    kid.as_deref().is_none_or(|kid| m.metadata_of(kid).is_some() && fresh(m)) && apps_kept(m)
                })
        }
    }
}

/// Whether `material` has the metadata of additional app `app`, read during `rotation` if one is given.
fn app_metadata_kept(material: &Material, app: &str, rotation: Option<Timestamp>) -> bool {
    material.app_metadata.get(app).is_some_and(|(read, _)| rotation.is_none() || *read == rotation)
}

/// Turns one key credential into what the planner and the renderer need. A key whose certificate
/// cannot be parsed, or disagrees with its `x5t#S256`, is an error: samlcred must not publish it.
pub fn key_record(credential: KeyCredential) -> Result<KeyRecord, OktaError> {
    let cert = credential.certificate()?;
    let observed = ObservedKey {
        kid: credential.kid.clone(),
        // Okta always sends `created`; the certificate's start is the closest stand-in otherwise.
        created: credential.created.unwrap_or(cert.not_before),
        not_before: cert.not_before,
        not_after: cert.not_after,
        x5t_s256: cert.x5t_s256.clone(),
    };
    Ok(KeyRecord { observed, credential, der: cert.der })
}

/// Reads the app and its keys. A 404 for the app is an observation, not an error.
pub async fn read(okta: &Arc<OktaClient>, app_id: &str, now: Timestamp) -> Result<OktaSnapshot, OktaError> {
    let snapshot = |app, material| OktaSnapshot {
        client: okta.clone(),
        app_id: app_id.to_string(),
        read_at: now,
        trusted: false,
        app,
        material,
        generation: None,
        phase: 0.0,
    };
    let app = match okta.get_app(app_id).await {
        Ok(app) => app,
        Err(OktaError::NotFound { .. }) => return Ok(snapshot(ObservedApp::NotFound, None)),
        Err(e) => return Err(e),
    };
    let keys = list_keys(okta, app_id).await?;
    let observed = keys.values().map(|k| k.observed.clone()).collect();
    let app = ObservedApp::Found { active_kid: app.active_kid().map(str::to_string), keys: observed };
    Ok(snapshot(app, Some(Arc::new(Material { keys, ..Material::default() }))))
}

async fn list_keys(okta: &OktaClient, app_id: &str) -> Result<BTreeMap<String, KeyRecord>, OktaError> {
    let mut keys = BTreeMap::new();
    for credential in okta.list_keys(app_id).await? {
        let record = key_record(credential)?;
        keys.insert(record.observed.kid.clone(), record);
    }
    Ok(keys)
}

/// A resync: the app again (one call), and its keys only when Okta now signs with another kid.
/// A snapshot made from status stays one (its keys were not read) until a step acts, and an
/// acting step reads first ([`satisfies`]).
pub async fn refresh(snapshot: OktaSnapshot, now: Timestamp) -> Result<OktaSnapshot, OktaError> {
    let app = match snapshot.client.get_app(&snapshot.app_id).await {
        Ok(app) => app,
        Err(OktaError::NotFound { .. }) => {
            return Ok(OktaSnapshot { app: ObservedApp::NotFound, material: None, read_at: now, ..snapshot });
        }
        Err(e) => return Err(e),
    };
    if app.active_kid() != snapshot.active_kid() || snapshot.app == ObservedApp::NotFound {
        return read(&snapshot.client, &snapshot.app_id, now).await;
    }
    // A resync only checks for drift; material is read again when a step needs it.
    Ok(OktaSnapshot { read_at: now, material: None, ..snapshot })
}

/// `snapshot` with the material a Secret write needs: the keys (kept, or read) and the metadata
/// of `kid` (kept when read during `rotation`, or read), and of each additional app in `apps`
/// for the kid given with it (likewise kept or read).
pub async fn with_material(
    snapshot: OktaSnapshot,
    kid: Option<&str>,
    rotation: Option<Timestamp>,
    apps: &[(String, String)],
    now: Timestamp,
) -> Result<OktaSnapshot, OktaError> {
    let snapshot = match (&snapshot.material, &snapshot.app) {
        _ if snapshot.trusted => read(&snapshot.client, &snapshot.app_id, now).await?,
        (None, ObservedApp::Found { active_kid, .. }) => {
            let keys = list_keys(&snapshot.client, &snapshot.app_id).await?;
            let app = ObservedApp::Found {
                active_kid: active_kid.clone(),
                keys: keys.values().map(|k| k.observed.clone()).collect(),
            };
            OktaSnapshot { app, material: Some(Arc::new(Material { keys, ..Material::default() })), ..snapshot }
        }
        _ => snapshot,
    };
    let Some(material) = snapshot.material.clone() else { return Ok(snapshot) };
    let fresh = rotation.is_none() || material.metadata_rotation == rotation;
    let kept = |kid: &str| material.metadata_of(kid).is_some() && fresh;
    let primary = kid.filter(|kid| !kept(kid) && material.keys.contains_key(*kid));
    let missing: Vec<&(String, String)> =
        apps.iter().filter(|(app, _)| !app_metadata_kept(&material, app, rotation)).collect();
    if primary.is_none() && missing.is_empty() {
        return Ok(snapshot);
    }
    let mut material = (*material).clone();
    if let Some(kid) = primary {
        let document = snapshot.client.saml_metadata(&snapshot.app_id, kid).await?;
        material.metadata = Some((kid.to_string(), document));
        material.metadata_rotation = rotation;
    }
    for (app, kid) in missing {
        let document = snapshot.client.saml_metadata(app, kid).await?;
        material.app_metadata.insert(app.clone(), (rotation, document));
    }
    Ok(OktaSnapshot { material: Some(Arc::new(material)), ..snapshot })
}

/// What the Secret's content follows from besides Okta's material: the keys status publishes (in
/// bundle order) and the spec (template, app ID, deletion policy), by generation.
pub fn secret_inputs(
    status: &SamlAppCredentialStatus,
    generation: Option<i64>,
    template: Option<&SecretTemplate>,
) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    crate::rotation::published(status).kids().hash(&mut hasher);
    shared_apps(status).hash(&mut hasher);
    status.active_key.as_ref().map(|k| (&k.not_after.0, &k.x5t_s256)).hash(&mut hasher);
    generation.hash(&mut hasher);
    serde_json::to_string(&template).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
