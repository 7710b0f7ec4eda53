//! Operator routes of the domestic API (manual intervention, framework 4.3.3): the outbox by
//! state and partner, retry or cancel a message, pause or resume a partner, alerts and their
//! acknowledgement. Every action is attributed to the caller's token name.

use std::sync::Arc;

use hyper::{Method, Response, StatusCode};
use serde_json::json;

use crate::http::{json, Body};
use crate::state::Core;
use crate::store::{alerts, outbox, partners, StoreError};

/// Handles `/api/v1/outbox...`, `/api/v1/partners...`, `/api/v1/alerts...`; `None` if the path
/// is not an operator route.
pub async fn route(
    state: &Arc<Core>,
    method: &Method,
    path: &str,
    query: &[(String, String)],
    caller: &str,
) -> Option<Result<Response<Body>, StoreError>> {
    let actor = format!("api:{caller}");
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    let now = state.clock.now();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let result = match (method, segments.as_slice()) {
        (&Method::GET, ["outbox"]) => {
            outbox::list(&state.store, param("state"), param("partner")).await.map(|l| json(StatusCode::OK, &json!(l)))
        }
        (&Method::POST, ["outbox", id, "retry"]) => outcome(
            outbox::operator_retry(&state.store, id, &actor, now)
                .await
                .map(|s| json!({"message_id": id, "certificate_state": s})),
        ),
        (&Method::POST, ["outbox", id, "cancel"]) => outcome(
            outbox::operator_cancel(&state.store, id, &actor, now)
                .await
                .map(|s| json!({"message_id": id, "certificate_state": s})),
        ),
        (&Method::GET, ["partners"]) => {
            let mut out = Vec::new();
            let mut names: Vec<&String> = state.settings.partners.keys().collect();
            names.sort();
            for p in names {
                match partners::status(&state.store, p).await {
                    Ok(s) => out.push(s),
                    Err(e) => return Some(Err(e)),
                }
            }
            Ok(json(StatusCode::OK, &json!(out)))
        }
        (&Method::POST, ["partners", party, action @ ("pause" | "resume")]) => {
            if !state.settings.partners.contains_key(*party) {
                return Some(Ok(json(
                    StatusCode::NOT_FOUND,
                    &json!({"error": "no such partner", "code": "API-PARTNER"}),
                )));
            }
            let changed = if *action == "pause" {
                partners::pause(&state.store, party, &actor, now).await
            } else {
                partners::resume(&state.store, party, &actor, now).await
            };
            changed
                .map(|changed| json(StatusCode::OK, &json!({"partner": party, "action": action, "changed": changed})))
        }
        (&Method::GET, ["alerts"]) => alerts::list(&state.store, param("unacknowledged") == Some("true"))
            .await
            .map(|a| json(StatusCode::OK, &json!(a))),
        (&Method::POST, ["alerts", id, "ack"]) => match id.parse::<i64>() {
            Ok(n) => alerts::acknowledge(&state.store, n, &actor, now).await.map(|done| {
                if done {
                    json(StatusCode::OK, &json!({"alert": n, "acknowledged_by": actor}))
                } else {
                    json(
                        StatusCode::NOT_FOUND,
                        &json!({"error": "no such unacknowledged alert", "code": "API-NOT-FOUND"}),
                    )
                }
            }),
            Err(_) => {
                Ok(json(StatusCode::BAD_REQUEST, &json!({"error": "alert id must be a number", "code": "API-QUERY"})))
            }
        },
        _ => return None,
    };
    Some(result)
}

/// Not-found and illegal-transition errors are the operator's, not the store's.
fn outcome(r: Result<serde_json::Value, StoreError>) -> Result<Response<Body>, StoreError> {
    match r {
        Ok(v) => Ok(json(StatusCode::OK, &v)),
        Err(StoreError::NotFound(what)) => {
            Ok(json(StatusCode::CONFLICT, &json!({"error": format!("no {what}"), "code": "API-STATE"})))
        }
        Err(StoreError::Illegal(e)) => {
            Ok(json(StatusCode::CONFLICT, &json!({"error": e.to_string(), "code": "API-STATE"})))
        }
        Err(e) => Err(e),
    }
}
