//! okta-sim: a stand-in for the parts of Okta's Apps API that samlcred uses, faithful enough that
//! the operator's tests and the local demo can run against it instead of a real org.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use okta_sim::{OktaSim, SeedApp, SeedKey, SimConfig};
//! let sim = OktaSim::start(SimConfig::default()).await?;
//! sim.add_api_token("test-token");
//! let now = sim.now();
//! let app = sim.seed_app(SeedApp {
//!     id: None,
//!     label: "Grafana".into(),
//!     keys: vec![SeedKey { not_before: now, not_after: now + jiff::SignedDuration::from_hours(24 * 30) }],
//!     active: 0,
//! });
//! println!("{}/api/v1/apps/{}", sim.base_url(), app.id);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod apps;
pub mod auth;
pub mod config;
pub mod control;
pub mod credentials;
pub mod errors;
pub mod faults;
pub mod keypool;
pub mod keys;
pub mod metadata;
pub mod org;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod sso;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{
    BucketLimit, CallRecord, Fault, FaultKind, OAuthClient, RateLimitOverride, RateLimits, SeedApp, SeedKey, SeededApp,
    SimConfig, SsoInfo, SsoUpdate,
};

/// A running simulator, serving on a spawned tokio task until `shutdown` (or drop).
pub struct OktaSim {
    state: Arc<SimState>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

use state::SimState;

impl OktaSim {
    /// Binds `config.bind` and starts serving.
    pub async fn start(config: SimConfig) -> anyhow::Result<OktaSim> {
        let listener =
            tokio::net::TcpListener::bind(config.bind).await.with_context(|| format!("binding {}", config.bind))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState::new(config, format!("http://{addr}")));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, server::router(state.clone()), stopped));
        tracing::info!(base_url = %state.base_url, "okta-sim listening");
        Ok(OktaSim { state, stop, task: Some(task) })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Accepts `Authorization: SSWS <token>`, with every scope.
    pub fn add_api_token(&self, token: &str) {
        self.state.auth().api_tokens.insert(token.to_string());
    }

    /// Stops accepting `Authorization: SSWS <token>`, as revoking it in the Admin Console does.
    pub fn revoke_api_token(&self, token: &str) {
        self.state.auth().api_tokens.remove(token);
    }

    /// Forgets every DPoP nonce handed out and every access token issued: the next call with a
    /// token is refused (401), and the next token request with an old nonce is answered
    /// `use_dpop_nonce` with a new one, as when Okta rotates its nonces.
    pub fn rotate_dpop_nonces(&self) {
        let mut auth = self.state.auth();
        auth.dpop_nonces.clear();
        auth.access_tokens.clear();
    }

    /// Every secret a client presented so far (API tokens, access tokens issued, client assertions,
    /// DPoP proofs; the first 10,000 distinct ones): what must appear nowhere a client prints.
    pub fn presented_secrets(&self) -> Vec<String> {
        self.state.auth().presented.iter().cloned().collect()
    }

    pub fn add_oauth_client(&self, client: OAuthClient) {
        self.state.auth().clients.insert(client.client_id.clone(), client);
    }

    /// Creates a SAML 2.0 app with real keys and certificates valid for the given dates.
    ///
    /// Panics when the seed is inconsistent (duplicate id, `active` out of range, a key whose
    /// `not_before` is not before its `not_after`): a test bug, not a condition to handle.
    pub fn seed_app(&self, app: SeedApp) -> SeededApp {
        self.state.seed_app(app).unwrap_or_else(|e| panic!("okta-sim: seed_app: {e}"))
    }

    /// Adds a key credential to an app without making it active; returns its kid.
    /// Panics when the app does not exist or the dates are inconsistent.
    pub fn add_key(&self, app_id: &str, key: SeedKey) -> String {
        self.state.add_key(app_id, key).unwrap_or_else(|e| panic!("okta-sim: add_key: {e}"))
    }

    /// Switches the app's signing key out of band, as an admin in the Admin Console would.
    /// Panics when the app or key does not exist.
    pub fn set_active_kid(&self, app_id: &str, kid: &str) {
        self.state.set_active_kid(app_id, kid).unwrap_or_else(|e| panic!("okta-sim: set_active_kid: {e}"));
    }

    /// How the app signs people in: its SSO URL, IdP entityID, subject, ACS URL and audience.
    /// Panics when the app does not exist.
    pub fn sso(&self, app_id: &str) -> SsoInfo {
        self.state.sso(app_id).unwrap_or_else(|e| panic!("okta-sim: sso: {e}"))
    }

    /// Chooses who signs in and/or changes `settings.signOn`; returns the result.
    /// Panics when the app does not exist or the update is invalid.
    pub fn update_sso(&self, app_id: &str, update: SsoUpdate) -> SsoInfo {
        self.state.update_sso(app_id, update).unwrap_or_else(|e| panic!("okta-sim: update_sso: {e}"))
    }

    pub fn remove_app(&self, app_id: &str) {
        self.state.remove_app(app_id);
    }

    pub fn active_kid(&self, app_id: &str) -> Option<String> {
        self.state.active_kid(app_id)
    }

    /// The app's key credentials as JWKs, exactly as `GET .../credentials/keys` returns them.
    pub fn keys(&self, app_id: &str) -> Vec<serde_json::Value> {
        self.state.keys(app_id)
    }

    /// The simulator's clock: drives certificate dates of generated keys, `created` and
    /// `lastUpdated`, and access-token expiry. (Rate-limit windows and the `exp`/`iat` of
    /// client-signed JWTs use real time.)
    pub fn now(&self) -> jiff::Timestamp {
        self.state.now()
    }

    pub fn advance_clock(&self, by: Duration) {
        self.state.advance_clock(by);
    }

    pub fn inject_fault(&self, fault: Fault) {
        self.state.faults.add(fault);
    }

    /// Drops every pending fault: Okta behaves again from the next call on.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Every API call (control calls excluded), in the order they were answered (which is the
    /// order they arrived unless calls overlap, e.g. under a latency fault); `at` is the arrival.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.state.calls()
    }

    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.state.set_rate_limits(limits);
    }

    /// API calls being served right now (what the concurrency limit counts).
    pub fn in_flight(&self) -> usize {
        self.state.concurrency.in_flight()
    }

    /// Forgets apps, credentials, faults and calls; the clock and limits return to the start.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Stops accepting connections and closes open ones.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for OktaSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
