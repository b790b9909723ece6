//! The user documentation in `docs/`, held to the code: the generated CRD reference is current, the
//! troubleshooting page names every condition and event reason, relative links resolve, the CLI page
//! names every subcommand, and the getting-started steps work as written (the chart installed with
//! the doc's command, the doc's OktaOrg and SamlAppCredential applied, the real `samlcred controller`
//! making the credential Ready against the Okta simulator; the OAuth variant of the OktaOrg
//! authenticated).

mod support;

use base64::Engine;
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use okta_sim::OAuthClient;
use okta_sim::{OktaSim, SeedApp, SeedKey, SimConfig};
use samlcred::api::SamlAppCredential;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(relative)).unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

// ----- the generated CRD reference -----

#[test]
fn crd_reference_is_generated_from_the_current_types() {
    let generated = samlcred::api::reference::field_reference_markdown();
    let committed = std::fs::read_to_string(Path::new(ROOT).join("docs/reference/crds.md")).unwrap_or_default();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map(|i| format!("first difference at line {}", i + 1))
            .unwrap_or_else(|| "one is a prefix of the other".into());
        panic!(
            "docs/reference/crds.md is out of date with the CRD schemas ({first_difference}); run `make docs` \
             (or `cargo run --example crd_reference > docs/reference/crds.md`) and commit the result"
        );
    }
}

// ----- troubleshooting names every reason -----

/// The string values of the `pub const`s in `pub mod <module> { ... }` of src/api/mod.rs.
fn constants_of(module: &str) -> Vec<(String, String)> {
    let source = read("src/api/mod.rs");
    let start = source.find(&format!("pub mod {module} {{")).unwrap_or_else(|| panic!("no module {module}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}").expect("module end")];
    body.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("pub const ")?;
            let (name, value) = rest.split_once(": &str = \"")?;
            Some((name.to_string(), value.strip_suffix("\";")?.to_string()))
        })
        .collect()
}

/// Reasons the controller sets as string literals rather than through the constants of `api`.
const LITERAL_REASONS: [&str; 5] = ["Reconciling", "KubernetesError", "Generating", "Published", "Activating"];

#[test]
fn troubleshooting_covers_every_condition_and_event_reason() {
    let doc = read("docs/troubleshooting.md");
    let conditions = constants_of("conditions");
    let events = constants_of("events");
    assert!(
        conditions.len() >= 10 && events.len() >= 9,
        "parsing src/api/mod.rs went wrong: {conditions:?} {events:?}"
    );

    let headings: BTreeSet<&str> = doc.lines().filter_map(|l| l.strip_prefix("### ")).map(str::trim).collect();
    let mut missing = Vec::new();
    for (name, reason) in &conditions {
        // Condition types (Ready, Rotating, ExpiringSoon, RestartsPending) and the rotation trigger NoActiveKey are named in the
        // text; every other reason gets a section of its own.
        let ok = match name.as_str() {
            "READY" | "ROTATING" | "EXPIRING_SOON" | "RESTARTS_PENDING" | "REASON_NO_ACTIVE_KEY" => {
                doc.contains(&format!("`{reason}`"))
            }
            _ => headings.contains(reason.as_str()),
        };
        if !ok {
            missing.push(format!("condition reason {reason} (conditions::{name}): needs a `### {reason}` section"));
        }
    }
    for (name, reason) in &events {
        if !doc.lines().any(|l| l.starts_with(&format!("| `{reason}` |"))) {
            missing.push(format!("event reason {reason} (events::{name}): needs a row in the Events table"));
        }
    }
    let controller_source: String = ["src/controller/credential.rs", "src/controller/status.rs"].map(read).concat();
    for reason in LITERAL_REASONS {
        if conditions.iter().any(|(_, value)| value == reason) {
            continue; // Became a constant: checked above.
        }
        assert!(
            controller_source.contains(&format!("\"{reason}\"")),
            "the controller no longer sets the reason {reason} as a literal: update LITERAL_REASONS in tests/docs.rs \
             (and docs/troubleshooting.md)"
        );
        if !headings.contains(reason) {
            missing.push(format!("condition reason {reason} (set in src/controller): needs a `### {reason}` section"));
        }
    }
    assert!(missing.is_empty(), "docs/troubleshooting.md does not cover:\n{}", missing.join("\n"));
}

// ----- links -----

/// The Markdown files whose relative links must resolve: docs/ (recursively) and the README.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = vec![Path::new(ROOT).join("README.md")];
    walk(&Path::new(ROOT).join("docs"), &mut files);
    files
}

/// The targets of the inline links `[text](target)` outside fenced code blocks.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code (`...`) holds patterns and commands, not links.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut found = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

#[test]
fn relative_links_resolve() {
    let mut broken = Vec::new();
    let files = markdown_files();
    assert!(files.len() >= 7, "expected README.md and the pages of docs/: {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(ROOT).unwrap().display().to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            if !resolved.exists() {
                broken.push(format!("{shown}: {target} (no such file)"));
                continue;
            }
            if let Some(fragment) = fragment
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&std::fs::read_to_string(&resolved).unwrap()).contains(fragment)
            {
                broken.push(format!("{shown}: {target} (no heading with that anchor)"));
            }
        }
    }
    assert!(broken.is_empty(), "broken relative links:\n{}", broken.join("\n"));
}

// ----- the CLI page -----

#[test]
fn cli_page_names_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_samlcred")).arg("--help").output().unwrap();
    assert!(out.status.success(), "samlcred --help: {}", String::from_utf8_lossy(&out.stderr));
    let help = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.contains(&"controller"), "no commands found in:\n{help}");
    let doc = read("docs/cli.md");
    let missing: Vec<&&str> = commands
        .iter()
        .filter(|c| !doc.contains(&format!("### `samlcred {c}")) && !doc.contains(&format!("### `samlcred {c}`")))
        .collect();
    assert!(missing.is_empty(), "docs/cli.md has no section for: {missing:?}");
}

// ----- getting started, run as written -----

/// The fenced block that follows `<!-- getting-started:NAME -->` in the doc.
fn marked_block(doc: &str, name: &str) -> String {
    let marker = format!("<!-- getting-started:{name} -->");
    assert_eq!(doc.matches(&marker).count(), 1, "docs/getting-started.md must have exactly one {marker}");
    let after = &doc[doc.find(&marker).unwrap() + marker.len()..];
    let mut lines = after.trim_start_matches('\n').lines();
    let fence = lines.next().unwrap_or_default();
    assert!(fence.starts_with("```"), "{marker} must be followed by a fenced code block, found {fence:?}");
    let block: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    block.join("\n") + "\n"
}

/// Replaces the doc's example value `from` (which must be there) with the test's `to`.
fn substitute(block: &str, from: &str, to: &str) -> String {
    assert!(block.contains(from), "the getting-started block no longer contains {from:?}:\n{block}");
    block.replace(from, to)
}

/// Runs a shell block of the doc with bash, as a user would, with the control plane's kubectl and
/// helm first on PATH. On a blocking thread: the simulator is served by this test's runtime meanwhile.
async fn run_shell(script: &str, dir: &Path, envs: &[(&str, &str)]) -> Output {
    let (script, dir) = (script.to_string(), dir.to_path_buf());
    let envs: Vec<(String, String)> = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_shell_blocking(&script, &dir, &envs)
    })
    .await
    .unwrap()
}

fn run_shell_blocking(script: &str, dir: &Path, envs: &[(&str, &str)]) -> Output {
    let plane = testenv::shared();
    let home = plane.dir().join("docs-helm-home");
    let path = format!("{}:{}", plane.bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("KUBECONFIG", plane.kubeconfig())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn check(what: &str, script: &str, out: &Output, controller_log: Option<&support::ControllerProcess>) {
    if !out.status.success() {
        testenv::mark_failed();
        let log = controller_log.map(|c| format!("\n--- samlcred controller log ---\n{}", c.log_text()));
        panic!(
            "the getting-started step {what} failed ({}):\n{script}\n--- stdout ---\n{}\n--- stderr ---\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log.unwrap_or_default()
        );
    }
}

/// The doc's namespace, app ID and org URL: the examples the test swaps for the simulator's.
const NAMESPACE: &str = "grafana";
const DOC_APP_ID: &str = "0oa1b2c3d4e5f6g7h8i9";
const DOC_ORG_URL: &str = "https://acme.okta.com";
const TOKEN: &str = "docs-getting-started-token";

#[tokio::test]
async fn getting_started_works_as_written() {
    samlcred::okta::install_crypto_provider();
    let doc = read("docs/getting-started.md");
    let client = testenv::client().await.unwrap();
    let dir = testenv::shared().dir().join("docs-getting-started");
    std::fs::create_dir_all(&dir).unwrap();

    // 1. Install the operator, from the repository root as the doc says. No pods run here (no
    // kubelet): the chart gives the CRDs and RBAC, and the test runs the operator itself below.
    let helm_install = marked_block(&doc, "helm-install");
    assert!(helm_install.contains("helm install") && helm_install.contains("charts/samlcred"), "{helm_install}");
    check("helm-install", &helm_install, &run_shell(&helm_install, Path::new(ROOT), &[]).await, None);
    // No replica serves the chart's admission webhook here; it must not refuse the doc's credential.
    let ignore = r#"kubectl patch validatingwebhookconfiguration samlcred-webhook --type=json -p '[{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]'"#;
    check("webhook-ignore", ignore, &run_shell(ignore, Path::new(ROOT), &[]).await, None);

    // 2. An Okta org (the simulator) with a SAML app whose certificate is far from expiry.
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    sim.add_api_token(TOKEN);
    let now = sim.now();
    let app = sim.seed_app(SeedApp {
        id: None,
        label: "Grafana".into(),
        keys: vec![SeedKey {
            not_before: now - SignedDuration::from_hours(24 * 30),
            not_after: now + SignedDuration::from_hours(24 * 300),
        }],
        active: 0,
    });

    // The token Secret, the OktaOrg (API-token variant) and the credential, as the doc has them.
    let token_secret = marked_block(&doc, "token-secret");
    check("token-secret", &token_secret, &run_shell(&token_secret, &dir, &[("OKTA_API_TOKEN", TOKEN)]).await, None);
    let org = substitute(&marked_block(&doc, "oktaorg"), DOC_ORG_URL, &sim.base_url());
    assert!(org.contains(&format!("namespace: {NAMESPACE}")), "{org}");
    std::fs::write(dir.join("oktaorg.yaml"), &org).unwrap();
    let credential = substitute(&marked_block(&doc, "credential"), DOC_APP_ID, &app.id);
    assert!(credential.contains(&format!("namespace: {NAMESPACE}")), "{credential}");
    std::fs::write(dir.join("credential.yaml"), &credential).unwrap();
    let apply_org = marked_block(&doc, "apply-org");
    check("apply-org", &apply_org, &run_shell(&apply_org, &dir, &[]).await, None);

    // 3. The real operator, then the doc's own wait for Ready.
    let controller = support::ControllerProcess::start_with(&[NAMESPACE], &[], &[]);
    let wait = marked_block(&doc, "wait");
    assert!(wait.contains("--for=condition=Ready"), "{wait}");
    check("wait", &wait, &run_shell(&wait, &dir, &[]).await, Some(&controller));

    // What the doc promises at this point: the org Authenticated, the credential UpToDate with
    // Okta's active key adopted (nothing generated), the Secret holding that key, no failure event.
    let orgs: Api<samlcred::api::OktaOrg> = Api::namespaced(client.clone(), NAMESPACE);
    let org_ready = support::wait_for("OktaOrg acme to be Ready", Duration::from_secs(30), || async {
        let org = orgs.get("acme").await.ok()?;
        let ready = org.status?.conditions.into_iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(ready)
    })
    .await;
    assert_eq!(org_ready.reason, "Authenticated", "{}", org_ready.message);
    let credentials: Api<SamlAppCredential> = Api::namespaced(client.clone(), NAMESPACE);
    let grafana = credentials.get("grafana").await.unwrap();
    let ready = support::condition(&grafana, "Ready").unwrap();
    assert_eq!((ready.0.as_str(), ready.1.as_str()), ("True", "UpToDate"), "{ready:?}");
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE).get("grafana-saml-idp").await.unwrap();
    assert_eq!(support::secret_text(&secret, "kid"), sim.active_kid(&app.id));
    for key in ["certificate.pem", "bundle.pem", "metadata.xml", "jwks.json", "kid"] {
        assert!(support::secret_text(&secret, key).is_some_and(|v| !v.is_empty()), "Secret has no {key}");
    }
    assert!(!sim.calls().iter().any(|c| c.path.ends_with("/keys/generate")), "a key was generated");
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NAMESPACE);
    let events: Vec<String> =
        api.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect();
    assert!(events.iter().all(|r| r != "OktaError"), "{events:?}");
    // Dropped first, so that its /metrics are saved beside its log for the scan.
    drop(controller);
    support::secret_scan::assert_clean_in(&client, NAMESPACE, sim.presented_secrets(), &[TOKEN.to_string()]).await;
}

/// The OAuth variant of the doc's OktaOrg (an API Services app with private_key_jwt; the simulator
/// demands DPoP, which the doc's default `dpop: Auto` must follow), in a namespace of its own.
#[tokio::test]
async fn getting_started_oauth_org_is_authenticated() {
    samlcred::okta::install_crypto_provider();
    let doc = read("docs/getting-started.md");
    let client = testenv::client().await.unwrap();
    let dir = testenv::shared().dir().join("docs-getting-started-oauth");
    std::fs::create_dir_all(&dir).unwrap();
    const OAUTH_NAMESPACE: &str = "grafana-oauth";
    const DOC_CLIENT_ID: &str = "0oa9z8y7x6w5v4u3t2s1";

    // The service app as the doc sets it up: a key pair (EC P-256 here), both scopes, DPoP required.
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let sim = OktaSim::start(SimConfig::default()).await.unwrap();
    sim.add_oauth_client(OAuthClient {
        client_id: DOC_CLIENT_ID.into(),
        public_jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
        scopes: vec!["okta.apps.read".into(), "okta.apps.manage".into()],
        require_dpop: true,
    });
    std::fs::write(dir.join("samlcred-okta-key.pem"), key.serialize_pem()).unwrap();

    let secret = marked_block(&doc, "oauth-secret");
    let secret = substitute(&secret, "namespace grafana", &format!("namespace {OAUTH_NAMESPACE}"));
    let secret = substitute(&secret, "-n grafana ", &format!("-n {OAUTH_NAMESPACE} "));
    check("oauth-secret", &secret, &run_shell(&secret, &dir, &[]).await, None);
    let org = marked_block(&doc, "oktaorg-oauth");
    assert!(org.contains(DOC_CLIENT_ID), "{org}");
    let org = substitute(&org, DOC_ORG_URL, &sim.base_url());
    let org = substitute(&org, "namespace: grafana", &format!("namespace: {OAUTH_NAMESPACE}"));
    std::fs::write(dir.join("oktaorg.yaml"), &org).unwrap();
    let apply_org = marked_block(&doc, "apply-org").replace("-n grafana ", &format!("-n {OAUTH_NAMESPACE} "));
    check("apply-org (OAuth)", &apply_org, &run_shell(&apply_org, &dir, &[]).await, None);

    let controller = support::ControllerProcess::start_with(&[OAUTH_NAMESPACE], &[], &[]);
    let orgs: Api<samlcred::api::OktaOrg> = Api::namespaced(client.clone(), OAUTH_NAMESPACE);
    let ready = support::wait_for("the OAuth OktaOrg to have a Ready condition", Duration::from_secs(60), || async {
        let org = orgs.get("acme").await.ok()?;
        org.status?.conditions.into_iter().find(|c| c.type_ == "Ready")
    })
    .await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Authenticated"),
        "{}\n--- samlcred controller log ---\n{}",
        ready.message,
        controller.log_text()
    );
    let token_calls: Vec<_> = sim.calls().into_iter().filter(|c| c.path == "/oauth2/v1/token").collect();
    assert!(token_calls.iter().any(|c| c.status == 200), "no access token was issued: {token_calls:?}");
    // The client assertions, DPoP proofs and access tokens the simulator saw, and the key's PEM.
    drop(controller);
    let key_pem = std::fs::read_to_string(dir.join("samlcred-okta-key.pem")).unwrap();
    support::secret_scan::assert_clean_in(&client, OAUTH_NAMESPACE, sim.presented_secrets(), &[key_pem]).await;
}
