//! A step's writes in one round trip: a submission's ([`submit`]), and a delivery's attempt
//! ([`begin`], [`begin_in`]) and answer ([`complete`], [`complete_in`]).
//!
//! On PostgreSQL each round trip costs the server about as much CPU as a short statement's work
//! (about 40 % of its CPU in two-gateway runs is the protocol and the loopback TCP), and the two
//! delivery steps took five and six, each in a transaction of its own. Their statement runs
//! outside any transaction (it commits on its own: BEGIN and COMMIT are two round trips less),
//! so it must write all of its parts or none: when the certificate's move (`c`) matches nothing,
//! it calls `coconnect_undo_statement` (migration 0009), whose error rolls the whole statement
//! back, and the caller writes the step the usual way in [`super`], in a transaction, where the
//! state found, not the state seen, decides.
//!
//! On SQLite each statement is a round trip to the connection's own thread (a wake-up and a
//! thread switch each way), and there is no data-modifying `WITH`: the delivery steps are one
//! script of statements in the group commit's transaction, after a savepoint. Its outbox and
//! certificate updates return a row each when they match; the savepoint is released when both
//! did, and otherwise rolled back to (the claim is lost, or the usual way follows in the same
//! transaction, as on PostgreSQL): two round trips instead of five and seven.
//!
//! A submission keeps its transaction (its reference lock is a statement of its own, see
//! [`submit`]) and fuses what follows the lock: four round trips instead of seven.
//!
//! Owns: the fused statements and scripts and what they report.
//! Must never: write any part when the outbox row's update (`o`) matched nothing (the claim is
//! lost) or when the certificate's move (`c`) matched nothing (undone, see above); be used for a
//! step [`certificates::planned_delivery_move`] has no move for, or for an answer that writes
//! more than these parts (a rejection also raises an alert: the usual way).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::super::amendments;
use super::super::certificates::{self, CertificateRecord, NewCertificate};
use super::super::events::EventKind;
use super::super::messages::{self, Kind};
use super::super::{millis, Backend, Store, StoreError, Tx};
use super::{Answer, OutboxMessage, NOT_HELD_BY_DOWN_PARTNER};
use crate::lifecycle::{transition, DeliveryOutcome, Event, Role};
use sqlx::any::AnyRow;

/// The move of the certificate that lets a delivery step of `msg` with `outcome` be one round
/// trip: the one [`certificates::planned_delivery_move`] finds from the state the worker saw.
pub(super) fn plan(msg: &OutboxMessage, outcome: DeliveryOutcome, cause: &str) -> Option<certificates::PlannedMove> {
    certificates::planned_delivery_move(&msg.operation, msg.certificate_seen, outcome, cause)
}

/// The certificate's state as seen, for the usual way after a step that did not move it: none
/// once a fused statement's or script's move from it matched nothing (it is stale, and trying
/// the same conditional UPDATE again would cost a statement for nothing).
pub(super) fn seen_after(
    planned: &Option<certificates::PlannedMove>,
    msg: &OutboxMessage,
) -> Option<certificates::Seen> {
    match planned {
        Some(_) => None,
        None => msg.certificate_seen,
    }
}

/// The parts of a delivery step that [`complete`] and [`begin`] write alike: the message's
/// bytes in the log and the certificate's move from the state seen.
pub(super) struct FusedStep<'a> {
    pub(super) msg: &'a OutboxMessage,
    pub(super) planned: &'a certificates::PlannedMove,
    /// The message logged: a request we send, or the answer we received.
    pub(super) kind: Kind,
    pub(super) incoming: bool,
    pub(super) wire: &'a [u8],
    /// Its digest, as recorded with the attempt.
    pub(super) wire_sha256: &'a str,
    pub(super) now: DateTime<Utc>,
}

/// What [`complete`] writes beside its [`FusedStep`].
pub(super) struct FusedCompletion<'a> {
    pub(super) answer: &'a Answer<'a>,
    /// `delivery_attempts.outcome`.
    pub(super) outcome: &'a str,
    /// The outbox row's final state.
    pub(super) state: &'a str,
    /// The `acknowledgement.received` event's detail, as if the move was made.
    pub(super) detail: serde_json::Value,
}

/// The statement parts that both fused steps share, after their own update of the outbox row
/// (`o`, which returns `message_id` and guards every other part). `$1` now, `$2` message ID,
/// `$3` lease owner, `$4` certificate, `$5` its new state, `$6` the state seen, `$7` the
/// history's cause, `$8`–`$13` the log entry (direction, kind, partner, operation, digest,
/// bytes). The certificate's parts (`c`, `h`) write only if it is still in the state seen.
const LOG_AND_MOVE: &str = "\
    l AS (\
        INSERT INTO message_log (message_id, direction, kind, partner, operation, wire_sha256, wire, at) \
        SELECT message_id, $8, $9, $10, $11, $12, $13, $1 FROM o), \
    c AS (\
        UPDATE certificates SET state = $5, updated_at = $1 WHERE id = $4 AND state = $6 AND EXISTS (SELECT 1 FROM o) \
        RETURNING id, partner, direction, issuer, reference, kind), \
    h AS (\
        INSERT INTO certificate_history (certificate_id, from_state, to_state, at, cause, message_id) \
        SELECT id, $6, $5, $1, $7, $2 FROM c)";

/// A fused statement `sql` with its shared parameters (`$1`–`$13`, see [`LOG_AND_MOVE`])
/// bound; the caller binds its own from `$14`.
fn query<'q>(sql: &'q str, step: &FusedStep<'q>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let msg = step.msg;
    sqlx::query(sql)
        .bind(millis(step.now))
        .bind(msg.message_id.as_str())
        .bind(msg.lease_owner.as_str())
        .bind(msg.certificate_id.as_str())
        .bind(step.planned.to.as_str())
        .bind(step.planned.from.as_str())
        .bind(step.planned.cause.as_str())
        .bind(messages::direction(step.incoming))
        .bind(step.kind.as_str())
        .bind(msg.partner.as_str())
        .bind(msg.operation.as_str())
        .bind(step.wire_sha256)
        .bind(step.wire.to_vec())
}

/// The end of both statements: the counts of `o` and `c`, after undoing the whole statement if
/// `o` wrote and `c` did not.
const COUNTS_OR_UNDO: &str = "\
    SELECT (SELECT COUNT(*) FROM o) AS o, \
    CASE WHEN (SELECT COUNT(*) FROM o) = 1 AND (SELECT COUNT(*) FROM c) = 0 \
         THEN coconnect_undo_statement('the certificate moved since it was seen') ELSE 0 END AS undone";

/// `coconnect_undo_statement`'s SQLSTATE (migration 0009).
const UNDONE: &str = "CC001";

/// What a fused statement did: its row if it wrote every part; `None` if it undid itself
/// because the certificate moved (nothing written: the caller takes the usual way);
/// `LeaseLost` if `o` matched nothing (the claim is lost, and nothing was written).
fn outcome(
    result: Result<sqlx::any::AnyRow, sqlx::Error>,
    message_id: &str,
) -> Result<Option<sqlx::any::AnyRow>, StoreError> {
    let row = match result {
        Ok(row) => row,
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some(UNDONE) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if row.try_get::<i64, _>("o")? != 1 {
        return Err(StoreError::LeaseLost(message_id.to_owned()));
    }
    Ok(Some(row))
}

/// [`super::begin_attempt_in`]'s writes as one statement on PostgreSQL: the outbox row's
/// attempt and renewed claim, the attempt row, the request's bytes in the log, and the
/// certificate's move. Returns whether it wrote them (see [`outcome`]); false on SQLite.
pub(super) async fn begin(
    store: &Store,
    step: &FusedStep<'_>,
    attempt: i64,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if store.backend() != Backend::Postgres {
        return Ok(false);
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH o AS (\
                UPDATE outbox SET attempts = $14, updated_at = $1, first_attempt_at = COALESCE(first_attempt_at, $1), lease_until = $16 \
                WHERE message_id = $2 AND state = 'pending' AND lease_owner = $3 AND attempts = $15 \
                AND {NOT_HELD_BY_DOWN_PARTNER} RETURNING message_id), \
             a AS (\
                INSERT INTO delivery_attempts (message_id, attempt, started_at, wire_sha256, instance) \
                SELECT message_id, $14, $1, $12, $3 FROM o), \
             {LOG_AND_MOVE} \
             {COUNTS_OR_UNDO}"
        )
    });
    let result =
        query(&SQL, step).bind(attempt).bind(step.msg.attempts).bind(millis(lease_until)).fetch_one(store.pool()).await;
    let written = outcome(result, &step.msg.message_id)?.is_some();
    if written {
        store.note_fused_step();
    }
    Ok(written)
}

/// [`super::complete_in`]'s writes for an accepted answer as one statement on PostgreSQL: the
/// attempt's end, the answer in the message log, the outbox row closed, and the certificate's
/// move, history row and event. Returns, if it wrote them (see [`outcome`]), whether the
/// partner was marked down as they were written; `None` on SQLite.
pub(super) async fn complete(
    store: &Store,
    step: &FusedStep<'_>,
    completion: &FusedCompletion<'_>,
) -> Result<Option<bool>, StoreError> {
    if store.backend() != Backend::Postgres {
        return Ok(None);
    }
    // The event copies the certificate's identity from `c`'s RETURNING: the statement's parts
    // all read the snapshot from before it.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH o AS (\
                UPDATE outbox SET state = $14, lease_owner = NULL, lease_until = NULL, last_error = NULL, updated_at = $1 \
                WHERE message_id = $2 AND state = 'pending' AND lease_owner = $3 RETURNING message_id), \
             a AS (\
                UPDATE delivery_attempts SET finished_at = $1, outcome = $15, http_status = $16, error = $17 \
                WHERE message_id = $2 AND attempt = $18 AND EXISTS (SELECT 1 FROM o)), \
             {LOG_AND_MOVE}, \
             e AS (\
                INSERT INTO events (event_id, kind, certificate_id, partner, direction, issuer, reference, document_kind, message_id, detail, at) \
                SELECT $19, $20, id, partner, direction, issuer, reference, kind, $2, $21, $1 FROM c) \
             {COUNTS_OR_UNDO}, \
             (SELECT down_since FROM partner_status WHERE party = $10) AS partner_down_since"
        )
    });
    let result = completion_query(&SQL, step, completion).fetch_one(store.pool()).await;
    match outcome(result, &step.msg.message_id)? {
        Some(row) => {
            store.note_fused_step();
            Ok(Some(row.try_get::<Option<i64>, _>("partner_down_since")?.is_some()))
        }
        None => Ok(None),
    }
}

/// A completion's statement or script `sql`: the shared parameters (`$1`–`$13`) and its own
/// (`$14`–`$21`: the outbox row's final state, the attempt's outcome, HTTP status and error,
/// the attempt, the event's ID, kind and detail).
fn completion_query<'q>(
    sql: &'q str,
    step: &FusedStep<'q>,
    completion: &'q FusedCompletion<'q>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let answer = completion.answer;
    query(sql, step)
        .bind(completion.state)
        .bind(completion.outcome)
        .bind(Some(i64::from(answer.http_status)))
        .bind((!answer.accepted).then_some(answer.cause))
        .bind(answer.attempt)
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(EventKind::AcknowledgementReceived.as_str())
        .bind(completion.detail.to_string())
}

/// The SQLite scripts' parts after their own outbox statements, with [`LOG_AND_MOVE`]'s
/// parameters: the log entry, the certificate's move (returning a `c` row if it matched) and
/// its history row. Nothing here is conditional: a script whose outbox row or certificate did
/// not move is rolled back to its savepoint ([`script_outcome`]).
const LOG_AND_MOVE_SCRIPT: &str = "\
    INSERT INTO message_log (message_id, direction, kind, partner, operation, wire_sha256, wire, at) \
        VALUES ($2, $8, $9, $10, $11, $12, $13, $1); \
    UPDATE certificates SET state = $5, updated_at = $1 WHERE id = $4 AND state = $6 RETURNING 'c' AS part; \
    INSERT INTO certificate_history (certificate_id, from_state, to_state, at, cause, message_id) \
        VALUES ($4, $6, $5, $1, $7, $2)";

/// Where a script returns to when it did not write every part; its release once it did, and
/// the way back to it once it did not.
const SAVEPOINT: &str = "SAVEPOINT fused_step";
const RELEASE: &str = "RELEASE fused_step";
const UNDO: &str = "ROLLBACK TO fused_step; RELEASE fused_step";

/// What a SQLite script did, from the rows its statements returned: the rows, with the
/// savepoint released, if the outbox row (`o`) and the certificate (`c`) moved; otherwise,
/// rolled back to the savepoint, `LeaseLost` without `o` (the claim is lost) and `None` without
/// `c` or when a statement found a unique key taken (the usual way follows in the same
/// transaction and decides from what it finds). Any other error leaves the savepoint open: the
/// caller's transaction must then be abandoned, as the group commit does with a failed job.
async fn script_outcome(
    tx: &mut Tx<'_>,
    result: Result<Vec<AnyRow>, sqlx::Error>,
    message_id: &str,
) -> Result<Option<Vec<AnyRow>>, StoreError> {
    let parts = match result {
        Ok(rows) => {
            let parts: Vec<String> = rows.iter().filter_map(|r| r.try_get::<String, _>("part").ok()).collect();
            (parts.iter().any(|p| p == "o"), parts.iter().any(|p| p == "c"), rows)
        }
        // A key another worker's step took first (its attempt row): the usual way decides.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            tracing::debug!(%message_id, error = %e, "the step's script stopped; the usual way follows");
            (true, false, Vec::new())
        }
        Err(e) => return Err(e.into()),
    };
    match parts {
        (true, true, rows) => {
            sqlx::query(RELEASE).execute(&mut **tx).await?;
            Ok(Some(rows))
        }
        (moved_outbox, _, _) => {
            sqlx::query(UNDO).execute(&mut **tx).await?;
            match moved_outbox {
                true => Ok(None),
                false => Err(StoreError::LeaseLost(message_id.to_owned())),
            }
        }
    }
}

/// [`begin`] on SQLite, as one script in `tx` (see the module doc). Returns whether it wrote
/// the step; false (nothing written) when the usual way must follow, and always on PostgreSQL.
pub(super) async fn begin_in(
    tx: &mut Tx<'_>,
    store: &Store,
    step: &FusedStep<'_>,
    attempt: i64,
    lease_until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if store.backend() != Backend::Sqlite {
        return Ok(false);
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{SAVEPOINT}; \
             UPDATE outbox SET attempts = $14, updated_at = $1, first_attempt_at = COALESCE(first_attempt_at, $1), lease_until = $16 \
                WHERE message_id = $2 AND state = 'pending' AND lease_owner = $3 AND attempts = $15 \
                AND {NOT_HELD_BY_DOWN_PARTNER} RETURNING 'o' AS part; \
             INSERT INTO delivery_attempts (message_id, attempt, started_at, wire_sha256, instance) VALUES ($2, $14, $1, $12, $3); \
             {LOG_AND_MOVE_SCRIPT}"
        )
    });
    // All rows: the Any driver's fetch_one and fetch_optional look at the first statement only.
    let result =
        query(&SQL, step).bind(attempt).bind(step.msg.attempts).bind(millis(lease_until)).fetch_all(&mut **tx).await;
    let written = script_outcome(tx, result, &step.msg.message_id).await?.is_some();
    if written {
        store.note_fused_step();
    }
    Ok(written)
}

/// [`complete`] on SQLite, as one script in `tx` (see the module doc). Returns, if it wrote the
/// step, whether the partner was marked down as it was written; `None` (nothing written) when
/// the usual way must follow, and always on PostgreSQL.
pub(super) async fn complete_in(
    tx: &mut Tx<'_>,
    store: &Store,
    step: &FusedStep<'_>,
    completion: &FusedCompletion<'_>,
) -> Result<Option<bool>, StoreError> {
    if store.backend() != Backend::Sqlite {
        return Ok(None);
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{SAVEPOINT}; \
             UPDATE outbox SET state = $14, lease_owner = NULL, lease_until = NULL, last_error = NULL, updated_at = $1 \
                WHERE message_id = $2 AND state = 'pending' AND lease_owner = $3 RETURNING 'o' AS part; \
             UPDATE delivery_attempts SET finished_at = $1, outcome = $15, http_status = $16, error = $17 \
                WHERE message_id = $2 AND attempt = $18; \
             {LOG_AND_MOVE_SCRIPT}; \
             INSERT INTO events (event_id, kind, certificate_id, partner, direction, issuer, reference, document_kind, message_id, detail, at) \
                SELECT $19, $20, id, partner, direction, issuer, reference, kind, $2, $21, $1 FROM certificates WHERE id = $4; \
             SELECT 'down' AS part, (SELECT down_since FROM partner_status WHERE party = $10) AS partner_down_since"
        )
    });
    let result = completion_query(&SQL, step, completion).fetch_all(&mut **tx).await;
    let Some(rows) = script_outcome(tx, result, &step.msg.message_id).await? else {
        return Ok(None);
    };
    store.note_fused_step();
    let down = rows.iter().find(|r| r.try_get::<String, _>("part").is_ok_and(|p| p == "down"));
    match down {
        Some(row) => Ok(Some(row.try_get::<Option<i64>, _>("partner_down_since")?.is_some())),
        None => Err(StoreError::Corrupt("the completion script returned no partner row".into())),
    }
}

/// [`super::submit`]'s writes after its reference lock, as one statement in its transaction:
/// the certificate (unless an open amendment reserves its reference: `g` is then empty and
/// nothing is written), its first history row and its outbound message, leased to
/// `lease.owner` if [`super::may_lease_sql`] holds (`l`; [`super::submit_leased`]). The outbox
/// row names the certificate inserted by the same statement: the foreign key is checked at its
/// end. Returns the certificate and whether its message was leased.
#[allow(clippy::too_many_arguments)]
pub(super) async fn submit(
    tx: &mut Tx<'_>,
    cert: &NewCertificate<'_>,
    operation: &str,
    message_id: &str,
    body_xml: &str,
    cause: &str,
    now: DateTime<Utc>,
    lease: Option<super::Lease<'_>>,
) -> Result<(CertificateRecord, bool), StoreError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH g AS (\
                SELECT 1 AS go WHERE NOT EXISTS (SELECT 1 FROM amendments \
                WHERE replacement_reference = $3 AND state = $14 AND replacement_xml IS NOT NULL)), \
             l AS (\
                SELECT $20::text AS owner, $21::bigint AS until WHERE $20::text IS NOT NULL AND {may_lease}), \
             c AS (\
                INSERT INTO certificates {columns} SELECT {row} FROM g RETURNING id), \
             h AS (\
                INSERT INTO certificate_history (certificate_id, from_state, to_state, at, cause, message_id) \
                SELECT id, NULL, $6, $9, $15, $16 FROM c), \
             o AS (\
                INSERT INTO outbox (message_id, certificate_id, partner, operation, body_xml, state, attempts, next_attempt_at, created_at, updated_at, lease_owner, lease_until) \
                SELECT $16, id, $5, $17, $18, $19, 0, $9, $9, $9, (SELECT owner FROM l), (SELECT until FROM l) FROM c) \
             SELECT COUNT(*) AS inserted, EXISTS (SELECT 1 FROM l) AS leased FROM c",
            columns = certificates::INSERT_COLUMNS,
            row = certificates::NEW_ROW,
            may_lease = super::may_lease_sql("$5", "$9"),
        )
    });
    let state = transition(cert.direction, None, Event::Submitted, Role::Issuer)?;
    let id = uuid::Uuid::new_v4().to_string();
    let result = certificates::bind_new(sqlx::query(&SQL), &id, cert, state, now)
        .bind(amendments::REQUESTED)
        .bind(cause)
        .bind(message_id)
        .bind(operation)
        .bind(body_xml)
        .bind(super::PENDING)
        .bind(lease.map(|l| l.owner))
        .bind(lease.map(|l| millis(l.until)))
        .fetch_one(&mut **tx)
        .await;
    let row = match result {
        Ok(row) => row,
        // The certificate's unique identity; any other violation (a message ID used twice) is
        // no duplicate certificate.
        Err(e)
            if e.as_database_error().is_some_and(|d| d.is_unique_violation() && d.table() == Some("certificates")) =>
        {
            return Err(certificates::duplicate(cert))
        }
        Err(e) => return Err(e.into()),
    };
    if row.try_get::<i64, _>("inserted")? != 1 {
        return Err(super::reserved(cert));
    }
    Ok((certificates::new_record(id, cert, state, now), row.try_get("leased")?))
}
