//! From an `orgRef` to a ready Okta client: reads the OktaOrg or ClusterOktaOrg and its Secrets,
//! enforces a ClusterOktaOrg's namespaceSelector, and keeps one client per org (its token cache and
//! rate-limit state must be shared by every credential of that org) until the org or its Secrets change.

use super::cache::Caches;
use crate::api::{self, ClusterOktaOrg, OktaAuth, OktaOrg, OktaOrgSpec, OrgKind, OrgRef, SecretKeyRef};
use crate::okta::{self, Auth, MetricsHook, OktaClient, OrgConfig, PrivateKey, RateLimiter, WriteFence};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;
use secrecy::SecretString;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Why an org cannot be used. Messages name the object and field at fault and never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("ClusterOktaOrg {name} does not allow namespace {namespace} (spec.namespaceSelector)")]
    NotAllowed { name: String, namespace: String },
    #[error("ClusterOktaOrg {name} does not let namespace {namespace} manage app {app_id} (spec.apps)")]
    AppNotAllowed { name: String, namespace: String, app_id: String },
    #[error("{0}")]
    InvalidSpec(String),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Where an org lives and where its Secrets are read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgKey {
    pub kind: OrgKind,
    /// The OktaOrg's namespace; `None` for a ClusterOktaOrg.
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for OrgKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "OktaOrg {ns}/{}", self.name),
            None => write!(f, "ClusterOktaOrg {}", self.name),
        }
    }
}

/// What the operator needs to know to talk to orgs.
#[derive(Clone)]
pub struct OrgSettings {
    /// Where a ClusterOktaOrg's Secrets live.
    pub cluster_resource_namespace: String,
    pub allow_insecure_http: bool,
    pub metrics: Option<Arc<dyn MetricsHook>>,
    /// The leader-election fence every Okta write passes (see `runtime::leader`).
    pub fence: Option<Arc<dyn WriteFence>>,
}

/// The cache of clients, keyed by org and invalidated by a change of the org or of its Secrets.
pub struct OrgClients {
    kube: kube::Client,
    settings: OrgSettings,
    clients: Mutex<HashMap<OrgKey, (String, Arc<OktaClient>)>>,
    /// One rate limiter per Okta org (by URL origin), whichever org objects name it, kept across
    /// client rebuilds: Okta counts the org's requests, so maxShare must hold across them all.
    limiters: Mutex<HashMap<String, Arc<RateLimiter>>>,
    /// The Okta org (URL origin) each org object named when its client was last built.
    origins: Mutex<HashMap<OrgKey, String>>,
    caches: Option<Caches>,
}

impl OrgClients {
    pub fn new(kube: kube::Client, settings: OrgSettings) -> OrgClients {
        OrgClients {
            kube,
            settings,
            clients: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            origins: Mutex::new(HashMap::new()),
            caches: None,
        }
    }

    /// The org a credential in `namespace` for `app_id` refers to, checked against a
    /// ClusterOktaOrg's namespaceSelector and apps.
    pub async fn for_credential(
        &self,
        namespace: &str,
        org_ref: &OrgRef,
        app_id: &str,
    ) -> Result<(OrgKey, Arc<OktaClient>), OrgError> {
        let key = match org_ref.kind {
            OrgKind::OktaOrg => {
                OrgKey { kind: OrgKind::OktaOrg, namespace: Some(namespace.to_string()), name: org_ref.name.clone() }
            }
            OrgKind::ClusterOktaOrg => {
                OrgKey { kind: OrgKind::ClusterOktaOrg, namespace: None, name: org_ref.name.clone() }
            }
        };
        let client = self.client(&key, Some((namespace, app_id))).await?;
        Ok((key, client))
    }

    /// The client of one org. With `for_credential` (namespace, app ID), a ClusterOktaOrg must
    /// allow that namespace and that app.
    pub async fn client(
        &self,
        key: &OrgKey,
        for_credential: Option<(&str, &str)>,
    ) -> Result<Arc<OktaClient>, OrgError> {
        let (spec, fingerprint_of_org, secrets_namespace) = match &key.namespace {
            Some(ns) => {
                let org = self
                    .okta_org(ns, &key.name)
                    .await?
                    .ok_or_else(|| OrgError::NotFound { kind: "OktaOrg", name: format!("{ns}/{}", key.name) })?;
                (org.spec.clone(), fingerprint(&org.metadata), ns.clone())
            }
            None => {
                let org = self
                    .cluster_org(&key.name)
                    .await?
                    .ok_or_else(|| OrgError::NotFound { kind: "ClusterOktaOrg", name: key.name.clone() })?;
                if let Some((namespace, app_id)) = for_credential {
                    self.check_allowed(&key.name, &org.spec, namespace, app_id).await?;
                }
                (org.spec.org.clone(), fingerprint(&org.metadata), self.settings.cluster_resource_namespace.clone())
            }
        };
        // The watched Secrets' resourceVersions say whether the cached client is still right, so
        // the Secrets' data is read only when one changed.
        if let Some(versions) = self.cached_versions(&secrets_namespace, &spec.auth)
            && let Some((seen, client)) = self.clients.lock().unwrap().get(key)
            && *seen == format!("{fingerprint_of_org}/{versions}")
        {
            return Ok(client.clone());
        }
        let secrets: Api<Secret> = Api::namespaced(self.kube.clone(), &secrets_namespace);
        let (auth, secrets_fingerprint) = read_auth(&secrets, &spec.auth, self.caches.as_ref()).await?;
        let fingerprint = format!("{fingerprint_of_org}/{secrets_fingerprint}");
        if let Some((seen, client)) = self.clients.lock().unwrap().get(key)
            && *seen == fingerprint
        {
            return Ok(client.clone());
        }
        let client = Arc::new(self.build(&spec, auth)?);
        self.origins.lock().unwrap().insert(key.clone(), origin(client.base_url()));
        self.clients.lock().unwrap().insert(key.clone(), (fingerprint, client.clone()));
        Ok(client)
    }

    /// Observe from the caches when the controller has them (the CLI reads the API instead).
    pub fn use_caches(&mut self, caches: Caches) {
        self.caches = Some(caches);
    }

    /// From the cache; a miss is asked of the API server (the org may be newer than the cache,
    /// and a missing org is an error worth being sure of).
    async fn okta_org(&self, namespace: &str, name: &str) -> Result<Option<OktaOrg>, kube::Error> {
        if let Some(org) = self.caches.as_ref().and_then(|caches| caches.okta_org(namespace, name)) {
            return Ok(Some((*org).clone()));
        }
        Api::<OktaOrg>::namespaced(self.kube.clone(), namespace).get_opt(name).await
    }

    async fn cluster_org(&self, name: &str) -> Result<Option<ClusterOktaOrg>, kube::Error> {
        if let Some(org) = self.caches.as_ref().and_then(|caches| caches.cluster_org(name)) {
            return Ok(Some((*org).clone()));
        }
        Api::<ClusterOktaOrg>::all(self.kube.clone()).get_opt(name).await
    }

    async fn namespace_labels(&self, namespace: &str) -> Result<BTreeMap<String, String>, kube::Error> {
        if let Some(caches) = &self.caches
            && let Some(labels) = caches.namespace_labels(namespace)
        {
            return Ok(labels);
        }
        let ns = Api::<Namespace>::all(self.kube.clone()).get(namespace).await?;
        Ok(ns.metadata.labels.unwrap_or_default())
    }

    /// The resourceVersions of the auth Secrets as the cache shows them, in [`read_auth`]'s form;
    /// `None` without caches or when one is not in them.
    fn cached_versions(&self, namespace: &str, auth: &OktaAuth) -> Option<String> {
        let caches = self.caches.as_ref()?;
        let name = match (&auth.api_token, &auth.oauth) {
            (Some(token), _) => &token.secret_ref.name,
            (None, Some(oauth)) => &oauth.private_key_secret_ref.name,
            (None, None) => return None,
        };
        caches.secret(namespace, name)?.metadata.resource_version.clone()
    }

    /// The Okta org (URL origin) an org object named when samlcred last used it; `None` before.
    pub fn origin_of(&self, key: &OrgKey) -> Option<String> {
        self.origins.lock().unwrap().get(key).cloned()
    }

    /// Forgets the client of an org (after it was deleted).
    pub fn forget(&self, key: &OrgKey) {
        self.clients.lock().unwrap().remove(key);
    }

    fn build(&self, spec: &OktaOrgSpec, auth: Auth) -> Result<OktaClient, OrgError> {
        let url = url::Url::parse(&spec.url).map_err(|e| OrgError::InvalidSpec(format!("spec.url: {e}")))?;
        okta::check_base_url(&url, self.settings.allow_insecure_http)
            .map_err(|e| OrgError::InvalidSpec(format!("spec.url: {e}")))?;
        let mut config = OrgConfig::new(url, auth);
        config.max_share_percent = spec.rate_limit.max_share.clamp(1, 100) as u8;
        config.allow_insecure_http = self.settings.allow_insecure_http;
        config.metrics = self.settings.metrics.clone();
        config.fence = self.settings.fence.clone();
        let limiter = self
            .limiters
            .lock()
            .unwrap()
            .entry(origin(&config.base_url))
            .or_insert_with(|| Arc::new(RateLimiter::new(config.max_share_percent)))
            .clone();
        config.limiter = Some(limiter);
        OktaClient::new(config).map_err(|e| OrgError::InvalidSpec(e.to_string()))
    }

    /// A ClusterOktaOrg admits the namespace (namespaceSelector) and, with spec.apps, the app.
    async fn check_allowed(
        &self,
        org: &str,
        spec: &crate::api::ClusterOktaOrgSpec,
        namespace: &str,
        app_id: &str,
    ) -> Result<(), OrgError> {
        if spec.namespace_selector.is_none() && spec.apps.is_none() {
            return Ok(());
        }
        let labels = self.namespace_labels(namespace).await?;
        let matches = |selector: &LabelSelector, field: &str| {
            selector_matches(selector, &labels)
                .map_err(|e| OrgError::InvalidSpec(format!("ClusterOktaOrg {org} {field}: {e}")))
        };
        if let Some(selector) = &spec.namespace_selector
            && !matches(selector, "spec.namespaceSelector")?
        {
            return Err(OrgError::NotAllowed { name: org.to_string(), namespace: namespace.to_string() });
        }
        let Some(grants) = &spec.apps else { return Ok(()) };
        for (i, grant) in grants.iter().enumerate() {
            if grant.app_ids.iter().any(|id| id == app_id)
                && matches(&grant.namespace_selector, &format!("spec.apps[{i}].namespaceSelector"))?
            {
                return Ok(());
            }
        }
        Err(OrgError::AppNotAllowed { name: org.to_string(), namespace: namespace.to_string(), app_id: app_id.into() })
    }
}

/// What identifies an Okta org: scheme, host and port of its URL (host names are case-insensitive).
pub fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

fn fingerprint(meta: &kube::api::ObjectMeta) -> String {
    format!("{}:{}", meta.uid.as_deref().unwrap_or(""), meta.generation.unwrap_or(0))
}

/// Reads the credentials an org's `auth` points at; returns them with the Secrets' resourceVersions.
async fn read_auth(
    secrets: &Api<Secret>,
    auth: &OktaAuth,
    caches: Option<&Caches>,
) -> Result<(Auth, String), OrgError> {
    if let Some(token) = &auth.api_token {
        let (value, version) =
            read_secret_key(secrets, &token.secret_ref, "spec.auth.apiToken.secretRef", caches).await?;
        return Ok((Auth::ApiToken(SecretString::from(value.trim().to_string())), version));
    }
    let Some(oauth) = &auth.oauth else {
        return Err(OrgError::InvalidSpec("spec.auth: set exactly one of apiToken or oauth".into()));
    };
    let field = "spec.auth.oauth.privateKeySecretRef";
    let (pem, version) = read_secret_key(secrets, &oauth.private_key_secret_ref, field, caches).await?;
    let private_key = PrivateKey::parse(&pem).map_err(|e| {
        OrgError::InvalidSpec(format!(
            "{field}: Secret {} key {} is not an RSA or EC private key in PEM or JWK form ({e})",
            oauth.private_key_secret_ref.name, oauth.private_key_secret_ref.key
        ))
    })?;
    let dpop = match oauth.dpop {
        api::DpopMode::Auto => okta::DpopMode::Auto,
        api::DpopMode::Required => okta::DpopMode::Required,
        api::DpopMode::Disabled => okta::DpopMode::Disabled,
    };
    let auth = Auth::OAuth {
        client_id: oauth.client_id.clone(),
        private_key,
        key_id: oauth.key_id.clone(),
        scopes: oauth.scopes.clone(),
        dpop,
    };
    Ok((auth, version))
}

/// Reads one key of an auth Secret; the Secret is kept in the cache from then on (it may have
/// been created before the org that names it, when the cache had no reason to keep it).
async fn read_secret_key(
    secrets: &Api<Secret>,
    r: &SecretKeyRef,
    field: &str,
    caches: Option<&Caches>,
) -> Result<(String, String), OrgError> {
    let secret = secrets
        .get_opt(&r.name)
        .await?
        .ok_or_else(|| OrgError::InvalidSpec(format!("{field}: Secret {} not found", r.name)))?;
    if let Some(caches) = caches {
        caches.keep_secret(&secret.metadata);
    }
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .ok_or_else(|| OrgError::InvalidSpec(format!("{field}: Secret {} has no key {}", r.name, r.key)))?;
    let value = String::from_utf8(bytes.0.clone())
        .map_err(|_| OrgError::InvalidSpec(format!("{field}: Secret {} key {} is not UTF-8 text", r.name, r.key)))?;
    Ok((value, secret.metadata.resource_version.unwrap_or_default()))
}

/// Whether `labels` satisfy a Kubernetes label selector (matchLabels and matchExpressions).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Ok(false);
        }
    }
    for expr in selector.match_expressions.iter().flatten() {
        let values = expr.values.clone().unwrap_or_default();
        let value = labels.get(&expr.key);
        let ok = match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => !value.is_some_and(|v| values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => return Err(format!("unknown operator {other} (expected In, NotIn, Exists or DoesNotExist)")),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert_eq!(selector_matches(&LabelSelector::default(), &labels(&[])), Ok(true));
    }

    #[test]
    fn match_labels_and_expressions() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("team", "idp")])),
            match_expressions: Some(vec![expr("env", "In", &["prod", "stage"]), expr("legacy", "DoesNotExist", &[])]),
        };
        assert_eq!(selector_matches(&selector, &labels(&[("team", "idp"), ("env", "prod")])), Ok(true));
        assert_eq!(selector_matches(&selector, &labels(&[("team", "idp"), ("env", "dev")])), Ok(false));
        assert_eq!(selector_matches(&selector, &labels(&[("team", "web"), ("env", "prod")])), Ok(false));
        assert_eq!(
            selector_matches(&selector, &labels(&[("team", "idp"), ("env", "prod"), ("legacy", "1")])),
            Ok(false)
        );
        let not_in =
            LabelSelector { match_expressions: Some(vec![expr("env", "NotIn", &["prod"])]), ..Default::default() };
        assert_eq!(selector_matches(&not_in, &labels(&[])), Ok(true));
        assert_eq!(selector_matches(&not_in, &labels(&[("env", "prod")])), Ok(false));
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let selector = LabelSelector { match_expressions: Some(vec![expr("a", "Near", &[])]), ..Default::default() };
        assert!(selector_matches(&selector, &labels(&[])).unwrap_err().contains("Near"));
    }
}
