//! The Okta org the simulator pretends to be: its SAML apps and their key credentials.

use jiff::Timestamp;
use rand::Rng as _;
use serde_json::{Value, json};

use crate::keys::{KeyCredential, okta_time};

/// A custom SAML 2.0 app.
#[derive(Debug, Clone)]
pub struct App {
    pub id: String,
    /// Okta's generated key for the app definition, e.g. `samlcredsim_grafana_1`.
    pub name: String,
    pub label: String,
    pub status: String,
    pub created: Timestamp,
    pub last_updated: Timestamp,
    /// `credentials.signing.kid`: the key the app signs assertions with.
    pub active_kid: Option<String>,
    /// Every key credential of the app, oldest first. Okta never deletes them.
    pub keys: Vec<KeyCredential>,
    /// `settings`; a PUT merges what it sends into it. `settings.signOn` drives sign-ins.
    pub settings: Value,
    /// `visibility`, `accessibility` and `credentials.userNameTemplate`: what else a PUT may change
    /// (merged the same way).
    pub visibility: Value,
    pub accessibility: Value,
    pub user_name_template: Value,
    /// Okta's external key of the app (`exk...`): the IdP entityID is
    /// `http://www.okta.com/{external_key}` and the SSO URL `/app/{name}/{external_key}/sso/saml`.
    pub external_key: String,
    /// Who signs in through the app's SSO URL (the NameID of the assertions); the simulator has no users.
    pub sso_subject: String,
}

/// The NameID of sign-ins until the control API chooses another.
pub const DEFAULT_SUBJECT: &str = "user@example.com";

impl App {
    pub fn new(id: String, label: String, org_name: &str, base_url: &str, now: Timestamp) -> App {
        let slug: String = label
            .chars()
            .filter_map(|c| if c.is_ascii_alphanumeric() { Some(c.to_ascii_lowercase()) } else { None })
            .collect();
        let org_slug: String = org_name.chars().filter(char::is_ascii_alphanumeric).collect();
        let name = format!("{org_slug}_{slug}_1");
        let settings = default_saml_settings(base_url, &id);
        let visibility = json!({
            "autoLaunch": false,
            "autoSubmitToolbar": false,
            "hide": { "iOS": false, "web": false },
            "appLinks": { format!("{name}_link"): true },
        });
        App {
            id,
            name,
            label,
            status: "ACTIVE".to_string(),
            created: now,
            last_updated: now,
            active_kid: None,
            keys: Vec::new(),
            settings,
            visibility,
            accessibility: json!({ "selfService": false }),
            user_name_template: json!({ "template": "${source.login}", "type": "BUILT_IN" }),
            external_key: new_okta_id("exk"),
            sso_subject: DEFAULT_SUBJECT.to_string(),
        }
    }

    /// The IdP entityID the app's metadata and assertions carry.
    pub fn entity_id(&self) -> String {
        format!("http://www.okta.com/{}", self.external_key)
    }

    /// The app's SSO URL (IdP-initiated sign-in; the metadata's SingleSignOnService).
    pub fn sso_url(&self, base_url: &str) -> String {
        format!("{base_url}/app/{}/{}/sso/saml", self.name, self.external_key)
    }

    /// A string field of `settings.signOn`, if set and not empty.
    pub fn sign_on(&self, field: &str) -> Option<&str> {
        self.settings.get("signOn")?.get(field)?.as_str().filter(|v| !v.is_empty())
    }

    pub fn key(&self, kid: &str) -> Option<&KeyCredential> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The app as `GET /api/v1/apps/{appId}` returns it (a `SamlApplication`).
    pub fn to_json(&self, base_url: &str) -> Value {
        let app_url = format!("{base_url}/api/v1/apps/{}", self.id);
        let mut signing = json!({});
        if let Some(kid) = &self.active_kid {
            signing["kid"] = json!(kid);
        }
        json!({
            "id": self.id,
            "orn": format!("orn:okta:idp:00o1simulatedorg00:apps:{}:{}", self.name, self.id),
            "name": self.name,
            "label": self.label,
            "status": self.status,
            "created": okta_time(self.created),
            "lastUpdated": okta_time(self.last_updated),
            "accessibility": self.accessibility,
            "visibility": self.visibility,
            "features": [],
            "signOnMode": "SAML_2_0",
            "credentials": {
                "userNameTemplate": self.user_name_template,
                "signing": signing,
            },
            "settings": self.settings,
            "_links": {
                "metadata": {
                    "href": format!("{app_url}/sso/saml/metadata"),
                    "type": "application/xml",
                },
                "users": { "href": format!("{app_url}/users") },
                "groups": { "href": format!("{app_url}/groups") },
                "deactivate": { "href": format!("{app_url}/lifecycle/deactivate") },
                "appLinks": [{
                    "name": format!("{}_link", self.name),
                    "href": format!("{base_url}/home/{}/{}/alnsimulated", self.name, self.id),
                    "type": "text/html",
                }],
            },
        })
    }
}

fn default_saml_settings(base_url: &str, id: &str) -> Value {
    let acs = format!("https://sp.example.test/saml/acs/{id}");
    json!({
        "implicitAssignment": false,
        "notifications": { "vpn": { "network": { "connection": "DISABLED" } } },
        "signOn": {
            "defaultRelayState": "",
            "ssoAcsUrl": acs,
            "idpIssuer": "http://www.okta.com/${org.externalKey}",
            "audience": format!("https://sp.example.test/saml/{id}"),
            "recipient": acs,
            "destination": acs,
            "subjectNameIdTemplate": "${user.userName}",
            "subjectNameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
            "responseSigned": true,
            "assertionSigned": true,
            "signatureAlgorithm": "RSA_SHA256",
            "digestAlgorithm": "SHA256",
            "honorForceAuthn": true,
            "authnContextClassRef": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
            "spIssuer": base_url,
            "requestCompressed": false,
            "allowMultipleAcsEndpoints": false,
            "acsEndpoints": [],
            "attributeStatements": [],
        },
    })
}

/// Okta app ids: `0oa` and 17 letters or digits.
pub fn new_app_id() -> String {
    new_okta_id("0oa")
}

/// An Okta-style id: a three-character type prefix and 17 letters or digits.
fn new_okta_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..17).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}{tail}")
}

/// All apps of the org, in creation order (the order Okta lists them in).
#[derive(Debug, Default)]
pub struct Org {
    pub apps: Vec<App>,
}

impl Org {
    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.id == id)
    }

    pub fn app_mut(&mut self, id: &str) -> Option<&mut App> {
        self.apps.iter_mut().find(|a| a.id == id)
    }
}
