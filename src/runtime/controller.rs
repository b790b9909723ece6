//! `samlcred controller`: runs the reconcilers until SIGTERM or Ctrl-C, finishing the step in flight.

use super::leader::{self, LeaseSettings};
use super::server::{self, Readiness};
use super::telemetry::{self, LogFormat};
use crate::api::{ClusterOktaOrg, OktaOrg, SamlAppCredential, labels};
use crate::controller::cache::{self, Caches, Index, NoSharedBackoff, Phases, SecretStore, relisting_watcher};
use crate::controller::guard::{self, ReconcileError};
use crate::controller::ledger::Ledger;
use crate::controller::orgs::{OrgClients, OrgKey, OrgSettings};
use crate::controller::{Context, Settings, credential, org_status};
use crate::metrics::Metrics;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
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
    /// At most this many rolloutRestartTargets restarts per minute, across all credentials; the
    /// others wait for their turn in one queue (their credential's condition RestartsPending
    /// says so). 0: no limit.
    #[arg(long, env = "SAMLCRED_MAX_RESTARTS_PER_MINUTE", default_value_t = 0)]
    pub max_restarts_per_minute: u32,
    /// Allow plain-http Okta URLs on loopback hosts (the simulator, in tests and the demo).
    #[arg(long, env = "SAMLCRED_ALLOW_INSECURE_OKTA_HTTP")]
    pub allow_insecure_okta_http: bool,
    #[command(flatten)]
    pub webhook: crate::webhook::WebhookArgs,
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
    tracing::warn!("reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// The objects touched in a watch of `api` that only triggers reconciles (no store), relisting
/// when it cannot resume (see [`relisting_watcher`]).
fn watch<K>(api: Api<K>) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    relisting_watcher(api, watcher::Config::default()).default_backoff().touched_objects()
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
    // Every replica serves admission, the leader and the standbys alike.
    crate::webhook::start(client.clone(), &args.webhook).await?;

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
    let ledger = Arc::new(Ledger::default());
    let mut background: Vec<ReconcileFuture> = Vec::new();

    // One reflected watch per kind and scope, each feeding a store (and, for credentials, the index).
    let phases = Arc::new(Phases::default());
    let mut credential_streams = Vec::new();
    let (mut credential_stores, mut indexes) = (Vec::new(), Vec::new());
    for ns in &scopes {
        let (reader, writer) = reflector::store();
        let index = Arc::new(Index::sharing(phases.clone()));
        let (fed, forget, series) = (index.clone(), ledger.clone(), metrics.clone());
        // When a credential goes, another on the same app may now be the oldest and take over.
        let (takeover, takeovers) = futures::channel::mpsc::unbounded();
        // Listed in pages (the watcher's 500), not at resourceVersion 0: that answer holds every
        // credential at once, one body of tens of megabytes at 10,000 and all of them parsed before
        // the first is stored.
        let stream = relisting_watcher(api_for(ns), watcher::Config::default())
            .default_backoff()
            .modify(cache::reduce_credential)
            .map_ok(move |event| {
                fed.observe(&event);
                if let watcher::Event::Delete(gone) = &event {
                    forget.forget(&gone.uid().unwrap_or_default());
                    series.forget_credential(&gone.namespace().unwrap_or_default(), &gone.name_any());
                    for peer in fed.by_app(&gone.spec.app_id) {
                        let _ = takeover.unbounded_send(peer);
                    }
                }
                event
            })
            .reflect(writer)
            .touched_objects();
        credential_streams.push((stream.boxed(), takeovers));
        credential_stores.push(reader);
        indexes.push(index);
    }
    // In scoped mode the cluster resource namespace (where ClusterOktaOrgs' Secrets live) may only
    // be read by name, so those Secrets are read when used instead of watched.
    let secret_stores: Vec<SecretStore> = scopes.iter().map(|ns| SecretStore::new(ns.clone())).collect();
    let mut org_streams = Vec::new();
    let mut org_stores = Vec::new();
    for ns in &scopes {
        let (reader, writer) = reflector::store();
        let orgs: Api<OktaOrg> = scoped(&client, ns);
        let stream = relisting_watcher(orgs, watcher::Config::default()).default_backoff().reflect(writer);
        org_streams.push(stream.touched_objects().boxed());
        org_stores.push(reader);
    }
    let (cluster_org_store, writer) = reflector::store();
    let cluster_orgs: Api<ClusterOktaOrg> = Api::all(client.clone());
    background.push(Box::pin(drain(
        relisting_watcher(cluster_orgs, watcher::Config::default()).default_backoff().reflect(writer),
    )));
    let (namespace_store, writer) = reflector::store();
    if scopes == [None] {
        // Only in cluster-wide mode: a scoped install may read just its own namespaces (by name).
        let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
        let stream =
            relisting_watcher(namespaces, watcher::Config::default()).default_backoff().modify(cache::reduce_namespace);
        background.push(Box::pin(drain(stream.reflect(writer))));
    }
    let caches = Caches {
        credentials: credential_stores.clone(),
        secrets: secret_stores.clone(),
        okta_orgs: org_stores.clone(),
        cluster_orgs: cluster_org_store.clone(),
        namespaces: (scopes == [None]).then_some(namespace_store),
        indexes: indexes.clone(),
        phases: phases.clone(),
    };

    let mut secret_streams = Vec::new();
    for (i, ns) in scopes.iter().enumerate() {
        let secrets: Api<PartialObjectMeta<Secret>> = scoped(&client, ns);
        let (store, index) = (secret_stores[i].clone(), indexes[i].clone());
        let auth_users =
            AuthUsers { caches: caches.clone(), cluster_resource_namespace: args.cluster_resource_namespace.clone() };
        // Kept: samlcred's own Secrets (by label) and those a credential or an org refers to now.
        let referred = move |secret: &PartialObjectMeta<Secret>| {
            let ns = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            !index.by_secret(&ns, &name).is_empty() || auth_users.refers_to(&ns, &name)
        };
        secret_streams.push(cache::watch_into(secrets, store, referred).touched_objects().boxed());
    }

    let reporter = Reporter { controller: "samlcred".into(), instance: std::env::var("POD_NAME").ok() };
    let okta_metrics: Arc<dyn crate::okta::MetricsHook> = metrics.clone();
    let mut orgs = OrgClients::new(
        client.clone(),
        OrgSettings {
            cluster_resource_namespace: args.cluster_resource_namespace.clone(),
            allow_insecure_http: args.allow_insecure_okta_http,
            metrics: Some(okta_metrics),
            fence: leadership.as_ref().map(|l| Arc::new(l.fence()) as Arc<dyn crate::okta::WriteFence>),
        },
    );
    orgs.use_caches(caches.clone());
    let ctx = Arc::new(Context {
        kube: client.clone(),
        orgs,
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        settings: Settings { okta_resync: args.okta_resync_interval, ..Settings::default() },
        caches: caches.clone(),
        ledger: ledger.clone(),
        org_shares: crate::controller::fairness::OrgShares::new(usize::from(args.concurrency)),
        restarts: crate::controller::pacer::RestartPacer::new(args.max_restarts_per_minute),
    });

    let config = controller::Config::default().concurrency(args.concurrency);
    let mut tasks: Vec<ReconcileFuture> = Vec::new();
    let streams = credential_streams.into_iter().zip(secret_streams).zip(org_streams);
    for (i, (((credentials, takeovers), secrets), orgs)) in streams.enumerate() {
        let (index, secret_index) = (indexes[i].clone(), indexes[i].clone());
        let auth_users =
            AuthUsers { caches: caches.clone(), cluster_resource_namespace: args.cluster_resource_namespace.clone() };
        let cluster_index = index.clone();
        let stream = Controller::for_stream(credentials, credential_stores[i].clone())
            .with_config(config.clone())
            .trigger_backoff(NoSharedBackoff)
            // A Secret edited, deleted or marked adoptable is seen by the credential it is for; a
            // changed org Secret (a new token) by every credential of the org. Only reduced
            // metadata is kept: the data of every other Secret must not stream through the operator.
            .watches_stream(secrets, move |secret: PartialObjectMeta<Secret>| {
                let ns = secret.namespace().unwrap_or_default();
                let name = secret.name_any();
                let mut refs = secret_index.by_secret(&ns, &name);
                if let Some(owner) = secret.labels().get(labels::CREDENTIAL) {
                    refs.push(ObjectRef::new(owner).within(&ns));
                }
                refs.extend(auth_users.of_secret(&ns, &name, &secret_index));
                refs
            })
            .reconcile_on(takeovers)
            // A changed org may unblock or change every credential that uses it.
            .watches_stream(orgs, move |org: OktaOrg| index.by_org(&cache::org_of_okta_org(&org)))
            .watches_stream(watch(Api::<ClusterOktaOrg>::all(client.clone())), move |org| {
                cluster_index.by_org(&cache::org_of_cluster_org(&org))
            })
            .graceful_shutdown_on(shutdown.clone())
            .run(|credential, ctx| guard::guarded(credential, ctx, credential::reconcile), error_policy, ctx.clone());
        tasks.push(Box::pin(drain(stream)));
    }
    for ns in &scopes {
        let orgs: Api<OktaOrg> = scoped(&client, ns);
        let (reader, writer) = reflector::store();
        let watched = relisting_watcher(orgs, watcher::Config::default()).default_backoff().reflect(writer);
        let stream = Controller::for_stream(watched.touched_objects(), reader)
            .trigger_backoff(NoSharedBackoff)
            .graceful_shutdown_on(shutdown.clone())
            .run(|org, ctx| guard::guarded(org, ctx, org_status::reconcile_okta_org), error_policy, ctx.clone());
        tasks.push(Box::pin(drain(stream)));
    }
    let cluster_orgs: Api<ClusterOktaOrg> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let watched = relisting_watcher(cluster_orgs, watcher::Config::default()).default_backoff().reflect(writer);
    let stream = Controller::for_stream(watched.touched_objects(), reader)
        .trigger_backoff(NoSharedBackoff)
        .graceful_shutdown_on(shutdown.clone())
        .run(|org, ctx| guard::guarded(org, ctx, org_status::reconcile_cluster_okta_org), error_policy, ctx.clone());
    tasks.push(Box::pin(drain(stream)));

    let ready_flag = readiness.clone();
    tokio::spawn(async move {
        while !caches.wait_ready(Duration::from_secs(1)).await {}
        ready_flag.set_ready();
        tracing::info!("caches synced; ready");
    });

    // The reflectors that trigger nothing run until the controllers have stopped.
    tokio::select! {
        _ = futures::future::join_all(tasks) => {}
        _ = futures::future::join_all(background) => {}
    }
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    tracing::info!("samlcred controller stopped");
    Ok(())
}

/// Which credentials an org's auth Secret concerns: those of the OktaOrgs in its namespace and,
/// in the cluster resource namespace, of the ClusterOktaOrgs that name it.
struct AuthUsers {
    caches: Caches,
    cluster_resource_namespace: String,
}

impl AuthUsers {
    /// The OktaOrgs in its namespace and, in the cluster resource namespace, the ClusterOktaOrgs
    /// that name this Secret.
    fn orgs_naming(&self, namespace: &str, name: &str) -> Vec<OrgKey> {
        let names_it = |auth: &crate::api::OktaAuth| names_secret(auth, name);
        let mut orgs: Vec<OrgKey> = self
            .caches
            .okta_orgs
            .iter()
            .flat_map(|store| store.state())
            .filter(|org| org.namespace().as_deref() == Some(namespace) && names_it(&org.spec.auth))
            .map(|org| cache::org_of_okta_org(&org))
            .collect();
        if namespace == self.cluster_resource_namespace {
            let cluster = self.caches.cluster_orgs.state().into_iter().filter(|org| names_it(&org.spec.org.auth));
            orgs.extend(cluster.map(|org| cache::org_of_cluster_org(&org)));
        }
        orgs
    }

    fn refers_to(&self, namespace: &str, name: &str) -> bool {
        !self.orgs_naming(namespace, name).is_empty()
    }

    fn of_secret(&self, namespace: &str, name: &str, index: &Index) -> Vec<ObjectRef<SamlAppCredential>> {
        self.orgs_naming(namespace, name).iter().flat_map(|org| index.by_org(org)).collect()
    }
}

/// Whether an org's auth reads the Secret `name` (of the org's Secret namespace).
fn names_secret(auth: &crate::api::OktaAuth, name: &str) -> bool {
    auth.api_token.as_ref().is_some_and(|t| t.secret_ref.name == name)
        || auth.oauth.as_ref().is_some_and(|o| o.private_key_secret_ref.name == name)
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
