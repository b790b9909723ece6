//! Sign-ins through an app's SSO URL: the form and the SAML response it carries, what the control API
//! and the app's settings change in it, and (through pysaml2 and xmlsec1, `../tests/sp/probe.py`)
//! that an independent SP accepts its signatures with the active key's certificate and no other.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use jiff::Timestamp;
use okta_sim::{OktaSim, SsoInfo, SsoUpdate};
use serde_json::{Value, json};

const PROBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/sp/probe.py");

struct Page {
    status: u16,
    content_type: String,
    html: String,
}

async fn get_sign_in(url: &str) -> Page {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    Page { status, content_type, html: response.text().await.unwrap() }
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

impl Page {
    /// The value of a hidden input of the form.
    fn input(&self, name: &str) -> Option<String> {
        let marker = format!(r#"name="{name}" type="hidden" value=""#);
        let start = self.html.find(&marker)? + marker.len();
        let end = start + self.html[start..].find('"')?;
        Some(unescape(&self.html[start..end]))
    }

    fn action(&self) -> String {
        let start = self.html.find(r#"action=""#).unwrap() + 8;
        let end = start + self.html[start..].find('"').unwrap();
        unescape(&self.html[start..end])
    }

    /// The SAML response the form posts, decoded.
    fn saml(&self) -> String {
        let b64 = self.input("SAMLResponse").expect("the form carries a SAMLResponse");
        String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
    }
}

/// The text between the first `open` (an element's start, up to its `>`) and the next `close`.
fn inner<'a>(xml: &'a str, open: &str, close: &str) -> &'a str {
    let start = xml.find(open).unwrap_or_else(|| panic!("no {open}"));
    let start = start + xml[start..].find('>').unwrap() + 1;
    let end = start + xml[start..].find(close).unwrap_or_else(|| panic!("no {close}"));
    &xml[start..end]
}

/// The value of `attr` on the first element named `element`.
fn attr<'a>(xml: &'a str, element: &str, attr: &str) -> &'a str {
    let start = xml.find(&format!("<{element} ")).unwrap_or_else(|| panic!("no <{element}"));
    let tag = &xml[start..start + xml[start..].find('>').unwrap()];
    let marker = format!(r#" {attr}=""#);
    let at = tag.find(&marker).unwrap_or_else(|| panic!("no {attr} on {element}")) + marker.len();
    &tag[at..at + tag[at..].find('"').unwrap()]
}

fn time(value: &str) -> Timestamp {
    value.parse().unwrap_or_else(|e| panic!("{value}: {e}"))
}

fn x5c(sim: &OktaSim, app_id: &str, kid: &str) -> String {
    let keys = sim.keys(app_id);
    let key = keys.iter().find(|k| k["kid"] == kid).unwrap();
    key["x5c"][0].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_sign_in_posts_a_response_signed_with_the_active_key_to_the_acs_url() {
    let sim = start().await;
    let app = seed(&sim, "Grafana", 2);
    let sso = sim.sso(&app.id);
    assert!(sso.url.starts_with(&format!("{}/app/samlcredsim_grafana_1/exk", sim.base_url())), "{}", sso.url);
    assert!(sso.url.ends_with("/sso/saml"));
    assert_eq!(sso.entity_id, format!("http://www.okta.com/{}", sso.url.split('/').nth_back(2).unwrap()));
    assert_eq!(sso.subject, "user@example.com");
    let acs = sso.acs_url.clone().unwrap();
    let audience = sso.audience.clone().unwrap();

    let before = sim.now();
    let page = get_sign_in(&format!("{}?RelayState=%2Fd%2Fx%3Fa%3D1%26b%3D%22q%22", sso.url)).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html;charset=utf-8");
    assert!(page.html.contains(r#"method="POST""#) && page.html.contains("document.forms[0].submit()"));
    assert_eq!(page.action(), acs);
    assert_eq!(page.input("RelayState").as_deref(), Some(r#"/d/x?a=1&b="q""#));

    let xml = page.saml();
    assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><saml2p:Response "#), "{}", &xml[..80]);
    assert_eq!(attr(&xml, "saml2p:Response", "Destination"), acs);
    assert_eq!(attr(&xml, "saml2p:StatusCode", "Value"), "urn:oasis:names:tc:SAML:2.0:status:Success");
    let assertion = inner(&xml, "<saml2:Assertion ", "</saml2:Assertion>");
    assert_eq!(inner(&xml, "<saml2:Issuer ", "</saml2:Issuer>"), sso.entity_id, "the Response's Issuer");
    assert_eq!(inner(assertion, "<saml2:Issuer ", "</saml2:Issuer>"), sso.entity_id, "the Assertion's Issuer");
    assert_eq!(inner(assertion, "<saml2:NameID ", "</saml2:NameID>"), "user@example.com");
    assert_eq!(inner(assertion, "<saml2:Audience>", "</saml2:Audience>"), audience);
    assert_eq!(attr(assertion, "saml2:SubjectConfirmationData", "Recipient"), acs);
    assert_eq!(attr(assertion, "saml2:SubjectConfirmation", "Method"), "urn:oasis:names:tc:SAML:2.0:cm:bearer");
    let issued = time(attr(&xml, "saml2p:Response", "IssueInstant"));
    assert!(issued >= before - jiff::SignedDuration::from_secs(1) && issued <= sim.now(), "IssueInstant {issued}");
    let not_before = time(attr(assertion, "saml2:Conditions", "NotBefore"));
    let not_on_or_after = time(attr(assertion, "saml2:Conditions", "NotOnOrAfter"));
    assert!(not_before < issued && issued < not_on_or_after);
    assert_eq!(not_on_or_after.duration_since(issued), jiff::SignedDuration::from_mins(5));
    assert_eq!(
        attr(assertion, "saml2:SubjectConfirmationData", "NotOnOrAfter"),
        okta_sim::keys::okta_time(not_on_or_after)
    );

    // Both the Response and the Assertion are signed (Okta's defaults), each over its own ID.
    assert_eq!(xml.matches("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">").count(), 2);
    let response_id = attr(&xml, "saml2p:Response", "ID");
    let assertion_id = attr(&xml, "saml2:Assertion", "ID");
    assert_ne!(response_id, assertion_id);
    assert!(xml.contains(&format!(r##"<ds:Reference URI="#{response_id}">"##)));
    assert!(assertion.contains(&format!(r##"<ds:Reference URI="#{assertion_id}">"##)));
    for algorithm in [
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/04/xmlenc#sha256",
    ] {
        assert!(assertion.contains(&format!(r#"Algorithm="{algorithm}""#)), "{algorithm}");
    }
    let cert = inner(assertion, "<ds:X509Certificate>", "</ds:X509Certificate>");
    assert_eq!(cert, x5c(&sim, &app.id, &app.kids[0]), "the active key's certificate");

    // Every sign-in is a new response; POST is served as GET is; RelayState defaults to none.
    let post = client()
        .post(&sso.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("RelayState=r")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    let again = Page { status: 200, content_type: String::new(), html: post.text().await.unwrap() };
    assert_eq!(again.input("RelayState").as_deref(), Some("r"));
    assert_ne!(attr(&again.saml(), "saml2:Assertion", "ID"), assertion_id);
    assert_eq!(get_sign_in(&sso.url).await.input("RelayState"), None);

    // Not an API call: not in the call log, and the metadata advertises the same URL and entity.
    assert!(sim.calls().is_empty(), "{:?}", sim.calls());
    let metadata =
        ssws(client().get(format!("{}/api/v1/apps/{}/sso/saml/metadata?kid={}", sim.base_url(), app.id, app.kids[0])))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(metadata.contains(&format!(r#"entityID="{}""#, sso.entity_id)));
    assert!(metadata.contains(&format!(r#"Location="{}""#, sso.url)));
}

#[tokio::test]
async fn the_key_switched_to_signs_from_then_on() {
    let sim = start().await;
    let app = seed(&sim, "Switch", 2);
    let url = sim.sso(&app.id).url;
    sim.set_active_kid(&app.id, &app.kids[1]);
    let xml = get_sign_in(&url).await.saml();
    assert_eq!(inner(&xml, "<ds:X509Certificate>", "</ds:X509Certificate>"), x5c(&sim, &app.id, &app.kids[1]));
}

#[tokio::test]
async fn the_control_api_chooses_the_subject_and_the_sign_on_settings() {
    let sim = start().await;
    let app = seed(&sim, "Wiki", 1);
    let http = client();
    let control = format!("{}/__sim/apps/{}/sso", sim.base_url(), app.id);
    let body = json!({
        "subject": "ann@example.com",
        "sign_on": {"ssoAcsUrl": "https://wiki.example/acs", "audience": "urn:wiki", "recipient": "https://wiki.example/r",
                    "destination": "https://wiki.example/d", "defaultRelayState": "/home", "responseSigned": false}
    });
    let info: SsoInfo = http.put(&control).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(info.subject, "ann@example.com");
    assert_eq!(info.acs_url.as_deref(), Some("https://wiki.example/acs"));
    assert_eq!(info.audience.as_deref(), Some("urn:wiki"));
    let got: SsoInfo = http.get(&control).send().await.unwrap().json().await.unwrap();
    assert_eq!(got, info);

    let page = get_sign_in(&info.url).await;
    assert_eq!(page.action(), "https://wiki.example/acs");
    assert_eq!(page.input("RelayState").as_deref(), Some("/home"));
    let xml = page.saml();
    assert_eq!(inner(&xml, "<saml2:NameID ", "</saml2:NameID>"), "ann@example.com");
    assert_eq!(inner(&xml, "<saml2:Audience>", "</saml2:Audience>"), "urn:wiki");
    assert_eq!(attr(&xml, "saml2:SubjectConfirmationData", "Recipient"), "https://wiki.example/r");
    assert_eq!(attr(&xml, "saml2p:Response", "Destination"), "https://wiki.example/d");
    assert_eq!(xml.matches("<ds:Signature ").count(), 1, "responseSigned: false signs the Assertion only");

    // The Apps API's PUT sets them too, as it sets any settings.
    let mut full =
        json_of(ssws(http.get(format!("{}/api/v1/apps/{}", sim.base_url(), app.id))).send().await.unwrap()).await;
    full["settings"]["signOn"]["audience"] = json!("urn:wiki:2");
    let put = ssws(http.put(format!("{}/api/v1/apps/{}", sim.base_url(), app.id))).json(&full).send().await.unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(inner(&get_sign_in(&info.url).await.saml(), "<saml2:Audience>", "</saml2:Audience>"), "urn:wiki:2");

    let bad = http.put(&control).json(&json!({"subject": "a\u{1}b"})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let missing = http.get(format!("{}/__sim/apps/0oanope/sso", sim.base_url())).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let updated = sim.update_sso(&app.id, SsoUpdate { subject: Some("bob".into()), sign_on: None });
    assert_eq!(updated.subject, "bob");
}

#[tokio::test]
async fn unknown_apps_and_apps_without_a_key_get_an_error_page() {
    let sim = start().await;
    let app = seed(&sim, "Gone", 1);
    let url = sim.sso(&app.id).url;
    let wrong_name = url.replace("samlcredsim_gone_1", "other_app_1");
    assert_eq!(get_sign_in(&wrong_name).await.status, 404);
    let keyless = sim.seed_app(okta_sim::SeedApp { id: None, label: "Keyless".into(), keys: vec![], active: 0 });
    let page = get_sign_in(&sim.sso(&keyless.id).url).await;
    assert_eq!((page.status, page.content_type.as_str()), (500, "text/html;charset=utf-8"));
    assert!(page.input("SAMLResponse").is_none());
    sim.remove_app(&app.id);
    assert_eq!(get_sign_in(&url).await.status, 404);
}

// ---- An independent SP: pysaml2 with xmlsec1, through the probe's `once` command. ----

fn sp_python() -> PathBuf {
    let python = std::env::var_os("SAMLCRED_SP_PYTHON").unwrap_or_else(|| {
        panic!("these tests check signatures with pysaml2 and xmlsec1: run `SAMLCRED_SP_PYTHON=$(bash tests/sp/setup.sh) cargo test -p okta-sim` (make test does)")
    });
    PathBuf::from(python)
}

fn pem(cert_b64: &str) -> String {
    let lines: Vec<&str> = cert_b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
}

/// A directory of the files the three SPs trust, as a samlcred Secret would hold them.
struct SecretDir(PathBuf);

impl SecretDir {
    fn new() -> SecretDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "okta-sim-sso-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        SecretDir(dir)
    }

    fn write(&self, name: &str, content: &str) {
        std::fs::write(self.0.join(name), content).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn metadata(sim: &OktaSim, app_id: &str, kid: &str) -> String {
    let url = format!("{}/api/v1/apps/{app_id}/sso/saml/metadata?kid={kid}", sim.base_url());
    ssws(client().get(url)).send().await.unwrap().text().await.unwrap()
}

/// One sign-in through the probe; per SP, `None` when accepted, else the reason.
async fn probe_once(sso: &SsoInfo, dir: &SecretDir) -> serde_json::Map<String, Value> {
    let out = tokio::process::Command::new(sp_python())
        .arg(PROBE)
        .arg("once")
        .arg("--dir")
        .arg(dir.path())
        .args(["--sso-url", &sso.url, "--idp-entity-id", &sso.entity_id])
        .args(["--sp-entity-id", sso.audience.as_deref().unwrap(), "--acs-url", sso.acs_url.as_deref().unwrap()])
        .output()
        .await
        .expect("running tests/sp/probe.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("probe.py said {stdout:?} ({e}); stderr: {}", String::from_utf8_lossy(&out.stderr)));
    line["results"].as_object().unwrap().clone()
}

fn accepted(results: &serde_json::Map<String, Value>, sp: &str) -> bool {
    results[sp]["ok"] == true
}

#[tokio::test]
async fn pysaml2_accepts_the_signatures_with_the_active_certificate_only() {
    let sim = start().await;
    let app = seed(&sim, "Verified", 2);
    let sso = sim.sso(&app.id);
    let (active, other) = (x5c(&sim, &app.id, &app.kids[0]), x5c(&sim, &app.id, &app.kids[1]));
    let dir = SecretDir::new();
    dir.write("metadata.xml", &metadata(&sim, &app.id, &app.kids[0]).await);
    dir.write("bundle.pem", &format!("{}{}", pem(&other), pem(&active)));
    dir.write("certificate.pem", &pem(&other));

    let results = probe_once(&sso, &dir).await;
    assert!(accepted(&results, "metadata.xml"), "{results:?}");
    assert!(accepted(&results, "bundle.pem"), "a bundle holding the active certificate: {results:?}");
    assert!(!accepted(&results, "certificate.pem"), "another key's certificate must not verify: {results:?}");
    assert!(results["certificate.pem"]["reason"].as_str().unwrap().contains("SignatureError"), "{results:?}");

    // After a switch the other key signs: what was refused is accepted, and the reverse.
    sim.set_active_kid(&app.id, &app.kids[1]);
    let results = probe_once(&sso, &dir).await;
    assert!(accepted(&results, "certificate.pem") && accepted(&results, "bundle.pem"), "{results:?}");
    assert!(!accepted(&results, "metadata.xml"), "metadata of the previous key: {results:?}");
}

#[tokio::test]
async fn pysaml2_accepts_awkward_subjects_and_assertion_only_signing() {
    let sim = start().await;
    let app = seed(&sim, "Awkward", 1);
    let subject = "O'Brien & <Söhne> \"quoted\"\tname@example.com";
    let sso = sim.update_sso(
        &app.id,
        SsoUpdate {
            subject: Some(subject.into()),
            sign_on: Some(json!({"responseSigned": false}).as_object().unwrap().clone()),
        },
    );
    let dir = SecretDir::new();
    dir.write("metadata.xml", &metadata(&sim, &app.id, &app.kids[0]).await);
    let cert = pem(&x5c(&sim, &app.id, &app.kids[0]));
    dir.write("bundle.pem", &cert);
    dir.write("certificate.pem", &cert);
    let results = probe_once(&sso, &dir).await;
    for sp in ["metadata.xml", "bundle.pem", "certificate.pem"] {
        assert!(accepted(&results, sp), "{sp}: {results:?}");
    }
}

#[tokio::test]
async fn pysaml2_checks_issuer_audience_and_time() {
    let sim = start().await;
    let app = seed(&sim, "Checked", 1);
    let sso = sim.sso(&app.id);
    let dir = SecretDir::new();
    dir.write("metadata.xml", &metadata(&sim, &app.id, &app.kids[0]).await);
    let cert = pem(&x5c(&sim, &app.id, &app.kids[0]));
    dir.write("bundle.pem", &cert);
    dir.write("certificate.pem", &cert);

    let other_audience = SsoInfo { audience: Some("urn:someone-else".into()), ..sso.clone() };
    let results = probe_once(&other_audience, &dir).await;
    assert!(results["bundle.pem"]["reason"].as_str().unwrap().contains("AudienceRestrictions"), "{results:?}");
    let other_issuer = SsoInfo { entity_id: "http://www.okta.com/exkSomeoneElse0000".into(), ..sso.clone() };
    let results = probe_once(&other_issuer, &dir).await;
    assert!(!accepted(&results, "bundle.pem"), "{results:?}");
    // The simulator's clock an hour ahead: its assertions are not valid yet for an SP on real time.
    sim.advance_clock(std::time::Duration::from_secs(3600));
    let results = probe_once(&sso, &dir).await;
    assert!(results["metadata.xml"]["reason"].as_str().unwrap().contains("ToEarly"), "{results:?}");
}
