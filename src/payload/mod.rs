//! The Certificate of Origin (CO) and Declaration of Origin (DO) payload: its data model, its XML
//! binding and its business validation.
//!
//! The payload is the CO of Annex II of the WCO Interconnectivity Framework as WCO Data Model
//! LPCO XML: root element `LPCO` in namespace [`LPCO_NAMESPACE`], defined by `xsd/lpco-co.xsd`
//! (the authority; `examples/co.xml` is a valid instance). A DO (Annex IV) is the same document
//! with `TypeCode` 862 instead of 861, made out by an approved exporter on its invoice
//! (`examples/do.xml`); [`DocumentKind`] says which of the two a caller expects.
//!
//! What this module owns:
//! - [`model`]: the Rust types of the document ([`Lpco`] and its groups), bound with yaserde;
//! - [`parse_co`], [`parse_do`], [`parse_document`] / [`to_xml`]: XML text to model and back;
//! - [`validate`] / [`validate_document`]: every rule of the schema plus those it cannot
//!   express, reported all at once as [`ValidationError`]s with stable codes;
//! - [`codes`]: the code lists the checks use (ISO 3166-1, UN/EDIFACT 1001);
//! - [`json`]: the document as JSON under the WCO data-element names, for back-end systems.
//!
//! What it must never do: no SOAP envelope or WS-Security (the caller hands in the `LPCO`
//! element, already taken out of a message that was parsed safely, without DTDs), no
//! cryptography, no database or other I/O. It is pure functions over strings and values. In
//! particular it does not look the approved exporter up in the partner's list: a DO from an
//! unlisted exporter is still a valid document (`crate::store::approved_exporters` answers that).
//!
//! # Error codes
//!
//! Stable values of [`ValidationError::code`] (also in `docs/validation-codes.md`). `path` is
//! XPath-like with 1-based indices on repeated elements, e.g.
//! `/LPCO/Consignment/ConsignmentItem[2]/Commodity/Classification/ID`; attributes end in `/@name`.
//!
//! | Code                   | Meaning |
//! |------------------------|---------|
//! | `CO-XML-MALFORMED`     | Not well-formed XML, a DTD, or content after the root. Reported alone; `path` is the innermost open element, or `/`. |
//! | `CO-ROOT`              | Root element is not `LPCO` in `urn:coconnect:xsd:lpco:1` (wrong name or namespace). Reported alone. |
//! | `CO-UNKNOWN-ELEMENT`   | Element not in the schema at this place, or in another namespace. Its content is not checked. |
//! | `CO-UNKNOWN-ATTRIBUTE` | Attribute not in the schema on this element. |
//! | `CO-ORDER`             | Element out of schema order. |
//! | `CO-OCCURS`            | Element that may occur once occurs again. |
//! | `CO-MISSING`           | Mandatory element or attribute absent or empty. A DO also requires `ApprovedExporterAuthorisationID`, `Authentication/Authentication` (the origin statement) and `Invoice/ID` on every item. |
//! | `CO-LENGTH`            | Text longer than its an..N format (or empty where optional). |
//! | `CO-FORMAT`            | Wrong form: UN/LOCODE, Rec 21 package type, currency, unit, boolean, n..N number, text where only elements belong. |
//! | `CO-COUNTRY`           | Not an ISO 3166-1 alpha-2 country code. |
//! | `CO-DOCTYPE`           | `LPCO/TypeCode` is not the expected kind's: 861 (certificate of origin) for [`parse_co`], 862 (declaration of origin) for [`parse_do`]. |
//! | `CO-HS`                | HS code not 6 to 10 digits. |
//! | `CO-SEQUENCE`          | Item `SequenceNumeric` not 1, 2, 3 ... in document order (gap, duplicate, wrong order). |
//! | `CO-DATETIME`          | Not an ISO 8601 date-time with seconds and UTC offset. |
//! | `CO-DATE`              | Not an ISO 8601 date `YYYY-MM-DD`. |
//! | `CO-DECIMAL`           | Amount or measure not a non-negative decimal. |

pub mod codes;
pub mod json;
pub mod model;
mod validate;

#[cfg(test)]
mod tests;

pub use model::Lpco;
pub use validate::{error_code, validate, validate_document, ValidationError};

/// XML namespace of the CO payload (`targetNamespace` of `xsd/lpco-co.xsd`).
pub const LPCO_NAMESPACE: &str = "urn:coconnect:xsd:lpco:1";

/// Which proof of origin an `LPCO` document is: its UN/EDIFACT 1001 `TypeCode`. Stored as
/// [`DocumentKind::as_str`] (the `kind` column of `certificates`) and serialised the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DocumentKind {
    /// Certificate of origin, issued by the competent authority (Annex II): TypeCode 861.
    #[serde(rename = "CO")]
    Co,
    /// Declaration of origin, made out by an approved exporter (Annex IV): TypeCode 862.
    #[serde(rename = "DO")]
    Do,
}

impl DocumentKind {
    /// The UN/EDIFACT 1001 document name code a document of this kind carries in `TypeCode`.
    pub const fn type_code(self) -> &'static str {
        match self {
            DocumentKind::Co => codes::CERTIFICATE_OF_ORIGIN,
            DocumentKind::Do => codes::DECLARATION_OF_ORIGIN,
        }
    }

    /// `"CO"` or `"DO"`: the stored and serialised form.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Co => "CO",
            DocumentKind::Do => "DO",
        }
    }

    /// Reads [`Self::as_str`] back (exactly `"CO"` or `"DO"`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CO" => Some(DocumentKind::Co),
            "DO" => Some(DocumentKind::Do),
            _ => None,
        }
    }

    /// The kind whose [`Self::type_code`] is `code`; `None` for any other document name code.
    pub fn from_type_code(code: &str) -> Option<Self> {
        match code {
            codes::CERTIFICATE_OF_ORIGIN => Some(DocumentKind::Co),
            codes::DECLARATION_OF_ORIGIN => Some(DocumentKind::Do),
            _ => None,
        }
    }

    /// The English name of the kind, for messages: "certificate of origin" ...
    pub const fn name(self) -> &'static str {
        match self {
            DocumentKind::Co => "certificate of origin",
            DocumentKind::Do => "declaration of origin",
        }
    }
}

impl std::fmt::Display for DocumentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind a document says it is, by its `TypeCode`; `None` when it has none or another code.
/// This reads a claim, it checks nothing: validate with [`validate_document`] for that kind.
pub fn kind_of(co: &Lpco) -> Option<DocumentKind> {
    DocumentKind::from_type_code(co.type_code.as_deref()?.trim())
}

/// Parses CO XML (the `LPCO` element, namespace [`LPCO_NAMESPACE`]) and validates it as a
/// certificate of origin: [`parse_document`] with [`DocumentKind::Co`].
///
/// # Errors
///
/// Every fault found, as for [`parse_document`].
pub fn parse_co(xml: &str) -> Result<Lpco, Vec<ValidationError>> {
    parse_document(xml, DocumentKind::Co)
}

/// Parses DO XML (the same `LPCO` element) and validates it as a declaration of origin:
/// [`parse_document`] with [`DocumentKind::Do`].
///
/// # Errors
///
/// Every fault found, as for [`parse_document`].
pub fn parse_do(xml: &str) -> Result<Lpco, Vec<ValidationError>> {
    parse_document(xml, DocumentKind::Do)
}

/// Parses an `LPCO` document and validates it as a document of kind `kind`. The caller says
/// which kind it expects (the SOAP operation or API route it came through); the document's own
/// `TypeCode` must agree, so a DO sent as a CO, or the reverse, is refused with `CO-DOCTYPE`.
///
/// A leading byte-order mark and an XML declaration are accepted; the text is taken as UTF-8
/// whatever the declaration says, since it already is a `str`.
///
/// # Errors
///
/// Every fault found: a single `CO-XML-MALFORMED` or `CO-ROOT` when the text cannot be read as
/// an `LPCO` document, otherwise all structural faults (unknown elements, order ...) followed by
/// all content faults from [`validate_document`]. The codes are listed in the module
/// documentation.
pub fn parse_document(xml: &str, kind: DocumentKind) -> Result<Lpco, Vec<ValidationError>> {
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    let scan = validate::scan_document(xml).map_err(|fatal| vec![fatal])?;
    let mut errors = scan.errors;
    let co: Lpco = match yaserde::de::from_str(&xml[scan.body_start..]) {
        Ok(co) => co,
        Err(e) => {
            let error = ValidationError {
                code: error_code::XML_MALFORMED,
                message: format!("cannot read the {kind}: {e}"),
                path: "/".to_owned(),
            };
            // The XML reader under yaserde is stricter than the scan (character and name
            // rules): what it refuses is not well-formed, and is reported alone. Other binding
            // failures (an element inside a text element, say) the scan has already explained.
            if is_reader_error(&e) || errors.is_empty() {
                return Err(vec![error]);
            }
            return Err(errors);
        }
    };
    errors.extend(validate_document(&co, kind));
    if errors.is_empty() {
        Ok(co)
    } else {
        Err(errors)
    }
}

/// Whether a yaserde error comes from the XML reader (not well-formed input).
fn is_reader_error(error: &yaserde::Error) -> bool {
    match error {
        yaserde::Error::Reader(_) => true,
        yaserde::Error::Field { source, .. } => is_reader_error(source),
        _ => false,
    }
}

/// Serialises a CO as an `LPCO` element with the default namespace [`LPCO_NAMESPACE`], without
/// XML declaration or indentation. Does not validate: call [`validate`] first if needed.
///
/// # Errors
///
/// The XML writer's message if serialisation fails.
pub fn to_xml(co: &Lpco) -> Result<String, String> {
    let config = yaserde::ser::Config { perform_indent: false, write_document_declaration: false, indent_string: None };
    yaserde::ser::to_string_with_config(co, &config).map_err(|e| e.to_string())
}
