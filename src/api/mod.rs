//! The custom resources of API group `samlcred.io/v1alpha1`, and the names (annotations, labels,
//! conditions, event reasons) that users and tools see.

pub mod credential;
pub mod duration;
mod org;
pub mod reference;

use kube::CustomResourceExt;

pub use credential::{
    Activation, ActivationPolicy, ActivationWindow, ActiveKey, AdditionalApp, ExpiryWarning, OrgKind, OrgRef,
    PendingKey, PreviousKey, RolloutRestartTarget, Rotation, RotationPhase, RotationTrigger, SamlAppCredential,
    SamlAppCredentialSpec, SamlAppCredentialStatus, SecretDeletionPolicy, SecretTemplate, WorkloadKind,
};
pub use org::{
    ApiTokenAuth, ClusterOktaOrg, ClusterOktaOrgSpec, DpopMode, OAuthAuth, OktaAuth, OktaOrg, OktaOrgSpec,
    OktaOrgStatus, RateLimit, SecretKeyRef,
};

/// Annotations a person (or Git) sets on a SamlAppCredential, and samlcred sets on its Secret.
pub mod annotations {
    /// On a SamlAppCredential: start a rotation now if the value differs from status.lastRotateToken.
    pub const ROTATE: &str = "samlcred.io/rotate";
    /// On a SamlAppCredential with activation.policy Manual: activate the pending key of this kid.
    pub const ACTIVATE: &str = "samlcred.io/activate";
    /// On a Secret samlcred did not create: `"true"` lets samlcred take it over.
    pub const ADOPT: &str = "samlcred.io/adopt";
    /// On the Secret: the active kid.
    pub const KID: &str = "samlcred.io/kid";
    /// On the Secret: the active certificate's notAfter (RFC 3339).
    pub const NOT_AFTER: &str = "samlcred.io/not-after";
    /// On the Secret: the active certificate's x5t#S256.
    pub const X5T_S256: &str = "samlcred.io/x5t-s256";
    /// On the Secret: the Okta app ID.
    pub const APP_ID: &str = "samlcred.io/app-id";
    /// On the Secret, and on a rolloutRestartTargets workload's pod template: a hash of samlcred's
    /// data in the Secret, so that the pods roll exactly when the data changes.
    pub const SECRET_HASH: &str = "samlcred.io/secret-hash";
}

/// Labels samlcred sets on its Secrets.
pub mod labels {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const MANAGED_BY_VALUE: &str = "samlcred";
    /// The name of the SamlAppCredential that owns the Secret.
    pub const CREDENTIAL: &str = "samlcred.io/credential";
}

/// Condition types and reasons of SamlAppCredential, OktaOrg and ClusterOktaOrg status.
pub mod conditions {
    pub const READY: &str = "Ready";
    pub const ROTATING: &str = "Rotating";
    /// The active certificate expires within an expiryWarningDays threshold and no rotation is
    /// going ahead to replace it.
    pub const EXPIRING_SOON: &str = "ExpiringSoon";
    /// True while rolloutRestartTargets restarts wait for their turn under the operator's
    /// --max-restarts-per-minute; the message says how many restarts are queued ahead.
    pub const RESTARTS_PENDING: &str = "RestartsPending";
    /// RestartsPending=True: the restarts wait for their turn.
    pub const REASON_WAITING_FOR_TURN: &str = "WaitingForTurn";
    /// RestartsPending=False: every restart target got its restart.
    pub const REASON_RESTARTED: &str = "Restarted";

    /// Ready=True: the Secret holds the certificate Okta signs with.
    pub const REASON_UP_TO_DATE: &str = "UpToDate";
    pub const REASON_APP_NOT_FOUND: &str = "AppNotFound";
    pub const REASON_CONFLICT: &str = "Conflict";
    pub const REASON_SECRET_CONFLICT: &str = "SecretConflict";
    pub const REASON_SUSPENDED: &str = "Suspended";
    pub const REASON_ORG_NOT_FOUND: &str = "OrgNotFound";
    pub const REASON_ORG_NOT_ALLOWED: &str = "OrgNotAllowed";
    /// A ClusterOktaOrg's spec.apps does not let the credential's namespace manage its app.
    pub const REASON_APP_NOT_ALLOWED: &str = "AppNotAllowed";
    pub const REASON_OKTA_ERROR: &str = "OktaError";
    /// Okta's rate limit (or samlcred's share of it) leaves no room until a reset further away than
    /// samlcred waits in place; the credential is reconciled again at the reset.
    pub const REASON_RATE_LIMITED: &str = "RateLimited";
    pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
    /// Okta's SAML metadata for the active key is not a document samlcred can publish.
    pub const REASON_INVALID_METADATA: &str = "InvalidMetadata";
    /// The app has no usable signing key and samlcred is making one.
    pub const REASON_NO_ACTIVE_KEY: &str = "NoActiveKey";
    /// Rotating=True while Manual activation waits for the activate annotation.
    pub const REASON_AWAITING_APPROVAL: &str = "AwaitingApproval";
    /// Rotating: activation waits until the restart targets rolled out the new Secret.
    pub const REASON_WAITING_FOR_ROLLOUT: &str = "WaitingForRollout";
    /// Rotating: a restart target is missing or its rollout stalled; activation waits for it.
    pub const REASON_ROLLOUT_STUCK: &str = "RolloutStuck";
    /// Rotating: activation is due and waits for the next activation window.
    pub const REASON_WAITING_FOR_WINDOW: &str = "WaitingForWindow";
    /// ExpiringSoon=True: within a threshold, and the rotation is held (the message says by what).
    pub const REASON_ROTATION_HELD: &str = "RotationHeld";
    /// ExpiringSoon=False: within a threshold, and samlcred is replacing the certificate.
    pub const REASON_ROTATION_SCHEDULED: &str = "RotationScheduled";
    /// ExpiringSoon=False: the active certificate is not within any expiryWarningDays threshold.
    pub const REASON_NOT_EXPIRING: &str = "NotExpiring";
    /// Rotating=False: no rotation under way.
    pub const REASON_IDLE: &str = "Idle";
    /// OktaOrg Ready=True: Okta accepted the credentials.
    pub const REASON_AUTHENTICATED: &str = "Authenticated";
    pub const REASON_AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
}

/// Reasons of the Kubernetes Events samlcred emits.
pub mod events {
    pub const KEY_GENERATED: &str = "KeyGenerated";
    pub const KEY_PUBLISHED: &str = "KeyPublished";
    pub const KEY_ACTIVATED: &str = "KeyActivated";
    pub const KEY_RETIRED: &str = "KeyRetired";
    /// The pending key was cloned to the credential's additional apps.
    pub const KEY_CLONED: &str = "KeyCloned";
    /// Warning: someone changed the app's active key in Okta.
    pub const EXTERNAL_KEY_CHANGE: &str = "ExternalKeyChange";
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    pub const OKTA_ERROR: &str = "OktaError";
    pub const ROLLOUT_RESTARTED: &str = "RolloutRestarted";
    /// A restart target is missing or its rollout stalled; activation waits for it.
    pub const ROLLOUT_STUCK: &str = "RolloutStuck";
    /// Activated before the restart targets finished their rollout, because expiry was near.
    pub const ACTIVATED_BEFORE_ROLLOUT: &str = "ActivatedBeforeRollout";
    /// Warning: no activation window opens before expiry would be near; activated outside them.
    pub const ACTIVATED_OUTSIDE_WINDOW: &str = "ActivatedOutsideWindow";
    /// Warning: the active certificate crossed an expiryWarningDays threshold and no rotation is
    /// going ahead to replace it.
    pub const EXPIRING_SOON: &str = "ExpiringSoon";
    /// Warning: a reconcile panicked (a bug); it was abandoned and is retried, the process goes on.
    pub const RECONCILE_PANICKED: &str = "ReconcilePanicked";
}

/// The field manager samlcred uses for server-side apply.
pub const FIELD_MANAGER: &str = "samlcred";

/// All three CustomResourceDefinitions as one multi-document YAML: the content of
/// `crds/samlcred.io.yaml` and the output of `samlcred crds`. Same types, same bytes.
pub fn crds_yaml() -> String {
    let crds = [OktaOrg::crd(), ClusterOktaOrg::crd(), SamlAppCredential::crd()];
    serde_saphyr::to_string_multiple(&crds).expect("a CRD serializes to YAML")
}

#[cfg(test)]
mod tests;
