//! Persisted alerts (framework 4.3.3: "an alert must be triggered for any rejected message"),
//! with their webhook delivery state and the operator's acknowledgement.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{from_millis, millis, Store, StoreError, Tx};

/// Stable alert names (also the `alert` field of the tracing event).
pub const REJECTED: &str = "co.rejected";
pub const UNDELIVERED_AFTER_FIRST_HOUR: &str = "co.undelivered_after_first_hour";
pub const DELIVERY_FAILED: &str = "co.delivery_failed";
pub const ACK_UNVERIFIED: &str = "ack.unverified";
/// A declaration of origin from an exporter that is not on the partner's approved list.
pub const DO_UNLISTED_EXPORTER: &str = "do.unlisted_exporter";
/// An accepted cancellation whose replacement could not be queued (its reference is taken).
pub const REPLACEMENT_CONFLICT: &str = "amendment.replacement_conflict";

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: i64,
    pub name: String,
    pub partner: Option<String>,
    pub message_id: Option<String>,
    pub certificate_id: Option<String>,
    pub detail: String,
    pub created_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub webhook_state: String,
}

/// What an alert is about.
pub struct NewAlert<'a> {
    pub name: &'a str,
    pub partner: Option<&'a str>,
    pub message_id: Option<&'a str>,
    pub certificate_id: Option<&'a str>,
    pub detail: &'a str,
}

/// Records an alert in the caller's transaction and emits its tracing event. `webhook` says
/// whether a webhook is configured (the alert is then queued for it).
pub async fn raise(tx: &mut Tx<'_>, alert: &NewAlert<'_>, webhook: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO alerts (name, partner, message_id, certificate_id, detail, created_at, webhook_state, webhook_attempts, webhook_next_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $6)")
        .bind(alert.name)
        .bind(alert.partner)
        .bind(alert.message_id)
        .bind(alert.certificate_id)
        .bind(alert.detail)
        .bind(millis(now))
        .bind(if webhook { "pending" } else { "none" })
        .execute(&mut **tx)
        .await?;
    tracing::warn!(
        alert = alert.name,
        partner = alert.partner,
        message_id = alert.message_id,
        certificate_id = alert.certificate_id,
        detail = alert.detail,
        "alert raised"
    );
    Ok(())
}

/// [`raise`] in a transaction of its own.
pub async fn raise_now(
    store: &Store,
    alert: &NewAlert<'_>,
    webhook: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    raise(&mut tx, alert, webhook, now).await?;
    tx.commit().await?;
    Ok(())
}

const COLUMNS: &str = "id, name, partner, message_id, certificate_id, detail, created_at, acknowledged_at, acknowledged_by, webhook_state";

fn alert(r: &sqlx::any::AnyRow) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        partner: r.try_get("partner")?,
        message_id: r.try_get("message_id")?,
        certificate_id: r.try_get("certificate_id")?,
        detail: r.try_get("detail")?,
        created_at: from_millis(r.try_get("created_at")?),
        acknowledged_at: r.try_get::<Option<i64>, _>("acknowledged_at")?.map(from_millis),
        acknowledged_by: r.try_get("acknowledged_by")?,
        webhook_state: r.try_get("webhook_state")?,
    })
}

/// Alerts, newest first; only unacknowledged ones if asked.
pub async fn list(store: &Store, unacknowledged_only: bool) -> Result<Vec<Alert>, StoreError> {
    let filter = if unacknowledged_only { " WHERE acknowledged_at IS NULL" } else { "" };
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM alerts{filter} ORDER BY id DESC LIMIT 1000"))
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(alert).collect()
}

/// An operator acknowledges an alert. False if there is no such unacknowledged alert.
pub async fn acknowledge(store: &Store, id: i64, actor: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2 WHERE id = $3 AND acknowledged_at IS NULL",
    )
    .bind(millis(now))
    .bind(actor)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if done {
        super::operator::record(&mut tx, store, actor, "acknowledge-alert", &id.to_string(), "", now).await?;
    }
    tx.commit().await?;
    Ok(done)
}

/// Claims one alert due for its webhook (with a short lease so one instance sends it).
pub async fn claim_webhook(store: &Store, now: DateTime<Utc>) -> Result<Option<Alert>, StoreError> {
    let lock = store.for_update_skip_locked();
    let sql = format!(
        "UPDATE alerts SET webhook_next_at = $2 WHERE id = (SELECT id FROM alerts WHERE webhook_state = 'pending' AND webhook_next_at <= $1 ORDER BY id LIMIT 1{lock}) RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(millis(now))
        .bind(millis(now + Duration::seconds(60)))
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(alert).transpose()
}

/// Records a webhook outcome: delivered, or retried with backoff up to `max_attempts`.
pub async fn webhook_result(
    store: &Store,
    id: i64,
    delivered: bool,
    max_attempts: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if delivered {
        sqlx::query(
            "UPDATE alerts SET webhook_state = 'delivered', webhook_attempts = webhook_attempts + 1 WHERE id = $1",
        )
        .bind(id)
        .execute(store.pool())
        .await?;
        return Ok(());
    }
    let row = sqlx::query("SELECT webhook_attempts FROM alerts WHERE id = $1").bind(id).fetch_one(store.pool()).await?;
    let attempts: i64 = row.try_get::<i64, _>("webhook_attempts")? + 1;
    let state = if attempts >= max_attempts { "failed" } else { "pending" };
    let backoff = Duration::seconds(10 * (1i64 << attempts.min(8)));
    sqlx::query("UPDATE alerts SET webhook_state = $1, webhook_attempts = $2, webhook_next_at = $3 WHERE id = $4")
        .bind(state)
        .bind(attempts)
        .bind(millis(now + backoff))
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}
