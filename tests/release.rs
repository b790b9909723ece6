//! What a release publishes, checked without publishing: the release workflow
//! (.github/workflows/release.yml) passes actionlint (built from its pinned module) and a dry check of
//! what it refers to (actions pinned by version tag or commit, make targets, repository files, tool
//! versions equal to the pins used here, cosign signing and SBOM attestations where they belong);
//! Chart.yaml's Artifact Hub annotations agree with the chart, the CRDs and CHANGELOG.md, and their
//! CRD examples pass a server-side dry run on the real API server.

mod support;
mod tools;

use kube::CustomResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use tools::{ROOT, output, tool};

const WORKFLOW: &str = ".github/workflows/release.yml";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn workflow() -> Value {
    yaml(WORKFLOW)
}

fn steps(workflow: &Value) -> Vec<(String, &Value)> {
    workflow["jobs"]
        .as_object()
        .expect("jobs")
        .iter()
        .flat_map(|(job, body)| body["steps"].as_array().into_iter().flatten().map(move |s| (job.clone(), s)))
        .collect()
}

fn scripts(workflow: &Value) -> String {
    steps(workflow).iter().filter_map(|(_, s)| s["run"].as_str()).collect::<Vec<_>>().join("\n")
}

/// actionlint also runs shellcheck on the `run:` scripts when shellcheck is installed
/// (`apt-get install shellcheck`); without it, it checks everything else.
#[test]
fn actionlint_passes_the_release_workflow() {
    let shellcheck =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|d| d.join("shellcheck").is_file());
    eprintln!("actionlint {}", if shellcheck { "with shellcheck" } else { "without shellcheck (not installed)" });
    let out = output(Command::new(tool("actionlint")).current_dir(ROOT).args(["-no-color", WORKFLOW]));
    assert!(
        out.status.success(),
        "actionlint {WORKFLOW}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn actionlint_would_catch_a_broken_workflow() {
    let dir = tools::scratch("actionlint");
    std::fs::create_dir_all(dir.join(".github/workflows")).unwrap();
    let broken = read(WORKFLOW).replace("needs.version.outputs.version", "needs.versoin.outputs.version");
    std::fs::write(dir.join(".github/workflows/release.yml"), broken).unwrap();
    let out = output(Command::new(tool("actionlint")).current_dir(&dir).args(["-no-color", "-shellcheck=", WORKFLOW]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("versoin"),
        "actionlint let a job that is not needed through:\n{text}"
    );
}

#[test]
fn every_reference_of_the_workflow_resolves() {
    let wf = workflow();
    let mut problems = Vec::new();
    for (job, step) in steps(&wf) {
        let Some(uses) = step["uses"].as_str() else { continue };
        let pinned = uses.split_once('@').is_some_and(|(action, version)| {
            let parts: Vec<&str> = action.split('/').collect();
            let named = parts.len() >= 2 && parts.iter().all(|p| !p.is_empty());
            let sha = version.len() == 40 && version.chars().all(|c| c.is_ascii_hexdigit());
            let tag = version.strip_prefix('v').is_some_and(|v| {
                !v.is_empty() && v.split('.').count() <= 3 && v.split('.').all(|n| n.parse::<u32>().is_ok())
            });
            named && (sha || tag)
        });
        if !pinned {
            problems.push(format!("job {job}: `uses: {uses}` is not owner/repo@vN[.N[.N]] or @<commit sha>"));
        }
    }

    // make targets the scripts call exist in the Makefile.
    let makefile = read("Makefile");
    let targets: BTreeSet<&str> =
        makefile.lines().filter_map(|l| l.split_once(':').map(|(t, _)| t)).flat_map(|t| t.split_whitespace()).collect();
    let run = scripts(&wf);
    let mut made = 0;
    for line in run.lines() {
        if let Some(rest) = line.trim().strip_prefix("make ") {
            let target = rest.split_whitespace().next().unwrap();
            made += 1;
            if !targets.contains(target) {
                problems.push(format!("`make {target}`: no such target in the Makefile"));
            }
        }
    }
    assert!(made >= 2, "the workflow runs make test and make image");

    // Files of the repository that the workflow names exist.
    let text = read(WORKFLOW);
    let mut files = BTreeSet::new();
    for token in text.split(|c: char| c.is_whitespace() || "\"'`,;()=".contains(c)) {
        let token = token.trim_end_matches(['.', ':']);
        if ["charts/", "tests/", "scripts/", "docs/", "src/"].iter().any(|p| token.starts_with(p))
            || ["CHANGELOG.md", "Makefile", "Dockerfile"].contains(&token)
        {
            files.insert(token.to_string());
        }
    }
    for file in &files {
        if !Path::new(ROOT).join(file).exists() {
            problems.push(format!("{WORKFLOW} names {file}, which does not exist"));
        }
    }
    assert!(files.contains("tests/tools/build.sh") && files.contains("charts/samlcred/Chart.yaml"), "{files:?}");
    // Outputs of make image that the workflow uses are the ones scripts/image.sh documents.
    let image_script = read("scripts/image.sh");
    let layout = "target/image/oci";
    assert!(text.contains(layout), "the workflow pushes {layout}");
    assert!(image_script.contains(&format!("#   {layout}/")), "scripts/image.sh does not write {layout}");

    // Versions pinned in the workflow are the ones this repository builds and tests with.
    let env = &wf["env"];
    let helm = read("tests/kube/helm/go.mod");
    let helm_pin = helm.lines().find_map(|l| l.trim().strip_prefix("helm.sh/helm/v3 ")).unwrap();
    if !helm_pin.starts_with(env["HELM_VERSION"].as_str().unwrap()) {
        problems.push(format!("HELM_VERSION {} but tests/kube/helm/go.mod pins {helm_pin}", env["HELM_VERSION"]));
    }
    let rust = env["RUST_TOOLCHAIN"].as_str().unwrap();
    if !read("Dockerfile").contains(&format!("FROM rust:{rust}-")) {
        problems.push(format!("RUST_TOOLCHAIN {rust} is not the Dockerfile's rust image"));
    }
    assert!(problems.is_empty(), "{WORKFLOW}:\n  {}", problems.join("\n  "));
}

#[test]
fn the_workflow_signs_attests_and_publishes_what_it_builds() {
    let wf = workflow();
    assert_eq!(wf["on"]["push"]["tags"][0], "v*.*.*", "released on version tags");
    assert_eq!(wf["permissions"], serde_json::json!({}), "no permission by default; each job asks for its own");
    let run = scripts(&wf);
    let jobs = wf["jobs"].as_object().unwrap();
    let arches: BTreeSet<&str> = jobs["image"]["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["arch"].as_str().unwrap())
        .collect();
    assert_eq!(arches, BTreeSet::from(["amd64", "arm64"]), "multi-arch images");
    for (job, body) in jobs {
        let script: String = body["steps"].as_array().unwrap().iter().filter_map(|s| s["run"].as_str()).collect();
        let perms = &body["permissions"];
        if script.contains("cosign sign") || script.contains("cosign attest") {
            assert_eq!(perms["id-token"], "write", "job {job} signs keylessly: it needs the OIDC token");
        } else {
            assert!(perms.get("id-token").is_none(), "job {job} signs nothing and must not get an OIDC token");
        }
        if script.contains("push") && !script.contains("gh release") {
            assert_eq!(perms["packages"], "write", "job {job} pushes to the registry");
        }
    }
    for needle in [
        "make image CARGO=\"cargo auditable\"",
        "crane\" index append",
        "cosign sign --yes \"$IMAGE@$DIGEST\"",
        "cosign attest --yes --type spdxjson",
        "syft scan",
        "helm push",
        "cosign sign --yes \"${CHARTS#oci://}/samlcred@$digest\"",
        "gh release create",
    ] {
        assert!(run.contains(needle), "the release workflow lacks {needle:?}");
    }
    assert!(wf["env"]["CHARTS"].as_str().unwrap().starts_with("oci://"), "the chart goes out as an OCI artifact");
}

fn annotation(chart: &Value, key: &str) -> Value {
    let text = chart["annotations"][format!("artifacthub.io/{key}")]
        .as_str()
        .unwrap_or_else(|| panic!("Chart.yaml has no artifacthub.io/{key}"));
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("artifacthub.io/{key} is not YAML: {e}"))
}

#[test]
fn artifact_hub_annotations_agree_with_the_chart_and_the_changelog() {
    let chart = yaml("charts/samlcred/Chart.yaml");
    let values = yaml("charts/samlcred/values.yaml");
    let version = chart["version"].as_str().unwrap();
    let app_version = chart["appVersion"].as_str().unwrap();
    assert_eq!(chart["annotations"]["artifacthub.io/license"], env!("CARGO_PKG_LICENSE"));
    assert_eq!(chart["annotations"]["artifacthub.io/operator"], "true");
    let levels = ["Basic Install", "Seamless Upgrades", "Full Lifecycle", "Deep Insights", "Auto Pilot"];
    assert!(levels.contains(&chart["annotations"]["artifacthub.io/operatorCapabilities"].as_str().unwrap()));

    let images = annotation(&chart, "images");
    let image = format!("{}:{app_version}", values["image"]["repository"].as_str().unwrap());
    assert_eq!(images[0]["image"], image.as_str(), "the image the chart deploys by default");

    let crds = annotation(&chart, "crds");
    let ours =
        [samlcred::api::OktaOrg::crd(), samlcred::api::ClusterOktaOrg::crd(), samlcred::api::SamlAppCredential::crd()];
    let described: BTreeSet<(String, String, String)> = crds
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().into(),
                c["name"].as_str().unwrap().into(),
                c["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    let defined: BTreeSet<(String, String, String)> = ours
        .iter()
        .map(|c| (c.spec.names.kind.clone(), c.metadata.name.clone().unwrap(), c.spec.versions[0].name.clone()))
        .collect();
    assert_eq!(described, defined, "artifacthub.io/crds lists the chart's CRDs");
    for crd in crds.as_array().unwrap() {
        assert!(
            !crd["displayName"].as_str().unwrap_or("").is_empty()
                && !crd["description"].as_str().unwrap_or("").is_empty()
        );
    }
    let examples = annotation(&chart, "crdsExamples");
    let kinds: BTreeSet<&str> = examples.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, defined.iter().map(|(k, _, _)| k.as_str()).collect(), "one example per CRD");

    let changes = annotation(&chart, "changes");
    let kinds = ["added", "changed", "deprecated", "removed", "fixed", "security"];
    for change in changes.as_array().unwrap() {
        assert!(kinds.contains(&change["kind"].as_str().unwrap()), "artifacthub.io/changes kind: {change}");
        assert!(!change["description"].as_str().unwrap().is_empty());
    }
    let links = annotation(&chart, "links");
    for link in links.as_array().unwrap() {
        let url = link["url"].as_str().unwrap();
        if let Some(path) = url.split_once("/blob/main/").map(|(_, p)| p) {
            assert!(Path::new(ROOT).join(path).exists(), "link {url}: no {path} in the repository");
        }
    }

    let changelog = read("CHANGELOG.md");
    assert!(changelog.lines().any(|l| l == format!("## [{version}]")), "CHANGELOG.md has no section for {version}");
    assert!(changelog.lines().any(|l| l == "## [Unreleased]"), "Keep a Changelog's Unreleased section");
    assert_eq!(version, app_version, "chart and operator are released together");
}

/// The examples Artifact Hub shows are accepted by the CRDs (schema and CEL) on a real API server.
#[tokio::test]
async fn the_crd_examples_pass_a_server_side_dry_run() {
    support::install_crds().await;
    let client = testenv::client().await.unwrap();
    let ns = testenv::TestNamespace::create(&client, "artifacthub").await.unwrap();
    let examples = annotation(&yaml("charts/samlcred/Chart.yaml"), "crdsExamples");
    for example in examples.as_array().unwrap() {
        let mut object = example.clone();
        let gvk = GroupVersionKind::try_from(&kube::api::TypeMeta {
            api_version: object["apiVersion"].as_str().unwrap().into(),
            kind: object["kind"].as_str().unwrap().into(),
        })
        .unwrap();
        let (resource, caps) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            object["metadata"]["namespace"] = ns.name.clone().into();
            Api::namespaced_with(client.clone(), &ns.name, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        let obj: DynamicObject = serde_json::from_value(object).unwrap();
        api.create(&PostParams { dry_run: true, ..Default::default() }, &obj)
            .await
            .unwrap_or_else(|e| panic!("the {} example is refused: {e}", gvk.kind));
    }
}
