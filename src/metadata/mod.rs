//! The Secret's `metadata.xml`: Okta's SAML IdP metadata for the active key, with one signing
//! KeyDescriptor per certificate of `bundle.pem`. Okta's own document names only the key it signs
//! with, so an SP that reads metadata would learn the pending certificate only at activation and
//! fail sign-ins until it reloaded; with every certificate listed it trusts the pending one from the
//! moment it is published, as an SP that reads `bundle.pem` does.
//!
//! Pure: a document and certificates in, bytes out, the same bytes for the same inputs. Everything
//! Okta sent is copied as it was written (the XML declaration, prefixes, attributes, whitespace,
//! comments, encryption keys, elements samlcred does not know); only the signing KeyDescriptors of
//! the IDPSSODescriptor are replaced. The document is read as a stream, twice (once to learn the
//! prefix its KeyInfo elements use, once to check and write it), so memory follows the nesting
//! depth, not the size.

#[cfg(test)]
mod tests;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use quick_xml::events::{BytesEnd, BytesRef, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, Writer, XmlVersion};

/// Larger documents are refused: Okta's are a few kilobytes.
pub const MAX_SIZE: usize = 1024 * 1024;
/// The SAML 2.0 metadata namespace.
pub const METADATA_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
/// The XML Signature namespace of KeyInfo and X509Certificate.
pub const XMLDSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// Line length of the base64 in a written X509Certificate: Okta's (MIME's) 76 columns, so that a
/// document Okta sent for the bundle's only certificate comes out unchanged.
const CERTIFICATE_COLUMNS: usize = 76;
/// How much of a name or parser message an error repeats, so that a hostile document cannot blow up
/// a condition message.
const QUOTE_LIMIT: usize = 120;

/// Why a document cannot be made the Secret's `metadata.xml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("the metadata is {size} bytes, more than the {MAX_SIZE} samlcred accepts")]
    TooLarge { size: usize },
    #[error("the metadata is not well-formed XML: {0}")]
    Malformed(String),
    #[error("the metadata has a DOCTYPE; samlcred refuses DTDs")]
    Doctype,
    #[error("the metadata declares encoding {0:?}; samlcred accepts only UTF-8")]
    Encoding(String),
    #[error("the metadata has no root element")]
    NoRoot,
    #[error("the metadata's root element is {found}, not an EntityDescriptor of {METADATA_NS}")]
    WrongRoot { found: String },
    #[error("the metadata has a second root element, {found}")]
    SeveralRoots { found: String },
    #[error("the metadata has text outside its root element")]
    TextOutsideRoot,
    #[error("the metadata's EntityDescriptor has no IDPSSODescriptor child")]
    NoIdpDescriptor,
    #[error("the metadata's EntityDescriptor has more than one IDPSSODescriptor")]
    SeveralIdpDescriptors,
    #[error("a KeyDescriptor of the metadata has use={0:?}; SAML allows only \"signing\" and \"encryption\"")]
    UnknownKeyUse(String),
    #[error("no certificate to put in the metadata")]
    NoCertificates,
}

/// Okta's metadata `document` with its signing KeyDescriptors replaced by one per DER certificate of
/// `certificates`, in that order (the order of `bundle.pem`: active, pending, previous).
///
/// The new KeyDescriptors take the place of the first child of the IDPSSODescriptor that is not
/// `ds:Signature` or `md:Extensions`, where the schema wants them; KeyDescriptors with
/// `use="encryption"` stay where they were.
pub fn with_signing_certificates(document: &str, certificates: &[&[u8]]) -> Result<String, MetadataError> {
    if certificates.is_empty() {
        return Err(MetadataError::NoCertificates);
    }
    let mut xmldsig_prefix = None;
    let mut scan = Walker::new(document)?;
    while let Some(item) = scan.next()? {
        if let (Place::InKey(_), Event::Start(e) | Event::Empty(e)) = (item.place, &item.event)
            && item.ns == Ns::Xmldsig
            && e.local_name().as_ref() == "KeyInfo"
        {
            xmldsig_prefix = Some(e.name().prefix().map(|p| p.into_inner().to_owned()));
            break;
        }
    }
    let mut rewrite = Rewrite {
        out: Writer::new(Vec::with_capacity(document.len() + certificates.len() * 2048)),
        certificates,
        // A document without any KeyInfo gets the prefix Okta uses.
        xmldsig_prefix: xmldsig_prefix.unwrap_or_else(|| Some("ds".to_owned())),
        metadata_prefix: None,
        inserted: false,
        first_child_seen: false,
        child_indent: None,
        whitespace: String::new(),
    };
    let mut walk = Walker::new(document)?;
    while let Some(item) = walk.next()? {
        rewrite.event(item);
    }
    String::from_utf8(rewrite.out.into_inner()).map_err(|e| MetadataError::Malformed(e.to_string()))
}

/// The DER of each signing certificate the metadata names, in document order: the X509Certificates
/// of the IDPSSODescriptor's KeyDescriptors with `use="signing"` or without `use`.
pub fn signing_certificates(document: &str) -> Result<Vec<Vec<u8>>, MetadataError> {
    let mut found = Vec::new();
    let mut base64: Option<String> = None;
    let mut walk = Walker::new(document)?;
    while let Some(item) = walk.next()? {
        if item.place != Place::InKey(KeyUse::Signing) {
            continue;
        }
        let is_certificate = |name: &str| item.ns == Ns::Xmldsig && name == "X509Certificate";
        match &item.event {
            Event::Start(e) if is_certificate(e.local_name().as_ref()) => base64 = Some(String::new()),
            Event::Empty(e) if is_certificate(e.local_name().as_ref()) => found.push(Vec::new()),
            Event::End(e) if is_certificate(e.local_name().as_ref()) => {
                let text = base64.take().unwrap_or_default();
                let der = STANDARD
                    .decode(text)
                    .map_err(|e| MetadataError::Malformed(format!("an X509Certificate is not base64: {e}")))?;
                found.push(der);
            }
            Event::Text(text) => {
                if let Some(base64) = base64.as_mut() {
                    base64.extend(text.chars().filter(|c| !c.is_ascii_whitespace()));
                }
            }
            Event::GeneralRef(reference) => {
                // `&#13;` and the like, which some IdPs put at the ends of the lines.
                let c = reference.resolve_char_ref().ok().flatten().filter(|c| !c.is_ascii_whitespace());
                if let (Some(base64), Some(c)) = (base64.as_mut(), c) {
                    base64.push(c);
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The namespace of an element, as far as this module cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Metadata,
    Xmldsig,
    Other,
}

/// What a KeyDescriptor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyUse {
    Signing,
    Encryption,
}

/// Where an event is, as the rewrite sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Anywhere the rewrite copies as is.
    Elsewhere,
    /// The IDPSSODescriptor's start tag (or its empty-element tag).
    IdpOpen,
    /// The IDPSSODescriptor's end tag.
    IdpClose,
    /// Directly inside the IDPSSODescriptor: a child's start tag, text, a comment.
    IdpChild(Child),
    /// Inside a KeyDescriptor of the IDPSSODescriptor, its end tag included.
    InKey(KeyUse),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Child {
    /// `ds:Signature` or `md:Extensions`, which the schema puts before the KeyDescriptors.
    Preamble,
    Key(KeyUse),
    /// Any other element.
    Element,
    /// Text made only of whitespace: the indentation of a pretty-printed document.
    Whitespace,
    /// Other text, a comment, a processing instruction.
    Other,
}

struct Item<'a> {
    event: Event<'a>,
    /// The namespace of a start, empty or end tag; `Other` for the rest.
    ns: Ns,
    place: Place,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Before,
    Inside,
    After,
}

/// Reads a document event by event, refusing what samlcred does not publish, and says where each
/// event is.
struct Walker<'a> {
    reader: NsReader<&'a [u8]>,
    /// Open elements.
    depth: usize,
    started: bool,
    root: Root,
    idp_seen: bool,
    idp_open: bool,
    /// Inside a KeyDescriptor of the IDPSSODescriptor, and what it is for.
    key: Option<KeyUse>,
}

impl<'a> Walker<'a> {
    fn new(document: &'a str) -> Result<Walker<'a>, MetadataError> {
        if document.len() > MAX_SIZE {
            return Err(MetadataError::TooLarge { size: document.len() });
        }
        let mut reader = NsReader::from_str(document);
        reader.config_mut().enable_all_checks(true);
        Ok(Walker { reader, depth: 0, started: false, root: Root::Before, idp_seen: false, idp_open: false, key: None })
    }

    /// A document that breaks a rule of XML, found where the reader stands.
    fn malformed(&self, what: impl std::fmt::Display) -> MetadataError {
        let position = self.reader.buffer_position();
        MetadataError::Malformed(format!("{} (near byte {position})", quote(&what.to_string())))
    }

    fn next(&mut self) -> Result<Option<Item<'a>>, MetadataError> {
        let (resolved, event) = match self.reader.read_resolved_event() {
            Ok((resolved, event)) => (namespace(&resolved), event),
            Err(e) => {
                let position = self.reader.error_position();
                return Err(MetadataError::Malformed(format!("{} (at byte {position})", quote(&e.to_string()))));
            }
        };
        let ns = match resolved {
            Ok(ns) => ns,
            Err(prefix) => return Err(self.malformed(format!("the prefix {prefix:?} is not declared"))),
        };
        let first = !self.started;
        self.started = true;
        let place = match &event {
            Event::Eof => {
                return if self.root == Root::Before {
                    Err(MetadataError::NoRoot)
                } else if self.depth > 0 {
                    Err(self.malformed("the document ends inside an element"))
                } else if !self.idp_seen {
                    Err(MetadataError::NoIdpDescriptor)
                } else {
                    Ok(None)
                };
            }
            Event::DocType(_) => return Err(MetadataError::Doctype),
            Event::Decl(decl) => {
                if !first {
                    return Err(self.malformed("an XML declaration after the start of the document"));
                }
                match decl.encoding() {
                    Some(Ok(encoding)) if !encoding.eq_ignore_ascii_case("UTF-8") => {
                        return Err(MetadataError::Encoding(quote(&encoding)));
                    }
                    Some(Err(e)) => return Err(self.malformed(e)),
                    _ => {}
                }
                Place::Elsewhere
            }
            Event::Start(e) | Event::Empty(e) => {
                self.check_attributes(e)?;
                let opens = matches!(event, Event::Start(_));
                let place = self.element(e, ns, opens)?;
                if opens {
                    self.depth += 1;
                } else if self.depth == 0 {
                    self.root = Root::After;
                }
                place
            }
            Event::End(_) => {
                self.depth = self.depth.saturating_sub(1);
                match (self.depth, self.key) {
                    (0, _) => {
                        self.root = Root::After;
                        Place::Elsewhere
                    }
                    (1, _) if self.idp_open => {
                        self.idp_open = false;
                        Place::IdpClose
                    }
                    (2, Some(key)) => {
                        self.key = None;
                        Place::InKey(key)
                    }
                    (_, Some(key)) => Place::InKey(key),
                    _ => Place::Elsewhere,
                }
            }
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) | Event::Comment(_) | Event::PI(_) => {
                if let Event::GeneralRef(reference) = &event {
                    check_reference(reference).map_err(|what| self.malformed(what))?;
                }
                let whitespace = matches!(&event, Event::Text(t) if is_whitespace(t));
                let text = matches!(&event, Event::Text(_) | Event::CData(_) | Event::GeneralRef(_));
                if self.depth == 0 && text && !whitespace {
                    return Err(MetadataError::TextOutsideRoot);
                }
                match self.key {
                    Some(key) => Place::InKey(key),
                    None if self.idp_open && self.depth == 2 => {
                        Place::IdpChild(if whitespace { Child::Whitespace } else { Child::Other })
                    }
                    None => Place::Elsewhere,
                }
            }
        };
        Ok(Some(Item { event, ns, place }))
    }

    /// Checks a start tag against its place in the document and says what it is.
    fn element(&mut self, e: &BytesStart, ns: Ns, opens: bool) -> Result<Place, MetadataError> {
        let local = e.local_name();
        let local = local.as_ref();
        match self.depth {
            0 => match self.root {
                Root::Before if ns == Ns::Metadata && local == "EntityDescriptor" => {
                    self.root = Root::Inside;
                    Ok(Place::Elsewhere)
                }
                Root::Before => Err(MetadataError::WrongRoot { found: describe(e, ns) }),
                _ => Err(MetadataError::SeveralRoots { found: describe(e, ns) }),
            },
            1 if ns == Ns::Metadata && local == "IDPSSODescriptor" => {
                if self.idp_seen {
                    return Err(MetadataError::SeveralIdpDescriptors);
                }
                self.idp_seen = true;
                self.idp_open = opens;
                Ok(Place::IdpOpen)
            }
            2 if self.idp_open => {
                let child = match (ns, local) {
                    (Ns::Metadata, "KeyDescriptor") => {
                        let key = self.key_use(e)?;
                        if opens {
                            self.key = Some(key);
                        }
                        Child::Key(key)
                    }
                    (Ns::Xmldsig, "Signature") | (Ns::Metadata, "Extensions") => Child::Preamble,
                    _ => Child::Element,
                };
                Ok(Place::IdpChild(child))
            }
            _ => Ok(self.key.map_or(Place::Elsewhere, Place::InKey)),
        }
    }

    /// What a KeyDescriptor is for.
    fn key_use(&self, e: &BytesStart) -> Result<KeyUse, MetadataError> {
        let Some(attribute) = e.try_get_attribute("use").map_err(|err| self.malformed(err))? else {
            // SAML: a KeyDescriptor without `use` is for both signing and encryption. In Okta's
            // document it names the active certificate, so it is replaced like the signing ones;
            // keeping it would list the active certificate twice and, after a rotation, would keep
            // naming a certificate that left the bundle.
            return Ok(KeyUse::Signing);
        };
        match attribute.normalized_value(XmlVersion::Implicit1_0).map_err(|err| self.malformed(err))?.as_ref() {
            "signing" => Ok(KeyUse::Signing),
            "encryption" => Ok(KeyUse::Encryption),
            other => Err(MetadataError::UnknownKeyUse(quote(other))),
        }
    }

    /// Well-formed attributes, with declared prefixes and only the predefined entities.
    fn check_attributes(&self, e: &BytesStart) -> Result<(), MetadataError> {
        for attribute in e.attributes() {
            let attribute = attribute.map_err(|err| self.malformed(err))?;
            attribute.normalized_value(XmlVersion::Implicit1_0).map_err(|err| self.malformed(err))?;
            if let (ResolveResult::Unknown(prefix), _) = self.reader.resolver().resolve_attribute(attribute.key) {
                return Err(self.malformed(format!("the prefix {prefix:?} is not declared")));
            }
        }
        Ok(())
    }
}

/// Writes the document again, with the new signing KeyDescriptors.
struct Rewrite<'c> {
    out: Writer<Vec<u8>>,
    certificates: &'c [&'c [u8]],
    /// The prefix for the new KeyInfo elements (`None`: the default namespace).
    xmldsig_prefix: Option<String>,
    /// The IDPSSODescriptor's prefix, which is bound to the metadata namespace inside it.
    metadata_prefix: Option<String>,
    inserted: bool,
    first_child_seen: bool,
    /// The whitespace before the IDPSSODescriptor's first child: what goes before each new
    /// KeyDescriptor, so that a pretty-printed document stays so.
    child_indent: Option<String>,
    /// Whitespace directly inside the IDPSSODescriptor not written yet: it goes with the next child,
    /// and away with it when that child is a replaced KeyDescriptor.
    whitespace: String,
}

impl Rewrite<'_> {
    fn event(&mut self, item: Item) {
        match item.place {
            Place::Elsewhere | Place::InKey(KeyUse::Encryption) => self.put(item.event),
            Place::InKey(KeyUse::Signing) => {}
            Place::IdpOpen => {
                let (Event::Start(e) | Event::Empty(e)) = &item.event else { return };
                self.metadata_prefix = e.name().prefix().map(|p| p.into_inner().to_owned());
                if let Event::Empty(e) = item.event {
                    let end = e.to_end().into_owned();
                    self.put(Event::Start(e));
                    self.insert();
                    self.put(Event::End(end));
                } else {
                    self.put(item.event);
                }
            }
            Place::IdpClose => {
                self.insert();
                self.flush_whitespace();
                self.put(item.event);
            }
            Place::IdpChild(Child::Whitespace) => {
                if let Event::Text(text) = &item.event {
                    self.whitespace.push_str(text);
                }
            }
            Place::IdpChild(Child::Other | Child::Preamble) => {
                self.note_child(matches!(item.event, Event::Start(_) | Event::Empty(_)));
                self.flush_whitespace();
                self.put(item.event);
            }
            Place::IdpChild(Child::Key(KeyUse::Signing)) => {
                self.note_child(true);
                self.insert();
                self.whitespace.clear();
            }
            Place::IdpChild(Child::Key(KeyUse::Encryption) | Child::Element) => {
                self.note_child(true);
                self.insert();
                self.flush_whitespace();
                self.put(item.event);
            }
        }
    }

    fn note_child(&mut self, element: bool) {
        if element && !self.first_child_seen {
            self.first_child_seen = true;
            self.child_indent = Some(self.whitespace.clone()).filter(|w| !w.is_empty());
        }
    }

    fn flush_whitespace(&mut self) {
        if !self.whitespace.is_empty() {
            let text = std::mem::take(&mut self.whitespace);
            self.put(Event::Text(BytesText::from_escaped(text)));
        }
    }

    /// The signing KeyDescriptors, once.
    fn insert(&mut self) {
        if std::mem::replace(&mut self.inserted, true) {
            return;
        }
        let md = |local: &str| qualified(self.metadata_prefix.as_deref(), local);
        let ds = |local: &str| qualified(self.xmldsig_prefix.as_deref(), local);
        let xmlns = match &self.xmldsig_prefix {
            Some(prefix) => format!("xmlns:{prefix}"),
            None => "xmlns".to_owned(),
        };
        let names = [md("KeyDescriptor"), ds("KeyInfo"), ds("X509Data"), ds("X509Certificate")];
        let start = |i: usize| BytesStart::new(names[i].clone());
        let mut events = Vec::new();
        for der in self.certificates {
            if let Some(indent) = &self.child_indent {
                events.push(Event::Text(BytesText::from_escaped(indent.clone())));
            }
            events.push(Event::Start(start(0).with_attributes([("use", "signing")])));
            // Declared on each KeyInfo, as Okta does, whatever the ancestors declare.
            events.push(Event::Start(start(1).with_attributes([(xmlns.as_str(), XMLDSIG_NS)])));
            events.push(Event::Start(start(2)));
            events.push(Event::Start(start(3)));
            events.push(Event::Text(BytesText::from_escaped(wrapped_base64(der))));
            events.extend(names.iter().rev().map(|name| Event::End(BytesEnd::new(name.clone()))));
        }
        events.into_iter().for_each(|event| self.put(event));
    }

    fn put(&mut self, event: Event) {
        self.out.write_event(event).expect("writing to memory cannot fail");
    }
}

/// `prefix:local`, or `local` in the default namespace.
fn qualified(prefix: Option<&str>, local: &str) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}:{local}"),
        None => local.to_owned(),
    }
}

/// Base64 of `der` in lines of [`CERTIFICATE_COLUMNS`], joined by newlines, none at either end.
fn wrapped_base64(der: &[u8]) -> String {
    let encoded = STANDARD.encode(der);
    let lines: Vec<&str> =
        encoded.as_bytes().chunks(CERTIFICATE_COLUMNS).map(|l| std::str::from_utf8(l).expect("ASCII")).collect();
    lines.join("\n")
}

fn namespace(resolved: &ResolveResult) -> Result<Ns, String> {
    match resolved {
        ResolveResult::Bound(ns) if ns.0 == METADATA_NS => Ok(Ns::Metadata),
        ResolveResult::Bound(ns) if ns.0 == XMLDSIG_NS => Ok(Ns::Xmldsig),
        ResolveResult::Bound(_) | ResolveResult::Unbound => Ok(Ns::Other),
        ResolveResult::Unknown(prefix) => Err(quote(prefix)),
    }
}

/// Without a DTD only the five predefined entities and character references exist.
fn check_reference(reference: &BytesRef) -> Result<(), String> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(_)) => Ok(()),
            _ => Err(format!("the character reference &{}; is not valid", quote(reference))),
        };
    }
    match reference.as_ref() {
        "amp" | "lt" | "gt" | "apos" | "quot" => Ok(()),
        other => Err(format!("the entity &{}; is not defined", quote(other))),
    }
}

fn is_whitespace(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// An element's name and namespace, for an error message.
fn describe(e: &BytesStart, ns: Ns) -> String {
    let name = quote(e.name().as_ref());
    match ns {
        Ns::Metadata => format!("{name} (in {METADATA_NS})"),
        Ns::Xmldsig => format!("{name} (in {XMLDSIG_NS})"),
        Ns::Other => format!("{name} (in another namespace or none)"),
    }
}

/// At most [`QUOTE_LIMIT`] characters of `text`.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}
