//! An accepted document's receipt as one statement, on PostgreSQL: the receipt row (with its
//! certificate), the remembered signature, the certificate with its first history row, the
//! `document.received` event and both wire forms in the log. The usual way took ten round trips
//! (BEGIN, eight statements, COMMIT) and each costs the server about as much CPU as a short
//! statement's work; one statement outside a transaction is atomic on its own and commits once.
//! SQLite keeps the statement-by-statement way in [`super`] (its statements are not network
//! round trips, and it has no data-modifying `WITH`). That way is also the fallback here.
//!
//! Owns: the fused receipt statement and when it may be used.
//! Must never: write any part when another cannot be written (a unique key already taken by a
//! concurrent copy, a replay or a certificate already held fails the whole statement, and the
//! usual way then decides the answer from what it finds); be used for a document that an
//! accepted cancellation awaits as its replacement (the usual way links the two); be used
//! inside a transaction (a failed statement would abort it).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::super::amendments;
use super::super::certificates::NewCertificate;
use super::super::events::EventKind;
use super::super::messages::{self, Kind};
use super::super::{is_unique_violation, millis, Backend, Store, StoreError};
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
        UNION ALL SELECT $3, $30, $31, $2, $4, $32, $6, $1 FROM c) \
    SELECT (SELECT COUNT(*) FROM c) AS written";

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
    let c = doc.certificate;
    let request_sha256 = messages::sha256_hex(r.request_wire);
    let ack_sha256 = messages::sha256_hex(r.ack_wire);
    let certificate_id = uuid::Uuid::new_v4().to_string();
    let written = sqlx::query(RECEIPT_WITH_DOCUMENT)
        .bind(millis(now))
        .bind(r.partner)
        .bind(r.message_id)
        .bind(r.operation)
        .bind(r.body_sha256)
        .bind(r.ack_wire.to_vec())
        .bind(signature_key)
        .bind(millis(expires_at))
        .bind(certificate_id.as_str())
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
        .bind(request_sha256)
        .bind(r.request_wire.to_vec())
        .bind(amendments::ACCEPTED)
        .bind(messages::direction(true))
        .bind(Kind::Request.as_str())
        .bind(messages::direction(false))
        .bind(Kind::Acknowledgement.as_str())
        .bind(ack_sha256)
        .fetch_one(store.pool())
        .await;
    match written {
        Ok(row) => Ok((row.try_get::<i64, _>("written")? == 1).then_some(certificate_id)),
        Err(e) if is_unique_violation(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
