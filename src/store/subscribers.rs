//! Push subscribers' positions in the event log: one row per configured subscriber (webhook or
//! broker), with how far it has been served, who serves it now (a lease, so that with several
//! instances exactly one pushes to a subscriber at a time, in order), and its failure state.
//!
//! The event log is the durable queue and `position` the subscriber's place in it: an event is
//! behind the position only once the subscriber confirmed it (HTTP 2xx, broker confirm). A
//! process that dies between the confirmation and [`advance`] pushes it again (at least once).
//!
//! Owns: `backend_subscribers` (migration 0007).
//! Must never: move a position backwards, or move it for a worker whose lease is gone; delete
//! a subscriber's row (a subscriber no instance serves any more is only made inactive, and
//! keeps its position should it come back).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use super::alerts::{self, NewAlert};
use super::{from_millis, millis, Store, StoreError};

/// Alert raised when a subscriber has failed for longer than its alert delay.
pub const ALERT_DOWN: &str = "backend.subscriber_down";

/// Registers this instance's subscribers `names` as active: new ones start at the beginning of
/// the log, known ones keep their position. Safe when several instances start at once.
pub async fn register(store: &Store, names: &[String], now: DateTime<Utc>) -> Result<(), StoreError> {
    for name in names {
        sqlx::query(
            "INSERT INTO backend_subscribers (name, created_at, updated_at) VALUES ($1, $2, $2) \
             ON CONFLICT (name) DO UPDATE SET active = 1, updated_at = $2",
        )
        .bind(name)
        .bind(millis(now))
        .execute(store.pool())
        .await?;
    }
    Ok(())
}

/// Makes inactive the subscribers that no instance has served since `unserved_since` and that
/// are not among `names` (this instance's): removed from every configuration, their position
/// no longer holds retention. An instance with an older configuration during a rolling
/// change does not stop a subscriber the others serve (they keep touching it). Returns the
/// names retired.
pub async fn retire_unserved(
    store: &Store,
    names: &[String],
    unserved_since: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let candidates: Vec<String> =
        sqlx::query_scalar("SELECT name FROM backend_subscribers WHERE active = 1 AND updated_at < $1")
            .bind(millis(unserved_since))
            .fetch_all(store.pool())
            .await?;
    let mut retired = Vec::new();
    for name in candidates.into_iter().filter(|n| !names.contains(n)) {
        let done =
            sqlx::query("UPDATE backend_subscribers SET active = 0 WHERE name = $1 AND active = 1 AND updated_at < $2")
                .bind(&name)
                .bind(millis(unserved_since))
                .execute(store.pool())
                .await?;
        if done.rows_affected() == 1 {
            retired.push(name);
        }
    }
    Ok(retired)
}

/// A subscriber as claimed by a worker.
#[derive(Debug, Clone)]
pub struct Claim {
    pub name: String,
    pub owner: String,
    pub position: i64,
    pub failures: i64,
    pub failing_since: Option<DateTime<Utc>>,
    pub down_alerted: bool,
}

/// Takes (or renews) the lease on subscriber `name` for `owner` until `now + lease`, if it is
/// not leased by another live owner and is due (`next_attempt_at` passed). An instance serves
/// the subscribers of its configuration; claiming one marks it active (served).
pub async fn claim(
    store: &Store,
    name: &str,
    owner: &str,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<Claim>, StoreError> {
    let row = sqlx::query(
        "UPDATE backend_subscribers SET lease_owner = $1, lease_until = $2, updated_at = $3, active = 1 \
         WHERE name = $4 AND next_attempt_at <= $3 \
         AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $3) \
         RETURNING position, failures, failing_since, down_alerted",
    )
    .bind(owner)
    .bind(millis(now + lease))
    .bind(millis(now))
    .bind(name)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Claim {
        name: name.to_owned(),
        owner: owner.to_owned(),
        position: row.try_get("position")?,
        failures: row.try_get("failures")?,
        failing_since: row.try_get::<Option<i64>, _>("failing_since")?.map(from_millis),
        down_alerted: row.try_get::<i64, _>("down_alerted")? != 0,
    }))
}

/// Extends the lease to `now + lease` before a push, so that no other instance takes the
/// subscriber over while it is under way. `LeaseLost` if it is no longer this owner's.
pub async fn renew(store: &Store, claim: &Claim, now: DateTime<Utc>, lease: Duration) -> Result<(), StoreError> {
    let renewed = sqlx::query(
        "UPDATE backend_subscribers SET lease_until = $1, updated_at = $2 WHERE name = $3 AND lease_owner = $4",
    )
    .bind(millis(now + lease))
    .bind(millis(now))
    .bind(&claim.name)
    .bind(&claim.owner)
    .execute(store.pool())
    .await?;
    if renewed.rows_affected() != 1 {
        return Err(StoreError::LeaseLost(format!("subscriber {}", claim.name)));
    }
    Ok(())
}

/// The subscriber confirmed everything up to `position` (`delivered` of them were pushed, the
/// rest did not match its filters): the position moves there, its failure state is cleared
/// and the lease renewed. `LeaseLost` if another owner took it over meanwhile.
pub async fn advance(
    store: &Store,
    claim: &mut Claim,
    position: i64,
    delivered: i64,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<(), StoreError> {
    let moved = sqlx::query(
        "UPDATE backend_subscribers SET position = $1, delivered = delivered + $2, \
         last_delivered_at = CASE WHEN $2 > 0 THEN $3 ELSE last_delivered_at END, \
         failures = 0, failing_since = NULL, last_error = NULL, down_alerted = 0, next_attempt_at = 0, \
         lease_until = $4, updated_at = $3 \
         WHERE name = $5 AND lease_owner = $6 AND position <= $1",
    )
    .bind(position)
    .bind(delivered)
    .bind(millis(now))
    .bind(millis(now + lease))
    .bind(&claim.name)
    .bind(&claim.owner)
    .execute(store.pool())
    .await?;
    if moved.rows_affected() != 1 {
        return Err(StoreError::LeaseLost(format!("subscriber {}", claim.name)));
    }
    claim.position = position;
    claim.failures = 0;
    claim.failing_since = None;
    claim.down_alerted = false;
    Ok(())
}

/// A push failed: the failure is recorded, the next attempt set for `next_attempt_at`, the
/// lease given up; once the subscriber has been failing for `alert_after`, the alert
/// [`ALERT_DOWN`] is raised (once per outage) in the same transaction. Returns whether it was.
pub async fn fail(
    store: &Store,
    claim: &Claim,
    error: &str,
    next_attempt_at: DateTime<Utc>,
    alert_after: Duration,
    webhook: bool,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let since = claim.failing_since.unwrap_or(now);
    let raise = !claim.down_alerted && now - since >= alert_after;
    let mut tx = store.begin().await?;
    let updated = sqlx::query(
        "UPDATE backend_subscribers SET failures = failures + 1, failing_since = $1, last_error = $2, \
         next_attempt_at = $3, down_alerted = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
         WHERE name = $6 AND lease_owner = $7",
    )
    .bind(millis(since))
    .bind(error)
    .bind(millis(next_attempt_at))
    .bind(i64::from(raise || claim.down_alerted))
    .bind(millis(now))
    .bind(&claim.name)
    .bind(&claim.owner)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::LeaseLost(format!("subscriber {}", claim.name)));
    }
    if raise {
        let detail = format!(
            "back-end subscriber {} has failed since {} ({} attempts): {error}; its events wait, none is lost",
            claim.name,
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            claim.failures + 1
        );
        let alert =
            NewAlert { name: ALERT_DOWN, partner: None, message_id: None, certificate_id: None, detail: &detail };
        alerts::raise(&mut tx, &alert, webhook, now).await?;
    }
    tx.commit().await?;
    Ok(raise)
}

/// Gives the lease up (a stopping worker), keeping everything else.
pub async fn release(store: &Store, claim: &Claim) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE backend_subscribers SET lease_owner = NULL, lease_until = NULL WHERE name = $1 AND lease_owner = $2",
    )
    .bind(&claim.name)
    .bind(&claim.owner)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// A subscriber's state, for `ops` and the API.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub active: bool,
    pub position: i64,
    pub delivered: i64,
    pub last_delivered_at: Option<DateTime<Utc>>,
    pub failures: i64,
    pub failing_since: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub leased_by: Option<String>,
}

pub async fn list(store: &Store) -> Result<Vec<Status>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, active, position, delivered, last_delivered_at, failures, failing_since, next_attempt_at, last_error, lease_owner, lease_until FROM backend_subscribers ORDER BY name",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let next: i64 = row.try_get("next_attempt_at")?;
            Ok(Status {
                name: row.try_get("name")?,
                active: row.try_get::<i64, _>("active")? != 0,
                position: row.try_get("position")?,
                delivered: row.try_get("delivered")?,
                last_delivered_at: row.try_get::<Option<i64>, _>("last_delivered_at")?.map(from_millis),
                failures: row.try_get("failures")?,
                failing_since: row.try_get::<Option<i64>, _>("failing_since")?.map(from_millis),
                next_attempt_at: (next > 0).then(|| from_millis(next)),
                last_error: row.try_get("last_error")?,
                leased_by: row.try_get("lease_owner")?,
            })
        })
        .collect()
}

/// The lowest position of the active subscribers (`None`: there are none): events after it
/// are still owed to someone, and retention keeps their documents.
pub async fn lowest_active_position<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar("SELECT MIN(position) FROM backend_subscribers WHERE active = 1").fetch_one(db).await?)
}
