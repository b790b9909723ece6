//! The reconcile shell driven directly: `credential::reconcile` with a Context built here, the real
//! API server and okta-sim in-process, and no controller process. What the planner's tables
//! cannot show and the end-to-end tests only show from afar: what one reconcile reads (Okta calls,
//! from okta-sim's log), what it writes (resourceVersions), and what the ledger spares the next one.

mod support;

use futures::StreamExt;
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Resource;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use okta_sim::{Fault, FaultKind};
use samlcred::api::{ClusterOktaOrg, OktaOrg, SamlAppCredential};
use samlcred::controller::cache::{self, Caches};
use samlcred::controller::fairness::OrgShares;
use samlcred::controller::orgs::{OrgClients, OrgSettings};
use samlcred::controller::{Context, Settings, credential};
use samlcred::metrics::Metrics;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::{World, wait_for};

const LONG: Duration = Duration::from_secs(30);

/// Reflects `api` into a store, in the background, for as long as the test runs.
fn reflect<K>(api: Api<K>, modify: fn(&mut K)) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default()).default_backoff().modify(modify).reflect(writer);
    tokio::spawn(stream.for_each(|_| async {}));
    reader
}

/// The caches of one namespace, as the controller builds them (without the triggers).
fn caches(world: &World) -> Caches {
    let ns = &world.ns.name;
    let client = &world.client;
    let phases = Arc::new(cache::Phases::default());
    let index = Arc::new(cache::Index::sharing(phases.clone()));
    let (reader, writer) = reflector::store();
    let fed = index.clone();
    let credentials = watcher(Api::<SamlAppCredential>::namespaced(client.clone(), ns), watcher::Config::default())
        .default_backoff()
        .map(move |event| {
            if let Ok(event) = &event {
                fed.observe(event);
            }
            event
        })
        .reflect(writer);
    tokio::spawn(credentials.for_each(|_| async {}));
    let secrets = cache::SecretStore::new(Some(ns.clone()));
    let referred = index.clone();
    let keep = move |s: &PartialObjectMeta<Secret>| {
        !referred
            .by_secret(
                s.metadata.namespace.as_deref().unwrap_or_default(),
                s.metadata.name.as_deref().unwrap_or_default(),
            )
            .is_empty()
    };
    let api = Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), ns);
    tokio::spawn(cache::watch_into(api, secrets.clone(), keep).for_each(|_| async {}));
    Caches {
        credentials: vec![reader],
        secrets: vec![secrets],
        okta_orgs: vec![reflect(Api::<OktaOrg>::namespaced(client.clone(), ns), |_| {})],
        cluster_orgs: reflect(Api::<ClusterOktaOrg>::all(client.clone()), |_| {}),
        namespaces: Some(reflect(Api::<PartialObjectMeta<Namespace>>::all(client.clone()), cache::reduce_namespace)),
        indexes: vec![index],
        phases,
    }
}

/// A Context as `samlcred controller` makes it; a new one is what a restart starts from.
fn context(world: &World, settings: Settings) -> Arc<Context> {
    samlcred::okta::install_crypto_provider();
    let caches = caches(world);
    let settings_of_orgs = OrgSettings {
        cluster_resource_namespace: "samlcred-system".into(),
        allow_insecure_http: true,
        metrics: None,
        fence: None,
    };
    let mut orgs = OrgClients::new(world.client.clone(), settings_of_orgs);
    orgs.use_caches(caches.clone());
    Arc::new(Context {
        kube: world.client.clone(),
        orgs,
        recorder: Recorder::new(world.client.clone(), Reporter { controller: "samlcred-shell".into(), instance: None }),
        metrics: Arc::new(Metrics::default()),
        settings,
        caches,
        ledger: Default::default(),
        org_shares: OrgShares::new(4),
        restarts: samlcred::controller::pacer::RestartPacer::new(0),
    })
}

/// The credential as the context's cache shows it, once the cache has it at `at_least` (a
/// resourceVersion the test saw), or at all.
async fn cached(ctx: &Context, world: &World, name: &str, at_least: Option<&str>) -> Arc<SamlAppCredential> {
    let object = ObjectRef::new(name).within(&world.ns.name);
    wait_for("the cache to show the credential", LONG, || async {
        let found = ctx.caches.credential(&object)?;
        at_least.is_none_or(|rv| found.meta().resource_version.as_deref() == Some(rv)).then_some(found)
    })
    .await
}

/// Runs one reconcile and returns it with the Okta calls and Kubernetes writes it made.
async fn reconcile_once(ctx: &Arc<Context>, world: &World, object: Arc<SamlAppCredential>) -> (Action, usize, bool) {
    let name = object.metadata.name.clone().unwrap();
    let calls = world.sim.calls().len();
    let before = world.credential(&name).await.metadata.resource_version;
    let secret_before =
        world.secrets().get_opt(&object.spec.secret_name).await.unwrap().and_then(|s| s.metadata.resource_version);
    let action = credential::reconcile(object.clone(), ctx.clone()).await.expect("reconcile");
    let after = world.credential(&name).await.metadata.resource_version;
    let secret_after =
        world.secrets().get_opt(&object.spec.secret_name).await.unwrap().and_then(|s| s.metadata.resource_version);
    (action, world.sim.calls().len() - calls, before != after || secret_before != secret_after)
}

fn ready(object: &SamlAppCredential) -> bool {
    support::condition(object, "Ready").is_some_and(|c| c.0 == "True")
}

/// How long the action asks to wait (kube's Action keeps it private; its Debug shows it).
fn requeue_after(action: &Action) -> Duration {
    let text = format!("{action:?}");
    let secs = text.split("Some(").nth(1).and_then(|rest| rest.split(')').next()).unwrap_or_default().to_string();
    let (number, unit) = secs.split_at(secs.find(|c: char| c.is_alphabetic()).unwrap_or(secs.len()));
    let value: f64 = number.parse().unwrap_or_else(|_| panic!("cannot read {text}"));
    match unit {
        "s" => Duration::from_secs_f64(value),
        "ms" => Duration::from_secs_f64(value / 1e3),
        "µs" | "us" => Duration::from_secs_f64(value / 1e6),
        "ns" => Duration::from_secs_f64(value / 1e9),
        other => panic!("unit {other} in {text}"),
    }
}

#[tokio::test]
async fn an_adoption_reads_three_things_and_writes_two_and_the_next_reconcile_nothing() {
    let world = World::new("shell-adopt").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("adopt", &app.id, json!({})).await;
    let ctx = context(&world, Settings::default());

    let first = cached(&ctx, &world, "adopt", None).await;
    let calls = world.sim.calls().len();
    credential::reconcile(first.clone(), ctx.clone()).await.unwrap();
    let made: Vec<String> = world.sim.calls()[calls..].iter().map(|c| format!("{} {}", c.method, c.path)).collect();
    assert_eq!(made.len(), 3, "GET app, GET keys, GET metadata: {made:?}");
    let written = world.credential("adopt").await;
    assert!(ready(&written), "Ready after the one step: {:?}", written.status);
    let secret = world.secrets().get("adopt-idp").await.unwrap();
    assert_eq!(support::secret_kids(&secret), vec![app.kids[0].clone()]);

    // The reconcile that samlcred's own status write triggers, on a cache that may still show the
    // object before the write (here: certainly, the object from before): nothing to do.
    let (_, calls, wrote) = reconcile_once(&ctx, &world, first.clone()).await;
    assert_eq!((calls, wrote), (0, false), "a stale cache made the reconcile act again");
    let fresh = cached(&ctx, &world, "adopt", written.metadata.resource_version.as_deref()).await;
    let (_, calls, wrote) = reconcile_once(&ctx, &world, fresh).await;
    assert_eq!((calls, wrote), (0, false), "the settled credential was read or written again");
}

#[tokio::test]
async fn a_resync_reads_the_app_once_and_a_restart_reads_nothing() {
    let world = World::new("shell-resync").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("steady", &app.id, json!({})).await;
    let resync = Duration::from_secs(2);
    let ctx = context(&world, Settings { okta_resync: resync, ..Settings::default() });
    let first = cached(&ctx, &world, "steady", None).await;
    credential::reconcile(first, ctx.clone()).await.unwrap();
    let settled = world.credential("steady").await;
    let object = cached(&ctx, &world, "steady", settled.metadata.resource_version.as_deref()).await;

    tokio::time::sleep(resync + Duration::from_millis(200)).await; // the interval is what is tested
    let calls = world.sim.calls().len();
    let (_, made, wrote) = reconcile_once(&ctx, &world, object.clone()).await;
    let what: Vec<String> = world.sim.calls()[calls..].iter().map(|c| format!("{} {}", c.method, c.path)).collect();
    assert_eq!(made, 1, "a resync of an unchanged app: {what:?}");
    assert!(what[0].starts_with("GET /api/v1/apps/"), "{what:?}");
    assert!(!wrote, "a resync of an unchanged app wrote");

    // A restart: a new process knows only the cluster. A settled credential waits, spread.
    let restarted = context(&world, Settings { okta_resync: Duration::from_secs(3600), ..Settings::default() });
    let object = cached(&restarted, &world, "steady", settled.metadata.resource_version.as_deref()).await;
    wait_for("the restarted caches to sync", LONG, || async {
        restarted.caches_ready(Duration::from_millis(100)).await.then_some(())
    })
    .await;
    let (action, made, wrote) = reconcile_once(&restarted, &world, object).await;
    assert_eq!((made, wrote), (0, false), "the restart of a settled credential called Okta or wrote");
    let wait = requeue_after(&action);
    assert!(wait <= Duration::from_secs(3600), "the first resync after a restart is within the interval: {wait:?}");

    // The first resync after a restart checks for drift as every resync does: the app, once.
    let restarted = context(&world, Settings { okta_resync: resync, ..Settings::default() });
    let object = cached(&restarted, &world, "steady", settled.metadata.resource_version.as_deref()).await;
    wait_for("the restarted caches to sync", LONG, || async {
        restarted.caches_ready(Duration::from_millis(100)).await.then_some(())
    })
    .await;
    let (_, made, _) = reconcile_once(&restarted, &world, object.clone()).await;
    assert_eq!(made, 0, "the restart of a settled credential called Okta");
    tokio::time::sleep(resync + Duration::from_millis(200)).await; // the interval is what is tested
    let calls = world.sim.calls().len();
    let (_, made, wrote) = reconcile_once(&restarted, &world, object).await;
    let what: Vec<String> = world.sim.calls()[calls..].iter().map(|c| format!("{} {}", c.method, c.path)).collect();
    assert_eq!((made, wrote), (1, false), "the first resync after a restart: {what:?}");
}

#[tokio::test]
async fn a_secret_edited_by_hand_is_found_and_rewritten() {
    let world = World::new("shell-edit").await;
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("edited", &app.id, json!({})).await;
    let ctx = context(&world, Settings::default());
    credential::reconcile(cached(&ctx, &world, "edited", None).await, ctx.clone()).await.unwrap();
    let settled = world.credential("edited").await;

    let patch = json!({"stringData": {"bundle.pem": "not a certificate"}});
    let secrets: Api<Secret> = world.secrets();
    let edited = secrets
        .patch("edited-idp", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    let edited_rv = edited.metadata.resource_version.clone();
    wait_for("the cache to see the edit", LONG, || async {
        let seen = ctx.caches.secret(&world.ns.name, "edited-idp")?;
        (seen.metadata.resource_version == edited_rv).then_some(())
    })
    .await;
    let object = cached(&ctx, &world, "edited", settled.metadata.resource_version.as_deref()).await;
    credential::reconcile(object, ctx.clone()).await.unwrap();
    let secret = world.secrets().get("edited-idp").await.unwrap();
    assert_ne!(support::secret_text(&secret, "bundle.pem").as_deref(), Some("not a certificate"), "the edit stayed");
    assert_eq!(support::secret_kids(&secret), vec![app.kids[0].clone()]);
}

#[tokio::test]
async fn a_terminal_okta_error_waits_for_the_resync_and_a_retryable_one_backs_off() {
    let world = World::new("shell-errors").await;
    let denied = world.seed_app(SignedDuration::from_hours(24 * 365));
    let flaky = world.seed_app(SignedDuration::from_hours(24 * 365));
    let status = |status, code: &str| FaultKind::Status { status, error_code: code.into(), summary: "no".into() };
    for (app, kind) in [(&denied, status(403, "E0000006")), (&flaky, status(503, "E0000009"))] {
        let path_prefix = format!("/api/v1/apps/{}", app.id);
        world.sim.inject_fault(Fault { method: Some(http::Method::GET), path_prefix, count: 1000, kind });
    }
    world.create_credential("denied", &denied.id, json!({})).await;
    world.create_credential("flaky", &flaky.id, json!({})).await;
    let resync = Duration::from_secs(1800);
    let ctx = context(&world, Settings { okta_resync: resync, ..Settings::default() });

    let action = credential::reconcile(cached(&ctx, &world, "denied", None).await, ctx.clone()).await.unwrap();
    let wait = requeue_after(&action);
    assert!(wait >= resync.mul_f64(0.85), "a 403 is retried after {wait:?}, not at the resync");
    let action = credential::reconcile(cached(&ctx, &world, "flaky", None).await, ctx.clone()).await.unwrap();
    let wait = requeue_after(&action);
    assert!(wait <= Duration::from_secs(10), "a 503 waits {wait:?}, not a backoff");
}
