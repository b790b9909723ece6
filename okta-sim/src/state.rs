//! The simulator's whole state, shared by the Okta API, the control API and `OktaSim`.

use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::auth::AuthBook;
use crate::config::{CallRecord, RateLimits, SeedApp, SeedKey, SeededApp, SimConfig, SsoInfo, SsoUpdate};
use crate::faults::FaultBook;
use crate::keys::{self, KeyCredential};
use crate::org::{App, Org, new_app_id};
use crate::ratelimit::{ConcurrencyLimit, RateLimiter};

pub struct SimState {
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub base_url: String,
    pub org_name: String,
    /// How far the simulator's clock is ahead of real time.
    clock_offset: Mutex<SignedDuration>,
    pub org: Mutex<Org>,
    pub auth: Mutex<AuthBook>,
    pub faults: FaultBook,
    calls: Mutex<Vec<CallRecord>>,
    pub rate: RateLimiter,
    pub concurrency: ConcurrencyLimit,
    initial: SimConfig,
}

/// Why a control operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no app with id {0}")]
    NoSuchApp(String),
    #[error("app {0} has no key {1}")]
    NoSuchKey(String, String),
    #[error("an app with id {0} already exists")]
    DuplicateApp(String),
    #[error("active index {0} is out of range for {1} keys")]
    ActiveOutOfRange(usize, usize),
    #[error("the subject must be non-empty text without control characters")]
    InvalidSubject,
    #[error("the app has no settings.signOn object to merge into")]
    NoSignOnSettings,
    #[error("cannot issue the key: {0}")]
    Key(#[from] anyhow::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimState {
    pub fn new(config: SimConfig, base_url: String) -> Self {
        SimState {
            base_url,
            org_name: config.org_name.clone(),
            clock_offset: Mutex::new(SignedDuration::ZERO),
            org: Mutex::new(Org::default()),
            auth: Mutex::new(AuthBook::default()),
            faults: FaultBook::default(),
            calls: Mutex::new(Vec::new()),
            rate: RateLimiter::new(config.rate_limits),
            concurrency: ConcurrencyLimit::new(config.concurrency_limit),
            initial: config,
        }
    }

    pub fn org(&self) -> std::sync::MutexGuard<'_, Org> {
        lock(&self.org)
    }

    pub fn auth(&self) -> std::sync::MutexGuard<'_, AuthBook> {
        lock(&self.auth)
    }

    /// The simulator's clock: real time plus whatever `advance_clock` added.
    pub fn now(&self) -> Timestamp {
        Timestamp::now() + *lock(&self.clock_offset)
    }

    pub fn advance_clock(&self, by: Duration) {
        let by = SignedDuration::try_from(by).unwrap_or(SignedDuration::MAX);
        let mut offset = lock(&self.clock_offset);
        *offset = offset.saturating_add(by);
    }

    /// Issues a credential; slow (takes a pooled RSA key and signs a certificate), so callers
    /// must not hold a lock on the org meanwhile.
    pub fn issue_key(&self, not_before: Timestamp, not_after: Timestamp) -> anyhow::Result<KeyCredential> {
        if self.initial.reuse_stock_keys {
            let pkcs8 = crate::keypool::stock_key_round_robin();
            return keys::issue_with_key(&pkcs8, &self.org_name, not_before, not_after, self.now());
        }
        keys::issue(&self.org_name, not_before, not_after, self.now())
    }

    pub fn seed_app(&self, seed: SeedApp) -> Result<SeededApp, ControlError> {
        if !seed.keys.is_empty() && seed.active >= seed.keys.len() {
            return Err(ControlError::ActiveOutOfRange(seed.active, seed.keys.len()));
        }
        let id = seed.id.clone().unwrap_or_else(new_app_id);
        if self.org().app(&id).is_some() {
            return Err(ControlError::DuplicateApp(id));
        }
        let keys =
            seed.keys.iter().map(|k| self.issue_key(k.not_before, k.not_after)).collect::<anyhow::Result<Vec<_>>>()?;
        let kids: Vec<String> = keys.iter().map(|k| k.kid.clone()).collect();
        let mut app = App::new(id.clone(), seed.label, &self.org_name, &self.base_url, self.now());
        app.active_kid = kids.get(seed.active).cloned();
        app.keys = keys;
        let mut org = self.org();
        if org.app(&id).is_some() {
            return Err(ControlError::DuplicateApp(id));
        }
        org.apps.push(app);
        Ok(SeededApp { id, kids })
    }

    pub fn add_key(&self, app_id: &str, key: SeedKey) -> Result<String, ControlError> {
        if self.org().app(app_id).is_none() {
            return Err(ControlError::NoSuchApp(app_id.to_string()));
        }
        let credential = self.issue_key(key.not_before, key.not_after)?;
        let kid = credential.kid.clone();
        let mut org = self.org();
        let app = org.app_mut(app_id).ok_or_else(|| ControlError::NoSuchApp(app_id.to_string()))?;
        app.keys.push(credential);
        Ok(kid)
    }

    /// What an admin switching the key in the Admin Console does.
    pub fn set_active_kid(&self, app_id: &str, kid: &str) -> Result<(), ControlError> {
        let now = self.now();
        let mut org = self.org();
        let app = org.app_mut(app_id).ok_or_else(|| ControlError::NoSuchApp(app_id.to_string()))?;
        if app.key(kid).is_none() {
            return Err(ControlError::NoSuchKey(app_id.to_string(), kid.to_string()));
        }
        app.active_kid = Some(kid.to_string());
        app.last_updated = now;
        Ok(())
    }

    pub fn sso(&self, app_id: &str) -> Result<SsoInfo, ControlError> {
        let org = self.org();
        let app = org.app(app_id).ok_or_else(|| ControlError::NoSuchApp(app_id.to_string()))?;
        Ok(SsoInfo {
            url: app.sso_url(&self.base_url),
            entity_id: app.entity_id(),
            subject: app.sso_subject.clone(),
            acs_url: app.sign_on("ssoAcsUrl").map(str::to_string),
            audience: app.sign_on("audience").map(str::to_string),
        })
    }

    pub fn update_sso(&self, app_id: &str, update: SsoUpdate) -> Result<SsoInfo, ControlError> {
        if update.subject.as_deref().is_some_and(|s| !crate::sso::valid_subject(s)) {
            return Err(ControlError::InvalidSubject);
        }
        {
            let mut org = self.org();
            let app = org.app_mut(app_id).ok_or_else(|| ControlError::NoSuchApp(app_id.to_string()))?;
            if let Some(fields) = update.sign_on {
                let sign_on = app
                    .settings
                    .get_mut("signOn")
                    .and_then(serde_json::Value::as_object_mut)
                    .ok_or(ControlError::NoSignOnSettings)?;
                sign_on.extend(fields);
            }
            if let Some(subject) = update.subject {
                app.sso_subject = subject;
            }
        }
        self.sso(app_id)
    }

    pub fn remove_app(&self, app_id: &str) -> bool {
        let mut org = self.org();
        let before = org.apps.len();
        org.apps.retain(|a| a.id != app_id);
        org.apps.len() != before
    }

    pub fn active_kid(&self, app_id: &str) -> Option<String> {
        self.org().app(app_id).and_then(|a| a.active_kid.clone())
    }

    pub fn keys(&self, app_id: &str) -> Vec<serde_json::Value> {
        self.org().app(app_id).map(|a| a.keys.iter().map(KeyCredential::to_jwk).collect()).unwrap_or_default()
    }

    pub fn record_call(&self, record: CallRecord) {
        lock(&self.calls).push(record);
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.calls).clone()
    }

    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.rate.set_limits(limits);
    }

    /// Back to the state right after start: no apps, credentials, faults or calls; real time;
    /// the configured limits.
    pub fn reset(&self) {
        *self.org() = Org::default();
        *self.auth() = AuthBook::default();
        self.faults.clear();
        lock(&self.calls).clear();
        *lock(&self.clock_offset) = SignedDuration::ZERO;
        self.rate.set_limits(self.initial.rate_limits);
        self.concurrency.set_limit(self.initial.concurrency_limit);
    }
}
