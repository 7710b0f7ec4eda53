//! What the receiving side remembers: the replay cache of signatures (shared by every instance
//! on the same database), and each received message with the acknowledgement it got, so a retry
//! of the same message ID is answered with the original acknowledgement and stores nothing new.
//! An accepted document's whole receipt can be one round trip instead ([`fused`]).
//!
//! The acknowledgement is stored once, in the message log row its receipt writes in the same
//! transaction (or statement); the receipt's own `ack_wire` is left empty and [`find`] and
//! [`look`] read it from there ([`ack_wire_of_m`]). Receipts written before that (migration
//! 0015) hold a copy.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::certificates::{self, CertificateRecord};
use super::messages::{self, Kind, LogEntry};
use super::{is_unique_violation, millis, Store, StoreError, Tx};
use crate::lifecycle::Direction;

mod fused;
pub use fused::{record_document, record_document_in, FusedDocument};

/// Remembers `signature_key` until `expires_at`. Returns false if it was already there (replay).
pub async fn remember_signature(
    store: &Store,
    signature_key: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    prune_replay_cache(store.pool(), store, now).await?;
    let inserted = sqlx::query(REMEMBER).bind(signature_key).bind(millis(expires_at)).execute(store.pool()).await?;
    Ok(inserted.rows_affected() == 1)
}

/// The acknowledgement of receipt `m` (a row of `inbound_messages`): its own `ack_wire` when it
/// holds a copy (receipts written before the log held the only one), else the message log row
/// its receipt wrote with it: ours, for that partner, message and operation, at the receipt's
/// time, the first such row. Only receipts log acknowledgements we send today, one receipt per
/// partner and message ID; the filters and the order keep the answer right should another
/// path log one under the same message ID (a concurrent copy writes nothing).
fn ack_wire_of_m() -> String {
    format!(
        "CASE WHEN length(m.ack_wire) > 0 THEN m.ack_wire ELSE (\
         SELECT l.wire FROM message_log l WHERE l.message_id = m.message_id AND l.partner = m.partner \
         AND l.direction = '{out}' AND l.kind = '{ack}' AND l.operation = m.operation AND l.at = m.received_at \
         ORDER BY l.id LIMIT 1) END",
        out = messages::direction(false),
        ack = Kind::Acknowledgement.as_str()
    )
}

/// What a receipt stores as its own `ack_wire`: nothing, the log holds it ([`ack_wire_of_m`]).
pub(super) const ACK_IN_LOG: &[u8] = b"";

const REMEMBER: &str =
    "INSERT INTO replay_cache (signature_key, expires_at) VALUES ($1, $2) ON CONFLICT (signature_key) DO NOTHING";

/// Expired entries can no longer be replayed (the timestamp check refuses them): pruned once a
/// minute (an expired entry kept a while longer refuses nothing that is not refused anyway; a
/// delete per message cost as much as the insert).
/// Runs on `db`: inside a transaction that holds the store's one SQLite connection, the pool
/// would wait for itself.
async fn prune_replay_cache<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if store.replay_prune_due(millis(now)) {
        sqlx::query("DELETE FROM replay_cache WHERE expires_at < $1").bind(millis(now)).execute(db).await?;
    }
    Ok(())
}

/// Whether `signature_key` is in the replay cache (a read: the key is remembered with the
/// receipt, see [`Receipt::signature`], or by [`remember_signature`]).
pub async fn signature_seen(store: &Store, signature_key: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 AS seen FROM replay_cache WHERE signature_key = $1")
        .bind(signature_key)
        .fetch_optional(store.readers())
        .await?;
    Ok(row.is_some())
}

/// What the store knows of a verified request before deciding it, in one read: whether its
/// signature is in the replay cache, the receipt already stored under its message ID, and for
/// a document the certificate already received under its reference.
#[derive(Debug, Clone)]
pub struct Known {
    pub signature_seen: bool,
    pub earlier: Option<ReceivedMessage>,
    pub held: Held,
}

/// What [`look`] found of the certificate a received document would be stored as (the
/// partner's, inbound, under the document's reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Not looked for (no document reference was given): the decision reads it itself.
    NotLooked,
    /// None.
    Nothing,
    /// One, with this content digest.
    Content(String),
}

/// [`signature_seen`], [`find`] and, given a document's `reference`, the digest of the
/// certificate [`received_certificate`] would return, together (one statement on the read
/// connections).
pub async fn look(
    store: &Store,
    signature_key: &str,
    partner: &str,
    message_id: &str,
    reference: Option<&str>,
) -> Result<Known, StoreError> {
    #[cfg(any(test, feature = "test-support"))]
    LOOKS.with(|n| n.set(n.get() + 1));
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT (SELECT COUNT(*) FROM replay_cache WHERE signature_key = $1) AS seen, \
             m.body_sha256, m.status, {} AS ack_wire, \
             (SELECT content_sha256 FROM certificates WHERE issuer = $2 AND reference = $4 AND direction = $5) AS held \
             FROM (SELECT 1 AS probe) AS p LEFT JOIN inbound_messages m ON m.partner = $2 AND m.message_id = $3",
            ack_wire_of_m()
        )
    });
    let row = sqlx::query(SQL.as_str())
        .bind(signature_key)
        .bind(partner)
        .bind(message_id)
        .bind(reference)
        .bind(Direction::Inbound.as_str())
        .fetch_one(store.readers())
        .await?;
    let earlier = match row.try_get::<Option<String>, _>("body_sha256")? {
        Some(body_sha256) => {
            Some(ReceivedMessage { body_sha256, status: row.try_get("status")?, ack_wire: row.try_get("ack_wire")? })
        }
        None => None,
    };
    let held = match (reference, row.try_get::<Option<String>, _>("held")?) {
        (None, _) => Held::NotLooked,
        (Some(_), None) => Held::Nothing,
        (Some(_), Some(digest)) => Held::Content(digest),
    };
    Ok(Known { signature_seen: row.try_get::<i64, _>("seen")? > 0, earlier, held })
}

#[cfg(any(test, feature = "test-support"))]
thread_local! {
    /// The [`look`]s made on this thread (tests: which requests were decided without one).
    static LOOKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many [`look`]s were made on this thread (a single-threaded runtime's test runs its
/// in-process gateways' requests on its own thread).
#[cfg(any(test, feature = "test-support"))]
pub fn looks_on_this_thread() -> u64 {
    LOOKS.with(std::cell::Cell::get)
}

/// A message already received from a partner.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub body_sha256: String,
    pub status: String,
    pub ack_wire: Vec<u8>,
}

pub async fn find(store: &Store, partner: &str, message_id: &str) -> Result<Option<ReceivedMessage>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "SELECT m.body_sha256, m.status, {} AS ack_wire FROM inbound_messages m \
             WHERE m.partner = $1 AND m.message_id = $2",
            ack_wire_of_m()
        )
    });
    let row = sqlx::query(SQL.as_str()).bind(partner).bind(message_id).fetch_optional(store.readers()).await?;
    row.map(|r| {
        Ok(ReceivedMessage {
            body_sha256: r.try_get("body_sha256")?,
            status: r.try_get("status")?,
            ack_wire: r.try_get("ack_wire")?,
        })
    })
    .transpose()
}

/// A verified request and the signed acknowledgement we answer it with.
pub struct Receipt<'a> {
    pub partner: &'a str,
    pub message_id: &'a str,
    pub operation: &'a str,
    pub body_sha256: &'a str,
    pub accepted: bool,
    pub request_wire: &'a [u8],
    pub ack_wire: &'a [u8],
    /// The replay-cache key of the request's signature and until when to keep it, remembered
    /// in the receipt's transaction (one commit per message instead of two); `None` when the
    /// caller remembered it already.
    pub signature: Option<(&'a str, DateTime<Utc>)>,
}

/// Outcome of [`record`].
#[cfg(test)]
pub enum Recorded {
    /// Stored now; answer with our acknowledgement.
    New(Option<CertificateRecord>),
    /// The same message ID arrived concurrently and was stored first: answer with its ack.
    AlreadyReceived(ReceivedMessage),
}

/// [`open`] and [`close`] around the insertion of `certificate` (`received`) when the receipt is
/// accepted: what the receive path does for a SendCO, for the store's own tests.
#[cfg(test)]
pub async fn record(
    store: &Store,
    r: &Receipt<'_>,
    certificate: Option<&certificates::NewCertificate<'_>>,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    let mut tx = store.begin().await?;
    match open(&mut tx, store, r, now).await? {
        Opened::New => {}
        Opened::AlreadyReceived => {
            tx.rollback().await?;
            let previous = find(store, r.partner, r.message_id).await?;
            return previous.map(Recorded::AlreadyReceived).ok_or_else(|| StoreError::NotFound("receipt".into()));
        }
        Opened::Replayed => return Err(StoreError::Duplicate("signature (replay)".into())),
    }
    let certificate = match certificate {
        Some(c) if r.accepted => Some(
            certificates::insert(
                &mut tx,
                c,
                crate::lifecycle::Event::ReceivedFromPartner,
                crate::lifecycle::Role::ExportingPartner,
                "received from partner",
                Some(r.message_id),
                now,
            )
            .await?,
        ),
        _ => None,
    };
    close(&mut tx, r, certificate.as_ref().map(|c| c.id.as_str()), now).await?;
    tx.commit().await?;
    Ok(Recorded::New(certificate))
}

/// Outcome of [`open`].
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// The receipt is claimed in this transaction: apply the message's effect in it, then
    /// [`close`].
    New,
    /// The same message ID was stored first (a concurrent copy): roll the transaction back
    /// (on PostgreSQL the failed insert ended it) and answer with the stored acknowledgement
    /// ([`find`]).
    AlreadyReceived,
    /// The same signature was remembered first (a concurrent replay of the same bytes, under
    /// another message ID's receipt or none): roll back; nothing is stored.
    Replayed,
}

/// Starts storing a receipt in `tx`: its row comes before the message's effect, so a concurrent
/// copy of the same message ID (on PostgreSQL, another connection) waits on it and then finds
/// the stored acknowledgement — it never applies the effect a second time, and never fails on
/// it.
pub async fn open(tx: &mut Tx<'_>, store: &Store, r: &Receipt<'_>, now: DateTime<Utc>) -> Result<Opened, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO inbound_messages (partner, message_id, operation, body_sha256, status, certificate_id, ack_wire, received_at) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)",
    )
    .bind(r.partner)
    .bind(r.message_id)
    .bind(r.operation)
    .bind(r.body_sha256)
    .bind(if r.accepted { "accepted" } else { "rejected" })
    .bind(ACK_IN_LOG.to_vec())
    .bind(millis(now))
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => {
            if let Some((key, expires_at)) = r.signature {
                prune_replay_cache(&mut **tx, store, now).await?;
                let remembered = sqlx::query(REMEMBER).bind(key).bind(millis(expires_at)).execute(&mut **tx).await?;
                if remembered.rows_affected() != 1 {
                    return Ok(Opened::Replayed);
                }
            }
            Ok(Opened::New)
        }
        Err(e) if is_unique_violation(&e) => Ok(Opened::AlreadyReceived),
        Err(e) => Err(e.into()),
    }
}

/// Completes in `tx` a receipt [`open`]ed there, after its effect was written: the certificate
/// it concerns and both exact wire forms in the log. The caller commits.
pub async fn close(
    tx: &mut Tx<'_>,
    r: &Receipt<'_>,
    certificate_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if let Some(id) = certificate_id {
        sqlx::query("UPDATE inbound_messages SET certificate_id = $1 WHERE partner = $2 AND message_id = $3")
            .bind(id)
            .bind(r.partner)
            .bind(r.message_id)
            .execute(&mut **tx)
            .await?;
    }
    let entry = |incoming, kind, wire| LogEntry {
        message_id: r.message_id,
        incoming,
        kind,
        partner: r.partner,
        operation: r.operation,
        wire,
    };
    let request = entry(true, Kind::Request, r.request_wire);
    let ack = entry(false, Kind::Acknowledgement, r.ack_wire);
    messages::append_all(tx, &[&request, &ack], now).await
}

/// The inbound certificate with this issuer and reference, if any.
pub async fn received_certificate(
    store: &Store,
    issuer: &str,
    reference: &str,
) -> Result<Option<CertificateRecord>, StoreError> {
    // One statement: no transaction needed, and on the read connections.
    certificates::find_by(store.readers(), issuer, reference, Direction::Inbound).await
}
