//! The readers behind the signature check, fed directly (random bytes never verify, so the
//! `inbound` target rarely reaches them): the message header, the acknowledgement, the SOAP
//! fault reader, the CO parser and validator, and the structural precheck.
//!
//! Properties checked: a CO (or DO) that `parse_co` (`parse_do`) accepts re-serialises
//! (`payload::to_xml`, as the domestic API does before sending it) to XML that is accepted
//! again as the same document; the lifecycle operations' content (cancellation, its answer,
//! feedback, look-up) that is read once reads back the same from what the gateway writes.

#![no_main]

use coconnect::payload::{parse_co, parse_do, to_xml};
use coconnect::soap::business::{read_lookup_response, Cancellation, CancellationStatus, Feedback, Lookup};
use coconnect::soap::fault::read_fault;
use coconnect::soap::{Acknowledgement, MessageHeader};
use coconnect::wssec::limits::{precheck, XmlLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = precheck(data, &XmlLimits::default());
    // Tight limits, so the depth / attribute / element refusals are reached by small inputs.
    let _ = precheck(data, &XmlLimits { max_bytes: 1 << 16, max_depth: 4, max_attributes: 2, max_elements: 16 });
    let _ = MessageHeader::read(data);
    let _ = Acknowledgement::read(data);
    let _ = read_fault(data);
    let _ = read_lookup_response(data, Some(data));
    round_trip(data, Cancellation::read, Cancellation::to_xml);
    round_trip(data, CancellationStatus::read, CancellationStatus::to_xml);
    round_trip(data, Feedback::read, Feedback::to_xml);
    round_trip(data, Lookup::read, Lookup::to_xml);
    if let Ok(text) = std::str::from_utf8(data) {
        for parse in [parse_co, parse_do] {
            if let Ok(co) = parse(text) {
                let xml = to_xml(&co).expect("an accepted document serialises");
                match parse(&xml) {
                    Ok(back) => assert_eq!(back, co, "re-serialised document reads differently\n{xml}"),
                    Err(e) => panic!("re-serialised document is refused: {e:?}\n{xml}"),
                }
            }
        }
    }
});

/// What a reader accepts, written back inside an operation element, reads the same.
fn round_trip<T: PartialEq + std::fmt::Debug, E>(
    data: &[u8],
    read: fn(&[u8]) -> Result<T, E>,
    write: fn(&T) -> String,
) {
    if let Ok(value) = read(data) {
        let xml = format!("<cc:Op xmlns:cc=\"urn:coconnect:soap:v1\">{}</cc:Op>", write(&value));
        match read(xml.as_bytes()) {
            Ok(back) => assert_eq!(back, value, "written back, it reads differently\n{xml}"),
            Err(_) => panic!("written back, it is refused\n{xml}"),
        }
    }
}
