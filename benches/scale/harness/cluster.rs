//! The control plane of one run: testenv's etcd + kube-apiserver with an audit policy that records
//! the requests of the two measured identities (and the harness's own markers), the CRDs, and a
//! ServiceAccount with a kubeconfig per identity.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use samlcred::api::{ClusterOktaOrg, OktaOrg, SamlAppCredential};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testenv::{ControlPlane, Options};

/// Where ClusterOktaOrg Secrets and the identities live (the controller's default).
pub const SYSTEM_NAMESPACE: &str = "samlcred-system";
/// The operator's identity, and the floor client's.
pub const CONTROLLER_USER: &str = "samlcred-controller";
pub const FLOOR_USER: &str = "samlcred-floor";
/// The admin's ConfigMap reads in this namespace are audited: they mark a point in the log.
pub const MARKER_PREFIX: &str = "audit-marker-";

/// The audit username of a ServiceAccount of [`SYSTEM_NAMESPACE`].
pub fn service_account_user(name: &str) -> String {
    format!("system:serviceaccount:{SYSTEM_NAMESPACE}:{name}")
}

fn audit_policy() -> String {
    let users = json!([service_account_user(CONTROLLER_USER), service_account_user(FLOOR_USER)]);
    // Metadata only (no bodies); one event per request (ResponseComplete, or ResponseStarted for a
    // watch). The harness's own traffic (the admin) is not logged, except its markers.
    format!(
        r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: {users}
- level: Metadata
  users: ["samlcred-testenv-admin"]
  namespaces: ["{SYSTEM_NAMESPACE}"]
  resources: [{{group: "", resources: ["configmaps"]}}]
- level: None
"#
    )
}

/// Starts the control plane in `dir` (etcd's data is wiped first) on a thread that lives as long
/// as the process: its children die with the thread that started them (PR_SET_PDEATHSIG).
pub fn start_control_plane(dir: &Path) -> Result<&'static ControlPlane> {
    std::fs::create_dir_all(dir)?;
    let options = Options {
        dir: Some(dir.to_path_buf()),
        // Nothing here needs garbage collection or namespace deletion; it would only take CPU.
        controller_manager: false,
        audit_policy: Some(audit_policy()),
        // 10,000 unrelated 100 KiB Secrets are 1 GiB; etcd's default quota is 2 GiB.
        etcd_quota_bytes: Some(8 << 30),
        ..Options::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new().name("scale-control-plane".into()).spawn(move || {
        let _ = tx.send(ControlPlane::start(options).map(|plane| &*Box::leak(Box::new(plane))));
        loop {
            std::thread::park();
        }
    })?;
    rx.recv().context("the control-plane thread died")?
}

/// An admin client, and what the run needs installed.
pub struct Cluster {
    pub plane: &'static ControlPlane,
    pub admin: kube::Client,
}

impl Cluster {
    pub async fn connect(plane: &'static ControlPlane) -> Result<Cluster> {
        let admin = testenv::client_for(plane).await?;
        let cluster = Cluster { plane, admin };
        cluster.install_crds().await?;
        cluster.namespace(SYSTEM_NAMESPACE, &[]).await?;
        Ok(cluster)
    }

    pub fn audit_log(&self) -> PathBuf {
        self.plane.audit_log().expect("the harness always starts the API server with an audit policy").to_path_buf()
    }

    async fn install_crds(&self) -> Result<()> {
        let api: Api<CustomResourceDefinition> = Api::all(self.admin.clone());
        for crd in [OktaOrg::crd(), ClusterOktaOrg::crd(), SamlAppCredential::crd()] {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.create(&PostParams::default(), &crd).await.with_context(|| format!("creating CRD {name}"))?;
            let established = kube::runtime::wait::conditions::is_crd_established();
            let wait = kube::runtime::wait::await_condition(api.clone(), &name, established);
            tokio::time::timeout(Duration::from_secs(60), wait)
                .await
                .with_context(|| format!("CRD {name} not Established within 60 s"))??;
        }
        // Established CRDs are served a moment later; the first create would otherwise meet a 404.
        let api: Api<SamlAppCredential> = Api::all(self.admin.clone());
        super::poll("SamlAppCredentials to be served", Duration::from_secs(30), || async {
            api.list(&Default::default()).await.ok().map(|_| ())
        })
        .await
    }

    /// Creates a namespace with `labels`.
    pub async fn namespace(&self, name: &str, labels: &[(&str, &str)]) -> Result<()> {
        let labels: serde_json::Map<String, serde_json::Value> =
            labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))?;
        Api::<Namespace>::all(self.admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(())
    }

    /// A ServiceAccount `name` in [`SYSTEM_NAMESPACE`] with every right on the API groups samlcred
    /// uses, cluster-wide (as the chart's cluster-wide RBAC, widened: the benchmark counts requests,
    /// it does not test RBAC), and a kubeconfig holding a token for it.
    pub async fn identity(&self, name: &str) -> Result<PathBuf> {
        let create = PostParams::default();
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": SYSTEM_NAMESPACE}}))?;
        Api::<ServiceAccount>::namespaced(self.admin.clone(), SYSTEM_NAMESPACE).create(&create, &sa).await?;
        let role: ClusterRole = serde_json::from_value(json!({
            "metadata": {"name": format!("scale-{name}")},
            "rules": [{"apiGroups": ["", "samlcred.io", "events.k8s.io", "apps", "coordination.k8s.io"],
                       "resources": ["*"], "verbs": ["*"]}]
        }))?;
        Api::<ClusterRole>::all(self.admin.clone()).create(&create, &role).await?;
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": format!("scale-{name}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("scale-{name}")},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": SYSTEM_NAMESPACE}]
        }))?;
        Api::<ClusterRoleBinding>::all(self.admin.clone()).create(&create, &binding).await?;

        let request = serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 12 * 3600}}))?;
        let token = Api::<ServiceAccount>::namespaced(self.admin.clone(), SYSTEM_NAMESPACE)
            .create_token_request(name, &create, &request)
            .await?
            .status
            .context("the TokenRequest has no status")?
            .token;
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "testenv", "cluster": {
                "server": self.plane.server(),
                "certificate-authority": self.plane.dir().join("ca.crt"),
            }}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": "testenv", "user": name, "namespace": "default"}}],
            "current-context": name,
        });
        let path = self.plane.dir().join(format!("{name}.kubeconfig"));
        // JSON is YAML; the file holds a token, so only its owner may read it.
        std::fs::write(&path, serde_json::to_vec_pretty(&kubeconfig)?)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(path)
    }
}

/// A client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Result<kube::Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}
