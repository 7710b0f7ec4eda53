//! What a purged request keeps of its wire (`store::retention`): the envelope without the
//! content of its SOAP Body. The headers (WS-Security timestamp, token, signature with its
//! signed digests) stay byte for byte, so the signature stays verifiable over SignedInfo and
//! commits to the Body's digest.
//!
//! Must never: keep any byte of the Body's content.

/// The wire without the content of the SOAP Body (a child of the root named `Body`): the
/// envelope, its headers and the Body start and end tags stay byte for byte. None when the wire
/// is not well-formed XML with such a Body.
pub fn without_body_content(wire: &[u8]) -> Option<Vec<u8>> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(wire);
    let mut depth = 0usize;
    let mut content_start = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                if depth == 2 && content_start.is_none() && e.local_name().as_ref() == b"Body" {
                    content_start = Some(usize::try_from(reader.buffer_position()).ok()?);
                }
            }
            Event::End(e) => {
                if depth == 2 && e.local_name().as_ref() == b"Body" {
                    let start = content_start?;
                    let after = usize::try_from(reader.buffer_position()).ok()?;
                    // The end tag is the last `</` before its end: it holds no other `<`.
                    let close = start + wire.get(start..after)?.windows(2).rposition(|w| w == b"</")?;
                    let mut evidence = wire[..start].to_vec();
                    evidence.extend_from_slice(&wire[close..]);
                    return Some(evidence);
                }
                depth = depth.checked_sub(1)?;
            }
            Event::Empty(e) if depth == 1 && e.local_name().as_ref() == b"Body" => return Some(wire.to_vec()),
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_keeps_the_envelope_and_drops_only_the_body_content() {
        assert_eq!(
            without_body_content(
                b"<e:Envelope><e:Header><s>sig</s></e:Header><e:Body a=\"1\"><p>x</p>text</e:Body ></e:Envelope>"
            )
            .as_deref(),
            Some(&b"<e:Envelope><e:Header><s>sig</s></e:Header><e:Body a=\"1\"></e:Body ></e:Envelope>"[..])
        );
        assert_eq!(without_body_content(b"<E><B/><Body/></E>").as_deref(), Some(&b"<E><B/><Body/></E>"[..]));
        assert_eq!(without_body_content(b"<ack/>"), None);
        assert_eq!(without_body_content(b"<E><Body><x></Body></E>"), None);
        assert_eq!(without_body_content(b"not xml"), None);
    }
}
