//! The webhook's certificates in the cluster: one Secret that every replica converges on (created
//! if absent, a 409 meaning another replica won; renewed by an update conditioned on its
//! resourceVersion), and the webhook configuration's caBundle, patched to trust its CA.
//! Every write after the first is a patch, as everywhere in samlcred: a renewal is a merge patch
//! whose resourceVersion is a precondition, so that two replicas cannot both renew.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use super::pki::{self, Material, Verdict};
use super::tls::ServingCert;

/// Field manager of the operator's writes to the Secret and the caBundle.
pub const FIELD_MANAGER: &str = "samlcred-webhook";
/// How often each replica checks the Secret (renewal, another replica's renewal) and the caBundle
/// (a GitOps sync or a reinstall may have emptied it).
pub const RESYNC: Duration = Duration::from_secs(30);

/// Where the certificates live and what they are for.
#[derive(Debug, Clone)]
pub struct CertSettings {
    pub namespace: String,
    pub secret_name: String,
    /// The ValidatingWebhookConfiguration whose caBundle is patched; None leaves it alone.
    pub configuration_name: Option<String>,
    /// DNS names and IP addresses of the serving certificate.
    pub hosts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("webhook Secret {0}: {1}")]
    Secret(String, #[source] kube::Error),
    #[error("webhook Secret {0}: other replicas kept changing it")]
    Contended(String),
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("ValidatingWebhookConfiguration {0}: {1}")]
    Configuration(String, #[source] kube::Error),
    #[error("webhook Secret {0}: {1}")]
    Unusable(String, String),
}

/// Keeps `serving` on the Secret's certificate and the caBundle on its CA, every [`RESYNC`].
pub async fn keep(client: kube::Client, settings: CertSettings, serving: Arc<ServingCert>) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let configurations: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let mut served: Option<Material> = None;
    loop {
        match ensure(&secrets, &settings).await {
            Ok(material) => {
                if served.as_ref() != Some(&material) {
                    match serving.set(&material) {
                        Ok(()) => served = Some(material.clone()),
                        Err(e) => {
                            tracing::warn!("{}", CertError::Unusable(settings.secret_name.clone(), e.to_string()))
                        }
                    }
                }
                let patched = match &settings.configuration_name {
                    Some(name) => patch_ca_bundle(&configurations, name, &material.ca_bundle).await,
                    None => Ok(()),
                };
                match patched {
                    Ok(()) => tracing::debug!("webhook Secret and caBundle checked"),
                    Err(e) => tracing::warn!("webhook caBundle: {e}"),
                }
            }
            Err(e) => tracing::warn!("webhook certificate: {e}"),
        }
        tokio::time::sleep(RESYNC).await;
    }
}

/// The Secret's material, after creating or renewing it if needed.
pub async fn ensure(secrets: &Api<Secret>, settings: &CertSettings) -> Result<Material, CertError> {
    let name = &settings.secret_name;
    let failed = |e| CertError::Secret(name.clone(), e);
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..PostParams::default() };
    // Each conflict means another replica wrote first: read what it wrote and decide again.
    for _ in 0..5 {
        let now = Timestamp::now();
        let existing = secrets.get_opt(name).await.map_err(failed)?;
        let current = existing.as_ref().and_then(material_of);
        let verdict = pki::verdict(current.as_ref(), &settings.hosts, now);
        let reason = match &verdict {
            Verdict::Keep { renew_at } => {
                tracing::debug!(secret = %name, renew_in_hours = pki::hours_until(*renew_at, now), "webhook certificate current");
                return current.ok_or_else(|| CertError::Contended(name.clone()));
            }
            Verdict::NewServing(reason) | Verdict::NewCa(reason) => *reason,
        };
        let material = pki::issue(current.as_ref(), &verdict, &settings.hosts, now)?;
        let written = match existing {
            None => secrets.create(&params, &secret_of(name, &material)).await,
            Some(old) => {
                let mut renewed = secret_of(name, &material);
                renewed.metadata.resource_version = old.metadata.resource_version;
                renewed.type_ = None;
                let patch = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
                secrets.patch(name, &patch, &Patch::Merge(&renewed)).await
            }
        };
        match written {
            Ok(_) => {
                let new_ca = matches!(verdict, Verdict::NewCa(_));
                tracing::info!(secret = %name, new_ca, "webhook certificate issued: {reason}");
                return Ok(material);
            }
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(failed(e)),
        }
    }
    Err(CertError::Contended(name.clone()))
}

/// Points every webhook of the configuration at `bundle`, when one does not already.
pub async fn patch_ca_bundle(
    configurations: &Api<ValidatingWebhookConfiguration>,
    name: &str,
    bundle: &str,
) -> Result<(), CertError> {
    let failed = |e| CertError::Configuration(name.to_owned(), e);
    let Some(configuration) = configurations.get_opt(name).await.map_err(failed)? else {
        tracing::debug!(configuration = %name, "ValidatingWebhookConfiguration not installed (yet)");
        return Ok(());
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    let stale: Vec<_> = configuration
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .filter(|webhook| webhook.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(bundle.as_bytes()))
        .map(|webhook| json!({"name": webhook.name, "clientConfig": {"caBundle": encoded}}))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    // A strategic merge patch keyed by webhook name touches only their caBundle, wherever they sit.
    let patch = json!({"webhooks": stale});
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..PatchParams::default() };
    configurations.patch(name, &params, &Patch::Strategic(&patch)).await.map_err(failed)?;
    tracing::info!(configuration = %name, webhooks = stale.len(), "webhook caBundle patched");
    Ok(())
}

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const CERT: &str = "tls.crt";
const KEY: &str = "tls.key";

fn material_of(secret: &Secret) -> Option<Material> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| data.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok());
    Some(Material { ca_bundle: text(CA_CERT)?, ca_key: text(CA_KEY)?, cert: text(CERT)?, key: text(KEY)? })
}

fn secret_of(name: &str, material: &Material) -> Secret {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "samlcred".to_owned()),
        ("app.kubernetes.io/component".to_owned(), "webhook".to_owned()),
    ]);
    let metadata = ObjectMeta { name: Some(name.into()), labels: Some(labels), ..ObjectMeta::default() };
    let bytes = |text: &str| ByteString(text.as_bytes().to_vec());
    let data = BTreeMap::from([
        (CA_CERT.to_owned(), bytes(&material.ca_bundle)),
        (CA_KEY.to_owned(), bytes(&material.ca_key)),
        (CERT.to_owned(), bytes(&material.cert)),
        (KEY.to_owned(), bytes(&material.key)),
    ]);
    Secret { metadata, data: Some(data), type_: Some("kubernetes.io/tls".into()), ..Secret::default() }
}
