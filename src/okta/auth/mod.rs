//! How requests prove who samlcred is: an API token, or OAuth client credentials with
//! `private_key_jwt`, optionally DPoP-bound.

pub mod dpop;
pub mod jws;
pub mod key;
pub mod oauth;
pub mod ssws;

use http::{HeaderMap, Method};
use secrecy::SecretString;
use url::Url;

pub use dpop::DpopMode;
pub use key::PrivateKey;

use crate::okta::error::Result;
use crate::okta::transport::Transport;
use dpop::NonceScope;
use oauth::{AccessToken, OAuthClient, sensitive};

/// The default scopes: read the apps and their keys, generate keys and switch the active one.
pub const DEFAULT_SCOPES: [&str; 2] = ["okta.apps.read", "okta.apps.manage"];

/// Credentials of an org. `Debug` never shows a secret.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: SSWS <token>`.
    ApiToken(SecretString),
    /// Client credentials with a `private_key_jwt` assertion.
    OAuth {
        client_id: String,
        private_key: PrivateKey,
        /// `kid` header of the client assertion, when the app has several keys.
        key_id: Option<String>,
        scopes: Vec<String>,
        dpop: DpopMode,
    },
}

/// The live form of `Auth`: for OAuth it holds the token cache and the DPoP key.
#[derive(Debug)]
pub(crate) enum Authenticator {
    ApiToken(SecretString),
    OAuth(Box<OAuthClient>),
}

/// What was sent, so that a 401 can tell which token to discard.
pub(crate) struct Presented {
    pub token_generation: Option<u64>,
    pub dpop: bool,
}

impl Authenticator {
    pub fn new(auth: Auth, base_url: &Url) -> Result<Authenticator> {
        Ok(match auth {
            Auth::ApiToken(token) => Authenticator::ApiToken(token),
            Auth::OAuth { client_id, private_key, key_id, scopes, dpop } => Authenticator::OAuth(Box::new(
                OAuthClient::new(client_id, private_key, key_id, scopes, base_url, dpop)?,
            )),
        })
    }

    /// Adds the credentials of one resource request to `headers`.
    pub async fn authorize(
        &self,
        transport: &Transport,
        method: &Method,
        url: &Url,
        stale_token: Option<u64>,
        headers: &mut HeaderMap,
    ) -> Result<Presented> {
        match self {
            Authenticator::ApiToken(token) => {
                headers.insert(http::header::AUTHORIZATION, ssws::authorization(token)?);
                Ok(Presented { token_generation: None, dpop: false })
            }
            Authenticator::OAuth(client) => {
                let token: AccessToken = client.token(transport, stale_token).await?;
                let scheme = if token.dpop { "DPoP" } else { "Bearer" };
                let value =
                    SecretString::from(format!("{scheme} {}", secrecy::ExposeSecret::expose_secret(&token.value)));
                headers.insert(http::header::AUTHORIZATION, sensitive(&value)?);
                if token.dpop {
                    let proof = client.dpop.proof(method, url, Some(&token.value), NonceScope::Resource)?;
                    headers.insert("dpop", sensitive(&proof)?);
                }
                Ok(Presented { token_generation: Some(token.generation), dpop: token.dpop })
            }
        }
    }

    /// Records a `DPoP-Nonce` the resource server sent; true when a DPoP client got one.
    pub fn take_resource_nonce(&self, headers: &HeaderMap) -> bool {
        let Authenticator::OAuth(client) = self else {
            return false;
        };
        match headers.get("dpop-nonce").and_then(|v| v.to_str().ok()) {
            Some(nonce) => {
                client.dpop.set_nonce(NonceScope::Resource, nonce);
                true
            }
            None => false,
        }
    }

    pub fn refreshes_tokens(&self) -> bool {
        matches!(self, Authenticator::OAuth(_))
    }
}
