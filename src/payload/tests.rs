//! Tests of the CO and DO payload: the example documents, every error code, what a DO needs
//! beyond a CO, and the agreement of the scanner's element tree and of `validate`'s mandatory
//! elements with `xsd/lpco-co.xsd`.

use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::validate::{Content, Node, LPCO_TREE};
use super::*;

const EXAMPLE: &str = include_str!("../../examples/co.xml");
const EXAMPLE_DO: &str = include_str!("../../examples/do.xml");
const XSD: &str = include_str!("../../xsd/lpco-co.xsd");

/// `xml` with `from` replaced by `to`; `from` must occur exactly once.
fn edit(xml: &str, from: &str, to: &str) -> String {
    assert_eq!(xml.matches(from).count(), 1, "{from:?} must occur once");
    xml.replacen(from, to, 1)
}

fn errors_of(xml: &str) -> Vec<ValidationError> {
    parse_co(xml).expect_err("document should be rejected")
}

fn codes_and_paths(errors: &[ValidationError]) -> Vec<(&'static str, &str)> {
    errors.iter().map(|e| (e.code, e.path.as_str())).collect()
}

/// Asserts that `xml` is rejected with exactly one error, of this code at this path.
#[track_caller]
fn assert_single(xml: &str, code: &str, path: &str) {
    let errors = errors_of(xml);
    assert_eq!(codes_and_paths(&errors), vec![(code, path)], "{errors:#?}");
}

/// Asserts that `xml` is rejected as a DO with exactly one error, of this code at this path.
#[track_caller]
fn assert_single_do(xml: &str, code: &str, path: &str) {
    let errors = parse_do(xml).expect_err("declaration should be rejected");
    assert_eq!(codes_and_paths(&errors), vec![(code, path)], "{errors:#?}");
}

// ---------------------------------------------------------------------------------------------
// The example
// ---------------------------------------------------------------------------------------------

#[test]
fn example_parses_without_errors() {
    let co = parse_co(EXAMPLE).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(co.reference(), "KRIDCEPA-2025-PUS-000417");
    assert_eq!(co.type_code.as_deref(), Some(codes::CERTIFICATE_OF_ORIGIN));
    assert_eq!(co.issued_retroactively(), Some(false));
    assert_eq!(co.issued_at().unwrap().to_rfc3339(), "2025-03-14T10:30:00+09:00");
    assert_eq!(co.items().len(), 3);
    let authentication = co.authentication.as_ref().unwrap();
    assert!(authentication.statement.as_deref().unwrap().starts_with("It is hereby certified"));
    let item = &co.items()[1];
    let classification = item.commodity.as_ref().unwrap().classification.as_ref().unwrap();
    assert_eq!(classification.id.as_deref(), Some("390761"));
    let amount = item.commodity.as_ref().unwrap().value_amount.as_ref().unwrap();
    assert_eq!((amount.currency_id.as_deref(), amount.value.as_deref()), (Some("USD"), Some("21600.00")));
    assert_eq!(co.consignment.as_ref().unwrap().transport_equipment[1].seals[0].id.as_deref(), Some("KR2503118"));
    assert!(validate(&co).is_empty());
}

#[test]
fn example_round_trips() {
    let co = parse_co(EXAMPLE).unwrap();
    let xml = to_xml(&co).unwrap();
    assert!(xml.starts_with(r#"<LPCO xmlns="urn:coconnect:xsd:lpco:1">"#), "{xml}");
    assert!(!xml.contains("<?xml"));
    assert_eq!(parse_co(&xml).unwrap(), co);
}

#[test]
fn model_namespace_is_the_public_constant() {
    let xml = to_xml(&Lpco::default()).unwrap();
    assert!(xml.contains(&format!(r#"xmlns="{LPCO_NAMESPACE}""#)), "{xml}");
}

#[test]
fn prefixed_namespace_reads_like_the_default_one() {
    // Give every element of the example the prefix `co:`.
    let body = &EXAMPLE[EXAMPLE.find("<LPCO").unwrap()..];
    let prefixed = body
        .replace("</", "\u{0}")
        .replace('<', "<co:")
        .replace('\u{0}', "</co:")
        .replace(r#"xmlns="urn"#, r#"xmlns:co="urn"#);
    assert_eq!(parse_co(&prefixed).unwrap(), parse_co(EXAMPLE).unwrap());
}

#[test]
fn byte_order_mark_and_encoding_declaration_do_not_change_the_text() {
    let xml = edit(EXAMPLE, r#"encoding="UTF-8""#, r#"encoding="ISO-8859-1""#);
    let xml = format!(
        "\u{feff}{}",
        edit(
            &xml,
            "Hanbit Industrial Co., Ltd.</Name>\n      <ID>",
            "한빛산업 Hanbit Industrial Co., Ltd.</Name>\n      <ID>"
        )
    );
    let co = parse_co(&xml).unwrap_or_else(|e| panic!("{e:#?}"));
    let consignor = co.consignment.unwrap().consignor.unwrap();
    assert_eq!(consignor.name.as_deref(), Some("한빛산업 Hanbit Industrial Co., Ltd."));
}

#[test]
fn optional_groups_are_read_and_checked() {
    let extra = "<ThirdPartyInvoice>\n      <CountryCode>SG</CountryCode>\n      <Name>Hanbit Trading Pte. Ltd.</Name>\n      \
                 <Address><Line>1 Raffles Place, Singapore 048616</Line></Address>\n    </ThirdPartyInvoice>\n    \
                 <Exhibition><Name>Indonesia International Motor Show</Name><Address><Line>JIExpo Kemayoran, Jakarta</Line></Address></Exhibition>\n    \
                 <ConsignmentItem>\n      <SequenceNumeric>1</SequenceNumeric>";
    let xml = edit(EXAMPLE, "<ConsignmentItem>\n      <SequenceNumeric>1</SequenceNumeric>", extra);
    let co = parse_co(&xml).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(parse_co(&to_xml(&co).unwrap()).unwrap(), co);
    let consignment = co.consignment.as_ref().unwrap();
    assert_eq!(consignment.third_party_invoice.as_ref().unwrap().country_code.as_deref(), Some("SG"));
    assert!(consignment.exhibition.as_ref().unwrap().address.is_some());

    let bad = edit(&xml, "<CountryCode>SG</CountryCode>", "<CountryCode>XX</CountryCode>");
    assert_single(&bad, "CO-COUNTRY", "/LPCO/Consignment/ThirdPartyInvoice/CountryCode");
    let bad =
        edit(&xml, "<Name>Indonesia International Motor Show</Name>", &format!("<Name>{}</Name>", "x".repeat(257)));
    assert_single(&bad, "CO-LENGTH", "/LPCO/Consignment/Exhibition/Name");
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

/// The example with its second item removed: items numbered 1, 3.
fn example_with_items_1_and_3() -> String {
    let start = EXAMPLE.find("<ConsignmentItem>\n      <SequenceNumeric>2<").unwrap();
    let end = start + EXAMPLE[start..].find("</ConsignmentItem>").unwrap() + "</ConsignmentItem>".len();
    format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..])
}

#[test]
fn every_fault_of_a_document_is_reported() {
    let xml = example_with_items_1_and_3();
    let xml = edit(&xml, "<Name>PT Nusantara Makmur Sejahtera</Name>", "");
    let xml = edit(&xml, "<CountryCode>ID</CountryCode>", "<CountryCode>XX</CountryCode>");
    let xml = edit(&xml, "<ID>3304990000</ID>", "<ID>12AB</ID>");
    let xml = edit(&xml, "<IssueDateTime>2025-03-14T10:30:00+09:00<", "<IssueDateTime>2025-03-14T10:30:00<");
    let xml = edit(&xml, "<TypeCode>861</TypeCode>", "<TypeCode>862</TypeCode>");
    let errors = errors_of(&xml);
    let mut found = codes_and_paths(&errors);
    found.sort();
    let mut expected = vec![
        ("CO-MISSING", "/LPCO/Consignment/Consignee/Name"),
        ("CO-COUNTRY", "/LPCO/Consignment/Consignee/Address/CountryCode"),
        ("CO-HS", "/LPCO/Consignment/ConsignmentItem[2]/Commodity/Classification/ID"),
        ("CO-SEQUENCE", "/LPCO/Consignment/ConsignmentItem[2]/SequenceNumeric"),
        ("CO-DATETIME", "/LPCO/IssueDateTime"),
        ("CO-DOCTYPE", "/LPCO/TypeCode"),
    ];
    expected.sort();
    assert_eq!(found, expected, "{errors:#?}");
    let doctype = errors.iter().find(|e| e.code == "CO-DOCTYPE").unwrap();
    assert!(doctype.message.contains("declaration of origin"), "{}", doctype.message);
}

#[test]
fn item_numbering_must_follow_document_order() {
    let xml = edit(EXAMPLE, "<SequenceNumeric>3</SequenceNumeric>", "<SequenceNumeric>2</SequenceNumeric>");
    assert_single(&xml, "CO-SEQUENCE", "/LPCO/Consignment/ConsignmentItem[3]/SequenceNumeric");
    let xml = edit(
        EXAMPLE,
        "<SequenceNumeric>1</SequenceNumeric>\n      <Commodity>",
        "<SequenceNumeric>2</SequenceNumeric>\n      <Commodity>",
    );
    let xml = edit(
        &xml,
        "<SequenceNumeric>2</SequenceNumeric>\n      <Commodity>\n        <Description>Poly",
        "<SequenceNumeric>1</SequenceNumeric>\n      <Commodity>\n        <Description>Poly",
    );
    let errors = errors_of(&xml);
    assert_eq!(
        codes_and_paths(&errors),
        vec![
            ("CO-SEQUENCE", "/LPCO/Consignment/ConsignmentItem[1]/SequenceNumeric"),
            ("CO-SEQUENCE", "/LPCO/Consignment/ConsignmentItem[2]/SequenceNumeric"),
        ]
    );
    let xml = edit(EXAMPLE, "<SequenceNumeric>3</SequenceNumeric>", "<SequenceNumeric>0</SequenceNumeric>");
    assert_single(&xml, "CO-FORMAT", "/LPCO/Consignment/ConsignmentItem[3]/SequenceNumeric");
}

#[test]
fn each_value_fault_has_its_code_and_path() {
    let long_id = format!("<ID>{}</ID>", "A".repeat(36));
    let cases: &[(&str, &str, &str, &str)] = &[
        ("<ID>KRIDCEPA-2025-PUS-000417</ID>", &long_id, "CO-LENGTH", "/LPCO/ID"),
        ("<ID>KRIDCEPA-2025-PUS-000417</ID>", "<ID></ID>", "CO-MISSING", "/LPCO/ID"),
        ("<ID>KRIDCEPA-2025-PUS-000417</ID>", "<ID/>", "CO-MISSING", "/LPCO/ID"),
        (
            "<Name>Hanbit Industrial Co., Ltd.</Name>\n      <ID>",
            "<Name> \n </Name>\n      <ID>",
            "CO-MISSING",
            "/LPCO/Consignment/Consignor/Name",
        ),
        ("<CategoryCode>PRF</CategoryCode>", "<CategoryCode></CategoryCode>", "CO-LENGTH", "/LPCO/CategoryCode"),
        ("<CategoryCode>PRF</CategoryCode>", "<CategoryCode>PRFX</CategoryCode>", "CO-LENGTH", "/LPCO/CategoryCode"),
        (
            "<IssueLocationID>KRPUS</IssueLocationID>",
            "<IssueLocationID>KRPU1</IssueLocationID>",
            "CO-FORMAT",
            "/LPCO/IssueLocationID",
        ),
        (
            "<IssueDateTime>2025-03-14T10:30:00+09:00<",
            "<IssueDateTime>2025-03-14T10:30+09:00<",
            "CO-DATETIME",
            "/LPCO/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-14T10:30:00+09:00<",
            "<IssueDateTime>2025-03-14 10:30:00+09:00<",
            "CO-DATETIME",
            "/LPCO/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-14T10:30:00+09:00<",
            "<IssueDateTime>2025-03-14T10:30:00+15:00<",
            "CO-DATETIME",
            "/LPCO/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-14T10:30:00+09:00<",
            "<IssueDateTime>2025-03-14<",
            "CO-DATETIME",
            "/LPCO/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-14T10:30:00+09:00<",
            "<IssueDateTime>2025-03-14T24:00:00+09:00<",
            "CO-DATETIME",
            "/LPCO/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-14T10:30:00+09:00<",
            "<IssueDateTime>2025-03-14T10:30:60+09:00<",
            "CO-DATETIME",
            "/LPCO/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-14T10:30:00+09:00<",
            "<IssueDateTime>2025-03-14t10:30:00z<",
            "CO-DATETIME",
            "/LPCO/IssueDateTime",
        ),
        (
            "<ActualDateTime>2025-03-14T10:25:00+09:00<",
            "<ActualDateTime>2025-03-14T10:25:00<",
            "CO-DATETIME",
            "/LPCO/Authentication/ActualDateTime",
        ),
        (
            "<IssuedRetroactivelyIndicator>false<",
            "<IssuedRetroactivelyIndicator>no<",
            "CO-FORMAT",
            "/LPCO/IssuedRetroactivelyIndicator",
        ),
        (
            "<CountryCode>ID</CountryCode>",
            "<CountryCode>id</CountryCode>",
            "CO-COUNTRY",
            "/LPCO/Consignment/Consignee/Address/CountryCode",
        ),
        (
            "<Seal>\n        <SequenceNumeric>1</SequenceNumeric>\n        <ID>KR2503118",
            "<Seal>\n        <SequenceNumeric>x</SequenceNumeric>\n        <ID>KR2503118",
            "CO-FORMAT",
            "/LPCO/Consignment/TransportEquipment[2]/Seal[1]/SequenceNumeric",
        ),
        (
            "<ID>8708299000</ID>",
            "<ID>87082990001</ID>",
            "CO-HS",
            "/LPCO/Consignment/ConsignmentItem[1]/Commodity/Classification/ID",
        ),
        (
            r#"currencyID="USD">48250.00"#,
            r#"currencyID="USD">48,250.00"#,
            "CO-DECIMAL",
            "/LPCO/Consignment/ConsignmentItem[1]/Commodity/ValueAmount",
        ),
        (
            r#"currencyID="USD">48250.00"#,
            r#"currencyID="USD">-1"#,
            "CO-DECIMAL",
            "/LPCO/Consignment/ConsignmentItem[1]/Commodity/ValueAmount",
        ),
        (
            r#"currencyID="USD">48250.00"#,
            r#"currencyID="USD">"#,
            "CO-DECIMAL",
            "/LPCO/Consignment/ConsignmentItem[1]/Commodity/ValueAmount",
        ),
        (
            r#"currencyID="USD">48250.00"#,
            r#"currencyID="USD">1."#,
            "CO-DECIMAL",
            "/LPCO/Consignment/ConsignmentItem[1]/Commodity/ValueAmount",
        ),
        (
            r#"currencyID="USD">48250.00"#,
            r#"currencyID=" USD">48250.00"#,
            "CO-FORMAT",
            "/LPCO/Consignment/ConsignmentItem[1]/Commodity/ValueAmount/@currencyID",
        ),
        (
            r#"<ValueAmount currencyID="USD">48250.00"#,
            r#"<ValueAmount>48250.00"#,
            "CO-MISSING",
            "/LPCO/Consignment/ConsignmentItem[1]/Commodity/ValueAmount/@currencyID",
        ),
        (
            r#"currencyID="USD">48250.00"#,
            r#"currencyID="usd">48250.00"#,
            "CO-FORMAT",
            "/LPCO/Consignment/ConsignmentItem[1]/Commodity/ValueAmount/@currencyID",
        ),
        (
            r#"<GrossMassMeasure unitCode="KGM">6120.5"#,
            r#"<GrossMassMeasure unitCode="kg">6120.5"#,
            "CO-FORMAT",
            "/LPCO/Consignment/ConsignmentItem[1]/GoodsMeasure/GrossMassMeasure/@unitCode",
        ),
        (
            "<TypeCode>PX</TypeCode>",
            "<TypeCode>PLT</TypeCode>",
            "CO-FORMAT",
            "/LPCO/Consignment/ConsignmentItem[1]/Packaging/TypeCode",
        ),
        (
            "<QuantityQuantity>12</QuantityQuantity>",
            "<QuantityQuantity>12.5</QuantityQuantity>",
            "CO-FORMAT",
            "/LPCO/Consignment/ConsignmentItem[1]/Packaging/QuantityQuantity",
        ),
        (
            "<IssueDateTime>2025-03-12</IssueDateTime>",
            "<IssueDateTime>2025-02-30</IssueDateTime>",
            "CO-DATE",
            "/LPCO/Consignment/ConsignmentItem[3]/Invoice/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-12</IssueDateTime>",
            "<IssueDateTime>2025-03-12T00:00:00Z</IssueDateTime>",
            "CO-DATE",
            "/LPCO/Consignment/ConsignmentItem[3]/Invoice/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-12</IssueDateTime>",
            "<IssueDateTime>0000-03-12</IssueDateTime>",
            "CO-DATE",
            "/LPCO/Consignment/ConsignmentItem[3]/Invoice/IssueDateTime",
        ),
        (
            "<IssueDateTime>2025-03-12</IssueDateTime>",
            "<IssueDateTime>2025-03-12Z</IssueDateTime>",
            "CO-DATE",
            "/LPCO/Consignment/ConsignmentItem[3]/Invoice/IssueDateTime",
        ),
        (
            "<SequenceNumeric>3</SequenceNumeric>",
            "<SequenceNumeric>+3</SequenceNumeric>",
            "CO-FORMAT",
            "/LPCO/Consignment/ConsignmentItem[3]/SequenceNumeric",
        ),
        (
            "<SequenceNumeric>3</SequenceNumeric>",
            "<SequenceNumeric>123456</SequenceNumeric>",
            "CO-FORMAT",
            "/LPCO/Consignment/ConsignmentItem[3]/SequenceNumeric",
        ),
        (
            "<RuleCode>CTSH</RuleCode>",
            "<RuleCode>CTSH-RVC40-X</RuleCode>",
            "CO-LENGTH",
            "/LPCO/Consignment/ConsignmentItem[3]/Origin/RuleCode",
        ),
        (
            "<StatementTypeCode>AAI</StatementTypeCode>\n        <StatementDescription>Produced",
            "<StatementTypeCode>AAIX</StatementTypeCode>\n        <StatementDescription>Produced",
            "CO-LENGTH",
            "/LPCO/Consignment/ConsignmentItem[3]/AdditionalInformation[1]/StatementTypeCode",
        ),
    ];
    for (from, to, code, path) in cases {
        let xml = edit(EXAMPLE, from, to);
        let errors = errors_of(&xml);
        assert_eq!(codes_and_paths(&errors), vec![(*code, *path)], "{from} -> {to}: {errors:#?}");
    }
}

#[test]
fn values_in_range_are_accepted() {
    let cases: &[(&str, &str)] = &[
        ("<IssueDateTime>2025-03-14T10:30:00+09:00<", "<IssueDateTime>2025-03-14T01:30:00.250Z<"),
        ("<IssueDateTime>2025-03-14T10:30:00+09:00<", "<IssueDateTime>2025-03-14T10:30:00-14:00<"),
        ("<IssuedRetroactivelyIndicator>false<", "<IssuedRetroactivelyIndicator>1<"),
        ("<ID>KRIDCEPA-2025-PUS-000417</ID>", "<ID>  KRIDCEPA-2025-PUS-000417\n  </ID>"),
        ("<TypeCode>PX</TypeCode>", "<TypeCode>4H</TypeCode>"),
        ("<SequenceNumeric>3</SequenceNumeric>", "<SequenceNumeric> 3 </SequenceNumeric>"),
        (r#"currencyID="USD">48250.00"#, r#"currencyID="USD"> 48250.00 "#),
        (
            "<StatementDescription>Produced by the exporter at its Busan plant.",
            "<StatementDescription>Produced by the exporter &amp; its &lt;Busan&gt; plant.",
        ),
    ];
    for (from, to) in cases {
        let xml = edit(EXAMPLE, from, to);
        parse_co(&xml).unwrap_or_else(|e| panic!("{to}: {e:#?}"));
    }
}

#[test]
fn validate_reports_missing_mandatory_groups_of_a_built_co() {
    let found = validate(&Lpco::default());
    let paths: Vec<_> = found.iter().map(|e| (e.code, e.path.as_str())).collect();
    assert_eq!(
        paths,
        vec![
            ("CO-MISSING", "/LPCO/ID"),
            ("CO-MISSING", "/LPCO/TypeCode"),
            ("CO-MISSING", "/LPCO/AgreementCode"),
            ("CO-MISSING", "/LPCO/IssueDateTime"),
            ("CO-MISSING", "/LPCO/Authentication"),
            ("CO-MISSING", "/LPCO/Consignment"),
        ]
    );
    let mut co = parse_co(EXAMPLE).unwrap();
    co.consignment.as_mut().unwrap().items.clear();
    let found = validate(&co);
    assert_eq!(codes_and_paths(&found), vec![("CO-MISSING", "/LPCO/Consignment/ConsignmentItem")]);
}

// ---------------------------------------------------------------------------------------------
// Root, structure and well-formedness
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_root_or_namespace_is_rejected() {
    let cases = [
        edit(EXAMPLE, "urn:coconnect:xsd:lpco:1", "urn:coconnect:xsd:lpco:2"),
        edit(EXAMPLE, r#" xmlns="urn:coconnect:xsd:lpco:1""#, ""),
        edit(&edit(EXAMPLE, "<LPCO ", "<Certificate "), "</LPCO>", "</Certificate>"),
        r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><LPCO xmlns="urn:coconnect:xsd:lpco:1"/></Envelope>"#.to_owned(),
    ];
    for xml in &cases {
        let errors = errors_of(xml);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert_eq!(errors[0].code, "CO-ROOT", "{errors:#?}");
    }
}

#[test]
fn malformed_xml_is_reported() {
    let cases = [
        String::new(),
        "   ".to_owned(),
        "not xml".to_owned(),
        EXAMPLE[..EXAMPLE.len() / 2].to_owned(),
        edit(EXAMPLE, "</Consignee>", "</Consignor>"),
        edit(EXAMPLE, "Busan Main Customs</LocationName>", "Busan &customs;</LocationName>"),
        edit(EXAMPLE, "Busan Main Customs</LocationName>", "Busan & Main Customs</LocationName>"),
        edit(EXAMPLE, r#"currencyID="USD">21600.00"#, r#"currencyID=USD>21600.00"#),
        edit(EXAMPLE, "<LPCO ", "<!DOCTYPE LPCO [<!ENTITY x \"y\">]>\n<LPCO "),
        format!("{EXAMPLE}<LPCO/>"),
        format!("{EXAMPLE}trailing"),
        edit(EXAMPLE, "<ID>IMO9347580</ID>", "<x:ID>IMO9347580</x:ID>"),
        edit(EXAMPLE, "<ID>IMO9347580</ID>", "<ID>IMO9347580</ID><?xml version=\"1.0\"?>"),
        edit(EXAMPLE, "<ID>IMO9347580</ID>", "<ID a=\"1\" a=\"2\">IMO9347580</ID>"),
        // Caught by the XML reader under the binding, not by the scan:
        edit(EXAMPLE, "<ID>IMO9347580</ID>", "<ID>IMO\u{1}9347580</ID>"),
        edit(EXAMPLE, "<ID>IMO9347580</ID>", "<1ID>IMO9347580</1ID>"),
        edit(EXAMPLE, "<ID>IMO9347580</ID>", "<ID>IMO9347580</ID><!-- a -- b -->"),
    ];
    for xml in &cases {
        let errors = errors_of(xml);
        assert_eq!(errors.len(), 1, "{xml}: {errors:#?}");
        assert_eq!(errors[0].code, "CO-XML-MALFORMED", "{errors:#?}");
    }
    let errors = errors_of(&edit(EXAMPLE, "</Consignee>", "</Consignor>"));
    assert_eq!(errors[0].path, "/LPCO/Consignment/Consignee");
    assert_eq!(errors_of("not xml")[0].path, "/");
}

#[test]
fn structural_faults_are_reported_with_the_content_faults() {
    // Unknown element, element of another namespace, unknown attribute, order, repetition,
    // text between elements, element inside a text element; plus one content fault.
    let xml = edit(EXAMPLE, "<StatusCode>9</StatusCode>", "<StatusCode>9</StatusCode><Remark>hi</Remark>");
    let xml = edit(&xml, "<RoleCode>CN</RoleCode>", r#"<RoleCode>CN</RoleCode><o:Tax xmlns:o="urn:other">1</o:Tax>"#);
    let xml = edit(&xml, "<Name>SINAR BUSAN</Name>", r#"<Name lang="en">SINAR BUSAN</Name>"#);
    let xml = edit(
        &xml,
        "<CategoryCode>PRF</CategoryCode>\n  <IssueDateTime>2025-03-14T10:30:00+09:00</IssueDateTime>",
        "<IssueDateTime>2025-03-14T10:30:00+09:00</IssueDateTime>\n  <CategoryCode>PRF</CategoryCode>",
    );
    let xml = edit(
        &xml,
        "<AgreementCode>KR-ID-CEPA</AgreementCode>",
        "<AgreementCode>KR-ID-CEPA</AgreementCode><AgreementCode>RCEP</AgreementCode>",
    );
    let xml = edit(&xml, "<LoadingLocation>", "<LoadingLocation>stray");
    let xml = edit(&xml, "<JourneyID>2511S</JourneyID>", "<JourneyID>2511S<b>x</b></JourneyID>");
    let xml = edit(&xml, "<ID>390761</ID>", "<ID>39076</ID>");
    let errors = errors_of(&xml);
    assert_eq!(
        codes_and_paths(&errors),
        vec![
            ("CO-OCCURS", "/LPCO/AgreementCode"),
            ("CO-ORDER", "/LPCO/CategoryCode"),
            ("CO-UNKNOWN-ELEMENT", "/LPCO/Remark"),
            ("CO-UNKNOWN-ATTRIBUTE", "/LPCO/Consignment/BorderTransportMeans/Name/@lang"),
            ("CO-UNKNOWN-ELEMENT", "/LPCO/Consignment/BorderTransportMeans/JourneyID/b"),
            ("CO-UNKNOWN-ELEMENT", "/LPCO/Consignment/Consignee/o:Tax"),
            ("CO-FORMAT", "/LPCO/Consignment/LoadingLocation"),
        ],
        "{errors:#?}"
    );

    // Without the element inside a text element, the binding runs and content faults follow.
    let xml = edit(&xml, "<JourneyID>2511S<b>x</b></JourneyID>", "<JourneyID>2511S</JourneyID>");
    let errors = errors_of(&xml);
    assert_eq!(errors.len(), 7, "{errors:#?}");
    assert_eq!(
        (errors[6].code, errors[6].path.as_str()),
        ("CO-HS", "/LPCO/Consignment/ConsignmentItem[2]/Commodity/Classification/ID")
    );
}

#[test]
fn schema_location_and_comments_are_allowed() {
    let xml = edit(
        EXAMPLE,
        r#"<LPCO xmlns="urn:coconnect:xsd:lpco:1">"#,
        r#"<LPCO xmlns="urn:coconnect:xsd:lpco:1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="urn:coconnect:xsd:lpco:1 lpco-co.xsd"><!-- c --><?pi x?>"#,
    );
    let xml = edit(&xml, "<Name>SINAR BUSAN</Name>", "<Name><![CDATA[SINAR]]> BUSAN</Name>");
    let co = parse_co(&xml).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(co, parse_co(EXAMPLE).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Agreement with xsd/lpco-co.xsd
// ---------------------------------------------------------------------------------------------

/// A child element declared in a complexType of the XSD.
#[derive(Debug)]
struct XsdElement {
    name: String,
    type_name: String,
    min: u32,
    repeats: bool,
}

/// complexType name -> its sequence of elements, or the attribute of a simpleContent type.
#[derive(Debug, Default)]
struct Xsd {
    sequences: HashMap<String, Vec<XsdElement>>,
    attributes: HashMap<String, String>,
    root_type: String,
}

fn read_xsd() -> Xsd {
    let mut reader = Reader::from_str(XSD);
    let mut xsd = Xsd::default();
    let mut complex_type: Option<String> = None;
    loop {
        match reader.read_event().unwrap() {
            Event::Eof => return xsd,
            Event::Start(e) | Event::Empty(e) => {
                let attr =
                    |name: &str| e.try_get_attribute(name).unwrap().map(|a| a.unescape_value().unwrap().into_owned());
                match e.name().as_ref() {
                    b"xs:complexType" => complex_type = attr("name"),
                    b"xs:element" => match &complex_type {
                        None => xsd.root_type = attr("type").unwrap(),
                        Some(owner) => xsd.sequences.entry(owner.clone()).or_default().push(XsdElement {
                            name: attr("name").unwrap(),
                            type_name: attr("type").unwrap(),
                            min: attr("minOccurs").map_or(1, |m| m.parse().unwrap()),
                            repeats: attr("maxOccurs").is_some_and(|m| m != "1"),
                        }),
                    },
                    b"xs:attribute" => {
                        let owner = complex_type.clone().unwrap();
                        xsd.attributes.insert(owner, attr("name").unwrap());
                    }
                    _ => {}
                }
            }
            Event::End(e) if e.name().as_ref() == b"xs:complexType" => complex_type = None,
            _ => {}
        }
    }
}

/// Compares a node of the scanner's tree with the XSD type of the same element.
fn assert_same_tree(node: &Node, type_name: &str, xsd: &Xsd, path: &str) {
    match (&node.content, xsd.sequences.get(type_name)) {
        (Content::Children(children), Some(elements)) => {
            let ours: Vec<_> = children.iter().map(|c| (c.name, c.repeats)).collect();
            let theirs: Vec<_> = elements.iter().map(|e| (e.name.as_str(), e.repeats)).collect();
            assert_eq!(ours, theirs, "children of {path}");
            for (child, element) in children.iter().zip(elements) {
                assert_same_tree(child, &element.type_name, xsd, &format!("{path}/{}", child.name));
            }
        }
        (Content::Text { attribute }, None) => {
            assert_eq!(attribute.as_deref(), xsd.attributes.get(type_name).map(String::as_str), "attribute of {path}");
        }
        _ => panic!("{path}: the scanner and the XSD disagree on element or text content"),
    }
}

#[test]
fn scanner_tree_matches_the_xsd() {
    let xsd = read_xsd();
    assert_eq!(xsd.root_type, "LPCOType");
    assert_same_tree(&LPCO_TREE, &xsd.root_type, &xsd, "/LPCO");
}

/// An element of a document: its path as (name, 1-based index among same-named siblings)
/// segments, and its byte range.
struct Located {
    segments: Vec<(String, u32)>,
    range: std::ops::Range<usize>,
}

fn element_ranges(xml: &str) -> Vec<Located> {
    struct Open {
        name: String,
        index: u32,
        start: usize,
        child_counts: HashMap<String, u32>,
    }
    fn segments(open: &[Open], last: &Open) -> Vec<(String, u32)> {
        open.iter().chain([last]).map(|o| (o.name.clone(), o.index)).collect()
    }
    let mut reader = Reader::from_str(xml);
    let mut open: Vec<Open> = Vec::new();
    let mut root_counts = HashMap::new();
    let mut out = Vec::new();
    loop {
        let start = reader.buffer_position() as usize;
        let event = reader.read_event().unwrap();
        let end = reader.buffer_position() as usize;
        let (element, empty) = match &event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                let closed = open.pop().unwrap();
                out.push(Located { segments: segments(&open, &closed), range: closed.start..end });
                continue;
            }
            Event::Eof => return out,
            _ => continue,
        };
        let name = String::from_utf8(element.local_name().as_ref().to_vec()).unwrap();
        let counts = open.last_mut().map_or(&mut root_counts, |o| &mut o.child_counts);
        let count = counts.entry(name.clone()).or_insert(0);
        *count += 1;
        let opened = Open { name, index: *count, start, child_counts: HashMap::new() };
        if empty {
            out.push(Located { segments: segments(&open, &opened), range: start..end });
        } else {
            open.push(opened);
        }
    }
}

/// Element path without indices -> (minOccurs, repeats), from the XSD.
fn xsd_occurrences(xsd: &Xsd) -> HashMap<String, (u32, bool)> {
    fn walk(xsd: &Xsd, type_name: &str, path: &str, out: &mut HashMap<String, (u32, bool)>) {
        for element in xsd.sequences.get(type_name).into_iter().flatten() {
            let child = format!("{path}/{}", element.name);
            out.insert(child.clone(), (element.min, element.repeats));
            walk(xsd, &element.type_name, &child, out);
        }
    }
    let mut out = HashMap::new();
    walk(xsd, &xsd.root_type, "/LPCO", &mut out);
    out
}

/// Removing any single element of the example gives exactly one CO-MISSING at its path when
/// the XSD makes it mandatory, and a valid CO when the XSD makes it optional: `validate`
/// requires what the schema requires, no more and no less.
#[test]
fn validate_requires_exactly_what_the_xsd_requires() {
    let checked = assert_requires_exactly(EXAMPLE, parse_co, &[]);
    assert!(checked > 80, "only {checked} elements checked");
}

/// The same for the DO example: what the XSD requires, plus exactly the DO rules (Annex IV).
#[test]
fn validate_requires_of_a_do_what_the_xsd_and_the_do_rules_require() {
    let do_only = [
        "/LPCO/ApprovedExporterAuthorisationID",
        "/LPCO/Authentication/Authentication",
        "/LPCO/Consignment/ConsignmentItem/Invoice",
        "/LPCO/Consignment/ConsignmentItem/Invoice/ID",
    ];
    let checked = assert_requires_exactly(EXAMPLE_DO, parse_do, &do_only);
    assert!(checked > 60, "only {checked} elements checked");
}

/// Removes each element of `example` (first occurrences only) in turn and checks that `parse`
/// reports exactly one CO-MISSING at its path when the XSD or `also_required` (paths without
/// indices) make it mandatory, and accepts the document otherwise. Returns how many elements
/// were checked.
fn assert_requires_exactly(
    example: &str,
    parse: fn(&str) -> Result<Lpco, Vec<ValidationError>>,
    also_required: &[&str],
) -> usize {
    let occurrences = xsd_occurrences(&read_xsd());
    let mut checked = 0;
    for Located { segments, range } in element_ranges(example) {
        if segments.len() < 2 || segments.iter().any(|(_, index)| *index != 1) {
            continue;
        }
        let mut plain = String::new();
        let mut shown = String::new();
        let mut repeats = false;
        for (name, _) in &segments {
            plain = format!("{plain}/{name}");
            let (_, r) = occurrences.get(&plain).copied().unwrap_or((1, false));
            repeats = r;
            shown = if r { format!("{shown}/{name}[1]") } else { format!("{shown}/{name}") };
        }
        let (min, _) = occurrences[&plain];
        if repeats && min > 0 {
            continue; // ConsignmentItem: covered by validate_reports_missing_mandatory_groups_of_a_built_co
        }
        let min = if also_required.contains(&plain.as_str()) { 1 } else { min };
        let xml = format!("{}{}", &example[..range.start], &example[range.end..]);
        match (min, parse(&xml)) {
            (0, Ok(_)) => {}
            (0, Err(errors)) => panic!("optional {shown} removed: {errors:#?}"),
            (_, Ok(_)) => panic!("mandatory {shown} removed, yet the CO is valid"),
            (_, Err(errors)) => assert_eq!(codes_and_paths(&errors), vec![("CO-MISSING", shown.as_str())], "{shown}"),
        }
        checked += 1;
    }
    checked
}

// ---------------------------------------------------------------------------------------------
// Declarations of origin (Annex IV)
// ---------------------------------------------------------------------------------------------

#[test]
fn do_example_parses_as_a_declaration_of_origin() {
    let declaration = parse_do(EXAMPLE_DO).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(kind_of(&declaration), Some(DocumentKind::Do));
    assert_eq!(declaration.reference(), "KRIDCEPA-DO-2025-PUS-000093");
    assert_eq!(declaration.approved_exporter(), Some("KR-AE-130-2023-000417"));
    assert_eq!(declaration.items().len(), 2);
    for item in declaration.items() {
        assert_eq!(item.invoice.as_ref().and_then(|i| i.id.as_deref()), Some("HBI-INV-2025-0402"));
    }
    let statement = declaration.authentication.as_ref().and_then(|a| a.statement.as_deref()).unwrap_or("");
    assert!(statement.contains("KR-AE-130-2023-000417"), "{statement}");
    assert!(validate_document(&declaration, DocumentKind::Do).is_empty());
    assert_eq!(parse_document(EXAMPLE_DO, DocumentKind::Do), Ok(declaration));
}

#[test]
fn do_example_round_trips() {
    let declaration = parse_do(EXAMPLE_DO).unwrap();
    let xml = to_xml(&declaration).unwrap();
    assert!(xml.contains("<ApprovedExporterAuthorisationID>KR-AE-130-2023-000417<"), "{xml}");
    assert_eq!(parse_do(&xml).unwrap(), declaration);
}

#[test]
fn the_co_example_is_unchanged_by_the_do_support() {
    let co = parse_co(EXAMPLE).unwrap();
    assert_eq!(kind_of(&co), Some(DocumentKind::Co));
    assert_eq!(co.approved_exporter(), None);
    assert!(!to_xml(&co).unwrap().contains("ApprovedExporter"));
    assert_eq!(parse_document(EXAMPLE, DocumentKind::Co), Ok(co));
}

#[test]
fn a_do_is_not_a_co_and_a_co_is_not_a_do() {
    // The only thing wrong with the DO as a CO is its TypeCode: the DO-only element is allowed.
    let errors = parse_co(EXAMPLE_DO).expect_err("a DO is not a CO");
    assert_eq!(codes_and_paths(&errors), vec![("CO-DOCTYPE", "/LPCO/TypeCode")], "{errors:#?}");
    assert!(errors[0].message.contains("\"862\" (declaration of origin)"), "{}", errors[0].message);
    assert!(errors[0].message.contains("certificate of origin has 861"), "{}", errors[0].message);

    // The CO as a DO: wrong code, and no approved exporter (its items have invoices, and it has
    // a statement, so nothing else is missing).
    let errors = parse_do(EXAMPLE).expect_err("a CO is not a DO");
    assert_eq!(
        codes_and_paths(&errors),
        vec![("CO-DOCTYPE", "/LPCO/TypeCode"), ("CO-MISSING", "/LPCO/ApprovedExporterAuthorisationID")],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("\"861\" (certificate of origin)"), "{}", errors[0].message);
    assert!(errors[0].message.contains("declaration of origin has 862"), "{}", errors[0].message);

    // An unknown code is named without a kind, and the expected code is given.
    let xml = edit(EXAMPLE_DO, "<TypeCode>862</TypeCode>", "<TypeCode>999</TypeCode>");
    let errors = parse_do(&xml).expect_err("999 is no DO");
    assert_eq!(codes_and_paths(&errors), vec![("CO-DOCTYPE", "/LPCO/TypeCode")], "{errors:#?}");
    assert_eq!(errors[0].message, "document name code is \"999\"; a declaration of origin has 862 (UN/EDIFACT 1001)");
}

#[test]
fn each_do_rule_has_its_code_and_path() {
    let xml = edit(
        EXAMPLE_DO,
        "<ApprovedExporterAuthorisationID>KR-AE-130-2023-000417</ApprovedExporterAuthorisationID>",
        "",
    );
    assert_single_do(&xml, "CO-MISSING", "/LPCO/ApprovedExporterAuthorisationID");
    let xml = edit(
        EXAMPLE_DO,
        "<ApprovedExporterAuthorisationID>KR-AE-130-2023-000417<",
        "<ApprovedExporterAuthorisationID> \n <",
    );
    assert_single_do(&xml, "CO-MISSING", "/LPCO/ApprovedExporterAuthorisationID");
    let xml = edit(
        EXAMPLE_DO,
        "<ApprovedExporterAuthorisationID>KR-AE-130-2023-000417<",
        &format!("<ApprovedExporterAuthorisationID>{}<", "A".repeat(36)),
    );
    assert_single_do(&xml, "CO-LENGTH", "/LPCO/ApprovedExporterAuthorisationID");

    let start = EXAMPLE_DO.find("<Authentication>The exporter").unwrap();
    let end = start + EXAMPLE_DO[start..].find("</Authentication>").unwrap() + "</Authentication>".len();
    let xml = format!("{}{}", &EXAMPLE_DO[..start], &EXAMPLE_DO[end..]);
    assert_single_do(&xml, "CO-MISSING", "/LPCO/Authentication/Authentication");

    let second_item = "<Invoice>\n        <ID>HBI-INV-2025-0402</ID>\n        <IssueDateTime>2025-04-02</IssueDateTime>\n      </Invoice>\n    </ConsignmentItem>\n  </Consignment>";
    let xml = edit(EXAMPLE_DO, second_item, &second_item.replace("<ID>HBI-INV-2025-0402</ID>", ""));
    assert_single_do(&xml, "CO-MISSING", "/LPCO/Consignment/ConsignmentItem[2]/Invoice/ID");
    let xml = edit(EXAMPLE_DO, second_item, "</ConsignmentItem>\n  </Consignment>");
    assert_single_do(&xml, "CO-MISSING", "/LPCO/Consignment/ConsignmentItem[2]/Invoice");
    // The same documents are fine as far as a CO is concerned: only the TypeCode is wrong.
    let errors = parse_co(&xml).expect_err("TypeCode 862");
    assert_eq!(codes_and_paths(&errors), vec![("CO-DOCTYPE", "/LPCO/TypeCode")], "{errors:#?}");
}

#[test]
fn a_co_may_carry_an_approved_exporter_in_its_place() {
    let element = "<ApprovedExporterAuthorisationID>KR-AE-130-2023-000417</ApprovedExporterAuthorisationID>";
    let after = "<BackToBackIndicator>false</BackToBackIndicator>";
    let xml = edit(EXAMPLE, after, &format!("{after}\n  {element}"));
    let co = parse_co(&xml).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(co.approved_exporter(), Some("KR-AE-130-2023-000417"));
    assert_eq!(parse_co(&to_xml(&co).unwrap()).unwrap(), co);

    // In a CO an empty one is a value fault (an optional element), not a missing one.
    let empty = edit(&xml, element, "<ApprovedExporterAuthorisationID></ApprovedExporterAuthorisationID>");
    assert_single(&empty, "CO-LENGTH", "/LPCO/ApprovedExporterAuthorisationID");

    // Schema order: between BackToBackIndicator and Authentication.
    let misplaced = edit(EXAMPLE, "  </Authentication>\n", &format!("  </Authentication>\n  {element}\n"));
    assert_single(&misplaced, "CO-ORDER", "/LPCO/ApprovedExporterAuthorisationID");
    let twice = edit(&xml, element, &format!("{element}{element}"));
    assert_single(&twice, "CO-OCCURS", "/LPCO/ApprovedExporterAuthorisationID");
}

#[test]
fn validate_document_of_a_built_do_reports_the_do_elements() {
    let found = validate_document(&Lpco::default(), DocumentKind::Do);
    assert_eq!(
        codes_and_paths(&found),
        vec![
            ("CO-MISSING", "/LPCO/ID"),
            ("CO-MISSING", "/LPCO/TypeCode"),
            ("CO-MISSING", "/LPCO/AgreementCode"),
            ("CO-MISSING", "/LPCO/IssueDateTime"),
            ("CO-MISSING", "/LPCO/ApprovedExporterAuthorisationID"),
            ("CO-MISSING", "/LPCO/Authentication"),
            ("CO-MISSING", "/LPCO/Consignment"),
        ]
    );
    let mut declaration = parse_do(EXAMPLE_DO).unwrap();
    declaration.consignment.as_mut().unwrap().items.clear();
    let found = validate_document(&declaration, DocumentKind::Do);
    assert_eq!(codes_and_paths(&found), vec![("CO-MISSING", "/LPCO/Consignment/ConsignmentItem")]);
    assert!(found[0].message.starts_with("a DO needs"), "{}", found[0].message);
    // `validate` is the CO check.
    assert_eq!(validate(&declaration).len(), 2);
}

#[test]
fn document_kind_codes_and_forms() {
    for (kind, code, text) in [(DocumentKind::Co, "861", "CO"), (DocumentKind::Do, "862", "DO")] {
        assert_eq!(kind.type_code(), code);
        assert_eq!(kind.as_str(), text);
        assert_eq!(kind.to_string(), text);
        assert_eq!(DocumentKind::parse(text), Some(kind));
        assert_eq!(DocumentKind::from_type_code(code), Some(kind));
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<DocumentKind>(&format!("\"{text}\"")).unwrap(), kind);
    }
    assert_eq!(DocumentKind::Co.type_code(), codes::CERTIFICATE_OF_ORIGIN);
    assert_eq!(DocumentKind::Do.type_code(), codes::DECLARATION_OF_ORIGIN);
    for other in ["co", "Do", "", "CO ", "861"] {
        assert_eq!(DocumentKind::parse(other), None, "{other:?}");
    }
    assert_eq!(DocumentKind::from_type_code("863"), None);
    let mut co = Lpco::default();
    assert_eq!(kind_of(&co), None);
    co.type_code = Some("999".to_owned());
    assert_eq!(kind_of(&co), None);
    co.type_code = Some(" 862 ".to_owned());
    assert_eq!(kind_of(&co), Some(DocumentKind::Do));
    co.approved_exporter_authorisation_id = Some("  ".to_owned());
    assert_eq!(co.approved_exporter(), None);
}
