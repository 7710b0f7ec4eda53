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
    fn the_served_documentation_tells_the_truth() {
        let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let served = super::wsdl_for("https://co.customs.example/gw/soap/v1");
        let start = served.find("<wsdl:documentation>").expect("documentation");
        let end = served[start..].find("</wsdl:documentation>").expect("end") + start;
        let doc = flat(&served[start..end]);
        // The one key transport the receiver accepts, as it names it.
        let accepted = crate::wssec::ns::RSA_OAEP_MGF1P;
        assert!(doc.contains(&format!("key transport algorithm {accepted} only")), "{doc}");
        // Refused by the receiver: not promised anywhere in what is served.
        assert!(!served.contains("xmlenc11#rsa-oaep"), "the served WSDL mentions xmlenc11#rsa-oaep");
        // The sentence about the address is served as written, not rewritten by the substitution.
        let sentence = |text: &str| {
            let text = flat(text);
            let from = text.find("The service address below").expect("the sentence about the address");
            let to = text[from..].find("placeholder.").expect("its end") + from;
            text[from..to].to_owned()
        };
        assert_eq!(sentence(&served), sentence(super::WSDL));
        assert!(!doc.contains("co.customs.example"), "the served address leaked into the prose: {doc}");
        // The file carries the placeholder in the two address attributes only; served, in none.
        assert_eq!(super::WSDL.matches(super::PLACEHOLDER).count(), 2);
        assert!(!served.contains(super::PLACEHOLDER), "a placeholder address was served");
    }
}
