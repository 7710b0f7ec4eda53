//! Claims end to end (framework Annex I A.42–A.48): KR pushes examples/co.xml to ID, and ID's
//! clearance system reconciles declarations against it through ID's domestic API.

use serde_json::{json, Value};

use crate::common::*;

const REFERENCE: &str = "KRIDCEPA-2025-PUS-000417";

fn declaration(number: &str, issuer: &str, reference: &str, items: Value) -> String {
    json!({"declaration_number": number, "issuer": issuer, "reference": reference, "items": items}).to_string()
}

/// A declaration against the example CO, as KR issued it.
fn against_co(number: &str, items: Value) -> String {
    declaration(number, "KR", REFERENCE, items)
}

/// Item 1 of the CO (5840.0 KGM, 6120.5 kg gross), `quantity` KGM.
fn item_one(quantity: f64) -> Value {
    json!([{"co_item": 1, "hs_code": "8708299000", "origin_country": "KR", "quantity": quantity, "quantity_unit": "KGM"}])
}

fn codes(answer: &Value) -> Vec<&str> {
    answer["mismatches"].as_array().expect("mismatches").iter().map(|m| m["code"].as_str().unwrap_or("")).collect()
}

async fn claim(gw: &Gateway, body: &str) -> Value {
    let (status, answer) = gw.api("POST", "/api/v1/claims", body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["claim_id"].is_string(), "{answer}");
    answer
}

async fn claims_end_to_end(db: Db) {
    let mut p = pair("sign-encrypt", db).await;
    let sent = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&sent, "acknowledged").await;
    let (_, found) = p.id.api("GET", &format!("/api/v1/certificates?issuer=KR&reference={REFERENCE}"), "").await;
    assert_eq!(found[0]["state"], "received", "{found}");
    let received = found[0]["id"].as_str().expect("id").to_owned();

    // (a) A declaration that agrees: a 10-digit national code on item 1, item 3 found by its HS
    // subheading alone.
    let a = claim(
        &p.id,
        &against_co(
            "PIB-A",
            json!([
                {"co_item": 1, "hs_code": "8708299010", "origin_country": "KR", "quantity": 1000, "quantity_unit": "KGM",
                 "weight": 1050.5, "invoice_number": "HBI-INV-2025-0311"},
                {"hs_code": "3304990000", "origin_country": "KR", "quantity": 1000, "quantity_unit": "C62"}
            ]),
        ),
    )
    .await;
    assert_eq!(a["status"], "match", "{a}");
    assert_eq!(a["certificate_id"], received.as_str());
    assert_eq!((codes(&a).len(), a["over_utilised"].as_array().map(Vec::len)), (0, Some(0)));

    // (b) Wrong origin and more than certified on item 3 (21000 C62).
    let b = claim(
        &p.id,
        &against_co(
            "PIB-B",
            json!([{"co_item": 3, "hs_code": "330499", "origin_country": "CN", "quantity": 30000, "quantity_unit": "C62"}]),
        ),
    )
    .await;
    assert_eq!(b["status"], "mismatch", "{b}");
    assert_eq!(codes(&b), ["CLAIM-ORIGIN-MISMATCH", "CLAIM-QUANTITY-EXCEEDS"]);
    assert_eq!(b["mismatches"][0]["item"], 1);
    assert_eq!(b["mismatches"][0]["co_item"], 3);
    assert_eq!(b["mismatches"][0]["certified"], "KR");

    // (c) Two declarations that each agree but together (with PIB-A's 1000) use more of item 1
    // than the 5840 KGM certified: the second is flagged.
    let c1 = claim(&p.id, &against_co("PIB-C1", item_one(3000.0))).await;
    assert_eq!((c1["status"].as_str(), c1["over_utilised"].as_array().map(Vec::len)), (Some("match"), Some(0)));
    let c2 = claim(&p.id, &against_co("PIB-C2", item_one(2000.0))).await;
    assert_eq!(c2["status"], "match", "{c2}");
    let over = &c2["over_utilised"];
    assert_eq!(over.as_array().map(Vec::len), Some(1), "{c2}");
    assert_eq!(
        (&over[0]["co_item"], &over[0]["code"], &over[0]["previously_claimed"], &over[0]["this_claim"]),
        (&json!(1), &json!("CLAIM-OVER-UTILISED"), &json!(4000.0), &json!(2000.0))
    );
    // Corrected and posted again, it replaces itself and fits.
    let c2 = claim(&p.id, &against_co("PIB-C2", item_one(800.0))).await;
    assert_eq!(c2["over_utilised"].as_array().map(Vec::len), Some(0), "{c2}");

    // (d) Nothing received with that reference; (e) an issuer that is no partner.
    let d = claim(&p.id, &declaration("PIB-D", "KR", "KR-NEVER-SENT", item_one(1.0))).await;
    assert_eq!((d["status"].as_str(), &d["certificate_id"]), (Some("not_received"), &Value::Null));
    let e = claim(&p.id, &declaration("PIB-E", "JP", REFERENCE, item_one(1.0))).await;
    assert_eq!((e["status"].as_str(), &e["certificate_id"]), (Some("unknown_issuer"), &Value::Null));

    // A declaration that is not acceptable is refused, with where.
    let (status, bad) =
        p.id.api("POST", "/api/v1/claims", &against_co("PIB-F", json!([{"hs_code": "87AB", "origin_country": "KR"}])))
            .await;
    assert_eq!((status, &bad["code"]), (400, &json!("CLAIM-INVALID")), "{bad}");
    assert_eq!(bad["errors"][0]["path"], "items[0].hs_code");

    // The certificate's claims: A, B, C1 and C2 (corrected), and what they used of each item.
    let (status, listed) = p.id.api("GET", &format!("/api/v1/certificates/{received}/claims"), "").await;
    assert_eq!(status, 200, "{listed}");
    let numbers: Vec<_> = listed["claims"]
        .as_array()
        .expect("claims")
        .iter()
        .map(|c| c["declaration_number"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(numbers, ["PIB-A", "PIB-B", "PIB-C1", "PIB-C2"]);
    assert_eq!(listed["utilisation"][0], json!({"co_item": 1, "quantity": 4800.0, "weight": 1050.5}));
    assert_eq!(listed["utilisation"][1], json!({"co_item": 3, "quantity": 31000.0, "weight": 0.0}));
    let (status, _) = p.id.api("GET", "/api/v1/certificates/no-such-id/claims", "").await;
    assert_eq!(status, 404);

    p.kr.stop().await;
    p.id.stop().await;
}

#[tokio::test]
async fn declarations_are_reconciled_against_the_received_co_sqlite() {
    claims_end_to_end(Db::Sqlite).await;
}

#[tokio::test]
async fn declarations_are_reconciled_against_the_received_co_postgres() {
    if coconnect::store::testdb::postgres_or_skip("declarations_are_reconciled_against_the_received_co_postgres", true)
        .is_none()
    {
        return;
    }
    claims_end_to_end(Db::Postgres).await;
}
