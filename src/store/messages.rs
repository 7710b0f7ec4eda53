//! The message log: the exact bytes of every message sent and received (signed form), for
//! non-repudiation. Append-only; written inside the transaction of the business change.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{millis, Store, StoreError, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Acknowledgement,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Acknowledgement => "acknowledgement",
        }
    }
}

pub struct LogEntry<'a> {
    pub message_id: &'a str,
    /// `in` or `out` from this gateway's point of view.
    pub incoming: bool,
    pub kind: Kind,
    pub partner: &'a str,
    pub operation: &'a str,
    pub wire: &'a [u8],
}

/// `message_log.direction` of a message this gateway received (`incoming`) or sent.
pub(super) fn direction(incoming: bool) -> &'static str {
    if incoming {
        "in"
    } else {
        "out"
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    openssl::sha::sha256(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn append(tx: &mut Tx<'_>, e: &LogEntry<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    append_all(tx, &[e], now).await
}

/// [`append`] of several entries in one statement (a request and our answer to it).
pub async fn append_all(tx: &mut Tx<'_>, entries: &[&LogEntry<'_>], now: DateTime<Utc>) -> Result<(), StoreError> {
    const COLUMNS: usize = 8;
    let rows: Vec<String> = (0..entries.len())
        .map(|row| {
            let params: Vec<String> = (1..=COLUMNS).map(|c| format!("${}", row * COLUMNS + c)).collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO message_log (message_id, direction, kind, partner, operation, wire_sha256, wire, at) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for e in entries {
        query = query
            .bind(e.message_id)
            .bind(direction(e.incoming))
            .bind(e.kind.as_str())
            .bind(e.partner)
            .bind(e.operation)
            .bind(sha256_hex(e.wire))
            .bind(e.wire.to_vec())
            .bind(millis(now));
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// Counts log entries (tests, metrics).
pub async fn count(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM message_log").fetch_one(store.pool()).await?.try_get("n")?)
}

/// The exact bytes logged for a message, oldest first (every attempt of a request, then acks).
pub async fn wires(store: &Store, message_id: &str, incoming: bool, kind: Kind) -> Result<Vec<Vec<u8>>, StoreError> {
    let rows =
        sqlx::query("SELECT wire FROM message_log WHERE message_id = $1 AND direction = $2 AND kind = $3 ORDER BY id")
            .bind(message_id)
            .bind(if incoming { "in" } else { "out" })
            .bind(kind.as_str())
            .fetch_all(store.pool())
            .await?;
    rows.iter().map(|r| Ok(r.try_get("wire")?)).collect()
}
