//! Alert notification: the loop that raises the "still undelivered after the first hour"
//! alerts and POSTs every alert to the configured webhook (retried with backoff). Alerts
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

use crate::app::AppState;
use crate::store::{alerts, outbox, StoreError};

/// Runs until shutdown.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let idle = StdDuration::from_millis(state.settings.delivery.poll_interval_millis.max(100));
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = step(&state, &client).await {
            tracing::error!(error = %e, "alert step failed");
        }
        tokio::select! {
            _ = shutdown.changed() => {},
            _ = tokio::time::sleep(idle) => {},
        }
    }
}

/// One pass: late messages, then every alert due for the webhook.
pub async fn step(
    state: &AppState,
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let webhook = state.settings.alerts.webhook_url.is_some();
    let late = now - Duration::seconds(state.settings.delivery.undelivered_alert_seconds);
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
