//! The log of operator actions (who did what to which message or partner, and when).

use chrono::{DateTime, Utc};

use super::{millis, StoreError, Tx};

pub async fn record(
    tx: &mut Tx<'_>,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO operator_actions (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(millis(now))
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    tracing::info!(event = "operator_action", actor, action, target, detail, "operator action");
    Ok(())
}
