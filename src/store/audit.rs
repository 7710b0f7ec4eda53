//! The audit trail (framework 4.4.1: "transparent transactions supported by the security
//! audit"): append-only records of security decisions and operator actions, each carrying the
//! hash of the previous one, so that a changed, inserted or removed record is detected by
//! [`verify`]. Sequence numbers are consecutive: a gap is a removed record.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{millis, Backend, Store, StoreError, Tx};

/// The hash that precedes the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, for whom, from where.
#[derive(Debug, Default, Clone)]
pub struct AuditEvent<'a> {
    /// Stable kind, e.g. `auth.failed`, `security.refused`, `replay.refused`, `operator.action`.
    pub kind: &'a str,
    pub partner: Option<&'a str>,
    pub source: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub reason: &'a str,
}

fn record_hash(seq: i64, at: i64, e: &AuditEvent<'_>, prev: &str) -> String {
    // Length-prefixed fields: no two different records serialise alike.
    let mut material = Vec::new();
    for field in [
        seq.to_string().as_str(),
        at.to_string().as_str(),
        e.kind,
        e.partner.unwrap_or("\u{0}"),
        e.source.unwrap_or("\u{0}"),
        e.message_id.unwrap_or("\u{0}"),
        e.actor.unwrap_or("\u{0}"),
        e.reason,
        prev,
    ] {
        material.extend_from_slice(&(field.len() as u64).to_be_bytes());
        material.extend_from_slice(field.as_bytes());
    }
    super::messages::sha256_hex(&material)
}

/// Appends a record in the caller's transaction (records are serialised: on PostgreSQL by a
/// transaction-scoped advisory lock, on SQLite by its single writer).
pub async fn append_in(
    tx: &mut Tx<'_>,
    store: &Store,
    e: &AuditEvent<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7331001)").execute(&mut **tx).await?;
    }
    let last =
        sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut **tx).await?;
    let (seq, prev) = match last {
        Some(r) => (r.try_get::<i64, _>("seq")? + 1, r.try_get::<String, _>("hash")?),
        None => (1, GENESIS.to_owned()),
    };
    let at = millis(now);
    let hash = record_hash(seq, at, e, &prev);
    sqlx::query("INSERT INTO audit_log (seq, at, kind, partner, source, message_id, actor, reason, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(seq)
        .bind(at)
        .bind(e.kind)
        .bind(e.partner)
        .bind(e.source)
        .bind(e.message_id)
        .bind(e.actor)
        .bind(e.reason)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Appends a record in a transaction of its own.
pub async fn append(store: &Store, e: &AuditEvent<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    append_in(&mut tx, store, e, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Result of checking the chain.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub records: i64,
    /// The first record that does not fit the chain, and why.
    pub broken_at: Option<(i64, String)>,
}

/// Recomputes every record's hash and link, in order.
pub async fn verify(store: &Store) -> Result<Verification, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, at, kind, partner, source, message_id, actor, reason, prev_hash, hash FROM audit_log ORDER BY seq",
    )
    .fetch_all(store.pool())
    .await?;
    let mut prev = GENESIS.to_owned();
    for (expected_seq, r) in (1i64..).zip(rows.iter()) {
        let seq: i64 = r.try_get("seq")?;
        let (partner, source, message_id, actor): (Option<String>, Option<String>, Option<String>, Option<String>) =
            (r.try_get("partner")?, r.try_get("source")?, r.try_get("message_id")?, r.try_get("actor")?);
        let (kind, reason, prev_hash, hash): (String, String, String, String) =
            (r.try_get("kind")?, r.try_get("reason")?, r.try_get("prev_hash")?, r.try_get("hash")?);
        let broken =
            |why: &str| Ok(Verification { records: rows.len() as i64, broken_at: Some((seq, why.to_owned())) });
        if seq != expected_seq {
            return broken(&format!("record {expected_seq} is missing"));
        }
        if prev_hash != prev {
            return broken("does not link to the previous record");
        }
        let e = AuditEvent {
            kind: &kind,
            partner: partner.as_deref(),
            source: source.as_deref(),
            message_id: message_id.as_deref(),
            actor: actor.as_deref(),
            reason: &reason,
        };
        if record_hash(seq, r.try_get("at")?, &e, &prev_hash) != hash {
            return broken("content was altered");
        }
        prev = hash;
    }
    Ok(Verification { records: rows.len() as i64, broken_at: None })
}
