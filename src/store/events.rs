//! The event log: what the administration's own systems (the clearance system of the importing
//! side, the issuing system of the exporting side) must learn, one row per event, appended by
//! [`append`] in the transaction of the change that causes it, so that there is no event
//! without its change and no change without its event.
//!
//! Order: an event is numbered (`seq`) only after it has committed, by [`sequence`], one
//! sequencer at a time (PostgreSQL: a transaction-level advisory lock; SQLite has one
//! connection), in insertion order. A reader therefore sees `seq` 1..=head with no gap that
//! could fill later: a back-end that has read up to N never misses an event by asking for
//! `after=N`. Two events about one certificate are numbered in the order of their changes:
//! [`append`] locks the certificate row, so the second change's event is inserted after the
//! first one committed.
//!
//! Owns: `events` (migration 0007). The document content of a `document.received` event is not
//! copied: it stays in `certificates.co_xml` and is read with the event ([`documents`]).
//! Must never: delete an event, change one other than by numbering it and recording its
//! acknowledgement, or know how events are delivered (that is `crate::backend`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{from_millis, millis, Backend, Store, StoreError, Tx};

/// What happened, as the back-end sees it. The names (`as_str`) are the stable wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum EventKind {
    /// A CO or DO arrived from a partner and was accepted (a replacement CO names the
    /// certificate it replaces).
    #[serde(rename = "document.received")]
    DocumentReceived,
    /// A partner notified the cancellation of a certificate we received.
    #[serde(rename = "cancellation.notified")]
    CancellationNotified,
    /// A cancellation was accepted: by the importing partner (our certificate), or by us
    /// (the officer or the gateway, on a certificate we received).
    #[serde(rename = "cancellation.accepted")]
    CancellationAccepted,
    /// A cancellation was declined, likewise.
    #[serde(rename = "cancellation.declined")]
    CancellationDeclined,
    /// The importing partner's origin-treatment decision on our certificate.
    #[serde(rename = "treatment.received")]
    TreatmentReceived,
    /// A partner's verified acknowledgement (accepted, or rejected with its errors) of a
    /// message we sent, or its final refusal.
    #[serde(rename = "acknowledgement.received")]
    AcknowledgementReceived,
    /// A message we sent could not be delivered within its retry schedule (or at all).
    #[serde(rename = "delivery.failed")]
    DeliveryFailed,
    /// A partner looked one of our certificates up (GetCO) and was answered with it.
    #[serde(rename = "lookup.answered")]
    LookupAnswered,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::DocumentReceived,
        EventKind::CancellationNotified,
        EventKind::CancellationAccepted,
        EventKind::CancellationDeclined,
        EventKind::TreatmentReceived,
        EventKind::AcknowledgementReceived,
        EventKind::DeliveryFailed,
        EventKind::LookupAnswered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DocumentReceived => "document.received",
            EventKind::CancellationNotified => "cancellation.notified",
            EventKind::CancellationAccepted => "cancellation.accepted",
            EventKind::CancellationDeclined => "cancellation.declined",
            EventKind::TreatmentReceived => "treatment.received",
            EventKind::AcknowledgementReceived => "acknowledgement.received",
            EventKind::DeliveryFailed => "delivery.failed",
            EventKind::LookupAnswered => "lookup.answered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An event to append.
pub struct NewEvent<'a> {
    pub kind: EventKind,
    pub certificate_id: &'a str,
    /// The message that caused it (the partner's request, or our message acknowledged).
    pub message_id: Option<&'a str>,
    /// Kind-specific facts (a JSON object), documented in docs/backend.md.
    pub detail: serde_json::Value,
}

/// An event as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: i64,
    pub event_id: String,
    pub kind: EventKind,
    pub certificate_id: String,
    pub partner: String,
    pub direction: String,
    pub issuer: String,
    pub reference: String,
    pub document_kind: String,
    pub message_id: Option<String>,
    pub detail: serde_json::Value,
    pub at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
}

/// Appends `event` in the caller's transaction, with the certificate's identity (partner,
/// direction, issuer, reference, kind) copied from its row, which it locks (see the module
/// documentation). Returns the event ID.
pub async fn append(
    tx: &mut Tx<'_>,
    store: &Store,
    event: &NewEvent<'_>,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let event_id = uuid::Uuid::new_v4().to_string();
    // The lock and the copy in one statement (one round trip less per event, on the
    // transaction that holds the writer).
    let sql = match store.backend() {
        Backend::Postgres => APPEND_LOCKED,
        Backend::Sqlite => APPEND,
    };
    let inserted = sqlx::query(sql)
        .bind(&event_id)
        .bind(event.kind.as_str())
        .bind(event.message_id)
        .bind(event.detail.to_string())
        .bind(millis(now))
        .bind(event.certificate_id)
        .execute(&mut **tx)
        .await?;
    if inserted.rows_affected() != 1 {
        return Err(StoreError::NotFound(format!("certificate {}", event.certificate_id)));
    }
    Ok(event_id)
}

/// [`append`]'s statement: the event with the certificate's identity copied from its row.
macro_rules! append_sql {
    () => {
        "INSERT INTO events (event_id, kind, certificate_id, partner, direction, issuer, reference, document_kind, message_id, detail, at) \
         SELECT $1, $2, id, partner, direction, issuer, reference, kind, $3, $4, $5 FROM certificates WHERE id = $6"
    };
}
const APPEND: &str = append_sql!();
/// The same, locking the certificate row (PostgreSQL; SQLite locks the database on write).
const APPEND_LOCKED: &str = concat!(append_sql!(), " FOR UPDATE");

/// Whether an event of `kind` about `certificate_id` caused by `message_id` was appended
/// (a partner's retried request records its event once).
pub async fn recorded(
    tx: &mut Tx<'_>,
    kind: EventKind,
    certificate_id: &str,
    message_id: &str,
) -> Result<bool, StoreError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM events WHERE kind = $1 AND certificate_id = $2 AND message_id = $3 LIMIT 1")
            .bind(kind.as_str())
            .bind(certificate_id)
            .bind(message_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
}

/// PostgreSQL advisory lock key of the sequencer ("coconnect events").
const SEQUENCER_LOCK: i64 = 0x636f_636f_6e65_7631;

/// Most events numbered by one [`sequence`] transaction.
const SEQUENCE_BATCH: i64 = 1000;

/// Numbers the committed events that have no `seq` yet, in insertion order, after the highest
/// number given so far. Returns how many it numbered. Safe to call from any number of tasks
/// and instances at once: one numbers at a time, the others wait and find nothing left.
pub async fn sequence(store: &Store) -> Result<usize, StoreError> {
    // On the read connections: the usual answer, nothing to number, takes no write transaction.
    let pending: Option<i64> = sqlx::query_scalar("SELECT id FROM events WHERE seq IS NULL ORDER BY id LIMIT 1")
        .fetch_optional(store.readers())
        .await?;
    if pending.is_none() {
        return Ok(0);
    }
    let mut tx = store.begin().await?;
    if store.backend() == Backend::Postgres {
        // Held to the commit: the next sequencer reads the highest number after this one's
        // numbers are visible.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SEQUENCER_LOCK).execute(&mut *tx).await?;
    }
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events").fetch_one(&mut *tx).await?;
    // One statement for the batch (it was one per event): head + 1, head + 2, ... in id order.
    let numbered = sqlx::query(
        "UPDATE events SET seq = numbered.seq FROM \
         (SELECT id, $1 + ROW_NUMBER() OVER (ORDER BY id) AS seq FROM events WHERE seq IS NULL ORDER BY id LIMIT $2) AS numbered \
         WHERE events.id = numbered.id",
    )
    .bind(head)
    .bind(SEQUENCE_BATCH)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(usize::try_from(numbered.rows_affected()).unwrap_or(usize::MAX))
}

/// Which events a reader wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only events numbered after this.
    pub after: i64,
    pub limit: i64,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
    /// Empty: every partner.
    pub partners: Vec<String>,
    pub certificate_id: Option<String>,
    /// Only events no back-end has acknowledged yet.
    pub unacknowledged: bool,
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct Page {
    pub events: Vec<Event>,
    /// Where the reader may continue from: the last event's number, or, when the page holds
    /// every matching event up to the head, the head itself (events it did not want are
    /// skipped for good).
    pub next_after: i64,
    /// The highest number given so far.
    pub head: i64,
}

const COLUMNS: &str = "seq, event_id, kind, certificate_id, partner, direction, issuer, reference, document_kind, message_id, detail, at, acked_at, acked_by";

fn record(row: &sqlx::any::AnyRow) -> Result<Event, StoreError> {
    let kind: String = row.try_get("kind")?;
    let detail: String = row.try_get("detail")?;
    Ok(Event {
        seq: row.try_get("seq")?,
        event_id: row.try_get("event_id")?,
        kind: EventKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("unknown event kind {kind:?}")))?,
        certificate_id: row.try_get("certificate_id")?,
        partner: row.try_get("partner")?,
        direction: row.try_get("direction")?,
        issuer: row.try_get("issuer")?,
        reference: row.try_get("reference")?,
        document_kind: row.try_get("document_kind")?,
        message_id: row.try_get("message_id")?,
        detail: serde_json::from_str(&detail).map_err(|e| StoreError::Corrupt(format!("event detail: {e}")))?,
        at: from_millis(row.try_get("at")?),
        acknowledged_at: row.try_get::<Option<i64>, _>("acked_at")?.map(from_millis),
        acknowledged_by: row.try_get("acked_by")?,
    })
}

/// The highest number given so far (0 before the first event).
pub async fn head(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events").fetch_one(store.pool()).await?)
}

/// The `AND ...` conditions of `filter`, their placeholders numbered after the first `first`,
/// and the values to bind to them in order.
fn conditions(filter: &Filter, first: usize) -> (String, Vec<String>) {
    let mut sql = String::new();
    let mut values: Vec<String> = Vec::new();
    let mut any_of = |column: &str, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        let marks: Vec<String> = (0..items.len()).map(|i| format!("${}", first + values.len() + i + 1)).collect();
        sql.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
        values.extend(items);
    };
    any_of("kind", filter.kinds.iter().map(|k| k.as_str().to_owned()).collect());
    any_of("partner", filter.partners.clone());
    any_of("certificate_id", filter.certificate_id.iter().cloned().collect());
    if filter.unacknowledged {
        sql.push_str(" AND acked_at IS NULL");
    }
    (sql, values)
}

/// The numbered events `filter` asks for, in order.
pub async fn list(store: &Store, filter: &Filter) -> Result<Page, StoreError> {
    // The head first: every number up to it is committed (the sequencer commits its numbers
    // at once, in order), so the page below cannot miss one that appears later.
    let head = head(store).await?;
    let (conditions, values) = conditions(filter, 2);
    let sql = format!(
        "SELECT {COLUMNS} FROM events WHERE seq > $1 AND seq <= $2{conditions} ORDER BY seq LIMIT ${}",
        values.len() + 3
    );
    let mut query = sqlx::query(&sql).bind(filter.after).bind(head);
    for v in values {
        query = query.bind(v);
    }
    let limit = filter.limit.max(1);
    let rows = query.bind(limit).fetch_all(store.pool()).await?;
    let events = rows.iter().map(record).collect::<Result<Vec<_>, _>>()?;
    let full = i64::try_from(events.len()).unwrap_or(i64::MAX) >= limit;
    let next_after = match events.last() {
        Some(last) if full => last.seq,
        _ => head.max(filter.after),
    };
    Ok(Page { events, next_after, head })
}

/// How many numbered events after `filter.after` match it (its limit aside): a subscriber's
/// backlog.
pub async fn count(store: &Store, filter: &Filter) -> Result<i64, StoreError> {
    let (conditions, values) = conditions(filter, 1);
    let sql = format!("SELECT COUNT(*) FROM events WHERE seq > $1{conditions}");
    let mut query = sqlx::query_scalar(&sql).bind(filter.after);
    for v in values {
        query = query.bind(v);
    }
    Ok(query.fetch_one(store.pool()).await?)
}

/// The event `event_id`, numbered or not yet.
pub async fn get(store: &Store, event_id: &str) -> Result<Option<Event>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM events WHERE event_id = $1 AND seq IS NOT NULL"))
        .bind(event_id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(record).transpose()
}

/// Records that a back-end processed the event (`actor`: its API token's name). The first
/// acknowledgement stays; a repeated one changes nothing. `None` for an unknown (or not yet
/// numbered) event.
pub async fn acknowledge(
    store: &Store,
    event_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<Event>, StoreError> {
    sequence(store).await?;
    sqlx::query(
        "UPDATE events SET acked_at = $1, acked_by = $2 WHERE event_id = $3 AND seq IS NOT NULL AND acked_at IS NULL",
    )
    .bind(millis(now))
    .bind(actor)
    .bind(event_id)
    .execute(store.pool())
    .await?;
    get(store, event_id).await
}

/// A certificate's numbered events, in order.
pub async fn for_certificate<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    certificate_id: &str,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE certificate_id = $1 AND seq IS NOT NULL ORDER BY seq"
    ))
    .bind(certificate_id)
    .fetch_all(db)
    .await?;
    rows.iter().map(record).collect()
}

/// The content a `document.received` event carries: the certificate's XML as stored, or
/// `None` once retention purged it.
#[derive(Debug, Clone)]
pub struct Document {
    pub sha256: String,
    pub xml: Option<String>,
}

/// The documents of `certificate_ids`, by certificate ID.
pub async fn documents(store: &Store, certificate_ids: &[&str]) -> Result<HashMap<String, Document>, StoreError> {
    let mut out = HashMap::new();
    for chunk in certificate_ids.chunks(100) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, content_sha256, co_xml, purged_at FROM certificates WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(store.pool()).await? {
            let purged: Option<i64> = row.try_get("purged_at")?;
            let xml: String = row.try_get("co_xml")?;
            out.insert(
                row.try_get("id")?,
                Document { sha256: row.try_get("content_sha256")?, xml: purged.is_none().then_some(xml) },
            );
        }
    }
    Ok(out)
}

/// Events not numbered yet (committed, waiting for the sequencer), for `ops`.
pub async fn unsequenced(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE seq IS NULL").fetch_one(store.pool()).await?)
}
