//! The floor: a client that does only what adopting or rotating a credential needs, at the
//! controller's concurrency, against the same API server and simulator, with samlcred's own Okta
//! client (pacing included) and Secret rendering. It keeps what it read in memory, as an ideal
//! controller would, and reads the credentials with one LIST.
//!
//! - Adoption: Okta GET app (its active kid), GET keys, GET metadata of the active key;
//!   Kubernetes: apply the Secret, patch the status.
//! - Rotation: Okta POST generate; apply the Secret (new certificate published) and patch the
//!   status; after the activation delay, GET + PUT app (activate) and GET metadata of the new key;
//!   apply the Secret and patch the status.

use super::fleet::{Cred, FLEET_LABEL, secret_name};
use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use samlcred::api::SamlAppCredential;
use samlcred::okta::{Auth, CertificateInfo, KeyCredential, OktaClient, OrgConfig};
use samlcred::secret::{KeyMaterial, SecretInput, render};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FIELD_MANAGER: &str = "samlcred-floor";
/// samlcred's default renewBefore (720h): the renewal time the floor reports.
const RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(720);
const RETAIN_PREVIOUS: SignedDuration = SignedDuration::from_hours(168);

/// What the floor knows of one credential after adopting it.
#[derive(Clone)]
struct Known {
    active: KeyCredential,
    metadata: String,
}

#[derive(Clone)]
pub struct Floor {
    okta: OktaClient,
    kube: kube::Client,
    concurrency: usize,
    known: Arc<Mutex<HashMap<(String, String), Known>>>,
}

fn time(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second()).unwrap_or(t).to_string()
}

fn key_json(key: &KeyCredential) -> Result<Value> {
    let cert = key.certificate()?;
    Ok(
        json!({"kid": key.kid, "notBefore": time(cert.not_before), "notAfter": time(cert.not_after), "x5tS256": cert.x5t_s256}),
    )
}

fn material<'a>(key: &'a KeyCredential, cert: &'a CertificateInfo) -> KeyMaterial<'a> {
    KeyMaterial {
        kid: &key.kid,
        jwk: key.jwk(),
        certificate_der: &cert.der,
        not_after: cert.not_after,
        x5t_s256: &cert.x5t_s256,
    }
}

fn ready(generation: Option<i64>, message: &str) -> Value {
    json!([{"type": "Ready", "status": "True", "reason": "UpToDate", "message": message,
            "lastTransitionTime": time(Timestamp::now()), "observedGeneration": generation}])
}

impl Floor {
    pub fn new(okta_url: &str, token: &str, kube: kube::Client, concurrency: usize) -> Result<Floor> {
        let mut config = OrgConfig::new(url::Url::parse(okta_url)?, Auth::ApiToken(token.to_string().into()));
        config.allow_insecure_http = true;
        config.max_share_percent = 50;
        config.timeout = Duration::from_secs(120);
        let okta = OktaClient::new(config)?;
        Ok(Floor { okta, kube, concurrency, known: Default::default() })
    }

    /// Adopts every credential labelled `fleet`; returns how many.
    pub async fn adopt(&self, fleet: &str) -> Result<usize> {
        let all: Api<SamlAppCredential> = Api::all(self.kube.clone());
        let list = all.list(&ListParams::default().labels(&format!("{FLEET_LABEL}={fleet}"))).await?;
        let count = list.items.len();
        futures::stream::iter(list.items.into_iter().map(|sac| self.adopt_one(sac)))
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(count)
    }

    async fn adopt_one(&self, sac: SamlAppCredential) -> Result<()> {
        let cred = Cred { namespace: sac.namespace().unwrap_or_default(), name: sac.name_any(), app: sac.spec.app_id };
        let app = self.okta.get_app(&cred.app).await?;
        let kid = app.active_kid().context("the app has no active key")?.to_string();
        let keys = self.okta.list_keys(&cred.app).await?;
        let active = keys.into_iter().find(|k| k.kid == kid).context("the active key is not listed")?;
        let metadata = self.okta.saml_metadata(&cred.app, &kid).await?;
        self.publish(&cred, &active, None, None, &metadata).await?;
        let renewal = active.certificate()?.not_after - RENEW_BEFORE;
        let status = json!({"status": {
            "observedGeneration": sac.metadata.generation,
            "conditions": ready(sac.metadata.generation, "adopted by the floor client"),
            "activeKey": key_json(&active)?, "renewalTime": time(renewal),
        }});
        self.patch_status(&cred, &status).await?;
        self.known.lock().unwrap().insert((cred.namespace, cred.name), Known { active, metadata });
        Ok(())
    }

    /// Applies the Secret of `cred`: `active`, plus a `pending` or a `previous` key.
    async fn publish(
        &self,
        cred: &Cred,
        active: &KeyCredential,
        pending: Option<&KeyCredential>,
        previous: Option<&KeyCredential>,
        metadata: &str,
    ) -> Result<()> {
        let certificate = |key: Option<&KeyCredential>| key.map(KeyCredential::certificate).transpose();
        let (active_cert, pending_cert, previous_cert) =
            (active.certificate()?, certificate(pending)?, certificate(previous)?);
        let input = SecretInput {
            credential: &cred.name,
            app_id: &cred.app,
            active: Some(material(active, &active_cert)),
            pending: pending.zip(pending_cert.as_ref()).map(|(k, c)| material(k, c)),
            previous: previous.zip(previous_cert.as_ref()).map(|(k, c)| material(k, c)).into_iter().collect(),
            metadata_xml: Some(metadata),
            app_metadata: vec![],
            template: None,
        };
        let name = secret_name(&cred.name);
        let secret = render(&input)?.to_secret(&name, &cred.namespace);
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), &cred.namespace);
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&secret)).await?;
        Ok(())
    }

    async fn patch_status(&self, cred: &Cred, status: &Value) -> Result<()> {
        let api: Api<SamlAppCredential> = Api::namespaced(self.kube.clone(), &cred.namespace);
        api.patch_status(&cred.name, &PatchParams::default(), &Patch::Merge(status)).await?;
        Ok(())
    }

    /// Rotates each of `creds` (adopted before): at most `concurrency` of them doing I/O at once,
    /// each waiting `delay` between publishing the new certificate and activating it (without
    /// holding a worker meanwhile, as the controller requeues).
    pub async fn rotate(&self, creds: &[Cred], delay: Duration) -> Result<()> {
        let workers = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let tasks = creds.iter().cloned().map(|cred| {
            let (floor, workers) = (self.clone(), workers.clone());
            tokio::spawn(async move {
                let pending = {
                    let _worker = workers.acquire().await?;
                    floor.generate_and_publish(&cred).await?
                };
                tokio::time::sleep(delay).await;
                let _worker = workers.acquire().await?;
                floor.activate(&cred, pending).await
            })
        });
        for task in futures::future::join_all(tasks).await {
            task??;
        }
        Ok(())
    }

    async fn generate_and_publish(&self, cred: &Cred) -> Result<KeyCredential> {
        let known = self.known(cred)?;
        let pending = self.okta.generate_key(&cred.app, 10).await?;
        self.publish(cred, &known.active, Some(&pending), None, &known.metadata).await?;
        let status = json!({"status": {"pendingKey": key_json(&pending)?,
            "rotation": {"phase": "Published", "trigger": "Manual", "startedAt": time(Timestamp::now())}}});
        self.patch_status(cred, &status).await?;
        Ok(pending)
    }

    async fn activate(&self, cred: &Cred, new: KeyCredential) -> Result<()> {
        let known = self.known(cred)?;
        let app = self.okta.activate_key(&cred.app, &new.kid).await?;
        anyhow::ensure!(app.active_kid() == Some(new.kid.as_str()), "Okta did not switch {} to the new key", cred.app);
        let metadata = self.okta.saml_metadata(&cred.app, &new.kid).await?;
        self.publish(cred, &new, None, Some(&known.active), &metadata).await?;
        let old = known.active.certificate()?;
        let now = Timestamp::now();
        let status = json!({"status": {
            "conditions": ready(None, "rotated by the floor client"),
            "activeKey": key_json(&new)?, "pendingKey": null, "rotation": null,
            "previousKeys": [{"kid": known.active.kid, "notAfter": time(old.not_after), "x5tS256": old.x5t_s256,
                              "retainUntil": time(now + RETAIN_PREVIOUS)}],
            "renewalTime": time(new.certificate()?.not_after - RENEW_BEFORE), "lastRotationTime": time(now),
        }});
        self.patch_status(cred, &status).await?;
        let key = (cred.namespace.clone(), cred.name.clone());
        self.known.lock().unwrap().insert(key, Known { active: new, metadata });
        Ok(())
    }

    fn known(&self, cred: &Cred) -> Result<Known> {
        let key = (cred.namespace.clone(), cred.name.clone());
        self.known.lock().unwrap().get(&key).cloned().with_context(|| format!("{} was not adopted", cred.name))
    }
}
