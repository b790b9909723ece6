//! Shapes of the Okta Apps API answers that samlcred reads.
//!
//! Every type tolerates unknown fields and keeps them (`extra`), because Okta adds properties
//! between releases and samlcred must never drop what it does not understand.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An app key credential (`JsonWebKey` in the management spec): a public RSA key and its
/// self-signed X.509 certificate.
///
/// It serializes back to exactly the JSON object Okta returned, so that the Secret's
/// `jwks.json` carries the keys "as Okta returned them".
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct KeyCredential {
    pub kid: String,
    pub kty: Option<String>,
    pub use_: Option<String>,
    /// Base64 (standard alphabet) DER certificates; the first one is the key's certificate.
    pub x5c: Vec<String>,
    /// Base64url SHA-256 thumbprint of the DER of `x5c[0]`.
    pub x5t_s256: Option<String>,
    pub e: Option<String>,
    pub n: Option<String>,
    pub created: Option<Timestamp>,
    pub last_updated: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    /// Properties this version of samlcred does not model.
    pub extra: Map<String, Value>,
    raw: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyCredentialFields {
    kid: String,
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    x5c: Vec<String>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
    e: Option<String>,
    n: Option<String>,
    created: Option<Timestamp>,
    last_updated: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl TryFrom<Value> for KeyCredential {
    type Error = serde_json::Error;

    fn try_from(raw: Value) -> Result<Self, Self::Error> {
        let fields = KeyCredentialFields::deserialize(&raw)?;
        Ok(KeyCredential {
            kid: fields.kid,
            kty: fields.kty,
            use_: fields.use_,
            x5c: fields.x5c,
            x5t_s256: fields.x5t_s256,
            e: fields.e,
            n: fields.n,
            created: fields.created,
            last_updated: fields.last_updated,
            expires_at: fields.expires_at,
            extra: fields.extra,
            raw,
        })
    }
}

impl From<KeyCredential> for Value {
    fn from(key: KeyCredential) -> Value {
        key.raw
    }
}

impl KeyCredential {
    /// The JSON object exactly as Okta returned it (a JWK with `x5c` and `x5t#S256`).
    pub fn jwk(&self) -> &Value {
        &self.raw
    }
}

/// An Okta app. Only what samlcred needs is typed; everything else stays in `extra`.
///
/// Never PUT this back to Okta: `activate_key` builds its body from a fresh GET instead.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub id: String,
    /// The app definition key, e.g. `okta_org2org` or a generated name for custom SAML apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `SAML_2_0`, `SAML_1_1`, `OPENID_CONNECT`, ... kept as a string so new modes parse.
    pub sign_on_mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<ApplicationCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<Timestamp>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Application {
    /// The kid Okta signs this app's assertions with.
    pub fn active_kid(&self) -> Option<&str> {
        self.credentials.as_ref()?.signing.as_ref()?.kid.as_deref()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing: Option<SigningCredential>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `ApplicationCredentialsSigning`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningCredential {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<Timestamp>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Parameters of `list_apps` (`listApplications`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppQuery {
    /// `q`: name or label starts with.
    pub q: Option<String>,
    /// `filter`, e.g. `status eq "ACTIVE"` or `credentials.signing.kid eq "..."`.
    pub filter: Option<String>,
    /// Page size (Okta allows at most 200).
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = r#"{
        "created": "2015-12-10T18:56:23.000Z",
        "lastUpdated": "2024-08-13T18:26:57.000Z",
        "expiresAt": "2017-12-10T18:56:22.000Z",
        "x5c": ["MIIB"],
        "e": "AQAB",
        "n": "mkC6",
        "kid": "SIMc",
        "kty": "RSA",
        "use": "sig",
        "x5t#S256": "5GOp",
        "futureField": {"nested": [1, 2]}
    }"#;

    #[test]
    fn key_credential_maps_x5t_and_keeps_unknown_fields() {
        let key: KeyCredential = serde_json::from_str(KEY).unwrap();
        assert_eq!(key.kid, "SIMc");
        assert_eq!(key.x5t_s256.as_deref(), Some("5GOp"));
        assert_eq!(key.use_.as_deref(), Some("sig"));
        assert_eq!(key.expires_at, Some("2017-12-10T18:56:22Z".parse().unwrap()));
        assert!(key.extra.contains_key("futureField"));
    }

    #[test]
    fn key_credential_serializes_losslessly() {
        let key: KeyCredential = serde_json::from_str(KEY).unwrap();
        let original: Value = serde_json::from_str(KEY).unwrap();
        assert_eq!(serde_json::to_value(&key).unwrap(), original);
        // Okta's millisecond timestamps survive as written, not as jiff would print them.
        assert_eq!(key.jwk()["created"], "2015-12-10T18:56:23.000Z");
    }

    #[test]
    fn key_credential_without_kid_is_rejected() {
        assert!(serde_json::from_str::<KeyCredential>(r#"{"kty":"RSA"}"#).is_err());
    }

    #[test]
    fn application_reads_active_kid_and_keeps_the_rest() {
        let app: Application = serde_json::from_str(
            r#"{"id":"0oa1","name":"acme_saml","label":"Acme","status":"ACTIVE",
                "signOnMode":"SAML_2_0","settings":{"signOn":{"audience":"x"}},
                "credentials":{"signing":{"kid":"k1","use":"sig","rotationMode":"MANUAL"},
                               "userNameTemplate":{"template":"${source.login}"}}}"#,
        )
        .unwrap();
        assert_eq!(app.active_kid(), Some("k1"));
        assert!(app.extra.contains_key("settings"));
        let credentials = app.credentials.as_ref().unwrap();
        assert!(credentials.extra.contains_key("userNameTemplate"));
        assert_eq!(credentials.signing.as_ref().unwrap().extra.len(), 0);
    }

    #[test]
    fn application_without_signing_has_no_active_kid() {
        let app: Application = serde_json::from_str(r#"{"id":"0oa2","label":"B","signOnMode":"BOOKMARK"}"#).unwrap();
        assert_eq!(app.active_kid(), None);
    }
}
