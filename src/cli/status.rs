//! `samlcred status`: one line per SamlAppCredential, soonest renewal first.

use super::{Output, list_credentials, table};
use crate::cli::kube::Kube;
use samlcred::api::{OrgKind, SamlAppCredential, conditions};
use serde::Serialize;

/// One credential as `status` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub org: String,
    pub app_id: String,
    /// spec.additionalAppIds, each with the kid samlcred activated there (`None`: it joins at the
    /// next rotation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_apps: Vec<AppRow>,
    pub active_kid: Option<String>,
    pub expires: Option<String>,
    pub renewal_time: Option<String>,
    pub phase: Option<String>,
    pub ready: Option<String>,
    pub reason: Option<String>,
    pub message: Option<String>,
    /// The ExpiringSoon condition's message, when it is True.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiring_soon: Option<String>,
    /// The RestartsPending condition's message while restarts wait for their turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts_pending: Option<String>,
}

/// An additional app of a credential.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRow {
    pub app_id: String,
    pub kid: Option<String>,
}

pub fn row(credential: &SamlAppCredential) -> Row {
    let spec = &credential.spec;
    let status = credential.status.clone().unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.type_ == conditions::READY);
    let rotating = status.conditions.iter().find(|c| c.type_ == conditions::ROTATING);
    let expiring = status.conditions.iter().find(|c| c.type_ == conditions::EXPIRING_SOON && c.status == "True");
    // What a published key waits for, beside the phase: approval, or the restart targets' rollout.
    let waiting = rotating.map(|c| c.reason.as_str()).filter(|reason| {
        [
            conditions::REASON_AWAITING_APPROVAL,
            conditions::REASON_WAITING_FOR_ROLLOUT,
            conditions::REASON_ROLLOUT_STUCK,
            conditions::REASON_WAITING_FOR_WINDOW,
        ]
        .contains(reason)
    });
    let restarts = status
        .conditions
        .iter()
        .find(|c| c.type_ == conditions::RESTARTS_PENDING && c.status == "True")
        .map(|c| c.message.clone());
    let phase = status.rotation.as_ref().map(|r| {
        let phase = format!("{:?}", r.phase);
        match waiting {
            Some(reason) => format!("{phase} ({reason})"),
            None => phase,
        }
    });
    Row {
        namespace: credential.metadata.namespace.clone().unwrap_or_default(),
        name: credential.metadata.name.clone().unwrap_or_default(),
        org: match spec.org_ref.kind {
            OrgKind::OktaOrg => spec.org_ref.name.clone(),
            OrgKind::ClusterOktaOrg => format!("clusteroktaorg/{}", spec.org_ref.name),
        },
        app_id: spec.app_id.clone(),
        additional_apps: spec
            .additional_app_ids
            .iter()
            .map(|app| AppRow {
                app_id: app.clone(),
                kid: status.additional_apps.iter().find(|a| a.app_id == *app).map(|a| a.kid.clone()),
            })
            .collect(),
        active_kid: status.active_key.as_ref().map(|k| k.kid.clone()),
        expires: status.active_key.as_ref().map(|k| k.not_after.0.to_string()),
        renewal_time: status.renewal_time.as_ref().map(|t| t.0.to_string()),
        phase,
        ready: ready.map(|c| c.status.clone()),
        reason: ready.map(|c| c.reason.clone()),
        message: ready.map(|c| c.message.clone()),
        expiring_soon: expiring.map(|c| c.message.clone()),
        restarts_pending: restarts,
    }
}

pub async fn run(kube: &Kube, all_namespaces: bool, output: Output) -> anyhow::Result<()> {
    let credentials = list_credentials(kube, all_namespaces).await?;
    let mut rows: Vec<Row> = credentials.iter().map(row).collect();
    // Soonest renewal first; credentials without a renewal time (not adopted yet) last.
    rows.sort_by(|a, b| {
        (a.renewal_time.is_none(), &a.renewal_time, &a.namespace, &a.name).cmp(&(
            b.renewal_time.is_none(),
            &b.renewal_time,
            &b.namespace,
            &b.name,
        ))
    });
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(&rows)?),
        Output::Table => {
            if rows.is_empty() {
                eprintln!("{}", super::nothing_found(kube, all_namespaces));
                return Ok(());
            }
            let header = ["NAMESPACE", "NAME", "ORG", "APP", "KID", "EXPIRES", "RENEWAL", "PHASE", "READY"];
            let lines = rows.iter().map(|r| {
                let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                let ready = match (&r.ready, &r.reason) {
                    (Some(s), Some(reason)) => format!("{s} ({reason})"),
                    _ => "-".into(),
                };
                // An expiring certificate nobody is replacing shows where people look first.
                let expires = match &r.expiring_soon {
                    Some(_) => format!("{} (ExpiringSoon)", dash(&r.expires)),
                    None => dash(&r.expires),
                };
                vec![
                    r.namespace.clone(),
                    r.name.clone(),
                    r.org.clone(),
                    match r.additional_apps.len() {
                        0 => r.app_id.clone(),
                        n => format!("{} (+{n})", r.app_id),
                    },
                    r.active_kid.as_deref().map(short_kid).unwrap_or_else(|| "-".into()),
                    expires,
                    dash(&r.renewal_time),
                    match (r.phase.clone().unwrap_or_else(|| "Idle".into()), &r.restarts_pending) {
                        (phase, Some(_)) => format!("{phase} ({})", conditions::RESTARTS_PENDING),
                        (phase, None) => phase,
                    },
                    ready,
                ]
            });
            print!("{}", table(&header, lines));
        }
    }
    Ok(())
}

/// The first characters of a kid, enough to tell keys apart in a table.
pub fn short_kid(kid: &str) -> String {
    const SHORT: usize = 12;
    if kid.chars().count() <= SHORT {
        kid.to_string()
    } else {
        format!("{}…", kid.chars().take(SHORT).collect::<String>())
    }
}
