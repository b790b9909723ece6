//! Sign-ins: what an Okta app's SSO URL (`/app/{appName}/{externalKey}/sso/saml`) answers for an
//! IdP-initiated sign-in. The answer is Okta's auto-submitting HTML form that posts a base64
//! `SAMLResponse` (and `RelayState`) to the app's ACS URL. The Response and its Assertion are signed,
//! as `settings.signOn.responseSigned` / `assertionSigned` say, with the app's active key the way
//! Okta signs: enveloped XML-DSig, exclusive C14N, RSA-SHA256, SHA-256 digests, the certificate in
//! `ds:KeyInfo/ds:X509Data/ds:X509Certificate`.
//!
//! Why no XML library: a signature covers the exclusive canonical form (exc-c14n) of the signed
//! element, so the signer must digest exactly the bytes a verifier's canonicalizer will produce. We
//! write every element directly in its canonical form, so that serialization and canonicalization are
//! the same bytes:
//! - no whitespace between elements, explicit end tags (never `<x/>`), no comments;
//! - attributes all unprefixed, in lexicographic order of their names ([`element`] sorts them);
//! - text escaped as c14n does (`&`, `<`, `>`, CR) and attribute values as c14n does (`&`, `<`, `"`,
//!   TAB, LF, CR);
//! - each namespace declared exactly where exc-c14n renders it: on the outermost element that uses
//!   the prefix within each signed subtree (`saml2p` on the Response; `saml2` on the Response's
//!   Issuer and again on the Assertion, which are siblings; `ds` on each Signature).
//!
//! Then the enveloped-signature transform (remove the Signature) followed by exc-c14n of an element
//! is just the element's text without its Signature, which is what we digest. `SignedInfo` is signed
//! in its canonical form too, which carries `xmlns:ds` (it is the apex of its node set), while inside
//! the document it inherits the declaration from its Signature. The sim's tests check all of this
//! with an independent verifier (xmlsec1 through pysaml2, `tests/sp/probe.py`).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Response as HttpResponse, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::{SignedDuration, Timestamp};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use crate::apps::query_map;
use crate::keys::{KeyCredential, okta_time};
use crate::org::App;
use crate::state::SimState;

const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
const UNSPECIFIED_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const PASSWORD_PROTECTED: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";
/// Okta's assertions are valid from 5 minutes before to 5 minutes after they are issued, unless
/// `samlAssertionLifetimeSeconds` says otherwise.
const DEFAULT_LIFETIME_SECONDS: i64 = 300;

/// `GET` or `POST /app/{appName}/{externalKey}/sso/saml`: signs the app's subject in, IdP-initiated.
/// `RelayState` comes from the query or the form body (else `settings.signOn.defaultRelayState`).
/// A `SAMLRequest` is not read: the answer never carries `InResponseTo`. Not an API call: no token,
/// no rate limit, not in the call log.
pub async fn endpoint(
    State(state): State<Arc<SimState>>,
    Path((name, external_key)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> HttpResponse<Body> {
    let mut params = query_map(query.as_deref());
    if let Ok(form) = std::str::from_utf8(&body) {
        params.extend(query_map(Some(form)));
    }
    let now = state.now();
    let (signed, default_relay) = {
        let org = state.org();
        let app = org.apps.iter().find(|a| a.external_key == external_key && a.name == name && a.status == "ACTIVE");
        let Some(app) = app else {
            return page(StatusCode::NOT_FOUND, "<p>No such app.</p>".into());
        };
        (sign_in(app, now), app.sign_on("defaultRelayState").map(str::to_string))
    };
    match signed {
        Ok(signed) => {
            let relay = params.get("RelayState").cloned().or(default_relay);
            page(StatusCode::OK, auto_submit_page(&signed, relay.as_deref()))
        }
        Err(e) => {
            tracing::warn!(app = %name, error = %e, "sign-in refused");
            page(StatusCode::INTERNAL_SERVER_ERROR, format!("<p>Sign-in failed: {}</p>", html_escape(&e.to_string())))
        }
    }
}

fn page(status: StatusCode, html: String) -> HttpResponse<Body> {
    let mut response = HttpResponse::new(Body::from(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html;charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    response
}

/// Why an app cannot sign anyone in (Okta shows an error page then).
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the app has no active signing key")]
    NoActiveKey,
    #[error("settings.signOn.{0} is not set")]
    MissingSetting(&'static str),
    #[error("{0}")]
    Signing(#[from] anyhow::Error),
}

/// A sign-in ready to be posted to the SP.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// `settings.signOn.ssoAcsUrl`: where the form posts.
    pub acs_url: String,
    /// The `SAMLResponse` form value: the base64 of the signed Response.
    pub saml_response: String,
}

/// Signs `app.sso_subject` in to `app` at `now`, with the app's active key.
pub fn sign_in(app: &App, now: Timestamp) -> Result<SignIn, SignInError> {
    let kid = app.active_kid.as_deref().ok_or(SignInError::NoActiveKey)?;
    let key = app.key(kid).ok_or(SignInError::NoActiveKey)?;
    let acs_url = app.sign_on("ssoAcsUrl").ok_or(SignInError::MissingSetting("ssoAcsUrl"))?;
    let audience = app.sign_on("audience").ok_or(SignInError::MissingSetting("audience"))?;
    let flag = |field: &str| app.settings["signOn"][field].as_bool().unwrap_or(true);
    let lifetime = app.settings["signOn"]["samlAssertionLifetimeSeconds"]
        .as_i64()
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_LIFETIME_SECONDS);
    let response = Response {
        issuer: &app.entity_id(),
        destination: app.sign_on("destination").unwrap_or(acs_url),
        recipient: app.sign_on("recipient").unwrap_or(acs_url),
        audience,
        subject: &app.sso_subject,
        name_id_format: app.sign_on("subjectNameIdFormat").unwrap_or(UNSPECIFIED_FORMAT),
        authn_context: app.sign_on("authnContextClassRef").unwrap_or(PASSWORD_PROTECTED),
        now,
        lifetime: SignedDuration::from_secs(lifetime),
        sign_response: flag("responseSigned"),
        // Okta always signs one of the two; an app with neither signed would be refused by every SP.
        sign_assertion: flag("assertionSigned") || !flag("responseSigned"),
    };
    let xml = response.to_xml(key)?;
    Ok(SignIn { acs_url: acs_url.to_string(), saml_response: STANDARD.encode(xml) })
}

/// Okta's answer to a sign-in: a page whose form posts itself to the ACS URL.
pub fn auto_submit_page(sign_in: &SignIn, relay_state: Option<&str>) -> String {
    let relay = relay_state.map_or_else(String::new, |r| {
        format!(r#"<input name="RelayState" type="hidden" value="{}"/>"#, html_escape(r))
    });
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Signing in</title></head>
<body onload="document.forms[0].submit()">
<noscript><p>JavaScript is off: press Continue to sign in.</p></noscript>
<form id="appForm" action="{action}" method="POST">
<input name="SAMLResponse" type="hidden" value="{response}"/>{relay}
<noscript><input type="submit" value="Continue"/></noscript>
</form>
</body></html>
"#,
        action = html_escape(&sign_in.acs_url),
        response = sign_in.saml_response,
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Whether `subject` can be a NameID: XML 1.0 forbids most control characters.
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty() && !subject.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

struct Response<'a> {
    issuer: &'a str,
    destination: &'a str,
    recipient: &'a str,
    audience: &'a str,
    subject: &'a str,
    name_id_format: &'a str,
    authn_context: &'a str,
    now: Timestamp,
    lifetime: SignedDuration,
    sign_response: bool,
    sign_assertion: bool,
}

impl Response<'_> {
    fn to_xml(&self, key: &KeyCredential) -> anyhow::Result<String> {
        let issued = okta_time(self.now);
        let not_before = okta_time(self.now - self.lifetime);
        let not_after = okta_time(self.now + self.lifetime);
        let (response_id, assertion_id) = (new_id(), new_id());

        let issuer = |ns: bool| {
            let decl = ns.then_some(("saml2", NS_ASSERTION));
            element_ns("saml2:Issuer", decl, &[("Format", ENTITY_FORMAT)], &text(self.issuer))
        };
        let subject = element(
            "saml2:Subject",
            &[],
            &[
                element("saml2:NameID", &[("Format", self.name_id_format)], &text(self.subject)),
                element(
                    "saml2:SubjectConfirmation",
                    &[("Method", BEARER)],
                    &element(
                        "saml2:SubjectConfirmationData",
                        &[("NotOnOrAfter", &not_after), ("Recipient", self.recipient)],
                        "",
                    ),
                ),
            ]
            .concat(),
        );
        let conditions = element(
            "saml2:Conditions",
            &[("NotBefore", &not_before), ("NotOnOrAfter", &not_after)],
            &element("saml2:AudienceRestriction", &[], &element("saml2:Audience", &[], &text(self.audience))),
        );
        let authn = element(
            "saml2:AuthnStatement",
            &[("AuthnInstant", &issued), ("SessionIndex", &assertion_id)],
            &element("saml2:AuthnContext", &[], &element("saml2:AuthnContextClassRef", &[], &text(self.authn_context))),
        );
        let assertion = Enveloping {
            name: "saml2:Assertion",
            ns: ("saml2", NS_ASSERTION),
            attrs: vec![("ID", assertion_id.clone()), ("IssueInstant", issued.clone()), ("Version", "2.0".into())],
            before_signature: issuer(false),
            after_signature: [subject, conditions, authn].concat(),
        }
        .render(self.sign_assertion.then_some(key))?;

        let status = element("saml2p:Status", &[], &element("saml2p:StatusCode", &[("Value", SUCCESS)], ""));
        let response = Enveloping {
            name: "saml2p:Response",
            ns: ("saml2p", NS_PROTOCOL),
            attrs: vec![
                ("Destination", self.destination.to_string()),
                ("ID", response_id),
                ("IssueInstant", issued),
                ("Version", "2.0".into()),
            ],
            before_signature: issuer(true),
            after_signature: [status, assertion].concat(),
        }
        .render(self.sign_response.then_some(key))?;
        Ok(format!(r#"<?xml version="1.0" encoding="UTF-8"?>{response}"#))
    }
}

/// An element that may carry an enveloped signature between two runs of children (SAML puts it
/// right after the Issuer).
struct Enveloping {
    name: &'static str,
    ns: (&'static str, &'static str),
    /// Unprefixed attributes, `ID` among them ([`element_ns`] puts them in order).
    attrs: Vec<(&'static str, String)>,
    before_signature: String,
    after_signature: String,
}

impl Enveloping {
    fn render(&self, key: Option<&KeyCredential>) -> anyhow::Result<String> {
        let attrs: Vec<(&str, &str)> = self.attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let unsigned = [self.before_signature.as_str(), self.after_signature.as_str()].concat();
        let unsigned_xml = element_ns(self.name, Some(self.ns), &attrs, &unsigned);
        let Some(key) = key else { return Ok(unsigned_xml) };
        let id = &self.attrs.iter().find(|(k, _)| *k == "ID").expect("a signed element has an ID").1;
        // The enveloped-signature transform then exc-c14n: the element without its Signature.
        let digest = STANDARD.encode(Sha256::digest(unsigned_xml.as_bytes()));
        let signature = signature(key, id, &digest)?;
        let signed = [self.before_signature.as_str(), &signature, self.after_signature.as_str()].concat();
        Ok(element_ns(self.name, Some(self.ns), &attrs, &signed))
    }
}

/// `ds:Signature` over the element whose ID is `id` and whose digest is `digest` (base64).
fn signature(key: &KeyCredential, id: &str, digest: &str) -> anyhow::Result<String> {
    let algorithm = |name: &str, uri: &str| element(name, &[("Algorithm", uri)], "");
    let transforms = element(
        "ds:Transforms",
        &[],
        &[algorithm("ds:Transform", ENVELOPED), algorithm("ds:Transform", EXC_C14N)].concat(),
    );
    let reference = element(
        "ds:Reference",
        &[("URI", &format!("#{id}"))],
        &[transforms, algorithm("ds:DigestMethod", SHA256), element("ds:DigestValue", &[], digest)].concat(),
    );
    let signed_info_children =
        [algorithm("ds:CanonicalizationMethod", EXC_C14N), algorithm("ds:SignatureMethod", RSA_SHA256), reference]
            .concat();
    // Canonical SignedInfo is the apex of its node set, so it declares `ds` itself.
    let canonical_signed_info = element_ns("ds:SignedInfo", Some(("ds", NS_DSIG)), &[], &signed_info_children);
    let value = STANDARD.encode(key.private_key.sign_rsa_sha256(canonical_signed_info.as_bytes())?);
    let key_info = element(
        "ds:KeyInfo",
        &[],
        &element("ds:X509Data", &[], &element("ds:X509Certificate", &[], &key.cert_base64())),
    );
    Ok(element_ns(
        "ds:Signature",
        Some(("ds", NS_DSIG)),
        &[],
        &[element("ds:SignedInfo", &[], &signed_info_children), element("ds:SignatureValue", &[], &value), key_info]
            .concat(),
    ))
}

/// A SAML ID: an xs:ID (an NCName, so not starting with a digit), unique per message.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("id{hex}")
}

/// An element in canonical form; `content` is already canonical XML (or [`text`]).
fn element(name: &str, attrs: &[(&str, &str)], content: &str) -> String {
    element_ns(name, None, attrs, content)
}

/// An element in canonical form, declaring the namespace `ns` (prefix, URI) when given. Namespace
/// declarations come before attributes; unprefixed attributes are ordered by name.
fn element_ns(name: &str, ns: Option<(&str, &str)>, attrs: &[(&str, &str)], content: &str) -> String {
    let mut attrs = attrs.to_vec();
    debug_assert!(attrs.iter().all(|(n, _)| !n.contains(':')), "only unprefixed attributes are ordered by name");
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = format!("<{name}");
    if let Some((prefix, uri)) = ns {
        out.push_str(&format!(r#" xmlns:{prefix}="{}""#, attribute_value(uri)));
    }
    for (attr, value) in attrs {
        out.push_str(&format!(r#" {attr}="{}""#, attribute_value(value)));
    }
    out.push('>');
    out.push_str(content);
    out.push_str(&format!("</{name}>"));
    out
}

/// Character data escaped as exc-c14n writes it.
fn text(value: &str) -> String {
    value.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\r', "&#xD;")
}

/// An attribute value escaped as exc-c14n writes it.
fn attribute_value(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
        .replace('\t', "&#x9;")
        .replace('\n', "&#xA;")
        .replace('\r', "&#xD;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_written_in_canonical_form() {
        let xml = element_ns("p:a", Some(("p", "urn:x")), &[("b", "1"), ("A", "\"<&>\n")], &text("x<y&z>\r"));
        assert_eq!(xml, r#"<p:a xmlns:p="urn:x" A="&quot;&lt;&amp;>&#xA;" b="1">x&lt;y&amp;z&gt;&#xD;</p:a>"#);
        assert_eq!(element("e", &[], ""), "<e></e>", "no empty-element tags in c14n");
    }

    #[test]
    fn ids_are_ncnames_and_unique() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(a.starts_with("id") && a.len() == 34);
    }

    #[test]
    fn subjects_must_be_xml_characters() {
        assert!(valid_subject("user@example.com"));
        assert!(!valid_subject(""));
        assert!(!valid_subject("a\u{0}b"));
    }
}
