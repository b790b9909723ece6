//! rolloutRestartTargets: workloads restarted when the Secret's content changes.
//!
//! The pod template carries an annotation with a hash of samlcred's Secret data. Setting it changes
//! the template (so Kubernetes rolls the pods) exactly when the data changes, and checking it on every
//! Secret write makes a restart missed by a crash happen on the next reconcile.
//!
//! Restarts are paced cluster-wide ([`super::pacer`], `--max-restarts-per-minute`): a restart
//! that must wait for its turn is left for a later reconcile, which finds the pod template still
//! without the hash and restarts it then ([`Restarts::Waiting`]; status condition RestartsPending).

use super::Context;
use crate::api::annotations::SECRET_HASH;
use crate::api::{FIELD_MANAGER, SamlAppCredential, WorkloadKind, events};
use crate::rotation::Rollout;
use crate::secret::Rendered;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

/// The hash restarted pod templates carry: the Secret's own `samlcred.io/secret-hash`.
pub fn data_hash(rendered: &Rendered) -> String {
    crate::secret::data_hash(&rendered.data)
}

/// What became of the restarts a Secret write asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restarts {
    /// Every target runs, or was just restarted for, the Secret's content (or cannot be).
    Done,
    /// Some wait for their turn: `ahead` restarts of other credentials go first; come back after
    /// `retry_in`.
    Waiting { ahead: usize, retry_in: std::time::Duration },
}

/// Sets the hash annotation on each target whose pod template does not carry it yet, as far as
/// the cluster-wide pace allows. A target that cannot be restarted (missing, 403, any API error)
/// gets a Warning event and the rotation goes on: one team's broken or forbidden workload must not
/// stop the credential's rotation.
pub async fn restart_targets(ctx: &Context, credential: &SamlAppCredential, rendered: &Rendered) -> Restarts {
    restart_for(ctx, credential, &data_hash(rendered), true).await
}

/// [`restart_targets`] for the Secret whose data hash is `hash`: what a reconcile calls to resume
/// restarts that waited for their turn (`announce` false: a missing target was announced when
/// the Secret was written).
pub async fn restart_for(ctx: &Context, credential: &SamlAppCredential, hash: &str, announce: bool) -> Restarts {
    let namespace = credential.namespace().unwrap_or_default();
    let key = credential.uid().unwrap_or_else(|| format!("{namespace}/{}", credential.name_any()));
    let targets = &credential.spec.rollout_restart_targets;
    let mut due = Vec::new();
    for target in targets {
        let (api, api_version, kind) = target_api(&ctx.kube, &namespace, target.kind);
        match needs_restart(&api, &target.name, hash).await {
            Ok(Restart::Current) => {}
            Ok(Restart::Done) => due.push((target, api, api_version, kind)),
            Ok(Restart::Missing) if !announce => {}
            Err(_) if !announce => {}
            Ok(Restart::Missing) => {
                let note = format!(
                    "{kind} {} not found; it will be restarted once it exists and the Secret changes",
                    target.name
                );
                warn(ctx, credential, &note).await;
            }
            Err(e) => {
                warn(
                    ctx,
                    credential,
                    &format!("could not restart {kind} {}: {e}; the rotation goes on without it", target.name),
                )
                .await;
            }
        }
    }
    let count = due.len();
    for (i, (target, api, api_version, kind)) in due.into_iter().enumerate() {
        if let super::pacer::Turn::Wait { ahead, retry_in } =
            ctx.restarts.take(&key, count - i, std::time::Instant::now())
        {
            return Restarts::Waiting { ahead, retry_in };
        }
        let (type_, note) = match restart(&api, &api_version, &kind, &target.name, hash).await {
            Ok(Restart::Done) => (
                EventType::Normal,
                format!(
                    "restarted {kind} {} for the new content of Secret {}",
                    target.name, credential.spec.secret_name
                ),
            ),
            Ok(Restart::Current) => continue,
            Ok(Restart::Missing) => (
                EventType::Warning,
                format!("{kind} {} not found; it will be restarted once it exists and the Secret changes", target.name),
            ),
            Err(e) => (
                EventType::Warning,
                format!("could not restart {kind} {}: {e}; the rotation goes on without it", target.name),
            ),
        };
        if type_ == EventType::Warning {
            tracing::warn!(credential = %credential.name_any(), namespace, "{note}");
        }
        ctx.publish(credential, type_, events::ROLLOUT_RESTARTED, &note, "Restart").await;
    }
    ctx.restarts.leave(&key);
    Restarts::Done
}

async fn warn(ctx: &Context, credential: &SamlAppCredential, note: &str) {
    tracing::warn!(credential = %credential.name_any(), namespace = credential.namespace().unwrap_or_default(), "{note}");
    ctx.publish(credential, EventType::Warning, events::ROLLOUT_RESTARTED, note, "Restart").await;
}

/// Whether a target's pod template lacks the hash (`Done` here: it is to be restarted).
async fn needs_restart(api: &Api<DynamicObject>, name: &str, hash: &str) -> Result<Restart, kube::Error> {
    let Some(workload) = api.get_opt(name).await? else { return Ok(Restart::Missing) };
    if workload.data["spec"]["template"]["metadata"]["annotations"][SECRET_HASH].as_str() == Some(hash) {
        return Ok(Restart::Current);
    }
    Ok(Restart::Done)
}

enum Restart {
    Done,
    /// The pod template already carries the hash.
    Current,
    Missing,
}

async fn restart(
    api: &Api<DynamicObject>,
    api_version: &str,
    kind: &str,
    name: &str,
    hash: &str,
) -> Result<Restart, kube::Error> {
    let Some(workload) = api.get_opt(name).await? else { return Ok(Restart::Missing) };
    if workload.data["spec"]["template"]["metadata"]["annotations"][SECRET_HASH].as_str() == Some(hash) {
        return Ok(Restart::Current);
    }
    let patch = json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name},
        "spec": {"template": {"metadata": {"annotations": {SECRET_HASH: hash}}}}
    });
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(Restart::Done)
}

/// An Api for a target's kind in `namespace`, with that kind's apiVersion and kind names.
fn target_api(kube: &kube::Client, namespace: &str, kind: WorkloadKind) -> (Api<DynamicObject>, String, String) {
    let resource = match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
    };
    let api = Api::namespaced_with(kube.clone(), namespace, &resource);
    (api, resource.api_version.clone(), resource.kind.clone())
}

/// Whether activation waits for the restart targets: `activation.waitForRollout`, by default
/// whenever there are targets.
pub fn waits_for_rollout(spec: &crate::api::SamlAppCredentialSpec) -> bool {
    !spec.rollout_restart_targets.is_empty() && spec.activation.wait_for_rollout.unwrap_or(true)
}

/// How far each restart target is with rolling out the pod template for the Secret whose data
/// hash is `hash`: the [`Rollout`] the planner gates activation on. Only GETs.
pub async fn observe_rollout(kube: &kube::Client, credential: &SamlAppCredential, hash: &str) -> Rollout {
    let namespace = credential.namespace().unwrap_or_default();
    let mut states = Vec::new();
    for target in &credential.spec.rollout_restart_targets {
        let (api, _, kind) = target_api(kube, &namespace, target.kind);
        let state = match api.get_opt(&target.name).await {
            Ok(workload) => target_rollout(target.kind, workload.as_ref(), hash),
            // Forbidden or failing reads cannot show a rollout: hold activation, and say why.
            Err(e) => TargetRollout::Stuck(format!("cannot be read: {e}")),
        };
        states.push((format!("{kind} {}", target.name), state));
    }
    summarize(states)
}

/// One target's rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRollout {
    Done,
    Waiting(String),
    Stuck(String),
}

/// Reads a workload's rollout the way `kubectl rollout status` does: the pod template carries
/// `hash`, the workload controller has seen that generation, and every desired replica is
/// updated, ready and available. Pure.
pub fn target_rollout(kind: WorkloadKind, workload: Option<&DynamicObject>, hash: &str) -> TargetRollout {
    let Some(workload) = workload else { return TargetRollout::Stuck("not found".into()) };
    let data = &workload.data;
    if data["spec"]["template"]["metadata"]["annotations"][SECRET_HASH].as_str() != Some(hash) {
        return TargetRollout::Waiting("not restarted for the new Secret yet".into());
    }
    let status = &data["status"];
    let number = |value: &serde_json::Value| value.as_i64().unwrap_or(0);
    let generation = workload.metadata.generation.unwrap_or(0);
    let observed = number(&status["observedGeneration"]);
    if observed < generation {
        return TargetRollout::Waiting(format!("its controller has not seen generation {generation} yet"));
    }
    let stalled = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Progressing" && c["status"] == "False" && c["reason"] == "ProgressDeadlineExceeded");
    if stalled {
        return TargetRollout::Stuck("its rollout exceeded its progress deadline (ProgressDeadlineExceeded)".into());
    }
    let (desired, counts) = match kind {
        WorkloadKind::Deployment | WorkloadKind::StatefulSet => (
            data["spec"]["replicas"].as_i64().unwrap_or(1),
            [
                ("updated", number(&status["updatedReplicas"])),
                ("ready", number(&status["readyReplicas"])),
                ("available", number(&status["availableReplicas"])),
            ],
        ),
        WorkloadKind::DaemonSet => (
            number(&status["desiredNumberScheduled"]),
            [
                ("updated", number(&status["updatedNumberScheduled"])),
                ("ready", number(&status["numberReady"])),
                ("available", number(&status["numberAvailable"])),
            ],
        ),
    };
    if let Some((what, count)) = counts.iter().find(|(_, count)| *count != desired) {
        return TargetRollout::Waiting(format!("{count} of {desired} replicas {what}"));
    }
    // Old pods still running (a Deployment's surge, a StatefulSet's previous revision).
    let total = status["replicas"].as_i64();
    if kind != WorkloadKind::DaemonSet && total.is_some_and(|total| total > desired) {
        return TargetRollout::Waiting(format!("{} old replicas still terminating", total.unwrap_or(0) - desired));
    }
    let (current, update) = (status["currentRevision"].as_str(), status["updateRevision"].as_str());
    if kind == WorkloadKind::StatefulSet && current.is_some() && update.is_some() && current != update {
        return TargetRollout::Waiting("its update revision is not current yet".into());
    }
    TargetRollout::Done
}

/// The planner's view of every target: stuck if any is, else waiting if any is, else complete.
pub fn summarize(states: Vec<(String, TargetRollout)>) -> Rollout {
    let describe = |pick: fn(&TargetRollout) -> Option<&String>| {
        let parts: Vec<String> =
            states.iter().filter_map(|(name, state)| pick(state).map(|why| format!("{name}: {why}"))).collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    };
    let stuck = describe(|s| if let TargetRollout::Stuck(why) = s { Some(why) } else { None });
    let waiting = describe(|s| if let TargetRollout::Waiting(why) = s { Some(why) } else { None });
    match (stuck, waiting) {
        (Some(stuck), _) => Rollout::Stuck(stuck),
        (None, Some(waiting)) => Rollout::InProgress(waiting),
        (None, None) => Rollout::Complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn workload(kind: &str, generation: i64, hash: &str, spec_replicas: Option<i64>, status: Value) -> DynamicObject {
        let mut value = json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "web", "generation": generation},
            "spec": {"template": {"metadata": {"annotations": {SECRET_HASH: hash}}}},
            "status": status,
        });
        if let Some(replicas) = spec_replicas {
            value["spec"]["replicas"] = replicas.into();
        }
        serde_json::from_value(value).unwrap()
    }

    fn done_status(n: i64) -> Value {
        json!({"observedGeneration": 2, "replicas": n, "updatedReplicas": n, "readyReplicas": n, "availableReplicas": n})
    }

    #[test]
    fn a_deployment_is_done_when_every_desired_replica_is_updated_ready_and_available() {
        let d = workload("Deployment", 2, "h", Some(3), done_status(3));
        assert_eq!(target_rollout(WorkloadKind::Deployment, Some(&d), "h"), TargetRollout::Done);
    }

    #[test]
    fn each_missing_piece_keeps_it_waiting() {
        let cases = [
            (workload("Deployment", 2, "old", Some(3), done_status(3)), "not restarted"),
            (workload("Deployment", 3, "h", Some(3), done_status(3)), "generation 3"),
            (
                workload(
                    "Deployment",
                    2,
                    "h",
                    Some(3),
                    json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3}),
                ),
                "1 of 3 replicas updated",
            ),
            (
                workload(
                    "Deployment",
                    2,
                    "h",
                    Some(3),
                    json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}),
                ),
                "2 of 3 replicas ready",
            ),
            (workload("Deployment", 2, "h", Some(2), done_status(3)), "3 of 2 replicas updated"),
            (
                workload(
                    "Deployment",
                    2,
                    "h",
                    Some(3),
                    json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}),
                ),
                "1 old replicas",
            ),
            (workload("Deployment", 2, "h", None, json!({"observedGeneration": 2})), "0 of 1 replicas updated"),
        ];
        for (d, expected) in cases {
            match target_rollout(WorkloadKind::Deployment, Some(&d), "h") {
                TargetRollout::Waiting(why) => assert!(why.contains(expected), "{why} should say {expected}"),
                other => panic!("expected waiting ({expected}), got {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_or_stalled_target_is_stuck() {
        assert!(matches!(target_rollout(WorkloadKind::Deployment, None, "h"), TargetRollout::Stuck(_)));
        let mut status = done_status(1);
        status["updatedReplicas"] = 0.into();
        status["conditions"] =
            json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        let d = workload("Deployment", 2, "h", Some(1), status);
        match target_rollout(WorkloadKind::Deployment, Some(&d), "h") {
            TargetRollout::Stuck(why) => assert!(why.contains("ProgressDeadlineExceeded")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statefulsets_wait_for_their_update_revision_and_daemonsets_for_every_node() {
        let mut status = done_status(2);
        status["currentRevision"] = "web-1".into();
        status["updateRevision"] = "web-2".into();
        let s = workload("StatefulSet", 2, "h", Some(2), status.clone());
        assert!(matches!(target_rollout(WorkloadKind::StatefulSet, Some(&s), "h"), TargetRollout::Waiting(_)));
        status["currentRevision"] = "web-2".into();
        let s = workload("StatefulSet", 2, "h", Some(2), status);
        assert_eq!(target_rollout(WorkloadKind::StatefulSet, Some(&s), "h"), TargetRollout::Done);

        let ds = |ready: i64| json!({"observedGeneration": 2, "desiredNumberScheduled": 3, "updatedNumberScheduled": 3, "numberReady": ready, "numberAvailable": ready});
        let d = workload("DaemonSet", 2, "h", None, ds(2));
        assert!(matches!(target_rollout(WorkloadKind::DaemonSet, Some(&d), "h"), TargetRollout::Waiting(_)));
        let d = workload("DaemonSet", 2, "h", None, ds(3));
        assert_eq!(target_rollout(WorkloadKind::DaemonSet, Some(&d), "h"), TargetRollout::Done);
    }

    #[test]
    fn stuck_outranks_waiting_and_every_target_is_named() {
        let states = vec![
            ("Deployment a".to_string(), TargetRollout::Waiting("1 of 2 replicas ready".into())),
            ("Deployment b".to_string(), TargetRollout::Stuck("not found".into())),
            ("Deployment c".to_string(), TargetRollout::Done),
        ];
        assert_eq!(summarize(states), Rollout::Stuck("Deployment b: not found".into()));
        let states = vec![
            ("Deployment a".to_string(), TargetRollout::Waiting("1 of 2 replicas ready".into())),
            ("StatefulSet d".to_string(), TargetRollout::Waiting("not restarted for the new Secret yet".into())),
        ];
        assert_eq!(
            summarize(states),
            Rollout::InProgress(
                "Deployment a: 1 of 2 replicas ready; StatefulSet d: not restarted for the new Secret yet".into()
            )
        );
        assert_eq!(summarize(vec![]), Rollout::Complete);
    }
}
