//! Serves the WSDL and the schemas it imports, with `soap:address` set to the configured public
//! URL (behind a reverse proxy the listening address is not what partners call).

/// The placeholder address in `wsdl/coconnect.wsdl`.
const PLACEHOLDER: &str = "https://gateway.example/soap/v1";

const WSDL: &str = include_str!("../../wsdl/coconnect.wsdl");
const MESSAGES_XSD: &str = include_str!("../../xsd/coconnect-messages.xsd");
const LPCO_XSD: &str = include_str!("../../xsd/lpco-co.xsd");

/// The WSDL with its service address set to `public_url`, and its schema import pointing at
/// the schemas served next to it.
pub fn wsdl_for(public_url: &str) -> String {
    let base = public_url.trim_end_matches('/');
    let schema_base = base.strip_suffix("/soap/v1").unwrap_or(base);
    // Only the address attributes: a placeholder URL anywhere else (prose) is left as written.
    WSDL.replace(
        &format!("location=\"{PLACEHOLDER}\""),
        &format!("location=\"{}\"", crate::wssec::outbound::xml_escape(base)),
    )
    .replace(
        "schemaLocation=\"../xsd/",
        &format!("schemaLocation=\"{}/xsd/", crate::wssec::outbound::xml_escape(schema_base)),
    )
}

/// A schema file served under `/xsd/NAME`.
pub fn schema(name: &str) -> Option<&'static str> {
    match name {
        "coconnect-messages.xsd" => Some(MESSAGES_XSD),
        "lpco-co.xsd" => Some(LPCO_XSD),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn address_comes_from_public_url() {
        let w = super::wsdl_for("https://co.customs.example/gw/soap/v1");
        assert!(!w.contains(super::PLACEHOLDER));
        assert_eq!(w.matches("location=\"https://co.customs.example/gw/soap/v1\"").count(), 2);
        assert!(w.contains("schemaLocation=\"https://co.customs.example/gw/xsd/coconnect-messages.xsd\""));
    }

    /// The documentation of the served WSDL: what it says of key transport and of the address
    /// must be true of the gateway (only rsa-oaep-mgf1p is accepted; the address is replaced).
    #[test]
    fn documentation_tells_the_truth() {
        let w = super::wsdl_for("https://co.customs.example/gw/soap/v1");
        let start = w.find("<wsdl:documentation>").expect("documentation");
        let end = w[start..].find("</wsdl:documentation>").expect("end") + start;
        let doc = w[start..end].split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(!doc.contains("xmlenc11#rsa-oaep"), "xmlenc11#rsa-oaep is refused by the receiver: {doc}");
        assert!(doc.contains("http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p only"));
        assert!(
            crate::wssec::ns::RSA_OAEP_MGF1P == "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
            "the documented algorithm is the accepted one"
        );
        // The sentence about the address is not rewritten into nonsense.
        assert!(!doc.contains("co.customs.example"), "the served address leaked into the prose: {doc}");
        assert!(doc.contains("is the gateway's configured public URL when the WSDL is served"), "{doc}");
        // The file itself still carries the placeholder in the address attributes only.
        assert_eq!(super::WSDL.matches(&format!("location=\"{}\"", super::PLACEHOLDER)).count(), 2);
    }
}
