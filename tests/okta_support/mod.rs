//! Fixtures shared by the Okta client integration tests (`okta_auth`, `okta_redaction`,
//! `okta_calls`, `okta_ratelimit`): each test binary includes this module with `mod okta_support;`.

#![allow(dead_code)]

pub mod hostile;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use okta_sim::{OAuthClient, OktaSim, SeedApp, SeedKey, SeededApp};
use pkcs1::der::Decode;
use samlcred::okta::{Auth, DpopMode, OrgConfig, PrivateKey, RetryPolicy};
use serde_json::json;
use url::Url;

/// A throwaway RSA-2048 key made for these tests only (generating one in a debug build takes
/// many seconds).
pub const TEST_RSA_PEM: &str = include_str!("rsa-2048.pem");

pub const SCOPES: [&str; 2] = ["okta.apps.read", "okta.apps.manage"];

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The test RSA key as a private JWK with every CRT parameter, the form Okta's Admin Console
/// hands out.
pub fn rsa_private_jwk() -> String {
    let (_, der) = pem_rfc7468::decode_vec(TEST_RSA_PEM.as_bytes()).unwrap();
    let key = pkcs1::RsaPrivateKey::from_der(&der).unwrap();
    json!({
        "kty": "RSA",
        "n": b64(key.modulus.as_bytes()),
        "e": b64(key.public_exponent.as_bytes()),
        "d": b64(key.private_exponent.as_bytes()),
        "p": b64(key.prime1.as_bytes()),
        "q": b64(key.prime2.as_bytes()),
        "dp": b64(key.exponent1.as_bytes()),
        "dq": b64(key.exponent2.as_bytes()),
        "qi": b64(key.coefficient.as_bytes()),
    })
    .to_string()
}

pub fn ec_private_jwk(seed: u8) -> String {
    let key = PrivateKey::from_p256(&p256::SecretKey::from_slice(&[seed; 32]).unwrap()).unwrap();
    let mut jwk = key.public_jwk().clone();
    jwk["d"] = b64(&[seed; 32]).into();
    jwk.to_string()
}

pub fn ec_pkcs8_pem(seed: u8) -> String {
    use p256::pkcs8::EncodePrivateKey;
    p256::SecretKey::from_slice(&[seed; 32]).unwrap().to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap().to_string()
}

pub fn oauth(client_id: &str, private_key: &str, dpop: DpopMode) -> Auth {
    Auth::OAuth {
        client_id: client_id.into(),
        private_key: PrivateKey::parse(private_key).unwrap(),
        key_id: None,
        scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
        dpop,
    }
}

/// The retry policy of every Okta client test: three attempts with short backoff.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(5),
    }
}

/// An org config for the simulator (plain HTTP allowed) with the given request timeout.
pub fn org_config(base_url: &str, auth: Auth, timeout: Duration) -> OrgConfig {
    let mut config = OrgConfig::new(Url::parse(base_url).unwrap(), auth);
    config.allow_insecure_http = true;
    config.timeout = timeout;
    config.retry = retry_policy();
    config
}

/// The org config of the authentication tests: a 5 s request timeout.
pub fn config(base_url: &str, auth: Auth) -> OrgConfig {
    org_config(base_url, auth, Duration::from_secs(5))
}

pub fn register(sim: &OktaSim, client_id: &str, private_key: &str, require_dpop: bool) {
    let public_jwk = PrivateKey::parse(private_key).unwrap().public_jwk().clone();
    sim.add_oauth_client(OAuthClient {
        client_id: client_id.into(),
        public_jwk,
        scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
        require_dpop,
    });
}

pub fn seed(sim: &OktaSim) -> SeededApp {
    let now = sim.now();
    sim.seed_app(SeedApp {
        id: None,
        label: "Auth".into(),
        keys: vec![SeedKey {
            not_before: now - jiff::SignedDuration::from_hours(24),
            not_after: now + jiff::SignedDuration::from_hours(24 * 90),
        }],
        active: 0,
    })
}
