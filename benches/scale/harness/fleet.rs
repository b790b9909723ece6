//! A fleet: SAML apps seeded in the simulator, one SamlAppCredential per app, spread over
//! namespaces of `per_namespace` credentials each, all using one ClusterOktaOrg (as a platform team
//! runs it: one Okta org, one rate limit, many teams' namespaces). And a watch of every credential,
//! to see when they are Ready or rotated.

use super::cluster::{Cluster, SYSTEM_NAMESPACE};
use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use okta_sim::{OktaSim, SeedApp, SeedKey};
use samlcred::api::{ClusterOktaOrg, SamlAppCredential};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

pub const ORG: &str = "okta";
pub const TOKEN: &str = "scale-api-token";
/// The label that tells the controller's fleet from the floor's.
pub const FLEET_LABEL: &str = "scale.samlcred.io/fleet";
/// Credentials created at once by the harness.
const CREATE_CONCURRENCY: usize = 16;

/// One credential and its app.
#[derive(Debug, Clone)]
pub struct Cred {
    pub namespace: String,
    pub name: String,
    pub app: String,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    pub label: String,
    pub creds: Vec<Cred>,
}

impl Fleet {
    pub fn apps(&self) -> HashSet<String> {
        self.creds.iter().map(|c| c.app.clone()).collect()
    }

    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.creds.iter().map(|c| c.namespace.clone()).collect();
        names.dedup();
        names
    }

    pub fn len(&self) -> usize {
        self.creds.len()
    }
}

/// The ClusterOktaOrg every credential uses, and its token Secret.
pub async fn create_org(cluster: &Cluster, sim: &OktaSim) -> Result<()> {
    sim.add_api_token(TOKEN);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "okta-token", "namespace": SYSTEM_NAMESPACE}, "stringData": {"token": TOKEN}
    }))?;
    Api::<Secret>::namespaced(cluster.admin.clone(), SYSTEM_NAMESPACE).create(&PostParams::default(), &secret).await?;
    let org: ClusterOktaOrg = serde_json::from_value(json!({
        "metadata": {"name": ORG},
        "spec": {"url": sim.base_url(), "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}},
                 "rateLimit": {"maxShare": 50}}
    }))?;
    Api::<ClusterOktaOrg>::all(cluster.admin.clone()).create(&PostParams::default(), &org).await?;
    Ok(())
}

/// Seeds `count` apps whose active key is valid for two more years (so not due for renewal).
pub fn seed_apps(sim: &OktaSim, label: &str, count: usize) -> Vec<String> {
    let now = sim.now();
    let key = SeedKey {
        not_before: now - SignedDuration::from_hours(24 * 300),
        not_after: now + SignedDuration::from_hours(24 * 730),
    };
    tokio::task::block_in_place(|| {
        (0..count)
            .map(|i| sim.seed_app(SeedApp { id: None, label: format!("{label} {i}"), keys: vec![key], active: 0 }).id)
            .collect()
    })
}

/// Seeds apps and creates a fleet of credentials for them in namespaces `<label>-<i>`.
pub async fn create(
    cluster: &Cluster,
    sim: &OktaSim,
    label: &str,
    count: usize,
    per_namespace: usize,
    activation_delay: &str,
) -> Result<Fleet> {
    let apps = seed_apps(sim, label, count);
    let creds: Vec<Cred> = apps
        .into_iter()
        .enumerate()
        .map(|(i, app)| Cred { namespace: format!("{label}-{}", i / per_namespace), name: format!("sac-{i}"), app })
        .collect();
    let fleet = Fleet { label: label.to_string(), creds };
    for ns in fleet.namespaces() {
        cluster.namespace(&ns, &[(FLEET_LABEL, label)]).await?;
    }
    futures::stream::iter(fleet.creds.iter().map(|c| create_credential(cluster, label, c, activation_delay)))
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(fleet)
}

/// The SamlAppCredential of `cred`: default renewBefore, Automatic activation after
/// `activation_delay` (short, so that a rotation completes within the run).
pub async fn create_credential(cluster: &Cluster, label: &str, cred: &Cred, activation_delay: &str) -> Result<()> {
    let sac: SamlAppCredential = serde_json::from_value(json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential",
        "metadata": {"name": cred.name, "namespace": cred.namespace, "labels": {FLEET_LABEL: label}},
        "spec": {"orgRef": {"kind": "ClusterOktaOrg", "name": ORG}, "appId": cred.app,
                 "secretName": secret_name(&cred.name),
                 "activation": {"policy": "Automatic", "delay": activation_delay}}
    }))?;
    Api::<SamlAppCredential>::namespaced(cluster.admin.clone(), &cred.namespace)
        .create(&PostParams::default(), &sac)
        .await
        .with_context(|| format!("creating {}/{}", cred.namespace, cred.name))?;
    Ok(())
}

pub fn secret_name(credential: &str) -> String {
    format!("{credential}-idp")
}

/// Deletes a fleet's credentials and Secrets (and forgets its apps in the simulator).
pub async fn delete(cluster: &Cluster, sim: &OktaSim, fleet: &Fleet) -> Result<()> {
    let selector = ListParams::default().labels(&format!("{FLEET_LABEL}={}", fleet.label));
    for ns in fleet.namespaces() {
        let sacs: Api<SamlAppCredential> = Api::namespaced(cluster.admin.clone(), &ns);
        sacs.delete_collection(&DeleteParams::default(), &selector).await?;
        let secrets: Api<Secret> = Api::namespaced(cluster.admin.clone(), &ns);
        secrets.delete_collection(&DeleteParams::default(), &ListParams::default()).await?;
    }
    let all: Api<SamlAppCredential> = Api::all(cluster.admin.clone());
    super::poll("the deleted fleet to be gone", Duration::from_secs(120), || async {
        all.list_metadata(&selector.clone().limit(1)).await.ok().filter(|l| l.items.is_empty()).map(|_| ())
    })
    .await?;
    for cred in &fleet.creds {
        sim.remove_app(&cred.app);
    }
    Ok(())
}

/// Starts a rotation of each credential now (`samlcred.io/rotate`).
pub async fn annotate_rotate(cluster: &Cluster, creds: &[Cred], token: &str) -> Result<()> {
    futures::stream::iter(creds.iter().map(|c| async move {
        let api: Api<SamlAppCredential> = Api::namespaced(cluster.admin.clone(), &c.namespace);
        let patch = json!({"metadata": {"annotations": {samlcred::api::annotations::ROTATE: token}}});
        api.patch(&c.name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| ())
    }))
    .buffer_unordered(CREATE_CONCURRENCY)
    .try_collect::<Vec<()>>()
    .await?;
    Ok(())
}

/// A watch of every SamlAppCredential (under the admin identity, which the audit log ignores).
pub struct Watch {
    store: Store<SamlAppCredential>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn is_ready(c: &SamlAppCredential) -> bool {
    let conditions = c.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn active_kid(c: &SamlAppCredential) -> Option<&str> {
    Some(c.status.as_ref()?.active_key.as_ref()?.kid.as_str())
}

/// Ready on a key other than `old`, with no rotation under way.
pub fn rotated_from(c: &SamlAppCredential, old: &str) -> bool {
    is_ready(c) && active_kid(c).is_some_and(|k| k != old) && c.status.as_ref().is_some_and(|s| s.rotation.is_none())
}

impl Watch {
    pub async fn start(cluster: &Cluster) -> Result<Watch> {
        let (store, writer) = reflector::store();
        let api: Api<SamlAppCredential> = Api::all(cluster.admin.clone());
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
        let task = tokio::spawn(stream.for_each(|_| async {}));
        let watch = Watch { store, task };
        tokio::time::timeout(Duration::from_secs(60), watch.store.wait_until_ready())
            .await
            .context("the credential watch did not sync within 60 s")??;
        Ok(watch)
    }

    pub fn get(&self, cred: &Cred) -> Option<std::sync::Arc<SamlAppCredential>> {
        self.store.get(&ObjectRef::new(&cred.name).within(&cred.namespace))
    }

    /// Every credential in the cluster, by app ID, with its uid.
    pub fn uids_by_app(&self) -> HashMap<String, String> {
        let state = self.store.state();
        state.iter().filter_map(|c| Some((c.spec.app_id.clone(), c.metadata.uid.clone()?))).collect()
    }

    /// How many of `creds` satisfy `done`.
    pub fn count(&self, creds: &[Cred], done: impl Fn(&Cred, &SamlAppCredential) -> bool) -> usize {
        creds.iter().filter(|c| self.get(c).is_some_and(|sac| done(c, &sac))).count()
    }

    /// Waits until every one of `creds` satisfies `done`; returns when that was first seen.
    pub async fn wait_all(
        &self,
        what: &str,
        creds: &[Cred],
        timeout: Duration,
        done: impl Fn(&Cred, &SamlAppCredential) -> bool,
    ) -> Result<Timestamp> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        loop {
            let count = self.count(creds, &done);
            if count == creds.len() {
                return Ok(Timestamp::now());
            }
            if started.elapsed() > timeout {
                anyhow::bail!("timed out after {timeout:?} waiting for {what}: {count} of {}", creds.len());
            }
            if last_report.elapsed() > Duration::from_secs(15) {
                eprintln!("scale:   {what}: {count} of {}", creds.len());
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
