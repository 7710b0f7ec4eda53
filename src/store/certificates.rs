//! Certificates (COs and DOs) and their history. [`apply`] (with its fast path from a state the
//! caller saw, `apply_seen`) and [`insert`] are the only writers of `state`: they consult
//! `crate::lifecycle::transition` with the role of the caller and write the history row in the
//! caller's transaction; a refused event changes nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Any, Executor, Row};

use super::{from_millis, is_unique_violation, millis, Store, StoreError, Tx};
use crate::lifecycle::{transition, DeliveryOutcome, Direction, Event, Role, State};
use crate::payload::DocumentKind;

/// A certificate as stored.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateRecord {
    pub id: String,
    pub issuer: String,
    pub reference: String,
    pub direction: Direction,
    pub partner: String,
    pub state: State,
    pub kind: DocumentKind,
    /// The certificate this one replaces (re-issue after an accepted cancellation).
    pub replaces: Option<String>,
    /// Outbound: the verification code printed on the CO (Annex III look-up).
    #[serde(skip)]
    pub reference_code: Option<String>,
    /// Inbound DO: why it must be verified (exporter not on the approved list).
    pub verification_flag: Option<String>,
    pub content_sha256: String,
    #[serde(skip)]
    pub co_xml: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When retention erased `co_xml` (digest, identity and history stay).
    pub purged_at: Option<DateTime<Utc>>,
}

/// One transition, as written.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub from: Option<State>,
    pub to: State,
    pub at: DateTime<Utc>,
    pub cause: String,
    pub message_id: Option<String>,
}

/// What identifies and describes a new certificate.
pub struct NewCertificate<'a> {
    pub issuer: &'a str,
    pub reference: &'a str,
    pub direction: Direction,
    pub partner: &'a str,
    pub kind: DocumentKind,
    pub replaces: Option<&'a str>,
    pub reference_code: Option<&'a str>,
    pub verification_flag: Option<&'a str>,
    pub content_sha256: &'a str,
    pub co_xml: &'a str,
}

/// Inserts a certificate in the state `event` (caused by `role`) creates, with its first history
/// row. A second certificate with the same issuer, reference and direction is `Duplicate`.
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    tx: &mut Tx<'_>,
    new: &NewCertificate<'_>,
    event: Event,
    role: Role,
    cause: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CertificateRecord, StoreError> {
    let state = transition(new.direction, None, event, role)?;
    let id = uuid::Uuid::new_v4().to_string();
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("INSERT INTO certificates {INSERT_COLUMNS} VALUES ({NEW_ROW})"));
    let inserted = bind_new(sqlx::query(&SQL), &id, new, state, now).execute(&mut **tx).await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Err(duplicate(new)),
        other => other?,
    };
    write_history(tx, &id, None, state, cause, message_id, now).await?;
    Ok(new_record(id, new, state, now))
}

/// The columns a new certificate's row is written with, and their values as bound by
/// [`bind_new`] (`$1`–`$13`).
pub(super) const INSERT_COLUMNS: &str = "(id, issuer, reference, direction, partner, state, content_sha256, co_xml, \
     created_at, updated_at, kind, replaces, reference_code, verification_flag)";
pub(super) const NEW_ROW: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13";

/// `query` with a new certificate's row bound as `$1`–`$13` (see [`INSERT_COLUMNS`]); the
/// caller binds its own from `$14`.
pub(super) fn bind_new<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    id: &'q str,
    new: &NewCertificate<'q>,
    state: State,
    now: DateTime<Utc>,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(id)
        .bind(new.issuer)
        .bind(new.reference)
        .bind(new.direction.as_str())
        .bind(new.partner)
        .bind(state.as_str())
        .bind(new.content_sha256)
        .bind(new.co_xml)
        .bind(millis(now))
        .bind(new.kind.as_str())
        .bind(new.replaces)
        .bind(new.reference_code)
        .bind(new.verification_flag)
}

/// The refusal of a second certificate with the same issuer, reference and direction.
pub(super) fn duplicate(new: &NewCertificate<'_>) -> StoreError {
    StoreError::Duplicate(format!("certificate {} {} ({})", new.issuer, new.reference, new.direction.as_str()))
}

/// The record of `new`, as inserted with `id` in `state` at `now`.
pub(super) fn new_record(id: String, new: &NewCertificate<'_>, state: State, now: DateTime<Utc>) -> CertificateRecord {
    CertificateRecord {
        id,
        issuer: new.issuer.to_owned(),
        reference: new.reference.to_owned(),
        direction: new.direction,
        partner: new.partner.to_owned(),
        state,
        kind: new.kind,
        replaces: new.replaces.map(str::to_owned),
        reference_code: new.reference_code.map(str::to_owned),
        verification_flag: new.verification_flag.map(str::to_owned),
        content_sha256: new.content_sha256.to_owned(),
        co_xml: new.co_xml.to_owned(),
        created_at: now,
        updated_at: now,
        purged_at: None,
    }
}

/// Applies `event`, caused by `role`, to certificate `id`: refuses what the lifecycle refuses
/// (nothing written), otherwise writes the new state and the history row. Returns the new state.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    tx: &mut Tx<'_>,
    store: &Store,
    id: &str,
    event: Event,
    role: Role,
    cause: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    let row = sqlx::query(&format!("SELECT state, direction FROM certificates WHERE id = $1{}", store.for_update()))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("certificate {id}")))?;
    let from = parse_state(&row.try_get::<String, _>("state")?)?;
    let direction = parse_direction(&row.try_get::<String, _>("direction")?)?;
    let to = transition(direction, Some(from), event, role)?;
    if to != from {
        let updated = sqlx::query(MOVE)
            .bind(to.as_str())
            .bind(millis(now))
            .bind(id)
            .bind(from.as_str())
            .execute(&mut **tx)
            .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!("certificate {id} changed state concurrently")));
        }
    }
    write_history(tx, id, Some(from), to, cause, message_id, now).await?;
    Ok(to)
}

/// A certificate's direction and state as the caller last saw them (its claim, its previous
/// step). [`delivery_event`] then moves it with one conditional UPDATE instead of a locking read
/// and an UPDATE; if the state changed meanwhile, the UPDATE matches nothing and the event goes
/// the usual way ([`apply`]), so a stale view costs a statement, never a wrong state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub direction: Direction,
    pub state: State,
}

impl Seen {
    /// From the stored column values; `None` if either is missing or unknown.
    pub(crate) fn parse(direction: Option<&str>, state: Option<&str>) -> Option<Seen> {
        Some(Seen { direction: Direction::parse(direction?)?, state: State::parse(state?)? })
    }
}

/// [`apply`], first trying the transition from the state `seen` (see [`Seen`]).
#[allow(clippy::too_many_arguments)]
async fn apply_seen(
    tx: &mut Tx<'_>,
    store: &Store,
    id: &str,
    seen: Option<Seen>,
    event: Event,
    role: Role,
    cause: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    if let Some((seen, to)) = seen.and_then(|seen| Some((seen, move_from_seen(seen, event, role)?))) {
        let updated = sqlx::query(MOVE)
            .bind(to.as_str())
            .bind(millis(now))
            .bind(id)
            .bind(seen.state.as_str())
            .execute(&mut **tx)
            .await?;
        if updated.rows_affected() == 1 {
            write_history(tx, id, Some(seen.state), to, cause, message_id, now).await?;
            return Ok(to);
        }
    }
    apply(tx, store, id, event, role, cause, message_id, now).await
}

/// The state `event` moves a certificate to from the state `seen`, when that is a move the
/// conditional UPDATE may make. A transition the seen state refuses, or one that changes
/// nothing, takes the usual way: its answer must come from the state as it is now.
fn move_from_seen(seen: Seen, event: Event, role: Role) -> Option<State> {
    transition(seen.direction, Some(seen.state), event, role).ok().filter(|to| *to != seen.state)
}

/// A move of the certificate a delivery outcome brings that one conditional UPDATE from the
/// state seen may make (see [`Seen`]); `None` where [`delivery_event`] must take another way
/// (a note, a cancellation's amendment, nothing seen, a refused or empty transition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMove {
    pub from: State,
    pub to: State,
    /// The history row's cause, as [`delivery_event`] writes it.
    pub cause: String,
}

/// The [`PlannedMove`] of [`delivery_event`] for these arguments, if it has one. A caller that
/// writes it itself (a fused statement) must fall back to [`delivery_event`] when the UPDATE
/// matched nothing.
pub fn planned_delivery_move(
    operation: &str,
    seen: Option<Seen>,
    outcome: DeliveryOutcome,
    cause: &str,
) -> Option<PlannedMove> {
    let (event, role) = crate::lifecycle::delivery_event(operation, outcome)?;
    if event == Event::CancellationUndelivered {
        return None;
    }
    let seen = seen?;
    let to = move_from_seen(seen, event, role)?;
    Some(PlannedMove { from: seen.state, to, cause: delivery_cause(operation, cause) })
}

/// The history cause of a delivery outcome of `operation`.
fn delivery_cause(operation: &str, cause: &str) -> String {
    format!("{operation}: {cause}")
}

/// Moves a certificate from the state it is known to have (`$4`) to `$1`.
const MOVE: &str = "UPDATE certificates SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4";

/// Notes something that happened to certificate `id` in its history without changing its state
/// (a delivery of a message that does not drive the lifecycle). Returns the current state.
pub async fn note(
    tx: &mut Tx<'_>,
    id: &str,
    cause: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    let row = sqlx::query("SELECT state FROM certificates WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("certificate {id}")))?;
    let state = parse_state(&row.try_get::<String, _>("state")?)?;
    write_history(tx, id, Some(state), state, cause, message_id, now).await?;
    Ok(state)
}

/// Applies the certificate event a delivery outcome of `operation` brings, or only notes it
/// (see [`crate::lifecycle::delivery_event`]). A cancellation notification that ends
/// undelivered closes its own amendment, and moves the certificate only if that amendment was
/// still open. An outcome the gateway brings but the current state no longer allows (an answer
/// crossed it) is noted, not refused: the outbox row must close whatever happened meanwhile.
/// An operator's action the state does not allow is refused. `seen`: the certificate as the
/// caller last saw it, if it did (see [`Seen`]).
#[allow(clippy::too_many_arguments)]
pub async fn delivery_event(
    tx: &mut Tx<'_>,
    store: &Store,
    operation: &str,
    id: &str,
    seen: Option<Seen>,
    outcome: DeliveryOutcome,
    cause: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<State, StoreError> {
    let cause = delivery_cause(operation, cause);
    let Some((event, role)) = crate::lifecycle::delivery_event(operation, outcome) else {
        return note(tx, id, &cause, message_id, now).await;
    };
    if event == Event::CancellationUndelivered {
        let closed = match message_id {
            Some(m) => super::amendments::close_undelivered(tx, id, m, &cause, now).await?,
            None => false,
        };
        if !closed {
            return note(tx, id, &format!("{cause} (its amendment was already answered)"), message_id, now).await;
        }
    }
    match apply_seen(tx, store, id, seen, event, role, &cause, message_id, now).await {
        Err(StoreError::Illegal(refusal)) if role == Role::Gateway => {
            note(tx, id, &format!("{cause} (not applied: {refusal})"), message_id, now).await
        }
        other => other,
    }
}

async fn write_history(
    tx: &mut Tx<'_>,
    id: &str,
    from: Option<State>,
    to: State,
    cause: &str,
    message_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO certificate_history (certificate_id, from_state, to_state, at, cause, message_id) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(from.map(|s| s.as_str()))
        .bind(to.as_str())
        .bind(millis(now))
        .bind(cause)
        .bind(message_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn parse_state(s: &str) -> Result<State, StoreError> {
    State::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown state {s:?}")))
}

fn parse_kind(s: &str) -> Result<DocumentKind, StoreError> {
    DocumentKind::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown document kind {s:?}")))
}

fn parse_direction(s: &str) -> Result<Direction, StoreError> {
    Direction::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown direction {s:?}")))
}

const COLUMNS: &str = "id, issuer, reference, direction, partner, state, kind, replaces, reference_code, verification_flag, content_sha256, co_xml, created_at, updated_at, purged_at";

fn record(row: &sqlx::any::AnyRow) -> Result<CertificateRecord, StoreError> {
    Ok(CertificateRecord {
        id: row.try_get("id")?,
        issuer: row.try_get("issuer")?,
        reference: row.try_get("reference")?,
        direction: parse_direction(&row.try_get::<String, _>("direction")?)?,
        partner: row.try_get("partner")?,
        state: parse_state(&row.try_get::<String, _>("state")?)?,
        kind: parse_kind(&row.try_get::<String, _>("kind")?)?,
        replaces: row.try_get("replaces")?,
        reference_code: row.try_get("reference_code")?,
        verification_flag: row.try_get("verification_flag")?,
        content_sha256: row.try_get("content_sha256")?,
        co_xml: row.try_get("co_xml")?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        purged_at: row.try_get::<Option<i64>, _>("purged_at")?.map(from_millis),
    })
}

/// The certificate `id`, read through `db`: the pool, or a snapshot (`Store::begin_snapshot`)
/// when it must agree with other reads.
pub async fn get<'e>(db: impl Executor<'e, Database = Any>, id: &str) -> Result<Option<CertificateRecord>, StoreError> {
    let row =
        sqlx::query(&format!("SELECT {COLUMNS} FROM certificates WHERE id = $1")).bind(id).fetch_optional(db).await?;
    row.as_ref().map(record).transpose()
}

/// Certificates with this issuer and reference (one per direction at most).
pub async fn find<'e>(
    db: impl Executor<'e, Database = Any>,
    issuer: &str,
    reference: &str,
) -> Result<Vec<CertificateRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM certificates WHERE issuer = $1 AND reference = $2 ORDER BY direction"
    ))
    .bind(issuer)
    .bind(reference)
    .fetch_all(db)
    .await?;
    rows.iter().map(record).collect()
}

/// Serialises, until `tx` ends, every transaction that checks whether `issuer`'s `reference`
/// is free and then takes it (a submission, an amendment reserving it for its replacement):
/// without it two of them on PostgreSQL could both find it free. SQLite's single connection
/// serialises them already.
pub(crate) async fn lock_reference(
    tx: &mut Tx<'_>,
    store: &Store,
    issuer: &str,
    reference: &str,
) -> Result<(), StoreError> {
    lock_reference_and(tx, store, issuer, reference, None).await
}

/// [`lock_reference`], then the advisory lock `also` if given (PostgreSQL), in the same
/// statement: one round trip.
pub(crate) async fn lock_reference_and(
    tx: &mut Tx<'_>,
    store: &Store,
    issuer: &str,
    reference: &str,
    also: Option<i64>,
) -> Result<(), StoreError> {
    if store.backend() == super::Backend::Postgres {
        let key = format!("coconnect reference\n{issuer}\n{reference}");
        let query = match also {
            None => sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key),
            Some(lock) => {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0)), pg_advisory_xact_lock($2)")
                    .bind(key)
                    .bind(lock)
            }
        };
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// What a partner's look-up may compare before anything else is read: the id and reference
/// code of the document of `kind` we sent `partner` under this issuer and
/// reference. Small columns only, so a document held for another partner (or none) costs the
/// same one indexed read, whatever its size.
pub async fn lookup_candidate(
    store: &Store,
    issuer: &str,
    reference: &str,
    partner: &str,
    kind: DocumentKind,
) -> Result<Option<(String, Option<String>)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, reference_code FROM certificates \
         WHERE issuer = $1 AND reference = $2 AND direction = $3 AND partner = $4 AND kind = $5",
    )
    .bind(issuer)
    .bind(reference)
    .bind(Direction::Outbound.as_str())
    .bind(partner)
    .bind(kind.as_str())
    .fetch_optional(store.pool())
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("reference_code")?))).transpose()
}

/// The certificate `id` inside a transaction, locked for update where the backend can.
pub(crate) async fn get_in(tx: &mut Tx<'_>, store: &Store, id: &str) -> Result<Option<CertificateRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM certificates WHERE id = $1{}", store.for_update()))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(record).transpose()
}

pub(crate) async fn find_in(
    tx: &mut Tx<'_>,
    issuer: &str,
    reference: &str,
    direction: Direction,
) -> Result<Option<CertificateRecord>, StoreError> {
    find_by(&mut **tx, issuer, reference, direction).await
}

/// [`find_in`] on any executor (a pool for a read outside a transaction).
pub(crate) async fn find_by<'e>(
    db: impl Executor<'e, Database = Any>,
    issuer: &str,
    reference: &str,
    direction: Direction,
) -> Result<Option<CertificateRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM certificates WHERE issuer = $1 AND reference = $2 AND direction = $3"
    ))
    .bind(issuer)
    .bind(reference)
    .bind(direction.as_str())
    .fetch_optional(db)
    .await?;
    row.as_ref().map(record).transpose()
}

/// The certificate that replaced `id` (re-issue after an accepted cancellation), if any.
pub async fn replaced_by<'e>(db: impl Executor<'e, Database = Any>, id: &str) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT id FROM certificates WHERE replaces = $1").bind(id).fetch_optional(db).await?;
    row.map(|r| Ok(r.try_get("id")?)).transpose()
}

pub async fn history<'e>(db: impl Executor<'e, Database = Any>, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
    let rows = sqlx::query("SELECT from_state, to_state, at, cause, message_id FROM certificate_history WHERE certificate_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(HistoryEntry {
                from: r.try_get::<Option<String>, _>("from_state")?.as_deref().map(parse_state).transpose()?,
                to: parse_state(&r.try_get::<String, _>("to_state")?)?,
                at: from_millis(r.try_get("at")?),
                cause: r.try_get("cause")?,
                message_id: r.try_get("message_id")?,
            })
        })
        .collect()
}

/// Which certificates a listing wants (every field optional).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub direction: Option<Direction>,
    pub partner: Option<String>,
    pub state: Option<State>,
    pub kind: Option<DocumentKind>,
    /// Only those after this one in the listing's order (creation time, then ID).
    pub after: Option<String>,
    pub limit: i64,
}

/// Certificates in the order they were created (then by ID), without their content.
pub async fn list<'e, E>(db: E, filter: &ListFilter) -> Result<Vec<CertificateRecord>, StoreError>
where
    E: Executor<'e, Database = Any>,
{
    let mut sql = format!("SELECT {} FROM certificates c WHERE 1 = 1", COLUMNS.replace("co_xml", "'' AS co_xml"));
    let mut values: Vec<String> = Vec::new();
    let mut condition = |sql: &mut String, column: &str, value: Option<String>| {
        if let Some(v) = value {
            values.push(v);
            sql.push_str(&format!(" AND {column} = ${}", values.len()));
        }
    };
    condition(&mut sql, "direction", filter.direction.map(|d| d.as_str().to_owned()));
    condition(&mut sql, "partner", filter.partner.clone());
    condition(&mut sql, "state", filter.state.map(|s| s.as_str().to_owned()));
    condition(&mut sql, "kind", filter.kind.map(|k| k.as_str().to_owned()));
    if let Some(after) = &filter.after {
        values.push(after.clone());
        let n = values.len();
        sql.push_str(&format!(
            " AND (c.created_at, c.id) > (SELECT a.created_at, a.id FROM certificates a WHERE a.id = ${n})"
        ));
    }
    sql.push_str(&format!(" ORDER BY c.created_at, c.id LIMIT {}", filter.limit.clamp(1, 1000)));
    let mut query = sqlx::query(&sql);
    for v in &values {
        query = query.bind(v.as_str());
    }
    let rows = query.fetch_all(db).await?;
    rows.iter().map(record).collect()
}

/// Number of certificates (for tests and health checks).
pub async fn count(store: &Store) -> Result<i64, StoreError> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM certificates").fetch_one(store.pool()).await?.try_get("n")?)
}
