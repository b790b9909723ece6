//! The validating admission webhook: what the API server's own checks cannot see (a schedule that
//! never fires, a time zone the tz database does not know), refused at admission rather than
//! reported later as Ready=False.
//!
//! Every replica serves it, leader or not. `validate` is pure and uses the controller's own parse
//! functions; `review` turns one AdmissionReview into its answer; `tls` serves HTTPS with bounded
//! reads; `pki` and `certs` keep the serving certificate, a self-signed CA in one Secret that all
//! replicas share, and the webhook configuration's caBundle.

pub mod certs;
pub mod pki;
pub mod review;
pub mod tls;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;

pub use validate::validate;

/// The webhook's flags (part of `samlcred controller`).
#[derive(clap::Args, Debug, Clone)]
pub struct WebhookArgs {
    /// Address of the validating admission webhook (HTTPS). An empty value turns the webhook off.
    #[arg(long, env = "SAMLCRED_WEBHOOK_BIND_ADDRESS", default_value = "0.0.0.0:9443", value_parser = parse_address)]
    pub webhook_bind_address: BindAddress,
    /// DNS names and IP addresses of the webhook's serving certificate, comma-separated (the
    /// Service's names; an IP such as 127.0.0.1 for a webhook reached by URL). Default:
    /// samlcred-webhook.<Secret namespace>.svc.
    #[arg(long, env = "SAMLCRED_WEBHOOK_HOSTS", value_delimiter = ',')]
    pub webhook_hosts: Vec<String>,
    /// Secret that holds the webhook's CA and serving certificate; created if absent.
    #[arg(long, env = "SAMLCRED_WEBHOOK_SECRET_NAME", default_value = "samlcred-webhook-tls")]
    pub webhook_secret_name: String,
    /// Namespace of that Secret (default: the pod's namespace, else samlcred-system).
    #[arg(long, env = "SAMLCRED_WEBHOOK_SECRET_NAMESPACE")]
    pub webhook_secret_namespace: Option<String>,
    /// ValidatingWebhookConfiguration whose caBundle is kept on the Secret's CA. Empty: left alone
    /// (its caBundle is managed elsewhere, e.g. by cert-manager's CA injector).
    #[arg(long, env = "SAMLCRED_WEBHOOK_CONFIGURATION_NAME", default_value = "samlcred-webhook")]
    pub webhook_configuration_name: String,
}

/// `--webhook-bind-address`: an address, or none (the webhook is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

fn parse_address(text: &str) -> Result<BindAddress, String> {
    if text.trim().is_empty() {
        return Ok(BindAddress(None));
    }
    text.trim().parse().map(|addr| BindAddress(Some(addr))).map_err(|e| format!("{text:?}: {e}"))
}

impl WebhookArgs {
    fn settings(&self) -> certs::CertSettings {
        let namespace = self
            .webhook_secret_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "samlcred-system".into());
        let mut hosts: Vec<String> =
            self.webhook_hosts.iter().map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect();
        if hosts.is_empty() {
            hosts.push(format!("samlcred-webhook.{namespace}.svc"));
        }
        let configuration = self.webhook_configuration_name.trim();
        certs::CertSettings {
            namespace,
            secret_name: self.webhook_secret_name.clone(),
            configuration_name: (!configuration.is_empty()).then(|| configuration.to_owned()),
            hosts,
        }
    }
}

/// Binds the webhook's port (a taken port fails the start) and serves in the background, with the
/// certificate kept in the background too; returns the bound address, or None when it is off.
pub async fn start(client: kube::Client, args: &WebhookArgs) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = args.webhook_bind_address.0 else { return Ok(None) };
    let settings = args.settings();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let serving = Arc::new(tls::ServingCert::default());
    let acceptor = tls::acceptor(serving.clone())?;
    tracing::info!(%bound, secret = %format!("{}/{}", settings.namespace, settings.secret_name), hosts = ?settings.hosts, "webhook starting");
    tokio::spawn(tls::serve(listener, acceptor));
    tokio::spawn(certs::keep(client, settings, serving));
    Ok(Some(bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_bind_address_turns_the_webhook_off() {
        assert_eq!(parse_address(""), Ok(BindAddress(None)));
        assert_eq!(parse_address("127.0.0.1:9443"), Ok(BindAddress(Some("127.0.0.1:9443".parse().unwrap()))));
        assert!(parse_address("nine").is_err());
    }
}
