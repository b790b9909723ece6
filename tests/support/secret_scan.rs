//! Secret hygiene over the whole suite (issue 13, part 6). When a [`World`] ends, everything the
//! operator printed in its namespace (every controller log, and the `/metrics` each controller
//! served when it was stopped), every Event and every status there is searched for the secrets the
//! test used: the API tokens, access tokens, client assertions and DPoP proofs the simulator was
//! presented, and the private keys (PEM and JWK) of the namespace's Secrets. Any hit fails the test.

use super::World;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

/// Shorter strings than this are not searched for: they could match by chance.
const MIN_NEEDLE: usize = 8;

/// What a scan looked at and found.
#[derive(Debug, Default)]
pub struct Scan {
    pub secrets: usize,
    pub bytes: usize,
    pub hits: Vec<String>,
}

/// The needles of a secret: a JWT is matched by its signature alone (enough to reuse nothing, and
/// what a partial print would show), a PEM by each base64 line of its body.
fn needles(secret: &str) -> Vec<String> {
    if secret.contains("-----BEGIN") {
        return secret
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= MIN_NEEDLE)
            .map(str::to_string)
            .collect();
    }
    let tail = secret.rsplit('.').next().unwrap_or(secret);
    if tail.len() >= MIN_NEEDLE { vec![tail.to_string()] } else { vec![secret.to_string()] }
}

/// The private keys held in the namespace's Secrets: PEM bodies, and the private members of JWKs.
async fn private_keys(client: &kube::Client, ns: &str) -> Vec<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut found = Vec::new();
    for secret in secrets.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
        for value in secret.data.unwrap_or_default().into_values() {
            let text = String::from_utf8_lossy(&value.0).into_owned();
            if text.contains("PRIVATE KEY-----") {
                found.push(text);
            } else if let Ok(Value::Object(jwk)) = serde_json::from_str::<Value>(&text) {
                for member in ["d", "p", "q", "dp", "dq", "qi"] {
                    found.extend(jwk.get(member).and_then(Value::as_str).map(str::to_string));
                }
            }
        }
    }
    found
}

/// Events and the statuses of the samlcred objects of the namespace (and of the ClusterOktaOrgs), as JSON.
async fn cluster_text(client: &kube::Client, ns: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    for event in events.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
        texts.push(serde_json::to_string(&event).unwrap());
    }
    for kind in ["SamlAppCredential", "OktaOrg"] {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("samlcred.io", "v1alpha1", kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        for object in api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
            texts.push(object.data["status"].to_string());
        }
    }
    // Cluster-scoped orgs: every test's (the others' hold other secrets, and cannot cause a hit).
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("samlcred.io", "v1alpha1", "ClusterOktaOrg"));
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    for object in api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
        texts.push(object.data["status"].to_string());
    }
    texts
}

/// What the controllers of the namespace printed: their logs, and the metrics saved at their stop.
fn printed(ns: &str) -> Vec<String> {
    let dir = testenv::shared().dir();
    let prefix = format!("controller-{ns}-");
    let entries = std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).collect::<Vec<_>>()).unwrap_or_default();
    entries
        .into_iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// Scans what the operator printed in namespace `ns`, its Events and statuses for `presented` (what
/// the simulator was presented), the API token, the namespace's private keys and `extra`.
pub async fn scan(client: &kube::Client, ns: &str, presented: Vec<String>, extra: &[String]) -> Scan {
    let mut secrets = presented;
    secrets.push(super::TOKEN.to_string());
    secrets.extend(private_keys(client, ns).await);
    secrets.extend(extra.iter().cloned());
    let mut haystacks = printed(ns);
    haystacks.extend(cluster_text(client, ns).await);
    let mut scan = Scan { secrets: secrets.len(), bytes: haystacks.iter().map(String::len).sum(), hits: Vec::new() };
    for secret in &secrets {
        for needle in needles(secret) {
            if haystacks.iter().any(|h| h.contains(&needle)) {
                // Say where, never what: the first characters only.
                scan.hits.push(format!("{}... ({} chars)", &needle[..4.min(needle.len())], needle.len()));
            }
        }
    }
    scan
}

/// Scans and fails on any hit, printing the figures: `secret scan: <what> secrets=.. bytes=.. hits=0`.
pub async fn assert_clean(world: &World, what: &str, extra: &[String]) -> Scan {
    checked(scan(&world.client, &world.ns.name, world.sim.presented_secrets(), extra).await, what)
}

/// The same, for a test that runs the operator in namespace `ns` without a [`World`].
pub async fn assert_clean_in(client: &kube::Client, ns: &str, presented: Vec<String>, extra: &[String]) -> Scan {
    checked(scan(client, ns, presented, extra).await, &format!("of {ns}"))
}

fn checked(scan: Scan, what: &str) -> Scan {
    println!("secret scan {what}: secrets={} bytes_scanned={} hits={}", scan.secrets, scan.bytes, scan.hits.len());
    assert!(scan.hits.is_empty(), "{what}: secrets found in what the operator printed or recorded: {:?}", scan.hits);
    assert!(scan.bytes > 0, "{what}: nothing was scanned");
    scan
}

/// The scan a [`World`] runs when it ends: on a thread of its own with its own runtime and client
/// (a Drop cannot wait on the test's runtime). Skipped when the test is failing already.
pub fn at_teardown(world: &World) {
    if std::thread::panicking() {
        return;
    }
    let (ns, presented) = (world.ns.name.clone(), world.sim.presented_secrets());
    let result = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let client = testenv::client().await.unwrap();
            checked(scan(&client, &ns, presented, &[]).await, &format!("at teardown of {ns}"))
        })
    })
    .join();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
