//! End-to-end support: the real API server (testenv), the Okta simulator in-process, the CRDs from
//! `crds/`, and the operator as a real `samlcred controller` process scoped to the test's namespace.
#![allow(dead_code)]

pub mod chaos;
pub mod leader;
pub mod secret_scan;
pub mod sp_probe;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use okta_sim::{OAuthClient, OktaSim, SeedApp, SeedKey, SeededApp, SimConfig};
use samlcred::api::SamlAppCredential;
use serde_json::{Value, json};
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testenv::TestNamespace;
use tokio::sync::OnceCell;

pub const TOKEN: &str = "e2e-api-token";

/// One test's world: a namespace with an OktaOrg `acme` that points at a fresh simulator.
pub struct World {
    pub client: kube::Client,
    pub ns: TestNamespace,
    pub sim: OktaSim,
}

/// Installs `crds/` once per test binary and waits until they are served.
pub async fn install_crds() {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            let crds_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
            let out = testenv::shared()
                .kubectl()
                .args(["apply", "--server-side", "--field-manager=e2e", "-f", crds_dir])
                .output()
                .unwrap();
            assert!(out.status.success(), "kubectl apply crds/: {}", String::from_utf8_lossy(&out.stderr));
            let out = testenv::shared()
                .kubectl()
                .args(["wait", "--for=condition=Established", "--timeout=60s"])
                .args([
                    "crd/samlappcredentials.samlcred.io",
                    "crd/oktaorgs.samlcred.io",
                    "crd/clusteroktaorgs.samlcred.io",
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "CRDs not Established: {}", String::from_utf8_lossy(&out.stderr));
        })
        .await;
}

impl World {
    pub async fn new(prefix: &str) -> World {
        World::with_sim(prefix, SimConfig::default()).await
    }

    /// A world whose simulator runs with `config` (for example lifted rate limits).
    pub async fn with_sim(prefix: &str, config: SimConfig) -> World {
        samlcred::okta::install_crypto_provider();
        let client = testenv::client().await.unwrap();
        install_crds().await;
        let ns = TestNamespace::create(&client, prefix).await.unwrap();
        let sim = OktaSim::start(config).await.unwrap();
        sim.add_api_token(TOKEN);
        let world = World { client, ns, sim };
        world
            .apply(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "okta-token"},
                "stringData": {"token": TOKEN}
            }))
            .await;
        world
            .apply(json!({
                "apiVersion": "samlcred.io/v1alpha1", "kind": "OktaOrg",
                "metadata": {"name": "acme"},
                "spec": {"url": world.sim.base_url(), "auth": {"apiToken": {"secretRef": {"name": "okta-token", "key": "token"}}}}
            }))
            .await;
        world
    }

    /// Creates an object in the test namespace (any kind, from JSON).
    pub async fn apply(&self, object: Value) {
        let gvk = kube::api::GroupVersionKind::try_from(&kube::api::TypeMeta {
            api_version: object["apiVersion"].as_str().unwrap().into(),
            kind: object["kind"].as_str().unwrap().into(),
        })
        .unwrap();
        let (resource, _) = kube::discovery::pinned_kind(&self.client, &gvk).await.unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns.name, &resource);
        let obj: DynamicObject = serde_json::from_value(object).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
    }

    /// Seeds a SAML app whose active key expires `expires_in` from now.
    pub fn seed_app(&self, expires_in: SignedDuration) -> SeededApp {
        let now = Timestamp::now();
        self.sim.seed_app(SeedApp {
            id: None,
            label: "e2e app".into(),
            keys: vec![SeedKey { not_before: now - SignedDuration::from_hours(24 * 300), not_after: now + expires_in }],
            active: 0,
        })
    }

    /// Creates a SamlAppCredential for `app_id`; `spec` is merged over a minimal valid spec.
    pub async fn create_credential(&self, name: &str, app_id: &str, spec: Value) {
        let mut full = json!({"orgRef": {"name": "acme"}, "appId": app_id, "secretName": format!("{name}-idp")});
        merge(&mut full, spec);
        self.apply(json!({"apiVersion": "samlcred.io/v1alpha1", "kind": "SamlAppCredential", "metadata": {"name": name}, "spec": full}))
            .await;
    }

    pub fn credentials(&self) -> Api<SamlAppCredential> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    pub async fn credential(&self, name: &str) -> SamlAppCredential {
        self.credentials().get(name).await.unwrap()
    }

    /// An OktaOrg `name` that signs in as OAuth service app `client_id` (private_key_jwt with an EC
    /// key held in Secret `okta-svc-key`, DPoP required), registered with the simulator.
    pub async fn add_oauth_org(&self, name: &str, client_id: &str) {
        let (pem, jwk) = ec_key();
        let scopes = vec!["okta.apps.read".into(), "okta.apps.manage".into()];
        self.sim.add_oauth_client(OAuthClient {
            client_id: client_id.into(),
            public_jwk: jwk,
            scopes,
            require_dpop: true,
        });
        self.apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "okta-svc-key"}, "stringData": {"private.pem": pem}}))
            .await;
        self.apply(json!({
            "apiVersion": "samlcred.io/v1alpha1", "kind": "OktaOrg",
            "metadata": {"name": name},
            "spec": {"url": self.sim.base_url(), "auth": {"oauth": {
                "clientId": client_id,
                "privateKeySecretRef": {"name": "okta-svc-key", "key": "private.pem"}
            }}}
        }))
        .await;
    }

    /// Sets an annotation on a credential.
    pub async fn annotate(&self, name: &str, key: &str, value: &str) {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        self.credentials().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    /// Starts `samlcred controller` watching only this test's namespace.
    pub fn start_controller(&self, envs: &[(&str, &str)]) -> ControllerProcess {
        ControllerProcess::start(&self.ns.name, envs)
    }

    /// How many keys the operator asked Okta to generate for `app_id`.
    pub fn generate_calls(&self, app_id: &str) -> usize {
        let path = format!("/api/v1/apps/{app_id}/credentials/keys/generate");
        self.sim.calls().iter().filter(|c| c.method == "POST" && c.path == path && c.status == 201).count()
    }

    /// Number of Okta calls that write (generate, clone, PUT app).
    pub fn okta_writes(&self) -> usize {
        self.sim.calls().iter().filter(|c| c.method != "GET").count()
    }
}

impl Drop for World {
    /// Every test's last check: no secret in what the operator printed or recorded (issue 13).
    fn drop(&mut self) {
        secret_scan::at_teardown(self);
    }
}

fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (k, v) in overlay {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// A running `samlcred controller`; killed when dropped, after its `/metrics` are saved beside its
/// log (for the secret scan).
pub struct ControllerProcess {
    child: Child,
    pub log: std::path::PathBuf,
    /// Where it serves `/metrics` (`127.0.0.1:<port>`).
    pub metrics_addr: String,
}

impl ControllerProcess {
    pub fn start(namespace: &str, envs: &[(&str, &str)]) -> ControllerProcess {
        Self::start_with(&[namespace], &[], envs)
    }

    /// Starts a controller watching `namespaces` (comma-joined), with extra flags and environment.
    pub fn start_with(namespaces: &[&str], args: &[&str], envs: &[(&str, &str)]) -> ControllerProcess {
        let namespace = namespaces.join(",");
        let plane = testenv::shared();
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = plane.dir().join(format!("controller-{}-{n}.log", namespaces[0]));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_samlcred"));
        cmd.args(["controller", "--allow-insecure-okta-http", "--log-format=text", "--log-level=info,samlcred=debug"])
            .arg(format!("--namespaces={namespace}"))
            .args(args)
            .env("KUBECONFIG", plane.kubeconfig())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let metrics_flag = "--metrics-bind-address=";
        let metrics_addr = match args.iter().find_map(|a| a.strip_prefix(metrics_flag)) {
            Some(addr) => addr.to_string(),
            None => {
                let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
                cmd.arg(format!("{metrics_flag}127.0.0.1:{port}"));
                format!("127.0.0.1:{port}")
            }
        };
        if !args.iter().any(|a| a.starts_with("--health-bind-address")) {
            cmd.arg("--health-bind-address=127.0.0.1:0");
        }
        // The admission webhook only where a test asks for it (tests/operator_webhook.rs).
        if !args.iter().any(|a| a.starts_with("--webhook-bind-address")) {
            cmd.arg("--webhook-bind-address=");
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        ControllerProcess { child: cmd.spawn().unwrap(), log, metrics_addr }
    }

    /// Its `/metrics` text, read with a plain bounded HTTP/1.0 GET (also from a Drop, outside any
    /// runtime); `None` when it does not answer.
    pub fn metrics_text(&self) -> Option<String> {
        use std::io::{Read, Write};
        let addr: std::net::SocketAddr = self.metrics_addr.parse().ok()?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut answer = String::new();
        stream.take(16 << 20).read_to_string(&mut answer).ok()?;
        let (_, body) = answer.split_once("\r\n\r\n")?;
        Some(body.to_string())
    }

    /// Saves its `/metrics` beside its log, where the secret scan reads them.
    pub fn save_metrics(&self) {
        if let Some(text) = self.metrics_text() {
            let _ = std::fs::write(self.log.with_extension("metrics"), text);
        }
    }

    /// The sum of `samlcred_okta_requests_total` over every endpoint and status: how many requests
    /// it sent to Okta, answered or not.
    pub fn okta_requests(&self) -> f64 {
        let text = self.metrics_text().unwrap_or_default();
        let lines = text.lines().filter(|l| l.starts_with("samlcred_okta_requests_total{"));
        lines.filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    /// Waits for the process to exit by itself (a failpoint); returns its exit code.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                panic!("controller did not exit within {timeout:?}; log {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks it to stop (SIGTERM), as Kubernetes does when it deletes a pod.
    pub fn terminate(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Kills it (SIGKILL), as a node failure would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id, for signals (SIGSTOP/SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if self.running() {
            self.save_metrics();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            testenv::mark_failed();
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of one condition of a credential: (status, reason, message).
pub fn condition(credential: &SamlAppCredential, type_: &str) -> Option<(String, String, String)> {
    let status = credential.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The kids listed in the Secret's jwks.json (every certificate it publishes).
pub fn secret_kids(secret: &Secret) -> Vec<String> {
    let Some(jwks) = secret.data.as_ref().and_then(|d| d.get("jwks.json")) else { return vec![] };
    let value: Value = serde_json::from_slice(&jwks.0).unwrap_or_default();
    value["keys"].as_array().into_iter().flatten().filter_map(|k| k["kid"].as_str().map(str::to_string)).collect()
}

/// The DER certificates of the Secret's `jwks.json` (`x5c[0]`), in bundle order.
pub fn secret_certificates(secret: &Secret) -> Vec<Vec<u8>> {
    use base64::Engine;
    let Some(jwks) = secret.data.as_ref().and_then(|d| d.get("jwks.json")) else { return vec![] };
    let value: Value = serde_json::from_slice(&jwks.0).unwrap_or_default();
    let x5c = value["keys"].as_array().into_iter().flatten().filter_map(|k| k["x5c"][0].as_str());
    x5c.map(|c| base64::engine::general_purpose::STANDARD.decode(c).unwrap()).collect()
}

/// A data key of the Secret as text.
pub fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// Events recorded for a credential, as (type, reason, note).
pub async fn events(world: &World, name: &str) -> Vec<(String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(world.client.clone(), &world.ns.name);
    let list = api.list(&Default::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Waits for the Ready condition of an org (`kind` OktaOrg with `ns`, or ClusterOktaOrg).
pub async fn org_ready(world: &World, kind: &str, name: &str, ns: Option<&str>) -> (String, String, String) {
    let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("samlcred.io", "v1alpha1", kind));
    let api: kube::Api<kube::api::DynamicObject> = match ns {
        Some(ns) => kube::Api::namespaced_with(world.client.clone(), ns, &resource),
        None => kube::Api::all_with(world.client.clone(), &resource),
    };
    wait_for(&format!("{kind} {name} to have a Ready condition"), Duration::from_secs(90), || async {
        let org = api.get(name).await.ok()?;
        let ready = org.data["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
        Some((ready["status"].as_str()?.into(), ready["reason"].as_str()?.into(), ready["message"].as_str()?.into()))
    })
    .await
}

/// An EC P-256 key: its PKCS#8 PEM (for the Secret) and its public JWK (for Okta's app registration).
pub fn ec_key() -> (String, serde_json::Value) {
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw();
    let b64 = |bytes: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])});
    (key.serialize_pem(), jwk)
}

/// The API groups of everything the controller touches, Leases aside.
pub const WORK_GROUPS: &[&str] = &["", "samlcred.io", "events.k8s.io", "apps"];

impl World {
    /// A ServiceAccount `name` with every right on the API `groups`, its Lease rights in a
    /// RoleBinding `lease-<name>` of their own (so a test can pull them), and a kubeconfig holding
    /// its token.
    pub fn identity_kubeconfig(&self, name: &str, groups: &[&str]) -> std::path::PathBuf {
        let ns = &self.ns.name;
        let dir = testenv::shared().dir().join(format!("identities-{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        let groups = serde_json::to_string(groups).unwrap();
        let manifest = format!(
            r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {ns}-{name}-work}}
rules:
- apiGroups: {groups}
  resources: ["*"]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-{name}-work}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {ns}-{name}-work}}
subjects: [{{kind: ServiceAccount, name: {name}, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: lease-{name}, namespace: {ns}}}
rules:
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: lease-{name}, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: lease-{name}}}
subjects: [{{kind: ServiceAccount, name: {name}, namespace: {ns}}}]
"#
        );
        let plane = testenv::shared();
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, manifest).unwrap();
        let out = plane.kubectl().args(["apply", "-f"]).arg(&file).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = plane.kubectl().args(["create", "token", name, "-n", ns, "--duration=30m"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        std::fs::copy(plane.kubeconfig(), &kubeconfig).unwrap();
        for args in [
            vec!["config", "set-credentials", name, &format!("--token={token}")],
            vec!["config", "set-context", "--current", &format!("--user={name}")],
        ] {
            let out = plane.kubectl().env("KUBECONFIG", &kubeconfig).args(args).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        kubeconfig
    }
}
