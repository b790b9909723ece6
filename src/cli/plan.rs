//! `samlcred plan`: a dry run. For each SamlAppCredential it observes exactly what the reconciler
//! observes (the credential, Okta through GETs only, the Secret), asks the same planner, and prints the
//! next step and when it is due. Nothing is written anywhere.

use super::{OrgArgs, Output, list_credentials, table};
use crate::cli::kube::Kube;
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::Api;
use samlcred::api::{SamlAppCredential, conditions};
use samlcred::controller::Settings;
use samlcred::controller::credential::{self, StepError};
use samlcred::controller::orgs::OrgClients;
use samlcred::rotation::{self, Plan, PlanInput};
use serde::Serialize;

/// The next step of one credential.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub namespace: String,
    pub name: String,
    /// adopt, generate, clone, publish, activate, retire or nothing.
    pub action: String,
    /// `now`, an RFC 3339 time, `on approval`, or `-` when nothing is planned.
    pub when: String,
    pub detail: String,
    /// When the next rotation starts (RFC 3339), once there is an active key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    /// How much earlier than renewBefore asks that is, the credential's share of the renewal
    /// spread (`1d 4h`), so that credentials created together do not rotate together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_spread: Option<String>,
    /// The observation failed (org, Okta or Kubernetes); `detail` says why.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
}

pub async fn run(kube: &Kube, all_namespaces: bool, orgs: &OrgArgs, output: Output) -> anyhow::Result<()> {
    let mut credentials = list_credentials(kube, all_namespaces).await?;
    credentials.sort_by_key(|c| (c.namespace(), c.name_any()));
    // The older-claimant rule looks at every credential, as the controller's caches do.
    let everyone = match Api::<SamlAppCredential>::all(kube.client.clone()).list(&Default::default()).await {
        Ok(list) => list.items,
        Err(_) => credentials.clone(),
    };
    let clients = OrgClients::new(kube.client.clone(), orgs.settings());
    let now = Timestamp::now();
    let mut steps = Vec::new();
    for credential in &credentials {
        let (action, when, detail, error) = match plan_one(kube, &clients, credential, &everyone, now).await {
            Ok((action, when, detail)) => (action, when, detail, false),
            Err(e) => ("nothing".to_string(), "-".to_string(), format!("{}: {e}", e.reason()), true),
        };
        let (renewal_time, renewal_spread) = renewal(credential);
        steps.push(Step {
            namespace: credential.namespace().unwrap_or_default(),
            name: credential.name_any(),
            action,
            when,
            detail,
            renewal_time,
            renewal_spread,
            error,
        });
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&steps)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(&steps)?),
        Output::Table if steps.is_empty() => eprintln!("{}", super::nothing_found(kube, all_namespaces)),
        Output::Table => {
            let lines = steps.iter().map(|s| {
                let renewal = match (&s.renewal_time, &s.renewal_spread) {
                    (Some(at), Some(spread)) => format!("{at} (spread -{spread})"),
                    _ => "-".into(),
                };
                vec![s.namespace.clone(), s.name.clone(), s.action.clone(), s.when.clone(), renewal, s.detail.clone()]
            });
            print!("{}", table(&["NAMESPACE", "NAME", "NEXT", "WHEN", "RENEWAL", "DETAIL"], lines));
        }
    }
    let failed: Vec<String> = steps.iter().filter(|s| s.error).map(|s| format!("{}/{}", s.namespace, s.name)).collect();
    if !failed.is_empty() {
        anyhow::bail!("could not observe {}; see DETAIL", failed.join(", "));
    }
    Ok(())
}

/// Observes one credential and plans it as the reconciler would at `now`.
async fn plan_one(
    kube: &Kube,
    clients: &OrgClients,
    credential: &SamlAppCredential,
    everyone: &[SamlAppCredential],
    now: Timestamp,
) -> Result<(String, String, String), StepError> {
    let namespace = credential.namespace().unwrap_or_default();
    let generation = credential.metadata.generation;
    let backoff = credential::backoff_remaining(&Settings::default(), credential.status.as_ref(), generation, now);
    let policy = credential::policy_of(credential);
    let status = credential::status_for_planning(credential.status.clone(), &policy, generation);
    let (org_key, okta) = clients.for_credential(&namespace, &credential.spec.org_ref, &credential.spec.app_id).await?;
    let observed = samlcred::controller::secrets::observe(credential, &kube.client, &okta, &status).await?;
    let claimant =
        samlcred::controller::older_claimant(credential, &org_key, everyone.iter(), |key| clients.origin_of(key));
    let input = credential::plan_input(credential, &status, &policy, &observed, claimant.as_deref(), now);
    let plan = rotation::plan(&input);
    let (action, when, mut detail) = describe(credential, &input, &plan, now);
    let restarts = status.conditions.iter().find(|c| c.type_ == conditions::RESTARTS_PENDING && c.status == "True");
    if let Some(waiting) = restarts {
        detail.push_str(&format!("; restart targets {}", waiting.message));
    }
    let when = match backoff {
        Some(wait) if when == "now" => {
            let at = now + SignedDuration::try_from(wait).unwrap_or_default();
            detail.push_str(&format!(" (after the backoff of {} failed attempt(s))", status.failed_attempts));
            at_time(at, now)
        }
        _ => when,
    };
    Ok((action, when, detail))
}

/// What a plan means to a person: the action, when, and a sentence.
fn describe(
    credential: &SamlAppCredential,
    input: &PlanInput,
    plan: &Plan,
    now: Timestamp,
) -> (String, String, String) {
    let spec = &credential.spec;
    let now_ = |action: &str, detail: String| (action.to_string(), "now".to_string(), detail);
    match plan {
        Plan::Report { reason, message } => ("nothing".into(), "-".into(), format!("{reason}: {message}")),
        Plan::Adopt { key } => now_(
            "adopt",
            format!("record Okta's active key {} (expires {}) and write the Secret", key.kid, key.not_after),
        ),
        Plan::AdoptExternalChange { key } => {
            now_("adopt", format!("Okta signs with key {}, which samlcred did not activate; adopt it", key.kid))
        }
        Plan::RecordActivation { key } => {
            now_("activate", format!("Okta already signs with the pending key {}; record the activation", key.kid))
        }
        Plan::StartRotation { trigger } => {
            now_("generate", format!("start a rotation (trigger {trigger:?}) and generate a new key"))
        }
        Plan::Generate => now_("generate", format!("generate a new key valid {} years", spec.validity_years)),
        Plan::ResumeWithOrphan { key } => {
            now_("generate", format!("take key {}, generated before an interruption, instead of another", key.kid))
        }
        Plan::Clone { kid, apps } => now_("clone", format!("clone key {kid} to additional app(s) {}", apps.join(", "))),
        Plan::Publish { kid } => now_("publish", format!("publish key {kid} in Secret {}", spec.secret_name)),
        Plan::ActivateBeforeRollout { message, .. } | Plan::ActivateOutsideWindow { message, .. } => {
            now_("activate", message.clone())
        }
        Plan::AwaitWindow { kid, opens_at } => (
            "activate".into(),
            at_time(*opens_at, now),
            format!("switch Okta to key {kid} when the next activation window opens"),
        ),
        Plan::Activate { kid } => {
            let apps = rotation::apps_to_activate(&spec.additional_app_ids, input.status);
            let also = if apps.is_empty() { String::new() } else { format!(" on app(s) {}, then", apps.join(", ")) };
            now_("activate", format!("switch Okta to key {kid}{also} on app {}", spec.app_id))
        }
        Plan::AwaitRollout { kid, stuck, message, until } => (
            "activate".into(),
            format!("after rollout, at the latest {}", at_time(*until, now)),
            format!(
                "key {kid} waits for the restart targets{}: {message}",
                if *stuck { " (stuck, needs a person)" } else { "" }
            ),
        ),
        Plan::Retire { kids } => {
            now_("retire", format!("remove key(s) {} from Secret {}", kids.join(", "), spec.secret_name))
        }
        Plan::WriteSecret => now_("publish", format!("bring Secret {} in line with status", spec.secret_name)),
        Plan::AwaitApproval { kid } => (
            "activate".into(),
            "on approval".into(),
            format!("key {kid} awaits approval: samlcred activate {} --kid {kid}", credential.name_any()),
        ),
        Plan::WaitUntil(at) => {
            // What is due then is what the same planner says at that time.
            let later = PlanInput { now: *at, ..input.clone() };
            match rotation::plan(&later) {
                Plan::WaitUntil(_) | Plan::Report { .. } | Plan::AwaitApproval { .. } => {
                    ("nothing".into(), at_time(*at, now), "up to date".into())
                }
                next => {
                    let (action, _, detail) = describe(credential, &later, &next, *at);
                    (action, at_time(*at, now), detail)
                }
            }
        }
    }
}

/// The renewal time and the spread in it, under the credential's current spec.
fn renewal(credential: &SamlAppCredential) -> (Option<String>, Option<String>) {
    let Ok(policy) = credential::policy_of(credential) else { return (None, None) };
    let active = credential.status.as_ref().and_then(|s| s.active_key.as_ref());
    let renewal = active.map(|key| rotation::renewal_time(key.not_after.0, &policy));
    (renewal.map(|at| at.to_string()), Some(span(policy.renewal_spread.as_secs())))
}

/// `28d 3h`, `3h 12m`, `4m 10s`.
fn span(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `2026-12-24T10:00:00Z (in 28d 3h)`.
fn at_time(at: Timestamp, now: Timestamp) -> String {
    let relative = span(at.duration_since(now).as_secs());
    format!("{} (in {relative})", at.round(jiff::Unit::Second).unwrap_or(at))
}
