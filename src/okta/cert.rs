//! The X.509 certificate inside a key credential, read with a real parser.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::error::{OktaError, Result};
use super::types::KeyCredential;

/// What samlcred needs to know about a key's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// SHA-256 of the DER, base64url without padding: the same form as `x5t#S256`.
    pub x5t_s256: String,
    pub sha256: [u8; 32],
    pub subject: String,
    pub der: Vec<u8>,
}

impl CertificateInfo {
    /// Parses a DER certificate.
    pub fn from_der(der: Vec<u8>) -> std::result::Result<CertificateInfo, String> {
        let (rest, cert) =
            x509_parser::parse_x509_certificate(&der).map_err(|err| format!("not an X.509 certificate: {err}"))?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the certificate", rest.len()));
        }
        let validity = cert.validity();
        let not_before = to_timestamp(validity.not_before.timestamp())?;
        let not_after = to_timestamp(validity.not_after.timestamp())?;
        let subject = cert.subject().to_string();
        let sha256: [u8; 32] = Sha256::digest(&der).into();
        Ok(CertificateInfo { not_before, not_after, x5t_s256: URL_SAFE_NO_PAD.encode(sha256), sha256, subject, der })
    }

    /// The certificate as PEM, wrapped at 64 columns.
    pub fn to_pem(&self) -> String {
        let encoded = STANDARD.encode(&self.der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            // base64 output is ASCII, so every chunk is valid UTF-8.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }
}

fn to_timestamp(epoch_seconds: i64) -> std::result::Result<Timestamp, String> {
    Timestamp::from_second(epoch_seconds).map_err(|err| format!("validity out of range: {err}"))
}

impl KeyCredential {
    /// Parses `x5c[0]` and checks it against `x5t#S256`: a thumbprint that disagrees means the
    /// key credential is corrupt, and samlcred must not publish a certificate Okta would not sign
    /// with.
    pub fn certificate(&self) -> Result<CertificateInfo> {
        let invalid = |reason: String| OktaError::Certificate { kid: self.kid.clone(), reason };
        let first = self.x5c.first().ok_or_else(|| invalid("the key has no x5c certificate".into()))?;
        // Okta's own examples wrap long base64 lines; whitespace is never part of the value.
        let compact: String = first.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD.decode(compact).map_err(|err| invalid(format!("x5c[0] is not base64: {err}")))?;
        let info = CertificateInfo::from_der(der).map_err(invalid)?;
        if let Some(expected) = &self.x5t_s256
            && expected != &info.x5t_s256
        {
            return Err(invalid(format!("x5t#S256 is {expected} but the certificate's SHA-256 is {}", info.x5t_s256)));
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The certificate of the seed page (generate-app-key-credential.md), unwrapped.
    const SEED_X5C: &str = "MIIDojCCAoqgAwIBAgIGAVd8z8kEMA0GCSqGSIb3DQEBBQUAMIGRMQswCQYDVQQGEwJVUzETMBEGA1UECAwKQ2FsaWZvcm5pYTEWMBQGA1UEBwwNU2FuIEZyYW5jaXNjbzENMAsGA1UECgwET2t0YTEUMBIGA1UECwwLU1NPUHJvdmlkZXIxEjAQBgNVBAMMCW15c3RpY29ycDEcMBoGCSqGSIb3DQEJARYNaW5mb0Bva3RhLmNvbTAeFw0xNjA5MzAyMDM1MTRaFw0xODA5MzAyMDM2MTRaMIGRMQswCQYDVQQGEwJVUzETMBEGA1UECAwKQ2FsaWZvcm5pYTEWMBQGA1UEBwwNU2FuIEZyYW5jaXNjbzENMAsGA1UECgwET2t0YTEUMBIGA1UECwwLU1NPUHJvdmlkZXIxEjAQBgNVBAMMCW15c3RpY29ycDEcMBoGCSqGSIb3DQEJARYNaW5mb0Bva3RhLmNvbTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAIJsMX3q/IMqFTPfhGJHILgRGHrrvYnZzL2snGvC4CssqBC1Az6PIAE+RtO1vT+6v1sRevHMICbi/ut4xB29C3fo33Y3syerVHEJD9sZ4Ht0/NjTSHrznjTjE2Ij2/1JuZY/XF+Kp8/bR+rP3Fa3mlcKJZqnwcdII3F6bbW8HPyzs8D8ytJJU1yc9xcm0rp+xqswWvRS9TMTRiV61OhE8ilMj+vjScIDQwOqD1LX0uiiQnjRILrkK2NSUbFc9PC3oVELrWqZdloDCQd+xTI0TlxV6/i50K56o0YGWIne1IYdfazuK0tXTE8kwsvXEZ0tDRq/jVhBpoAtfQ8hKLxVEFKCAwEAATANBgkqhkiG9w0BAQUFAAOCAQEAfcgMePD2nCGUImDmK7GcKIAH6fJCVfcpyHNZLYChB38yJgJ3F30mFZ0W/PM9pIW8ktLKh1lBp59pRwC4ITbpMMoWwK2EU/edocmi8qeVpG3ldXs5IeEMIoKt2c7Ndh8dTsj+fPdXDpF0iKPXtA3wgPvWxgioW6xCvePo98isevN7WGEEdEVzjdNdR7e4nPvJfKeGncvifV2rw0WOUIZQa524AQdfoY2fEKn9eFwPxFsKx1WV5nc6+WU5gcSkhmbzF+HohLCjVFMWwsUQNYpPBtzY9gM45G/bIs7EizkKT1ew0SRDI+Ws9roUKsquCWJWiAGxVEqheQvf4dauAOtqGQ==";
    const SEED_SHA256: &str = "U9PLNeIQcOdyA2CbGFL0AA5wA6fCW1WQS8ogmjB5MmQ";

    fn key(x5c: &str, x5t: Option<&str>) -> KeyCredential {
        let mut jwk = serde_json::json!({"kid": "k1", "kty": "RSA", "x5c": [x5c]});
        if let Some(x5t) = x5t {
            jwk["x5t#S256"] = x5t.into();
        }
        serde_json::from_value(jwk).unwrap()
    }

    #[test]
    fn reads_validity_and_fingerprint() {
        let info = key(SEED_X5C, Some(SEED_SHA256)).certificate().unwrap();
        assert_eq!(info.not_before, "2016-09-30T20:35:14Z".parse().unwrap());
        assert_eq!(info.not_after, "2018-09-30T20:36:14Z".parse().unwrap());
        assert_eq!(info.x5t_s256, SEED_SHA256);
        assert!(info.subject.contains("mysticorp"), "{}", info.subject);
        let pem = info.to_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\nMIIDojCC"));
        assert!(pem.lines().all(|line| line.len() <= 64));
    }

    #[test]
    fn rejects_a_thumbprint_that_disagrees() {
        let err = key(SEED_X5C, Some("ypBvmMYkQGPqxKL4SMdH9B7IXrtGADrvgEc-GKGQ7XY")).certificate().unwrap_err();
        assert!(matches!(err, OktaError::Certificate { .. }), "{err}");
        assert!(err.to_string().contains("x5t#S256"), "{err}");
    }

    #[test]
    fn tolerates_wrapped_base64() {
        let wrapped: String = SEED_X5C
            .as_bytes()
            .chunks(70)
            .map(|chunk| format!("{}\n     ", std::str::from_utf8(chunk).unwrap()))
            .collect();
        assert!(key(&wrapped, Some(SEED_SHA256)).certificate().is_ok());
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(key("not base64!", None).certificate().is_err());
        assert!(key("AAAA", None).certificate().is_err());
        let truncated = &SEED_X5C[..SEED_X5C.len() / 2];
        assert!(key(&truncated[..truncated.len() / 4 * 4], None).certificate().is_err());
        let no_x5c: KeyCredential = serde_json::from_str(r#"{"kid":"k"}"#).unwrap();
        assert!(no_x5c.certificate().is_err());
    }
}
