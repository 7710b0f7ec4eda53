//! The CO payload as Rust types, bound to the LPCO XML of `xsd/lpco-co.xsd` with yaserde. A
//! declaration of origin (DO) is the same document with another TypeCode, so it uses the same
//! types; what differs between the two is decided by [`super::validate`].
//!
//! One struct per XML group, fields in schema order. Every leaf is `Option<String>`:
//! `None` means the element is absent, `Some("")` that it is present but empty. Values stay
//! text so that [`super::validate`] can report every fault of a document with its own code;
//! typed readings of the header (issue date-time, indicators) are offered by helper methods.
//!
//! yaserde fills in what it finds and ignores the rest (missing or unknown elements are no
//! error), so mandatory groups are `Option` too: whether the document is complete is decided by
//! `validate`, not here.
//!
//! The namespace is spelled out in every `#[yaserde]` attribute because the derive needs a
//! literal; `super::LPCO_NAMESPACE` is the constant for everyone else (a unit test ties the two).

use serde::Serialize;
use yaserde::{YaDeserialize, YaSerialize};

/// The Certificate of Origin (or declaration of origin): root element `LPCO` (WCO Data Model
/// LPCO, Annex II; Annex IV for the DO).
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(
    rename = "LPCO",
    prefix = "co",
    default_namespace = "co",
    namespaces = { "co" = "urn:coconnect:xsd:lpco:1" }
)]
pub struct Lpco {
    /// D014 document reference number (CO number), an..35.
    #[yaserde(rename = "ID", prefix = "co")]
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// D013 document name code, UN/EDIFACT 1001: "861" (CO) or "862" (DO); see [`super::kind_of`].
    #[yaserde(rename = "TypeCode", prefix = "co")]
    #[serde(rename = "TypeCode", skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    /// K16 trade agreement or scheme, e.g. "KR-ID-CEPA".
    #[yaserde(rename = "AgreementCode", prefix = "co")]
    #[serde(rename = "AgreementCode", skip_serializing_if = "Option::is_none")]
    pub agreement_code: Option<String>,
    /// D031 document category (preferential / non-preferential).
    #[yaserde(rename = "CategoryCode", prefix = "co")]
    #[serde(rename = "CategoryCode", skip_serializing_if = "Option::is_none")]
    pub category_code: Option<String>,
    /// D011 issuing date-time, ISO 8601 with offset.
    #[yaserde(rename = "IssueDateTime", prefix = "co")]
    #[serde(rename = "IssueDateTime", skip_serializing_if = "Option::is_none")]
    pub issue_date_time: Option<String>,
    /// D012 issuing place, UN/LOCODE.
    #[yaserde(rename = "IssueLocationID", prefix = "co")]
    #[serde(rename = "IssueLocationID", skip_serializing_if = "Option::is_none")]
    pub issue_location_id: Option<String>,
    /// D034 issuing place name.
    #[yaserde(rename = "IssueLocationName", prefix = "co")]
    #[serde(rename = "IssueLocationName", skip_serializing_if = "Option::is_none")]
    pub issue_location_name: Option<String>,
    /// 019 document status code.
    #[yaserde(rename = "StatusCode", prefix = "co")]
    #[serde(rename = "StatusCode", skip_serializing_if = "Option::is_none")]
    pub status_code: Option<String>,
    /// K17 operation mode (issue / delete); mirrors the SOAP operation.
    #[yaserde(rename = "OperationModeCode", prefix = "co")]
    #[serde(rename = "OperationModeCode", skip_serializing_if = "Option::is_none")]
    pub operation_mode_code: Option<String>,
    /// K14 issued retroactively (xs:boolean text); see [`Lpco::issued_retroactively`].
    #[yaserde(rename = "IssuedRetroactivelyIndicator", prefix = "co")]
    #[serde(rename = "IssuedRetroactivelyIndicator", skip_serializing_if = "Option::is_none")]
    pub issued_retroactively_indicator: Option<String>,
    /// K15 back-to-back CO (xs:boolean text); see [`Lpco::back_to_back`].
    #[yaserde(rename = "BackToBackIndicator", prefix = "co")]
    #[serde(rename = "BackToBackIndicator", skip_serializing_if = "Option::is_none")]
    pub back_to_back_indicator: Option<String>,
    /// Approved-exporter authorisation code granted by the exporting customs (Annex IV, A.4),
    /// an..35. Mandatory in a declaration of origin, which only an approved exporter may make
    /// out; allowed but not required in a CO. See [`Lpco::approved_exporter`].
    #[yaserde(rename = "ApprovedExporterAuthorisationID", prefix = "co")]
    #[serde(rename = "ApprovedExporterAuthorisationID", skip_serializing_if = "Option::is_none")]
    pub approved_exporter_authorisation_id: Option<String>,
    /// 61B authentication (mandatory).
    #[yaserde(rename = "Authentication", prefix = "co")]
    #[serde(rename = "Authentication", skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// 03A additional information, one statement per entry.
    #[yaserde(rename = "AdditionalInformation", prefix = "co")]
    #[serde(rename = "AdditionalInformation", skip_serializing_if = "Vec::is_empty")]
    pub additional_information: Vec<AdditionalInformation>,
    /// 28A consignment (mandatory).
    #[yaserde(rename = "Consignment", prefix = "co")]
    #[serde(rename = "Consignment", skip_serializing_if = "Option::is_none")]
    pub consignment: Option<Consignment>,
}

impl Lpco {
    /// D014 `LPCO/ID`, the CO number; empty when the document has none.
    pub fn reference(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }

    /// D011 issue date-time with its offset; `None` when absent or not valid.
    pub fn issued_at(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        chrono::DateTime::parse_from_rfc3339(self.issue_date_time.as_deref()?).ok()
    }

    /// K14 as a boolean; `None` when absent or not an xs:boolean.
    pub fn issued_retroactively(&self) -> Option<bool> {
        self.issued_retroactively_indicator.as_deref().and_then(parse_xs_boolean)
    }

    /// K15 as a boolean; `None` when absent or not an xs:boolean.
    pub fn back_to_back(&self) -> Option<bool> {
        self.back_to_back_indicator.as_deref().and_then(parse_xs_boolean)
    }

    /// The approved exporter's authorisation code; `None` when absent or blank (a blank one is
    /// a validation fault, never an authorisation to look up).
    pub fn approved_exporter(&self) -> Option<&str> {
        self.approved_exporter_authorisation_id.as_deref().map(str::trim).filter(|id| !id.is_empty())
    }

    /// The consignment items in document order (empty when there is no consignment).
    pub fn items(&self) -> &[ConsignmentItem] {
        self.consignment.as_ref().map_or(&[], |c| c.items.as_slice())
    }
}

/// Reads an xs:boolean lexical value: `true`, `false`, `1` or `0`.
pub(crate) fn parse_xs_boolean(s: &str) -> Option<bool> {
    match s {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// 61B authentication of the document.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Authentication {
    /// 104 authentication statement, an..512.
    #[yaserde(rename = "Authentication", prefix = "co")]
    #[serde(rename = "Authentication", skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// 539 / D017 place of authentication, an..256.
    #[yaserde(rename = "LocationName", prefix = "co")]
    #[serde(rename = "LocationName", skip_serializing_if = "Option::is_none")]
    pub location_name: Option<String>,
    /// L098 authentication location, UN/LOCODE.
    #[yaserde(rename = "LocationID", prefix = "co")]
    #[serde(rename = "LocationID", skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// 451 actual authentication date-time, ISO 8601 with offset.
    #[yaserde(rename = "ActualDateTime", prefix = "co")]
    #[serde(rename = "ActualDateTime", skip_serializing_if = "Option::is_none")]
    pub actual_date_time: Option<String>,
    /// 12A authenticator (mandatory).
    #[yaserde(rename = "Authenticator", prefix = "co")]
    #[serde(rename = "Authenticator", skip_serializing_if = "Option::is_none")]
    pub authenticator: Option<Authenticator>,
}

/// 12A authenticator: the signing officer or body.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Authenticator {
    /// R007 authenticator name, an..70 (mandatory).
    #[yaserde(rename = "Name", prefix = "co")]
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// 03A additional information: one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct AdditionalInformation {
    /// 369 statement type code, an..3.
    #[yaserde(rename = "StatementTypeCode", prefix = "co")]
    #[serde(rename = "StatementTypeCode", skip_serializing_if = "Option::is_none")]
    pub statement_type_code: Option<String>,
    /// 105 free text, an..512.
    #[yaserde(rename = "StatementDescription", prefix = "co")]
    #[serde(rename = "StatementDescription", skip_serializing_if = "Option::is_none")]
    pub statement_description: Option<String>,
}

/// 28A consignment.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Consignment {
    /// 15A means of transport crossing the border.
    #[yaserde(rename = "BorderTransportMeans", prefix = "co")]
    #[serde(rename = "BorderTransportMeans", skip_serializing_if = "Option::is_none")]
    pub border_transport_means: Option<BorderTransportMeans>,
    /// 27A consignee, the importer (mandatory).
    #[yaserde(rename = "Consignee", prefix = "co")]
    #[serde(rename = "Consignee", skip_serializing_if = "Option::is_none")]
    pub consignee: Option<Party>,
    /// 30A consignor, the exporter (mandatory).
    #[yaserde(rename = "Consignor", prefix = "co")]
    #[serde(rename = "Consignor", skip_serializing_if = "Option::is_none")]
    pub consignor: Option<Party>,
    /// 83A loading location.
    #[yaserde(rename = "LoadingLocation", prefix = "co")]
    #[serde(rename = "LoadingLocation", skip_serializing_if = "Option::is_none")]
    pub loading_location: Option<Location>,
    /// 38B unloading location.
    #[yaserde(rename = "UnloadingLocation", prefix = "co")]
    #[serde(rename = "UnloadingLocation", skip_serializing_if = "Option::is_none")]
    pub unloading_location: Option<Location>,
    /// 31B transport equipment, one piece per entry.
    #[yaserde(rename = "TransportEquipment", prefix = "co")]
    #[serde(rename = "TransportEquipment", skip_serializing_if = "Vec::is_empty")]
    pub transport_equipment: Vec<TransportEquipment>,
    /// K9-K11 invoice issued in a third country.
    #[yaserde(rename = "ThirdPartyInvoice", prefix = "co")]
    #[serde(rename = "ThirdPartyInvoice", skip_serializing_if = "Option::is_none")]
    pub third_party_invoice: Option<ThirdPartyInvoice>,
    /// K12-K13 exhibition.
    #[yaserde(rename = "Exhibition", prefix = "co")]
    #[serde(rename = "Exhibition", skip_serializing_if = "Option::is_none")]
    pub exhibition: Option<Exhibition>,
    /// 29A goods items, at least one, numbered 1..n.
    #[yaserde(rename = "ConsignmentItem", prefix = "co")]
    #[serde(rename = "ConsignmentItem", skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ConsignmentItem>,
}

/// 15A border transport means.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct BorderTransportMeans {
    /// T005 name, an..35.
    #[yaserde(rename = "Name", prefix = "co")]
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// T006 identifier, an..35.
    #[yaserde(rename = "ID", prefix = "co")]
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// T010 type (UN/ECE Rec 28), an..4.
    #[yaserde(rename = "TypeCode", prefix = "co")]
    #[serde(rename = "TypeCode", skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    /// 149 voyage or flight number, an..17.
    #[yaserde(rename = "JourneyID", prefix = "co")]
    #[serde(rename = "JourneyID", skip_serializing_if = "Option::is_none")]
    pub journey_id: Option<String>,
    /// 156 departure date-time, ISO 8601 with offset.
    #[yaserde(rename = "DepartureDateTime", prefix = "co")]
    #[serde(rename = "DepartureDateTime", skip_serializing_if = "Option::is_none")]
    pub departure_date_time: Option<String>,
}

/// Consignee (27A) or consignor (30A).
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Party {
    /// R014 / R020 name, an..70 (mandatory).
    #[yaserde(rename = "Name", prefix = "co")]
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// R015 / R021 identifier, an..35.
    #[yaserde(rename = "ID", prefix = "co")]
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// R005 role code, an..3.
    #[yaserde(rename = "RoleCode", prefix = "co")]
    #[serde(rename = "RoleCode", skip_serializing_if = "Option::is_none")]
    pub role_code: Option<String>,
    /// 04A address (mandatory).
    #[yaserde(rename = "Address", prefix = "co")]
    #[serde(rename = "Address", skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// 04A address.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Address {
    /// 410 address type code, an..3.
    #[yaserde(rename = "TypeCode", prefix = "co")]
    #[serde(rename = "TypeCode", skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    /// 239 street and number / P.O. box, an..256.
    #[yaserde(rename = "Line", prefix = "co")]
    #[serde(rename = "Line", skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// 241 city name, an..35.
    #[yaserde(rename = "CityName", prefix = "co")]
    #[serde(rename = "CityName", skip_serializing_if = "Option::is_none")]
    pub city_name: Option<String>,
    /// 245 postcode, an..17.
    #[yaserde(rename = "PostcodeID", prefix = "co")]
    #[serde(rename = "PostcodeID", skip_serializing_if = "Option::is_none")]
    pub postcode_id: Option<String>,
    /// 244 country sub-entity code, an..9.
    #[yaserde(rename = "CountrySubDivisionCode", prefix = "co")]
    #[serde(rename = "CountrySubDivisionCode", skip_serializing_if = "Option::is_none")]
    pub country_sub_division_code: Option<String>,
    /// 243 country sub-entity name, an..35.
    #[yaserde(rename = "CountrySubDivisionName", prefix = "co")]
    #[serde(rename = "CountrySubDivisionName", skip_serializing_if = "Option::is_none")]
    pub country_sub_division_name: Option<String>,
    /// 242 country code, ISO 3166-1 alpha-2 (mandatory).
    #[yaserde(rename = "CountryCode", prefix = "co")]
    #[serde(rename = "CountryCode", skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// 412 country name, an..70.
    #[yaserde(rename = "CountryName", prefix = "co")]
    #[serde(rename = "CountryName", skip_serializing_if = "Option::is_none")]
    pub country_name: Option<String>,
}

/// Loading (83A) or unloading (38B) location.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Location {
    /// L009 / L012 name, an..256.
    #[yaserde(rename = "Name", prefix = "co")]
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// L010 / L013 UN/LOCODE.
    #[yaserde(rename = "ID", prefix = "co")]
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// 31B transport equipment (one container or other piece).
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct TransportEquipment {
    /// 152 size and type code (ISO 6346), an..4.
    #[yaserde(rename = "CharacteristicCode", prefix = "co")]
    #[serde(rename = "CharacteristicCode", skip_serializing_if = "Option::is_none")]
    pub characteristic_code: Option<String>,
    /// 44B seals.
    #[yaserde(rename = "Seal", prefix = "co")]
    #[serde(rename = "Seal", skip_serializing_if = "Vec::is_empty")]
    pub seals: Vec<Seal>,
}

/// 44B seal.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Seal {
    /// 006 seal sequence number, n..5.
    #[yaserde(rename = "SequenceNumeric", prefix = "co")]
    #[serde(rename = "SequenceNumeric", skip_serializing_if = "Option::is_none")]
    pub sequence_numeric: Option<String>,
    /// 165 seal identifier, an..35.
    #[yaserde(rename = "ID", prefix = "co")]
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// K9-K11 invoice issued by a company in a third country.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct ThirdPartyInvoice {
    /// K9 country, ISO 3166-1 alpha-2.
    #[yaserde(rename = "CountryCode", prefix = "co")]
    #[serde(rename = "CountryCode", skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// K10 company name, an..70.
    #[yaserde(rename = "Name", prefix = "co")]
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// K11 address.
    #[yaserde(rename = "Address", prefix = "co")]
    #[serde(rename = "Address", skip_serializing_if = "Option::is_none")]
    pub address: Option<LineAddress>,
}

/// K12-K13 exhibition.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Exhibition {
    /// K12 exhibition name, an..256.
    #[yaserde(rename = "Name", prefix = "co")]
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// K13 exhibition address.
    #[yaserde(rename = "Address", prefix = "co")]
    #[serde(rename = "Address", skip_serializing_if = "Option::is_none")]
    pub address: Option<LineAddress>,
}

/// Address as one free-text line (K11, K13).
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct LineAddress {
    /// K11 / K13 address line, an..256.
    #[yaserde(rename = "Line", prefix = "co")]
    #[serde(rename = "Line", skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
}

/// 29A consignment item: one goods item of the CO.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct ConsignmentItem {
    /// 006 item sequence number, n..5: 1, 2, 3 ... in document order (mandatory).
    #[yaserde(rename = "SequenceNumeric", prefix = "co")]
    #[serde(rename = "SequenceNumeric", skip_serializing_if = "Option::is_none")]
    pub sequence_numeric: Option<String>,
    /// 23A commodity (mandatory).
    #[yaserde(rename = "Commodity", prefix = "co")]
    #[serde(rename = "Commodity", skip_serializing_if = "Option::is_none")]
    pub commodity: Option<Commodity>,
    /// 65A weights and quantities.
    #[yaserde(rename = "GoodsMeasure", prefix = "co")]
    #[serde(rename = "GoodsMeasure", skip_serializing_if = "Option::is_none")]
    pub goods_measure: Option<GoodsMeasure>,
    /// 92A origin (mandatory).
    #[yaserde(rename = "Origin", prefix = "co")]
    #[serde(rename = "Origin", skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// 93A packaging.
    #[yaserde(rename = "Packaging", prefix = "co")]
    #[serde(rename = "Packaging", skip_serializing_if = "Option::is_none")]
    pub packaging: Option<Packaging>,
    /// 78A invoice.
    #[yaserde(rename = "Invoice", prefix = "co")]
    #[serde(rename = "Invoice", skip_serializing_if = "Option::is_none")]
    pub invoice: Option<Invoice>,
    /// 03A item additional information, one statement per entry.
    #[yaserde(rename = "AdditionalInformation", prefix = "co")]
    #[serde(rename = "AdditionalInformation", skip_serializing_if = "Vec::is_empty")]
    pub additional_information: Vec<AdditionalInformation>,
}

/// 23A commodity.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Commodity {
    /// 137 goods description, an..512 (mandatory).
    #[yaserde(rename = "Description", prefix = "co")]
    #[serde(rename = "Description", skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// 21A classification (mandatory).
    #[yaserde(rename = "Classification", prefix = "co")]
    #[serde(rename = "Classification", skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// 306 FOB value with its currency.
    #[yaserde(rename = "ValueAmount", prefix = "co")]
    #[serde(rename = "ValueAmount", skip_serializing_if = "Option::is_none")]
    pub value_amount: Option<Amount>,
    /// 01B producer.
    #[yaserde(rename = "Producer", prefix = "co")]
    #[serde(rename = "Producer", skip_serializing_if = "Option::is_none")]
    pub producer: Option<Producer>,
}

/// 21A commodity classification.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Classification {
    /// 145 HS code, 6 to 10 digits (mandatory).
    #[yaserde(rename = "ID", prefix = "co")]
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// 337 classification type (HS, TSP ...), an..3 (mandatory).
    #[yaserde(rename = "IdentificationTypeCode", prefix = "co")]
    #[serde(rename = "IdentificationTypeCode", skip_serializing_if = "Option::is_none")]
    pub identification_type_code: Option<String>,
}

/// 01B producer.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Producer {
    /// R034 producer name, an..70.
    #[yaserde(rename = "Name", prefix = "co")]
    #[serde(rename = "Name", skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 04A producer address.
    #[yaserde(rename = "Address", prefix = "co")]
    #[serde(rename = "Address", skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// 65A goods measure.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct GoodsMeasure {
    /// 131 gross weight.
    #[yaserde(rename = "GrossMassMeasure", prefix = "co")]
    #[serde(rename = "GrossMassMeasure", skip_serializing_if = "Option::is_none")]
    pub gross_mass_measure: Option<Measure>,
    /// 128 net weight.
    #[yaserde(rename = "NetNetWeightMeasure", prefix = "co")]
    #[serde(rename = "NetNetWeightMeasure", skip_serializing_if = "Option::is_none")]
    pub net_net_weight_measure: Option<Measure>,
    /// 130 / 324 tariff quantity.
    #[yaserde(rename = "TariffQuantity", prefix = "co")]
    #[serde(rename = "TariffQuantity", skip_serializing_if = "Option::is_none")]
    pub tariff_quantity: Option<Measure>,
}

/// 92A origin of the goods.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Origin {
    /// 063 country of origin, ISO 3166-1 alpha-2 (mandatory).
    #[yaserde(rename = "CountryCode", prefix = "co")]
    #[serde(rename = "CountryCode", skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// 413 country of origin name, an..70.
    #[yaserde(rename = "CountryName", prefix = "co")]
    #[serde(rename = "CountryName", skip_serializing_if = "Option::is_none")]
    pub country_name: Option<String>,
    /// 066 region of origin, an..9.
    #[yaserde(rename = "RegionID", prefix = "co")]
    #[serde(rename = "RegionID", skip_serializing_if = "Option::is_none")]
    pub region_id: Option<String>,
    /// 501 origin type (preferential / non-preferential), an..3.
    #[yaserde(rename = "TypeCode", prefix = "co")]
    #[serde(rename = "TypeCode", skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    /// 436 origin criterion (WO, PE, CTH, RVC ...), an..10 (mandatory).
    #[yaserde(rename = "RuleCode", prefix = "co")]
    #[serde(rename = "RuleCode", skip_serializing_if = "Option::is_none")]
    pub rule_code: Option<String>,
}

/// 93A packaging.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Packaging {
    /// 142 shipping marks, an..512.
    #[yaserde(rename = "MarksNumbersID", prefix = "co")]
    #[serde(rename = "MarksNumbersID", skip_serializing_if = "Option::is_none")]
    pub marks_numbers_id: Option<String>,
    /// 144 number of packages, n..8.
    #[yaserde(rename = "QuantityQuantity", prefix = "co")]
    #[serde(rename = "QuantityQuantity", skip_serializing_if = "Option::is_none")]
    pub quantity_quantity: Option<String>,
    /// 141 package type, UN/ECE Rec 21 (two characters).
    #[yaserde(rename = "TypeCode", prefix = "co")]
    #[serde(rename = "TypeCode", skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
}

/// 78A commercial invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Invoice {
    /// D016 invoice number, an..35.
    #[yaserde(rename = "ID", prefix = "co")]
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// D015 invoice date, YYYY-MM-DD.
    #[yaserde(rename = "IssueDateTime", prefix = "co")]
    #[serde(rename = "IssueDateTime", skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<String>,
}

/// A monetary amount (306): decimal text with its ISO 4217 `currencyID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Amount {
    /// ISO 4217 currency code (mandatory).
    #[yaserde(attribute = true, rename = "currencyID")]
    #[serde(rename = "currencyID", skip_serializing_if = "Option::is_none")]
    pub currency_id: Option<String>,
    /// The decimal amount as written, e.g. "48250.00".
    #[yaserde(text = true)]
    #[serde(rename = "value", skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A weight or quantity (131, 128, 130): decimal text with its UN/ECE Rec 20 `unitCode`.
#[derive(Debug, Clone, Default, PartialEq, Eq, YaSerialize, YaDeserialize, Serialize)]
#[yaserde(prefix = "co", default_namespace = "co", namespaces = { "co" = "urn:coconnect:xsd:lpco:1" })]
pub struct Measure {
    /// UN/ECE Rec 20 unit code, e.g. "KGM" (mandatory).
    #[yaserde(attribute = true, rename = "unitCode")]
    #[serde(rename = "unitCode", skip_serializing_if = "Option::is_none")]
    pub unit_code: Option<String>,
    /// The decimal quantity as written, e.g. "6120.5".
    #[yaserde(text = true)]
    #[serde(rename = "value", skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
