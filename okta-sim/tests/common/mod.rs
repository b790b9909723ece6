//! Helpers shared by the integration tests: a started simulator, an HTTP client, and OAuth
//! client keys that sign assertions and DPoP proofs.
#![allow(dead_code)] // each test binary uses a different subset

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use okta_sim::{OktaSim, RateLimits, SeedApp, SeedKey, SeededApp, SimConfig};
use rand::RngCore as _;
use serde_json::{Value, json};

pub const TOKEN: &str = "test-api-token";

pub async fn start() -> OktaSim {
    start_with(SimConfig { rate_limits: RateLimits::unlimited(), ..SimConfig::default() }).await
}

pub async fn start_with(config: SimConfig) -> OktaSim {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = OktaSim::start(config).await.expect("simulator starts");
    sim.add_api_token(TOKEN);
    sim
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().expect("reqwest client")
}

pub fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// A key valid from `from_days` to `to_days` around the simulator's now.
pub fn key_around(sim: &OktaSim, from_days: i64, to_days: i64) -> SeedKey {
    let now = sim.now();
    SeedKey { not_before: now + days(from_days), not_after: now + days(to_days) }
}

/// An app with `n` keys (each valid from 30 days ago for a year), the first active.
pub fn seed(sim: &OktaSim, label: &str, n: usize) -> SeededApp {
    let keys = (0..n).map(|_| key_around(sim, -30, 335)).collect();
    sim.seed_app(SeedApp { id: None, label: label.into(), keys, active: 0 })
}

pub fn ssws(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request.header("Authorization", format!("SSWS {TOKEN}"))
}

pub async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts an Okta error body with the given code; returns it.
pub async fn expect_okta_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let body = json_of(response).await;
    assert_eq!(body["errorCode"], code, "{body}");
    assert!(body["errorLink"].as_str().is_some(), "{body}");
    assert!(body["errorId"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    assert!(body["errorSummary"].as_str().is_some(), "{body}");
    assert!(body["errorCauses"].is_array(), "{body}");
    body
}

/// A client key pair: signs client assertions and DPoP proofs.
pub struct ClientKey {
    pub encoding: EncodingKey,
    pub alg: Algorithm,
    /// The public JWK (without kid).
    pub public_jwk: Value,
    /// The private key as PKCS#8 PEM, for clients outside this process.
    pub private_pem: String,
}

impl ClientKey {
    /// EC P-256 (fast to generate, even in debug builds).
    pub fn ec() -> ClientKey {
        use p256::pkcs8::EncodePrivateKey as _;
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let pem = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).expect("pem");
        let public_jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string()).expect("jwk");
        ClientKey {
            encoding: EncodingKey::from_ec_pem(pem.as_bytes()).expect("ec key"),
            alg: Algorithm::ES256,
            public_jwk,
            private_pem: pem.to_string(),
        }
    }

    /// RSA-2048, taken from the simulator's key pool.
    pub fn rsa() -> ClientKey {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
        use rsa::traits::PublicKeyParts as _;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&okta_sim::keypool::take()).expect("rsa key");
        let der = key.to_pkcs1_der().expect("pkcs1");
        let public_jwk = json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        });
        let private_pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).expect("pem").to_string();
        ClientKey {
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            alg: Algorithm::RS256,
            public_jwk,
            private_pem,
        }
    }

    pub fn sign(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }

    /// A `private_key_jwt` client assertion for `client_id` at `token_url`.
    pub fn assertion(&self, client_id: &str, token_url: &str) -> String {
        self.assertion_with(json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "exp": Timestamp::now().as_second() + 300,
            "iat": Timestamp::now().as_second(),
            "jti": random_id(),
        }))
    }

    pub fn assertion_with(&self, claims: Value) -> String {
        self.sign(Header::new(self.alg), &claims)
    }

    /// A DPoP proof for `method url`, with an optional nonce and access token (`ath`).
    pub fn dpop(&self, method: &str, url: &str, nonce: Option<&str>, access_token: Option<&str>) -> String {
        let mut claims = json!({
            "htm": method,
            "htu": url,
            "iat": Timestamp::now().as_second(),
            "jti": random_id(),
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = access_token {
            claims["ath"] = json!(okta_sim::auth::dpop::access_token_hash(token));
        }
        self.dpop_with(claims)
    }

    pub fn dpop_with(&self, claims: Value) -> String {
        let mut header = Header::new(self.alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(self.public_jwk.clone()).expect("jwk"));
        self.sign(header, &claims)
    }
}

pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Posts a client-credentials token request; `dpop` is the proof header, if any.
pub async fn token_request(
    http: &reqwest::Client,
    base_url: &str,
    assertion: &str,
    scope: &str,
    dpop: Option<&str>,
) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", scope)
        .append_pair("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        .append_pair("client_assertion", assertion)
        .finish();
    let mut request = http
        .post(format!("{base_url}/oauth2/v1/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(proof) = dpop {
        request = request.header("DPoP", proof);
    }
    request.send().await.expect("token request")
}
