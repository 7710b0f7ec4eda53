//! Origin-based treatment decisions (T3): recorded by our clearance system on a received
//! certificate, or received from the importing partner as SendFeedback on one we issued.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Any, Executor, Row};

use super::{from_millis, millis, StoreError, Tx};

#[derive(Debug, Clone, Serialize)]
pub struct TreatmentDecision {
    pub decision: String,
    pub declaration_reference: Option<String>,
    pub reason_codes: Vec<String>,
    pub remarks: Option<String>,
    pub recorded_by: String,
    pub message_id: Option<String>,
    pub at: DateTime<Utc>,
}

pub struct NewDecision<'a> {
    pub certificate_id: &'a str,
    pub decision: &'a str,
    pub declaration_reference: Option<&'a str>,
    pub reason_codes: &'a [String],
    pub remarks: Option<&'a str>,
    pub recorded_by: &'a str,
    pub message_id: Option<&'a str>,
}

pub async fn insert(tx: &mut Tx<'_>, d: &NewDecision<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    let codes = serde_json::to_string(d.reason_codes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO treatment_decisions (certificate_id, decision, declaration_reference, reason_codes, remarks, recorded_by, message_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(d.certificate_id)
        .bind(d.decision)
        .bind(d.declaration_reference)
        .bind(codes)
        .bind(d.remarks)
        .bind(d.recorded_by)
        .bind(d.message_id)
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether any treatment decision was recorded on the certificate (decides the automatic answer
/// to a cancellation).
pub async fn any_for(tx: &mut Tx<'_>, certificate_id: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM treatment_decisions WHERE certificate_id = $1")
        .bind(certificate_id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

pub async fn list<'e>(
    db: impl Executor<'e, Database = Any>,
    certificate_id: &str,
) -> Result<Vec<TreatmentDecision>, StoreError> {
    let rows = sqlx::query("SELECT decision, declaration_reference, reason_codes, remarks, recorded_by, message_id, at FROM treatment_decisions WHERE certificate_id = $1 ORDER BY id")
        .bind(certificate_id)
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            let codes: String = r.try_get("reason_codes")?;
            Ok(TreatmentDecision {
                decision: r.try_get("decision")?,
                declaration_reference: r.try_get("declaration_reference")?,
                reason_codes: serde_json::from_str(&codes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                remarks: r.try_get("remarks")?,
                recorded_by: r.try_get("recorded_by")?,
                message_id: r.try_get("message_id")?,
                at: from_millis(r.try_get("at")?),
            })
        })
        .collect()
}
