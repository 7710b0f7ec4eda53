//! Serves the WSDL and the schemas it imports, with `soap:address` set to the configured public
//! URL (behind a reverse proxy the listening address is not what partners call).

/// The placeholder address in `wsdl/coconnect.wsdl`.
const PLACEHOLDER: &str = "https://gateway.example/soap/v1";

const WSDL: &str = include_str!("../../wsdl/coconnect.wsdl");
const MESSAGES_XSD: &str = include_str!("../../xsd/coconnect-messages.xsd");
const LPCO_XSD: &str = include_str!("../../xsd/lpco-co.xsd");

/// The WSDL with its service address set to `public_url`, its schema import pointing at the
/// schemas served next to it, and `profile` as WS-SecurityPolicy (`soap::policy`) attached to
/// each binding and operation.
pub fn wsdl_for(public_url: &str, profile: &crate::wssec::Profile) -> String {
    let base = public_url.trim_end_matches('/');
    let schema_base = base.strip_suffix("/soap/v1").unwrap_or(base);
    with_policy(&addressed(base, schema_base), profile)
}

/// The policies placed before the first binding, and referenced from each binding and from each
/// operation's input and output: requests signed (and encrypted when the profile encrypts),
/// acknowledgements signed, GetCO's answer like a request.
fn with_policy(wsdl: &str, profile: &crate::wssec::Profile) -> String {
    use super::policy::{BINDING_POLICY, SIGNED_AND_ENCRYPTED, SIGNED_ONLY, WSP};
    let reference = |id: &str| format!("<wsp:PolicyReference xmlns:wsp=\"{WSP}\" URI=\"#{id}\"/>");
    let Some(first_binding) = wsdl.find("<wsdl:binding ") else { return wsdl.to_owned() };
    let mut out = String::with_capacity(wsdl.len() + 4096);
    out.push_str(&wsdl[..first_binding]);
    out.push_str(&super::policy::policies(profile));
    out.push_str("\n  ");
    let mut operation = "";
    for line in wsdl[first_binding..].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("<wsdl:operation name=\"") {
            operation = name.split('"').next().unwrap_or("");
        }
        if trimmed.starts_with("<wsdl:binding ") {
            out.push_str(line.trim_end());
            out.push_str(&reference(BINDING_POLICY));
            out.push('\n');
        } else if trimmed.starts_with("<wsdl:input>") {
            out.push_str(&line.replacen(
                "<wsdl:input>",
                &format!("<wsdl:input>{}", reference(SIGNED_AND_ENCRYPTED)),
                1,
            ));
        } else if trimmed.starts_with("<wsdl:output>") {
            let id = if operation == "GetCO" { SIGNED_AND_ENCRYPTED } else { SIGNED_ONLY };
            out.push_str(&line.replacen("<wsdl:output>", &format!("<wsdl:output>{}", reference(id)), 1));
        } else {
            out.push_str(line);
        }
    }
    out
}

fn addressed(base: &str, schema_base: &str) -> String {
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
    fn the_policy_is_attached_to_every_binding_and_operation() {
        let w = super::wsdl_for("https://x.example/soap/v1", &crate::wssec::Profile::strict(true));
        assert_eq!(w.matches("URI=\"#CoConnectBindingPolicy\"").count(), 2, "both bindings");
        // Six operations in two bindings: every input, and GetCO's output, signed and encrypted.
        assert_eq!(w.matches("URI=\"#CoConnectSignedEncryptedParts\"").count(), 2 * (6 + 1));
        assert_eq!(w.matches("URI=\"#CoConnectSignedParts\"").count(), 2 * 5);
        // Still well-formed, one definitions element.
        let doc = roxmltree_like_check(&w);
        assert!(doc, "not well-formed");
    }

    /// Whether quick-xml reads the whole document without an error.
    fn roxmltree_like_check(xml: &str) -> bool {
        let mut reader = quick_xml::Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    #[test]
    fn address_comes_from_public_url() {
        let w = super::wsdl_for("https://co.customs.example/gw/soap/v1", &crate::wssec::Profile::strict(true));
        assert!(!w.contains(super::PLACEHOLDER));
        assert_eq!(w.matches("location=\"https://co.customs.example/gw/soap/v1\"").count(), 2);
        assert!(w.contains("schemaLocation=\"https://co.customs.example/gw/xsd/coconnect-messages.xsd\""));
    }

    /// The documentation of the served WSDL: what it says of key transport and of the address
    /// must be true of the gateway (only rsa-oaep-mgf1p is accepted; the address is replaced).
    #[test]
    fn the_served_documentation_tells_the_truth() {
        let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let served = super::wsdl_for("https://co.customs.example/gw/soap/v1", &crate::wssec::Profile::strict(true));
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
