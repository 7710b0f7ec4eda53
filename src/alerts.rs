//! Alert notification and housekeeping: the loop that raises the "still undelivered after the
//! first hour" alerts, POSTs every alert to the configured webhook (retried with backoff), and
//! runs the daily retention purge when one is configured. Alerts
//! themselves are written by the store in the transaction of the event they report
//! (`store::alerts::raise`), so none is lost.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use chrono::Duration;
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::state::Core;
use crate::store::{alerts, outbox, StoreError};

/// Runs until shutdown.
pub async fn run(state: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let idle = state.settings.delivery.poll_interval.std().max(StdDuration::from_millis(100));
    let mut last_purge = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        retention_pass(&state, &mut last_purge).await;
        if let Err(e) = step(&state, &client).await {
            tracing::error!(error = %e, "alert step failed");
        }
        tokio::select! {
            _ = shutdown.changed() => {},
            _ = tokio::time::sleep(idle) => {},
        }
    }
}

/// Once a day, purge message contents past the configured retention.
async fn retention_pass(state: &Core, last: &mut Option<chrono::DateTime<chrono::Utc>>) {
    let Some(keep) = state.settings.retention.message_contents else { return };
    let now = state.clock.now();
    if last.is_some_and(|l| now - l < Duration::hours(24)) {
        return;
    }
    *last = Some(now);
    match crate::store::retention::purge(
        &state.store,
        now - keep.chrono(),
        "scheduler",
        now,
        crate::soap::evidence::without_body_content,
    )
    .await
    {
        Ok(r) => {
            tracing::info!(event = "purge", messages = r.messages_purged, certificates = r.certificates_purged, outbox = r.outbox_purged, cutoff = %r.cutoff, "retention purge")
        }
        Err(e) => tracing::error!(error = %e, "retention purge failed"),
    }
}

/// One pass: late messages, then every alert due for the webhook.
pub async fn step(
    state: &Core,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let webhook = state.settings.alerts.webhook_url.is_some();
    let late = now - state.settings.delivery.undelivered_alert.chrono();
    outbox::alert_late(&state.store, late, webhook, now).await?;
    let Some(url) = &state.settings.alerts.webhook_url else { return Ok(()) };
    let max_attempts = state.settings.alerts.webhook_max_attempts.unwrap_or(20);
    while let Some(alert) = alerts::claim_webhook(&state.store, state.clock.now()).await? {
        let body = serde_json::json!({ "gateway": state.settings.party, "alert": alert }).to_string();
        let delivered = match Request::post(url)
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(body)))
        {
            Ok(req) => {
                matches!(tokio::time::timeout(StdDuration::from_secs(10), client.request(req)).await, Ok(Ok(r)) if r.status().is_success())
            }
            Err(_) => false,
        };
        if !delivered {
            tracing::warn!(alert_id = alert.id, "alert webhook failed; will retry");
        }
        alerts::webhook_result(&state.store, alert.id, delivered, max_attempts, state.clock.now()).await?;
        if !delivered {
            break;
        }
    }
    Ok(())
}
