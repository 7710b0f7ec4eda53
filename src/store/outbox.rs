//! The durable outbox. A message is enqueued in the transaction that creates its certificate,
//! claimed by a delivery worker under a lease (so a crashed worker's claim expires and the
//! message is taken again), and keeps its message ID for every attempt.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use super::certificates::{self, NewCertificate};
use super::messages::{self, Kind, LogEntry};
use super::{millis, Backend, Store, StoreError, Tx};
use crate::lifecycle::{Event, State};

/// Outbox row states.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const REJECTED: &str = "rejected";

/// A message to deliver, as claimed by a worker.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub message_id: String,
    pub certificate_id: String,
    pub partner: String,
    pub operation: String,
    pub body_xml: String,
    pub attempts: i64,
}

/// Creates the certificate (state `queued`) and its outbound message in one transaction.
pub async fn submit(store: &Store, cert: &NewCertificate<'_>, operation: &str, message_id: &str, body_xml: &str, now: DateTime<Utc>) -> Result<certificates::CertificateRecord, StoreError> {
    let mut tx = store.begin().await?;
    let record = certificates::insert(&mut tx, cert, Event::Submitted, "submitted by the domestic system", Some(message_id), now).await?;
    enqueue(&mut tx, &record.id, cert.partner, operation, message_id, body_xml, now).await?;
    tx.commit().await?;
    Ok(record)
}

pub async fn enqueue(tx: &mut Tx<'_>, certificate_id: &str, partner: &str, operation: &str, message_id: &str, body_xml: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (message_id, certificate_id, partner, operation, body_xml, state, attempts, next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, $7)",
    )
    .bind(message_id)
    .bind(certificate_id)
    .bind(partner)
    .bind(operation)
    .bind(body_xml)
    .bind(PENDING)
    .bind(millis(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Claims the oldest due pending message whose lease is free or expired, for `lease`.
pub async fn claim_due(store: &Store, owner: &str, now: DateTime<Utc>, lease: Duration) -> Result<Option<OutboxMessage>, StoreError> {
    let pick = match store.backend() {
        Backend::Postgres => "SELECT message_id FROM outbox WHERE state = $1 AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2) ORDER BY created_at, message_id LIMIT 1 FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "SELECT message_id FROM outbox WHERE state = $1 AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2) ORDER BY created_at, message_id LIMIT 1",
    };
    let sql = format!(
        "UPDATE outbox SET lease_owner = $3, lease_until = $4 WHERE message_id = ({pick}) RETURNING message_id, certificate_id, partner, operation, body_xml, attempts"
    );
    let row = sqlx::query(&sql)
        .bind(PENDING)
        .bind(millis(now))
        .bind(owner)
        .bind(millis(now + lease))
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| {
        Ok(OutboxMessage {
            message_id: r.try_get("message_id")?,
            certificate_id: r.try_get("certificate_id")?,
            partner: r.try_get("partner")?,
            operation: r.try_get("operation")?,
            body_xml: r.try_get("body_xml")?,
            attempts: r.try_get("attempts")?,
        })
    })
    .transpose()
}

/// Records that attempt `attempts + 1` is about to put `wire` on the network: the attempt row,
/// the exact bytes in the message log, and the certificate's `transmitted` event — committed
/// before the first byte is sent. Returns the attempt number.
pub async fn begin_attempt(store: &Store, msg: &OutboxMessage, wire: &[u8], now: DateTime<Utc>) -> Result<i64, StoreError> {
    let mut tx = store.begin().await?;
    let attempt = msg.attempts + 1;
    sqlx::query("UPDATE outbox SET attempts = $1, updated_at = $2 WHERE message_id = $3")
        .bind(attempt)
        .bind(millis(now))
        .bind(&msg.message_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO delivery_attempts (message_id, attempt, started_at, wire_sha256) VALUES ($1, $2, $3, $4)")
        .bind(&msg.message_id)
        .bind(attempt)
        .bind(millis(now))
        .bind(messages::sha256_hex(wire))
        .execute(&mut *tx)
        .await?;
    messages::append(&mut tx, &LogEntry { message_id: &msg.message_id, incoming: false, kind: Kind::Request, partner: &msg.partner, operation: &msg.operation, wire }, now).await?;
    certificates::apply(&mut tx, store, &msg.certificate_id, Event::Transmitted, &format!("attempt {attempt}"), Some(&msg.message_id), now).await?;
    tx.commit().await?;
    Ok(attempt)
}

/// A failed attempt: recorded, the lease released, the next attempt scheduled.
pub async fn fail_attempt(store: &Store, msg: &OutboxMessage, attempt: i64, outcome: &str, http_status: Option<u16>, error: &str, next_attempt_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    finish_attempt(&mut tx, &msg.message_id, attempt, outcome, http_status, Some(error), now).await?;
    sqlx::query("UPDATE outbox SET lease_owner = NULL, lease_until = NULL, next_attempt_at = $1, last_error = $2, updated_at = $3 WHERE message_id = $4")
        .bind(millis(next_attempt_at))
        .bind(error)
        .bind(millis(now))
        .bind(&msg.message_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The partner's verified acknowledgement (or a Sender fault): stored with the exact bytes, the
/// outbox row closed and the certificate moved, in one transaction.
pub async fn complete(store: &Store, msg: &OutboxMessage, attempt: i64, response_wire: &[u8], accepted: bool, cause: &str, http_status: u16, now: DateTime<Utc>) -> Result<State, StoreError> {
    let mut tx = store.begin().await?;
    let (outcome, state, event) = if accepted { ("accepted", DELIVERED, Event::AcknowledgedAccepted) } else { ("rejected", REJECTED, Event::AcknowledgedRejected) };
    finish_attempt(&mut tx, &msg.message_id, attempt, outcome, Some(http_status), (!accepted).then_some(cause), now).await?;
    messages::append(&mut tx, &LogEntry { message_id: &msg.message_id, incoming: true, kind: Kind::Acknowledgement, partner: &msg.partner, operation: &msg.operation, wire: response_wire }, now).await?;
    let closed = sqlx::query("UPDATE outbox SET state = $1, lease_owner = NULL, lease_until = NULL, updated_at = $2 WHERE message_id = $3 AND state = $4")
        .bind(state)
        .bind(millis(now))
        .bind(&msg.message_id)
        .bind(PENDING)
        .execute(&mut *tx)
        .await?;
    if closed.rows_affected() != 1 {
        return Err(StoreError::Corrupt(format!("outbox message {} was no longer pending", msg.message_id)));
    }
    let to = certificates::apply(&mut tx, store, &msg.certificate_id, event, cause, Some(&msg.message_id), now).await?;
    tx.commit().await?;
    Ok(to)
}

async fn finish_attempt(tx: &mut Tx<'_>, message_id: &str, attempt: i64, outcome: &str, http_status: Option<u16>, error: Option<&str>, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("UPDATE delivery_attempts SET finished_at = $1, outcome = $2, http_status = $3, error = $4 WHERE message_id = $5 AND attempt = $6")
        .bind(millis(now))
        .bind(outcome)
        .bind(http_status.map(i64::from))
        .bind(error)
        .bind(message_id)
        .bind(attempt)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// SHA-256 (hex) of every message put on the wire for `message_id`: an acknowledgement must
/// carry the digest of one of them (a retry may be answered with the original acknowledgement).
pub async fn sent_digests(store: &Store, message_id: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT wire_sha256 FROM delivery_attempts WHERE message_id = $1").bind(message_id).fetch_all(store.pool()).await?;
    rows.iter().map(|r| Ok(r.try_get("wire_sha256")?)).collect()
}

/// Outbox state and attempt count of a message (tests, operators).
pub async fn status(store: &Store, message_id: &str) -> Result<Option<(String, i64)>, StoreError> {
    let row = sqlx::query("SELECT state, attempts FROM outbox WHERE message_id = $1").bind(message_id).fetch_optional(store.pool()).await?;
    row.map(|r| Ok((r.try_get("state")?, r.try_get("attempts")?))).transpose()
}

/// The message ID of the outbound message of a certificate.
pub async fn message_for_certificate(store: &Store, certificate_id: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT message_id FROM outbox WHERE certificate_id = $1 ORDER BY created_at LIMIT 1").bind(certificate_id).fetch_optional(store.pool()).await?;
    row.map(|r| Ok(r.try_get("message_id")?)).transpose()
}
