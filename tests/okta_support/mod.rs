//! Fixtures shared by the Okta client integration tests (`okta_auth`, `okta_redaction`,
//! `okta_calls`, `okta_ratelimit`): each test binary includes this module with `mod okta_support;`.

#![allow(dead_code)]

pub mod hostile;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use okta_sim::{OAuthClient, OktaSim, SeedApp, SeedKey, SeededApp};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use samlcred::okta::{Auth, DpopMode, OrgConfig, PrivateKey, RetryPolicy};
use serde_json::json;
use url::Url;

/// A throwaway RSA-2048 key made for these tests only (generating one in a debug build takes
/// many seconds).
pub const TEST_RSA_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAnl/rafvFHfaxT/wEw2Ewe9AebyLYFp5uCfJmoQvoitobSYVD\nJfeI5mfvBJFn0BeBRas6Jv4aJVsbmbcSJu9l+671WYTapoAXx1CB8OR7OafEcufo\nJXSrwdFjbVbkdPL8pxTWRT2JLP4+VsgF5RehdETm6c3nHGLaOu4M6TfbFn4u64vg\nkYlalIxMpe7gdkIqjjCxJxh3WyWLSuf4RG181ANtRbvr5omsRE2FUryG899J4+Ap\nsjsRtm3vmAnkjNtA08pcoe9RQzxHplZme9cNaLO5AkHryJ0AyAmmou6ws1LEyTUJ\na6bA/6uw7eU6AA1j4mQd8l1m1WcqznWZJSqaEQIDAQABAoIBAADpH/M9OYjEEoiZ\nXt+kD0F5qgsijKfd+QJWofoawEINd1WzY0ufF5WXkxDC00bSM8dA8PXTb+FiG4+v\n3/YDBLeZ7cWPgCsFQTMUsUKU1b6Nn+a3Pab60O1YNQr7vRbiZMst0VOW7dMpPRYw\n/T5a0JiuDWkvwBHyNuYFg2PTPeUXCf7DKj/GFtzPYDtL2BwSg7d9oVT7Xhz84Xax\nJAXS8cW+yOCirVVShn1Kd/pVOS7rcTWYLeTqV117l/a+d253K1KoD8izrD9BF0+q\nvQ1boyZv9o9h7rBsyi+BRIpnANVrFnyAKytUJnkjhCooM8VxUFzYspe7HbxydVi2\n7nTRpp8CgYEA2zUKad0WZ3AEIXkadRafjuRn3IB7ISobesE0ytoY0qvhqg57fj5U\n80mRmgBVjpLvUN4djKRVDBXXk6NTjOZe3OQzs44E4Q6rcV3GVU0PL7DOn/T52Gdu\nso866FUNkVjsOudp5osEjDj9r3SJeOMsirAjYAJC5PUfX6dKPc7As0cCgYEAuPUC\niBHbBgGcLld2u9HLSR6CaZPpBOGsWRC0nd75VyXUHt5VZWReEGZwVE1lmb0+PHqu\n65FOHGRETtGo+dVn0GjuHCk7M64NVtgY62neR2tHQ9eeTcl5hktLfErK4ibv1Ma9\nqQzM6b0QFAnPSrHv0CSDBPpg14s66bgiS8TZA+cCgYEAkL+5nKZNgQhK8f+SJPdH\nbYgNvWFp7UBs3OZwAfN6qMKvRShDC94FIpHV/6dw17DXLsM9J/3r2wshS3ByX3xP\n7/UQ3uRM/IA/XaDassEr4gYSqzWNNgU259oEwB5J00yw0US2fXIXErEfc5i0nosE\ngqBE+8UCf0YN7Y/+SkoYnUkCgYAAhaiJK8u7e5uuQc7y/sedIDnsBF/fBKgQ5Ewu\nOefoSBIOOEBzddISJ8ffZQyJX5BiaVI/FfzrdZj/w/W/JswROYqah79ECRS+jwOa\n/oSDHRlpZp1qyMvQBjxjUG68LrH0ns8AQCn/6um1tMViB5iOtNut0usdEKaM7Fkk\nb5zRNwKBgA0iKYPed693xhHcbSjg/MI0Mh9I1UHXUoQGdp2M1FWyZnFM4mWZst4s\nmjNXfV4mIKlYTAXzDgkPCrrYnRDB8EJRTnuk0SXLQYVrfAQvHmS2bX2BbOQzexXC\nf6nMNwA7ChJRrzH6CNyeKVn28u7MoYv6EWG4T29G9gOTR4dn5gaL\n-----END RSA PRIVATE KEY-----";

pub const SCOPES: [&str; 2] = ["okta.apps.read", "okta.apps.manage"];

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The test RSA key as a private JWK, the form Okta's Admin Console hands out.
pub fn rsa_private_jwk() -> String {
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(TEST_RSA_PEM).unwrap();
    let primes = key.primes();
    json!({
        "kty": "RSA",
        "n": b64(&key.n().to_bytes_be()),
        "e": b64(&key.e().to_bytes_be()),
        "d": b64(&key.d().to_bytes_be()),
        "p": b64(&primes[0].to_bytes_be()),
        "q": b64(&primes[1].to_bytes_be()),
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
