//! The simulator's public data types: configuration, seeds, faults and the call log.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen. The default, 127.0.0.1:0, picks a free loopback port.
    pub bind: SocketAddr,
    pub rate_limits: RateLimits,
    /// Requests served at the same time before Okta answers 429 (Okta's default: 75 per org).
    pub concurrency_limit: usize,
    /// The org name: the CN of generated certificates and the subdomain in metadata.
    pub org_name: String,
    /// Issue every key credential (seeded or generated) over an RSA key of the shipped stock, taken
    /// round-robin, instead of a fresh key per credential: kids, certificates and serial numbers stay
    /// distinct, only key pairs repeat across apps. For scale benchmarks, which need more keys than
    /// the stock holds and must not spend a core generating them meanwhile.
    pub reuse_stock_keys: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate_limits: RateLimits::default(),
            concurrency_limit: 75,
            org_name: "samlcred-sim".to_string(),
            reuse_stock_keys: false,
        }
    }
}

/// Okta's per-minute rate limits for the buckets the Apps API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    /// `/api/v1/apps*`: listing apps and every endpoint below an app (keys, generate, clone,
    /// metadata). Okta's figure: 100 per minute.
    pub apps_collection: BucketLimit,
    /// `/api/v1/apps/{id}` exactly (get, replace). Okta's figure (Workforce Identity): 500 per minute.
    pub app_instance: BucketLimit,
    /// `/oauth2/v1/token`. 600 per minute here (an assumption: Okta publishes it per org type).
    pub token: BucketLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            apps_collection: BucketLimit::per_minute(100),
            app_instance: BucketLimit::per_minute(500),
            token: BucketLimit::per_minute(600),
        }
    }
}

impl RateLimits {
    /// Limits no test will reach; for benchmarks and tests that are not about rate limiting.
    pub fn unlimited() -> Self {
        let huge = BucketLimit { limit: u32::MAX, window: Duration::from_secs(60) };
        RateLimits { apps_collection: huge, app_instance: huge, token: huge }
    }
}

/// `limit` requests per `window`; the window is fixed and starts with its first request, and
/// runs on real time (not the simulator's clock) so that benchmarks are paced for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketLimit {
    pub limit: u32,
    #[serde(with = "millis")]
    pub window: Duration,
}

impl BucketLimit {
    pub fn per_minute(limit: u32) -> Self {
        BucketLimit { limit, window: Duration::from_secs(60) }
    }
}

/// An OAuth 2.0 service app allowed to use client credentials with `private_key_jwt`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthClient {
    pub client_id: String,
    /// Public RSA or EC P-256 JWK the client signs its assertions with (with or without `kid`).
    pub public_jwk: serde_json::Value,
    /// Okta scopes granted to the app, e.g. `okta.apps.read`, `okta.apps.manage`.
    pub scopes: Vec<String>,
    /// "Require Demonstrating Proof of Possession (DPoP) header in token requests".
    #[serde(default)]
    pub require_dpop: bool,
}

/// A SAML 2.0 app to create, with its key credentials.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeedApp {
    /// The app id; a fresh Okta-like id (`0oa...`) when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub label: String,
    #[serde(default)]
    pub keys: Vec<SeedKey>,
    /// Index into `keys` of the key the app signs with (ignored when `keys` is empty).
    #[serde(default)]
    pub active: usize,
}

/// A key credential whose certificate is valid from `not_before` to `not_after`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SeedKey {
    pub not_before: jiff::Timestamp,
    pub not_after: jiff::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededApp {
    pub id: String,
    /// The kids of the seeded keys, in the order given.
    pub kids: Vec<String>,
}

/// How an app signs people in through its SSO URL (`GET /__sim/apps/{id}/sso`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoInfo {
    /// The app's SSO URL, `{base_url}/app/{name}/{externalKey}/sso/saml`, as in its metadata.
    pub url: String,
    /// The IdP entityID: the Issuer of responses and assertions, `http://www.okta.com/{externalKey}`.
    pub entity_id: String,
    /// The NameID of the assertions.
    pub subject: String,
    /// `settings.signOn.ssoAcsUrl`: where the sign-in form posts.
    pub acs_url: Option<String>,
    /// `settings.signOn.audience`: the SP entity ID.
    pub audience: Option<String>,
}

/// Changes to how an app signs people in (`PUT /__sim/apps/{id}/sso`); absent fields stay.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SsoUpdate {
    /// Who signs in: the NameID of the next assertions.
    #[serde(default)]
    pub subject: Option<String>,
    /// Fields merged into `settings.signOn` (Okta's names: `ssoAcsUrl`, `audience`, `recipient`,
    /// `destination`, `defaultRelayState`, `subjectNameIdFormat`, `responseSigned`, ...).
    #[serde(default)]
    pub sign_on: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Make the next `count` calls matching `method` (any when `None`) and `path_prefix` misbehave.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    #[serde(default, with = "optional_method")]
    pub method: Option<http::Method>,
    pub path_prefix: String,
    pub count: u32,
    pub kind: FaultKind,
}

/// How a faulty call misbehaves.
///
/// `Status` answers instead of Okta: the call is not carried out. `Latency` delays the call, then
/// carries it out. `TruncatedBody`, `NonJsonBody` and `ConnectionReset` carry the call out and
/// then spoil the answer, as a proxy or network failing after Okta acted would: a generate that
/// "failed" this way has still created a key. `RateLimitHeaders` replaces the `X-Rate-Limit-*`
/// values of the answer with arbitrary text, for clients that must survive whatever Okta (or a
/// proxy) puts there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` with an Okta error body carrying `error_code` and `summary`.
    Status { status: u16, error_code: String, summary: String },
    /// Wait this long before handling the call.
    Latency(#[serde(with = "millis")] Duration),
    /// Announce the whole body but send half of it, then close the connection.
    TruncatedBody,
    /// Replace the body with an HTML error page (`text/html`), keeping the status.
    NonJsonBody,
    /// Close the connection with a TCP reset instead of answering.
    ConnectionReset,
    /// Send these values verbatim as `X-Rate-Limit-Limit`, `-Remaining` and `-Reset` (a `None`
    /// keeps the simulator's own). With `refuse`, answer 429 E0000047 instead of carrying the
    /// call out; otherwise carry it out as usual.
    RateLimitHeaders(RateLimitOverride),
}

/// The `X-Rate-Limit-*` values of a [`FaultKind::RateLimitHeaders`] fault: any text, numbers or not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitOverride {
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub remaining: Option<String>,
    #[serde(default)]
    pub reset: Option<String>,
    #[serde(default)]
    pub refuse: bool,
}

/// One API call the simulator answered (control calls under `/__sim` are not recorded). A call is
/// recorded when its answer is ready, even if the client has hung up by then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The status the client saw; 0 when the connection was reset instead.
    pub status: u16,
    /// `SSWS`, `Bearer`, `DPoP` or `none`: the scheme of the `Authorization` header.
    pub auth: String,
    /// The simulator's clock when the call arrived.
    pub at: jiff::Timestamp,
}

/// Durations as whole milliseconds in the control API's JSON.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod optional_method {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Option<http::Method>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.serialize_some(m.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<http::Method>, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        raw.map(|m| m.to_ascii_uppercase().parse().map_err(serde::de::Error::custom)).transpose()
    }
}
