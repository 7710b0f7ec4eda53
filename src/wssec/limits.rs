//! First look at untrusted bytes, before libxml2 sees them: size, nesting depth, attributes per
//! element, element count, and no DOCTYPE, processing instruction or entity reference beyond the
//! five predefined ones and character references.
//!
//! Owns only this structural screening (pure Rust, quick-xml); must never interpret content.

use quick_xml::events::Event;
use quick_xml::Reader;

/// Structural limits for one inbound XML document.
#[derive(Debug, Clone, Copy)]
pub struct XmlLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_attributes: usize,
    pub max_elements: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits { max_bytes: 4 * 1024 * 1024, max_depth: 48, max_attributes: 24, max_elements: 50_000 }
    }
}

/// Why a document was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("document is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("document type declarations (DOCTYPE) are not allowed")]
    Doctype,
    #[error("processing instructions are not allowed")]
    ProcessingInstruction,
    #[error("entity reference &{0}; is not allowed")]
    Entity(String),
    #[error("nesting deeper than {0} elements")]
    TooDeep(usize),
    #[error("element <{0}> has more than {1} attributes")]
    TooManyAttributes(String, usize),
    #[error("more than {0} elements")]
    TooManyElements(usize),
    #[error("encoding {0} is not allowed (UTF-8 only)")]
    Encoding(String),
    #[error("not well-formed XML at byte {0}: {1}")]
    Malformed(u64, String),
}

/// Screens `bytes` against `limits`. Passing says nothing about content, only that a full
/// parse is bounded and cannot expand entities.
pub fn precheck(bytes: &[u8], limits: &XmlLimits) -> Result<(), LimitError> {
    if bytes.len() > limits.max_bytes {
        return Err(LimitError::TooLarge(bytes.len()));
    }
    // Only UTF-8 (the parser is told so): another encoding would hide the structure from this
    // scan while libxml2 decoded it.
    if bytes.starts_with(&[0xFE, 0xFF]) || bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0, 0]) {
        return Err(LimitError::Encoding("UTF-16/32 byte-order mark".into()));
    }
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut elements = 0usize;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| LimitError::Malformed(reader.buffer_position(), e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(LimitError::Doctype),
            Event::Decl(ref d) => {
                if let Some(Ok(enc)) = d.encoding() {
                    let enc = String::from_utf8_lossy(&enc).to_ascii_uppercase();
                    if enc != "UTF-8" && enc != "UTF8" {
                        return Err(LimitError::Encoding(enc));
                    }
                }
            }
            Event::PI(_) => return Err(LimitError::ProcessingInstruction),
            Event::Start(ref e) | Event::Empty(ref e) => {
                elements += 1;
                if elements > limits.max_elements {
                    return Err(LimitError::TooManyElements(limits.max_elements));
                }
                // Counted without quick-xml's duplicate check, which compares each attribute
                // with all before it (quadratic in a tag with 100 000s of them), and only up to
                // one past the limit; the checked pass below then has a bounded count.
                let attributes = e.attributes().with_checks(false).take(limits.max_attributes + 1).count();
                if attributes > limits.max_attributes {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    return Err(LimitError::TooManyAttributes(name, limits.max_attributes));
                }
                for attr in e.attributes().with_checks(true) {
                    let attr = attr.map_err(|err| LimitError::Malformed(reader.buffer_position(), err.to_string()))?;
                    check_entities(&attr.value)?;
                }
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                    if depth > limits.max_depth {
                        return Err(LimitError::TooDeep(limits.max_depth));
                    }
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(ref t) => check_entities(t)?,
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(())
}

/// Only `&lt; &gt; &amp; &quot; &apos;` and numeric character references may appear.
fn check_entities(raw: &[u8]) -> Result<(), LimitError> {
    let mut rest = raw;
    while let Some(start) = rest.iter().position(|&b| b == b'&') {
        let after = &rest[start + 1..];
        let end = after
            .iter()
            .position(|&b| b == b';')
            .ok_or_else(|| LimitError::Entity(String::from_utf8_lossy(&after[..after.len().min(16)]).into_owned()))?;
        let name = &after[..end];
        let ok = matches!(name, b"lt" | b"gt" | b"amp" | b"quot" | b"apos")
            || (name.len() > 1 && name[0] == b'#' && name[1..].iter().all(|b| b.is_ascii_hexdigit() || *b == b'x'));
        if !ok {
            return Err(LimitError::Entity(String::from_utf8_lossy(name).into_owned()));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_document() {
        assert!(
            precheck(b"<?xml version=\"1.0\"?><a x=\"&amp;&#65;\"><b>t &lt;</b></a>", &XmlLimits::default()).is_ok()
        );
    }

    #[test]
    fn refuses_doctype_and_external_entity() {
        let xxe = b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><a>&x;</a>";
        assert_eq!(precheck(xxe, &XmlLimits::default()), Err(LimitError::Doctype));
    }

    #[test]
    fn refuses_undeclared_entity_and_pi() {
        assert!(matches!(precheck(b"<a>&lol9;</a>", &XmlLimits::default()), Err(LimitError::Entity(_))));
        assert_eq!(precheck(b"<a><?php x?></a>", &XmlLimits::default()), Err(LimitError::ProcessingInstruction));
    }

    #[test]
    fn enforces_depth_attributes_size() {
        let deep = format!("{}{}", "<a>".repeat(60), "</a>".repeat(60));
        assert_eq!(precheck(deep.as_bytes(), &XmlLimits::default()), Err(LimitError::TooDeep(48)));
        let attrs: String = (0..30).map(|i| format!(" a{i}=\"1\"")).collect();
        assert!(matches!(
            precheck(format!("<a{attrs}/>").as_bytes(), &XmlLimits::default()),
            Err(LimitError::TooManyAttributes(_, 24))
        ));
        // A tag with 150 000 attributes (about 2 MB) is refused after counting 25 of them;
        // checking them all for duplicates first would take minutes of CPU.
        let many: String = (0..150_000).map(|i| format!(" a{i}=\"1\"")).collect();
        let big = XmlLimits { max_bytes: 4 << 20, ..XmlLimits::default() };
        assert!(matches!(precheck(format!("<a{many}/>").as_bytes(), &big), Err(LimitError::TooManyAttributes(_, 24))));
        let small = XmlLimits { max_bytes: 10, ..XmlLimits::default() };
        assert_eq!(precheck(b"<a>0123456789</a>", &small), Err(LimitError::TooLarge(17)));
    }

    #[test]
    fn refuses_other_encodings() {
        let utf7 = b"<?xml version=\"1.0\" encoding=\"UTF-7\"?>+ADw-a+AD4-";
        assert!(matches!(precheck(utf7, &XmlLimits::default()), Err(LimitError::Encoding(_))));
        assert!(matches!(precheck(b"\xff\xfe<\0a\0/\0>\0", &XmlLimits::default()), Err(LimitError::Encoding(_))));
        assert!(precheck(b"<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>", &XmlLimits::default()).is_ok());
    }

    #[test]
    fn refuses_malformed() {
        assert!(matches!(precheck(b"<a><b></a>", &XmlLimits::default()), Err(LimitError::Malformed(..))));
    }
}
