//! SAML 2.0 IdP metadata, as `GET /api/v1/apps/{appId}/sso/saml/metadata?kid=` returns it.

use crate::keys::KeyCredential;
use crate::org::App;

/// The metadata an SP would import to trust `key` for `app`.
pub fn idp_metadata(app: &App, key: &KeyCredential, base_url: &str) -> String {
    let sso = app.sso_url(base_url);
    // Okta wraps the certificate's base64 at 76 columns, like MIME.
    let cert = key.cert_base64();
    let wrapped: Vec<&str> =
        cert.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    let cert = wrapped.join("\n");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity_id}"><md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified</md:NameIDFormat><md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{sso}"/><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
        entity_id = app.entity_id(),
    )
}
