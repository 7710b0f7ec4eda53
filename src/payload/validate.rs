//! Checks on a CO or DO, in two passes that both collect every fault instead of stopping at the
//! first:
//!
//! 1. [`scan_document`] reads the raw XML once with quick-xml, before yaserde binds it: is it
//!    well-formed, is the root `{urn:coconnect:xsd:lpco:1}LPCO`, and does every element and
//!    attribute belong where `xsd/lpco-co.xsd` puts it (known name, right namespace, schema order,
//!    no repetition of a single element). yaserde would skip or overwrite all of these silently.
//! 2. [`validate_document`] checks the bound [`Lpco`]: mandatory elements, lengths, formats, code
//!    lists and the rules XSD cannot express (TypeCode 861 or 862, item numbering, ISO 3166-1
//!    membership, what a DO needs beyond a CO).
//!
//! Pass 2 also serves a document built in code, so everything about the *content* of the
//! document is there; pass 1 only knows the element tree ([`LPCO_TREE`]), which the unit tests
//! compare with the XSD. The tree is the same for a CO and a DO (one schema), so only pass 2
//! depends on the [`DocumentKind`].

use std::fmt;

use chrono::{NaiveDate, Timelike};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

use super::codes;
use super::model::{
    AdditionalInformation, Address, Authentication, Commodity, Consignment, ConsignmentItem, GoodsMeasure, Lpco,
};
use super::{DocumentKind, LPCO_NAMESPACE};

/// One fault of a CO document: a stable code (see [`error_code`]), a readable message and the
/// XPath-like location, e.g. `/LPCO/Consignment/ConsignmentItem[2]/Commodity/Classification/ID`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValidationError {
    /// Stable machine-readable code, one of [`error_code`].
    pub code: &'static str,
    /// What is wrong, for a human reader.
    pub message: String,
    /// Where: `/LPCO/...` with 1-based indices on repeated elements, `/@name` for attributes;
    /// `/` when a malformed document gives no closer location.
    pub path: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.code, self.path, self.message)
    }
}

/// The stable error codes of [`ValidationError::code`]; documented in `docs/validation-codes.md`.
pub mod error_code {
    /// Not well-formed XML (or a DTD, or content after the root); parsing stopped there.
    pub const XML_MALFORMED: &str = "CO-XML-MALFORMED";
    /// The root element is not `LPCO` in namespace `urn:coconnect:xsd:lpco:1`.
    pub const ROOT: &str = "CO-ROOT";
    /// An element the schema does not have at this place, or one in another namespace.
    pub const UNKNOWN_ELEMENT: &str = "CO-UNKNOWN-ELEMENT";
    /// An attribute the schema does not have on this element.
    pub const UNKNOWN_ATTRIBUTE: &str = "CO-UNKNOWN-ATTRIBUTE";
    /// A known element out of schema order.
    pub const ORDER: &str = "CO-ORDER";
    /// An element that may occur once occurs again.
    pub const OCCURS: &str = "CO-OCCURS";
    /// A mandatory element or attribute is absent or empty.
    pub const MISSING: &str = "CO-MISSING";
    /// A text value is longer than its an..N format allows, or empty where text is optional.
    pub const LENGTH: &str = "CO-LENGTH";
    /// A value does not have its required form (UN/LOCODE, package type, boolean, number ...).
    pub const FORMAT: &str = "CO-FORMAT";
    /// A country code is not an ISO 3166-1 alpha-2 code.
    pub const COUNTRY: &str = "CO-COUNTRY";
    /// `LPCO/TypeCode` is not the one of the expected kind: 861 (certificate of origin) or 862
    /// (declaration of origin).
    pub const DOCTYPE: &str = "CO-DOCTYPE";
    /// A commodity classification is not an HS code of 6 to 10 digits.
    pub const HS: &str = "CO-HS";
    /// Item sequence numbers are not 1, 2, 3 ... in document order.
    pub const SEQUENCE: &str = "CO-SEQUENCE";
    /// Not an ISO 8601 date-time with seconds and a UTC offset.
    pub const DATETIME: &str = "CO-DATETIME";
    /// Not an ISO 8601 calendar date YYYY-MM-DD.
    pub const DATE: &str = "CO-DATE";
    /// Not a non-negative decimal number.
    pub const DECIMAL: &str = "CO-DECIMAL";
}

use error_code as ec;

// ---------------------------------------------------------------------------------------------
// Pass 1: the document's structure
// ---------------------------------------------------------------------------------------------

/// An element of `xsd/lpco-co.xsd`: its name, whether it may repeat and what it holds.
/// Which elements are mandatory is left to [`validate`], which sees the bound model.
pub(crate) struct Node {
    pub(crate) name: &'static str,
    pub(crate) repeats: bool,
    pub(crate) content: Content,
}

pub(crate) enum Content {
    /// Text only, optionally with one (unqualified) attribute such as `currencyID`.
    Text { attribute: Option<&'static str> },
    /// Child elements only, in this order.
    Children(&'static [Node]),
}

const fn text(name: &'static str) -> Node {
    Node { name, repeats: false, content: Content::Text { attribute: None } }
}

const fn text_with(name: &'static str, attribute: &'static str) -> Node {
    Node { name, repeats: false, content: Content::Text { attribute: Some(attribute) } }
}

const fn group(name: &'static str, children: &'static [Node]) -> Node {
    Node { name, repeats: false, content: Content::Children(children) }
}

const fn many(node: Node) -> Node {
    Node { repeats: true, ..node }
}

const ADDITIONAL_INFORMATION: &[Node] = &[text("StatementTypeCode"), text("StatementDescription")];

const ADDRESS: &[Node] = &[
    text("TypeCode"),
    text("Line"),
    text("CityName"),
    text("PostcodeID"),
    text("CountrySubDivisionCode"),
    text("CountrySubDivisionName"),
    text("CountryCode"),
    text("CountryName"),
];

const LINE_ADDRESS: &[Node] = &[text("Line")];

const PARTY: &[Node] = &[text("Name"), text("ID"), text("RoleCode"), group("Address", ADDRESS)];

const LOCATION: &[Node] = &[text("Name"), text("ID")];

const CONSIGNMENT_ITEM: &[Node] = &[
    text("SequenceNumeric"),
    group(
        "Commodity",
        &[
            text("Description"),
            group("Classification", &[text("ID"), text("IdentificationTypeCode")]),
            text_with("ValueAmount", "currencyID"),
            group("Producer", &[text("Name"), group("Address", ADDRESS)]),
        ],
    ),
    group(
        "GoodsMeasure",
        &[
            text_with("GrossMassMeasure", "unitCode"),
            text_with("NetNetWeightMeasure", "unitCode"),
            text_with("TariffQuantity", "unitCode"),
        ],
    ),
    group("Origin", &[text("CountryCode"), text("CountryName"), text("RegionID"), text("TypeCode"), text("RuleCode")]),
    group("Packaging", &[text("MarksNumbersID"), text("QuantityQuantity"), text("TypeCode")]),
    group("Invoice", &[text("ID"), text("IssueDateTime")]),
    many(group("AdditionalInformation", ADDITIONAL_INFORMATION)),
];

/// The element tree of `xsd/lpco-co.xsd`, root first.
pub(crate) static LPCO_TREE: Node = group(
    "LPCO",
    &[
        text("ID"),
        text("TypeCode"),
        text("AgreementCode"),
        text("CategoryCode"),
        text("IssueDateTime"),
        text("IssueLocationID"),
        text("IssueLocationName"),
        text("StatusCode"),
        text("OperationModeCode"),
        text("IssuedRetroactivelyIndicator"),
        text("BackToBackIndicator"),
        text("ApprovedExporterAuthorisationID"),
        group(
            "Authentication",
            &[
                text("Authentication"),
                text("LocationName"),
                text("LocationID"),
                text("ActualDateTime"),
                group("Authenticator", &[text("Name")]),
            ],
        ),
        many(group("AdditionalInformation", ADDITIONAL_INFORMATION)),
        group(
            "Consignment",
            &[
                group(
                    "BorderTransportMeans",
                    &[text("Name"), text("ID"), text("TypeCode"), text("JourneyID"), text("DepartureDateTime")],
                ),
                group("Consignee", PARTY),
                group("Consignor", PARTY),
                group("LoadingLocation", LOCATION),
                group("UnloadingLocation", LOCATION),
                many(group(
                    "TransportEquipment",
                    &[text("CharacteristicCode"), many(group("Seal", &[text("SequenceNumeric"), text("ID")]))],
                )),
                group("ThirdPartyInvoice", &[text("CountryCode"), text("Name"), group("Address", LINE_ADDRESS)]),
                group("Exhibition", &[text("Name"), group("Address", LINE_ADDRESS)]),
                many(group("ConsignmentItem", CONSIGNMENT_ITEM)),
            ],
        ),
    ],
);

const XSI_NAMESPACE: &[u8] = b"http://www.w3.org/2001/XMLSchema-instance";

/// What [`scan_document`] found in a document that is well-formed and has the right root.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Structural faults (unknown elements or attributes, order, repetition, stray text).
    pub(crate) errors: Vec<ValidationError>,
    /// Byte offset just after the XML declaration (0 without one): the binding starts there, so
    /// that an `encoding` pseudo-attribute cannot make it re-decode text that is already UTF-8.
    pub(crate) body_start: usize,
}

/// Pass 1: reads `xml` once and checks it against the element tree of the schema.
///
/// # Errors
///
/// One fatal error, [`error_code::XML_MALFORMED`] or [`error_code::ROOT`], when the document
/// cannot be read as a CO at all; structural faults of a readable CO come back in [`Scan`].
pub(crate) fn scan_document(xml: &str) -> Result<Scan, ValidationError> {
    let mut scanner = Scanner {
        reader: NsReader::from_str(xml),
        errors: Vec::new(),
        stack: Vec::new(),
        skipping: 0,
        root_seen: false,
    };
    let mut body_start = 0;
    let mut first_event = true;
    // The element's namespace, owned (`resolved` borrows the reader) in one buffer reused for
    // every event rather than a String each.
    let mut namespace_buf = String::new();
    loop {
        let at = scanner.reader.buffer_position();
        let (resolved, event) = match scanner.reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(e) => {
                let at = scanner.reader.error_position();
                return Err(scanner.malformed(format!("{e} (byte {at})")));
            }
        };
        let namespace = match resolved {
            ResolveResult::Bound(Namespace(ns)) => {
                namespace_buf.clear();
                namespace_buf.push_str(&String::from_utf8_lossy(ns));
                Some(namespace_buf.as_str())
            }
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(prefix) => {
                let prefix = String::from_utf8_lossy(&prefix).into_owned();
                return Err(scanner.malformed(format!("undeclared namespace prefix '{prefix}' (byte {at})")));
            }
        };
        let was_first = std::mem::replace(&mut first_event, false);
        match event {
            Event::Decl(_) if was_first => {
                body_start = usize::try_from(scanner.reader.buffer_position()).unwrap_or(0);
            }
            Event::Decl(_) => {
                return Err(scanner.malformed(format!("XML declaration not at the start (byte {at})")));
            }
            Event::DocType(_) => {
                return Err(scanner.malformed(format!("a document type declaration is not allowed (byte {at})")));
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| scanner.malformed(format!("{e} (byte {at})")))?;
                scanner.text(&text, at)?;
            }
            Event::CData(t) => scanner.text(&String::from_utf8_lossy(&t), at)?,
            Event::Start(e) => scanner.open(&e, namespace, false, at)?,
            Event::Empty(e) => scanner.open(&e, namespace, true, at)?,
            Event::End(_) => scanner.close(),
            Event::Eof => {
                if let Some(open) = scanner.stack.last() {
                    let name = open.node.name;
                    return Err(scanner.malformed(format!("document ends before </{name}> (byte {at})")));
                }
                if !scanner.root_seen {
                    return Err(scanner.malformed("no root element".to_owned()));
                }
                return Ok(Scan { errors: scanner.errors, body_start });
            }
        }
    }
}

/// The state of [`scan_document`].
struct Scanner<'x> {
    reader: NsReader<&'x [u8]>,
    errors: Vec<ValidationError>,
    /// The open elements of the CO tree, root first.
    stack: Vec<Frame>,
    /// Depth inside an element already reported as unknown, whose content is not looked at.
    skipping: usize,
    root_seen: bool,
}

/// An open element of the CO tree.
struct Frame {
    node: &'static Node,
    path: String,
    /// Index in the node's children of the furthest child seen so far (schema order).
    furthest: Option<usize>,
    /// Occurrences so far of each child, by index.
    seen: Vec<u32>,
    /// Stray text in an element with children is reported once per element.
    text_reported: bool,
}

impl Scanner<'_> {
    fn malformed(&self, message: String) -> ValidationError {
        let path = self.stack.last().map_or_else(|| "/".to_owned(), |f| f.path.clone());
        ValidationError { code: ec::XML_MALFORMED, message, path }
    }

    fn fault(&mut self, code: &'static str, path: String, message: String) {
        self.errors.push(ValidationError { code, message, path });
    }

    /// Character data: fatal outside the root, a fault in an element that holds elements only.
    fn text(&mut self, text: &str, at: u64) -> Result<(), ValidationError> {
        if is_blank(text) || self.skipping > 0 {
            return Ok(());
        }
        let Some(frame) = self.stack.last_mut() else {
            let place = if self.root_seen { "after" } else { "before" };
            return Err(self.malformed(format!("text {place} the root element (byte {at})")));
        };
        if matches!(frame.node.content, Content::Children(_)) && !frame.text_reported {
            frame.text_reported = true;
            let message =
                format!("<{}> holds child elements only; text {} is not allowed", frame.node.name, shown(text));
            let path = frame.path.clone();
            self.fault(ec::FORMAT, path, message);
        }
        Ok(())
    }

    fn close(&mut self) {
        if self.skipping > 0 {
            self.skipping -= 1;
        } else {
            self.stack.pop();
        }
    }

    /// A start (or empty, `empty`) element tag in namespace `namespace`.
    fn open(
        &mut self,
        element: &BytesStart<'_>,
        namespace: Option<&str>,
        empty: bool,
        at: u64,
    ) -> Result<(), ValidationError> {
        // Borrowed, not copied: names are read for every element, and copied only into a fault.
        let qname = String::from_utf8_lossy(element.name().into_inner());
        let local = String::from_utf8_lossy(element.local_name().into_inner());
        let in_co_namespace = namespace == Some(LPCO_NAMESPACE);

        if self.skipping > 0 {
            self.skipping += usize::from(!empty);
            return self.attributes(element, None, at);
        }
        if self.root_seen && self.stack.is_empty() {
            return Err(self.malformed(format!("element <{qname}> after the root element (byte {at})")));
        }
        self.root_seen = true;

        let Some(parent) = self.stack.last_mut() else {
            if !in_co_namespace || local != LPCO_TREE.name {
                let ns = namespace.unwrap_or("no namespace");
                let message = format!("root element is <{local}> in {ns}; expected <LPCO> in {LPCO_NAMESPACE}");
                return Err(ValidationError { code: ec::ROOT, message, path: format!("/{qname}") });
            }
            let root = Frame::new(&LPCO_TREE, format!("/{}", LPCO_TREE.name));
            self.attributes(element, Some((&LPCO_TREE, &root.path)), at)?;
            if !empty {
                self.stack.push(root);
            }
            return Ok(());
        };

        let known = match parent.node.content {
            Content::Children(children) => {
                children.iter().position(|c| c.name == local).filter(|_| in_co_namespace).map(|index| (children, index))
            }
            Content::Text { .. } => None,
        };
        let Some((children, index)) = known else {
            let message = match (&parent.node.content, in_co_namespace) {
                (Content::Text { .. }, _) => {
                    format!("<{}> holds text only; element <{qname}> is not allowed in it", parent.node.name)
                }
                (_, true) => format!("<{local}> is not an element of <{}>", parent.node.name),
                (_, false) => {
                    let ns = namespace.unwrap_or("no namespace");
                    format!("<{qname}> is in {ns}; the elements of a CO are in {LPCO_NAMESPACE}")
                }
            };
            let path = format!("{}/{qname}", parent.path);
            self.fault(ec::UNKNOWN_ELEMENT, path, message);
            self.skipping = usize::from(!empty);
            return self.attributes(element, None, at);
        };

        let node = &children[index];
        parent.seen[index] += 1;
        let count = parent.seen[index];
        let path = if node.repeats {
            format!("{}/{}[{count}]", parent.path, node.name)
        } else {
            format!("{}/{}", parent.path, node.name)
        };
        let fault = if !node.repeats && count > 1 {
            Some((ec::OCCURS, format!("<{}> may occur only once in <{}>", node.name, parent.node.name)))
        } else {
            let later = parent.furthest.filter(|&f| f > index);
            later.map(|f| (ec::ORDER, format!("<{}> must come before <{}>", node.name, children[f].name)))
        };
        parent.furthest = parent.furthest.max(Some(index));
        if let Some((code, message)) = fault {
            self.fault(code, path.clone(), message);
        }
        self.attributes(element, Some((node, &path)), at)?;
        if !empty {
            self.stack.push(Frame::new(node, path));
        }
        Ok(())
    }

    /// Checks that the attributes are well-formed and, for a known element (`node` at `path`),
    /// allowed: namespace declarations, `xsi:schemaLocation` / `xsi:noNamespaceSchemaLocation`,
    /// and the one unqualified attribute of an amount or measure.
    fn attributes(
        &mut self,
        element: &BytesStart<'_>,
        known: Option<(&Node, &str)>,
        at: u64,
    ) -> Result<(), ValidationError> {
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|e| self.malformed(format!("{e} (byte {at})")))?;
            attribute.unescape_value().map_err(|e| self.malformed(format!("{e} (byte {at})")))?;
            let Some((node, path)) = known else { continue };
            if attribute.key.as_namespace_binding().is_some() {
                continue;
            }
            let allowed = match self.reader.resolve_attribute(attribute.key) {
                (ResolveResult::Unknown(prefix), _) => {
                    let prefix = String::from_utf8_lossy(&prefix).into_owned();
                    return Err(self.malformed(format!("undeclared namespace prefix '{prefix}' (byte {at})")));
                }
                (ResolveResult::Bound(Namespace(ns)), local) => {
                    ns == XSI_NAMESPACE && matches!(local.as_ref(), b"schemaLocation" | b"noNamespaceSchemaLocation")
                }
                (ResolveResult::Unbound, local) => {
                    matches!(node.content, Content::Text { attribute: Some(a) } if a.as_bytes() == local.as_ref())
                }
            };
            if !allowed {
                let name = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
                let message = format!("attribute '{name}' is not allowed on <{}>", node.name);
                self.fault(ec::UNKNOWN_ATTRIBUTE, format!("{path}/@{name}"), message);
            }
        }
        Ok(())
    }
}

impl Frame {
    fn new(node: &'static Node, path: String) -> Self {
        let children = match node.content {
            Content::Children(children) => children.len(),
            Content::Text { .. } => 0,
        };
        Frame { node, path, furthest: None, seen: vec![0; children], text_reported: false }
    }
}

// ---------------------------------------------------------------------------------------------
// Pass 2: the content
// ---------------------------------------------------------------------------------------------

/// Checks a certificate of origin against the rules of `xsd/lpco-co.xsd` and the business rules
/// the schema cannot express. Returns every fault found (empty when the CO is valid); at most one
/// per element. Same as [`validate_document`] with [`DocumentKind::Co`].
pub fn validate(co: &Lpco) -> Vec<ValidationError> {
    validate_document(co, DocumentKind::Co)
}

/// Checks a document that must be of kind `kind`: the rules of [`validate`], with TypeCode 862
/// instead of 861 for a declaration of origin, which also needs what an approved exporter's
/// declaration on an invoice cannot do without (Annex IV): `ApprovedExporterAuthorisationID`,
/// the origin statement `Authentication/Authentication` and an `Invoice/ID` on every item.
pub fn validate_document(co: &Lpco, kind: DocumentKind) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    lpco(&mut Scope { errors: &mut errors, path: "/LPCO".to_owned() }, co, kind);
    errors
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Occurs {
    Required,
    Optional,
}

/// The form a text value must have.
#[derive(Clone, Copy)]
enum Format {
    /// an..N: 1 to N characters, not only whitespace.
    An(usize),
    /// ISO 3166-1 alpha-2.
    Country,
    /// UN/LOCODE.
    Locode,
    /// 6 to 10 digits.
    Hs,
    /// UN/ECE Rec 21, form only.
    PackageType,
    /// ISO 8601 date-time with offset.
    DateTime,
    /// ISO 8601 date.
    Date,
    /// xs:boolean.
    Boolean,
    /// n..5, at least 1.
    SequenceNumber,
    /// n..8.
    PackageCount,
}

use Format::*;
use Occurs::{Optional, Required};

/// One element being checked: its path, and where faults go.
struct Scope<'e> {
    errors: &'e mut Vec<ValidationError>,
    path: String,
}

impl Scope<'_> {
    /// Records a fault of this element.
    fn fault(&mut self, code: &'static str, message: String) {
        let path = self.path.clone();
        self.errors.push(ValidationError { code, message, path });
    }

    /// Records a fault of the child (element or `@attribute`) `name`.
    fn fault_at(&mut self, name: &str, code: &'static str, message: String) {
        let path = format!("{}/{name}", self.path);
        self.errors.push(ValidationError { code, message, path });
    }

    /// The child group `name`, reported missing when mandatory; its scope to check it with.
    fn group<'v, T>(&mut self, name: &str, value: &'v Option<T>, occurs: Occurs) -> Option<(&'v T, Scope<'_>)> {
        match value {
            Some(value) => Some((value, self.child(name.to_owned()))),
            None => {
                if occurs == Required {
                    self.fault_at(name, ec::MISSING, format!("mandatory element <{name}> is missing"));
                }
                None
            }
        }
    }

    /// The scope of the `index`-th (1-based) occurrence of the repeated child `name`.
    fn nth(&mut self, name: &str, index: usize) -> Scope<'_> {
        self.child(format!("{name}[{index}]"))
    }

    fn child(&mut self, step: String) -> Scope<'_> {
        let path = format!("{}/{step}", self.path);
        Scope { errors: self.errors, path }
    }

    /// Checks a mandatory text element; returns its value when present and well-formed.
    fn required<'v>(&mut self, name: &str, value: &'v Option<String>, format: Format) -> Option<&'v str> {
        match value.as_deref() {
            None => self.fault_at(name, ec::MISSING, format!("mandatory element <{name}> is missing")),
            Some(v) if is_blank(v) => self.fault_at(name, ec::MISSING, format!("mandatory element <{name}> is empty")),
            Some(v) => return self.text(name, v, format),
        }
        None
    }

    /// Checks an optional text element; returns its value when present and well-formed.
    fn optional<'v>(&mut self, name: &str, value: &'v Option<String>, format: Format) -> Option<&'v str> {
        self.text(name, value.as_deref()?, format)
    }

    /// [`Self::required`] or [`Self::optional`], for an element whose occurrence depends on the
    /// kind of document.
    fn text_occurs<'v>(
        &mut self,
        (name, value): (&str, &'v Option<String>),
        format: Format,
        occurs: Occurs,
    ) -> Option<&'v str> {
        match occurs {
            Required => self.required(name, value, format),
            Optional => self.optional(name, value, format),
        }
    }

    fn text<'v>(&mut self, name: &str, value: &'v str, format: Format) -> Option<&'v str> {
        let v = shown(value);
        let fault = match format {
            An(max) => {
                let length = value.chars().count();
                if is_blank(value) {
                    Some((ec::LENGTH, format!("<{name}> is empty; omit it or give a value (an..{max})")))
                } else if length > max {
                    Some((ec::LENGTH, format!("<{name}> has {length} characters; at most {max} are allowed")))
                } else {
                    None
                }
            }
            Country => (!codes::is_country_code(value))
                .then(|| (ec::COUNTRY, format!("{v} is not an ISO 3166-1 alpha-2 country code"))),
            Locode => (!codes::is_locode(value))
                .then(|| (ec::FORMAT, format!("{v} is not a UN/LOCODE (country and 3 letters or digits 2-9)"))),
            Hs => (!codes::is_hs_code(value)).then(|| (ec::HS, format!("{v} is not an HS code of 6 to 10 digits"))),
            PackageType => (!codes::is_package_type_code(value))
                .then(|| (ec::FORMAT, format!("{v} is not a UN/ECE Rec 21 code (2 upper-case letters or digits)"))),
            DateTime => (!is_date_time_with_offset(value))
                .then(|| (ec::DATETIME, format!("{v} is not a date-time with offset like 2025-03-14T10:30:00+09:00"))),
            Date => (!is_date(value)).then(|| (ec::DATE, format!("{v} is not a date YYYY-MM-DD"))),
            Boolean => super::model::parse_xs_boolean(value)
                .is_none()
                .then(|| (ec::FORMAT, format!("{v} is not a boolean (true, false, 1 or 0)"))),
            SequenceNumber => (!is_digits(value, 5) || value.bytes().all(|b| b == b'0'))
                .then(|| (ec::FORMAT, format!("{v} is not a sequence number of 1 to 5 digits, from 1"))),
            PackageCount => (!is_digits(value, 8))
                .then(|| (ec::FORMAT, format!("{v} is not a number of packages of 1 to 8 digits"))),
        };
        match fault {
            Some((code, message)) => {
                self.fault_at(name, code, message);
                None
            }
            None => Some(value),
        }
    }

    /// Checks this element as an amount or measure: a decimal with its mandatory code
    /// attribute `attribute`, whose form `attribute_ok` checks.
    fn quantity(
        &mut self,
        value: Option<&str>,
        (attribute, code): (&str, Option<&str>),
        attribute_ok: fn(&str) -> bool,
        attribute_form: &str,
    ) {
        let at = format!("@{attribute}");
        match code {
            None => self.fault_at(&at, ec::MISSING, format!("mandatory attribute {attribute} is missing")),
            Some(c) if !attribute_ok(c) => {
                self.fault_at(&at, ec::FORMAT, format!("{} is not {attribute_form}", shown(c)))
            }
            Some(_) => {}
        }
        match value {
            Some(v) if is_decimal(v) => {}
            Some(v) if !is_blank(v) => {
                self.fault(ec::DECIMAL, format!("{} is not a non-negative decimal such as 1234.56", shown(v)));
            }
            _ => self.fault(ec::DECIMAL, "the element is empty; a decimal number is required".to_owned()),
        }
    }
}

/// The occurrence of an element that the schema leaves optional and a DO requires.
fn required_in_do(kind: DocumentKind) -> Occurs {
    match kind {
        DocumentKind::Co => Optional,
        DocumentKind::Do => Required,
    }
}

fn lpco(s: &mut Scope, co: &Lpco, kind: DocumentKind) {
    s.required("ID", &co.id, An(35));
    if let Some(type_code) = s.required("TypeCode", &co.type_code, An(3)) {
        if type_code != kind.type_code() {
            // Name the kind that was sent when it is one we know: "862 (declaration of origin)"
            // tells the sender it used the wrong operation, not that it typed a wrong code.
            let name = DocumentKind::from_type_code(type_code).map(|k| format!(" ({})", k.name())).unwrap_or_default();
            let message = format!(
                "document name code is {}{name}; a {} has {} (UN/EDIFACT 1001)",
                shown(type_code),
                kind.name(),
                kind.type_code()
            );
            s.fault_at("TypeCode", ec::DOCTYPE, message);
        }
    }
    s.required("AgreementCode", &co.agreement_code, An(10));
    s.optional("CategoryCode", &co.category_code, An(3));
    s.required("IssueDateTime", &co.issue_date_time, DateTime);
    s.optional("IssueLocationID", &co.issue_location_id, Locode);
    s.optional("IssueLocationName", &co.issue_location_name, An(256));
    s.optional("StatusCode", &co.status_code, An(3));
    s.optional("OperationModeCode", &co.operation_mode_code, An(3));
    s.optional("IssuedRetroactivelyIndicator", &co.issued_retroactively_indicator, Boolean);
    s.optional("BackToBackIndicator", &co.back_to_back_indicator, Boolean);
    // Only an approved exporter may make out a DO; the code is what the importing side checks
    // against the partner's list of approved exporters.
    let approved_exporter = ("ApprovedExporterAuthorisationID", &co.approved_exporter_authorisation_id);
    s.text_occurs(approved_exporter, An(35), required_in_do(kind));
    if let Some((a, mut s)) = s.group("Authentication", &co.authentication, Required) {
        authentication(&mut s, a, kind);
    }
    additional_information(s, &co.additional_information);
    if let Some((c, mut s)) = s.group("Consignment", &co.consignment, Required) {
        consignment(&mut s, c, kind);
    }
}

fn authentication(s: &mut Scope, a: &Authentication, kind: DocumentKind) {
    // A DO is the exporter's statement of origin: without its text there is no declaration.
    s.text_occurs(("Authentication", &a.statement), An(512), required_in_do(kind));
    s.optional("LocationName", &a.location_name, An(256));
    s.optional("LocationID", &a.location_id, Locode);
    s.optional("ActualDateTime", &a.actual_date_time, DateTime);
    if let Some((authenticator, mut s)) = s.group("Authenticator", &a.authenticator, Required) {
        s.required("Name", &authenticator.name, An(70));
    }
}

fn additional_information(s: &mut Scope, list: &[AdditionalInformation]) {
    for (i, info) in list.iter().enumerate() {
        let mut s = s.nth("AdditionalInformation", i + 1);
        s.optional("StatementTypeCode", &info.statement_type_code, An(3));
        s.optional("StatementDescription", &info.statement_description, An(512));
    }
}

fn consignment(s: &mut Scope, c: &Consignment, kind: DocumentKind) {
    if let Some((m, mut s)) = s.group("BorderTransportMeans", &c.border_transport_means, Optional) {
        s.optional("Name", &m.name, An(35));
        s.optional("ID", &m.id, An(35));
        s.optional("TypeCode", &m.type_code, An(4));
        s.optional("JourneyID", &m.journey_id, An(17));
        s.optional("DepartureDateTime", &m.departure_date_time, DateTime);
    }
    for (name, party) in [("Consignee", &c.consignee), ("Consignor", &c.consignor)] {
        if let Some((party, mut s)) = s.group(name, party, Required) {
            s.required("Name", &party.name, An(70));
            s.optional("ID", &party.id, An(35));
            s.optional("RoleCode", &party.role_code, An(3));
            if let Some((address, mut s)) = s.group("Address", &party.address, Required) {
                self::address(&mut s, address);
            }
        }
    }
    for (name, location) in [("LoadingLocation", &c.loading_location), ("UnloadingLocation", &c.unloading_location)] {
        if let Some((location, mut s)) = s.group(name, location, Optional) {
            s.optional("Name", &location.name, An(256));
            s.optional("ID", &location.id, Locode);
        }
    }
    for (i, equipment) in c.transport_equipment.iter().enumerate() {
        let mut s = s.nth("TransportEquipment", i + 1);
        s.optional("CharacteristicCode", &equipment.characteristic_code, An(4));
        for (j, seal) in equipment.seals.iter().enumerate() {
            let mut s = s.nth("Seal", j + 1);
            s.optional("SequenceNumeric", &seal.sequence_numeric, SequenceNumber);
            s.optional("ID", &seal.id, An(35));
        }
    }
    if let Some((invoice, mut s)) = s.group("ThirdPartyInvoice", &c.third_party_invoice, Optional) {
        s.optional("CountryCode", &invoice.country_code, Country);
        s.optional("Name", &invoice.name, An(70));
        if let Some((address, mut s)) = s.group("Address", &invoice.address, Optional) {
            s.optional("Line", &address.line, An(256));
        }
    }
    if let Some((exhibition, mut s)) = s.group("Exhibition", &c.exhibition, Optional) {
        s.optional("Name", &exhibition.name, An(256));
        if let Some((address, mut s)) = s.group("Address", &exhibition.address, Optional) {
            s.optional("Line", &address.line, An(256));
        }
    }
    if c.items.is_empty() {
        let message = format!("a {kind} needs at least one <ConsignmentItem>");
        s.fault_at("ConsignmentItem", ec::MISSING, message);
    }
    for (i, item) in c.items.iter().enumerate() {
        consignment_item(&mut s.nth("ConsignmentItem", i + 1), item, i + 1, kind);
    }
}

fn address(s: &mut Scope, a: &Address) {
    s.optional("TypeCode", &a.type_code, An(3));
    s.optional("Line", &a.line, An(256));
    s.optional("CityName", &a.city_name, An(35));
    s.optional("PostcodeID", &a.postcode_id, An(17));
    s.optional("CountrySubDivisionCode", &a.country_sub_division_code, An(9));
    s.optional("CountrySubDivisionName", &a.country_sub_division_name, An(35));
    s.required("CountryCode", &a.country_code, Country);
    s.optional("CountryName", &a.country_name, An(70));
}

/// One goods item; `position` is its 1-based place in document order, which its
/// SequenceNumeric must equal (1, 2, 3 ... without gaps or duplicates).
fn consignment_item(s: &mut Scope, item: &ConsignmentItem, position: usize, kind: DocumentKind) {
    let number = s.required("SequenceNumeric", &item.sequence_numeric, SequenceNumber);
    if let Some(number) = number.and_then(|n| n.parse::<usize>().ok()) {
        if number != position {
            let message = format!(
                "item {position} in document order is numbered {number}; \
                 items are numbered 1, 2, 3 ... without gaps or duplicates"
            );
            s.fault_at("SequenceNumeric", ec::SEQUENCE, message);
        }
    }
    if let Some((commodity, mut s)) = s.group("Commodity", &item.commodity, Required) {
        self::commodity(&mut s, commodity);
    }
    if let Some((measure, mut s)) = s.group("GoodsMeasure", &item.goods_measure, Optional) {
        goods_measure(&mut s, measure);
    }
    if let Some((o, mut s)) = s.group("Origin", &item.origin, Required) {
        s.required("CountryCode", &o.country_code, Country);
        s.optional("CountryName", &o.country_name, An(70));
        s.optional("RegionID", &o.region_id, An(9));
        s.optional("TypeCode", &o.type_code, An(3));
        s.required("RuleCode", &o.rule_code, An(10));
    }
    if let Some((packaging, mut s)) = s.group("Packaging", &item.packaging, Optional) {
        s.optional("MarksNumbersID", &packaging.marks_numbers_id, An(512));
        s.optional("QuantityQuantity", &packaging.quantity_quantity, PackageCount);
        s.optional("TypeCode", &packaging.type_code, PackageType);
    }
    // A DO is made out on the commercial invoice: each item must say which invoice it is on,
    // so that the importing customs can match the declaration with the goods declared.
    if let Some((invoice, mut s)) = s.group("Invoice", &item.invoice, required_in_do(kind)) {
        s.text_occurs(("ID", &invoice.id), An(35), required_in_do(kind));
        s.optional("IssueDateTime", &invoice.issue_date, Date);
    }
    additional_information(s, &item.additional_information);
}

fn commodity(s: &mut Scope, c: &Commodity) {
    s.required("Description", &c.description, An(512));
    if let Some((classification, mut s)) = s.group("Classification", &c.classification, Required) {
        s.required("ID", &classification.id, Hs);
        s.required("IdentificationTypeCode", &classification.identification_type_code, An(3));
    }
    if let Some((amount, mut s)) = s.group("ValueAmount", &c.value_amount, Optional) {
        let currency = ("currencyID", amount.currency_id.as_deref());
        s.quantity(amount.value.as_deref(), currency, codes::is_currency_code, "an ISO 4217 currency code");
    }
    if let Some((producer, mut s)) = s.group("Producer", &c.producer, Optional) {
        s.optional("Name", &producer.name, An(70));
        if let Some((address, mut s)) = s.group("Address", &producer.address, Optional) {
            self::address(&mut s, address);
        }
    }
}

fn goods_measure(s: &mut Scope, m: &GoodsMeasure) {
    let measures = [
        ("GrossMassMeasure", &m.gross_mass_measure),
        ("NetNetWeightMeasure", &m.net_net_weight_measure),
        ("TariffQuantity", &m.tariff_quantity),
    ];
    for (name, measure) in measures {
        if let Some((measure, mut s)) = s.group(name, measure, Optional) {
            let unit = ("unitCode", measure.unit_code.as_deref());
            s.quantity(measure.value.as_deref(), unit, codes::is_unit_code, "a UN/ECE Rec 20 unit code");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value forms (kept in line with the simple types of xsd/lpco-co.xsd)
// ---------------------------------------------------------------------------------------------

/// Empty or XML whitespace only (space, tab, CR, LF), as the schema's `\S` sees it.
fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// 1 to `max` ASCII digits.
fn is_digits(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[0-9]+(\.[0-9]+)?`: the NonNegativeDecimalType of the schema.
fn is_decimal(s: &str) -> bool {
    match s.split_once('.') {
        Some((whole, fraction)) => is_digits(whole, usize::MAX) && is_digits(fraction, usize::MAX),
        None => is_digits(s, usize::MAX),
    }
}

/// RFC 3339 date-time (an ISO 8601 profile) with an upper-case `T`, seconds and a UTC offset
/// (`Z` or `±hh:mm`, at most 14 hours), no leap second: what both chrono and `xs:dateTime` with
/// the schema's pattern accept.
fn is_date_time_with_offset(s: &str) -> bool {
    if s.as_bytes().get(10) != Some(&b'T') || s.ends_with('z') {
        return false;
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .is_ok_and(|dt| dt.nanosecond() < 1_000_000_000 && dt.offset().local_minus_utc().abs() <= 14 * 3600)
}

/// YYYY-MM-DD, a real calendar day, year 0001 or later, no time zone.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, &c)| if i == 4 || i == 7 { c == b'-' } else { c.is_ascii_digit() })
        && !s.starts_with("0000")
        && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// A value quoted for a message: Debug-escaped, cut to 40 characters.
fn shown(value: &str) -> String {
    const MAX: usize = 40;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut:?}...")
    }
}
