//! Checks on a CO, in two passes that both collect every fault instead of stopping at the first:
//!
//! 1. [`scan_document`] reads the raw XML once with quick-xml, before yaserde binds it: is it
//!    well-formed, is the root `{urn:coconnect:xsd:lpco:1}LPCO`, and does every element and
//!    attribute belong where `xsd/lpco-co.xsd` puts it (known name, right namespace, schema order,
//!    no repetition of a single element). yaserde would skip or overwrite all of these silently.
//! 2. [`validate`] checks the bound [`Lpco`]: mandatory elements, lengths, formats, code lists and
//!    the rules XSD cannot express (TypeCode 861, item numbering, ISO 3166-1 membership).
//!
//! Pass 2 also serves a CO built in code, so everything about the *content* of the document is
//! there; pass 1 only knows the element tree ([`LPCO_TREE`]), which the unit tests compare with
//! the XSD.

use std::fmt;

use chrono::{DateTime, NaiveDate, Timelike};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

use super::codes;
use super::model::{
    AdditionalInformation, Address, Authentication, Commodity, Consignment, ConsignmentItem,
    GoodsMeasure, Lpco, Origin, Party,
};
use super::LPCO_NAMESPACE;

/// One fault of a CO document: a stable code (see [`error_code`]), a readable message and the
/// XPath-like location, e.g. `/LPCO/Consignment/ConsignmentItem[2]/Commodity/Classification/ID`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ValidationError {
    /// Stable machine-readable code, one of [`error_code`].
    pub code: &'static str,
    /// What is wrong, for a human reader.
    pub message: String,
    /// Where: `/LPCO/...` with 1-based indices on repeated elements, `/@name` for attributes;
    /// empty when the document is malformed before any element is known.
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
    /// `LPCO/TypeCode` is not 861 (certificate of origin).
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
    group(
        "Origin",
        &[text("CountryCode"), text("CountryName"), text("RegionID"), text("TypeCode"), text("RuleCode")],
    ),
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

/// An open element of the CO tree during the scan.
struct Frame {
    node: &'static Node,
    path: String,
    /// Index in the parent's children of the furthest child seen so far (schema order).
    furthest: Option<usize>,
    /// Occurrences so far of each child, by index.
    seen: Vec<u32>,
    /// Stray text in an element with children is reported once per element.
    text_reported: bool,
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

/// Pass 1: reads `xml` once and checks it against the element tree of the schema.
///
/// # Errors
///
/// One fatal error, [`error_code::XML_MALFORMED`] or [`error_code::ROOT`], when the document
/// cannot be read as a CO at all; structural faults of a readable CO come back in [`Scan`].
pub(crate) fn scan_document(xml: &str) -> Result<Scan, ValidationError> {
    let mut reader = NsReader::from_str(xml);
    let mut scan = Scan { errors: Vec::new(), body_start: 0 };
    let mut stack: Vec<Frame> = Vec::new();
    // Depth inside an element already reported as unknown: its content is not looked at.
    let mut skipping = 0usize;
    let mut root_seen = false;
    let mut first_event = true;

    loop {
        let at = reader.buffer_position();
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(e) => {
                let at = reader.error_position();
                return Err(malformed(&stack, format!("{e} (byte {at})")));
            }
        };
        // Resolve the element's namespace now: `resolved` borrows the reader.
        let namespace = match resolved {
            ResolveResult::Bound(Namespace(ns)) => Some(String::from_utf8_lossy(ns).into_owned()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(prefix) => {
                let prefix = String::from_utf8_lossy(&prefix).into_owned();
                return Err(malformed(&stack, format!("undeclared namespace prefix '{prefix}' (byte {at})")));
            }
        };
        let was_first = std::mem::replace(&mut first_event, false);
        match event {
            Event::Decl(_) => {
                if !was_first {
                    return Err(malformed(&stack, format!("XML declaration not at the start (byte {at})")));
                }
                scan.body_start = usize::try_from(reader.buffer_position()).unwrap_or(0);
            }
            Event::DocType(_) => {
                return Err(malformed(&stack, format!("a document type declaration is not allowed (byte {at})")));
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Text(t) => {
                let text = t
                    .unescape()
                    .map_err(|e| malformed(&stack, format!("{e} (byte {at})")))?;
                stray_text(&mut scan, &mut stack, skipping, root_seen, &text, at)?;
            }
            Event::CData(t) => {
                let text = String::from_utf8_lossy(&t).into_owned();
                stray_text(&mut scan, &mut stack, skipping, root_seen, &text, at)?;
            }
            Event::Start(e) | Event::Empty(e) if root_seen && stack.is_empty() => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                return Err(malformed(&stack, format!("element <{name}> after the root element (byte {at})")));
            }
            Event::Start(e) => {
                open(&reader, &mut scan, &mut stack, &mut skipping, &e, namespace, false, at)?;
                root_seen = true;
            }
            Event::Empty(e) => {
                open(&reader, &mut scan, &mut stack, &mut skipping, &e, namespace, true, at)?;
                root_seen = true;
            }
            Event::End(_) => {
                if skipping > 0 {
                    skipping -= 1;
                } else {
                    stack.pop();
                }
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    let name = open.node.name;
                    return Err(malformed(&stack, format!("document ends before </{name}> (byte {at})")));
                }
                if !root_seen {
                    return Err(malformed(&stack, "no root element".to_owned()));
                }
                return Ok(scan);
            }
        }
    }
}

fn malformed(stack: &[Frame], message: String) -> ValidationError {
    let path = stack.last().map(|f| f.path.clone()).unwrap_or_default();
    ValidationError { code: ec::XML_MALFORMED, message, path }
}

fn stray_text(
    scan: &mut Scan,
    stack: &mut [Frame],
    skipping: usize,
    root_seen: bool,
    text: &str,
    at: u64,
) -> Result<(), ValidationError> {
    if is_blank(text) || skipping > 0 {
        return Ok(());
    }
    let Some(frame) = stack.last_mut() else {
        let place = if root_seen { "after" } else { "before" };
        return Err(malformed(stack, format!("text {place} the root element (byte {at})")));
    };
    if matches!(frame.node.content, Content::Children(_)) && !frame.text_reported {
        frame.text_reported = true;
        scan.errors.push(ValidationError {
            code: ec::FORMAT,
            message: format!("<{}> holds child elements only; text {} is not allowed", frame.node.name, shown(text)),
            path: frame.path.clone(),
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn open(
    reader: &NsReader<&[u8]>,
    scan: &mut Scan,
    stack: &mut Vec<Frame>,
    skipping: &mut usize,
    element: &BytesStart<'_>,
    namespace: Option<String>,
    empty: bool,
    at: u64,
) -> Result<(), ValidationError> {
    let qname = String::from_utf8_lossy(element.name().as_ref()).into_owned();
    let local = String::from_utf8_lossy(element.local_name().as_ref()).into_owned();
    let in_co_namespace = namespace.as_deref() == Some(LPCO_NAMESPACE);

    if *skipping > 0 {
        check_attributes(reader, scan, stack, element, None, "", at)?;
        *skipping += usize::from(!empty);
        return Ok(());
    }

    let Some(parent) = stack.last_mut() else {
        if !in_co_namespace || local != LPCO_TREE.name {
            let ns = namespace.as_deref().unwrap_or("no namespace");
            return Err(ValidationError {
                code: ec::ROOT,
                message: format!("root element is <{local}> in {ns}; expected <LPCO> in {LPCO_NAMESPACE}"),
                path: format!("/{qname}"),
            });
        }
        let frame = Frame::new(&LPCO_TREE, format!("/{}", LPCO_TREE.name));
        check_attributes(reader, scan, stack, element, Some(&LPCO_TREE), &frame.path, at)?;
        if !empty {
            stack.push(frame);
        }
        return Ok(());
    };

    let unknown = |message: String, path: String| ValidationError { code: ec::UNKNOWN_ELEMENT, message, path };
    let children = match parent.node.content {
        Content::Children(children) => children,
        Content::Text { .. } => {
            let error = unknown(
                format!("<{}> holds text only; element <{qname}> is not allowed in it", parent.node.name),
                format!("{}/{qname}", parent.path),
            );
            scan.errors.push(error);
            *skipping = usize::from(!empty);
            return check_attributes(reader, scan, stack, element, None, "", at);
        }
    };
    let index = children.iter().position(|c| c.name == local).filter(|_| in_co_namespace);
    let Some(index) = index else {
        let message = if in_co_namespace {
            format!("<{local}> is not an element of <{}>", parent.node.name)
        } else {
            let ns = namespace.as_deref().unwrap_or("no namespace");
            format!("<{qname}> is in {ns}; the elements of a CO are in {LPCO_NAMESPACE}")
        };
        let error = unknown(message, format!("{}/{qname}", parent.path));
        scan.errors.push(error);
        *skipping = usize::from(!empty);
        return check_attributes(reader, scan, stack, element, None, "", at);
    };

    let node = &children[index];
    parent.seen[index] += 1;
    let count = parent.seen[index];
    let path = if node.repeats {
        format!("{}/{}[{count}]", parent.path, node.name)
    } else {
        format!("{}/{}", parent.path, node.name)
    };
    if !node.repeats && count > 1 {
        scan.errors.push(ValidationError {
            code: ec::OCCURS,
            message: format!("<{}> may occur only once in <{}>", node.name, parent.node.name),
            path: path.clone(),
        });
    } else if let Some(furthest) = parent.furthest.filter(|&f| f > index) {
        scan.errors.push(ValidationError {
            code: ec::ORDER,
            message: format!("<{}> must come before <{}>", node.name, children[furthest].name),
            path: path.clone(),
        });
    }
    parent.furthest = parent.furthest.max(Some(index));
    check_attributes(reader, scan, stack, element, Some(node), &path, at)?;
    if !empty {
        stack.push(Frame::new(node, path));
    }
    Ok(())
}

/// Checks that the attributes are well-formed and, for a known element (`node`), allowed:
/// namespace declarations, `xsi:schemaLocation` / `xsi:noNamespaceSchemaLocation`, and the one
/// unqualified attribute of an amount or measure.
fn check_attributes(
    reader: &NsReader<&[u8]>,
    scan: &mut Scan,
    stack: &[Frame],
    element: &BytesStart<'_>,
    node: Option<&Node>,
    path: &str,
    at: u64,
) -> Result<(), ValidationError> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| malformed(stack, format!("{e} (byte {at})")))?;
        attribute
            .unescape_value()
            .map_err(|e| malformed(stack, format!("{e} (byte {at})")))?;
        let Some(node) = node else { continue };
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let allowed = match reader.resolve_attribute(attribute.key) {
            (ResolveResult::Unknown(prefix), _) => {
                let prefix = String::from_utf8_lossy(&prefix).into_owned();
                return Err(malformed(stack, format!("undeclared namespace prefix '{prefix}' (byte {at})")));
            }
            (ResolveResult::Bound(Namespace(ns)), local) => {
                ns == XSI_NAMESPACE
                    && matches!(local.as_ref(), b"schemaLocation" | b"noNamespaceSchemaLocation")
            }
            (ResolveResult::Unbound, local) => {
                matches!(node.content, Content::Text { attribute: Some(a) } if a.as_bytes() == local.as_ref())
            }
        };
        if !allowed {
            let name = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
            scan.errors.push(ValidationError {
                code: ec::UNKNOWN_ATTRIBUTE,
                message: format!("attribute '{name}' is not allowed on <{}>", node.name),
                path: format!("{path}/@{name}"),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Pass 2: the content
// ---------------------------------------------------------------------------------------------

/// Checks a CO against the rules of `xsd/lpco-co.xsd` and the business rules the schema cannot
/// express. Returns every fault found (empty when the CO is valid); at most one per element.
pub fn validate(co: &Lpco) -> Vec<ValidationError> {
    let mut checker = Checker::default();
    checker.lpco(co);
    checker.errors
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Occurs {
    Required,
    Optional,
}

use Occurs::{Optional, Required};

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

#[derive(Default)]
struct Checker {
    errors: Vec<ValidationError>,
}

impl Checker {
    fn push(&mut self, code: &'static str, path: String, message: String) {
        self.errors.push(ValidationError { code, message, path });
    }

    /// Checks one text element; returns its value when it is present and well-formed.
    fn leaf<'v>(
        &mut self,
        value: &'v Option<String>,
        parent: &str,
        name: &str,
        occurs: Occurs,
        format: Format,
    ) -> Option<&'v str> {
        let path = format!("{parent}/{name}");
        let Some(value) = value.as_deref() else {
            if occurs == Required {
                self.push(ec::MISSING, path, format!("mandatory element <{name}> is missing"));
            }
            return None;
        };
        if occurs == Required && is_blank(value) {
            self.push(ec::MISSING, path, format!("mandatory element <{name}> is empty"));
            return None;
        }
        let fault = match format {
            Format::An(max) => {
                let length = value.chars().count();
                if is_blank(value) {
                    Some((ec::LENGTH, format!("<{name}> is empty; omit it or give a value (an..{max})")))
                } else if length > max {
                    Some((ec::LENGTH, format!("<{name}> has {length} characters; at most {max} are allowed (an..{max})")))
                } else {
                    None
                }
            }
            Format::Country => (!codes::is_country_code(value))
                .then(|| (ec::COUNTRY, format!("{} is not an ISO 3166-1 alpha-2 country code", shown(value)))),
            Format::Locode => (!codes::is_locode(value)).then(|| {
                let m = format!("{} is not a UN/LOCODE (country code and 3 letters or digits 2-9)", shown(value));
                (ec::FORMAT, m)
            }),
            Format::Hs => (!codes::is_hs_code(value))
                .then(|| (ec::HS, format!("{} is not an HS code of 6 to 10 digits", shown(value)))),
            Format::PackageType => (!codes::is_package_type_code(value)).then(|| {
                let m = format!("{} is not a UN/ECE Rec 21 package type code (2 upper-case letters or digits)", shown(value));
                (ec::FORMAT, m)
            }),
            Format::DateTime => (!is_date_time_with_offset(value)).then(|| {
                let m = format!("{} is not an ISO 8601 date-time with offset, e.g. 2025-03-14T10:30:00+09:00", shown(value));
                (ec::DATETIME, m)
            }),
            Format::Date => (!is_date(value))
                .then(|| (ec::DATE, format!("{} is not an ISO 8601 date YYYY-MM-DD", shown(value)))),
            Format::Boolean => (super::model::parse_xs_boolean(value).is_none())
                .then(|| (ec::FORMAT, format!("{} is not a boolean (true, false, 1 or 0)", shown(value)))),
            Format::SequenceNumber => (!is_digits(value, 5) || value.bytes().all(|b| b == b'0'))
                .then(|| (ec::FORMAT, format!("{} is not a sequence number of 1 to 5 digits, from 1", shown(value)))),
            Format::PackageCount => (!is_digits(value, 8))
                .then(|| (ec::FORMAT, format!("{} is not a number of packages of 1 to 8 digits", shown(value)))),
        };
        match fault {
            Some((code, message)) => {
                self.push(code, path, message);
                None
            }
            None => Some(value),
        }
    }

    /// Checks that a group is present when mandatory; returns it with its path.
    fn group<'v, T>(
        &mut self,
        value: &'v Option<T>,
        parent: &str,
        name: &str,
        occurs: Occurs,
    ) -> Option<(&'v T, String)> {
        let path = format!("{parent}/{name}");
        match value {
            Some(value) => Some((value, path)),
            None => {
                if occurs == Required {
                    self.push(ec::MISSING, path, format!("mandatory element <{name}> is missing"));
                }
                None
            }
        }
    }

    /// Checks an amount or measure: a decimal with its mandatory code attribute.
    #[allow(clippy::too_many_arguments)]
    fn quantity(
        &mut self,
        value: Option<&str>,
        attribute: Option<&str>,
        path: &str,
        attribute_name: &str,
        attribute_ok: fn(&str) -> bool,
        attribute_form: &str,
    ) {
        let attribute_path = format!("{path}/@{attribute_name}");
        match attribute {
            None => self.push(ec::MISSING, attribute_path, format!("mandatory attribute {attribute_name} is missing")),
            Some(a) if !attribute_ok(a) => {
                self.push(ec::FORMAT, attribute_path, format!("{} is not {attribute_form}", shown(a)));
            }
            Some(_) => {}
        }
        match value {
            Some(v) if is_decimal(v) => {}
            Some(v) if !is_blank(v) => self.push(
                ec::DECIMAL,
                path.to_owned(),
                format!("{} is not a non-negative decimal number such as 1234.56", shown(v)),
            ),
            _ => self.push(ec::DECIMAL, path.to_owned(), "the element is empty; a decimal number is required".to_owned()),
        }
    }

    fn lpco(&mut self, co: &Lpco) {
        let p = "/LPCO";
        self.leaf(&co.id, p, "ID", Required, Format::An(35));
        if let Some(type_code) = self.leaf(&co.type_code, p, "TypeCode", Required, Format::An(3)) {
            if type_code != codes::CERTIFICATE_OF_ORIGIN {
                let what = if type_code == codes::DECLARATION_OF_ORIGIN { " (declaration of origin)" } else { "" };
                let message = format!(
                    "document name code is {}{what}; a certificate of origin has {} (UN/EDIFACT 1001)",
                    shown(type_code),
                    codes::CERTIFICATE_OF_ORIGIN
                );
                self.push(ec::DOCTYPE, format!("{p}/TypeCode"), message);
            }
        }
        self.leaf(&co.agreement_code, p, "AgreementCode", Required, Format::An(10));
        self.leaf(&co.category_code, p, "CategoryCode", Optional, Format::An(3));
        self.leaf(&co.issue_date_time, p, "IssueDateTime", Required, Format::DateTime);
        self.leaf(&co.issue_location_id, p, "IssueLocationID", Optional, Format::Locode);
        self.leaf(&co.issue_location_name, p, "IssueLocationName", Optional, Format::An(256));
        self.leaf(&co.status_code, p, "StatusCode", Optional, Format::An(3));
        self.leaf(&co.operation_mode_code, p, "OperationModeCode", Optional, Format::An(3));
        self.leaf(&co.issued_retroactively_indicator, p, "IssuedRetroactivelyIndicator", Optional, Format::Boolean);
        self.leaf(&co.back_to_back_indicator, p, "BackToBackIndicator", Optional, Format::Boolean);
        if let Some((authentication, path)) = self.group(&co.authentication, p, "Authentication", Required) {
            self.authentication(authentication, &path);
        }
        self.additional_information(&co.additional_information, p);
        if let Some((consignment, path)) = self.group(&co.consignment, p, "Consignment", Required) {
            self.consignment(consignment, &path);
        }
    }

    fn authentication(&mut self, a: &Authentication, p: &str) {
        self.leaf(&a.statement, p, "Authentication", Optional, Format::An(512));
        self.leaf(&a.location_name, p, "LocationName", Optional, Format::An(256));
        self.leaf(&a.location_id, p, "LocationID", Optional, Format::Locode);
        self.leaf(&a.actual_date_time, p, "ActualDateTime", Optional, Format::DateTime);
        if let Some((authenticator, path)) = self.group(&a.authenticator, p, "Authenticator", Required) {
            self.leaf(&authenticator.name, &path, "Name", Required, Format::An(70));
        }
    }

    fn additional_information(&mut self, list: &[AdditionalInformation], parent: &str) {
        for (i, info) in list.iter().enumerate() {
            let p = format!("{parent}/AdditionalInformation[{}]", i + 1);
            self.leaf(&info.statement_type_code, &p, "StatementTypeCode", Optional, Format::An(3));
            self.leaf(&info.statement_description, &p, "StatementDescription", Optional, Format::An(512));
        }
    }

    fn consignment(&mut self, c: &Consignment, p: &str) {
        if let Some((means, q)) = self.group(&c.border_transport_means, p, "BorderTransportMeans", Optional) {
            self.leaf(&means.name, &q, "Name", Optional, Format::An(35));
            self.leaf(&means.id, &q, "ID", Optional, Format::An(35));
            self.leaf(&means.type_code, &q, "TypeCode", Optional, Format::An(4));
            self.leaf(&means.journey_id, &q, "JourneyID", Optional, Format::An(17));
            self.leaf(&means.departure_date_time, &q, "DepartureDateTime", Optional, Format::DateTime);
        }
        for name in ["Consignee", "Consignor"] {
            let party = if name == "Consignee" { &c.consignee } else { &c.consignor };
            if let Some((party, q)) = self.group(party, p, name, Required) {
                self.party(party, &q);
            }
        }
        for (name, location) in [("LoadingLocation", &c.loading_location), ("UnloadingLocation", &c.unloading_location)] {
            if let Some((location, q)) = self.group(location, p, name, Optional) {
                self.leaf(&location.name, &q, "Name", Optional, Format::An(256));
                self.leaf(&location.id, &q, "ID", Optional, Format::Locode);
            }
        }
        for (i, equipment) in c.transport_equipment.iter().enumerate() {
            let q = format!("{p}/TransportEquipment[{}]", i + 1);
            self.leaf(&equipment.characteristic_code, &q, "CharacteristicCode", Optional, Format::An(4));
            for (j, seal) in equipment.seals.iter().enumerate() {
                let r = format!("{q}/Seal[{}]", j + 1);
                self.leaf(&seal.sequence_numeric, &r, "SequenceNumeric", Optional, Format::SequenceNumber);
                self.leaf(&seal.id, &r, "ID", Optional, Format::An(35));
            }
        }
        if let Some((invoice, q)) = self.group(&c.third_party_invoice, p, "ThirdPartyInvoice", Optional) {
            self.leaf(&invoice.country_code, &q, "CountryCode", Optional, Format::Country);
            self.leaf(&invoice.name, &q, "Name", Optional, Format::An(70));
            if let Some((address, r)) = self.group(&invoice.address, &q, "Address", Optional) {
                self.leaf(&address.line, &r, "Line", Optional, Format::An(256));
            }
        }
        if let Some((exhibition, q)) = self.group(&c.exhibition, p, "Exhibition", Optional) {
            self.leaf(&exhibition.name, &q, "Name", Optional, Format::An(256));
            if let Some((address, r)) = self.group(&exhibition.address, &q, "Address", Optional) {
                self.leaf(&address.line, &r, "Line", Optional, Format::An(256));
            }
        }
        if c.items.is_empty() {
            self.push(
                ec::MISSING,
                format!("{p}/ConsignmentItem"),
                "a CO needs at least one <ConsignmentItem>".to_owned(),
            );
        }
        for (i, item) in c.items.iter().enumerate() {
            self.item(item, &format!("{p}/ConsignmentItem[{}]", i + 1), i + 1);
        }
    }

    fn party(&mut self, party: &Party, p: &str) {
        self.leaf(&party.name, p, "Name", Required, Format::An(70));
        self.leaf(&party.id, p, "ID", Optional, Format::An(35));
        self.leaf(&party.role_code, p, "RoleCode", Optional, Format::An(3));
        if let Some((address, q)) = self.group(&party.address, p, "Address", Required) {
            self.address(address, &q);
        }
    }

    fn address(&mut self, a: &Address, p: &str) {
        self.leaf(&a.type_code, p, "TypeCode", Optional, Format::An(3));
        self.leaf(&a.line, p, "Line", Optional, Format::An(256));
        self.leaf(&a.city_name, p, "CityName", Optional, Format::An(35));
        self.leaf(&a.postcode_id, p, "PostcodeID", Optional, Format::An(17));
        self.leaf(&a.country_sub_division_code, p, "CountrySubDivisionCode", Optional, Format::An(9));
        self.leaf(&a.country_sub_division_name, p, "CountrySubDivisionName", Optional, Format::An(35));
        self.leaf(&a.country_code, p, "CountryCode", Required, Format::Country);
        self.leaf(&a.country_name, p, "CountryName", Optional, Format::An(70));
    }

    /// One goods item; `position` is its 1-based place in document order, which its
    /// SequenceNumeric must equal (1, 2, 3 ... without gaps or duplicates).
    fn item(&mut self, item: &ConsignmentItem, p: &str, position: usize) {
        let sequence = self.leaf(&item.sequence_numeric, p, "SequenceNumeric", Required, Format::SequenceNumber);
        if let Some(number) = sequence.and_then(|s| s.parse::<usize>().ok()) {
            if number != position {
                let message = format!(
                    "item {position} in document order is numbered {number}; items must be numbered 1, 2, 3 ... without gaps or duplicates"
                );
                self.push(ec::SEQUENCE, format!("{p}/SequenceNumeric"), message);
            }
        }
        if let Some((commodity, q)) = self.group(&item.commodity, p, "Commodity", Required) {
            self.commodity(commodity, &q);
        }
        if let Some((measure, q)) = self.group(&item.goods_measure, p, "GoodsMeasure", Optional) {
            self.goods_measure(measure, &q);
        }
        if let Some((origin, q)) = self.group(&item.origin, p, "Origin", Required) {
            self.origin(origin, &q);
        }
        if let Some((packaging, q)) = self.group(&item.packaging, p, "Packaging", Optional) {
            self.leaf(&packaging.marks_numbers_id, &q, "MarksNumbersID", Optional, Format::An(512));
            self.leaf(&packaging.quantity_quantity, &q, "QuantityQuantity", Optional, Format::PackageCount);
            self.leaf(&packaging.type_code, &q, "TypeCode", Optional, Format::PackageType);
        }
        if let Some((invoice, q)) = self.group(&item.invoice, p, "Invoice", Optional) {
            self.leaf(&invoice.id, &q, "ID", Optional, Format::An(35));
            self.leaf(&invoice.issue_date, &q, "IssueDateTime", Optional, Format::Date);
        }
        self.additional_information(&item.additional_information, p);
    }

    fn commodity(&mut self, c: &Commodity, p: &str) {
        self.leaf(&c.description, p, "Description", Required, Format::An(512));
        if let Some((classification, q)) = self.group(&c.classification, p, "Classification", Required) {
            self.leaf(&classification.id, &q, "ID", Required, Format::Hs);
            self.leaf(&classification.identification_type_code, &q, "IdentificationTypeCode", Required, Format::An(3));
        }
        if let Some((amount, q)) = self.group(&c.value_amount, p, "ValueAmount", Optional) {
            let (value, currency) = (amount.value.as_deref(), amount.currency_id.as_deref());
            self.quantity(value, currency, &q, "currencyID", codes::is_currency_code, "an ISO 4217 currency code");
        }
        if let Some((producer, q)) = self.group(&c.producer, p, "Producer", Optional) {
            self.leaf(&producer.name, &q, "Name", Optional, Format::An(70));
            if let Some((address, r)) = self.group(&producer.address, &q, "Address", Optional) {
                self.address(address, &r);
            }
        }
    }

    fn goods_measure(&mut self, m: &GoodsMeasure, p: &str) {
        let measures = [
            ("GrossMassMeasure", &m.gross_mass_measure),
            ("NetNetWeightMeasure", &m.net_net_weight_measure),
            ("TariffQuantity", &m.tariff_quantity),
        ];
        for (name, measure) in measures {
            if let Some((measure, q)) = self.group(measure, p, name, Optional) {
                let (value, unit) = (measure.value.as_deref(), measure.unit_code.as_deref());
                self.quantity(value, unit, &q, "unitCode", codes::is_unit_code, "a UN/ECE Rec 20 unit code");
            }
        }
    }

    fn origin(&mut self, o: &Origin, p: &str) {
        self.leaf(&o.country_code, p, "CountryCode", Required, Format::Country);
        self.leaf(&o.country_name, p, "CountryName", Optional, Format::An(70));
        self.leaf(&o.region_id, p, "RegionID", Optional, Format::An(9));
        self.leaf(&o.type_code, p, "TypeCode", Optional, Format::An(3));
        self.leaf(&o.rule_code, p, "RuleCode", Required, Format::An(10));
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
    DateTime::parse_from_rfc3339(s).is_ok_and(|dt| {
        dt.nanosecond() < 1_000_000_000 && dt.offset().local_minus_utc().abs() <= 14 * 3600
    })
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
