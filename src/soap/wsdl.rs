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
    WSDL.replace(PLACEHOLDER, &crate::wssec::outbound::xml_escape(base)).replace(
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
}
