//! Claims (WCO framework Annex I A.42–A.48): every declaration the clearance system reconciled
//! against a received certificate, with the certificate items it claims (`claim_items`), so that
//! what all declarations used of an item can be summed.
//!
//! A declaration is identified by its number, issuer and reference: posting it again (a
//! corrected declaration, A.17) replaces the earlier claim — its items and row are deleted and
//! the claim is recorded anew — so that its goods are counted once. The comparison itself is
//! [`crate::reconcile`]'s; this module runs it inside the transaction that records the claim,
//! with the certificate row locked, so that two claims on one certificate are reconciled one
//! after the other and cannot both pass over-utilisation unnoticed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Any, Executor, Row};

use super::{from_millis, millis, Store, StoreError, Tx};
use crate::payload::Lpco;
use crate::reconcile::{self, ClaimResult, ClaimStatus, ClaimedItem, Declaration, Utilisation};

/// What a claim is recorded against.
pub enum Against<'a> {
    /// Nothing to reconcile with (unknown issuer, nothing received): recorded with this status.
    Nothing { status: ClaimStatus, certificate_id: Option<&'a str> },
    /// The received certificate `id`, whose document is `co`; its state is read (and the row
    /// locked) inside the recording transaction.
    Certificate { id: &'a str, co: &'a Lpco },
}

/// A claim to record.
pub struct NewClaim<'a> {
    pub declaration: &'a Declaration,
    /// The API token's name.
    pub claimed_by: &'a str,
    pub against: Against<'a>,
}

/// A claim as stored: who claimed what, and the answer it got.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimRecord {
    pub id: String,
    pub declaration_number: String,
    pub issuer: String,
    pub reference: String,
    pub claimed_by: String,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub result: ClaimResult,
}

/// Records a claim in one transaction, replacing an earlier claim of the same declaration, and
/// returns it with its reconciliation.
pub async fn record(store: &Store, new: &NewClaim<'_>, now: DateTime<Utc>) -> Result<ClaimRecord, StoreError> {
    // The first two postings of one declaration at the same moment both find nothing to replace,
    // and the second insert breaks the unique key: tried again, it replaces the first.
    let mut attempt = 1;
    loop {
        match record_once(store, new, now).await {
            Err(e) if e.is_unique_violation() && attempt < 3 => attempt += 1,
            other => return other,
        }
    }
}

async fn record_once(store: &Store, new: &NewClaim<'_>, now: DateTime<Utc>) -> Result<ClaimRecord, StoreError> {
    let d = new.declaration;
    let mut tx = store.begin().await?;
    let result = match new.against {
        Against::Nothing { status, certificate_id } => {
            replace_earlier(&mut tx, d).await?;
            ClaimResult::unreconciled(status, certificate_id)
        }
        Against::Certificate { id, co } => {
            // Lock first: a concurrent claim on this certificate waits here until this one is
            // committed, then sums it with the others.
            let state = lock_certificate(&mut tx, store, id).await?;
            replace_earlier(&mut tx, d).await?;
            let prior = prior_utilisation(&mut tx, id, &d.declaration_number).await?;
            reconcile::assess(id, &state, co, d, &prior)
        }
    };
    let record = ClaimRecord {
        id: uuid::Uuid::new_v4().to_string(),
        declaration_number: d.declaration_number.clone(),
        issuer: d.issuer.clone(),
        reference: d.reference.clone(),
        claimed_by: new.claimed_by.to_owned(),
        at: now,
        result,
    };
    insert(&mut tx, &record).await?;
    tx.commit().await?;
    Ok(record)
}

/// The certificate's lifecycle state, its row locked until the transaction ends (PostgreSQL;
/// SQLite serialises writers anyway).
async fn lock_certificate(tx: &mut Tx<'_>, store: &Store, id: &str) -> Result<String, StoreError> {
    let row = sqlx::query(&format!("SELECT state FROM certificates WHERE id = $1{}", store.for_update()))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("certificate {id}")))?;
    Ok(row.try_get("state")?)
}

/// Deletes the earlier claim of this declaration (number, issuer, reference) and its items.
async fn replace_earlier(tx: &mut Tx<'_>, d: &Declaration) -> Result<(), StoreError> {
    let earlier = sqlx::query("SELECT id FROM claims WHERE declaration_number = $1 AND issuer = $2 AND reference = $3")
        .bind(&d.declaration_number)
        .bind(&d.issuer)
        .bind(&d.reference)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = earlier else { return Ok(()) };
    let id: String = row.try_get("id")?;
    sqlx::query("DELETE FROM claim_items WHERE claim_id = $1").bind(&id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM claims WHERE id = $1").bind(&id).execute(&mut **tx).await?;
    tracing::info!(claim = %id, declaration = %d.declaration_number, "claim replaced by a resubmitted declaration");
    Ok(())
}

async fn insert(tx: &mut Tx<'_>, r: &ClaimRecord) -> Result<(), StoreError> {
    let json = serde_json::to_string(&r.result).map_err(|e| StoreError::Corrupt(format!("claim result: {e}")))?;
    sqlx::query("INSERT INTO claims (id, declaration_number, issuer, reference, certificate_id, outcome, result_json, claimed_by, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&r.id)
        .bind(&r.declaration_number)
        .bind(&r.issuer)
        .bind(&r.reference)
        .bind(r.result.certificate_id.as_deref())
        .bind(r.result.status.as_str())
        .bind(json)
        .bind(&r.claimed_by)
        .bind(millis(r.at))
        .execute(&mut **tx)
        .await?;
    // Only a reconciled claim counts anything, and it always names its certificate.
    let Some(certificate_id) = r.result.certificate_id.as_deref() else { return Ok(()) };
    for item in &r.result.claimed {
        insert_item(tx, &r.id, certificate_id, item).await?;
    }
    Ok(())
}

async fn insert_item(
    tx: &mut Tx<'_>,
    claim_id: &str,
    certificate_id: &str,
    item: &ClaimedItem,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO claim_items (claim_id, certificate_id, co_item, quantity, weight) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(claim_id)
    .bind(certificate_id)
    .bind(i64::from(item.co_item))
    .bind(item.quantity)
    .bind(item.weight)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const SUM_BY_ITEM: &str = "SELECT i.co_item, SUM(i.quantity) AS quantity, SUM(i.weight) AS weight FROM claim_items i JOIN claims c ON c.id = i.claim_id WHERE i.certificate_id = $1";

/// What the claims on `certificate_id` other than declaration `excluding_declaration` used of
/// each CO item, in the caller's transaction.
pub async fn prior_utilisation(
    tx: &mut Tx<'_>,
    certificate_id: &str,
    excluding_declaration: &str,
) -> Result<HashMap<u32, Utilisation>, StoreError> {
    let rows = sqlx::query(&format!("{SUM_BY_ITEM} AND c.declaration_number <> $2 GROUP BY i.co_item"))
        .bind(certificate_id)
        .bind(excluding_declaration)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(utilisation).collect()
}

/// What all claims on `certificate_id` used of each CO item, in CO item order.
pub async fn utilisation_of<'e>(
    db: impl Executor<'e, Database = Any>,
    certificate_id: &str,
) -> Result<Vec<(u32, Utilisation)>, StoreError> {
    let rows = sqlx::query(&format!("{SUM_BY_ITEM} GROUP BY i.co_item ORDER BY i.co_item"))
        .bind(certificate_id)
        .fetch_all(db)
        .await?;
    rows.iter().map(utilisation).collect()
}

fn utilisation(r: &sqlx::any::AnyRow) -> Result<(u32, Utilisation), StoreError> {
    let co_item: i64 = r.try_get("co_item")?;
    let co_item = u32::try_from(co_item).map_err(|_| StoreError::Corrupt(format!("claimed CO item {co_item}")))?;
    // SUM of nothing but NULLs is NULL: that amount was never claimed.
    let quantity = r.try_get::<Option<f64>, _>("quantity")?.unwrap_or(0.0);
    let weight = r.try_get::<Option<f64>, _>("weight")?.unwrap_or(0.0);
    Ok((co_item, Utilisation { quantity, weight }))
}

/// The claims on a certificate, oldest first (claims of the same millisecond by declaration
/// number, so that the order is stable).
pub async fn list_for_certificate<'e>(
    db: impl Executor<'e, Database = Any>,
    certificate_id: &str,
) -> Result<Vec<ClaimRecord>, StoreError> {
    let rows = sqlx::query("SELECT id, declaration_number, issuer, reference, outcome, result_json, claimed_by, at FROM claims WHERE certificate_id = $1 ORDER BY at, declaration_number")
        .bind(certificate_id)
        .fetch_all(db)
        .await?;
    rows.iter().map(claim).collect()
}

fn claim(r: &sqlx::any::AnyRow) -> Result<ClaimRecord, StoreError> {
    let id: String = r.try_get("id")?;
    let json: String = r.try_get("result_json")?;
    let result: ClaimResult =
        serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("result of claim {id}: {e}")))?;
    let outcome: String = r.try_get("outcome")?;
    if outcome != result.status.as_str() {
        return Err(StoreError::Corrupt(format!("claim {id}: outcome {outcome:?} but result {:?}", result.status)));
    }
    Ok(ClaimRecord {
        id,
        declaration_number: r.try_get("declaration_number")?,
        issuer: r.try_get("issuer")?,
        reference: r.try_get("reference")?,
        claimed_by: r.try_get("claimed_by")?,
        at: from_millis(r.try_get("at")?),
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::DeclaredItem;
    use crate::store::testdb::fresh_stores;

    const CO_XML: &str = include_str!("../../examples/co.xml");
    const REFERENCE: &str = "KRIDCEPA-2025-PUS-000417";

    async fn stores() -> (tempfile::TempDir, Vec<Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = fresh_stores(dir.path()).await.expect("stores");
        (dir, stores)
    }

    /// A received certificate in `state`, written directly: these tests are about claims, not
    /// about how a certificate gets there.
    async fn certificate(store: &Store, reference: &str, state: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO certificates (id, issuer, reference, direction, partner, state, content_sha256, co_xml, created_at, updated_at) VALUES ($1, 'KR', $2, 'inbound', 'KR', $3, 'abc', $4, 0, 0)")
            .bind(&id)
            .bind(reference)
            .bind(state)
            .bind(CO_XML)
            .execute(store.pool())
            .await
            .expect("certificate");
        id
    }

    fn co() -> Lpco {
        crate::payload::parse_co(CO_XML).expect("valid CO")
    }

    /// Declaration `number` claiming `quantity` KGM of CO item 1.
    fn declaration(number: &str, quantity: f64) -> Declaration {
        Declaration {
            declaration_number: number.to_owned(),
            issuer: "KR".to_owned(),
            reference: REFERENCE.to_owned(),
            items: vec![DeclaredItem {
                co_item: Some(1),
                hs_code: "8708299000".to_owned(),
                origin_country: "KR".to_owned(),
                quantity: Some(quantity),
                quantity_unit: Some("KGM".to_owned()),
                weight: Some(quantity),
                ..DeclaredItem::default()
            }],
        }
    }

    async fn claim_on(store: &Store, certificate: &str, d: &Declaration) -> ClaimRecord {
        let co = co();
        let new = NewClaim {
            declaration: d,
            claimed_by: "clearance",
            against: Against::Certificate { id: certificate, co: &co },
        };
        record(store, &new, Utc::now()).await.expect("record")
    }

    async fn prior(store: &Store, certificate: &str, excluding: &str) -> HashMap<u32, Utilisation> {
        let mut tx = store.begin().await.expect("begin");
        prior_utilisation(&mut tx, certificate, excluding).await.expect("prior")
    }

    async fn count(store: &Store, table: &str) -> i64 {
        let row =
            sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}")).fetch_one(store.pool()).await.expect("count");
        row.try_get("n").expect("n")
    }

    #[tokio::test]
    async fn claims_add_up_and_the_one_that_goes_over_is_flagged() {
        let (_d, stores) = stores().await;
        for store in stores {
            let cert = certificate(&store, REFERENCE, "received").await;
            let first = claim_on(&store, &cert, &declaration("PIB-1", 4000.0)).await;
            assert_eq!(first.result.status, ClaimStatus::Match);
            assert!(first.result.over_utilised.is_empty());
            let second = claim_on(&store, &cert, &declaration("PIB-2", 2000.5)).await;
            assert_eq!(second.result.status, ClaimStatus::Match, "each agrees with the CO on its own");
            let over: Vec<_> =
                second.result.over_utilised.iter().map(|o| (o.field.as_str(), o.previously_claimed)).collect();
            assert_eq!(over, [("quantity", 4000.0)], "the weight, 6000.5 of 6120.5 kg, is still within");
            assert_eq!(prior(&store, &cert, "PIB-2").await[&1], Utilisation { quantity: 4000.0, weight: 4000.0 });
            assert_eq!(
                utilisation_of(store.pool(), &cert).await.expect("totals"),
                [(1, Utilisation { quantity: 6000.5, weight: 6000.5 })]
            );
            let listed = list_for_certificate(store.pool(), &cert).await.expect("list");
            let numbers: Vec<_> = listed.iter().map(|c| c.declaration_number.as_str()).collect();
            assert_eq!(numbers, ["PIB-1", "PIB-2"]);
            assert_eq!(listed[1].result, second.result, "the result reads back as recorded");
            assert_eq!(listed[1].claimed_by, "clearance");
        }
    }

    #[tokio::test]
    async fn a_resubmitted_declaration_replaces_its_earlier_claim() {
        let (_d, stores) = stores().await;
        for store in stores {
            let cert = certificate(&store, REFERENCE, "received").await;
            let first = claim_on(&store, &cert, &declaration("PIB-1", 5000.0)).await;
            let again = claim_on(&store, &cert, &declaration("PIB-1", 3000.0)).await;
            assert_ne!(first.id, again.id);
            assert!(again.result.over_utilised.is_empty(), "its own earlier claim is not counted against it");
            assert_eq!((count(&store, "claims").await, count(&store, "claim_items").await), (1, 1));
            assert_eq!(prior(&store, &cert, "PIB-OTHER").await[&1].quantity, 3000.0, "counted once, as corrected");
            // Another declaration sees the corrected amount only.
            let other = claim_on(&store, &cert, &declaration("PIB-2", 2840.0)).await;
            assert!(other.result.over_utilised.is_empty(), "{:?}", other.result.over_utilised);
        }
    }

    #[tokio::test]
    async fn a_cancelled_certificate_counts_nothing_and_a_pending_one_is_reconciled() {
        let (_d, stores) = stores().await;
        for store in stores {
            let cancelled = certificate(&store, "CANCELLED-1", "cancelled").await;
            let c = claim_on(&store, &cancelled, &declaration("PIB-1", 9000.0)).await;
            assert_eq!(c.result.status, ClaimStatus::Cancelled);
            assert!(c.result.mismatches.is_empty() && c.result.claimed.is_empty());
            assert!(utilisation_of(store.pool(), &cancelled).await.expect("totals").is_empty());
            assert_eq!(
                list_for_certificate(store.pool(), &cancelled).await.expect("list").len(),
                1,
                "recorded all the same"
            );

            let pending = certificate(&store, "PENDING-1", "cancellation_pending").await;
            let mut d = declaration("PIB-2", 9000.0);
            d.reference = "PENDING-1".to_owned();
            let p = claim_on(&store, &pending, &d).await;
            assert_eq!(p.result.status, ClaimStatus::CancellationPending);
            let codes: Vec<_> = p.result.mismatches.iter().map(|m| m.code.as_str()).collect();
            assert_eq!(codes, [reconcile::code::QUANTITY_EXCEEDS, reconcile::code::WEIGHT_EXCEEDS]);
            assert_eq!(utilisation_of(store.pool(), &pending).await.expect("totals").len(), 1);
        }
    }

    #[tokio::test]
    async fn a_claim_without_certificate_is_recorded_and_replaced_like_any_other() {
        let (_d, stores) = stores().await;
        for store in stores {
            let d = declaration("PIB-9", 1.0);
            for status in [ClaimStatus::NotReceived, ClaimStatus::UnknownIssuer] {
                let new = NewClaim {
                    declaration: &d,
                    claimed_by: "clearance",
                    against: Against::Nothing { status, certificate_id: None },
                };
                let r = record(&store, &new, Utc::now()).await.expect("record");
                assert_eq!((r.result.status, r.result.certificate_id), (status, None));
            }
            assert_eq!((count(&store, "claims").await, count(&store, "claim_items").await), (1, 0));
        }
    }

    #[tokio::test]
    async fn concurrent_claims_on_one_certificate_cannot_both_pass() {
        let (_d, stores) = stores().await;
        for store in stores {
            let cert = certificate(&store, REFERENCE, "received").await;
            let (a, b) = (declaration("PIB-A", 3000.0), declaration("PIB-B", 3000.0));
            let (ra, rb) = tokio::join!(claim_on(&store, &cert, &a), claim_on(&store, &cert, &b));
            let flagged = [&ra, &rb].iter().filter(|r| !r.result.over_utilised.is_empty()).count();
            assert_eq!(flagged, 1, "3000 + 3000 of 5840: exactly the later one is over");
        }
    }
}
