//! `SamlAppCredential`: one Okta SAML app whose signing certificate samlcred keeps alive.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration;

/// CEL: a duration of at most ten years (Go syntax has no days; 87600h).
pub const AT_MOST_TEN_YEARS: &str = "duration(self) <= duration('87600h')";
pub const RENEW_BEFORE_HALF_VALIDITY: &str = "renewBefore must be at most half of the certificate validity \
     (validityYears): a longer one makes a freshly activated key due for renewal at once";
/// The shape of a 5-field cron schedule (minute hour day-of-month month day-of-week). The schema
/// checks only this; the admission webhook (`crate::webhook`) refuses one that never fires, and
/// without it the controller reports InvalidSpec.
pub const CRON_PATTERN: &str = r"^[0-9A-Za-z*,/?#-]+( +[0-9A-Za-z*,/?#-]+){4}$";
/// The shape of an IANA time zone name (Europe/Berlin, America/Argentina/Buenos_Aires, UTC, Etc/GMT+2).
pub const TIME_ZONE_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";
pub const ADDITIONAL_APP_IDS_DISTINCT: &str =
    "additionalAppIds must not name appId: the primary app signs with the shared key already";
pub const DELAY_BELOW_RENEW_BEFORE: &str = "activation.delay must be shorter than renewBefore: the active \
     certificate would expire before the new key is activated";

/// Desired state of a SamlAppCredential: which Okta app to watch, when to rotate its signing key and
/// where to publish the certificates.
// The printcolumn(...) lists repeat `type_ = "string"`, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "samlcred.io",
    version = "v1alpha1",
    kind = "SamlAppCredential",
    namespaced,
    status = "SamlAppCredentialStatus",
    shortname = "sac",
    category = "samlcred",
    derive = "PartialEq",
    doc = "SamlAppCredential keeps the signing certificate of one Okta SAML app valid: it rotates the key before it expires and publishes the certificates to a Secret for the service providers.",
    printcolumn(name = "App", type_ = "string", json_path = ".spec.appId"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    // Expires and Renewal lie in the future, which kubectl renders as <invalid> for type date.
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.activeKey.notAfter"),
    printcolumn(name = "Renewal", type_ = "string", json_path = ".status.renewalTime"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Kid", type_ = "string", json_path = ".status.activeKey.kid", priority = 1)
)]
#[x_kube(validation = Rule::new(
    "duration(self.renewBefore).getHours() * 2 <= self.validityYears * 8760"
).message(RENEW_BEFORE_HALF_VALIDITY).field_path(".renewBefore"))]
#[x_kube(validation = Rule::new(
    "!has(self.activation) || !has(self.activation.delay) || duration(self.activation.delay) < duration(self.renewBefore)"
).message(DELAY_BELOW_RENEW_BEFORE).field_path(".activation.delay"))]
#[x_kube(validation = Rule::new(
    "!has(self.additionalAppIds) || !(self.appId in self.additionalAppIds)"
).message(ADDITIONAL_APP_IDS_DISTINCT).field_path(".additionalAppIds"))]
#[serde(rename_all = "camelCase")]
pub struct SamlAppCredentialSpec {
    /// The Okta org that hosts the app: an OktaOrg in this namespace or a ClusterOktaOrg.
    pub org_ref: OrgRef,

    /// ID of the Okta SAML app (for example 0oa1b2c3d4e5f6g7h8i9). Cannot be changed after creation:
    /// create a new SamlAppCredential for another app.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("appId is immutable"))]
    pub app_id: String,

    /// Further Okta apps (IDs) that must sign with the same key as appId, for a service provider
    /// that sits behind several apps. Each rotation generates the new key once, on appId, clones
    /// it to each of these apps, publishes it (bundle.pem is shared; the Secret holds
    /// metadata-<appId>.xml for each of these apps), and activates it on every app, appId last,
    /// only once every clone exists. An app added here joins at the next rotation (annotate
    /// samlcred.io/rotate to start one now); until then it signs with its own key. At most 16,
    /// each listed once, none equal to appId.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$")))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y == x))").message("additionalAppIds must not repeat an app"))]
    pub additional_app_ids: Vec<String>,

    /// Validity of each certificate Okta generates, in years (2 to 10). Default 10.
    #[serde(default = "default_validity_years")]
    #[schemars(range(min = 2, max = 10))]
    pub validity_years: i32,

    /// Start a rotation when the active certificate expires within this duration (Go syntax, for
    /// example 720h or 1h30m). Must be positive and shorter than the validity. Default 720h (30 days).
    /// Each credential starts up to 10% of it earlier, never later, at a place its uid picks, so
    /// that credentials created together do not rotate together (status.renewalTime says when).
    #[serde(default = "default_renew_before")]
    #[schemars(length(max = duration::MAX_LENGTH), regex(pattern = duration::PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("renewBefore must be positive"))]
    #[x_kube(validation = Rule::new(AT_MOST_TEN_YEARS).message("renewBefore must be at most 10 years (87600h)"))]
    pub renew_before: String,

    /// When a new key, once published in the Secret, becomes the key Okta signs with.
    #[serde(default)]
    pub activation: Activation,

    /// How long a replaced certificate stays in bundle.pem after the new key is activated (Go duration
    /// syntax). Default 168h (7 days).
    #[serde(default = "default_retain_previous")]
    #[schemars(length(max = duration::MAX_LENGTH), regex(pattern = duration::PATTERN))]
    #[x_kube(validation = Rule::new(AT_MOST_TEN_YEARS).message("retainPrevious must be at most 10 years (87600h)"))]
    pub retain_previous: String,

    /// Name of the Secret, in this namespace, that receives the certificates. samlcred creates it, and
    /// never modifies a Secret it did not create unless that Secret is annotated
    /// samlcred.io/adopt: "true".
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: String,

    /// Extra labels and annotations for the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,

    /// What happens to the Secret when this SamlAppCredential is deleted: Retain keeps it, Delete lets
    /// Kubernetes garbage-collect it (through an ownerReference). Default Retain.
    #[serde(default)]
    pub secret_deletion_policy: SecretDeletionPolicy,

    /// Workloads in this namespace that are restarted (like kubectl rollout restart) whenever the
    /// Secret's content changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rollout_restart_targets: Vec<RolloutRestartTarget>,

    /// true stops every write to Okta (no key is generated or activated); the Secret is still kept up
    /// to date with what Okta shows. Default false.
    #[serde(default)]
    pub suspend: bool,

    /// Days before the active certificate's notAfter at which samlcred warns (a Warning event
    /// ExpiringSoon, once per threshold and key, and the condition ExpiringSoon=True) when no
    /// rotation is going ahead to replace it: the credential is suspended, a Manual activation waits
    /// for approval, a rollout is stuck, or the rotation fails. An empty list turns the warnings off.
    /// Default [60, 30, 7].
    #[serde(default = "default_expiry_warning_days")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = Rule::new("self.all(d, d >= 1 && d <= 3650)").message("expiryWarningDays must be between 1 and 3650"))]
    pub expiry_warning_days: Vec<i32>,
}

/// Reference to the Okta org that hosts the app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgRef {
    /// OktaOrg (same namespace) or ClusterOktaOrg. Default OktaOrg.
    #[serde(default)]
    pub kind: OrgKind,
    /// Name of the OktaOrg or ClusterOktaOrg.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum OrgKind {
    #[default]
    OktaOrg,
    ClusterOktaOrg,
}

/// When a published key becomes the key Okta signs with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Activation {
    /// Automatic activates the new key once delay has passed since it was published. Manual waits
    /// until the SamlAppCredential is annotated samlcred.io/activate: <kid of the pending key>, then
    /// activates it at once. Either way, an app that has no usable signing key gets its first key
    /// activated as soon as it is published. Default Automatic.
    #[serde(default)]
    pub policy: ActivationPolicy,

    /// Time between publishing the new certificate in the Secret and switching Okta to it (Automatic
    /// policy), so that service providers can pick it up first. Go duration syntax. Default 24h.
    #[serde(default = "default_activation_delay")]
    #[schemars(length(max = duration::MAX_LENGTH), regex(pattern = duration::PATTERN))]
    #[x_kube(validation = Rule::new(AT_MOST_TEN_YEARS).message("activation.delay must be at most 10 years (87600h)"))]
    pub delay: String,

    /// Activation also waits, after delay (or approval), until every rolloutRestartTargets workload
    /// runs the pod template restarted for the Secret that holds the new certificate: its
    /// observedGeneration is current and its updated, ready and available replicas equal the
    /// desired count. A target that is missing or whose rollout stalled (ProgressDeadlineExceeded)
    /// holds activation with the Rotating reason RolloutStuck and a Warning event. Expiry still
    /// wins: once the active certificate would expire within 24h (or half of renewBefore, if
    /// shorter), samlcred activates anyway with a Warning event ActivatedBeforeRollout. Default true
    /// when rolloutRestartTargets is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for_rollout: Option<bool>,

    /// Times at which activation, the one step that can break sign-ins, may happen; generating and
    /// publishing the new key do not wait for them. A key due for activation (after delay, the
    /// approval and the rollout) waits until a window is open. Expiry still wins: when no window
    /// opens before the active certificate would expire within 24h (or half of renewBefore, if
    /// shorter), samlcred activates at once with a Warning event ActivatedOutsideWindow. An app
    /// without a usable signing key gets its first key whatever the windows. Empty: activation
    /// whenever due.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub windows: Vec<ActivationWindow>,
}

impl Default for Activation {
    fn default() -> Self {
        Self {
            policy: ActivationPolicy::default(),
            delay: default_activation_delay(),
            wait_for_rollout: None,
            windows: Vec::new(),
        }
    }
}

/// A recurring span of time in which activation may happen, like cert-manager's renewal windows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivationWindow {
    /// When the window opens: a 5-field cron expression (minute hour day-of-month month
    /// day-of-week, as in crontab(5); names such as MON or JAN are allowed), for example
    /// "0 2 * * TUE" for Tuesdays at 02:00. A day-of-month and a day-of-week both restricted match
    /// either, as in cron. The API server checks the shape, and samlcred's admission webhook
    /// refuses a schedule that never fires (such as February 30); where the webhook is not
    /// installed, such a schedule makes the credential Ready=False with reason InvalidSpec. An
    /// opening time that a daylight saving change skips opens the window at the first instant
    /// after the gap.
    #[schemars(length(min = 9, max = 128), regex(pattern = CRON_PATTERN))]
    pub schedule: String,

    /// How long the window stays open after each opening, in elapsed time (Go duration syntax,
    /// for example 2h or 90m). Must be positive.
    #[schemars(length(max = duration::MAX_LENGTH), regex(pattern = duration::PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) > duration('0s')").message("an activation window's duration must be positive"))]
    #[x_kube(validation = Rule::new(AT_MOST_TEN_YEARS).message("an activation window's duration must be at most 10 years (87600h)"))]
    pub duration: String,

    /// IANA time zone the schedule is read in (for example Europe/Berlin). Default UTC. A name the
    /// operator's time zone database does not know is refused by the admission webhook (or, where
    /// it is not installed, makes the credential Ready=False with reason InvalidSpec).
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64), regex(pattern = TIME_ZONE_PATTERN))]
    pub time_zone: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ActivationPolicy {
    #[default]
    Automatic,
    Manual,
}

/// Extra metadata for the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretTemplate {
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SecretDeletionPolicy {
    #[default]
    Retain,
    Delete,
}

/// A workload to restart when the Secret's content changes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct RolloutRestartTarget {
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: WorkloadKind,
    /// Name of the workload, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// What samlcred observed and did. Okta is the source of truth for which key signs; this records
/// what samlcred intends and has published.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SamlAppCredentialStatus {
    /// The metadata.generation this status was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready: the Secret holds the certificate Okta signs with and nothing is failing. Rotating: a
    /// rotation is under way; its reason is the phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The key Okta signs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_key: Option<ActiveKey>,

    /// The key being rotated in: generated in Okta, published in bundle.pem, not yet signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_key: Option<PendingKey>,

    /// Keys that signed before the active one, kept in bundle.pem until their retainUntil.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_keys: Vec<PreviousKey>,

    /// The rotation under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,

    /// When the next rotation starts: the active certificate's notAfter minus renewBefore, minus
    /// this credential's share of the renewal spread (up to 10% of renewBefore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,

    /// When a key was last activated by samlcred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,

    /// The last value of the samlcred.io/rotate annotation that started a rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_token: Option<String>,

    /// Consecutive failed attempts of the current step; reset by a success.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_attempts: i32,

    /// When the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,

    /// The last expiryWarningDays threshold a Warning event ExpiringSoon was emitted for, and for
    /// which active key: each threshold warns once per key, restarts included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_warning: Option<ExpiryWarning>,

    /// The apps of spec.additionalAppIds that samlcred switched to the shared key, and the kid
    /// each signs with since (the active key's, once its rotation is done). Additional apps are
    /// read from Okta only during a rotation; an app missing here joins at the next one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_apps: Vec<AdditionalApp>,
}

/// An expiry warning that was emitted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryWarning {
    /// The active key the warning was about.
    pub kid: String,
    /// The threshold, in days before notAfter, that was crossed.
    pub days: i32,
}

/// An additional app that signs with the shared key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalApp {
    /// The Okta app ID (one of spec.additionalAppIds).
    pub app_id: String,
    /// The kid samlcred activated on this app.
    pub kid: String,
}

/// The key Okta signs with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveKey {
    /// Okta's key ID.
    pub kid: String,
    /// Start of the certificate's validity.
    pub not_before: Time,
    /// End of the certificate's validity.
    pub not_after: Time,
    /// Base64url SHA-256 thumbprint of the certificate (the JWK's x5t#S256).
    #[serde(rename = "x5tS256")]
    pub x5t_s256: String,
}

/// The key being rotated in.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingKey {
    /// Okta's key ID.
    pub kid: String,
    /// End of the certificate's validity.
    pub not_after: Time,
    /// Base64url SHA-256 thumbprint of the certificate (the JWK's x5t#S256).
    #[serde(rename = "x5tS256")]
    pub x5t_s256: String,
    /// Earliest time the key is activated (Automatic policy); set when it is published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activate_after: Option<Time>,
    /// The apps of spec.additionalAppIds this key has been cloned to (same kid and certificate).
    /// Activation waits until it lists every one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cloned_to: Vec<String>,
}

/// A key that signed before the active one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousKey {
    /// Okta's key ID.
    pub kid: String,
    /// End of the certificate's validity.
    pub not_after: Time,
    /// Base64url SHA-256 thumbprint of the certificate (the JWK's x5t#S256).
    #[serde(rename = "x5tS256")]
    pub x5t_s256: String,
    /// When the certificate leaves bundle.pem.
    pub retain_until: Time,
}

/// A rotation under way.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Generating: the intent is recorded and the key is being generated. Published: the new
    /// certificate is in the Secret, the old key still signs. Activating: Okta is being switched to
    /// the new key.
    pub phase: RotationPhase,
    /// Why the rotation started: Expiry (renewBefore reached), Manual (samlcred.io/rotate
    /// annotation) or NoActiveKey (the app had no usable signing key).
    pub trigger: RotationTrigger,
    /// When the rotation started.
    pub started_at: Time,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RotationPhase {
    Generating,
    Published,
    Activating,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RotationTrigger {
    Expiry,
    Manual,
    NoActiveKey,
}

impl RotationPhase {
    /// The phase's name, as status spells it.
    pub fn label(self) -> &'static str {
        match self {
            RotationPhase::Generating => "Generating",
            RotationPhase::Published => "Published",
            RotationPhase::Activating => "Activating",
        }
    }
}

impl std::fmt::Display for RotationPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::fmt::Display for RotationTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

fn default_validity_years() -> i32 {
    10
}

fn default_renew_before() -> String {
    "720h".into()
}

fn default_activation_delay() -> String {
    "24h".into()
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// The expiry warning thresholds when the spec names none: 60, 30 and 7 days.
pub fn default_expiry_warning_days() -> Vec<i32> {
    vec![60, 30, 7]
}

fn default_retain_previous() -> String {
    "168h".into()
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}
