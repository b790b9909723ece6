//! `samlcred rotate` and `samlcred activate`: set the annotations a person sets (DESIGN.md §2) on a
//! SamlAppCredential; the operator does the rest.

use crate::cli::kube::Kube;
use anyhow::{Context as _, bail};
use kube::api::{Api, Patch, PatchParams};
use samlcred::api::{ActivationPolicy, SamlAppCredential, annotations};
use serde_json::json;

async fn get(kube: &Kube, name: &str) -> anyhow::Result<(Api<SamlAppCredential>, SamlAppCredential)> {
    let api: Api<SamlAppCredential> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let credential = api
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read SamlAppCredential {}/{name}", kube.namespace))?
        .with_context(|| format!("SamlAppCredential {name} not found in namespace {}", kube.namespace))?;
    Ok((api, credential))
}

async fn annotate(api: &Api<SamlAppCredential>, name: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("cannot annotate SamlAppCredential {name}"))?;
    Ok(())
}

/// `samlcred rotate NAME`: a fresh token, so the operator starts a rotation now.
pub async fn rotate(kube: &Kube, name: &str) -> anyhow::Result<()> {
    let (api, credential) = get(kube, name).await?;
    let token = jiff::Timestamp::now().to_string();
    annotate(&api, name, annotations::ROTATE, &token).await?;
    println!("samlcredential {}/{name}: rotation requested ({}={token})", kube.namespace, annotations::ROTATE);
    if credential.spec.suspend {
        eprintln!("warning: spec.suspend is true; the operator will not rotate until it is false");
    }
    Ok(())
}

/// `samlcred activate NAME [--kid KID]`: approves the pending key (Manual activation).
pub async fn activate(kube: &Kube, name: &str, kid: Option<&str>) -> anyhow::Result<()> {
    let (api, credential) = get(kube, name).await?;
    let ns = &kube.namespace;
    let pending = credential.status.as_ref().and_then(|s| s.pending_key.as_ref()).map(|k| k.kid.clone());
    let Some(pending) = pending else {
        bail!(
            "SamlAppCredential {ns}/{name} has no pending key to activate; \
             start a rotation with `samlcred rotate {name}` and wait for the new key to be published"
        );
    };
    if let Some(kid) = kid
        && kid != pending
    {
        bail!("kid {kid} is not the pending key of SamlAppCredential {ns}/{name}; the pending key is {pending}");
    }
    annotate(&api, name, annotations::ACTIVATE, &pending).await?;
    println!("samlcredential {ns}/{name}: activation of key {pending} approved ({}={pending})", annotations::ACTIVATE);
    if credential.spec.activation.policy == ActivationPolicy::Automatic {
        eprintln!("note: activation.policy is Automatic; the operator activates the key when its delay has passed");
    }
    Ok(())
}
