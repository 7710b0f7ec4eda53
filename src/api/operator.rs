//! Operator routes of the domestic API (manual intervention, framework 4.3.3): the outbox by
//! state and partner, retry or cancel a message, pause or resume a partner, alerts and their
//! acknowledgement. Every action is attributed to the caller's token name.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, PathParams, Query};
use crate::state::Core;
use crate::store::{alerts, outbox, partners, StoreError};

pub async fn outbox_list(State(core): State<Arc<Core>>, query: Query) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(outbox::list(&core.store, query.get("state"), query.get("partner")).await?)))
}

pub async fn retry(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let state = outbox::operator_retry(&core.store, &id, &caller.actor(), core.clock.now()).await.map_err(operator)?;
    core.outbox_changed();
    Ok(Json(json!({"message_id": id, "certificate_state": state})))
}

pub async fn cancel(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let state = outbox::operator_cancel(&core.store, &id, &caller.actor(), core.clock.now()).await.map_err(operator)?;
    Ok(Json(json!({"message_id": id, "certificate_state": state})))
}

pub async fn partner_list(State(core): State<Arc<Core>>) -> Result<Json<Value>, ApiError> {
    let mut names: Vec<&String> = core.settings.partners.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        out.push(partners::status(&core.store, p).await?);
    }
    Ok(Json(json!(out)))
}

pub async fn pause(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(party): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    pause_or_resume(&core, &caller, &party, "pause").await
}

pub async fn resume(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(party): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    pause_or_resume(&core, &caller, &party, "resume").await
}

async fn pause_or_resume(core: &Core, caller: &Caller, party: &str, action: &str) -> Result<Json<Value>, ApiError> {
    if !core.settings.partners.contains_key(party) {
        return Err(ApiError::no_such_partner());
    }
    let (actor, now) = (caller.actor(), core.clock.now());
    let changed = if action == "pause" {
        partners::pause(&core.store, party, &actor, now).await?
    } else {
        partners::resume(&core.store, party, &actor, now).await?
    };
    Ok(Json(json!({"partner": party, "action": action, "changed": changed})))
}

pub async fn alert_list(State(core): State<Arc<Core>>, query: Query) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(alerts::list(&core.store, query.get("unacknowledged") == Some("true")).await?)))
}

pub async fn acknowledge_alert(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let Ok(n) = id.parse::<i64>() else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "API-QUERY", "alert id must be a number"));
    };
    let actor = caller.actor();
    if alerts::acknowledge(&core.store, n, &actor, core.clock.now()).await? {
        Ok(Json(json!({"alert": n, "acknowledged_by": actor})))
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "API-NOT-FOUND", "no such unacknowledged alert"))
    }
}

/// Not-found and illegal-transition errors are the operator's, not the store's.
fn operator(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(what) => ApiError::new(StatusCode::CONFLICT, "API-STATE", format!("no {what}")),
        StoreError::Illegal(e) => ApiError::new(StatusCode::CONFLICT, "API-STATE", e.to_string()),
        e => e.into(),
    }
}
