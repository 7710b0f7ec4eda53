//! The readers behind the signature check, fed directly (random bytes never verify, so the
//! `inbound` target rarely reaches them): the message header, the acknowledgement, the SOAP
//! fault reader, the CO parser and validator, and the structural precheck.
//!
//! Property checked: a CO that `parse_co` accepts re-serialises (`payload::to_xml`, as the
//! domestic API does before sending it) to XML that `parse_co` accepts again as the same CO.

#![no_main]

use coconnect::payload::{parse_co, to_xml};
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
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(co) = parse_co(text) {
            let xml = to_xml(&co).expect("an accepted CO serialises");
            match parse_co(&xml) {
                Ok(back) => assert_eq!(back, co, "re-serialised CO reads differently\n{xml}"),
                Err(e) => panic!("re-serialised CO is refused: {e:?}\n{xml}"),
            }
        }
    }
});
