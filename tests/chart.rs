//! The Helm chart (`charts/samlcred`) and the manifests rendered from it (`deploy/`), checked against
//! the real API server: lint, server-side dry runs of every rendering, installs in both RBAC modes,
//! what the operator's ServiceAccount may and may not do, and drift between the chart and `deploy/`.
//! Pods never start here (no scheduler, no kubelet), so nothing waits for readiness.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{conditions, wait::await_condition};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use testenv::TestNamespace;
use tokio::sync::OnceCell;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CRD_NAMES: [&str; 3] = ["samlappcredentials.samlcred.io", "oktaorgs.samlcred.io", "clusteroktaorgs.samlcred.io"];

fn chart() -> PathBuf {
    Path::new(ROOT).join("charts/samlcred")
}

/// A directory of this test binary's own, removed with the control plane's directory at exit.
fn scratch(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = testenv::shared().dir().join(format!("chart-{name}-{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// helm built from its pinned module, pointed at the shared control plane, with its config, cache
/// and data directories kept out of the user's home.
fn helm() -> Command {
    let plane = testenv::shared();
    let home = plane.dir().join("helm-home");
    let mut cmd = Command::new(plane.bin_dir().join("helm"));
    cmd.env("KUBECONFIG", plane.kubeconfig())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    cmd
}

/// Runs `cmd` (feeding it `stdin`), panics with its stderr unless it succeeds, returns the output.
fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn template(release: &str, namespace: &str, set: &[&str]) -> String {
    let mut cmd = helm();
    cmd.args(["template", release]).arg(chart()).args(["--namespace", namespace, "--include-crds"]);
    for s in set {
        cmd.args(["--set", s]);
    }
    stdout(&run(cmd, None))
}

/// Stand-ins for the Prometheus Operator's CRDs, which accept anything, so that a dry run can
/// validate everything else in a rendering with monitoring enabled.
async fn install_monitoring_crds(client: &kube::Client) {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
            for (kind, plural) in [("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")] {
                let name = format!("{plural}.monitoring.coreos.com");
                let crd: CustomResourceDefinition = serde_json::from_value(json!({
                    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": {"name": name},
                    "spec": {
                        "group": "monitoring.coreos.com",
                        "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                        "scope": "Namespaced",
                        "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                            "type": "object", "x-kubernetes-preserve-unknown-fields": true
                        }}}]
                    }
                }))
                .unwrap();
                crds.patch(&name, &PatchParams::apply("chart-test").force(), &Patch::Apply(crd)).await.unwrap();
                tokio::time::timeout(
                    Duration::from_secs(30),
                    await_condition(crds.clone(), &name, conditions::is_crd_established()),
                )
                .await
                .unwrap_or_else(|_| panic!("{name} not Established within 30s"))
                .unwrap();
            }
        })
        .await;
}

/// A test namespace whose pods must meet the "restricted" Pod Security Standard: the API server
/// warns about any workload in it whose pod template would not.
async fn restricted_namespace(client: &kube::Client, prefix: &str) -> TestNamespace {
    let ns = TestNamespace::create(client, prefix).await.unwrap();
    let mut label = testenv::shared().kubectl();
    label.args(["label", "namespace", &ns.name, "pod-security.kubernetes.io/warn=restricted"]);
    run(label, None);
    ns
}

/// `kubectl apply --dry-run=server` of a rendering; returns the objects as the server would store them.
fn dry_run(rendering: &str) -> Vec<Value> {
    let mut apply = testenv::shared().kubectl();
    apply.args(["apply", "--dry-run=server", "-o", "json", "-f", "-"]);
    let out = run(apply, Some(rendering));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("PodSecurity"), "the pod template breaks the restricted standard:\n{stderr}");
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    match list["kind"].as_str() {
        Some("List") => list["items"].as_array().unwrap().clone(),
        _ => vec![list],
    }
}

/// "Kind namespace/name" (or "Kind name" when cluster-scoped) of each object.
fn ids(objects: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = objects
        .iter()
        .map(|o| {
            let meta = &o["metadata"];
            match meta["namespace"].as_str() {
                Some(ns) => format!("{} {ns}/{}", o["kind"].as_str().unwrap(), meta["name"].as_str().unwrap()),
                None => format!("{} {}", o["kind"].as_str().unwrap(), meta["name"].as_str().unwrap()),
            }
        })
        .collect();
    ids.sort();
    ids
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", ids(objects)))
}

/// One `kubectl auth can-i` question: the verb, `resource[/subresource]`, and where: a namespace,
/// "" for a cluster-scoped resource, or "*" for all namespaces.
type Question<'a> = (&'a str, &'a str, &'a str);

/// Asks every question as the ServiceAccount, in parallel, and fails listing every wrong answer.
fn assert_can_i(sa: &str, expected: bool, questions: &[Question]) {
    let plane = testenv::shared();
    let children: Vec<_> = questions
        .iter()
        .map(|(verb, resource, namespace)| {
            let mut cmd = plane.kubectl();
            cmd.args(["auth", "can-i", verb]);
            // "x/status" and "x/token" are subresources; "x/name" asks about one object by name.
            match resource.split_once('/') {
                Some((resource, sub)) if sub == "status" || sub == "token" => {
                    cmd.args([resource, &format!("--subresource={sub}")])
                }
                _ => cmd.arg(resource),
            };
            match *namespace {
                "" => {}
                "*" => {
                    cmd.arg("--all-namespaces");
                }
                ns => {
                    cmd.args(["-n", ns]);
                }
            }
            cmd.arg(format!("--as={sa}")).stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let wrong: Vec<String> = questions
        .iter()
        .zip(children)
        .filter_map(|((verb, resource, namespace), child)| {
            let out = child.wait_with_output().unwrap();
            let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(
                answer == "yes" || answer == "no",
                "can-i {verb} {resource}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            ((answer == "yes") != expected).then(|| format!("{verb} {resource} in {namespace:?}: {answer}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{sa} expected {}:\n{}", if expected { "yes" } else { "no" }, wrong.join("\n"));
}

/// What no mode may do: change CRDs, touch RBAC, delete Secrets or workloads.
fn forbidden_everywhere<'a>(namespaces: &[&'a str]) -> Vec<Question<'a>> {
    let mut questions = vec![
        ("delete", "customresourcedefinitions", ""),
        ("update", "customresourcedefinitions", ""),
        ("patch", "customresourcedefinitions", ""),
        ("create", "customresourcedefinitions", ""),
    ];
    for verb in ["create", "update", "patch", "delete", "escalate", "bind"] {
        questions.push((verb, "clusterroles", ""));
        questions.push((verb, "clusterrolebindings", ""));
        for ns in namespaces {
            questions.push((verb, "roles", ns));
            questions.push((verb, "rolebindings", ns));
        }
    }
    for ns in namespaces {
        questions.extend([
            ("delete", "secrets", *ns),
            ("deletecollection", "secrets", *ns),
            ("delete", "samlappcredentials.samlcred.io", *ns),
            ("create", "samlappcredentials.samlcred.io", *ns),
            ("update", "deployments.apps", *ns),
            ("delete", "deployments.apps", *ns),
            ("create", "pods", *ns),
            ("create", "serviceaccounts/token", *ns),
        ]);
    }
    questions
}

/// `helm install`; returns what it prints (the release notes).
fn helm_install(release: &str, namespace: &str, set: &[&str]) -> String {
    let mut cmd = helm();
    cmd.args(["install", release]).arg(chart()).args(["--namespace", namespace]);
    for s in set {
        cmd.args(["--set", s]);
    }
    stdout(&run(cmd, None))
}

fn kubectl_get_names(args: &[&str]) -> Vec<String> {
    let mut cmd = testenv::shared().kubectl();
    cmd.args(["get", "-o", "name"]).args(args);
    let mut names: Vec<String> = stdout(&run(cmd, None)).lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn lint_is_clean_in_every_mode() {
    for set in [
        &[][..],
        &["watchNamespaces={a,b}", "clusterResourceNamespace=c"],
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "metrics.grafanaDashboard.enabled=true",
        ],
    ] {
        let mut cmd = helm();
        cmd.args(["lint", "--strict"]).arg(chart());
        for s in set {
            cmd.args(["--set", s]);
        }
        let out = run(cmd, None);
        assert!(stdout(&out).contains("0 chart(s) failed"), "{}", stdout(&out));
    }
}

#[test]
fn bad_values_are_refused() {
    for (set, message) in [
        ("leaderElection.enabled=false", "replicaCount > 1 needs leaderElection.enabled=true"),
        ("podDisruptionBudget.minAvailable=1", "exactly one of minAvailable or maxUnavailable"),
        ("logFormat=yaml", "logFormat"),
        ("replicaCount=-1", "replicaCount"),
        ("watchNamespaces[0]=Not_A_Namespace", "watchNamespaces"),
        ("maxRestartsPerMinute=-1", "maxRestartsPerMinute"),
    ] {
        let mut cmd = helm();
        cmd.args(["template", "bad"]).arg(chart()).args(["--set", set]);
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "helm template accepted --set {set}");
        assert!(stderr.contains(message), "--set {set}: expected {message:?} in:\n{stderr}");
    }
}

#[test]
fn max_restarts_per_minute_becomes_the_flag_only_when_set() {
    let flag = "--max-restarts-per-minute";
    assert!(!template("samlcred", "samlcred-system", &[]).contains(flag), "0 (no limit) passes no flag");
    let paced = template("samlcred", "samlcred-system", &["maxRestartsPerMinute=30"]);
    assert!(paced.contains(&format!("{flag}=30")), "{paced}");
}

#[test]
fn chart_ships_exactly_the_generated_crds() {
    let generated = std::fs::read_to_string(Path::new(ROOT).join("crds/samlcred.io.yaml")).unwrap();
    let shipped = std::fs::read_to_string(chart().join("crds/samlcred.io.yaml")).unwrap_or_default();
    assert!(
        generated == shipped,
        "charts/samlcred/crds/samlcred.io.yaml differs from crds/samlcred.io.yaml; run `make deploy` (scripts/render-deploy.sh) and commit the result"
    );
    assert_eq!(
        chart().join("crds").read_dir().unwrap().count(),
        1,
        "charts/samlcred/crds/ must hold only samlcred.io.yaml"
    );
}

#[test]
fn deploy_is_rendered_from_the_chart() {
    let plane = testenv::shared();
    let fresh = scratch("deploy");
    let mut render = Command::new("bash");
    render.arg(Path::new(ROOT).join("scripts/render-deploy.sh")).arg(&fresh).env("HELM", plane.bin_dir().join("helm"));
    run(render, None);

    let read_dir = |dir: &Path| -> BTreeMap<String, String> {
        dir.read_dir()
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
            .collect()
    };
    let expected = read_dir(&fresh);
    let committed = read_dir(&Path::new(ROOT).join("deploy"));
    let mut drift: Vec<String> = Vec::new();
    for (name, content) in &expected {
        match committed.get(name) {
            None => drift.push(format!("deploy/{name} is missing")),
            Some(c) if c != content => drift.push(format!("deploy/{name} differs")),
            Some(_) => {}
        }
    }
    drift
        .extend(committed.keys().filter(|n| !expected.contains_key(*n)).map(|n| format!("deploy/{n} is not rendered")));
    assert!(
        drift.is_empty(),
        "deploy/ has drifted from charts/samlcred: run `make deploy` (scripts/render-deploy.sh) and commit the result\n{}",
        drift.join("\n")
    );

    // kustomize builds it, and it holds what the chart installs with default values.
    let mut build = plane.kubectl();
    build.args(["kustomize"]).arg(Path::new(ROOT).join("deploy"));
    let built = stdout(&run(build, None));
    for kind in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    ] {
        assert!(built.contains(&format!("\nkind: {kind}\n")), "kubectl kustomize deploy/ has no {kind}");
    }
}

/// `kubectl apply -k deploy/` for real (server-side, so it cannot race the tests' helm installs over
/// the CRDs); the namespace enforces the restricted Pod Security Standard and warns about breaches.
#[test]
fn deploy_applies_and_its_service_account_is_limited() {
    let mut apply = testenv::shared().kubectl();
    apply.args(["apply", "--server-side", "--force-conflicts", "--field-manager=chart-test", "-k"]);
    apply.arg(Path::new(ROOT).join("deploy"));
    let out = run(apply, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("PodSecurity"), "the pod template breaks the restricted standard:\n{stderr}");
    assert!(stdout(&out).contains("deployment.apps/samlcred serverside-applied"), "{}", stdout(&out));

    let sa = "system:serviceaccount:samlcred-system:samlcred";
    assert_can_i(
        sa,
        true,
        &[
            ("patch", "samlappcredentials.samlcred.io/status", "default"),
            ("create", "secrets", "default"),
            ("patch", "leases.coordination.k8s.io/samlcred", "samlcred-system"),
        ],
    );
    assert_can_i(sa, false, &forbidden_everywhere(&["samlcred-system", "default"]));
}

#[tokio::test]
async fn default_rendering_passes_a_server_dry_run() {
    let client = testenv::client().await.unwrap();
    let ns = restricted_namespace(&client, "chart-dry-default").await;
    let release = format!("dd{}", ns.name.rsplit('-').next().unwrap());
    let full = format!("{release}-samlcred");
    let objects = dry_run(&template(&release, &ns.name, &[]));
    let n = &ns.name;
    let mut expected = vec![
        format!("ClusterRole {full}"),
        format!("ClusterRole {full}-webhook"),
        format!("ClusterRoleBinding {full}"),
        format!("ClusterRoleBinding {full}-webhook"),
        format!("Deployment {n}/{full}"),
        format!("PodDisruptionBudget {n}/{full}"),
        format!("Role {n}/{full}-leader-election"),
        format!("Role {n}/{full}-webhook"),
        format!("RoleBinding {n}/{full}-leader-election"),
        format!("RoleBinding {n}/{full}-webhook"),
        format!("Service {n}/{full}-metrics"),
        format!("Service {n}/{full}-webhook"),
        format!("ServiceAccount {n}/{full}"),
        format!("ValidatingWebhookConfiguration {full}-webhook"),
    ];
    expected.extend(CRD_NAMES.iter().map(|c| format!("CustomResourceDefinition {c}")));
    expected.sort();
    assert_eq!(ids(&objects), expected);

    let deployment = find(&objects, "Deployment", &full);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["image"], "ghcr.io/samlcred/samlcred:0.1.0");
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for arg in [
        "controller",
        &format!("--cluster-resource-namespace={n}"),
        "--leader-elect",
        &format!("--leader-election-namespace={n}"),
        &format!("--leader-election-lease-name={full}"),
        "--metrics-bind-address=0.0.0.0:8080",
        "--health-bind-address=0.0.0.0:8081",
        "--log-format=json",
        "--webhook-bind-address=0.0.0.0:9443",
        &format!("--webhook-hosts={full}-webhook.{n}.svc"),
        &format!("--webhook-secret-name={full}-webhook-tls"),
        &format!("--webhook-secret-namespace={n}"),
        &format!("--webhook-configuration-name={full}-webhook"),
    ] {
        assert!(args.contains(&arg), "{arg} missing from {args:?}");
    }
    let ports = container["ports"].as_array().unwrap();
    assert!(ports.contains(&json!({"name": "webhook", "containerPort": 9443, "protocol": "TCP"})), "{ports:?}");

    // The webhook: CREATE and UPDATE of SamlAppCredentials, through the Service, Fail by default,
    // its caBundle left to the operator; RBAC for its one Secret and its one configuration.
    let webhook = &find(&objects, "ValidatingWebhookConfiguration", &format!("{full}-webhook"))["webhooks"][0];
    assert_eq!(webhook["failurePolicy"], "Fail");
    assert_eq!(webhook["sideEffects"], "None");
    assert_eq!(webhook["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(webhook["timeoutSeconds"], 5);
    assert_eq!(webhook["rules"][0]["apiGroups"], json!(["samlcred.io"]));
    assert_eq!(webhook["rules"][0]["operations"], json!(["CREATE", "UPDATE"]));
    assert_eq!(webhook["rules"][0]["resources"], json!(["samlappcredentials"]));
    let service = &webhook["clientConfig"]["service"];
    assert_eq!(
        (service["name"].as_str(), service["namespace"].as_str()),
        (Some(&*format!("{full}-webhook")), Some(&**n))
    );
    assert_eq!(service["path"], "/validate/samlappcredentials");
    assert!(webhook["clientConfig"].get("caBundle").is_none(), "{webhook}");
    let selector = &webhook["namespaceSelector"]["matchExpressions"];
    assert_eq!(selector, &json!([{"key": "samlcred.io/disable-validation", "operator": "NotIn", "values": ["true"]}]));
    let svc = find(&objects, "Service", &format!("{full}-webhook"));
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "webhook");
    let role = find(&objects, "Role", &format!("{full}-webhook"));
    assert_eq!(role["rules"][1]["resourceNames"], json!([format!("{full}-webhook-tls")]));
    assert_eq!(role["rules"][1]["verbs"], json!(["get", "patch"]));
    let cluster_role = find(&objects, "ClusterRole", &format!("{full}-webhook"));
    assert_eq!(
        cluster_role["rules"],
        json!([{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
                "resourceNames": [format!("{full}-webhook")], "verbs": ["get", "patch"]}])
    );
    assert!(!args.iter().any(|a| a.starts_with("--namespaces")), "cluster-wide mode watches all: {args:?}");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
}

#[tokio::test]
async fn scoped_rendering_passes_a_server_dry_run() {
    let client = testenv::client().await.unwrap();
    let ns = restricted_namespace(&client, "chart-dry-scoped").await;
    let a = TestNamespace::create(&client, "chart-dry-a").await.unwrap();
    let b = TestNamespace::create(&client, "chart-dry-b").await.unwrap();
    let release = format!("ds{}", ns.name.rsplit('-').next().unwrap());
    let full = format!("{release}-samlcred");
    let watch = format!("watchNamespaces={{{},{}}}", a.name, b.name);
    let objects = dry_run(&template(&release, &ns.name, &[&watch, "replicaCount=1", "logFormat=text"]));
    let (n, a, b) = (&ns.name, &a.name, &b.name);
    for id in [
        format!("Role {a}/{full}"),
        format!("RoleBinding {a}/{full}"),
        format!("Role {b}/{full}"),
        format!("RoleBinding {b}/{full}"),
        format!("Role {n}/{full}-cluster-resources"),
        format!("RoleBinding {n}/{full}-cluster-resources"),
        format!("Role {n}/{full}-leader-election"),
        format!("ClusterRole {full}"),
    ] {
        assert!(ids(&objects).contains(&id), "{id} missing from {:?}", ids(&objects));
    }
    // The ClusterRole keeps only what is cluster-scoped by nature.
    let cluster_role = find(&objects, "ClusterRole", &full);
    let resources: Vec<&str> = cluster_role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()))
        .collect();
    assert_eq!(resources, ["clusteroktaorgs", "clusteroktaorgs/status", "namespaces"]);
    let args = &find(&objects, "Deployment", &full)["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(args.as_array().unwrap().contains(&json!(format!("--namespaces={a},{b}"))), "{args}");
    assert!(args.as_array().unwrap().contains(&json!("--log-format=text")), "{args}");
    // The webhook reviews only the namespaces this release manages.
    let webhook = &find(&objects, "ValidatingWebhookConfiguration", &format!("{full}-webhook"))["webhooks"][0];
    let selector = &webhook["namespaceSelector"]["matchExpressions"];
    assert_eq!(selector[1], json!({"key": "kubernetes.io/metadata.name", "operator": "In", "values": [a, b]}));
}

#[test]
fn the_webhook_can_be_turned_off_or_set_to_ignore() {
    let off = template("samlcred", "samlcred-system", &["webhook.enabled=false"]);
    assert!(!off.contains("ValidatingWebhookConfiguration") && !off.contains("samlcred-webhook"), "{off}");
    assert!(off.contains("- --webhook-bind-address=\n"), "the operator is told not to serve it: {off}");
    let ignore = template("samlcred", "samlcred-system", &["webhook.failurePolicy=Ignore", "webhook.port=10443"]);
    assert!(ignore.contains("failurePolicy: Ignore") && ignore.contains("--webhook-bind-address=0.0.0.0:10443"));
    let mut cmd = helm();
    cmd.args(["template", "bad"]).arg(chart()).args(["--set", "webhook.failurePolicy=Maybe"]);
    assert!(!cmd.output().unwrap().status.success(), "failurePolicy is Fail or Ignore");
}

#[tokio::test]
async fn monitoring_rendering_passes_a_server_dry_run() {
    let client = testenv::client().await.unwrap();
    install_monitoring_crds(&client).await;
    let ns = restricted_namespace(&client, "chart-dry-monitoring").await;
    let release = format!("dm{}", ns.name.rsplit('-').next().unwrap());
    let full = format!("{release}-samlcred");
    let objects = dry_run(&template(
        &release,
        &ns.name,
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "metrics.prometheusRule.expiryWarningDays={45,21}",
            "metrics.grafanaDashboard.enabled=true",
        ],
    ));
    let monitor = find(&objects, "ServiceMonitor", &full);
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["honorLabels"], true,
        "the credential's namespace label, not the target's"
    );
    let dashboard = find(&objects, "ConfigMap", &format!("{full}-dashboard"));
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    assert!(dashboard["data"]["samlcred.json"].as_str().unwrap().contains("samlcred_credential_ready"));
    let rule = find(&objects, "PrometheusRule", &full);
    let alerts: Vec<&str> =
        rule["spec"]["groups"][0]["rules"].as_array().unwrap().iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(
        alerts,
        [
            "SamlcredCertificateExpiringWithoutRotation",
            "SamlcredCertificateExpiringWithoutRotation",
            "SamlcredRotationFailing",
            "SamlcredOktaErrors",
            "SamlcredOktaRateLimited",
            "SamlcredCredentialNotReady",
        ]
    );
    // One rule per threshold, each for its band, keyed on the controller's ExpiringSoon condition.
    let rules = &rule["spec"]["groups"][0]["rules"];
    let wider = rules[0]["expr"].as_str().unwrap();
    assert!(wider.contains("< 45 * 86400") && wider.contains(">= 21 * 86400"), "{wider}");
    assert!(wider.contains(r#"condition="ExpiringSoon"} == 1"#), "{wider}");
    assert_eq!(rules[0]["labels"]["threshold_days"], "45");
    let nearest = rules[1]["expr"].as_str().unwrap();
    assert!(nearest.contains("< 21 * 86400") && !nearest.contains(">="), "{nearest}");
    assert_eq!(rules[1]["labels"]["threshold_days"], "21");
    // Prometheus, not Helm, must expand the alert templates.
    let description = rule["spec"]["groups"][0]["rules"][0]["annotations"]["description"].as_str().unwrap();
    assert!(description.contains("{{ $labels.namespace }}/{{ $labels.name }}"), "{description}");
}

#[tokio::test]
async fn cluster_wide_install_grants_only_what_the_operator_needs() {
    let client = testenv::client().await.unwrap();
    let ns = TestNamespace::create(&client, "chart-install").await.unwrap();
    let other = TestNamespace::create(&client, "chart-install-other").await.unwrap();
    let release = format!("ic{}", ns.name.rsplit('-').next().unwrap());
    let full = format!("{release}-samlcred");
    let (n, o) = (ns.name.as_str(), other.name.as_str());
    let notes = helm_install(&release, n, &[]);
    assert!(notes.contains("It manages every namespace."), "{notes}");

    let selector = format!("app.kubernetes.io/instance={release}");
    assert_eq!(
        kubectl_get_names(&["-n", n, "deploy,sa,svc,pdb,role,rolebinding", "-l", &selector]),
        [
            format!("deployment.apps/{full}"),
            format!("poddisruptionbudget.policy/{full}"),
            format!("role.rbac.authorization.k8s.io/{full}-leader-election"),
            format!("role.rbac.authorization.k8s.io/{full}-webhook"),
            format!("rolebinding.rbac.authorization.k8s.io/{full}-leader-election"),
            format!("rolebinding.rbac.authorization.k8s.io/{full}-webhook"),
            format!("service/{full}-metrics"),
            format!("service/{full}-webhook"),
            format!("serviceaccount/{full}"),
        ]
    );
    assert_eq!(
        kubectl_get_names(&["clusterrole,clusterrolebinding", "-l", &selector]),
        [
            format!("clusterrole.rbac.authorization.k8s.io/{full}"),
            format!("clusterrole.rbac.authorization.k8s.io/{full}-webhook"),
            format!("clusterrolebinding.rbac.authorization.k8s.io/{full}"),
            format!("clusterrolebinding.rbac.authorization.k8s.io/{full}-webhook"),
        ]
    );
    let crds = kubectl_get_names(&["crd"]);
    for crd in CRD_NAMES {
        assert!(crds.contains(&format!("customresourcedefinition.apiextensions.k8s.io/{crd}")), "{crd}: {crds:?}");
    }

    let sa = format!("system:serviceaccount:{n}:{full}");
    let lease = format!("leases.coordination.k8s.io/{full}");
    let (webhook_secret, webhook) = (
        format!("secrets/{full}-webhook-tls"),
        format!("validatingwebhookconfigurations.admissionregistration.k8s.io/{full}-webhook"),
    );
    assert_can_i(
        &sa,
        true,
        &[
            ("watch", "samlappcredentials.samlcred.io", "*"),
            ("patch", "samlappcredentials.samlcred.io/status", o),
            ("list", "oktaorgs.samlcred.io", "*"),
            ("patch", "oktaorgs.samlcred.io/status", o),
            ("watch", "clusteroktaorgs.samlcred.io", ""),
            ("patch", "clusteroktaorgs.samlcred.io/status", ""),
            ("watch", "secrets", "*"),
            ("create", "secrets", o),
            ("patch", "secrets", o),
            ("create", "events.events.k8s.io", o),
            ("patch", "events.events.k8s.io", o),
            ("patch", "deployments.apps", o),
            ("patch", "statefulsets.apps", o),
            ("patch", "daemonsets.apps", o),
            ("get", "namespaces", ""),
            // Cluster-wide, namespace labels are watched (metadata only) for ClusterOktaOrg selectors.
            ("watch", "namespaces", ""),
            ("create", "leases.coordination.k8s.io", n),
            ("get", &lease, n),
            ("patch", &lease, n),
            // The webhook's certificate and its configuration's caBundle.
            ("get", &webhook_secret, n),
            ("patch", &webhook_secret, n),
            ("get", &webhook, ""),
            ("patch", &webhook, ""),
        ],
    );
    let mut forbidden = forbidden_everywhere(&[n, o]);
    forbidden.extend([
        ("create", "leases.coordination.k8s.io", o),
        ("patch", "leases.coordination.k8s.io/someone-elses", n),
        ("update", &lease, n),
        ("delete", "leases.coordination.k8s.io", n),
        ("update", "namespaces", ""),
        ("patch", "namespaces", ""),
        ("delete", "clusteroktaorgs.samlcred.io", ""),
        // Server-side apply is a patch: no whole-object writes.
        ("update", "samlappcredentials.samlcred.io", o),
        ("patch", "samlappcredentials.samlcred.io", o),
        ("update", "samlappcredentials.samlcred.io/status", o),
        ("update", "secrets", o),
        // Cluster-wide, secrets may be patched anywhere (server-side apply); never updated.
        ("update", &webhook_secret, n),
        ("create", "events", o),
        ("patch", "validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses", ""),
        ("update", &webhook, ""),
        ("delete", &webhook, ""),
        ("list", "validatingwebhookconfigurations.admissionregistration.k8s.io", ""),
    ]);
    assert_can_i(&sa, false, &forbidden);

    // Uninstalling removes the release's objects but keeps the CRDs (and so every user's resources).
    let mut uninstall = helm();
    uninstall.args(["uninstall", &release, "--namespace", n, "--wait", "--timeout", "60s"]);
    run(uninstall, None);
    assert!(kubectl_get_names(&["clusterrole,clusterrolebinding", "-l", &selector]).is_empty());
    let crds = kubectl_get_names(&["crd"]);
    for crd in CRD_NAMES {
        assert!(crds.contains(&format!("customresourcedefinition.apiextensions.k8s.io/{crd}")), "{crd} gone: {crds:?}");
    }
}

#[tokio::test]
async fn scoped_install_stays_inside_its_namespaces() {
    let client = testenv::client().await.unwrap();
    let ns = TestNamespace::create(&client, "chart-scoped").await.unwrap();
    let a = TestNamespace::create(&client, "chart-scoped-a").await.unwrap();
    let b = TestNamespace::create(&client, "chart-scoped-b").await.unwrap();
    let other = TestNamespace::create(&client, "chart-scoped-other").await.unwrap();
    let release = format!("is{}", ns.name.rsplit('-').next().unwrap());
    let full = format!("{release}-samlcred");
    let (n, a, b, o) = (ns.name.as_str(), a.name.as_str(), b.name.as_str(), other.name.as_str());
    let notes = helm_install(&release, n, &[&format!("watchNamespaces={{{a},{b}}}")]);
    assert!(notes.contains(&format!("It manages the namespaces: {a}, {b}.")), "{notes}");

    let selector = format!("app.kubernetes.io/instance={release}");
    for watched in [a, b] {
        assert_eq!(
            kubectl_get_names(&["-n", watched, "role,rolebinding", "-l", &selector]),
            [format!("role.rbac.authorization.k8s.io/{full}"), format!("rolebinding.rbac.authorization.k8s.io/{full}"),]
        );
    }
    assert!(kubectl_get_names(&["-n", o, "role,rolebinding", "-l", &selector]).is_empty());

    let sa = format!("system:serviceaccount:{n}:{full}");
    let (ns_a, ns_b, ns_o) = (format!("namespaces/{a}"), format!("namespaces/{b}"), format!("namespaces/{o}"));
    let mut allowed: Vec<Question> = vec![
        ("watch", "clusteroktaorgs.samlcred.io", ""),
        ("patch", "clusteroktaorgs.samlcred.io/status", ""),
        ("get", &ns_a, ""),
        ("get", &ns_b, ""),
        // ClusterOktaOrg credentials, in the cluster resource namespace (the release's).
        ("get", "secrets", n),
        // The webhook's certificate Secret, in the release namespace (create cannot name it).
        ("create", "secrets", n),
    ];
    for watched in [a, b] {
        allowed.extend([
            ("watch", "samlappcredentials.samlcred.io", watched),
            ("patch", "samlappcredentials.samlcred.io/status", watched),
            ("watch", "oktaorgs.samlcred.io", watched),
            ("patch", "oktaorgs.samlcred.io/status", watched),
            ("get", "secrets", watched),
            ("create", "secrets", watched),
            ("watch", "secrets", watched),
            ("patch", "secrets", watched),
            ("create", "events.events.k8s.io", watched),
            ("patch", "deployments.apps", watched),
        ]);
    }
    assert_can_i(&sa, true, &allowed);

    let mut forbidden = forbidden_everywhere(&[n, a, b, o]);
    forbidden.extend([
        ("get", "secrets", o),
        ("list", "secrets", o),
        ("list", "secrets", "*"),
        ("get", "secrets", "default"),
        ("patch", "secrets", n),
        ("patch", "secrets/someone-elses", n),
        ("watch", "samlappcredentials.samlcred.io", "*"),
        ("get", "samlappcredentials.samlcred.io", o),
        ("patch", "samlappcredentials.samlcred.io/status", o),
        ("get", "oktaorgs.samlcred.io", o),
        ("list", "secrets", n),
        ("watch", "secrets", n),
        ("create", "events.events.k8s.io", o),
        ("patch", "deployments.apps", o),
        ("patch", "deployments.apps", n),
        ("create", "leases.coordination.k8s.io", a),
        ("get", &ns_o, ""),
        ("get", "namespaces/default", ""),
        ("list", "namespaces", ""),
    ]);
    assert_can_i(&sa, false, &forbidden);
}

/// Kills the operator process when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The real `samlcred controller`, run with the installed Deployment's arguments and nothing but the
/// installed ServiceAccount's token, against the Okta simulator: it adopts the active keys of two apps
/// (one through an OktaOrg, one through a ClusterOktaOrg), writes both Secrets, restarts the target
/// Deployment, holds the leader-election Lease, and never meets a "forbidden": least privilege that works.
#[tokio::test]
async fn the_operator_works_under_the_scoped_rbac() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Secret;
    use okta_sim::{OktaSim, SeedApp, SeedKey, SimConfig};

    let plane = testenv::shared();
    let client = testenv::client().await.unwrap();
    let ns = TestNamespace::create(&client, "chart-run").await.unwrap();
    let watched = TestNamespace::create(&client, "chart-run-a").await.unwrap();
    let release = format!("rn{}", ns.name.rsplit('-').next().unwrap());
    let full = format!("{release}-samlcred");
    let (n, a) = (ns.name.as_str(), watched.name.as_str());
    helm_install(
        &release,
        n,
        &[
            &format!("watchNamespaces={{{a}}}"),
            "listenAddress=127.0.0.1",
            &format!("metrics.port={}", free_port()),
            &format!("health.port={}", free_port()),
            "logFormat=text",
            &format!("webhook.port={}", free_port()),
            "extraArgs={--allow-insecure-okta-http}",
        ],
    );
    // No pod serves the chart's webhook here: the watched namespace opts out of it. The operator
    // run below still keeps the webhook's Secret and caBundle, under the chart's RBAC.
    let mut opt_out = plane.kubectl();
    opt_out.args(["label", "namespace", a, "samlcred.io/disable-validation=true"]);
    run(opt_out, None);

    // The arguments as installed, less any flag this build of the binary does not know yet.
    let mut get = plane.kubectl();
    get.args(["get", "deployment", &full, "-n", n, "-o", "jsonpath={.spec.template.spec.containers[0].args}"]);
    let installed: Vec<String> = serde_json::from_str(&stdout(&run(get, None))).unwrap();
    let binary = env!("CARGO_BIN_EXE_samlcred");
    let help = stdout(&run(
        {
            let mut c = Command::new(binary);
            c.args(["controller", "--help"]);
            c
        },
        None,
    ));
    let (args, unknown): (Vec<String>, Vec<String>) = installed.into_iter().partition(|arg| {
        let flag = arg.split('=').next().unwrap();
        !flag.starts_with("--") || help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n"))
    });
    if !unknown.is_empty() {
        eprintln!("the samlcred binary does not know these chart flags yet; left out here: {unknown:?}");
    }

    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    sim.add_api_token("chart-token");
    let now = sim.now();
    let key = SeedKey {
        not_before: now - jiff::SignedDuration::from_hours(24 * 30),
        not_after: now + jiff::SignedDuration::from_hours(24 * 300),
    };
    // The namespaced org's app expires within renewBefore: under these RBAC rules the operator must
    // carry out a full rotation (generate, publish, activate, retire), not only adopt.
    let expiring = SeedKey { not_after: now + jiff::SignedDuration::from_hours(24 * 10), ..key };
    let seed =
        |label: &str, key: SeedKey| sim.seed_app(SeedApp { id: None, label: label.into(), keys: vec![key], active: 0 });
    let (app, cluster_app) = (seed("chart namespaced org", expiring), seed("chart cluster org", key));
    let cluster_org = format!("{release}-acme");
    let manifests = format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: okta-token, namespace: {a}}}
stringData: {{token: chart-token}}
---
apiVersion: v1
kind: Secret
metadata: {{name: okta-token, namespace: {n}}}
stringData: {{token: chart-token}}
---
apiVersion: samlcred.io/v1alpha1
kind: OktaOrg
metadata: {{name: acme, namespace: {a}}}
spec: {{url: "{url}", auth: {{apiToken: {{secretRef: {{name: okta-token, key: token}}}}}}}}
---
apiVersion: samlcred.io/v1alpha1
kind: ClusterOktaOrg
metadata: {{name: {cluster_org}}}
spec:
  url: "{url}"
  auth: {{apiToken: {{secretRef: {{name: okta-token, key: token}}}}}}
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {a}}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {a}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec: {{containers: [{{name: web, image: example.invalid/web:1}}]}}
---
apiVersion: samlcred.io/v1alpha1
kind: SamlAppCredential
metadata: {{name: web, namespace: {a}}}
spec:
  orgRef: {{name: acme}}
  appId: {app_id}
  secretName: web-saml-idp
  # No Deployment controller runs here to report the rollout (see tests/operator_rollout.rs).
  activation: {{delay: 1s, waitForRollout: false}}
  retainPrevious: 1s
  rolloutRestartTargets: [{{kind: Deployment, name: web}}]
---
apiVersion: samlcred.io/v1alpha1
kind: SamlAppCredential
metadata: {{name: shared, namespace: {a}}}
spec:
  orgRef: {{kind: ClusterOktaOrg, name: {cluster_org}}}
  appId: {cluster_app_id}
  secretName: shared-saml-idp
"#,
        url = sim.base_url(),
        app_id = app.id,
        cluster_app_id = cluster_app.id,
    );
    let mut apply = plane.kubectl();
    apply.args(["apply", "-f", "-"]);
    run(apply, Some(&manifests));

    // A kubeconfig holding only a token of the installed ServiceAccount.
    let dir = scratch("run");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::copy(plane.kubeconfig(), &kubeconfig).unwrap();
    let mut token = plane.kubectl();
    token.args(["create", "token", &full, "-n", n, "--duration=30m"]);
    let token = stdout(&run(token, None)).trim().to_string();
    for config in [
        vec!["config", "set-credentials", "operator", &format!("--token={token}")],
        vec!["config", "set-context", "--current", "--user=operator"],
    ] {
        let mut cmd = Command::new(plane.bin_dir().join("kubectl"));
        cmd.env("KUBECONFIG", &kubeconfig).args(config);
        run(cmd, None);
    }
    let mut whoami = Command::new(plane.bin_dir().join("kubectl"));
    whoami.env("KUBECONFIG", &kubeconfig).args(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert_eq!(stdout(&run(whoami, None)), format!("system:serviceaccount:{n}:{full}"));

    let log_path = dir.join("controller.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let operator = Running(
        Command::new(binary)
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", "chart-test")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), a);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), a);
    let kid_of = |secret: Option<Secret>| {
        secret.and_then(|s| s.data).and_then(|d| d.get("kid").map(|k| String::from_utf8_lossy(&k.0).into_owned()))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let (done, state) = loop {
        let kid = kid_of(secrets.get_opt("web-saml-idp").await.unwrap());
        let shared_kid = kid_of(secrets.get_opt("shared-saml-idp").await.unwrap());
        let web = deployments.get("web").await.unwrap();
        let restarted = web
            .spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .is_some_and(|notes| notes.contains_key("samlcred.io/secret-hash"));
        let state = format!("web-saml-idp kid {kid:?}, shared-saml-idp kid {shared_kid:?}, web restarted {restarted}");
        let rotated = kid.is_some() && kid != Some(app.kids[0].clone());
        let configuration =
            Api::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>::all(client.clone())
                .get(&format!("{full}-webhook"))
                .await
                .unwrap();
        let ca_bundle =
            configuration.webhooks.unwrap_or_default().into_iter().next().and_then(|w| w.client_config.ca_bundle);
        let state = format!("{state}, webhook caBundle set {}", ca_bundle.is_some());
        if rotated
            && kid == sim.active_kid(&app.id)
            && shared_kid == sim.active_kid(&cluster_app.id)
            && restarted
            && ca_bundle.is_some()
        {
            break (true, state);
        }
        if std::time::Instant::now() > deadline {
            break (false, state);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let holder = if args.iter().any(|a| a == "--leader-elect") {
        use k8s_openapi::api::coordination::v1::Lease;
        let lease = Api::<Lease>::namespaced(client.clone(), n).get_opt(&full).await.unwrap();
        lease.and_then(|l| l.spec).and_then(|s| s.holder_identity)
    } else {
        Some("chart-test".to_string())
    };
    drop(operator);
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(holder.as_deref(), Some("chart-test"), "the operator does not hold Lease {n}/{full}\n{logs}");
    assert!(done, "the operator did not finish its work under the chart's RBAC: {state}\n--- operator log ---\n{logs}");
    let lower = logs.to_lowercase();
    // Kubernetes refusals read "forbidden"; a bare "403" would also match port numbers in the log.
    assert!(!lower.contains("forbidden"), "the operator was refused something:\n{logs}");
}
