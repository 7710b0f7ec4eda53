//! Partner delivery status, shared by every instance: paused by an operator (announced
//! downtime) and down (its last delivery attempt failed technically). While a partner is
//! down, its row also holds what the claims' one-probe rule reads (`outbox::claim`): the
//! message last claimed as its probe, and until when the messages in flight as it went down
//! count as one. Marking a partner down or up takes the claims' lock, so that the claims and
//! these marks see each other whole.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{from_millis, millis, Store, StoreError, Tx};

#[derive(Debug, Clone, Serialize, Default)]
pub struct PartnerStatus {
    pub party: String,
    pub paused_since: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
    pub down_since: Option<DateTime<Utc>>,
}

async fn ensure(tx: &mut Tx<'_>, party: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO partner_status (party, updated_at) VALUES ($1, $2) ON CONFLICT (party) DO NOTHING")
        .bind(party)
        .bind(millis(now))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn status(store: &Store, party: &str) -> Result<PartnerStatus, StoreError> {
    let row = sqlx::query("SELECT party, paused_since, paused_by, down_since FROM partner_status WHERE party = $1")
        .bind(party)
        .fetch_optional(store.pool())
        .await?;
    Ok(match row {
        Some(r) => PartnerStatus {
            party: r.try_get("party")?,
            paused_since: r.try_get::<Option<i64>, _>("paused_since")?.map(from_millis),
            paused_by: r.try_get("paused_by")?,
            down_since: r.try_get::<Option<i64>, _>("down_since")?.map(from_millis),
        },
        None => PartnerStatus { party: party.to_owned(), ..Default::default() },
    })
}

/// Whether `party` is marked down, read through `executor` (the read connections, or a
/// transaction that must see its own writes).
pub(super) async fn is_down<'e, E>(executor: E, party: &str) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let down: Option<Option<i64>> = sqlx::query_scalar("SELECT down_since FROM partner_status WHERE party = $1")
        .bind(party)
        .fetch_optional(executor)
        .await?;
    Ok(down.flatten().is_some())
}

/// A technical failure of the attempt to send `failed_message_id`: the partner is down from now
/// (if it was not already), and gets one probe at a time until it answers (`outbox::claim`).
///
/// The partner's other messages under a live lease now (sent, or claimed to be sent, while it
/// was up) are in flight as it goes down; no probe goes before the latest of their leases ends
/// or `in_flight_until`, whichever is sooner (`probe_not_before`): the caller's bound on when
/// the requests in flight now are over (their timeout). A bound is all the claims can check by
/// the partner's row alone: it may keep the first probe back that long after the failure,
/// where the messages in flight end sooner. The answer to one of them, whichever instance gets
/// it, marks the partner up at once (`outbox::Completed::partner_down`).
pub async fn mark_down(
    store: &Store,
    party: &str,
    failed_message_id: &str,
    in_flight_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // On the read connections first: while a partner is down, each of its failures would
    // otherwise take the claims' lock for nothing.
    if is_down(store.readers(), party).await? {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    // With the claims serialised, a message claimed before this is under a lease the read below
    // sees, and a claim after it sees the partner down.
    super::outbox::wait_for_claims(&mut tx, store.backend()).await?;
    ensure(&mut tx, party, now).await?;
    // The partner's leased messages are found through its pending ones (`outbox_partner_due`),
    // once an outage.
    sqlx::query(
        "UPDATE partner_status SET down_since = $1, updated_at = $1, probe_message_id = NULL, \
         probe_not_before = (SELECT CASE WHEN MAX(o.lease_until) > $4 THEN $4 ELSE MAX(o.lease_until) END \
                             FROM outbox o WHERE o.state = 'pending' AND o.partner = $2 \
                             AND o.lease_until >= $1 AND o.message_id <> $3) \
         WHERE party = $2 AND down_since IS NULL",
    )
    .bind(millis(now))
    .bind(party)
    .bind(failed_message_id)
    .bind(millis(in_flight_until))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The partner answered: if it was down, it is up again and its backlog (messages waiting for a
/// later retry mark) becomes due now, to be flushed in the original order at the bounded rate.
/// Returns true if the partner was down.
pub async fn mark_up(store: &Store, party: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    // Called after an answer recorded while the partner was marked down
    // (`outbox::Completed::partner_down`): a read first (on the read connections), so that
    // when another answer has marked it up meanwhile, this one takes no write transaction.
    if !is_down(store.readers(), party).await? {
        return Ok(false);
    }
    let mut tx = store.begin().await?;
    // A claim locks the outbox rows it takes, then the partner's row (its probe); this takes
    // the partner's row, then its pending outbox rows. The claims' lock first keeps the two
    // from waiting for each other.
    super::outbox::wait_for_claims(&mut tx, store.backend()).await?;
    let was_down = sqlx::query(
        "UPDATE partner_status SET down_since = NULL, updated_at = $1 WHERE party = $2 AND down_since IS NOT NULL",
    )
    .bind(millis(now))
    .bind(party)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if was_down {
        // Those tried (or deferred to a turn) become due since their submission, as those never
        // tried are (due time, then age: the claims' order), so that the backlog goes in the
        // order it was submitted. Only they are written: after a long outage most of the
        // backlog was never tried, and this runs under the claims' lock.
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = created_at WHERE partner = $1 AND state = 'pending' AND next_attempt_at > created_at",
        )
        .bind(party)
        .execute(&mut *tx)
        .await?;
        tracing::info!(event = "partner_up", partner = party, "partner answers again; flushing its backlog");
    }
    tx.commit().await?;
    Ok(was_down)
}

/// Pauses delivery to a partner (announced downtime). False if it was already paused.
pub async fn pause(store: &Store, party: &str, actor: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    ensure(&mut tx, party, now).await?;
    let done = sqlx::query("UPDATE partner_status SET paused_since = $1, paused_by = $2, updated_at = $1 WHERE party = $3 AND paused_since IS NULL")
        .bind(millis(now))
        .bind(actor)
        .bind(party)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if done {
        super::operator::record(&mut tx, store, actor, "pause-partner", party, "", now).await?;
    }
    tx.commit().await?;
    Ok(done)
}

/// Resumes delivery. The paused time does not count against the retry schedule: a message
/// already on its schedule has it shifted by the part of the pause it spent there. A message
/// not attempted yet (submitted during the pause, or retried by an operator) is not shifted:
/// it is due at once, so it still goes out within the hour of its submission's turn.
pub async fn resume(store: &Store, party: &str, actor: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let row = sqlx::query(&format!("SELECT paused_since FROM partner_status WHERE party = $1{}", store.for_update()))
        .bind(party)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(since) = row.map(|r| r.try_get::<Option<i64>, _>("paused_since")).transpose()?.flatten() else {
        return Ok(false);
    };
    let paused_for = (millis(now) - since).max(0);
    // Both SET expressions read the row's old first_attempt_at.
    let shift = "(CASE WHEN first_attempt_at > $1 THEN $2 - first_attempt_at ELSE $2 - $1 END)";
    sqlx::query(&format!(
        "UPDATE outbox SET next_attempt_at = next_attempt_at + {shift}, first_attempt_at = first_attempt_at + {shift} \
         WHERE partner = $3 AND state = 'pending' AND first_attempt_at IS NOT NULL AND first_attempt_at < $2"
    ))
    .bind(since)
    .bind(millis(now))
    .bind(party)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE partner_status SET paused_since = NULL, paused_by = NULL, updated_at = $1 WHERE party = $2")
        .bind(millis(now))
        .bind(party)
        .execute(&mut *tx)
        .await?;
    super::operator::record(
        &mut tx,
        store,
        actor,
        "resume-partner",
        party,
        &format!("paused for {} s", paused_for / 1000),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
