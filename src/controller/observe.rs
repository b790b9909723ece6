//! What Okta shows of one app, read in as few calls as the reconcile needs: the app (for its active
//! kid), its key credentials (for every certificate the Secret may carry) and, for the Secret, the
//! SAML metadata of the key status calls active.

use crate::okta::{KeyCredential, OktaClient, OktaError};
use crate::rotation::{ObservedApp, ObservedKey};
use std::collections::BTreeMap;

/// One key credential with its parsed certificate.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub observed: ObservedKey,
    pub credential: KeyCredential,
    pub der: Vec<u8>,
}

/// The app as the planner needs it, plus the raw keys the Secret is rendered from.
#[derive(Debug, Clone)]
pub struct OktaView {
    pub app: ObservedApp,
    pub keys: BTreeMap<String, KeyRecord>,
}

/// Turns one key credential into what the planner and the renderer need. A key whose certificate
/// cannot be parsed, or disagrees with its `x5t#S256`, is an error: samlcred must not publish it.
pub fn key_record(credential: KeyCredential) -> Result<KeyRecord, OktaError> {
    let cert = credential.certificate()?;
    let observed = ObservedKey {
        kid: credential.kid.clone(),
        // Okta always sends `created`; the certificate's start is the closest stand-in otherwise.
        created: credential.created.unwrap_or(cert.not_before),
        not_before: cert.not_before,
        not_after: cert.not_after,
        x5t_s256: cert.x5t_s256.clone(),
    };
    Ok(KeyRecord { observed, credential, der: cert.der })
}

/// Reads the app and its keys. A 404 for the app is an observation, not an error.
pub async fn observe_app(okta: &OktaClient, app_id: &str) -> Result<OktaView, OktaError> {
    let app = match okta.get_app(app_id).await {
        Ok(app) => app,
        Err(OktaError::NotFound { .. }) => return Ok(OktaView { app: ObservedApp::NotFound, keys: BTreeMap::new() }),
        Err(e) => return Err(e),
    };
    let mut keys = BTreeMap::new();
    for credential in okta.list_keys(app_id).await? {
        let record = key_record(credential)?;
        keys.insert(record.observed.kid.clone(), record);
    }
    let active_kid = app.active_kid().map(str::to_string);
    let observed = keys.values().map(|k| k.observed.clone()).collect();
    Ok(OktaView { app: ObservedApp::Found { active_kid, keys: observed }, keys })
}
