//! Golden tests: each `testdata/NAME.xml` rewritten with the certificates of its case must give
//! `testdata/NAME.expected.xml` byte for byte. After a deliberate change of the output, run
//! `SAMLCRED_BLESS=1 cargo test --lib metadata` and review the diff of the expected files.

use std::path::PathBuf;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::*;

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/metadata/testdata").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(testdata(name)).unwrap_or_else(|e| panic!("reading testdata/{name}: {e}"))
}

/// The DER of `testdata/NAME.pem`.
fn certificate(name: &str) -> Vec<u8> {
    let pem = read(&format!("{name}.pem"));
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

struct Certificates {
    active: Vec<u8>,
    pending: Vec<u8>,
    previous: Vec<u8>,
}

fn certificates() -> Certificates {
    Certificates { active: certificate("active"), pending: certificate("pending"), previous: certificate("previous") }
}

/// Each golden case: its input and the certificates of the bundle.
fn cases(c: &Certificates) -> Vec<(&'static str, Vec<&[u8]>)> {
    vec![
        ("okta", vec![&c.active, &c.pending, &c.previous]),
        ("pretty", vec![&c.active, &c.pending]),
        ("saml2md", vec![&c.pending, &c.active]),
        ("default-ns", vec![&c.active, &c.pending, &c.previous]),
        ("no-keys", vec![&c.active]),
    ]
}

/// The KeyDescriptors of the IDPSSODescriptor as `(use, DER of each certificate)`, read with a
/// plain quick-xml reader by prefix-agnostic local names, independently of the module's own walk.
fn idp_keys(document: &str) -> Vec<(Option<String>, Vec<Vec<u8>>)> {
    let mut reader = Reader::from_str(document);
    let (mut in_idp, mut in_cert) = (false, false);
    let mut keys: Vec<(Option<String>, Vec<Vec<u8>>)> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => match e.local_name().as_ref() {
                "IDPSSODescriptor" => in_idp = true,
                "KeyDescriptor" if in_idp => {
                    let key_use = e.try_get_attribute("use").unwrap().map(|a| a.value.into_owned());
                    keys.push((key_use, Vec::new()));
                }
                "X509Certificate" if in_idp => (in_cert, text) = (true, String::new()),
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                "IDPSSODescriptor" => in_idp = false,
                "X509Certificate" if in_idp => {
                    in_cert = false;
                    let der = STANDARD.decode(text.replace(|c: char| c.is_ascii_whitespace(), "")).unwrap();
                    keys.last_mut().unwrap().1.push(der);
                }
                _ => {}
            },
            Event::Text(t) if in_cert => text.push_str(&t),
            Event::Eof => return keys,
            _ => {}
        }
    }
}

#[test]
fn golden_documents() {
    let c = certificates();
    let bless = std::env::var_os("SAMLCRED_BLESS").is_some();
    let mut differ = Vec::new();
    for (name, bundle) in cases(&c) {
        let output = with_signing_certificates(&read(&format!("{name}.xml")), &bundle)
            .unwrap_or_else(|e| panic!("{name}.xml: {e}"));
        let expected_file = format!("{name}.expected.xml");
        if bless {
            std::fs::write(testdata(&expected_file), &output).unwrap();
        } else if std::fs::read_to_string(testdata(&expected_file)).ok().as_deref() != Some(output.as_str()) {
            differ.push(expected_file);
        }
    }
    assert!(
        differ.is_empty(),
        "output differs from {differ:?}; if the change is intended, run SAMLCRED_BLESS=1 cargo test --lib metadata \
         and review the diff"
    );
}

#[test]
fn the_output_names_exactly_the_bundle_in_order_and_keeps_encryption_keys() {
    let c = certificates();
    for (name, bundle) in cases(&c) {
        let input = read(&format!("{name}.xml"));
        let output = with_signing_certificates(&input, &bundle).unwrap();
        let keys = idp_keys(&output);
        let signing: Vec<&Vec<Vec<u8>>> =
            keys.iter().filter(|(key_use, _)| key_use.as_deref() == Some("signing")).map(|(_, c)| c).collect();
        let expected: Vec<Vec<Vec<u8>>> = bundle.iter().map(|der| vec![der.to_vec()]).collect();
        assert_eq!(signing, expected.iter().collect::<Vec<_>>(), "{name}: signing keys");
        assert_eq!(signing_certificates(&output).unwrap(), bundle, "{name}: signing_certificates");

        let encryption = |keys: &[(Option<String>, Vec<Vec<u8>>)]| {
            keys.iter().filter(|(key_use, _)| key_use.as_deref() == Some("encryption")).cloned().collect::<Vec<_>>()
        };
        assert_eq!(encryption(&keys), encryption(&idp_keys(&input)), "{name}: encryption keys");
        assert!(keys.iter().all(|(key_use, _)| key_use.is_some()), "{name}: a KeyDescriptor without use is left");
    }
}

#[test]
fn the_same_inputs_give_the_same_bytes_and_a_second_pass_changes_nothing() {
    let c = certificates();
    for (name, bundle) in cases(&c) {
        let input = read(&format!("{name}.xml"));
        let once = with_signing_certificates(&input, &bundle).unwrap();
        assert_eq!(once, with_signing_certificates(&input, &bundle).unwrap(), "{name}");
        assert_eq!(once, with_signing_certificates(&once, &bundle).unwrap(), "{name}: second pass");
    }
}

#[test]
fn okta_document_for_the_bundles_only_certificate_comes_out_unchanged() {
    let c = certificates();
    let okta = read("okta.xml");
    assert_eq!(with_signing_certificates(&okta, &[&c.active]).unwrap(), okta);
}

#[test]
fn new_certificates_are_wrapped_at_76_columns() {
    let c = certificates();
    let output = with_signing_certificates(&read("no-keys.xml"), &[&c.previous]).unwrap();
    let start = output.find("X509Certificate>").unwrap() + "X509Certificate>".len();
    let base64 = &output[start..start + output[start..].find('<').unwrap()];
    let lengths: Vec<usize> = base64.lines().map(str::len).collect();
    assert!(lengths.len() > 1 && lengths[..lengths.len() - 1].iter().all(|&l| l == 76), "{lengths:?}");
    assert_eq!(STANDARD.decode(base64.replace('\n', "")).unwrap(), c.previous);
}

#[test]
fn an_empty_idp_descriptor_gets_the_keys() {
    let document =
        r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><IDPSSODescriptor/></EntityDescriptor>"#;
    let output = with_signing_certificates(document, &[b"one"]).unwrap();
    assert_eq!(
        output,
        r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><IDPSSODescriptor><KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>b25l</ds:X509Certificate></ds:X509Data></ds:KeyInfo></KeyDescriptor></IDPSSODescriptor></EntityDescriptor>"#
    );
}

const MD: &str = r#"xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata""#;

fn refused(document: &str) -> MetadataError {
    let error = with_signing_certificates(document, &[b"cert"]).expect_err(document);
    assert_eq!(signing_certificates(document).expect_err(document), error, "both refuse alike");
    error
}

fn idp(inner: &str) -> String {
    format!("<md:EntityDescriptor {MD}><md:IDPSSODescriptor>{inner}</md:IDPSSODescriptor></md:EntityDescriptor>")
}

#[test]
fn documents_that_are_not_idp_metadata_are_refused() {
    use MetadataError::*;
    let wrong_root = |document: &str| match refused(document) {
        WrongRoot { found } => found,
        other => panic!("{document}: {other:?}"),
    };
    assert!(
        wrong_root(&format!("<md:EntitiesDescriptor {MD}>{}</md:EntitiesDescriptor>", idp("")))
            .contains("EntitiesDescriptor")
    );
    assert!(wrong_root("<html><body>Service unavailable</body></html>").starts_with("html (in another namespace"));
    assert!(wrong_root("<EntityDescriptor><IDPSSODescriptor/></EntityDescriptor>").contains("another namespace"));
    let wrong_namespace =
        r#"<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:1.0:metadata"><IDPSSODescriptor/></EntityDescriptor>"#;
    wrong_root(wrong_namespace);

    assert_eq!(refused("<!DOCTYPE html><html><body>Error</body></html>"), Doctype);
    let laughs = format!(r#"<?xml version="1.0"?><!DOCTYPE md [<!ENTITY a "aaaa">]>{}"#, idp("&a;"));
    assert_eq!(refused(&laughs), Doctype);
    assert_eq!(refused(""), NoRoot);
    assert_eq!(refused("  \n"), NoRoot);
    assert_eq!(refused("Service unavailable"), TextOutsideRoot);
    assert_eq!(refused(&format!("{}trailing", idp(""))), TextOutsideRoot);
    assert_eq!(refused(&format!("<![CDATA[x]]>{}", idp(""))), TextOutsideRoot);
    assert!(matches!(refused(&format!("{}<md:EntityDescriptor {MD}/>", idp(""))), SeveralRoots { .. }));
    assert_eq!(refused(&format!("<md:EntityDescriptor {MD}/>")), NoIdpDescriptor);
    assert_eq!(
        refused(&format!("<md:EntityDescriptor {MD}><md:SPSSODescriptor/></md:EntityDescriptor>")),
        NoIdpDescriptor
    );
    let nested = format!(
        "<md:EntityDescriptor {MD}><md:Extensions><md:IDPSSODescriptor/></md:Extensions></md:EntityDescriptor>"
    );
    assert_eq!(refused(&nested), NoIdpDescriptor);
    let two = format!("<md:EntityDescriptor {MD}><md:IDPSSODescriptor/><md:IDPSSODescriptor/></md:EntityDescriptor>");
    assert_eq!(refused(&two), SeveralIdpDescriptors);
    assert_eq!(refused(&idp(r#"<md:KeyDescriptor use="Signing"/>"#)), UnknownKeyUse("Signing".into()));
    let latin1 = format!(r#"<?xml version="1.0" encoding="ISO-8859-1"?>{}"#, idp(""));
    assert_eq!(refused(&latin1), Encoding("ISO-8859-1".into()));

    let too_large = format!("{}<!--{}-->", idp(""), "x".repeat(MAX_SIZE));
    assert_eq!(refused(&too_large), TooLarge { size: too_large.len() });
    assert_eq!(with_signing_certificates(&idp(""), &[]), Err(NoCertificates));
}

#[test]
fn malformed_xml_is_refused_with_where() {
    for document in [
        idp("<md:NameIDFormat>").as_str(),
        &format!("<md:EntityDescriptor {MD}><md:IDPSSODescriptor>"),
        &format!("<md:EntityDescriptor {MD}><md:IDPSSODescriptor></md:EntityDescriptor>"),
        &idp("<x:Thing/>"),
        &idp(r#"<md:SingleSignOnService x:Binding="b"/>"#),
        &idp(r#"<md:SingleSignOnService Location="a" Location="b"/>"#),
        &idp(r#"<md:SingleSignOnService Location="a&nbsp;b"/>"#),
        &idp("&nbsp;"),
        &idp("<!-- a -- b -->"),
        &format!("{}<?xml version=\"1.0\"?>", idp("")),
        "<md:EntityDescriptor",
    ] {
        match refused(document) {
            MetadataError::Malformed(message) => assert!(message.contains(" byte "), "{document}: {message}"),
            other => panic!("{document}: {other:?}"),
        }
    }
}

#[test]
fn error_messages_quote_little_of_the_document() {
    let name = "x".repeat(10_000);
    let error = refused(&format!("<{name}/>"));
    assert!(error.to_string().len() < 400, "{error}");
}

#[test]
fn a_byte_order_mark_is_dropped() {
    let c = certificates();
    let okta = read("okta.xml");
    assert_eq!(with_signing_certificates(&format!("\u{FEFF}{okta}"), &[&c.active]).unwrap(), okta);
}
