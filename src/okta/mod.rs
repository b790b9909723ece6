//! The Okta Apps API client: samlcred's only road to Okta.
//!
//! No Kubernetes in here. One `OktaClient` per org holds the credentials (API token, or OAuth
//! client credentials with `private_key_jwt` and optional DPoP), a token cache with a single
//! refresher, and a rate limiter that keeps samlcred within its share of each Okta bucket.
//!
//! - `client`: the calls (`get_app`, `activate_key`, keys, metadata, `list_apps`), retries.
//! - `transport`: one paced, timed, metered HTTP exchange.
//! - `auth`: SSWS, OAuth token requests, DPoP proofs, private key parsing.
//! - `ratelimit`: pacing by `X-Rate-Limit-*` headers.
//! - `types`, `cert`, `error`: what Okta returns and what can go wrong.

pub mod auth;
pub mod cert;
pub mod client;
pub mod error;
pub mod ratelimit;
pub mod transport;
pub mod types;

pub use auth::{Auth, DEFAULT_SCOPES, DpopMode, PrivateKey};
pub use cert::CertificateInfo;
pub use client::{Cloned, OktaClient, OrgConfig, RetryPolicy, check_base_url, install_crypto_provider};
pub use error::{ErrorBody, ErrorClass, OktaError};
pub use ratelimit::{BucketStatus, RateLimiter};
pub use transport::{MetricsHook, RequestRecord, WriteFence};
pub use types::{AppQuery, Application, ApplicationCredentials, KeyCredential, SigningCredential};
