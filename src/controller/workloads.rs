//! rolloutRestartTargets: workloads restarted when the Secret's content changes.
//!
//! The pod template carries an annotation with a hash of samlcred's Secret data. Setting it changes
//! the template (so Kubernetes rolls the pods) exactly when the data changes, and checking it on every
//! Secret write makes a restart missed by a crash happen on the next reconcile.

use super::Context;
use crate::api::annotations::SECRET_HASH;
use crate::api::{FIELD_MANAGER, SamlAppCredential, WorkloadKind, events};
use crate::secret::Rendered;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Hex SHA-256 over samlcred's data keys and values, in key order.
pub fn data_hash(rendered: &Rendered) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in &rendered.data {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.0.len() as u64).to_be_bytes());
        hasher.update(&value.0);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Sets the hash annotation on each target whose pod template does not carry it yet.
pub async fn restart_targets(
    ctx: &Context,
    credential: &SamlAppCredential,
    rendered: &Rendered,
) -> Result<(), kube::Error> {
    if credential.spec.rollout_restart_targets.is_empty() {
        return Ok(());
    }
    let namespace = credential.namespace().unwrap_or_default();
    let hash = data_hash(rendered);
    for target in &credential.spec.rollout_restart_targets {
        let (api, api_version, kind) = match target.kind {
            WorkloadKind::Deployment => typed::<Deployment>(ctx, &namespace),
            WorkloadKind::StatefulSet => typed::<StatefulSet>(ctx, &namespace),
            WorkloadKind::DaemonSet => typed::<DaemonSet>(ctx, &namespace),
        };
        let Some(workload) = api.get_opt(&target.name).await? else {
            let note =
                format!("{kind} {} not found; it will be restarted once it exists and the Secret changes", target.name);
            ctx.publish(credential, EventType::Warning, events::ROLLOUT_RESTARTED, &note, "Restart").await;
            continue;
        };
        let current = workload.data["spec"]["template"]["metadata"]["annotations"][SECRET_HASH].as_str();
        if current == Some(hash.as_str()) {
            continue;
        }
        let patch = json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {"name": target.name},
            "spec": {"template": {"metadata": {"annotations": {SECRET_HASH: hash}}}}
        });
        api.patch(&target.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
        let note =
            format!("restarted {kind} {} for the new content of Secret {}", target.name, credential.spec.secret_name);
        ctx.publish(credential, EventType::Normal, events::ROLLOUT_RESTARTED, &note, "Restart").await;
    }
    Ok(())
}

fn typed<K: Resource<DynamicType = ()>>(ctx: &Context, namespace: &str) -> (Api<DynamicObject>, String, String) {
    let resource = kube::api::ApiResource::erase::<K>(&());
    let api = Api::namespaced_with(ctx.kube.clone(), namespace, &resource);
    (api, resource.api_version.clone(), resource.kind.clone())
}
