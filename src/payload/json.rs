//! The CO or DO as JSON, for the administration's own systems (`GET
//! /api/v1/certificates/{id}/document` with `Accept: application/json`): one object `LPCO`
//! holding the document's elements under their WCO Data Model names, nested as in the XML. The
//! names are the XML's (xsd/lpco-co.xsd); [`DATA_ELEMENTS`] (`xsd/lpco-data-elements.tsv`, from
//! Annex II) maps each path to its WCO data-element ID, and docs/backend.md lists them.
//!
//! Shape: an element that may repeat is an array; an absent element has no key; every value is
//! the text as written (no number or date conversion, so nothing is lost); an element with an
//! attribute (`ValueAmount`'s `currencyID`, a measure's `unitCode`) is an object with the
//! attribute and `value`.
//!
//! Must never: hold anything the XML does not (the JSON is a view of the validated document).

use super::model::Lpco;

/// The WCO data elements of the CO (Annex II): ID, name, XML path (which is also the JSON
/// path), occurrence and format, tab-separated with a header line.
pub const DATA_ELEMENTS: &str = include_str!("../../xsd/lpco-data-elements.tsv");

/// `doc` as the JSON described in the module documentation.
pub fn to_json(doc: &Lpco) -> serde_json::Value {
    serde_json::json!({ "LPCO": doc })
}

/// One row of [`DATA_ELEMENTS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataElement {
    pub wco_id: String,
    pub name: String,
    /// `LPCO/Consignment/Consignee/Name`: the XML path, and the JSON path with `/` for `.`.
    pub path: String,
    pub occurs: String,
}

/// The rows of [`DATA_ELEMENTS`].
pub fn data_elements() -> Vec<DataElement> {
    DATA_ELEMENTS
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let mut cols = l.split('\t');
            Some(DataElement {
                wco_id: cols.next()?.trim().to_owned(),
                name: cols.next()?.trim().to_owned(),
                path: cols.next()?.trim().to_owned(),
                occurs: cols.next().unwrap_or("").trim().to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Follows `path` (`LPCO/A/B`) through `json`, taking the first entry of every array.
    fn find<'a>(json: &'a Value, path: &str) -> Option<&'a Value> {
        let mut at = json;
        for step in path.split('/') {
            at = match at {
                Value::Array(items) => items.first()?.get(step)?,
                other => other.get(step)?,
            };
        }
        Some(at)
    }

    /// A document with every element of the data-element list present.
    fn full_document() -> Lpco {
        let mut doc = super::super::parse_co(include_str!("../../examples/co.xml")).expect("the example is valid");
        let consignment = doc.consignment.as_mut().expect("consignment");
        consignment.third_party_invoice = Some(super::super::model::ThirdPartyInvoice {
            country_code: Some("SG".into()),
            name: Some("Invoicing Pte Ltd".into()),
            address: Some(super::super::model::LineAddress { line: Some("1 Raffles Place".into()) }),
        });
        consignment.exhibition = Some(super::super::model::Exhibition {
            name: Some("Jakarta Fair".into()),
            address: Some(super::super::model::LineAddress { line: Some("Kemayoran".into()) }),
        });
        let item = consignment.items.first_mut().expect("an item");
        item.origin.as_mut().expect("origin").region_id = Some("KR-26".into());
        item.additional_information.push(super::super::model::AdditionalInformation {
            statement_type_code: Some("AAI".into()),
            statement_description: Some("Wholly obtained".into()),
        });
        doc
    }

    #[test]
    fn every_wco_data_element_has_its_path_in_the_json() {
        let json = to_json(&full_document());
        let elements = data_elements();
        assert!(elements.len() > 60, "the list was read: {}", elements.len());
        let missing: Vec<String> = elements
            .iter()
            .filter(|e| find(&json, &e.path).is_none())
            .map(|e| format!("{} {}", e.wco_id, e.path))
            .collect();
        assert!(missing.is_empty(), "paths of the data-element list not in the JSON: {missing:#?}\n{json:#}");
    }

    #[test]
    fn repeatable_elements_are_arrays_and_attributes_sit_beside_the_value() {
        let json = to_json(&full_document());
        assert_eq!(json["LPCO"]["ID"], "KRIDCEPA-2025-PUS-000417");
        assert!(json["LPCO"]["Consignment"]["ConsignmentItem"].is_array());
        assert!(json["LPCO"]["AdditionalInformation"].is_array());
        let amount = &json["LPCO"]["Consignment"]["ConsignmentItem"][0]["Commodity"]["ValueAmount"];
        assert!(amount["currencyID"].is_string() && amount["value"].is_string(), "{amount}");
        // Absent elements have no key (not null).
        let first = json["LPCO"]["Consignment"]["ConsignmentItem"][0].as_object().expect("item");
        assert!(first.values().all(|v| !v.is_null()), "{first:?}");
    }

    /// `path` as a JSON path of `json`, with `[]` after each array.
    fn json_path(json: &Value, path: &str) -> String {
        let mut at = json;
        let mut out = Vec::new();
        for step in path.split('/') {
            let next = match at {
                Value::Array(items) => items.first().and_then(|i| i.get(step)),
                other => other.get(step),
            };
            let Some(next) = next else { return format!("{path} (absent)") };
            out.push(if next.is_array() { format!("{step}[]") } else { step.to_owned() });
            at = next;
        }
        out.join(".")
    }

    const BEGIN: &str = "<!-- json names: generated by src/payload/json.rs, do not edit -->";
    const END: &str = "<!-- end of json names -->";

    /// docs/backend.md lists every data element with its JSON path; rewritten by
    /// `COCONNECT_WRITE_DOCS=1 cargo test --lib payload::json`.
    #[test]
    fn the_table_in_docs_backend_md_is_the_data_element_list() {
        let json = to_json(&full_document());
        let mut table = String::from("| WCO ID | Data element | JSON path | Occurs |\n| --- | --- | --- | --- |\n");
        for e in data_elements() {
            table.push_str(&format!(
                "| {} | {} | `{}` | {} |\n",
                e.wco_id,
                e.name,
                json_path(&json, &e.path),
                e.occurs
            ));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/backend.md");
        let doc = std::fs::read_to_string(&path).expect("docs/backend.md");
        let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
            panic!("docs/backend.md has no generated JSON table markers")
        };
        let current = &doc[begin + BEGIN.len()..end];
        let wanted = format!("\n{table}");
        if current != wanted {
            if std::env::var("COCONNECT_WRITE_DOCS").as_deref() == Ok("1") {
                let updated = format!("{}{BEGIN}{wanted}{}", &doc[..begin], &doc[end..]);
                std::fs::write(&path, updated).expect("write docs/backend.md");
            } else {
                panic!("docs/backend.md's JSON table is stale; run COCONNECT_WRITE_DOCS=1 cargo test --lib payload::json\n{table}");
            }
        }
    }
}
