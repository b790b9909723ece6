//! `samlcred controller`: runs the reconcilers until SIGTERM or Ctrl-C, finishing the step in flight.

use super::leader::{self, LeaseSettings};
use super::server::{self, Readiness};
use super::telemetry::{self, LogFormat};
use crate::api::{ClusterOktaOrg, OktaOrg, OrgKind, SamlAppCredential, labels};
use crate::controller::guard::{self, ReconcileError};
use crate::controller::orgs::{OrgClients, OrgSettings};
use crate::controller::{Context, Settings, credential, org_status};
use crate::metrics::Metrics;
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Namespaces to watch, comma-separated; empty watches all.
    #[arg(long, env = "SAMLCRED_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Namespace where the Secrets of ClusterOktaOrgs live.
    #[arg(long, env = "SAMLCRED_CLUSTER_RESOURCE_NAMESPACE", default_value = "samlcred-system")]
    pub cluster_resource_namespace: String,
    /// Run leader election on a Lease so that only one replica reconciles.
    #[arg(long, env = "SAMLCRED_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else the cluster
    /// resource namespace).
    #[arg(long, env = "SAMLCRED_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "SAMLCRED_LEADER_ELECTION_LEASE_NAME", default_value = "samlcred-controller")]
    pub leader_election_lease_name: String,
    /// How long a lease lasts without renewal; a standby takes over within this time. Go syntax.
    #[arg(long, env = "SAMLCRED_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// Address of the Prometheus endpoint (/metrics).
    #[arg(long, env = "SAMLCRED_METRICS_BIND_ADDRESS", default_value = "0.0.0.0:8080")]
    pub metrics_bind_address: SocketAddr,
    /// Address of the health endpoints (/healthz, /readyz).
    #[arg(long, env = "SAMLCRED_HEALTH_BIND_ADDRESS", default_value = "0.0.0.0:8081")]
    pub health_bind_address: SocketAddr,
    /// Log format.
    #[arg(long, env = "SAMLCRED_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Log level or filter (tracing's EnvFilter syntax), e.g. info or samlcred=debug.
    #[arg(long, env = "SAMLCRED_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// How many credentials are reconciled at once.
    #[arg(long, env = "SAMLCRED_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// How often Okta is read again when nothing is due (drift detection); jittered. Go syntax.
    #[arg(long, env = "SAMLCRED_OKTA_RESYNC_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub okta_resync_interval: Duration,
    /// Allow plain-http Okta URLs on loopback hosts (the simulator, in tests and the demo).
    #[arg(long, env = "SAMLCRED_ALLOW_INSECURE_OKTA_HTTP")]
    pub allow_insecure_okta_http: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::api::duration::parse(text).map_err(|e| e.to_string())
}

type ReconcileFuture = BoxFuture<'static, ()>;

fn error_policy<K>(_: Arc<K>, error: &ReconcileError, _: Arc<Context>) -> Action {
    let error = match error {
        ReconcileError::Kube(error) => error,
        // Counted and reported by the guard already.
        ReconcileError::Panicked { .. } => return Action::requeue(guard::PANIC_RETRY),
    };
    // 409: the reconcile ran on a cache behind samlcred's own last write; retry as soon as it caught up.
    if matches!(error, kube::Error::Api(status) if status.code == 409) {
        tracing::debug!("status write conflicted with a newer version; retrying");
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!("reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// An Api over one watched namespace, or over all of them (`None`).
fn scoped<K>(client: &kube::Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Logs each reconcile's outcome and drives the stream to completion.
async fn drain<S, T, E>(stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    T: std::fmt::Debug,
    E: std::fmt::Display,
{
    stream
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("controller: {e}");
            }
        })
        .await
}

pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format, &args.log_level);
    crate::okta::install_crypto_provider();
    let client = kube::Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(Readiness::default());
    let (metrics_addr, health_addr) =
        server::serve(args.metrics_bind_address, args.health_bind_address, metrics.clone(), readiness.clone()).await?;
    tracing::info!(%metrics_addr, %health_addr, namespaces = ?args.namespaces, "samlcred controller starting");

    let shutdown = shutdown_signal();
    let leadership = if args.leader_elect {
        // A standby is healthy and ready: it must not block a rolling update.
        readiness.set_ready();
        let settings = LeaseSettings {
            namespace: args
                .leader_election_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| args.cluster_resource_namespace.clone()),
            name: args.leader_election_lease_name.clone(),
            identity: std::env::var("POD_NAME").unwrap_or_else(|_| format!("samlcred-{}", std::process::id())),
            duration: args.leader_election_lease_duration,
        };
        match leader::acquire(client.clone(), &settings, shutdown.clone()).await? {
            Some(leadership) => Some(leadership),
            None => return Ok(()),
        }
    } else {
        None
    };

    let scopes: Vec<Option<String>> =
        if args.namespaces.is_empty() { vec![None] } else { args.namespaces.iter().cloned().map(Some).collect() };
    let api_for = |ns: &Option<String>| scoped::<SamlAppCredential>(&client, ns);
    let credential_controllers: Vec<Controller<SamlAppCredential>> =
        scopes.iter().map(|ns| Controller::new(api_for(ns), watcher::Config::default().any_semantic())).collect();
    let stores: Vec<Store<SamlAppCredential>> = credential_controllers.iter().map(|c| c.store()).collect();

    let reporter = Reporter { controller: "samlcred".into(), instance: std::env::var("POD_NAME").ok() };
    let okta_metrics: Arc<dyn crate::okta::MetricsHook> = metrics.clone();
    let ctx = Arc::new(Context {
        kube: client.clone(),
        orgs: OrgClients::new(
            client.clone(),
            OrgSettings {
                cluster_resource_namespace: args.cluster_resource_namespace.clone(),
                allow_insecure_http: args.allow_insecure_okta_http,
                metrics: Some(okta_metrics),
                fence: leadership.as_ref().map(|l| Arc::new(l.fence()) as Arc<dyn crate::okta::WriteFence>),
            },
        ),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        settings: Settings { okta_resync: args.okta_resync_interval, ..Settings::default() },
        credentials: stores.clone(),
        failures: Default::default(),
        activations: Default::default(),
        org_shares: crate::controller::fairness::OrgShares::new(usize::from(args.concurrency)),
    });

    let config = controller::Config::default().concurrency(args.concurrency);
    let mut tasks: Vec<ReconcileFuture> = Vec::new();
    for (controller, ns) in credential_controllers.into_iter().zip(&scopes) {
        let store = controller.store();
        let secrets: Api<PartialObjectMeta<Secret>> = scoped(&client, ns);
        let orgs: Api<OktaOrg> = scoped(&client, ns);
        let (org_store, cluster_org_store, secret_store, peer_store) =
            (store.clone(), store.clone(), store.clone(), store.clone());
        let stream = controller
            .with_config(config.clone())
            // A Secret edited, deleted or marked adoptable is seen by the credential it is for. Only
            // metadata is watched: the data of every other Secret (Helm releases are ~100 KiB each)
            // must not stream through the operator.
            .watches(secrets, watcher::Config::default(), move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace();
                let name = secret.name_any();
                let labelled = secret.labels().get(labels::CREDENTIAL).cloned();
                secret_store
                    .state()
                    .into_iter()
                    .filter(|c| c.namespace() == ns && (c.spec.secret_name == name || Some(c.name_any()) == labelled))
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            })
            // When a credential goes, another on the same app may now be the oldest and take over.
            .watches(api_for(ns), watcher::Config::default(), move |gone: SamlAppCredential| {
                let peers = peer_store
                    .state()
                    .into_iter()
                    .filter(|c| c.spec.app_id == gone.spec.app_id && c.uid() != gone.uid());
                peers.map(|c| ObjectRef::from_obj(&*c)).collect::<Vec<_>>()
            })
            // A changed org may unblock or change every credential that uses it.
            .watches(orgs, watcher::Config::default(), move |org: OktaOrg| {
                let (ns, name) = (org.namespace(), org.name_any());
                users_of(&org_store, OrgKind::OktaOrg, &name, |c| c.namespace() == ns)
            })
            .watches(Api::<ClusterOktaOrg>::all(client.clone()), watcher::Config::default(), move |org| {
                users_of(&cluster_org_store, OrgKind::ClusterOktaOrg, &org.name_any(), |_| true)
            })
            .graceful_shutdown_on(shutdown.clone())
            .run(|credential, ctx| guard::guarded(credential, ctx, credential::reconcile), error_policy, ctx.clone());
        tasks.push(Box::pin(drain(stream)));
    }
    for ns in &scopes {
        let orgs: Api<OktaOrg> = scoped(&client, ns);
        let stream = Controller::new(orgs, watcher::Config::default()).graceful_shutdown_on(shutdown.clone()).run(
            |org, ctx| guard::guarded(org, ctx, org_status::reconcile_okta_org),
            error_policy,
            ctx.clone(),
        );
        tasks.push(Box::pin(drain(stream)));
    }
    let cluster_orgs: Api<ClusterOktaOrg> = Api::all(client.clone());
    let stream = Controller::new(cluster_orgs, watcher::Config::default()).graceful_shutdown_on(shutdown.clone()).run(
        |org, ctx| guard::guarded(org, ctx, org_status::reconcile_cluster_okta_org),
        error_policy,
        ctx.clone(),
    );
    tasks.push(Box::pin(drain(stream)));

    let ready_stores = stores.clone();
    let ready_flag = readiness.clone();
    tokio::spawn(async move {
        for store in ready_stores {
            // Asked afresh each time: a waiter that shares the store's ready signal with the
            // controller's own runner is not always woken (seen with kube-runtime 5.0).
            while tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await.is_err() {}
        }
        ready_flag.set_ready();
        tracing::info!("caches synced; ready");
    });

    futures::future::join_all(tasks).await;
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    tracing::info!("samlcred controller stopped");
    Ok(())
}

/// The credentials in `store` whose orgRef names this org.
fn users_of(
    store: &Store<SamlAppCredential>,
    kind: OrgKind,
    name: &str,
    also: impl Fn(&SamlAppCredential) -> bool,
) -> Vec<ObjectRef<SamlAppCredential>> {
    store
        .state()
        .into_iter()
        .filter(|c| c.spec.org_ref.kind == kind && c.spec.org_ref.name == name && also(c))
        .map(|c| ObjectRef::from_obj(&*c))
        .collect()
}

/// Resolves on SIGTERM or Ctrl-C; clonable so every controller stops on the same signal.
fn shutdown_signal() -> futures::future::Shared<BoxFuture<'static, ()>> {
    use futures::FutureExt;
    let signal: BoxFuture<'static, ()> = Box::pin(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: finishing the reconciles in flight");
    });
    signal.shared()
}
