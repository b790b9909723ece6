//! The Prometheus metrics of DESIGN.md section 6, and the hook the Okta client feeds.

use crate::api::{RotationPhase, SamlAppCredential, SamlAppCredentialStatus, conditions};
use crate::okta::{MetricsHook, RequestRecord};
use kube::ResourceExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

type FloatGauge = Gauge<f64, AtomicU64>;

// A credential's eight series share one copy of its namespace and name (10,000 credentials make
// 80,000 series).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CredentialLabels {
    namespace: Arc<str>,
    name: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    namespace: Arc<str>,
    name: Arc<str>,
    condition: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: Arc<str>,
    name: Arc<str>,
    phase: &'static str,
}

const CONDITIONS: [&str; 3] = [conditions::READY, conditions::ROTATING, conditions::EXPIRING_SOON];
const PHASES: [RotationPhase; 3] = [RotationPhase::Generating, RotationPhase::Published, RotationPhase::Activating];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BucketLabels {
    bucket: String,
}

/// Every metric samlcred exports, registered in one registry.
pub struct Metrics {
    registry: Registry,
    not_after: Family<CredentialLabels, FloatGauge>,
    renewal: Family<CredentialLabels, FloatGauge>,
    ready: Family<ReadyLabels, Gauge>,
    phase: Family<PhaseLabels, Gauge>,
    rotations: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    reconcile_errors: Family<ReasonLabels, Counter>,
    reconcile_panics: Family<KindLabels, Counter>,
    okta_requests: Family<RequestLabels, Counter>,
    rate_limit_remaining: Family<BucketLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let metrics = Metrics {
            not_after: Family::default(),
            renewal: Family::default(),
            ready: Family::default(),
            phase: Family::default(),
            rotations: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            reconcile_errors: Family::default(),
            reconcile_panics: Family::default(),
            okta_requests: Family::default(),
            rate_limit_remaining: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "samlcred_certificate_not_after_timestamp_seconds",
            "End of validity of the active signing certificate",
            metrics.not_after.clone(),
        );
        registry.register(
            "samlcred_certificate_renewal_timestamp_seconds",
            "When the next rotation starts",
            metrics.renewal.clone(),
        );
        registry.register("samlcred_credential_ready", "1 when the condition is True", metrics.ready.clone());
        registry.register(
            "samlcred_credential_rotation_phase",
            "1 for the phase of the rotation under way, 0 for the other phases",
            metrics.phase.clone(),
        );
        registry.register("samlcred_rotations", "Rotations by result", metrics.rotations.clone());
        registry.register(
            "samlcred_reconcile_duration_seconds",
            "Time of one reconcile",
            metrics.reconcile_duration.clone(),
        );
        registry.register("samlcred_reconcile_errors", "Failed reconciles by reason", metrics.reconcile_errors.clone());
        registry.register(
            "samlcred_reconcile_panics",
            "Reconciles that panicked (a bug), by kind of object",
            metrics.reconcile_panics.clone(),
        );
        registry.register(
            "samlcred_okta_requests",
            "Requests to Okta by endpoint and status",
            metrics.okta_requests.clone(),
        );
        registry.register(
            "samlcred_okta_rate_limit_remaining",
            "Requests left in the current window of an Okta rate-limit bucket",
            metrics.rate_limit_remaining.clone(),
        );
        // Series that alerts take a rate of exist from the start, at 0.
        for reason in [
            conditions::REASON_OKTA_ERROR,
            conditions::REASON_RATE_LIMITED,
            conditions::REASON_ORG_NOT_FOUND,
            conditions::REASON_ORG_NOT_ALLOWED,
            conditions::REASON_INVALID_SPEC,
            conditions::REASON_INVALID_METADATA,
            "KubernetesError",
        ] {
            let _ = metrics.reconcile_errors.get_or_create(&ReasonLabels { reason: reason.into() });
        }
        for kind in ["SamlAppCredential", "OktaOrg", "ClusterOktaOrg"] {
            let _ = metrics.reconcile_panics.get_or_create(&KindLabels { kind: kind.into() });
        }
        Metrics { registry, ..metrics }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn reconcile_duration(&self, elapsed: Duration) {
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    pub fn reconcile_error(&self, reason: &str) {
        self.reconcile_errors.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
    }

    pub fn reconcile_panic(&self, kind: &str) {
        self.reconcile_panics.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    pub fn rotation(&self, result: &str) {
        self.rotations.get_or_create(&ResultLabels { result: result.into() }).inc();
    }

    /// Updates the per-credential gauges from the status just written.
    pub fn observe_credential(&self, credential: &SamlAppCredential, status: &SamlAppCredentialStatus) {
        let labels = CredentialLabels {
            namespace: credential.namespace().unwrap_or_default().into(),
            name: credential.name_any().into(),
        };
        if let Some(active) = &status.active_key {
            self.not_after.get_or_create(&labels).set(active.not_after.0.as_millisecond() as f64 / 1000.0);
        }
        if let Some(renewal) = &status.renewal_time {
            self.renewal.get_or_create(&labels).set(renewal.0.as_millisecond() as f64 / 1000.0);
        }
        for condition in CONDITIONS {
            let value = status.conditions.iter().any(|c| c.type_ == condition && c.status == "True");
            let labels = ReadyLabels { namespace: labels.namespace.clone(), name: labels.name.clone(), condition };
            self.ready.get_or_create(&labels).set(i64::from(value));
        }
        let current = status.rotation.as_ref().map(|rotation| rotation.phase);
        for phase in PHASES {
            let labels =
                PhaseLabels { namespace: labels.namespace.clone(), name: labels.name.clone(), phase: phase.label() };
            self.phase.get_or_create(&labels).set(i64::from(current == Some(phase)));
        }
    }

    /// Drops the series of a deleted credential, so that neither a dashboard nor an expiry alert
    /// goes on showing it.
    pub fn forget_credential(&self, namespace: &str, name: &str) {
        let labels = CredentialLabels { namespace: namespace.into(), name: name.into() };
        self.not_after.remove(&labels);
        self.renewal.remove(&labels);
        for condition in CONDITIONS {
            self.ready.remove(&ReadyLabels {
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
                condition,
            });
        }
        for phase in PHASES {
            let phase = phase.label();
            self.phase.remove(&PhaseLabels { namespace: labels.namespace.clone(), name: labels.name.clone(), phase });
        }
    }
}

impl MetricsHook for Metrics {
    fn record(&self, record: &RequestRecord<'_>) {
        let status = record.status.map_or_else(|| "none".to_string(), |s| s.to_string());
        self.okta_requests.get_or_create(&RequestLabels { endpoint: record.endpoint.into(), status }).inc();
        if let Some(remaining) = record.remaining {
            self.rate_limit_remaining
                .get_or_create(&BucketLabels { bucket: record.bucket.into() })
                .set(i64::from(remaining));
        }
    }
}
