//! The log of operator actions (who did what to which message or partner, and when), each also
//! recorded in the audit chain.

use chrono::{DateTime, Utc};

use super::{millis, Store, StoreError, Tx};

pub async fn record(
    tx: &mut Tx<'_>,
    store: &Store,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // Operator actions also enter the audit chain, in the same transaction.
    let reason = format!("{action} {target} {detail}");
    let event = super::audit::AuditEvent {
        kind: "operator.action",
        actor: Some(actor),
        reason: reason.trim(),
        ..Default::default()
    };
    super::audit::append_in(tx, store, &event, now).await?;
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
