//! `samlcred check ORG`: does the org's authentication work, with what privileges, how much of the
//! rate limits is left, and can a sample app's keys be read? Exit 0 only when all the operator needs works.
//! The org's Secrets are read as the controller reads them; they are never printed.

use super::OrgArgs;
use crate::cli::kube::Kube;
use anyhow::{Context as _, bail};
use kube::api::Api;
use samlcred::api::{ClusterOktaOrg, OktaOrg, OktaOrgSpec, OrgKind, SamlAppCredential};
use samlcred::controller::orgs::{OrgClients, OrgKey};
use samlcred::okta::{AppQuery, DEFAULT_SCOPES, OktaClient};

/// `acme`, `oktaorg/acme` or `clusteroktaorg/acme`.
fn parse(org: &str, namespace: &str) -> anyhow::Result<OrgKey> {
    let (kind, name) = match org.split_once('/') {
        None => (OrgKind::OktaOrg, org),
        Some((kind, name)) => match kind.to_ascii_lowercase().as_str() {
            "oktaorg" | "oktaorgs" | "oktaorg.samlcred.io" => (OrgKind::OktaOrg, name),
            "clusteroktaorg" | "clusteroktaorgs" | "clusteroktaorg.samlcred.io" => (OrgKind::ClusterOktaOrg, name),
            other => bail!("unknown org kind {other}: use oktaorg/NAME or clusteroktaorg/NAME"),
        },
    };
    let namespace = (kind == OrgKind::OktaOrg).then(|| namespace.to_string());
    Ok(OrgKey { kind, namespace, name: name.to_string() })
}

pub async fn run(kube: &Kube, org: &str, orgs: &OrgArgs) -> anyhow::Result<()> {
    let key = parse(org, &kube.namespace)?;
    let spec: OktaOrgSpec = match &key.namespace {
        Some(ns) => Api::<OktaOrg>::namespaced(kube.client.clone(), ns)
            .get_opt(&key.name)
            .await?
            .with_context(|| format!("OktaOrg {ns}/{} not found", key.name))?
            .spec
            .clone(),
        None => Api::<ClusterOktaOrg>::all(kube.client.clone())
            .get_opt(&key.name)
            .await?
            .with_context(|| format!("ClusterOktaOrg {} not found", key.name))?
            .spec
            .org
            .clone(),
    };
    println!("{key}: {}", spec.url);
    let okta = OrgClients::new(kube.client.clone(), orgs.settings())
        .client(&key, None)
        .await
        .with_context(|| format!("{key} cannot be used"))?;
    let mut problems: Vec<String> = Vec::new();

    // Authentication: the same cheap call the org's Ready check makes.
    match okta.verify_credentials().await {
        Ok(()) => println!("authentication: ok"),
        Err(e) => {
            println!("authentication: FAILED: {e}");
            report_rate_limits(&okta, spec.rate_limit.max_share);
            bail!("{key}: Okta did not accept the credentials: {e}");
        }
    }

    // Privileges.
    if let Some(oauth) = &spec.auth.oauth {
        let requested = if oauth.scopes.is_empty() {
            DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
        } else {
            oauth.scopes.clone()
        };
        // Okta's token response says which scopes it granted; without it, issuing the token for the
        // requested scopes is the grant.
        let (scopes, source) = match okta.granted_scopes() {
            Some(granted) => (granted, "granted by Okta"),
            None => (requested, "requested; Okta issued the token for them"),
        };
        println!(
            "scopes: {} ({source}; DPoP {})",
            scopes.join(" "),
            if okta.uses_dpop() { "in use" } else { "not in use" }
        );
        for needed in DEFAULT_SCOPES {
            if !scopes.iter().any(|s| s == needed) {
                problems.push(format!("scope {needed} is not granted; samlcred needs it"));
            }
        }
    } else {
        println!("scopes: none (SSWS API token: it carries the privileges of the admin who created it)");
    }

    // A sample app's keys: one samlcred manages if there is one, else the first app Okta lists.
    let sample = match sample_app(kube, &key).await {
        Some(app) => Some(app),
        None => match okta.list_apps(&AppQuery { limit: Some(200), ..Default::default() }).await {
            Ok(apps) => apps.into_iter().next().map(|a| a.id),
            Err(e) => {
                problems.push(format!("cannot list apps: {e}"));
                None
            }
        },
    };
    match &sample {
        Some(app) => match okta.list_keys(app).await {
            Ok(keys) => println!("app keys: ok ({} key credential(s) of app {app} readable)", keys.len()),
            Err(e) => problems.push(format!("cannot read the keys of app {app}: {e}")),
        },
        None => println!("app keys: not checked (the org has no apps)"),
    }
    report_rate_limits(&okta, spec.rate_limit.max_share);

    if problems.is_empty() {
        println!("ok: {key} has everything samlcred needs");
        Ok(())
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        bail!("{key}: {}", problems.join("; "))
    }
}

/// The app of a SamlAppCredential that uses this org, if any.
async fn sample_app(kube: &Kube, key: &OrgKey) -> Option<String> {
    let api: Api<SamlAppCredential> = match &key.namespace {
        Some(ns) => Api::namespaced(kube.client.clone(), ns),
        None => Api::all(kube.client.clone()),
    };
    let list = api.list(&Default::default()).await.ok()?;
    list.items
        .into_iter()
        .find(|c| c.spec.org_ref.kind == key.kind && c.spec.org_ref.name == key.name)
        .map(|c| c.spec.app_id)
}

fn report_rate_limits(okta: &OktaClient, max_share: i32) {
    let share = max_share.clamp(1, 100) as u32;
    println!("rate limits (samlcred may use {share}% of each bucket):");
    for bucket in ["/api/v1/apps", "/api/v1/apps/{id}", "/oauth2/v1/token"] {
        let Some(status) = okta.rate_limit_status(bucket) else { continue };
        let limit = status.limit.map(|l| l.to_string()).unwrap_or_else(|| "?".into());
        let remaining = status.remaining.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
        let budget =
            status.limit.map(|l| (l * share / 100).max(1)).map(|b| b.to_string()).unwrap_or_else(|| "?".into());
        println!("  {bucket}: limit {limit}/min, remaining {remaining}, samlcred's budget {budget}/min");
    }
}
