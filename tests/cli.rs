//! The day-2 commands end to end: the real `samlcred` binary against the real API server and the Okta
//! simulator, including the error paths and the kubectl plugin name.

mod support;

use jiff::SignedDuration;
use kube::ResourceExt;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::{World, condition, wait_for};

const LONG: Duration = Duration::from_secs(90);

/// Runs `samlcred` (or the binary at `program`) with the test control plane's kubeconfig.
fn run_at(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .arg("--kubeconfig")
        .arg(testenv::shared().kubeconfig())
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn samlcred(args: &[&str]) -> Output {
    run_at(Path::new(env!("CARGO_BIN_EXE_samlcred")), args)
}

/// `samlcred` off the test's runtime thread, so the in-process simulator can answer it.
async fn samlcred_async(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || samlcred(&args.iter().map(String::as_str).collect::<Vec<_>>())).await.unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    assert!(out.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", out.status, stdout(&out), stderr(&out));
    stdout(&out)
}

/// Asserts a non-zero exit and returns stderr.
fn fails(out: Output) -> String {
    assert!(!out.status.success(), "expected a failure; stdout:\n{}\nstderr:\n{}", stdout(&out), stderr(&out));
    assert_ne!(out.status.code(), Some(0));
    stderr(&out)
}

async fn wait_ready(world: &World, name: &str) -> samlcred::api::SamlAppCredential {
    wait_for(&format!("{name} to be Ready"), LONG, || async {
        let sac = world.credential(name).await;
        (condition(&sac, "Ready")?.0 == "True").then_some(sac)
    })
    .await
}

#[tokio::test]
async fn status_lists_credentials_soonest_renewal_first() {
    let world = World::new("cli-status").await;
    let ns = world.ns.name.clone();
    let later = world.seed_app(SignedDuration::from_hours(24 * 365));
    let sooner = world.seed_app(SignedDuration::from_hours(24 * 100));
    world.create_credential("later", &later.id, json!({})).await;
    world.create_credential("sooner", &sooner.id, json!({})).await;
    let _controller = world.start_controller(&[]);
    wait_ready(&world, "later").await;
    wait_ready(&world, "sooner").await;

    let table = ok(samlcred(&["status", "-n", &ns]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in ["NAMESPACE", "NAME", "ORG", "APP", "KID", "EXPIRES", "RENEWAL", "PHASE", "READY"] {
        assert!(lines[0].contains(column), "no {column} column: {table}");
    }
    assert!(lines[1].contains("sooner") && lines[2].contains("later"), "soonest renewal first:\n{table}");
    assert!(lines[1].contains(&sooner.id) && lines[1].contains("acme"), "{table}");
    assert!(lines[1].contains(&sooner.kids[0][..12]), "short active kid: {table}");
    assert!(lines[1].contains("True (UpToDate)") && lines[1].contains("Idle"), "{table}");

    let rows: Value = serde_json::from_str(&ok(samlcred(&["status", "-n", &ns, "-o", "json"]))).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "sooner");
    assert_eq!(rows[0]["activeKid"], sooner.kids[0].as_str());
    assert_eq!(rows[0]["appId"], sooner.id.as_str());
    assert_eq!(rows[0]["ready"], "True");
    assert_eq!(rows[0]["reason"], "UpToDate");
    assert!(rows[0]["renewalTime"].as_str().unwrap() < rows[1]["renewalTime"].as_str().unwrap());

    let yaml = ok(samlcred(&["status", "-n", &ns, "-o", "yaml"]));
    assert!(yaml.contains("name: sooner") && yaml.contains(&format!("namespace: {ns}")), "{yaml}");

    let all = ok(samlcred(&["status", "-A"]));
    assert!(all.lines().any(|l| l.starts_with(&ns) && l.contains("sooner")), "-A lists every namespace:\n{all}");

    let empty = samlcred(&["status", "-n", "cli-no-such-namespace"]);
    assert!(empty.status.success());
    assert!(stderr(&empty).contains("No SamlAppCredentials found in namespace cli-no-such-namespace"));
}

#[tokio::test]
async fn rotate_and_activate_drive_a_manual_rotation() {
    let world = World::new("cli-rotate").await;
    let ns = world.ns.name.clone();
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    let spec = json!({"activation": {"policy": "Manual", "delay": "1s"}, "retainPrevious": "2s"});
    world.create_credential("sso", &app.id, spec).await;
    let _controller = world.start_controller(&[]);
    wait_ready(&world, "sso").await;

    // Error paths first: an unknown name, and no pending key yet.
    let err = fails(samlcred(&["rotate", "nosuch", "-n", &ns]));
    assert!(err.contains(&format!("SamlAppCredential nosuch not found in namespace {ns}")), "{err}");
    let err = fails(samlcred(&["activate", "nosuch", "-n", &ns]));
    assert!(err.contains("nosuch not found"), "{err}");
    let err = fails(samlcred(&["activate", "sso", "-n", &ns]));
    assert!(err.contains("has no pending key"), "{err}");
    assert!(world.credential("sso").await.metadata.annotations.unwrap_or_default().is_empty(), "nothing was set");

    let out = ok(samlcred(&["rotate", "sso", "-n", &ns]));
    assert!(out.contains("rotation requested"), "{out}");
    let token = world.credential("sso").await.metadata.annotations.unwrap()["samlcred.io/rotate"].clone();
    assert!(token.parse::<jiff::Timestamp>().is_ok(), "the token is an RFC 3339 time: {token}");

    let pending = wait_for("the new key to await approval", LONG, || async {
        let sac = world.credential("sso").await;
        (condition(&sac, "Rotating")?.1 == "AwaitingApproval").then(|| sac.status.unwrap().pending_key.unwrap().kid)
    })
    .await;
    assert_eq!(world.credential("sso").await.status.unwrap().last_rotate_token.as_deref(), Some(token.as_str()));

    let err = fails(samlcred(&["activate", "sso", "-n", &ns, "--kid", "not-the-kid"]));
    assert!(err.contains("kid not-the-kid is not the pending key") && err.contains(&pending), "{err}");
    assert!(!world.credential("sso").await.annotations().contains_key("samlcred.io/activate"));

    let out = ok(samlcred(&["activate", "sso", "-n", &ns, "--kid", &pending]));
    assert!(out.contains(&pending), "{out}");
    wait_for("Okta to sign with the approved key", LONG, || async {
        (world.sim.active_kid(&app.id).as_deref() == Some(pending.as_str())).then_some(())
    })
    .await;
    assert_eq!(world.generate_calls(&app.id), 1);
}

#[tokio::test]
async fn installed_as_kubectl_samlcred_it_is_the_kubectl_plugin() {
    let world = World::new("cli-plugin").await;
    let ns = world.ns.name.clone();
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("plugged", &app.id, json!({})).await;

    let dir = testenv::shared().dir().join(format!("plugin-{ns}"));
    std::fs::create_dir_all(&dir).unwrap();
    let plugin = dir.join("kubectl-samlcred");
    std::fs::copy(env!("CARGO_BIN_EXE_samlcred"), &plugin).unwrap();

    let table = ok(run_at(&plugin, &["status", "-n", &ns]));
    assert!(table.contains("plugged") && table.contains(&app.id), "{table}");
    let help = ok(Command::new(&plugin).arg("--help").output().unwrap());
    assert!(help.contains("Usage: kubectl samlcred"), "{help}");

    // kubectl's conventions: the namespace of the kubeconfig context when -n is absent, --context.
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(testenv::shared().kubeconfig(), &kubeconfig).unwrap();
    let out = testenv::shared()
        .kubectl()
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(["config", "set-context", "--current", &format!("--namespace={ns}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new(&plugin).arg("--kubeconfig").arg(&kubeconfig).arg("status").output().unwrap();
    assert!(ok(out).contains("plugged"), "the context's namespace is the default");
    let err = fails(
        Command::new(&plugin)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--context", "nope", "status"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("nope"), "an unknown context is named: {err}");

    // And through kubectl itself, which finds the plugin on PATH.
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = testenv::shared().kubectl().env("PATH", path).args(["samlcred", "status", "-n", &ns]).output().unwrap();
    assert!(ok(out).contains("plugged"));
}

/// Every credential's and Secret's resourceVersion in the namespace.
async fn versions(world: &World) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = Vec::new();
    for c in world.credentials().list(&Default::default()).await.unwrap() {
        all.push((format!("sac/{}", c.name_any()), c.resource_version().unwrap()));
    }
    for s in world.secrets().list(&Default::default()).await.unwrap() {
        all.push((format!("secret/{}", s.name_any()), s.resource_version().unwrap()));
    }
    all.sort();
    all
}

#[tokio::test]
async fn plan_tells_the_next_step_and_writes_nothing() {
    let world = World::new("cli-plan").await;
    let ns = world.ns.name.clone();
    let calm = world.seed_app(SignedDuration::from_hours(24 * 365));
    let manual = world.seed_app(SignedDuration::from_hours(24 * 10));
    let auto = world.seed_app(SignedDuration::from_hours(24 * 10));
    world.create_credential("calm", &calm.id, json!({})).await;
    world.create_credential("manual", &manual.id, json!({"activation": {"policy": "Manual", "delay": "1s"}})).await;
    world.create_credential("auto", &auto.id, json!({"activation": {"policy": "Automatic", "delay": "2h"}})).await;
    let mut controller = world.start_controller(&[]);
    wait_ready(&world, "calm").await;
    let pending = wait_for("manual to await approval", LONG, || async {
        let sac = world.credential("manual").await;
        (condition(&sac, "Rotating")?.1 == "AwaitingApproval").then(|| sac.status.unwrap().pending_key.unwrap().kid)
    })
    .await;
    let activate_after = wait_for("auto to publish its new key", LONG, || async {
        let status = world.credential("auto").await.status?;
        let published = status.rotation.as_ref()?.phase == samlcred::api::RotationPhase::Published;
        let ready = status.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        (published && ready).then(|| status.pending_key.unwrap().activate_after.unwrap().0)
    })
    .await;
    controller.kill();
    // Created once the operator is gone: nothing observed yet.
    let fresh = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("fresh", &fresh.id, json!({})).await;
    world.create_credential("orphan", &calm.id, json!({"orgRef": {"name": "ghost"}})).await;

    let before = versions(&world).await;
    let calls_before = world.sim.calls().len();
    let writes_before = world.okta_writes();
    let out = samlcred_async(&["plan", "-n", &ns, "--allow-insecure-okta-http", "-o", "json"]).await;
    let err = fails(out.clone());
    assert!(err.contains(&format!("could not observe {ns}/orphan; see DETAIL")), "{err}\n{}", stdout(&out));
    let steps: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let step = |name: &str| steps.as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();

    let s = step("calm");
    let renewal = world.credential("calm").await.status.unwrap().renewal_time.unwrap().0;
    assert_eq!(s["action"], "generate", "{s}");
    assert!(s["when"].as_str().unwrap().starts_with(&renewal.to_string()), "due at the renewal time: {s}");
    let s = step("manual");
    assert_eq!((s["action"].as_str(), s["when"].as_str()), (Some("activate"), Some("on approval")), "{s}");
    assert!(s["detail"].as_str().unwrap().contains(&pending), "{s}");
    let s = step("auto");
    assert_eq!(s["action"], "activate", "{s}");
    assert!(s["when"].as_str().unwrap().starts_with(&activate_after.to_string()), "at activateAfter: {s}");
    let s = step("fresh");
    assert_eq!((s["action"].as_str(), s["when"].as_str()), (Some("adopt"), Some("now")), "{s}");
    assert!(s["detail"].as_str().unwrap().contains(&fresh.kids[0]), "{s}");
    let s = step("orphan");
    assert_eq!(s["action"], "nothing");
    assert!(s["detail"].as_str().unwrap().contains("OrgNotFound") && s["detail"].as_str().unwrap().contains("ghost"));

    // It read Okta, and wrote nothing: not to Okta, not to the cluster.
    let calls = world.sim.calls();
    assert!(calls.len() > calls_before, "plan reads Okta");
    assert!(calls[calls_before..].iter().all(|c| c.method == "GET"), "only GETs: {:?}", &calls[calls_before..]);
    assert_eq!(world.okta_writes(), writes_before);
    assert_eq!(versions(&world).await, before, "no resourceVersion changed");

    // The table, for people.
    let table = stdout(&samlcred_async(&["plan", "-n", &ns, "--allow-insecure-okta-http"]).await);
    let line = |name: &str| table.lines().find(|l| l.contains(&format!(" {name} "))).unwrap_or_default().to_string();
    assert!(line("fresh").contains("adopt") && line("fresh").contains("now"), "{table}");
    assert!(line("manual").contains("on approval"), "{table}");
    assert!(table.lines().next().unwrap().contains("NEXT"), "{table}");
    assert_eq!(versions(&world).await, before);
}

#[tokio::test]
async fn check_reports_authentication_scopes_rate_limits_and_keys() {
    let world = World::new("cli-check").await;
    let ns = world.ns.name.clone();
    let app = world.seed_app(SignedDuration::from_hours(24 * 365));
    world.create_credential("sso", &app.id, json!({})).await;

    let out = ok(samlcred_async(&["check", "acme", "-n", &ns, "--allow-insecure-okta-http"]).await);
    assert!(out.contains("authentication: ok"), "{out}");
    assert!(out.contains("SSWS API token") && out.contains("privileges of the admin"), "{out}");
    assert!(out.contains(&format!("key credential(s) of app {}", app.id)), "{out}");
    assert!(out.contains("/api/v1/apps: limit") && out.contains("remaining"), "{out}");
    assert!(!out.contains(support::TOKEN), "the token is never printed");
    assert_eq!(world.okta_writes(), 0, "check writes nothing to Okta");

    // Bad credentials: non-zero, naming the org and Okta's answer.
    world
        .apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad-token"},
            "stringData": {"token": "not-a-valid-token"}}))
        .await;
    world
        .apply(json!({"apiVersion": "samlcred.io/v1alpha1", "kind": "OktaOrg", "metadata": {"name": "bad"},
            "spec": {"url": world.sim.base_url(), "auth": {"apiToken": {"secretRef": {"name": "bad-token", "key": "token"}}}}}))
        .await;
    let out = samlcred_async(&["check", "oktaorg/bad", "-n", &ns, "--allow-insecure-okta-http"]).await;
    let err = fails(out.clone());
    assert!(err.contains(&format!("OktaOrg {ns}/bad")) && err.contains("did not accept the credentials"), "{err}");
    assert!(!stdout(&out).contains("not-a-valid-token") && !err.contains("not-a-valid-token"));

    // An unknown org, and plain http without the flag.
    let err = fails(samlcred_async(&["check", "nosuch", "-n", &ns]).await);
    assert!(err.contains(&format!("OktaOrg {ns}/nosuch not found")), "{err}");
    let err = fails(samlcred_async(&["check", "clusteroktaorg/nosuch"]).await);
    assert!(err.contains("ClusterOktaOrg nosuch not found"), "{err}");
    let err = fails(samlcred_async(&["check", "acme", "-n", &ns]).await);
    assert!(err.contains("plain http"), "{err}");
}

#[tokio::test]
async fn check_reads_a_cluster_okta_orgs_secret_in_the_cluster_resource_namespace() {
    let world = World::new("cli-check-cluster").await;
    let ns = world.ns.name.clone();
    world.seed_app(SignedDuration::from_hours(24 * 365));
    let name = format!("{ns}-org");
    let corgs: kube::Api<samlcred::api::ClusterOktaOrg> = kube::Api::all(world.client.clone());
    let corg: samlcred::api::ClusterOktaOrg = serde_json::from_value(json!({
        "apiVersion": "samlcred.io/v1alpha1", "kind": "ClusterOktaOrg", "metadata": {"name": name},
        "spec": {"url": world.sim.base_url(), "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}}}
    }))
    .unwrap();
    corgs.create(&Default::default(), &corg).await.unwrap();

    let target = format!("clusteroktaorg/{name}");
    let args = ["check", &target, "--cluster-resource-namespace", &ns, "--allow-insecure-okta-http"];
    let out = ok(samlcred_async(&args).await);
    assert!(out.contains(&format!("ClusterOktaOrg {name}")) && out.contains("authentication: ok"), "{out}");
    assert!(out.contains("key credential(s) of app"), "a sample app from Okta's list: {out}");
    // Its Secret is looked for in the cluster resource namespace, not anywhere else.
    let err = fails(samlcred_async(&["check", &target, "--allow-insecure-okta-http"]).await);
    assert!(err.contains("Secret okta-token not found"), "{err}");
    corgs.delete(&name, &Default::default()).await.unwrap();
}

#[tokio::test]
async fn check_reports_the_scopes_okta_granted_an_oauth_client() {
    let world = World::new("cli-check-oauth").await;
    let ns = world.ns.name.clone();
    world.seed_app(SignedDuration::from_hours(24 * 365));
    let (pem, jwk) = support::ec_key();
    world.sim.add_oauth_client(okta_sim::OAuthClient {
        client_id: "0oa-check".into(),
        public_jwk: jwk,
        scopes: vec!["okta.apps.read".into(), "okta.apps.manage".into()],
        require_dpop: true,
    });
    world
        .apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "svc-key"}, "stringData": {"key.pem": pem}}))
        .await;
    let org = |name: &str, scopes: serde_json::Value| {
        json!({"apiVersion": "samlcred.io/v1alpha1", "kind": "OktaOrg", "metadata": {"name": name},
            "spec": {"url": world.sim.base_url(), "auth": {"oauth": {"clientId": "0oa-check", "scopes": scopes,
                "privateKeySecretRef": {"name": "svc-key", "key": "key.pem"}}}}})
    };
    world.apply(org("oauth", json!(["okta.apps.read", "okta.apps.manage"]))).await;
    let out = ok(samlcred_async(&["check", "oauth", "-n", &ns, "--allow-insecure-okta-http"]).await);
    assert!(out.contains("scopes: okta.apps.read okta.apps.manage (granted by Okta; DPoP in use)"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "the key is never printed");

    // A client that asks for read only: authenticated, but samlcred could not rotate, so check fails.
    world.apply(org("readonly", json!(["okta.apps.read"]))).await;
    let out = samlcred_async(&["check", "readonly", "-n", &ns, "--allow-insecure-okta-http"]).await;
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("scope okta.apps.manage is not granted"), "{text}");
}
