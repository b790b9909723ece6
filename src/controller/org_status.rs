//! The OktaOrg and ClusterOktaOrg reconciler: Ready when Okta accepts the credentials (one cheap
//! authenticated call), with a message that says what is wrong otherwise.

use super::Context;
use super::orgs::OrgKey;
use super::status::{ConditionState, set_condition};
use crate::api::{ClusterOktaOrg, FIELD_MANAGER, OktaOrg, OktaOrgStatus, OrgKind, conditions};
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Whether the org's credentials work, as a Ready condition.
async fn check(ctx: &Context, key: &OrgKey) -> ConditionState {
    let result = match ctx.orgs.client(key, None).await {
        Ok(okta) => okta.verify_credentials().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => ConditionState {
            type_: conditions::READY,
            status: true,
            reason: conditions::REASON_AUTHENTICATED,
            message: "Okta accepted the credentials".into(),
        },
        Err(message) => ConditionState {
            type_: conditions::READY,
            status: false,
            reason: conditions::REASON_AUTHENTICATION_FAILED,
            message,
        },
    }
}

async fn reconcile_org<K>(
    org: Arc<K>,
    ctx: Arc<Context>,
    api: Api<K>,
    key: OrgKey,
    status: Option<OktaOrgStatus>,
) -> Result<Action, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let condition = check(&ctx, &key).await;
    let ready = condition.status;
    let generation = org.meta().generation;
    let mut next = status.clone().unwrap_or_default();
    next.observed_generation = generation;
    set_condition(&mut next.conditions, condition, generation, Timestamp::now());
    if status.as_ref() != Some(&next) {
        let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": next});
        api.patch_status(&org.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    let resync = if ready { ctx.settings.okta_resync } else { ctx.settings.backoff_cap.min(Duration::from_secs(60)) };
    Ok(Action::requeue(resync))
}

pub async fn reconcile_okta_org(org: Arc<OktaOrg>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let namespace = org.namespace().unwrap_or_default();
    let key = OrgKey { kind: OrgKind::OktaOrg, namespace: Some(namespace.clone()), name: org.name_any() };
    let api = Api::namespaced(ctx.kube.clone(), &namespace);
    let status = org.status.clone();
    reconcile_org(org, ctx, api, key, status).await
}

pub async fn reconcile_cluster_okta_org(org: Arc<ClusterOktaOrg>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let key = OrgKey { kind: OrgKind::ClusterOktaOrg, namespace: None, name: org.name_any() };
    let api = Api::all(ctx.kube.clone());
    let status = org.status.clone();
    reconcile_org(org, ctx, api, key, status).await
}
