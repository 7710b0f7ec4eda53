//! Amendments: one cancellation notification and its answer (T2). On the exporting side the row
//! also holds the replacement CO until the importer accepts; on the importing side it records
//! the notification and the decision. Written only inside the flows' transactions.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Any, Executor, Row};

use super::{from_millis, millis, StoreError, Tx};

pub const REQUESTED: &str = "requested";
pub const ACCEPTED: &str = "accepted";
pub const DECLINED: &str = "declined";
/// The notification could not be delivered: the amendment ended without an answer.
pub const UNDELIVERED: &str = "undelivered";

/// An amendment as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Amendment {
    pub id: String,
    pub certificate_id: String,
    pub state: String,
    pub reason: String,
    pub replacement_reference: Option<String>,
    #[serde(skip)]
    pub replacement_xml: Option<String>,
    pub replacement_id: Option<String>,
    pub decision_reason: Option<String>,
    pub decided_by: Option<String>,
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

pub struct NewAmendment<'a> {
    pub certificate_id: &'a str,
    pub reason: &'a str,
    pub replacement_reference: Option<&'a str>,
    pub replacement_xml: Option<&'a str>,
    /// The SendCancellation message that carries (or carried) it.
    pub message_id: &'a str,
}

pub async fn insert(tx: &mut Tx<'_>, new: &NewAmendment<'_>, now: DateTime<Utc>) -> Result<String, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO amendments (id, certificate_id, state, reason, replacement_reference, replacement_xml, message_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&id)
        .bind(new.certificate_id)
        .bind(REQUESTED)
        .bind(new.reason)
        .bind(new.replacement_reference)
        .bind(new.replacement_xml)
        .bind(new.message_id)
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

const COLUMNS: &str = "id, certificate_id, state, reason, replacement_reference, replacement_xml, replacement_id, decision_reason, decided_by, message_id, created_at, decided_at";

fn amendment(r: &sqlx::any::AnyRow) -> Result<Amendment, StoreError> {
    Ok(Amendment {
        id: r.try_get("id")?,
        certificate_id: r.try_get("certificate_id")?,
        state: r.try_get("state")?,
        reason: r.try_get("reason")?,
        replacement_reference: r.try_get("replacement_reference")?,
        replacement_xml: r.try_get("replacement_xml")?,
        replacement_id: r.try_get("replacement_id")?,
        decision_reason: r.try_get("decision_reason")?,
        decided_by: r.try_get("decided_by")?,
        message_id: r.try_get("message_id")?,
        created_at: from_millis(r.try_get("created_at")?),
        decided_at: r.try_get::<Option<i64>, _>("decided_at")?.map(from_millis),
    })
}

/// The open (`requested`) amendment of a certificate, if any.
pub async fn open_for(tx: &mut Tx<'_>, certificate_id: &str) -> Result<Option<Amendment>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM amendments WHERE certificate_id = $1 AND state = $2 ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(certificate_id)
    .bind(REQUESTED)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(amendment).transpose()
}

/// Records the answer to an amendment that is open, or was given up as undelivered (a late
/// answer). `Corrupt` if it was already answered.
pub async fn decide(
    tx: &mut Tx<'_>,
    id: &str,
    state: &str,
    reason: Option<&str>,
    decided_by: &str,
    replacement_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let done = sqlx::query("UPDATE amendments SET state = $1, decision_reason = $2, decided_by = $3, replacement_id = $4, decided_at = $5 WHERE id = $6 AND state IN ($7, $8)")
        .bind(state)
        .bind(reason)
        .bind(decided_by)
        .bind(replacement_id)
        .bind(millis(now))
        .bind(id)
        .bind(REQUESTED)
        .bind(UNDELIVERED)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Corrupt(format!("amendment {id} was already answered")));
    }
    Ok(())
}

/// The cancellation notification `message_id` about certificate `certificate_id` was not
/// delivered: its amendment ends, if it was still open. Returns whether it was.
pub(crate) async fn close_undelivered(
    tx: &mut Tx<'_>,
    certificate_id: &str,
    message_id: &str,
    cause: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query("UPDATE amendments SET state = $1, decision_reason = $2, decided_by = 'gateway', decided_at = $3 WHERE certificate_id = $4 AND message_id = $5 AND state = $6")
        .bind(UNDELIVERED)
        .bind(cause)
        .bind(millis(now))
        .bind(certificate_id)
        .bind(message_id)
        .bind(REQUESTED)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the certificate that re-issued an accepted amendment's replacement.
pub async fn set_replacement(tx: &mut Tx<'_>, id: &str, replacement_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE amendments SET replacement_id = $1 WHERE id = $2")
        .bind(replacement_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The amendment of `certificate_id` whose notification was `message_id`.
pub async fn by_message(
    tx: &mut Tx<'_>,
    certificate_id: &str,
    message_id: &str,
) -> Result<Option<Amendment>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM amendments WHERE certificate_id = $1 AND message_id = $2"))
        .bind(certificate_id)
        .bind(message_id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(amendment).transpose()
}

/// Whether an open outbound amendment (any certificate) reserves `reference` for its
/// replacement.
pub async fn replacement_reserved(tx: &mut Tx<'_>, reference: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM amendments WHERE replacement_reference = $1 AND state = $2 AND replacement_xml IS NOT NULL")
        .bind(reference)
        .bind(REQUESTED)
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

/// Closes the other open amendments of a certificate that an accepted (late) answer cancelled.
pub async fn close_superseded(
    tx: &mut Tx<'_>,
    certificate_id: &str,
    except: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE amendments SET state = $1, decision_reason = 'the certificate was cancelled by the answer to an earlier notification', decided_by = 'gateway', decided_at = $2 WHERE certificate_id = $3 AND id <> $4 AND state = $5")
        .bind(UNDELIVERED)
        .bind(millis(now))
        .bind(certificate_id)
        .bind(except)
        .bind(REQUESTED)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Links a replacement that arrived from `partner` to the certificate its accepted cancellation
/// announced it for (the oldest such amendment not linked yet). Returns the cancelled
/// certificate, if any.
pub async fn link_replacement(
    tx: &mut Tx<'_>,
    partner: &str,
    replacement_reference: &str,
    replacement_id: &str,
) -> Result<Option<String>, StoreError> {
    // From the amendments (index on the reference; usually none), then each one's certificate
    // by its key: as a join, a plan made while the tables were empty scanned every inbound
    // certificate of the partner for each CO received.
    let candidates = sqlx::query("SELECT id, certificate_id FROM amendments WHERE replacement_reference = $1 AND state = $2 AND replacement_id IS NULL ORDER BY created_at, id")
        .bind(replacement_reference)
        .bind(ACCEPTED)
        .fetch_all(&mut **tx)
        .await?;
    let mut found = None;
    for row in &candidates {
        let (amendment_id, original): (String, String) = (row.try_get("id")?, row.try_get("certificate_id")?);
        let from_partner: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM certificates WHERE id = $1 AND partner = $2 AND direction = 'inbound'")
                .bind(&original)
                .bind(partner)
                .fetch_optional(&mut **tx)
                .await?;
        if from_partner.is_some() {
            found = Some((amendment_id, original));
            break;
        }
    }
    let Some((amendment_id, original)) = found else { return Ok(None) };
    sqlx::query("UPDATE amendments SET replacement_id = $1 WHERE id = $2")
        .bind(replacement_id)
        .bind(&amendment_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE certificates SET replaces = $1 WHERE id = $2")
        .bind(&original)
        .bind(replacement_id)
        .execute(&mut **tx)
        .await?;
    Ok(Some(original))
}

/// Every amendment of a certificate, oldest first.
pub async fn list<'e>(
    db: impl Executor<'e, Database = Any>,
    certificate_id: &str,
) -> Result<Vec<Amendment>, StoreError> {
    let rows =
        sqlx::query(&format!("SELECT {COLUMNS} FROM amendments WHERE certificate_id = $1 ORDER BY created_at, id"))
            .bind(certificate_id)
            .fetch_all(db)
            .await?;
    rows.iter().map(amendment).collect()
}
