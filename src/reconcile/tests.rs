//! Reconciliation against `examples/co.xml`: item 1 HS 8708299000, 5840.0 KGM tariff quantity,
//! 6120.5 kg gross, invoice HBI-INV-2025-0311; item 2 HS 390761, no tariff quantity, 20160 kg
//! gross; item 3 HS 3304990000, 21000 C62, 1312.75 kg gross, invoice HBI-INV-2025-0312. All of
//! Korean origin.

use std::collections::HashMap;

use super::*;

const CO_XML: &str = include_str!("../../examples/co.xml");

fn co() -> Lpco {
    crate::payload::parse_co(CO_XML).expect("examples/co.xml is a valid CO")
}

fn item(co_item: Option<u32>, hs: &str) -> DeclaredItem {
    DeclaredItem { co_item, hs_code: hs.to_owned(), origin_country: "KR".to_owned(), ..DeclaredItem::default() }
}

fn with_quantity(mut i: DeclaredItem, quantity: f64, unit: &str) -> DeclaredItem {
    i.quantity = Some(quantity);
    i.quantity_unit = Some(unit.to_owned());
    i
}

fn declaration(items: Vec<DeclaredItem>) -> Declaration {
    Declaration {
        declaration_number: "ID-PIB-000123".to_owned(),
        issuer: "KR".to_owned(),
        reference: "KRIDCEPA-2025-PUS-000417".to_owned(),
        items,
    }
}

fn none() -> HashMap<u32, Utilisation> {
    HashMap::new()
}

fn codes(r: &Reconciliation) -> Vec<(&str, &str)> {
    r.mismatches.iter().map(|m| (m.code.as_str(), m.field.as_str())).collect()
}

#[test]
fn a_declaration_that_agrees_matches() {
    let mut first = with_quantity(item(Some(1), "8708299000"), 5840.0, "KGM");
    first.weight = Some(6120.5);
    first.invoice_number = Some("HBI-INV-2025-0311".to_owned());
    let third = with_quantity(item(Some(3), "330499"), 21000.0, "C62");
    let r = reconcile(&co(), &declaration(vec![first, third]), &none());
    assert_eq!(r.outcome, Outcome::Match, "{:?}", r.mismatches);
    assert!(!r.is_over_utilised());
    assert_eq!(
        r.claimed,
        vec![
            ClaimedItem { co_item: 1, quantity: Some(5840.0), weight: Some(6120.5) },
            ClaimedItem { co_item: 3, quantity: Some(21000.0), weight: None },
        ]
    );
}

#[test]
fn a_longer_national_code_matches_on_its_subheading() {
    let r = reconcile(&co(), &declaration(vec![item(Some(1), "8708299010"), item(Some(2), "39076100")]), &none());
    assert_eq!(r.outcome, Outcome::Match, "{:?}", r.mismatches);
}

#[test]
fn another_subheading_is_an_hs_mismatch() {
    let r = reconcile(&co(), &declaration(vec![item(Some(1), "8708300000")]), &none());
    assert_eq!(codes(&r), [(code::HS_MISMATCH, "hs_code")]);
    let m = &r.mismatches[0];
    assert_eq!((m.item, m.co_item), (1, Some(1)));
    assert_eq!((m.declared.as_deref(), m.certified.as_deref()), (Some("8708300000"), Some("8708299000")));
}

#[test]
fn another_origin_is_an_origin_mismatch() {
    let mut i = item(Some(2), "390761");
    i.origin_country = "CN".to_owned();
    let r = reconcile(&co(), &declaration(vec![item(Some(1), "870829"), i]), &none());
    assert_eq!(r.outcome, Outcome::Mismatch);
    assert_eq!(codes(&r), [(code::ORIGIN_MISMATCH, "origin_country")]);
    assert_eq!(r.mismatches[0].item, 2, "the declaration's item number, 1-based");
    assert_eq!(r.mismatches[0].certified.as_deref(), Some("KR"));
}

#[test]
fn more_than_certified_exceeds_quantity_and_weight() {
    let mut i = with_quantity(item(Some(1), "870829"), 5840.5, "KGM");
    i.weight = Some(6200.0);
    let r = reconcile(&co(), &declaration(vec![i]), &none());
    assert_eq!(codes(&r), [(code::QUANTITY_EXCEEDS, "quantity"), (code::WEIGHT_EXCEEDS, "weight")]);
    assert_eq!(r.mismatches[0].certified.as_deref(), Some("5840.0 KGM"));
    assert_eq!(r.mismatches[1].declared.as_deref(), Some("6200 KGM"));
}

#[test]
fn another_invoice_is_an_invoice_mismatch() {
    let mut i = item(Some(3), "330499");
    i.invoice_number = Some("HBI-INV-2025-0311".to_owned());
    let r = reconcile(&co(), &declaration(vec![i]), &none());
    assert_eq!(codes(&r), [(code::INVOICE_MISMATCH, "invoice_number")]);
    assert_eq!(r.mismatches[0].certified.as_deref(), Some("HBI-INV-2025-0312"));
}

#[test]
fn units_must_agree_but_mass_units_convert() {
    let r = reconcile(&co(), &declaration(vec![with_quantity(item(Some(3), "330499"), 5.0, "KGM")]), &none());
    assert_eq!(codes(&r), [(code::UNIT_MISMATCH, "quantity_unit")]);
    assert!(r.claimed[0].quantity.is_none(), "a quantity in another unit is not counted");
    // 5.84 t is the certified 5840 kg, in the certificate's unit.
    let r = reconcile(&co(), &declaration(vec![with_quantity(item(Some(1), "870829"), 5.84, "TNE")]), &none());
    assert_eq!(r.outcome, Outcome::Match, "{:?}", r.mismatches);
    assert!(r.claimed[0].quantity.is_some_and(|q| (q - 5840.0).abs() < 1e-6));
}

#[test]
fn a_co_item_that_does_not_exist_is_unknown() {
    let r = reconcile(&co(), &declaration(vec![item(Some(1), "870829"), item(Some(4), "870829")]), &none());
    assert_eq!(codes(&r), [(code::ITEM_UNKNOWN, "co_item")]);
    assert_eq!((r.mismatches[0].item, r.mismatches[0].co_item), (2, None));
    assert_eq!(r.claimed.len(), 1, "only the item found is counted");
}

#[test]
fn without_co_item_the_unique_subheading_finds_the_item() {
    let mut i = with_quantity(item(None, "3304990090"), 100.0, "C62");
    i.invoice_number = Some("HBI-INV-2025-0312".to_owned());
    let r = reconcile(&co(), &declaration(vec![i]), &none());
    assert_eq!(r.outcome, Outcome::Match, "{:?}", r.mismatches);
    assert_eq!(r.claimed, [ClaimedItem { co_item: 3, quantity: Some(100.0), weight: None }]);
    let r = reconcile(&co(), &declaration(vec![item(None, "610910")]), &none());
    assert_eq!(codes(&r), [(code::ITEM_UNKNOWN, "hs_code")]);
}

#[test]
fn an_ambiguous_subheading_is_unknown_and_names_the_candidates() {
    let xml = CO_XML.replace("<ID>390761</ID>", "<ID>8708291000</ID>");
    let co = crate::payload::parse_co(&xml).expect("valid CO");
    let r = reconcile(&co, &declaration(vec![item(None, "870829")]), &none());
    assert_eq!(codes(&r), [(code::ITEM_UNKNOWN, "hs_code")]);
    assert_eq!(r.mismatches[0].certified.as_deref(), Some("items 1, 2"));
    assert!(r.claimed.is_empty());
    // Naming the item settles it.
    assert_eq!(reconcile(&co, &declaration(vec![item(Some(2), "870829")]), &none()).outcome, Outcome::Match);
}

#[test]
fn two_declarations_that_together_exceed_an_item_are_over_utilised() {
    let co = co();
    let first = reconcile(&co, &declaration(vec![with_quantity(item(Some(1), "870829"), 4000.0, "KGM")]), &none());
    assert!(!first.is_over_utilised());
    let prior = HashMap::from([(1, Utilisation { quantity: 4000.0, weight: 0.0 })]);
    let mut second = with_quantity(item(Some(1), "870829"), 2000.0, "KGM");
    second.weight = Some(100.0);
    let r = reconcile(&co, &declaration(vec![second]), &prior);
    assert_eq!(r.outcome, Outcome::Match, "each declaration agrees with the certificate on its own");
    assert_eq!(
        r.over_utilised,
        [OverUtilisation {
            co_item: 1,
            field: "quantity".to_owned(),
            unit: "KGM".to_owned(),
            certified: 5840.0,
            previously_claimed: 4000.0,
            this_claim: 2000.0,
            code: code::OVER_UTILISED.to_owned(),
        }]
    );
    // Exactly the rest is fine.
    let rest = reconcile(&co, &declaration(vec![with_quantity(item(Some(1), "870829"), 1840.0, "KGM")]), &prior);
    assert!(!rest.is_over_utilised());
}

#[test]
fn items_of_one_declaration_add_up() {
    let items = vec![item(Some(2), "390761"), item(Some(2), "390761")]
        .into_iter()
        .map(|mut i| {
            i.weight = Some(10080.5);
            i
        })
        .collect();
    let r = reconcile(&co(), &declaration(items), &none());
    assert_eq!(r.outcome, Outcome::Match);
    assert_eq!(r.claimed, [ClaimedItem { co_item: 2, quantity: None, weight: Some(20161.0) }]);
    assert_eq!(r.over_utilised.len(), 1);
    assert_eq!((r.over_utilised[0].field.as_str(), r.over_utilised[0].certified), ("weight", 20160.0));
}

#[test]
fn decimal_sums_do_not_exceed_by_rounding() {
    assert!(!exceeds(0.1 + 0.2, 0.3));
    assert!(exceeds(0.31, 0.3));
    assert_eq!(parse_decimal("6120.5"), Some(6120.5));
    for bad in ["", ".", "-1", "1e3", "1.2.3", " 1", "NaN"] {
        assert_eq!(parse_decimal(bad), None, "{bad:?}");
    }
}

#[test]
fn a_cancelled_certificate_is_not_reconciled_and_a_pending_one_is() {
    let mut wrong = item(Some(1), "870829");
    wrong.origin_country = "CN".to_owned();
    let d = declaration(vec![wrong]);
    let cancelled = assess("c-1", "cancelled", &co(), &d, &none());
    assert_eq!(cancelled, ClaimResult::unreconciled(ClaimStatus::Cancelled, Some("c-1")));
    let pending = assess("c-1", "cancellation_pending", &co(), &d, &none());
    assert_eq!(pending.status, ClaimStatus::CancellationPending);
    assert_eq!(pending.mismatches.len(), 1);
    assert_eq!(pending.claimed.len(), 1);
    assert_eq!(assess("c-1", "received", &co(), &d, &none()).status, ClaimStatus::Mismatch);
    assert_eq!(
        assess("c-1", "received", &co(), &declaration(vec![item(Some(1), "870829")]), &none()).status,
        ClaimStatus::Match
    );
}

#[test]
fn statuses_read_back() {
    for s in ClaimStatus::ALL {
        assert_eq!(ClaimStatus::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_value(s).expect("json"), s.as_str());
    }
}

fn paths(body: &str) -> Vec<String> {
    match parse_declaration(body.as_bytes()) {
        Ok(d) => panic!("accepted: {d:?}"),
        Err(errors) => {
            assert!(errors.iter().all(|e| e.code == code::INVALID));
            errors.into_iter().map(|e| e.path).collect()
        }
    }
}

#[test]
fn a_good_declaration_is_read_and_trimmed() {
    let d = parse_declaration(
        br#"{"declaration_number":" ID-1 ","issuer":"KR","reference":"R-1",
            "items":[{"co_item":1,"hs_code":"8708299000","origin_country":"KR","quantity":1.5,"quantity_unit":"KGM",
                      "weight":2,"invoice_number":" INV-1 "},{"hs_code":"390761","origin_country":"KR"}]}"#,
    )
    .expect("valid");
    assert_eq!(d.declaration_number, "ID-1");
    assert_eq!(d.items[0].invoice_number.as_deref(), Some("INV-1"));
    assert_eq!(d.items[1].co_item, None);
}

#[test]
fn every_fault_of_a_declaration_is_reported_with_its_path() {
    assert_eq!(paths(r#"{"issuer":"KR","reference":"R","items":[]}"#), ["declaration_number", "items"]);
    assert_eq!(
        paths(
            r#"{"declaration_number":"D","issuer":"KR","reference":"R","items":[
                {"hs_code":"870829","origin_country":"KR"},
                {"co_item":0,"hs_code":"12AB","origin_country":"XX","quantity":-1},
                {"hs_code":"870829","origin_country":"KR","quantity_unit":"kg","weight":1,"invoice_number":""}]}"#
        ),
        [
            "items[1].co_item",
            "items[1].hs_code",
            "items[1].origin_country",
            "items[1].quantity",
            "items[1].quantity_unit",
            "items[2].quantity_unit",
            "items[2].invoice_number",
        ]
    );
    let long = "X".repeat(MAX_ID_LEN + 1);
    assert_eq!(
        paths(&format!(
            r#"{{"declaration_number":"{long}","issuer":" ","reference":"R","items":[{{"hs_code":"870829","origin_country":"KR"}}]}}"#
        )),
        ["declaration_number", "issuer"]
    );
    // Control characters (NUL would not even reach PostgreSQL) are refused where they are.
    assert_eq!(
        paths(
            r#"{"declaration_number":"D\u0000","issuer":"KR","reference":"R\u000b1","items":[{"hs_code":"870829","origin_country":"KR","invoice_number":"I\n1"}]}"#
        ),
        ["declaration_number", "reference", "items[0].invoice_number"]
    );
}

#[test]
fn a_body_that_is_no_declaration_is_refused_where_it_fails() {
    assert_eq!(paths("not json"), ["/"]);
    assert_eq!(paths(r#"{"declaration_number":"D","issuer":"KR","reference":"R","items":[],"extra":1}"#), ["/"]);
    assert_eq!(
        paths(
            r#"{"declaration_number":"D","issuer":"KR","reference":"R","items":[{"hs_code":"870829","origin_country":"KR"},{"quantity":"many"}]}"#
        ),
        ["items[1]"]
    );
    assert_eq!(
        paths(
            r#"{"declaration_number":"D","issuer":"KR","reference":"R","items":[{"hs_code":"870829","origin_country":"KR","qty":1}]}"#
        ),
        ["items[0]"]
    );
}
