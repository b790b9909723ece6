//! `OktaClient`: the calls samlcred makes, with authentication, retries and pacing.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use url::Url;

use super::auth::{Auth, Authenticator};
use super::error::{ErrorBody, OktaError, Result};
use super::ratelimit::{BucketStatus, RateLimiter};
use super::transport::{Answer, MetricsHook, Outgoing, Transport, WriteFence};
use super::types::{AppQuery, Application, KeyCredential};

/// How often and how patiently failed requests are retried inside one call. The reconciler
/// requeues on top of this, so the numbers stay small.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest wait for a rate-limit reset inside a call, whether a 429 announced it or
    /// pacing needs it. Beyond it the call fails at once with `RateLimited` and the time to the
    /// reset, so that the caller comes back then instead of holding its worker meanwhile.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_rate_limit_wait: Duration::from_secs(120),
        }
    }
}

/// How to reach one Okta org.
#[derive(Clone)]
pub struct OrgConfig {
    pub base_url: Url,
    pub auth: Auth,
    /// Percent of each rate-limit bucket samlcred may use (1..=100).
    pub max_share_percent: u8,
    /// Allow `http://` for loopback hosts (tests, the local demo). Other hosts need https.
    pub allow_insecure_http: bool,
    /// Bound on one HTTP exchange, body included.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub metrics: Option<Arc<dyn MetricsHook>>,
    /// The org's rate limiter, shared with other clients of the same Okta org; `None` makes one.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Consulted before every write (leader election closes it on a replica that may have lost
    /// the lease); `None` lets every write through.
    pub fence: Option<Arc<dyn WriteFence>>,
}

impl OrgConfig {
    pub fn new(base_url: Url, auth: Auth) -> OrgConfig {
        OrgConfig {
            base_url,
            auth,
            max_share_percent: 50,
            allow_insecure_http: false,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            metrics: None,
            limiter: None,
            fence: None,
        }
    }
}

impl std::fmt::Debug for OrgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgConfig")
            .field("base_url", &self.base_url.as_str())
            .field("auth", &self.auth)
            .field("max_share_percent", &self.max_share_percent)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("metrics", &self.metrics.is_some())
            .field("fence", &self.fence.is_some())
            .finish()
    }
}

/// The client of one Okta org. Cheap to clone; clones share the token cache and rate limiter.
#[derive(Clone)]
pub struct OktaClient {
    inner: Arc<Inner>,
}

struct Inner {
    base_url: Url,
    auth: Authenticator,
    transport: Transport,
    retry: RetryPolicy,
}

impl std::fmt::Debug for OktaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaClient")
            .field("base_url", &self.inner.base_url.as_str())
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

/// Whether a request may be sent again after an outcome that leaves unknown if Okta acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idempotency {
    Idempotent,
    /// Generating (or cloning) a key twice leaves an orphan key that Okta cannot delete.
    NotIdempotent,
}

struct Call<'a> {
    method: Method,
    url: Url,
    body: Option<Value>,
    endpoint: &'a str,
    accept: &'static str,
    idempotency: Idempotency,
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// https always; http only when explicitly allowed and the host is loopback, so that an API
/// token or assertion never crosses a network in clear text.
pub fn check_base_url(url: &Url, allow_insecure_http: bool) -> Result<()> {
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http && is_loopback(url) => {}
        "http" if allow_insecure_http => {
            return Err(OktaError::Config(format!(
                "plain http is allowed only for loopback hosts, not {}",
                url.host_str().unwrap_or_default()
            )));
        }
        "http" => {
            return Err(OktaError::Config(
                "plain http is refused; use https (or allow insecure http for loopback)".into(),
            ));
        }
        other => return Err(OktaError::Config(format!("unsupported URL scheme {other}"))),
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(OktaError::Config("the org URL has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OktaError::Config("the org URL must not carry credentials".into()));
    }
    Ok(())
}

/// Installs ring as the process's rustls provider (reqwest is built without one). Harmless
/// when a provider is already installed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl OktaClient {
    pub fn new(config: OrgConfig) -> Result<OktaClient> {
        check_base_url(&config.base_url, config.allow_insecure_http)?;
        if config.retry.max_attempts == 0 {
            return Err(OktaError::Config("retry.max_attempts must be at least 1".into()));
        }
        install_crypto_provider();
        let http = reqwest::Client::builder()
            // Never follow redirects: the credentials were made for this host only, and a
            // redirect from the Okta API means something is wrong anyway.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .user_agent(concat!("samlcred/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| OktaError::Config(format!("HTTP client: {err}")))?;
        let auth = Authenticator::new(config.auth, &config.base_url)?;
        let limiter = match config.limiter {
            Some(shared) => {
                shared.set_max_share(config.max_share_percent);
                shared
            }
            None => Arc::new(RateLimiter::new(config.max_share_percent)),
        };
        Ok(OktaClient {
            inner: Arc::new(Inner {
                base_url: config.base_url,
                auth,
                transport: Transport {
                    http,
                    limiter,
                    metrics: config.metrics,
                    fence: config.fence,
                    timeout: config.timeout,
                    max_rate_limit_wait: config.retry.max_rate_limit_wait,
                },
                retry: config.retry,
            }),
        })
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The limiter's view of a bucket (`/api/v1/apps`, `/api/v1/apps/{id}`, `/oauth2/v1/token`).
    pub fn rate_limit_status(&self, bucket: &str) -> Option<BucketStatus> {
        self.inner.transport.limiter.status(bucket)
    }

    /// The scopes Okta granted to an OAuth client with its last token (`None` for API tokens, or
    /// before the first token).
    pub fn granted_scopes(&self) -> Option<Vec<String>> {
        match &self.inner.auth {
            Authenticator::OAuth(client) => client.granted_scopes(),
            Authenticator::ApiToken(_) => None,
        }
    }

    /// Whether an OAuth client currently binds its tokens with DPoP (false for API tokens).
    pub fn uses_dpop(&self) -> bool {
        match &self.inner.auth {
            Authenticator::OAuth(client) => client.uses_dpop(),
            Authenticator::ApiToken(_) => false,
        }
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.clear();
            path.extend(segments);
        }
        url
    }

    // ----- calls -----

    /// `GET /api/v1/apps/{appId}`.
    pub async fn get_app(&self, app_id: &str) -> Result<Application> {
        let url = self.url(&["api", "v1", "apps", app_id]);
        self.get_json(url, "GET /api/v1/apps/{appId}").await
    }

    /// Makes `kid` the app's active signing key: a fresh GET of the app, then a PUT of the
    /// minimal body `{name, label, signOnMode, credentials: {signing: {kid}}}`. The app is
    /// handled as raw JSON, never as a typed copy, so nothing samlcred does not model is lost
    /// or rewritten. Returns the app as Okta answered the PUT; the caller confirms the kid.
    pub async fn activate_key(&self, app_id: &str, kid: &str) -> Result<Application> {
        self.switch_key(app_id, kid, true).await
    }

    /// As [`OktaClient::activate_key`], without the PUT when the fresh GET shows that the app
    /// signs with `kid` already (a step repeated after a crash): the app as that GET showed it.
    pub async fn ensure_active_key(&self, app_id: &str, kid: &str) -> Result<Application> {
        self.switch_key(app_id, kid, false).await
    }

    async fn switch_key(&self, app_id: &str, kid: &str, always: bool) -> Result<Application> {
        let url = self.url(&["api", "v1", "apps", app_id]);
        let current: Value = self.get_json(url.clone(), "GET /api/v1/apps/{appId}").await?;
        if !always && current.pointer("/credentials/signing/kid").and_then(Value::as_str) == Some(kid) {
            return serde_json::from_value(current)
                .map_err(|e| OktaError::UndecodableBody { status: 200, reason: e.to_string() });
        }
        let body = activation_body(&current, kid)?;
        let answer = self
            .execute(Call {
                method: Method::PUT,
                url,
                body: Some(body),
                endpoint: "PUT /api/v1/apps/{appId}",
                accept: "application/json",
                // Setting the same kid twice has the same effect as once.
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        decode(&answer)
    }

    /// `GET /api/v1/apps/{appId}/credentials/keys`.
    pub async fn list_keys(&self, app_id: &str) -> Result<Vec<KeyCredential>> {
        let url = self.url(&["api", "v1", "apps", app_id, "credentials", "keys"]);
        self.get_json(url, "GET /api/v1/apps/{appId}/credentials/keys").await
    }

    /// `GET /api/v1/apps/{appId}/credentials/keys/{kid}`.
    pub async fn get_key(&self, app_id: &str, kid: &str) -> Result<KeyCredential> {
        let url = self.url(&["api", "v1", "apps", app_id, "credentials", "keys", kid]);
        self.get_json(url, "GET /api/v1/apps/{appId}/credentials/keys/{kid}").await
    }

    /// `POST /api/v1/apps/{appId}/credentials/keys/generate?validityYears=N`, N in 2..=10.
    ///
    /// Not retried after a timeout, a broken connection or a 5xx: Okta may have created the
    /// key already, keys cannot be deleted, and a second generate would leave an orphan. The
    /// error goes back to the caller, whose planner lists the keys to find a key created since
    /// it recorded its intent. Retried only when Okta provably did not act (429, 401 before a
    /// token refresh, connection refused).
    pub async fn generate_key(&self, app_id: &str, validity_years: u8) -> Result<KeyCredential> {
        if !(2..=10).contains(&validity_years) {
            return Err(OktaError::Config(format!("validityYears must be within 2..10, not {validity_years}")));
        }
        let mut url = self.url(&["api", "v1", "apps", app_id, "credentials", "keys", "generate"]);
        url.query_pairs_mut().append_pair("validityYears", &validity_years.to_string());
        let answer = self
            .execute(Call {
                method: Method::POST,
                url,
                body: None,
                endpoint: "POST /api/v1/apps/{appId}/credentials/keys/generate",
                accept: "application/json",
                idempotency: Idempotency::NotIdempotent,
            })
            .await?;
        decode(&answer)
    }

    /// `POST /api/v1/apps/{appId}/credentials/keys/{kid}/clone?targetAid=...`: the key (same kid
    /// and certificate) becomes a key of the target app too. Not retried after an unknown
    /// outcome, like `generate_key`; unlike generate, repeating it is safe, because Okta refuses a
    /// key the target already holds with a 400 (E0000001, "Key already exists ..."), which is
    /// [`Cloned::AlreadyThere`], not an error.
    pub async fn clone_key(&self, app_id: &str, kid: &str, target_app_id: &str) -> Result<Cloned> {
        let mut url = self.url(&["api", "v1", "apps", app_id, "credentials", "keys", kid, "clone"]);
        url.query_pairs_mut().append_pair("targetAid", target_app_id);
        let answer = self
            .execute(Call {
                method: Method::POST,
                url,
                body: None,
                endpoint: "POST /api/v1/apps/{appId}/credentials/keys/{kid}/clone",
                accept: "application/json",
                idempotency: Idempotency::NotIdempotent,
            })
            .await;
        match answer {
            Ok(answer) => Ok(Cloned::Created(Box::new(decode(&answer)?))),
            Err(err) if is_duplicate_clone(&err) => Ok(Cloned::AlreadyThere),
            Err(err) => Err(err),
        }
    }

    /// `GET /api/v1/apps/{appId}/sso/saml/metadata?kid=...`: the IdP metadata XML.
    pub async fn saml_metadata(&self, app_id: &str, kid: &str) -> Result<String> {
        let mut url = self.url(&["api", "v1", "apps", app_id, "sso", "saml", "metadata"]);
        url.query_pairs_mut().append_pair("kid", kid);
        let answer = self
            .execute(Call {
                method: Method::GET,
                url,
                body: None,
                endpoint: "GET /api/v1/apps/{appId}/sso/saml/metadata",
                accept: "application/xml",
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        // check_body has verified that the body is UTF-8 and starts like XML.
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        Ok(text)
    }

    /// `GET /api/v1/apps`, following every `Link: <...>; rel="next"` exactly as given.
    pub async fn list_apps(&self, query: &AppQuery) -> Result<Vec<Application>> {
        let mut url = self.url(&["api", "v1", "apps"]);
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(q) = &query.q {
                pairs.append_pair("q", q);
            }
            if let Some(filter) = &query.filter {
                pairs.append_pair("filter", filter);
            }
            if let Some(limit) = query.limit {
                pairs.append_pair("limit", &limit.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut apps = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(url);
        while let Some(page_url) = next.take() {
            if !seen.insert(page_url.to_string()) {
                return Err(OktaError::UndecodableBody {
                    status: 200,
                    reason: "the next link points back to a page already read".into(),
                });
            }
            let answer = self
                .execute(Call {
                    method: Method::GET,
                    url: page_url,
                    body: None,
                    endpoint: "GET /api/v1/apps",
                    accept: "application/json",
                    idempotency: Idempotency::Idempotent,
                })
                .await?;
            let page: Vec<Application> = decode(&answer)?;
            apps.extend(page);
            next = next_link(&answer.headers).map(|link| self.same_origin(&link)).transpose()?;
        }
        Ok(apps)
    }

    /// A cheap authenticated call for the org's Ready check: lists one app.
    pub async fn verify_credentials(&self) -> Result<()> {
        let mut url = self.url(&["api", "v1", "apps"]);
        url.query_pairs_mut().append_pair("limit", "1");
        let _: Vec<Value> = self.get_json(url, "GET /api/v1/apps").await?;
        Ok(())
    }

    // ----- plumbing -----

    /// A link from Okta is followed only on the org's own origin: credentials never go to
    /// another host.
    fn same_origin(&self, link: &str) -> Result<Url> {
        let url = self
            .inner
            .base_url
            .join(link)
            .map_err(|_| OktaError::UndecodableBody { status: 200, reason: "malformed next link".into() })?;
        if url.origin() != self.inner.base_url.origin() {
            return Err(OktaError::UndecodableBody {
                status: 200,
                reason: format!(
                    "next link leads to another host ({}); not followed",
                    url.host_str().unwrap_or_default()
                ),
            });
        }
        Ok(url)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url, endpoint: &str) -> Result<T> {
        let answer = self
            .execute(Call {
                method: Method::GET,
                url,
                body: None,
                endpoint,
                accept: "application/json",
                idempotency: Idempotency::Idempotent,
            })
            .await?;
        decode(&answer)
    }

    /// Sends a call until it succeeds, fails for good, or runs out of attempts.
    async fn execute(&self, call: Call<'_>) -> Result<Answer> {
        let inner = &*self.inner;
        let mut attempt = 0u32;
        let mut stale_token = None;
        let mut refreshed = false;
        let mut nonce_retried = false;
        loop {
            attempt += 1;
            let may_retry = attempt < inner.retry.max_attempts;
            let mut headers = HeaderMap::new();
            headers.insert(http::header::ACCEPT, HeaderValue::from_static(call.accept));
            let body = match &call.body {
                Some(value) => {
                    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    Some(
                        serde_json::to_vec(value)
                            .map_err(|err| OktaError::Config(format!("cannot encode request: {err}")))?,
                    )
                }
                None => None,
            };
            // A failure to get a token means the resource request was never sent, so even a
            // generate may be tried again.
            let presented = match inner
                .auth
                .authorize(&inner.transport, &call.method, &call.url, stale_token, &mut headers)
                .await
            {
                Ok(presented) => presented,
                Err(err) if retry_in_place(&err) && may_retry => {
                    self.pause(&err, attempt).await;
                    continue;
                }
                Err(err) => return Err(err),
            };
            let outcome = inner
                .transport
                .send(Outgoing {
                    method: call.method.clone(),
                    url: call.url.clone(),
                    headers,
                    body,
                    endpoint: call.endpoint,
                })
                .await;
            let answer = match outcome {
                Ok(answer) => answer,
                Err(err) => {
                    // Only a refused connection proves the request never reached Okta.
                    let unsent = matches!(err, OktaError::Transport { connect: true, .. });
                    let repeatable = call.idempotency == Idempotency::Idempotent || unsent;
                    if retry_in_place(&err) && repeatable && may_retry {
                        self.pause(&err, attempt).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            match answer.status {
                200..=299 => match check_body(&answer, call.accept) {
                    Ok(()) => return Ok(answer),
                    // A spoiled body of a read is just read again; a spoiled body of a generate
                    // still means the key exists, so that error goes back to the caller.
                    Err(err) if call.idempotency == Idempotency::Idempotent && may_retry => {
                        self.pause(&err, attempt).await;
                        continue;
                    }
                    Err(err) => return Err(err),
                },
                300..=399 => {
                    let location = answer
                        .headers
                        .get(http::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    return Err(OktaError::Redirect { status: answer.status, location });
                }
                401 => {
                    // A DPoP resource server may demand a nonce first; that is not a bad token.
                    if presented.dpop
                        && inner.auth.take_resource_nonce(&answer.headers)
                        && !nonce_retried
                        && asks_for_nonce(&answer)
                    {
                        nonce_retried = true;
                        attempt -= 1;
                        continue;
                    }
                    if inner.auth.refreshes_tokens() && !refreshed {
                        refreshed = true;
                        stale_token = presented.token_generation;
                        attempt -= 1;
                        tracing::debug!(endpoint = call.endpoint, "401 from Okta; refreshing the token once");
                        continue;
                    }
                    return Err(OktaError::from_status(401, &answer.body, Duration::ZERO));
                }
                429 => {
                    let err = OktaError::from_status(429, &answer.body, answer.rate.reset_after());
                    // Okta did not act on a 429, so any call may be repeated; the limiter
                    // holds the next attempt until the reset.
                    if may_retry && answer.rate.reset_after() <= inner.retry.max_rate_limit_wait {
                        tracing::warn!(
                            endpoint = call.endpoint,
                            error_id = err.error_id(),
                            reset_after_ms = answer.rate.reset_after().as_millis() as u64,
                            "Okta rate limit hit; waiting for the reset"
                        );
                        continue;
                    }
                    return Err(err);
                }
                status @ 500..=599 => {
                    let err = OktaError::from_status(status, &answer.body, Duration::ZERO);
                    if call.idempotency == Idempotency::Idempotent && may_retry {
                        self.pause(&err, attempt).await;
                        continue;
                    }
                    return Err(err);
                }
                status => {
                    return Err(OktaError::from_status(status, &answer.body, Duration::ZERO));
                }
            }
        }
    }

    /// Jittered exponential backoff before the next attempt.
    async fn pause(&self, err: &OktaError, attempt: u32) {
        let retry = &self.inner.retry;
        let exponential = retry.base_delay.saturating_mul(1u32 << (attempt - 1).min(16)).min(retry.max_delay);
        // Full delay halved plus a random half: spreads retries of many reconciles apart.
        let half = exponential / 2;
        let jitter = half.mul_f64(rand::random::<f64>());
        let delay = half + jitter;
        tracing::debug!(
            error = %err,
            attempt,
            delay_ms = delay.as_millis() as u64,
            "retrying Okta request"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Whether a failed attempt is worth repeating now. A `RateLimited` from the limiter already waited
/// as long as the call may; trying again would only fail the same way.
fn retry_in_place(err: &OktaError) -> bool {
    err.is_retryable() && !matches!(err, OktaError::RateLimited { .. })
}

fn asks_for_nonce(answer: &Answer) -> bool {
    let in_header = answer
        .headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("use_dpop_nonce"));
    in_header || ErrorBody::parse(&answer.body).error_code.as_deref() == Some("use_dpop_nonce")
}

/// Whether a success answer's body is complete in its format, before it is decoded to a type.
fn check_body(answer: &Answer, accept: &str) -> Result<()> {
    let undecodable = |reason: String| OktaError::UndecodableBody { status: answer.status, reason };
    if accept == "application/json" {
        serde_json::from_slice::<serde::de::IgnoredAny>(&answer.body)
            .map(|_| ())
            .map_err(|err| undecodable(format!("not JSON: {err}")))
    } else {
        let text = std::str::from_utf8(&answer.body).map_err(|_| undecodable("not UTF-8 text".into()))?;
        if text.trim_start().starts_with('<') { Ok(()) } else { Err(undecodable("not XML".into())) }
    }
}

/// What [`OktaClient::clone_key`] did.
#[derive(Debug, Clone)]
pub enum Cloned {
    /// Okta answered 201 with the key as the target app now holds it.
    Created(Box<KeyCredential>),
    /// The target app held the key already (a clone repeated after a crash).
    AlreadyThere,
}

/// Okta's answer to a clone of a key the target already holds: 400, E0000001 "Api validation
/// failed: cloneKey", cause "Key already exists in the list of key credentials for the target
/// app." (the spec's ErrorKeyCredentialCloneDuplicateKey). Other validation errors stay errors.
fn is_duplicate_clone(err: &OktaError) -> bool {
    let OktaError::Validation { status: 400, body } = err else { return false };
    body.error_code.as_deref() == Some("E0000001")
        && body.error_causes.iter().any(|cause| cause.to_ascii_lowercase().contains("already exists"))
}

fn decode<T: DeserializeOwned>(answer: &Answer) -> Result<T> {
    serde_json::from_slice(&answer.body).map_err(|err| OktaError::UndecodableBody {
        status: answer.status,
        reason: if answer.body.is_empty() { "empty body".into() } else { format!("not the expected JSON: {err}") },
    })
}

/// The minimal PUT body that switches the signing key, built from the app as Okta sent it.
fn activation_body(app: &Value, kid: &str) -> Result<Value> {
    let field = |name: &str| app.get(name).filter(|v| !v.is_null()).cloned();
    let (Some(label), Some(sign_on_mode)) = (field("label"), field("signOnMode")) else {
        return Err(OktaError::UndecodableBody { status: 200, reason: "the app has no label or signOnMode".into() });
    };
    let mut body = Map::new();
    if let Some(name) = field("name") {
        body.insert("name".into(), name);
    }
    body.insert("label".into(), label);
    body.insert("signOnMode".into(), sign_on_mode);
    body.insert("credentials".into(), json!({"signing": {"kid": kid}}));
    Ok(Value::Object(body))
}

/// The target of `rel="next"` among the Link headers, verbatim.
fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(http::header::LINK) {
        let Ok(text) = value.to_str() else { continue };
        for link in text.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|param| {
                let param = param.trim();
                let Some((key, value)) = param.split_once('=') else {
                    return false;
                };
                key.trim().eq_ignore_ascii_case("rel")
                    && value.trim().trim_matches('"').split_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_rules() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(check_base_url(&url("https://acme.okta.com"), false).is_ok());
        assert!(check_base_url(&url("http://acme.okta.com"), false).is_err());
        assert!(check_base_url(&url("http://acme.okta.com"), true).is_err());
        assert!(check_base_url(&url("http://127.0.0.1:8080"), false).is_err());
        assert!(check_base_url(&url("http://127.0.0.1:8080"), true).is_ok());
        assert!(check_base_url(&url("http://localhost:8080"), true).is_ok());
        assert!(check_base_url(&url("http://[::1]:8080"), true).is_ok());
        assert!(check_base_url(&url("ftp://acme.okta.com"), true).is_err());
        assert!(check_base_url(&url("https://user:pw@acme.okta.com"), false).is_err());
    }

    #[test]
    fn activation_body_is_minimal() {
        let app = json!({
            "id": "0oa1", "name": "acme_saml", "label": "Acme", "signOnMode": "SAML_2_0",
            "status": "ACTIVE", "settings": {"signOn": {"audience": "x"}},
            "credentials": {"signing": {"kid": "old"}, "userNameTemplate": {"template": "t"}}
        });
        let body = activation_body(&app, "new").unwrap();
        assert_eq!(
            body,
            json!({"name": "acme_saml", "label": "Acme", "signOnMode": "SAML_2_0",
                   "credentials": {"signing": {"kid": "new"}}})
        );
        assert!(activation_body(&json!({"id": "x"}), "k").is_err());
    }

    #[test]
    fn next_link_is_taken_verbatim() {
        let mut headers = HeaderMap::new();
        headers.append(
            http::header::LINK,
            HeaderValue::from_static("<https://acme.okta.com/api/v1/apps?limit=2>; rel=\"self\""),
        );
        headers.append(
            http::header::LINK,
            HeaderValue::from_static("<https://acme.okta.com/api/v1/apps?after=0oa2&limit=2>; rel=\"next\""),
        );
        assert_eq!(next_link(&headers).as_deref(), Some("https://acme.okta.com/api/v1/apps?after=0oa2&limit=2"));
        let mut combined = HeaderMap::new();
        combined.insert(http::header::LINK, HeaderValue::from_static("<a?x=1>; rel=\"self\", <b?after=9>; rel=next"));
        assert_eq!(next_link(&combined).as_deref(), Some("b?after=9"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn urls_encode_path_segments() {
        let client = OktaClient::new(OrgConfig::new(
            Url::parse("https://acme.okta.com/").unwrap(),
            Auth::ApiToken("t".to_string().into()),
        ))
        .unwrap();
        assert_eq!(client.url(&["api", "v1", "apps", "a/b?c"]).as_str(), "https://acme.okta.com/api/v1/apps/a%2Fb%3Fc");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let config = OrgConfig::new(
            Url::parse("https://acme.okta.com").unwrap(),
            Auth::ApiToken("super-secret-token".to_string().into()),
        );
        assert!(!format!("{config:?}").contains("super-secret-token"));
        let client = OktaClient::new(config).unwrap();
        assert!(!format!("{client:?}").contains("super-secret-token"));
    }

    #[test]
    fn refuses_out_of_range_validity_before_calling_okta() {
        let client = OktaClient::new(OrgConfig::new(
            Url::parse("https://acme.okta.com").unwrap(),
            Auth::ApiToken("t".to_string().into()),
        ))
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for years in [0, 1, 11] {
            let err = runtime.block_on(client.generate_key("0oa1", years)).unwrap_err();
            assert!(matches!(err, OktaError::Config(_)), "{err}");
        }
    }
}
