//! The Kubernetes client of the kubectl-style commands, built the way kubectl builds it: from
//! `--kubeconfig` (else `$KUBECONFIG`, else `~/.kube/config`, else the pod's service account), with
//! `--context`, and the namespace from `-n` or else from the context.

use anyhow::Context as _;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use std::path::PathBuf;

/// kubectl's global flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (default: the context's namespace, else "default").
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
}

/// A client and the namespace commands act in when no `-n` is given.
pub struct Kube {
    pub client: kube::Client,
    pub namespace: String,
}

impl KubeArgs {
    pub async fn connect(&self) -> anyhow::Result<Kube> {
        let options = KubeConfigOptions { context: self.context.clone(), ..Default::default() };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .with_context(|| format!("kubeconfig {}", path.display()))?
            }
            None if self.context.is_some() => {
                Config::from_kubeconfig(&options).await.context("cannot load the kubeconfig")?
            }
            None => Config::infer().await.context("no kubeconfig found and not running in a cluster")?,
        };
        let namespace = self.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).context("cannot build the Kubernetes client")?;
        Ok(Kube { client, namespace })
    }
}
