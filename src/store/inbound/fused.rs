//! An accepted document's receipt in one round trip to the store: the receipt row (with its
//! certificate), the remembered signature, the certificate with its first history row, the
//! `document.received` event and both wire forms in the log (the acknowledgement only there, as
//! the usual way stores it: [`super::ACK_IN_LOG`]). The usual way ([`super`]) takes
//! eight statements, each a round trip: on PostgreSQL over the network (with BEGIN and COMMIT,
//! ten, and each costs the server about as much CPU as a short statement's work), on SQLite to
//! the connection's own thread, a wake-up and a thread switch each way (about a tenth of the
//! receiving gateway's CPU under load).
//! - PostgreSQL: [`record_document`], one statement with data-modifying `WITH`, outside any
//!   transaction (one statement is atomic on its own and commits once).
//! - SQLite, which has no data-modifying `WITH`: [`record_document_in`], one script of
//!   statements inside the caller's transaction (the group commit's), between a savepoint and
//!   its release; every row after the certificate's is selected from that row, so none is
//!   written without it.
//!
//! The usual way is the fallback of both.
//!
//! Owns: the fused receipt statement and script, and when they may be used.
//! Must never: write any part when another cannot be written (a unique key already taken by a
//! concurrent copy, a replay or a certificate already held fails the whole statement, or rolls
//! the script back to its savepoint, and the usual way then decides the answer from what it
//! finds); be used for a document that an accepted cancellation awaits as its replacement (the
//! usual way links the two); run the statement inside a transaction (a failed statement would
//! abort it on PostgreSQL), or the script outside one.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::super::amendments;
use super::super::certificates::NewCertificate;
use super::super::events::EventKind;
use super::super::messages::{self, Kind};
use super::super::{is_unique_violation, millis, Backend, Store, StoreError, Tx};
use super::{prune_replay_cache, Receipt};
use crate::lifecycle::State;

/// What an accepted document adds to its receipt: the certificate to insert in `state`, its
/// first history row's `cause`, and the `document.received` event's detail.
pub struct FusedDocument<'a> {
    pub certificate: &'a NewCertificate<'a>,
    pub state: State,
    pub cause: &'a str,
    pub event_detail: &'a serde_json::Value,
}

/// The statement. `g` holds one row unless an accepted cancellation awaits this reference as
/// its replacement; the receipt row (`m`) reads `g`, the replay-cache row (`r`) reads `m`, the
/// certificate (`c`) reads `r`, and its history row, event and log rows read `c`: the writes
/// happen in the order of the usual way (the receipt row first: a concurrent copy of the same
/// message waits on it) and none happens without those before it. The receipt names its
/// certificate before that row exists: the foreign key is checked at the end of the statement.
const RECEIPT_WITH_DOCUMENT: &str = "\
    WITH g AS (\
        SELECT 1 AS go WHERE NOT EXISTS (\
            SELECT 1 FROM amendments WHERE replacement_reference = $11 AND state = $27 AND replacement_id IS NULL)), \
    m AS (\
        INSERT INTO inbound_messages (partner, message_id, operation, body_sha256, status, certificate_id, ack_wire, received_at) \
        SELECT $2, $3, $4, $5, 'accepted', $9, $6, $1 FROM g RETURNING message_id), \
    r AS (\
        INSERT INTO replay_cache (signature_key, expires_at) SELECT $7, $8 FROM m RETURNING signature_key), \
    c AS (\
        INSERT INTO certificates (id, issuer, reference, direction, partner, state, content_sha256, co_xml, created_at, updated_at, kind, replaces, reference_code, verification_flag) \
        SELECT $9, $10, $11, $12, $13, $14, $15, $16, $1, $1, $17, $18, $19, $20 FROM r \
        RETURNING id, partner, direction, issuer, reference, kind), \
    h AS (\
        INSERT INTO certificate_history (certificate_id, from_state, to_state, at, cause, message_id) \
        SELECT id, NULL, $14, $1, $21, $3 FROM c), \
    e AS (\
        INSERT INTO events (event_id, kind, certificate_id, partner, direction, issuer, reference, document_kind, message_id, detail, at) \
        SELECT $22, $23, id, partner, direction, issuer, reference, kind, $3, $24, $1 FROM c), \
    l AS (\
        INSERT INTO message_log (message_id, direction, kind, partner, operation, wire_sha256, wire, at) \
        SELECT $3, $28, $29, $2, $4, $25, $26, $1 FROM c \
        UNION ALL SELECT $3, $30, $31, $2, $4, $32, $33, $1 FROM c) \
    SELECT (SELECT COUNT(*) FROM c) AS written";

/// The same writes as [`RECEIPT_WITH_DOCUMENT`] for SQLite, with the same parameters, in the
/// caller's transaction. The certificate comes first (SQLite checks the foreign keys of the
/// rows that name it at once; its one writer makes the order of the rows moot for concurrent
/// copies); the rows after it are selected from it.
const RECEIPT_WITH_DOCUMENT_SCRIPT: &str = "\
    SAVEPOINT fused_receipt; \
    INSERT INTO certificates (id, issuer, reference, direction, partner, state, content_sha256, co_xml, created_at, updated_at, kind, replaces, reference_code, verification_flag) \
        SELECT $9, $10, $11, $12, $13, $14, $15, $16, $1, $1, $17, $18, $19, $20 WHERE NOT EXISTS (\
            SELECT 1 FROM amendments WHERE replacement_reference = $11 AND state = $27 AND replacement_id IS NULL); \
    INSERT INTO inbound_messages (partner, message_id, operation, body_sha256, status, certificate_id, ack_wire, received_at) \
        SELECT $2, $3, $4, $5, 'accepted', id, $6, $1 FROM certificates WHERE id = $9; \
    INSERT INTO replay_cache (signature_key, expires_at) SELECT $7, $8 FROM certificates WHERE id = $9; \
    INSERT INTO certificate_history (certificate_id, from_state, to_state, at, cause, message_id) \
        SELECT id, NULL, $14, $1, $21, $3 FROM certificates WHERE id = $9; \
    INSERT INTO events (event_id, kind, certificate_id, partner, direction, issuer, reference, document_kind, message_id, detail, at) \
        SELECT $22, $23, id, partner, direction, issuer, reference, kind, $3, $24, $1 FROM certificates WHERE id = $9; \
    INSERT INTO message_log (message_id, direction, kind, partner, operation, wire_sha256, wire, at) \
        SELECT $3, $28, $29, $2, $4, $25, $26, $1 FROM certificates WHERE id = $9 \
        UNION ALL SELECT $3, $30, $31, $2, $4, $32, $33, $1 FROM certificates WHERE id = $9; \
    RELEASE fused_receipt; \
    SELECT COUNT(*) AS written FROM certificates WHERE id = $9";

/// Undoes a script that stopped at a failed statement: its savepoint is still open.
const UNDO_SCRIPT: &str = "ROLLBACK TO fused_receipt; RELEASE fused_receipt";

/// `sql` ([`RECEIPT_WITH_DOCUMENT`] or [`RECEIPT_WITH_DOCUMENT_SCRIPT`]) with its parameters.
fn bound<'q>(
    sql: &'q str,
    r: &'q Receipt<'q>,
    doc: &'q FusedDocument<'q>,
    signature: (&'q str, DateTime<Utc>),
    certificate_id: &'q str,
    now: DateTime<Utc>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let c = doc.certificate;
    sqlx::query(sql)
        .bind(millis(now))
        .bind(r.partner)
        .bind(r.message_id)
        .bind(r.operation)
        .bind(r.body_sha256)
        .bind(super::ACK_IN_LOG.to_vec())
        .bind(signature.0)
        .bind(millis(signature.1))
        .bind(certificate_id)
        .bind(c.issuer)
        .bind(c.reference)
        .bind(c.direction.as_str())
        .bind(c.partner)
        .bind(doc.state.as_str())
        .bind(c.content_sha256)
        .bind(c.co_xml)
        .bind(c.kind.as_str())
        .bind(c.replaces)
        .bind(c.reference_code)
        .bind(c.verification_flag)
        .bind(doc.cause)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(EventKind::DocumentReceived.as_str())
        .bind(doc.event_detail.to_string())
        .bind(messages::sha256_hex(r.request_wire))
        .bind(r.request_wire.to_vec())
        .bind(amendments::ACCEPTED)
        .bind(messages::direction(true))
        .bind(Kind::Request.as_str())
        .bind(messages::direction(false))
        .bind(Kind::Acknowledgement.as_str())
        .bind(messages::sha256_hex(r.ack_wire))
        .bind(r.ack_wire.to_vec())
}

/// Writes receipt `r` of an accepted document with the document's effect, in one statement on
/// PostgreSQL. Returns the certificate's ID if it wrote everything; `None` if it wrote nothing
/// and the caller must take the usual way: on SQLite, for a receipt whose signature the caller already
/// remembered, for a replacement an accepted cancellation awaits, and when a unique key was
/// taken (a concurrent copy, a replay, a certificate already held: the usual way tells which).
pub async fn record_document(
    store: &Store,
    r: &Receipt<'_>,
    doc: &FusedDocument<'_>,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let (Backend::Postgres, Some((signature_key, expires_at)), true) = (store.backend(), r.signature, r.accepted)
    else {
        return Ok(None);
    };
    prune_replay_cache(store.pool(), store, now).await?;
    let certificate_id = uuid::Uuid::new_v4().to_string();
    let signature = (signature_key, expires_at);
    let written = bound(RECEIPT_WITH_DOCUMENT, r, doc, signature, &certificate_id, now).fetch_one(store.pool()).await;
    match written {
        Ok(row) => Ok((row.try_get::<i64, _>("written")? == 1).then_some(certificate_id)),
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes receipt `r` of an accepted document with the document's effect in `tx`, in one
/// script on SQLite. Returns the certificate's ID if it wrote everything; `None` if it wrote
/// nothing (what a failed statement of the script had written is rolled back to the script's
/// savepoint) and the caller must take the usual way in the same transaction: on PostgreSQL,
/// for a receipt whose signature the caller already remembered, for a replacement an accepted
/// cancellation awaits, and when a unique key was taken (the usual way tells which). Any other
/// error leaves the script's savepoint open: the transaction must then be abandoned, as the
/// group commit does with a failed job.
pub async fn record_document_in(
    tx: &mut Tx<'_>,
    store: &Store,
    r: &Receipt<'_>,
    doc: &FusedDocument<'_>,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let (Backend::Sqlite, Some(signature), true) = (store.backend(), r.signature, r.accepted) else {
        return Ok(None);
    };
    prune_replay_cache(&mut **tx, store, now).await?;
    let certificate_id = uuid::Uuid::new_v4().to_string();
    // All rows, not one: the Any driver's fetch_one looks at the first statement's result only.
    let written =
        bound(RECEIPT_WITH_DOCUMENT_SCRIPT, r, doc, signature, &certificate_id, now).fetch_all(&mut **tx).await;
    match written {
        Ok(rows) => match rows.last() {
            Some(row) => Ok((row.try_get::<i64, _>("written")? == 1).then_some(certificate_id)),
            None => Err(StoreError::Corrupt("the receipt script returned no row".into())),
        },
        Err(e) if is_unique_violation(&e) => {
            sqlx::query(UNDO_SCRIPT).execute(&mut **tx).await?;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
