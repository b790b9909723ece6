//! `OktaOrg` and `ClusterOktaOrg`: how to reach one Okta org and authenticate to it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How to reach an Okta org: its URL, the credentials samlcred uses, and how much of the org's rate
/// limits samlcred may use.
// The printcolumn(...) lists repeat `type_ = "string"`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "samlcred.io",
    version = "v1alpha1",
    kind = "OktaOrg",
    namespaced,
    status = "OktaOrgStatus",
    category = "samlcred",
    derive = "PartialEq",
    doc = "OktaOrg tells samlcred how to reach an Okta org, for the SamlAppCredentials of its namespace.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct OktaOrgSpec {
    /// Base URL of the org, for example https://acme.okta.com. Plain http is refused unless the
    /// operator runs with --allow-insecure-okta-http and the host is a loopback address.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s/]+(/\S*)?$"))]
    pub url: String,

    /// How samlcred authenticates: exactly one of apiToken or oauth.
    pub auth: OktaAuth,

    /// How much of each Okta rate-limit bucket samlcred may use.
    #[serde(default)]
    pub rate_limit: RateLimit,
}

/// How to reach an Okta org, usable from any namespace the selector allows. Secret references are
/// resolved in the operator's cluster resource namespace.
// The printcolumn(...) lists repeat `type_ = "string"`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "samlcred.io",
    version = "v1alpha1",
    kind = "ClusterOktaOrg",
    status = "OktaOrgStatus",
    category = "samlcred",
    derive = "PartialEq",
    doc = "ClusterOktaOrg tells samlcred how to reach an Okta org, for SamlAppCredentials of every namespace its namespaceSelector allows.",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOktaOrgSpec {
    /// URL, credentials and rate limits, as in an OktaOrg. Secret references are resolved in the
    /// operator's cluster resource namespace.
    #[serde(flatten)]
    pub org: OktaOrgSpec,

    /// Namespaces whose SamlAppCredentials may use this org. Empty or absent: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Which Okta apps the admitted namespaces may manage through this org. Absent: every app of the
    /// org. Present: a SamlAppCredential may manage an app only if an entry whose namespaceSelector
    /// matches its namespace lists the app's ID; any other is Ready=False AppNotAllowed, and
    /// samlcred makes no Okta call for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub apps: Option<Vec<AppGrant>>,
}

/// Apps that some namespaces may manage through a ClusterOktaOrg.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppGrant {
    /// The namespaces this entry is for. Empty: every namespace that spec.namespaceSelector admits.
    #[serde(default)]
    pub namespace_selector: LabelSelector,

    /// IDs of the Okta apps those namespaces may manage (for example 0oa1b2c3d4e5f6g7h8i9).
    #[schemars(length(min = 1, max = 1024))]
    pub app_ids: Vec<String>,
}

/// Exactly one way to authenticate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.apiToken) != has(self.oauth)").message("auth must set exactly one of apiToken or oauth"))]
#[serde(rename_all = "camelCase")]
pub struct OktaAuth {
    /// An Okta API token, sent as "Authorization: SSWS <token>".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<ApiTokenAuth>,

    /// An OAuth 2.0 service app: client credentials with private_key_jwt, as Okta recommends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthAuth>,
}

/// Okta API token authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenAuth {
    /// The Secret key that holds the token.
    pub secret_ref: SecretKeyRef,
}

/// OAuth 2.0 client credentials with a private_key_jwt client assertion.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAuth {
    /// Client ID of the Okta service app.
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,

    /// The Secret key that holds the private key: PEM (RSA or EC) or a JWK.
    pub private_key_secret_ref: SecretKeyRef,

    /// kid header of the client assertion, when the service app has several public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub key_id: Option<String>,

    /// Scopes requested. Default okta.apps.read and okta.apps.manage.
    #[serde(default = "default_scopes")]
    #[schemars(length(min = 1, max = 16))]
    pub scopes: Vec<String>,

    /// DPoP-bound access tokens: Auto uses them when Okta demands them, Required always, Disabled
    /// never. Default Auto.
    #[serde(default)]
    pub dpop: DpopMode,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DpopMode {
    #[default]
    Auto,
    Required,
    Disabled,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret: in the OktaOrg's namespace, or for a ClusterOktaOrg in the operator's
    /// cluster resource namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// samlcred's share of the org's rate limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Percentage (1 to 100) of each Okta rate-limit bucket samlcred may use; the rest is left to the
    /// org's other integrations. Default 50.
    #[serde(default = "default_max_share")]
    #[schemars(range(min = 1, max = 100))]
    pub max_share: i32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { max_share: default_max_share() }
    }
}

/// What samlcred last observed about an org.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OktaOrgStatus {
    /// The metadata.generation this status was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready: Okta accepted the credentials; the message says why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

fn default_scopes() -> Vec<String> {
    vec!["okta.apps.read".into(), "okta.apps.manage".into()]
}

fn default_max_share() -> i32 {
    50
}
