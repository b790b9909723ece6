//! Okta API tokens: `Authorization: SSWS <token>`.

use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::okta::error::{OktaError, Result};

pub fn authorization(token: &SecretString) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("SSWS {}", token.expose_secret().trim()))
        .map_err(|_| OktaError::Config("API token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_ssws_and_sensitive() {
        let value = authorization(&SecretString::from("00abc\n")).unwrap();
        assert_eq!(value.to_str().unwrap(), "SSWS 00abc");
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("00abc"));
    }

    #[test]
    fn rejects_header_breaking_tokens() {
        assert!(authorization(&SecretString::from("a\nb")).is_err());
    }
}
