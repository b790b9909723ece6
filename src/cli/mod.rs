//! The day-2 commands (`status`, `rotate`, `activate`, `plan`, `check`): kubectl-style helpers that
//! also run as the kubectl plugin `kubectl-samlcred`. They read like the controller reads; only
//! `rotate` and `activate` write, and only an annotation.

pub mod annotate;
pub mod check;
pub mod kube;
pub mod plan;
pub mod status;

use ::kube::api::{Api, ListParams};
use anyhow::Context as _;
use kube::{Kube, KubeArgs};
use samlcred::api::SamlAppCredential;

/// The name the binary answers to as a kubectl plugin.
pub const PLUGIN_NAME: &str = "kubectl-samlcred";

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// One line per SamlAppCredential: org, app, active key, expiry, renewal, phase, Ready. Soonest renewal first.
    Status {
        #[command(flatten)]
        scope: Scope,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Start a rotation now (sets the samlcred.io/rotate annotation to a fresh token).
    Rotate {
        /// The SamlAppCredential.
        name: String,
    },
    /// Approve the pending key of a Manual-activation credential (sets samlcred.io/activate).
    Activate {
        /// The SamlAppCredential.
        name: String,
        /// The kid to activate; must be the pending key's (default: the pending key).
        #[arg(long)]
        kid: Option<String>,
    },
    /// Dry run: what the operator would do next for each SamlAppCredential, and when. Reads the
    /// cluster and (read-only) Okta; writes nothing.
    Plan {
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        orgs: OrgArgs,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Check an org: authentication, granted scopes, rate-limit budget, reading a sample app's keys.
    /// ORG is NAME or oktaorg/NAME (in -n's namespace) or clusteroktaorg/NAME.
    Check {
        /// The org.
        org: String,
        #[command(flatten)]
        orgs: OrgArgs,
    },
}

/// How orgs are reached, as the controller reaches them.
#[derive(clap::Args, Debug, Clone)]
pub struct OrgArgs {
    /// Namespace where the Secrets of ClusterOktaOrgs live (the controller's setting).
    #[arg(long, env = "SAMLCRED_CLUSTER_RESOURCE_NAMESPACE", default_value = "samlcred-system")]
    pub cluster_resource_namespace: String,
    /// Allow plain-http Okta URLs on loopback hosts (the simulator).
    #[arg(long, env = "SAMLCRED_ALLOW_INSECURE_OKTA_HTTP")]
    pub allow_insecure_okta_http: bool,
}

impl OrgArgs {
    pub fn settings(&self) -> samlcred::controller::orgs::OrgSettings {
        samlcred::controller::orgs::OrgSettings {
            cluster_resource_namespace: self.cluster_resource_namespace.clone(),
            allow_insecure_http: self.allow_insecure_okta_http,
            metrics: None,
            fence: None,
        }
    }
}

/// `-A`: every namespace instead of one.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Scope {
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// Runs one command; the error names what is wrong.
pub async fn run(kube_args: &KubeArgs, command: Command) -> anyhow::Result<()> {
    samlcred::okta::install_crypto_provider();
    let kube = kube_args.connect().await?;
    match command {
        Command::Status { scope, output } => status::run(&kube, scope.all_namespaces, output).await,
        Command::Rotate { name } => annotate::rotate(&kube, &name).await,
        Command::Activate { name, kid } => annotate::activate(&kube, &name, kid.as_deref()).await,
        Command::Check { org, orgs } => check::run(&kube, &org, &orgs).await,
        Command::Plan { scope, orgs, output } => plan::run(&kube, scope.all_namespaces, &orgs, output).await,
    }
}

/// The SamlAppCredentials of the namespace, or of all namespaces.
pub async fn list_credentials(kube: &Kube, all_namespaces: bool) -> anyhow::Result<Vec<SamlAppCredential>> {
    let api: Api<SamlAppCredential> = if all_namespaces {
        Api::all(kube.client.clone())
    } else {
        Api::namespaced(kube.client.clone(), &kube.namespace)
    };
    let where_ = if all_namespaces { "all namespaces".to_string() } else { format!("namespace {}", kube.namespace) };
    let list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("cannot list SamlAppCredentials in {where_}"))?;
    Ok(list.items)
}

pub fn nothing_found(kube: &Kube, all_namespaces: bool) -> String {
    if all_namespaces {
        "No SamlAppCredentials found.".into()
    } else {
        format!("No SamlAppCredentials found in namespace {}.", kube.namespace)
    }
}

/// Left-aligned columns separated by three spaces, like kubectl.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect()).chain(rows).collect();
    let mut widths = vec![0; header.len()];
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}
