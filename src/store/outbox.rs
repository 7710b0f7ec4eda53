//! The durable outbox. A message is enqueued in the transaction that creates its certificate,
//! claimed by a delivery worker under a lease (so a crashed worker's claim expires and the
//! message is taken again), and keeps its message ID for every attempt.
//!
//! Claiming respects, in one query that takes one message or a batch: the partner not paused,
//! no older pending message about the same certificate (messages about one CO never overtake
//! each other), and, while the partner is down, a single message in flight for it (one probe at
//! a time: the probe is recorded in the partner's status row, and a message claimed before the
//! partner went down cannot begin its attempt after it). On PostgreSQL rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so instances share the work, and an attempt's and an answer's
//! writes are one statement each where they can be ([`fused`]). A submission may lease its own
//! message where a claim would take it now and first ([`submit_leased`]).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use super::alerts::{self, NewAlert};
use super::certificates::{self, NewCertificate};
use super::events::{self, EventKind, NewEvent};
use super::messages::{self, Kind, LogEntry};
use super::{from_millis, millis, Store, StoreError, Tx};
use crate::lifecycle::{DeliveryOutcome, Event, Role, State};

mod fused;

use fused::{FusedCompletion, FusedStep};

/// Outbox row states.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const REJECTED: &str = "rejected";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";

/// A message to deliver, as claimed by a worker.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub message_id: String,
    pub certificate_id: String,
    pub partner: String,
    pub operation: String,
    pub body_xml: String,
    pub attempts: i64,
    /// The start of the current retry schedule (its marks count from here); an operator retry
    /// clears it, so the next attempt starts a fresh schedule.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// Who claimed it: every later write about this attempt is conditional on still holding
    /// the claim.
    pub lease_owner: String,
    /// Its certificate as of the claim or the worker's last step: saves each step's
    /// certificate transition a read ([`certificates::Seen`]).
    pub certificate_seen: Option<certificates::Seen>,
    /// Its partner was marked down when it was claimed: it is the partner's probe.
    pub partner_seen_down: bool,
}

/// Creates the certificate (state `queued`) and its outbound message in one transaction.
pub async fn submit(
    store: &Store,
    cert: &NewCertificate<'_>,
    operation: &str,
    message_id: &str,
    body_xml: &str,
    now: DateTime<Utc>,
) -> Result<certificates::CertificateRecord, StoreError> {
    Ok(submit_leased(store, cert, operation, message_id, body_xml, now, None).await?.0)
}

/// A lease a submission takes on its own message for an idle worker of the submitting process
/// ([`submit_leased`]).
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub owner: &'a str,
    pub until: DateTime<Utc>,
}

/// [`submit`], with the new message leased to `lease.owner` in the same transaction when a
/// claim would take it at once and before anything else: its partner is neither down nor
/// paused, and no other message is due and unleased (so the oldest-first order and the
/// one-probe rule hold as if it had been claimed). Its worker then sends it without a claim
/// transaction (three round trips and a commit on PostgreSQL, a write transaction on SQLite's
/// one writer) between the submission and the attempt. On PostgreSQL the submission then also
/// waits for the claims' lock, as a claim does: a partner marked down meanwhile
/// (`partners::mark_down`, under that lock) either counts this lease among the requests in
/// flight or is seen by this submission, which then leases nothing. Returns the message as a
/// claim would have, when leased.
pub async fn submit_leased(
    store: &Store,
    cert: &NewCertificate<'_>,
    operation: &str,
    message_id: &str,
    body_xml: &str,
    now: DateTime<Utc>,
    lease: Option<Lease<'_>>,
) -> Result<(certificates::CertificateRecord, Option<OutboxMessage>), StoreError> {
    const CAUSE: &str = "submitted by the domestic system";
    let mut tx = store.begin().await?;
    // Its own statement: a lock taken inside the statement that reads would leave that
    // statement reading from before what committed while it waited. A submission that may
    // lease also takes the claims' lock there.
    let claims_lock = lease.map(|_| CLAIM_LOCK);
    certificates::lock_reference_and(&mut tx, store, cert.issuer, cert.reference, claims_lock).await?;
    let (record, leased) = match store.backend() {
        super::Backend::Postgres => {
            fused::submit(&mut tx, cert, operation, message_id, body_xml, CAUSE, now, lease).await?
        }
        super::Backend::Sqlite => {
            if super::amendments::replacement_reserved(&mut tx, cert.reference).await? {
                return Err(reserved(cert));
            }
            let lease = match lease {
                Some(lease) if may_lease(&mut tx, cert.partner, now).await? => Some(lease),
                _ => None,
            };
            let record =
                certificates::insert(&mut tx, cert, Event::Submitted, Role::Issuer, CAUSE, Some(message_id), now)
                    .await?;
            insert(&mut tx, &record.id, cert.partner, operation, message_id, body_xml, now, lease).await?;
            (record, lease.is_some())
        }
    };
    tx.commit().await?;
    let leased = match lease {
        Some(lease) if leased => Some(OutboxMessage {
            message_id: message_id.to_owned(),
            certificate_id: record.id.clone(),
            partner: cert.partner.to_owned(),
            operation: operation.to_owned(),
            body_xml: body_xml.to_owned(),
            attempts: 0,
            first_attempt_at: None,
            lease_owner: lease.owner.to_owned(),
            certificate_seen: Some(certificates::Seen { direction: record.direction, state: record.state }),
            partner_seen_down: false,
        }),
        _ => None,
    };
    Ok((record, leased))
}

/// When a submission may lease its message ([`submit_leased`]): `{partner}` neither down nor
/// paused, and nothing due and unleased at `{now}` for a partner a claim may take from (SQL
/// expressions of the caller's statement). Found as the claims find it: one index probe a
/// partner, however large a backlog no claim can take now.
fn may_lease_sql(partner: &str, now: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM partner_status p WHERE p.party = {partner} \
                     AND (p.down_since IS NOT NULL OR p.paused_since IS NOT NULL)) \
         AND NOT EXISTS (SELECT 1 FROM ({}) d)",
        PARTNERS_DUE_SQL.replace("$1", now)
    )
}

/// [`may_lease_sql`] in `tx`, for `partner` at `now`.
async fn may_lease(tx: &mut Tx<'_>, partner: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("SELECT 1 WHERE {}", may_lease_sql("$2", "$1")));
    Ok(sqlx::query(&SQL).bind(millis(now)).bind(partner).fetch_optional(&mut **tx).await?.is_some())
}

/// The refusal of a certificate whose reference an open amendment reserves for its replacement
/// until the importer answers.
fn reserved(cert: &NewCertificate<'_>) -> StoreError {
    StoreError::Duplicate(format!(
        "certificate {} {} (the replacement of an open amendment)",
        cert.issuer, cert.reference
    ))
}

/// [`submit`] inside the caller's transaction (a replacement CO is submitted together with the
/// cancellation of the original).
pub async fn submit_in(
    tx: &mut Tx<'_>,
    cert: &NewCertificate<'_>,
    operation: &str,
    message_id: &str,
    body_xml: &str,
    cause: &str,
    now: DateTime<Utc>,
) -> Result<certificates::CertificateRecord, StoreError> {
    let record = certificates::insert(tx, cert, Event::Submitted, Role::Issuer, cause, Some(message_id), now).await?;
    enqueue(tx, &record.id, cert.partner, operation, message_id, body_xml, now).await?;
    Ok(record)
}

pub async fn enqueue(
    tx: &mut Tx<'_>,
    certificate_id: &str,
    partner: &str,
    operation: &str,
    message_id: &str,
    body_xml: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    insert(tx, certificate_id, partner, operation, message_id, body_xml, now, None).await
}

/// The outbox row of a new message, due at once, leased if `lease`.
#[allow(clippy::too_many_arguments)]
async fn insert(
    tx: &mut Tx<'_>,
    certificate_id: &str,
    partner: &str,
    operation: &str,
    message_id: &str,
    body_xml: &str,
    now: DateTime<Utc>,
    lease: Option<Lease<'_>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (message_id, certificate_id, partner, operation, body_xml, state, attempts, next_attempt_at, created_at, updated_at, lease_owner, lease_until) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, $7, $8, $9)",
    )
    .bind(message_id)
    .bind(certificate_id)
    .bind(partner)
    .bind(operation)
    .bind(body_xml)
    .bind(PENDING)
    .bind(millis(now))
    .bind(lease.map(|l| l.owner))
    .bind(lease.map(|l| millis(l.until)))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const CLAIM_COLUMNS: &str =
    "message_id, certificate_id, partner, operation, body_xml, attempts, first_attempt_at, lease_owner, \
     (SELECT c.direction FROM certificates c WHERE c.id = outbox.certificate_id) AS certificate_direction, \
     (SELECT c.state FROM certificates c WHERE c.id = outbox.certificate_id) AS certificate_state, \
     (SELECT p.down_since FROM partner_status p WHERE p.party = outbox.partner) AS partner_down_since";

/// Claims the oldest due pending message that may go now, for `lease`: its partner is not
/// paused, no earlier message about its certificate is pending or failed (a failed one waits
/// for an operator's retry or cancel, and what follows waits with it), and no other message is
/// probing its partner if that partner is down.
pub async fn claim_due(
    store: &Store,
    owner: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<OutboxMessage>, StoreError> {
    Ok(claim(store, owner, now, lease, false, 1).await?.and_then(|c| c.messages.into_iter().next()))
}

/// The messages one [`claim`] took.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Oldest first; never empty.
    pub messages: Vec<OutboxMessage>,
    /// Other due messages were seen beside them: another worker may find one to claim.
    pub more_due: bool,
}

/// [`claim_due`] for up to `max` messages at once, also telling whether other messages were
/// due. The batch keeps every condition of a single claim: at most one message of a partner
/// that is down, and never two of one certificate (the later one waits for the earlier one to
/// leave `pending`). `expect_due`: the caller's last claim saw more due, or it was woken (by
/// work committed meanwhile, or by the watcher of the outbox, which looked), so the look on the
/// read connections that spares an idle worker a write transaction would most likely find
/// some; it is skipped.
pub async fn claim(
    store: &Store,
    owner: &str,
    now: DateTime<Utc>,
    lease: Duration,
    expect_due: bool,
    max: usize,
) -> Result<Option<Claimed>, StoreError> {
    // On the read connections first: an idle worker's look takes no write transaction (on
    // SQLite it would hold the one writer connection; on PostgreSQL the claim lock).
    if !expect_due && !any_due(store, now).await? {
        return Ok(None);
    }
    let backend = store.backend();
    let sql = claim_sql(store);
    let owner = std::sync::Arc::new(owner.to_owned());
    store
        .write(move |tx| {
            let owner = owner.clone();
            Box::pin(async move { claim_in(tx, backend, sql, &owner, now, lease, max).await })
        })
        .await
}

/// Whether any message a claim may take is due at `now` (its partner not paused, no probe in
/// flight while down, no earlier message of its certificate pending or failed), read on the
/// read connections, so that a look that finds nothing takes no write transaction.
pub async fn any_due(store: &Store, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let found: Option<i64> = sqlx::query_scalar(&ANY_DUE).bind(millis(now)).fetch_optional(store.readers()).await?;
    Ok(found.is_some())
}

/// The claim statement for `store`'s backend, built once per backend.
fn claim_sql(store: &Store) -> &'static str {
    static SQLITE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let built = match store.backend() {
        super::Backend::Sqlite => &SQLITE,
        super::Backend::Postgres => &POSTGRES,
    };
    built.get_or_init(|| claim_statement(store.for_update_skip_locked()))
}

/// The claim statement, with `lock` after the pick of its messages: one partner's window of
/// due messages, between the keys (`$4`, `$5`, `$6`) and (`$7`, `$8`, `$9`) in the claims'
/// order (due time, then age), at most `$10` of them, partner `$11`.
fn claim_statement(lock: &str) -> String {
    // The window's bounds are row values so that they bound the index scan on
    // (partner, next_attempt_at, created_at, message_id): written with ORs, PostgreSQL's plan
    // read every pending message's index entry and heap row for each claim (5,245 entries for
    // a window of 32, behind 1,500 pending messages).
    // A down partner's messages are claimable only while it has no probe in flight: the
    // message a claim last took for it (`probe_message_id`, written by `claim_in`) is not
    // pending under a live lease, and the messages in flight when it was marked down are
    // over (`probe_not_before`, see `partners::mark_down`). Of them the batch takes the oldest
    // only, so a down partner gets one probe at a time. Both are read through the partner's
    // row and one outbox row by key: an index of leased messages would make every claim write
    // an index entry (migration 0011). [`PARTNERS_DUE_SQL`] left out the partners that are
    // paused or have a probe in flight; they are checked again here, under the claim's lock.
    let pick = format!(
        "SELECT o.message_id, o.next_attempt_at, o.created_at, \
                EXISTS (SELECT 1 FROM partner_status p WHERE p.party = o.partner AND p.down_since IS NOT NULL) AS down \
         FROM outbox o \
         WHERE {DUE} AND o.partner = $11 \
         AND ({ORDER}) >= ($4, $5, $6) AND ({ORDER}) <= ($7, $8, $9) \
         AND NOT {paused} AND {IN_TURN} AND NOT {probe_in_flight} \
         ORDER BY {ORDER}",
        paused = paused("o.partner"),
        probe_in_flight = probe_in_flight("o.partner"),
    );
    let chosen = "SELECT message_id FROM \
         (SELECT message_id, next_attempt_at, created_at, down, \
                 ROW_NUMBER() OVER (ORDER BY next_attempt_at, created_at, message_id) AS nth FROM picked) w \
         WHERE NOT down OR nth = 1 ORDER BY next_attempt_at, created_at, message_id LIMIT $10";
    // Only the chosen rows are locked (a window function admits no FOR UPDATE, and locking
    // the whole window would write a lock to each of its rows). So a chosen row locked by
    // another transaction is skipped, not replaced by the next one: the claim takes fewer, and
    // the next claim the rest. `state` and the lease again: on PostgreSQL a row changed
    // meanwhile (an operator's cancel, a late attempt of a worker whose claim expired) is
    // re-checked against them after the wait. Not the due time: with `next_attempt_at` here
    // PostgreSQL could plan the UPDATE on an index of due times instead of the chosen keys
    // (its CPU a CO up by a third, once). So a failure recorded by a worker whose claim had
    // expired, committed between this statement's snapshot and its lock, can be followed by
    // an attempt before its retry time: the same message ID, answered idempotently.
    format!(
        "WITH picked AS ({pick}), chosen AS ({chosen}) \
         UPDATE outbox SET lease_owner = $2, lease_until = $3 \
         WHERE message_id IN (SELECT l.message_id FROM outbox l WHERE l.message_id IN (SELECT message_id FROM chosen){lock}) \
         AND state = 'pending' AND (lease_until IS NULL OR lease_until < $1) \
         RETURNING {CLAIM_COLUMNS}, next_attempt_at, created_at"
    )
}

/// Serialises `tx` with every claim (PostgreSQL; on SQLite the one writer does): what `tx`
/// then reads sees every claim committed before it, and every later claim sees what `tx`
/// wrote.
pub(super) async fn wait_for_claims(tx: &mut Tx<'_>, backend: super::Backend) -> Result<(), StoreError> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CLAIM_LOCK).execute(&mut **tx).await?;
    }
    Ok(())
}

/// [`claim`]'s transaction: up to `max` claimable messages, oldest first in the claims' order
/// ([`ORDER`]) across the partners whose messages may go now.
async fn claim_in(
    tx: &mut Tx<'_>,
    backend: super::Backend,
    sql: &str,
    owner: &str,
    now: DateTime<Utc>,
    lease: Duration,
    max: usize,
) -> Result<Option<Claimed>, StoreError> {
    if backend == super::Backend::Postgres {
        // One claim at a time across workers and instances: a claim's conditions (one probe
        // to a down partner, a CO's messages in order) must see the claims committed before
        // it. Row locks skipped by SKIP LOCKED do not give that; claims are one short
        // statement each, so serialising them costs little.
        // Bitmap scans are off for the claim's transaction (`set_config(.., true)` is SET LOCAL):
        // planned on the statistics of an outbox that grew faster than autoanalyze runs (a
        // backlog flushed after an outage), the window read built a bitmap of every pending
        // message and sorted them all to return the oldest 32 (2.5 ms against 0.5 ms for the
        // index scan in order, behind 2,300 pending messages).
        sqlx::query("SELECT pg_advisory_xact_lock($1), set_config('enable_bitmapscan', 'off', true)")
            .bind(CLAIM_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    let max = max.clamp(1, CLAIM_WINDOW);
    // Partner by partner, so that what no claim can take now costs nothing: a paused partner's
    // backlog, a down partner's behind its probe, and messages waiting for their retry time or
    // their turn in the partner's pace (`delivery::pace`). Read in one order of all pending
    // messages, each claim walked past them (a window of 32 at a time for the first two, every
    // index entry and row for the last): hundreds of statements a claim behind a paused
    // partner's 10,000 messages, 2.5 ms behind a paced backlog of 10,000.
    let partners = sqlx::query(&PARTNERS_DUE_SQL).bind(millis(now)).fetch_all(&mut **tx).await?;
    note_claim_statement();
    let mut partners = partners
        .iter()
        .map(|r| {
            // A down partner (with no probe in flight, or it would not be listed) gets one;
            // another's window holds one more than the batch, to tell whether more are due.
            let limit = if r.try_get::<i64, _>(2)? != 0 { 1 } else { max + 1 };
            Ok(Listed { partner: r.try_get(0)?, head: r.try_get(1)?, limit, window: None, taken: 0 })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // Each partner's first claimable messages, in the order of their first due message, until
    // no later partner's can be among the oldest `max`.
    let mut seen: Vec<i64> = Vec::new();
    for listed in partners.iter_mut() {
        seen.sort_unstable();
        if seen.get(max - 1).is_some_and(|&kth| kth < listed.head) {
            break;
        }
        let window = read_window(tx, &listed.partner, now, listed.limit).await?;
        seen.extend(window.iter().map(|k| k.0));
        listed.window = Some(window);
    }
    // Each partner's share: its keys among the oldest `max` read. The windows hold messages a
    // claim may take (due, unleased, not behind an earlier one of their certificate; a down
    // partner's first only), so a share is normally taken whole. What is not (a row locked by
    // another transaction meanwhile) is offered to every partner in a second round: a claim
    // does not come back empty while another partner's message may go.
    let mut oldest: Vec<(&Key, usize)> =
        partners.iter().enumerate().flat_map(|(i, p)| p.window.iter().flatten().map(move |k| (k, i))).collect();
    oldest.sort_unstable();
    let mut shares = vec![0usize; partners.len()];
    for (_, i) in oldest.iter().take(max) {
        shares[*i] += 1;
    }
    let mut claimed: Vec<(Key, OutboxMessage)> = Vec::with_capacity(max);
    for (listed, share) in partners.iter_mut().zip(shares) {
        if share > 0 {
            claim_listed(tx, sql, listed, owner, now, lease, share, &mut claimed).await?;
        }
    }
    for listed in partners.iter_mut() {
        let left = max.saturating_sub(claimed.len());
        if left == 0 {
            break;
        }
        if listed.window.is_none() {
            listed.window = Some(read_window(tx, &listed.partner, now, listed.limit).await?);
        }
        if listed.may_have_more() {
            claim_listed(tx, sql, listed, owner, now, lease, left, &mut claimed).await?;
        }
    }
    let more_due = partners.iter().any(Listed::may_have_more);
    if claimed.is_empty() {
        return Ok(None);
    }
    claimed.sort_by(|a, b| a.0.cmp(&b.0));
    let claimed: Vec<OutboxMessage> = claimed.into_iter().map(|(_, m)| m).collect();
    for probe in claimed.iter().filter(|m| m.partner_seen_down) {
        // In the claim's transaction: the next claim sees this probe in flight.
        sqlx::query("UPDATE partner_status SET probe_message_id = $1 WHERE party = $2 AND down_since IS NOT NULL")
            .bind(&probe.message_id)
            .bind(&probe.partner)
            .execute(&mut **tx)
            .await?;
    }
    Ok(Some(Claimed { messages: claimed, more_due }))
}

/// A message's place in the claims' order: (next_attempt_at, created_at, message_id).
type Key = (i64, i64, String);

/// A partner a claim may take from ([`PARTNERS_DUE_SQL`]), and what the claim did with it.
struct Listed {
    partner: String,
    /// The due time of its first due message.
    head: i64,
    /// How many of its messages a window reads: one more than the batch, or one for a down
    /// partner.
    limit: usize,
    /// Its first window, once read.
    window: Option<Vec<Key>>,
    /// How many of its messages this claim took.
    taken: usize,
}

impl Listed {
    /// Its window was not read, or not all of it taken: a claim may take more of it.
    fn may_have_more(&self) -> bool {
        self.window.as_ref().is_none_or(|window| self.taken < window.len())
    }
}

/// Up to `max` of `listed`'s messages into `claimed`.
#[allow(clippy::too_many_arguments)]
async fn claim_listed(
    tx: &mut Tx<'_>,
    sql: &str,
    listed: &mut Listed,
    owner: &str,
    now: DateTime<Utc>,
    lease: Duration,
    max: usize,
    claimed: &mut Vec<(Key, OutboxMessage)>,
) -> Result<(), StoreError> {
    let window = listed.window.as_deref().unwrap_or_default();
    let taken = claim_from(tx, sql, &listed.partner, window, owner, now, lease, max).await?;
    listed.taken += taken.len();
    claimed.extend(taken);
    Ok(())
}

/// `partner`'s first `limit` messages a claim may take, in the claims' order.
async fn read_window(tx: &mut Tx<'_>, partner: &str, now: DateTime<Utc>, limit: usize) -> Result<Vec<Key>, StoreError> {
    let rows = sqlx::query(&CLAIM_WINDOW_SQL)
        .bind(millis(now))
        .bind(partner)
        .bind(i64::try_from(limit).unwrap_or(1))
        .fetch_all(&mut **tx)
        .await?;
    note_claim_statement();
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
}

/// One partner's part of a claim: up to `max` of the messages of `window`, in one statement.
/// A row of it locked by another transaction meanwhile (the hourly-alert check, an operator's
/// cancel) is skipped, not passed by to younger ones: it stays in the window, so the claim says
/// more is due and the next claim takes it.
#[allow(clippy::too_many_arguments)]
async fn claim_from(
    tx: &mut Tx<'_>,
    sql: &str,
    partner: &str,
    window: &[Key],
    owner: &str,
    now: DateTime<Utc>,
    lease: Duration,
    max: usize,
) -> Result<Vec<(Key, OutboxMessage)>, StoreError> {
    let (Some(first), Some(last)) = (window.first(), window.last()) else { return Ok(Vec::new()) };
    let rows = sqlx::query(sql)
        .bind(millis(now))
        .bind(owner)
        .bind(millis(now + lease))
        .bind(first.0)
        .bind(first.1)
        .bind(&first.2)
        .bind(last.0)
        .bind(last.1)
        .bind(&last.2)
        .bind(i64::try_from(max).unwrap_or(1))
        .bind(partner)
        .fetch_all(&mut **tx)
        .await?;
    note_claim_statement();
    rows.iter().map(|r| Ok((key_of_claimed(r)?, message(r)?))).collect()
}

/// A claimed row's place in the claims' order.
fn key_of_claimed(r: &sqlx::any::AnyRow) -> Result<Key, StoreError> {
    Ok((r.try_get("next_attempt_at")?, r.try_get("created_at")?, r.try_get("message_id")?))
}

#[cfg(any(test, feature = "test-support"))]
thread_local! {
    /// Statements the claims on this thread ran (tests: what a claim costs behind a backlog
    /// it cannot take).
    static CLAIM_STATEMENTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn note_claim_statement() {
    #[cfg(any(test, feature = "test-support"))]
    CLAIM_STATEMENTS.with(|n| n.set(n.get() + 1));
}

/// How many statements the claims made on this thread have run (a single-threaded runtime's
/// test runs them on its own thread).
#[cfg(any(test, feature = "test-support"))]
pub fn claim_statements_on_this_thread() -> u64 {
    CLAIM_STATEMENTS.with(std::cell::Cell::get)
}

/// The most messages one claim takes.
const CLAIM_WINDOW: usize = 32;

/// A pending message whose time has come and whose lease is free (`$1`: now).
const DUE: &str = "o.state = 'pending' AND o.next_attempt_at <= $1 AND (o.lease_until IS NULL OR o.lease_until < $1)";

/// No earlier message about `o`'s certificate is pending or failed: messages about one CO never
/// overtake each other, and a failed one holds the rest back until an operator retries or
/// cancels it. Read through `outbox_by_certificate`, one probe a message.
const IN_TURN: &str = "NOT EXISTS (SELECT 1 FROM outbox e WHERE e.certificate_id = o.certificate_id AND e.state IN ('pending', 'failed') \
                       AND (e.created_at < o.created_at OR (e.created_at = o.created_at AND e.message_id < o.message_id)))";

/// The claims' order within a partner: due time, then age. A backlog made due at once (a
/// partner up again) goes in the order it was submitted; a message waiting for its retry time
/// or its turn in the partner's pace goes when that comes, not before younger messages due
/// earlier. Index `outbox_partner_due` (migration 0014) holds it.
const ORDER: &str = "o.next_attempt_at, o.created_at, o.message_id";

/// `partner` (an SQL expression) is paused: a claim takes none of its messages.
fn paused(partner: &str) -> String {
    format!("EXISTS (SELECT 1 FROM partner_status p WHERE p.party = {partner} AND p.paused_since IS NOT NULL)")
}

/// `partner` (an SQL expression) is down with its probe in flight at `$1`: the message a claim
/// last took for it is pending under a live lease, or the messages in flight when it was marked
/// down may still be (`probe_not_before`). A claim takes none of its messages until then.
fn probe_in_flight(partner: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM partner_status p WHERE p.party = {partner} AND p.down_since IS NOT NULL \
                 AND (p.probe_not_before >= $1 OR EXISTS (SELECT 1 FROM outbox f WHERE f.message_id = p.probe_message_id \
                                                          AND f.state = 'pending' AND f.lease_until >= $1)))"
    )
}

/// Whether anything is due for a partner a claim may take from: a paused partner's backlog
/// does not wake a worker every poll interval for a claim that takes nothing.
static ANY_DUE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT 1 FROM ({}) d LIMIT 1", *PARTNERS_DUE_SQL));

/// The partners a claim may take from now (`$1`): each one's name, the due time of its first
/// message a claim may take, and whether it is marked down (1 or 0), that due time soonest
/// first. The partners with pending messages are found one index probe each (a loose scan:
/// the partner after the last one found), less the paused ones and the down ones whose probe
/// is in flight ([`paused`], [`probe_in_flight`], as the claim statement leaves them out), and
/// those with nothing a claim may take. `d` is materialised so that each partner's first due
/// message is looked up once.
pub(super) static PARTNERS_DUE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH RECURSIVE parts(partner) AS ( \
             SELECT (SELECT o.partner FROM outbox o WHERE o.state = 'pending' ORDER BY o.partner LIMIT 1) \
             UNION ALL \
             SELECT (SELECT o.partner FROM outbox o WHERE o.state = 'pending' AND o.partner > parts.partner ORDER BY o.partner LIMIT 1) \
             FROM parts WHERE parts.partner IS NOT NULL), \
         d AS MATERIALIZED ( \
             SELECT parts.partner, \
                    (SELECT o.next_attempt_at FROM outbox o WHERE {DUE} AND {IN_TURN} AND o.partner = parts.partner ORDER BY {ORDER} LIMIT 1) AS head, \
                    CAST(CASE WHEN EXISTS (SELECT 1 FROM partner_status p WHERE p.party = parts.partner AND p.down_since IS NOT NULL) \
                              THEN 1 ELSE 0 END AS BIGINT) AS down \
             FROM parts \
             WHERE parts.partner IS NOT NULL \
             AND NOT {paused} AND NOT {probe_in_flight}) \
         SELECT partner, head, down FROM d WHERE head IS NOT NULL ORDER BY head, partner",
        paused = paused("parts.partner"),
        probe_in_flight = probe_in_flight("parts.partner"),
    )
});

/// A partner's (`$2`) first `$3` messages a claim may take, in the claims' order.
pub(super) static CLAIM_WINDOW_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT o.next_attempt_at, o.created_at, o.message_id FROM outbox o WHERE {DUE} AND {IN_TURN} AND o.partner = $2 \
         ORDER BY {ORDER} LIMIT $3"
    )
});

/// The advisory lock key that serialises claims on PostgreSQL ("coconnec" in ASCII).
const CLAIM_LOCK: i64 = 0x636f_636f_6e6e_6563;

fn message(r: &sqlx::any::AnyRow) -> Result<OutboxMessage, StoreError> {
    Ok(OutboxMessage {
        message_id: r.try_get("message_id")?,
        certificate_id: r.try_get("certificate_id")?,
        partner: r.try_get("partner")?,
        operation: r.try_get("operation")?,
        body_xml: r.try_get("body_xml")?,
        attempts: r.try_get("attempts")?,
        first_attempt_at: r.try_get::<Option<i64>, _>("first_attempt_at")?.map(from_millis),
        lease_owner: r.try_get("lease_owner")?,
        partner_seen_down: r.try_get::<Option<i64>, _>("partner_down_since")?.is_some(),
        certificate_seen: certificates::Seen::parse(
            r.try_get::<Option<String>, _>("certificate_direction")?.as_deref(),
            r.try_get::<Option<String>, _>("certificate_state")?.as_deref(),
        ),
    })
}

/// Records that attempt `attempts + 1` is about to put `wire` on the network: the attempt row,
/// the exact bytes in the message log, and the certificate's `transmitted` event — committed
/// before the first byte is sent. Returns the attempt number.
///
/// Only while the claim is still this worker's and nothing else happened to the message since
/// (`LeaseLost` otherwise: a claim that expired while the worker waited for its partner's rate
/// may have been taken over, or the message cancelled); the claim is then renewed for `lease`,
/// so it covers the request from its start.
pub async fn begin_attempt(
    store: &Store,
    msg: &OutboxMessage,
    wire: &[u8],
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<i64, StoreError> {
    Ok(begin(store, msg, wire, now, lease).await?.attempt)
}

/// An attempt [`begin`] recorded.
#[derive(Debug, Clone)]
pub struct Began {
    pub attempt: i64,
    /// The digest of the bytes about to be sent, as recorded with the attempt.
    pub wire_sha256: String,
    /// The certificate as the attempt left it.
    pub certificate: Option<certificates::Seen>,
}

/// [`begin_attempt`], with what the worker needs for its next steps.
pub async fn begin(
    store: &Store,
    msg: &OutboxMessage,
    wire: &[u8],
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Began, StoreError> {
    let attempt = msg.attempts + 1;
    let cause = attempt_cause(attempt);
    // A step whose certificate move is known from the state seen writes it all in one round
    // trip (see `fused`): on PostgreSQL one statement outside any transaction, on SQLite one
    // script in the group commit's. If it did not (the certificate moved), or no move is known,
    // the step goes statement by statement.
    let planned = fused::plan(msg, DeliveryOutcome::Transmitted, &cause);
    let wire_sha256 = messages::sha256_hex(wire);
    if let Some(planned) = &planned {
        let step =
            FusedStep { msg, planned, kind: Kind::Request, incoming: false, wire, wire_sha256: &wire_sha256, now };
        if fused::begin(store, &step, attempt, now + lease).await? {
            return Ok(began_as_planned(msg, planned, attempt, wire_sha256));
        }
    }
    let seen = fused::seen_after(&planned, msg);
    // Owned for the group commit (`Store::write`); a copy of a few kilobytes.
    let job = std::sync::Arc::new((store.clone(), msg.clone(), wire.to_vec(), planned, wire_sha256));
    store
        .write(move |tx| {
            let job = job.clone();
            Box::pin(async move {
                let (store, msg, wire, planned, wire_sha256) = &*job;
                if let Some(planned) = planned {
                    let step = FusedStep { msg, planned, kind: Kind::Request, incoming: false, wire, wire_sha256, now };
                    if fused::begin_in(tx, store, &step, attempt, now + lease).await? {
                        return Ok(began_as_planned(msg, planned, attempt, wire_sha256.clone()));
                    }
                }
                begin_attempt_in(tx, store, msg, wire, wire_sha256, seen, now, lease).await
            })
        })
        .await
}

/// What a fused step that wrote attempt `attempt` as `planned` began.
fn began_as_planned(
    msg: &OutboxMessage,
    planned: &certificates::PlannedMove,
    attempt: i64,
    wire_sha256: String,
) -> Began {
    let certificate = msg.certificate_seen.map(|seen| certificates::Seen { state: planned.to, ..seen });
    Began { attempt, wire_sha256, certificate }
}

/// An attempt's condition on its outbox row: its partner is not marked down, or the message is
/// the partner's probe. A message claimed while the partner was up and not yet sent when it
/// went down stays unsent (its worker gives it back, and the claims' one-probe rule applies
/// to it), so that only requests begun before the mark are in flight beside the probe, and
/// they end within their timeout (`partners::mark_down`).
pub(super) const NOT_HELD_BY_DOWN_PARTNER: &str =
    "NOT EXISTS (SELECT 1 FROM partner_status p WHERE p.party = outbox.partner \
     AND p.down_since IS NOT NULL AND (p.probe_message_id IS NULL OR p.probe_message_id <> outbox.message_id))";

/// The history's cause of a certificate's move by attempt `attempt`.
fn attempt_cause(attempt: i64) -> String {
    format!("attempt {attempt}")
}

/// [`begin`] statement by statement in `tx`, the certificate moved from the state `seen` (if
/// still in it) or from the state found. `wire_sha256` is `wire`'s digest, as [`begin`] took it.
#[allow(clippy::too_many_arguments)]
async fn begin_attempt_in(
    tx: &mut Tx<'_>,
    store: &Store,
    msg: &OutboxMessage,
    wire: &[u8],
    wire_sha256: &str,
    seen: Option<certificates::Seen>,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Began, StoreError> {
    let attempt = msg.attempts + 1;
    static BEGIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "UPDATE outbox SET attempts = $1, updated_at = $2, first_attempt_at = COALESCE(first_attempt_at, $2), lease_until = $3 \
             WHERE message_id = $4 AND state = 'pending' AND lease_owner = $5 AND attempts = $6 AND {NOT_HELD_BY_DOWN_PARTNER}"
        )
    });
    let began = sqlx::query(&BEGIN)
        .bind(attempt)
        .bind(millis(now))
        .bind(millis(now + lease))
        .bind(&msg.message_id)
        .bind(&msg.lease_owner)
        .bind(msg.attempts)
        .execute(&mut **tx)
        .await?;
    if began.rows_affected() != 1 {
        return Err(StoreError::LeaseLost(msg.message_id.clone()));
    }
    sqlx::query("INSERT INTO delivery_attempts (message_id, attempt, started_at, wire_sha256, instance) VALUES ($1, $2, $3, $4, $5)")
        .bind(&msg.message_id)
        .bind(attempt)
        .bind(millis(now))
        .bind(wire_sha256)
        .bind(&msg.lease_owner)
        .execute(&mut **tx)
        .await?;
    messages::append(
        tx,
        &LogEntry {
            message_id: &msg.message_id,
            incoming: false,
            kind: Kind::Request,
            partner: &msg.partner,
            operation: &msg.operation,
            wire,
        },
        now,
    )
    .await?;
    let state = certificates::delivery_event(
        tx,
        store,
        &msg.operation,
        &msg.certificate_id,
        seen,
        DeliveryOutcome::Transmitted,
        &attempt_cause(attempt),
        Some(&msg.message_id),
        now,
    )
    .await?;
    let certificate = msg.certificate_seen.map(|seen| certificates::Seen { state, ..seen });
    Ok(Began { attempt, wire_sha256: wire_sha256.to_owned(), certificate })
}

/// What kind of technical failure ended an attempt (`delivery_attempts.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedOutcome {
    /// No HTTP answer (connection, TLS, timeout).
    Transport,
    /// An HTTP status other than 200, without a SOAP fault.
    Http,
    /// A SOAP fault a new attempt can cure.
    Fault,
    /// An HTTP 200 whose acknowledgement does not verify.
    AckInvalid,
}

impl FailedOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            FailedOutcome::Transport => "transport",
            FailedOutcome::Http => "http",
            FailedOutcome::Fault => "fault",
            FailedOutcome::AckInvalid => "ack-invalid",
        }
    }
}

/// How an attempt failed, as recorded.
pub struct Failure<'a> {
    pub attempt: i64,
    pub outcome: FailedOutcome,
    pub http_status: Option<u16>,
    pub error: &'a str,
}

/// A failed attempt: recorded, the lease released, the next attempt scheduled.
pub async fn fail_attempt(
    store: &Store,
    msg: &OutboxMessage,
    failure: &Failure<'_>,
    next_attempt_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    finish_failed_attempt(&mut tx, &msg.message_id, failure, now).await?;
    release_until(&mut tx, msg, next_attempt_at, failure.error, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Gives a claim back unused (no worker of the process took the message in time, its partner
/// just failed, or the workers stop): the message is due again at once, for any worker or
/// instance. Nothing if the claim is no longer this one.
pub async fn unclaim(store: &Store, msg: &OutboxMessage) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET lease_owner = NULL, lease_until = NULL WHERE message_id = $1 AND state = 'pending' AND lease_owner = $2 AND attempts = $3")
        .bind(&msg.message_id)
        .bind(&msg.lease_owner)
        .bind(msg.attempts)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Puts the message back for `next_attempt_at` without an attempt of its own (its partner is
/// not configured): the last attempt's record stays as it was.
pub async fn reschedule(
    store: &Store,
    msg: &OutboxMessage,
    next_attempt_at: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    release_until(&mut tx, msg, next_attempt_at, error, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Gives the claim up until `next_attempt_at`, without an attempt and without an error: its
/// partner's pace gives the message its turn then (`delivery::pace`). `LeaseLost` if the
/// claim is no longer this one. Only ever later than now: the message was due to be claimed.
pub async fn defer(
    store: &Store,
    msg: &OutboxMessage,
    next_attempt_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let deferred = sqlx::query("UPDATE outbox SET lease_owner = NULL, lease_until = NULL, next_attempt_at = $1, updated_at = $2 WHERE message_id = $3 AND state = 'pending' AND lease_owner = $4")
        .bind(millis(next_attempt_at))
        .bind(millis(now))
        .bind(&msg.message_id)
        .bind(&msg.lease_owner)
        .execute(store.pool())
        .await?;
    if deferred.rows_affected() != 1 {
        return Err(StoreError::LeaseLost(msg.message_id.clone()));
    }
    Ok(())
}

/// Gives the claim up until `next_attempt_at`, if it is still this worker's.
async fn release_until(
    tx: &mut Tx<'_>,
    msg: &OutboxMessage,
    next_attempt_at: DateTime<Utc>,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let released = sqlx::query("UPDATE outbox SET lease_owner = NULL, lease_until = NULL, next_attempt_at = $1, last_error = $2, updated_at = $3 WHERE message_id = $4 AND state = 'pending' AND lease_owner = $5")
        .bind(millis(next_attempt_at))
        .bind(error)
        .bind(millis(now))
        .bind(&msg.message_id)
        .bind(&msg.lease_owner)
        .execute(&mut **tx)
        .await?;
    if released.rows_affected() != 1 {
        return Err(StoreError::LeaseLost(msg.message_id.clone()));
    }
    Ok(())
}

/// The last attempt of the schedule failed: the message ends `failed`, the certificate
/// `delivery_failed`, and an alert asks for manual intervention — in one transaction.
pub async fn exhaust(
    store: &Store,
    msg: &OutboxMessage,
    failure: &Failure<'_>,
    webhook: bool,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    let mut tx = store.begin().await?;
    finish_failed_attempt(&mut tx, &msg.message_id, failure, now).await?;
    let cause = format!("retry schedule exhausted after {} attempts: {}", failure.attempt, failure.error);
    let to = give_up(&mut tx, store, msg, failure.error, &cause, webhook, now).await?;
    tx.commit().await?;
    Ok(to)
}

/// The message cannot even be put on the wire — it cannot be signed (and encrypted) with our
/// key and the partner's encryption certificate, or names an operation this version does not
/// know — which no retry cures: it ends
/// `failed` like an exhausted one (certificate `delivery_failed`, alert), without an attempt,
/// for an operator to fix the cause and retry.
pub async fn unsendable(
    store: &Store,
    msg: &OutboxMessage,
    error: &str,
    webhook: bool,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    let mut tx = store.begin().await?;
    let cause = format!("message cannot be sent, manual intervention needed: {error}");
    let to = give_up(&mut tx, store, msg, error, &cause, webhook, now).await?;
    tx.commit().await?;
    Ok(to)
}

/// Closes the message `failed`, tells the certificate and raises `co.delivery_failed`.
async fn give_up(
    tx: &mut Tx<'_>,
    store: &Store,
    msg: &OutboxMessage,
    error: &str,
    cause: &str,
    webhook: bool,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    close(tx, msg, FAILED, Some(error), now).await?;
    let to = certificates::delivery_event(
        tx,
        store,
        &msg.operation,
        &msg.certificate_id,
        msg.certificate_seen,
        DeliveryOutcome::Exhausted,
        cause,
        Some(&msg.message_id),
        now,
    )
    .await?;
    let alert = NewAlert {
        name: alerts::DELIVERY_FAILED,
        partner: Some(&msg.partner),
        message_id: Some(&msg.message_id),
        certificate_id: Some(&msg.certificate_id),
        detail: cause,
    };
    alerts::raise(tx, &alert, webhook, now).await?;
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM outbox WHERE message_id = $1")
        .bind(&msg.message_id)
        .fetch_one(&mut **tx)
        .await?;
    let detail = serde_json::json!({
        "operation": msg.operation,
        "attempts": attempts,
        "error": error,
        "certificate_state": to.as_str(),
    });
    let event = NewEvent {
        kind: EventKind::DeliveryFailed,
        certificate_id: &msg.certificate_id,
        message_id: Some(&msg.message_id),
        detail,
    };
    events::append(tx, store, &event, now).await?;
    Ok(to)
}

/// A partner's final answer to a message, as [`complete`] records it.
pub struct Answer<'a> {
    pub attempt: i64,
    /// The exact bytes of the answer (acknowledgement or fault).
    pub wire: &'a [u8],
    pub accepted: bool,
    /// The certificate history's cause ("acknowledged by ID (ack ...)", "rejected by ID: ...").
    pub cause: &'a str,
    pub http_status: u16,
    /// The `acknowledgement.received` event's detail (status, acknowledgement ID, errors).
    pub detail: serde_json::Value,
}

#[cfg(test)]
impl<'a> Answer<'a> {
    /// An HTTP 200 answer `wire` with an empty event detail.
    pub(crate) fn for_test(attempt: i64, wire: &'a [u8], accepted: bool, cause: &'a str) -> Self {
        Answer { attempt, wire, accepted, cause, http_status: 200, detail: serde_json::json!({}) }
    }
}

/// What [`complete`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// The certificate's state after the answer.
    pub state: State,
    /// The partner was marked down (by any instance) as the answer was recorded: the answer
    /// shows it is up, and the caller marks it up ([`super::partners::mark_up`]). Read in the
    /// same statement or transaction, so an answer costs no look of its own at the partner.
    pub partner_down: bool,
}

/// The partner's verified acknowledgement (or a Sender fault): stored with the exact bytes, the
/// outbox row closed (its `last_error` cleared), the certificate moved and the
/// `acknowledgement.received` event appended, in one transaction. A rejection raises an alert.
pub async fn complete(
    store: &Store,
    msg: &OutboxMessage,
    answer: &Answer<'_>,
    webhook: bool,
    now: DateTime<Utc>,
) -> Result<Completed, StoreError> {
    let verdict = Verdict::of(answer.accepted);
    // As in `begin`: one round trip when the move is known; not for a rejection, whose alert is
    // one more write.
    let planned = match answer.accepted {
        true => fused::plan(msg, verdict.event, answer.cause),
        false => None,
    };
    // On SQLite the script runs in the group commit's transaction, below.
    if let (Some(planned), super::Backend::Postgres) = (&planned, store.backend()) {
        if let Some(partner_down) = fused_completion(store, None, msg, planned, answer, now).await? {
            return Ok(Completed { state: planned.to, partner_down });
        }
    }
    let seen = fused::seen_after(&planned, msg);
    // Owned for the group commit (`Store::write`).
    let owned = OwnedAnswer {
        attempt: answer.attempt,
        wire: answer.wire.to_vec(),
        accepted: answer.accepted,
        cause: answer.cause.to_owned(),
        http_status: answer.http_status,
        detail: answer.detail.clone(),
    };
    let job = std::sync::Arc::new((store.clone(), msg.clone(), owned, planned));
    store
        .write(move |tx| {
            let job = job.clone();
            Box::pin(async move {
                let (store, msg, a, planned) = &*job;
                let answer = Answer {
                    attempt: a.attempt,
                    wire: &a.wire,
                    accepted: a.accepted,
                    cause: &a.cause,
                    http_status: a.http_status,
                    detail: a.detail.clone(),
                };
                if let Some(planned) = planned {
                    let in_tx = Some(&mut *tx);
                    if let Some(partner_down) = fused_completion(store, in_tx, msg, planned, &answer, now).await? {
                        return Ok(Completed { state: planned.to, partner_down });
                    }
                }
                complete_in(tx, store, msg, &answer, seen, webhook, now).await
            })
        })
        .await
}

/// An accepted answer written as `planned` in one round trip: on PostgreSQL one statement on
/// its own (`tx` `None`), on SQLite one script in `tx`. Returns whether the partner was marked
/// down as it was written; `None` if nothing was written and the usual way must follow.
async fn fused_completion(
    store: &Store,
    tx: Option<&mut Tx<'_>>,
    msg: &OutboxMessage,
    planned: &certificates::PlannedMove,
    answer: &Answer<'_>,
    now: DateTime<Utc>,
) -> Result<Option<bool>, StoreError> {
    let verdict = Verdict::of(answer.accepted);
    let wire_sha256 = messages::sha256_hex(answer.wire);
    let step = FusedStep {
        msg,
        planned,
        kind: Kind::Acknowledgement,
        incoming: true,
        wire: answer.wire,
        wire_sha256: &wire_sha256,
        now,
    };
    let completion = FusedCompletion {
        answer,
        outcome: verdict.outcome,
        state: verdict.state,
        detail: answer_event_detail(answer, msg, planned.to),
    };
    match tx {
        None => fused::complete(store, &step, &completion).await,
        Some(tx) => fused::complete_in(tx, store, &step, &completion).await,
    }
}

/// [`Answer`], owned.
struct OwnedAnswer {
    attempt: i64,
    wire: Vec<u8>,
    accepted: bool,
    cause: String,
    http_status: u16,
    detail: serde_json::Value,
}

/// What an answer makes of an attempt, the outbox row and the certificate.
struct Verdict {
    /// `delivery_attempts.outcome`.
    outcome: &'static str,
    /// The outbox row's final state.
    state: &'static str,
    /// The certificate's event.
    event: DeliveryOutcome,
}

impl Verdict {
    fn of(accepted: bool) -> Self {
        match accepted {
            true => Verdict { outcome: "accepted", state: DELIVERED, event: DeliveryOutcome::Accepted },
            false => Verdict { outcome: "rejected", state: REJECTED, event: DeliveryOutcome::Rejected },
        }
    }
}

/// The `acknowledgement.received` event's detail: the answer's, with the operation and the
/// certificate's state after it.
fn answer_event_detail(answer: &Answer<'_>, msg: &OutboxMessage, to: State) -> serde_json::Value {
    let mut detail = answer.detail.clone();
    if let Some(d) = detail.as_object_mut() {
        d.insert("operation".into(), msg.operation.clone().into());
        d.insert("certificate_state".into(), to.as_str().into());
    }
    detail
}

/// [`complete`] statement by statement in `tx`, the certificate moved from the state `seen`
/// (if still in it) or from the state found.
async fn complete_in(
    tx: &mut Tx<'_>,
    store: &Store,
    msg: &OutboxMessage,
    answer: &Answer<'_>,
    seen: Option<certificates::Seen>,
    webhook: bool,
    now: DateTime<Utc>,
) -> Result<Completed, StoreError> {
    let accepted = answer.accepted;
    let verdict = Verdict::of(accepted);
    let cause = answer.cause;
    finish_attempt(
        tx,
        &msg.message_id,
        answer.attempt,
        verdict.outcome,
        Some(answer.http_status),
        (!accepted).then_some(cause),
        now,
    )
    .await?;
    messages::append(
        tx,
        &LogEntry {
            message_id: &msg.message_id,
            incoming: true,
            kind: Kind::Acknowledgement,
            partner: &msg.partner,
            operation: &msg.operation,
            wire: answer.wire,
        },
        now,
    )
    .await?;
    close(tx, msg, verdict.state, None, now).await?;
    let to = certificates::delivery_event(
        tx,
        store,
        &msg.operation,
        &msg.certificate_id,
        seen,
        verdict.event,
        cause,
        Some(&msg.message_id),
        now,
    )
    .await?;
    let event = NewEvent {
        kind: EventKind::AcknowledgementReceived,
        certificate_id: &msg.certificate_id,
        message_id: Some(&msg.message_id),
        detail: answer_event_detail(answer, msg, to),
    };
    events::append(tx, store, &event, now).await?;
    if !accepted {
        let alert = NewAlert {
            name: alerts::REJECTED,
            partner: Some(&msg.partner),
            message_id: Some(&msg.message_id),
            certificate_id: Some(&msg.certificate_id),
            detail: cause,
        };
        alerts::raise(tx, &alert, webhook, now).await?;
    }
    let partner_down = super::partners::is_down(&mut **tx, &msg.partner).await?;
    Ok(Completed { state: to, partner_down })
}

/// Moves a pending message to a final state with `last_error` = `error`, if its claim is still
/// this worker's (`LeaseLost` otherwise: another worker or an operator decides what becomes of
/// it). A completed message gets `None`: an earlier technical failure no longer describes it
/// (its attempts keep their errors in `delivery_attempts`).
async fn close(
    tx: &mut Tx<'_>,
    msg: &OutboxMessage,
    state: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let closed = sqlx::query("UPDATE outbox SET state = $1, lease_owner = NULL, lease_until = NULL, last_error = $2, updated_at = $3 WHERE message_id = $4 AND state = $5 AND lease_owner = $6")
        .bind(state)
        .bind(error)
        .bind(millis(now))
        .bind(&msg.message_id)
        .bind(PENDING)
        .bind(&msg.lease_owner)
        .execute(&mut **tx)
        .await?;
    if closed.rows_affected() != 1 {
        return Err(StoreError::LeaseLost(msg.message_id.clone()));
    }
    Ok(())
}

async fn finish_failed_attempt(
    tx: &mut Tx<'_>,
    message_id: &str,
    failure: &Failure<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    finish_attempt(
        tx,
        message_id,
        failure.attempt,
        failure.outcome.as_str(),
        failure.http_status,
        Some(failure.error),
        now,
    )
    .await
}

async fn finish_attempt(
    tx: &mut Tx<'_>,
    message_id: &str,
    attempt: i64,
    outcome: &str,
    http_status: Option<u16>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
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

/// Raises the "still undelivered after the first hour" alert once per message. Returns how many.
pub async fn alert_late(
    store: &Store,
    older_than: DateTime<Utc>,
    webhook: bool,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut tx = store.begin().await?;
    let rows = sqlx::query("UPDATE outbox SET late_alerted = 1 WHERE state = 'pending' AND late_alerted = 0 AND created_at < $1 RETURNING message_id, certificate_id, partner")
        .bind(millis(older_than))
        .fetch_all(&mut *tx)
        .await?;
    for r in &rows {
        let (message_id, certificate_id, partner): (String, String, String) =
            (r.try_get("message_id")?, r.try_get("certificate_id")?, r.try_get("partner")?);
        let detail = format!("message {message_id} to {partner} is still undelivered after the first hour");
        let alert = NewAlert {
            name: alerts::UNDELIVERED_AFTER_FIRST_HOUR,
            partner: Some(&partner),
            message_id: Some(&message_id),
            certificate_id: Some(&certificate_id),
            detail: &detail,
        };
        alerts::raise(&mut tx, &alert, webhook, now).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// An operator asks for a failed message to be tried again now, with a fresh retry schedule:
/// `first_attempt_at` is cleared, so the marks count from the next attempt
/// (`schedule_start_attempt` keeps, for inspection, how many attempts came before).
pub async fn operator_retry(
    store: &Store,
    message_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    let action = OperatorAction {
        update: "UPDATE outbox SET state = 'pending', next_attempt_at = $1, first_attempt_at = NULL, schedule_start_attempt = attempts, late_alerted = 1, updated_at = $1 WHERE message_id = $2 AND state = 'failed' RETURNING certificate_id, operation",
        precondition: "failed",
        outcome: DeliveryOutcome::OperatorRetry,
        cause: "retry requested by",
        name: "retry-message",
    };
    operator_action(store, &action, message_id, actor, now).await
}

/// An operator withdraws a message that is still pending or has failed, but not while an
/// attempt is on the wire (leased): its outcome must be recorded first.
pub async fn operator_cancel(
    store: &Store,
    message_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    let action = OperatorAction {
        update: "UPDATE outbox SET state = 'cancelled', lease_owner = NULL, lease_until = NULL, updated_at = $1 WHERE message_id = $2 AND state IN ('pending', 'failed') AND (lease_until IS NULL OR lease_until < $1) RETURNING certificate_id, operation",
        precondition: "pending or failed, and not being sent right now,",
        outcome: DeliveryOutcome::OperatorWithdraw,
        cause: "delivery cancelled by",
        name: "cancel-message",
    };
    operator_action(store, &action, message_id, actor, now).await
}

/// What an operator action changes in the outbox and in the certificate's lifecycle.
struct OperatorAction {
    /// Binds `$1` now and `$2` the message ID; returns the certificate ID and operation if the
    /// row qualified.
    update: &'static str,
    precondition: &'static str,
    outcome: DeliveryOutcome,
    cause: &'static str,
    name: &'static str,
}

/// One transaction: the outbox row, the certificate's transition with the actor in its
/// history, and the operator log.
async fn operator_action(
    store: &Store,
    action: &OperatorAction,
    message_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    let mut tx = store.begin().await?;
    let row =
        sqlx::query(action.update).bind(millis(now)).bind(message_id).fetch_optional(&mut *tx).await?.ok_or_else(
            || StoreError::NotFound(format!("outbox message {message_id} that is {}", action.precondition)),
        )?;
    let certificate_id: String = row.try_get("certificate_id")?;
    let operation: String = row.try_get("operation")?;
    let cause = format!("{} {actor}", action.cause);
    let to = certificates::delivery_event(
        &mut tx,
        store,
        &operation,
        &certificate_id,
        None,
        action.outcome,
        &cause,
        Some(message_id),
        now,
    )
    .await?;
    super::operator::record(&mut tx, store, actor, action.name, message_id, "", now).await?;
    tx.commit().await?;
    Ok(to)
}

/// One row of the outbox, for operators.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    pub message_id: String,
    pub certificate_id: String,
    pub partner: String,
    pub operation: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// [`list`]'s statement: `$1` a state or empty, `$2` a partner or empty. On PostgreSQL a list of
/// the failed messages reads their partial index in order (the plan is made with the values:
/// [`list`] does not keep the statement prepared), one of the pending messages reads theirs
/// (`outbox_partner_due`) and sorts them; on SQLite it reads the table.
pub(super) const LIST_SQL: &str = "SELECT message_id, certificate_id, partner, operation, state, attempts, next_attempt_at, last_error, created_at FROM outbox \
     WHERE ($1 = '' OR state = $1) AND ($2 = '' OR partner = $2) ORDER BY created_at, message_id LIMIT 10000";

/// The outbox, filtered by state and partner, oldest first.
pub async fn list(store: &Store, state: Option<&str>, partner: Option<&str>) -> Result<Vec<OutboxEntry>, StoreError> {
    // Not kept prepared: PostgreSQL could then switch to a plan made without the values, which
    // cannot use a partial index (an operator's request, so planning each time costs nothing).
    let rows = sqlx::query(LIST_SQL)
        .persistent(false)
        .bind(state.unwrap_or(""))
        .bind(partner.unwrap_or(""))
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEntry {
                message_id: r.try_get("message_id")?,
                certificate_id: r.try_get("certificate_id")?,
                partner: r.try_get("partner")?,
                operation: r.try_get("operation")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: from_millis(r.try_get("next_attempt_at")?),
                last_error: r.try_get("last_error")?,
                created_at: from_millis(r.try_get("created_at")?),
            })
        })
        .collect()
}

/// Start times of every attempt of a message, in order (tests, operators).
pub async fn attempt_times(store: &Store, message_id: &str) -> Result<Vec<DateTime<Utc>>, StoreError> {
    let rows = sqlx::query("SELECT started_at FROM delivery_attempts WHERE message_id = $1 ORDER BY attempt")
        .bind(message_id)
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(|r| Ok(from_millis(r.try_get("started_at")?))).collect()
}

/// SHA-256 (hex) of every message put on the wire for `message_id`: an acknowledgement must
/// carry the digest of one of them (a retry may be answered with the original acknowledgement).
pub async fn sent_digests(store: &Store, message_id: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT wire_sha256 FROM delivery_attempts WHERE message_id = $1")
        .bind(message_id)
        .fetch_all(store.readers())
        .await?;
    rows.iter().map(|r| Ok(r.try_get("wire_sha256")?)).collect()
}

/// Outbox state and attempt count of a message (tests, operators).
pub async fn status(store: &Store, message_id: &str) -> Result<Option<(String, i64)>, StoreError> {
    let row = sqlx::query("SELECT state, attempts FROM outbox WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| Ok((r.try_get("state")?, r.try_get("attempts")?))).transpose()
}

/// The message ID of the outbound message of a certificate.
pub async fn message_for_certificate(store: &Store, certificate_id: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT message_id FROM outbox WHERE certificate_id = $1 ORDER BY created_at LIMIT 1")
        .bind(certificate_id)
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| Ok(r.try_get("message_id")?)).transpose()
}

/// Instances that made delivery attempts, with their counts (tests of multi-instance work).
pub async fn attempts_by_instance(store: &Store) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = sqlx::query("SELECT COALESCE(instance, '') AS instance, COUNT(*) AS n FROM delivery_attempts GROUP BY instance ORDER BY instance").fetch_all(store.pool()).await?;
    rows.iter().map(|r| Ok((r.try_get("instance")?, r.try_get("n")?))).collect()
}
