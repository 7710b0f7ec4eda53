//! Lifecycle routes of the domestic API (see `docs/lifecycle.md`):
//!
//! - `POST /api/v1/certificates/{id}/amendments` `{"reason", "replacement"}` — the issuing system
//!   asks to amend an acknowledged CO (cancellation + re-issue) → 202.
//! - `POST /api/v1/certificates/{id}/cancellation-decision` `{"decision": "accept"|"decline",
//!   "reason"}` — the officer answers a pending cancellation → 202.
//! - `POST /api/v1/certificates/{id}/treatment` `{"decision", "declaration_reference",
//!   "reason_codes", "remarks"}` — the clearance system's origin-treatment decision → 202.
//! - `GET /api/v1/lookup?partner=KR&reference=...&code=...` — asks the partner's gateway for a
//!   CO by reference number and reference code (Annex III) → 200 with the CO, or 404.
//!
//! Refusals of the lifecycle answer 409 (`LC-STATE`, `LC-NOT-AUTHORISED`) or 404 (`LC-UNKNOWN`);
//! invalid content 422 with every error.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::read_request_body;
use crate::flows::lookup::AskError;
use crate::flows::{domestic, FlowError};
use crate::http::{json, Body};
use crate::lifecycle::LC_UNKNOWN;
use crate::message::business::LookupResult;
use crate::state::Core;
use crate::store::StoreError;

/// Whether `path` is a lifecycle route (checked before `req` is handed over).
pub fn is_lifecycle_route(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    matches!(
        (method, segments.as_slice()),
        (&Method::POST, ["certificates", _, "amendments" | "cancellation-decision" | "treatment"])
            | (&Method::GET, ["lookup"])
    )
}

pub async fn route(
    state: &Arc<Core>,
    path: &str,
    query: &[(String, String)],
    req: Request<Incoming>,
    caller: &str,
) -> Result<Response<Body>, StoreError> {
    let actor = format!("api:{caller}");
    let now = state.clock.now();
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    let (store, settings) = (&state.store, &state.settings);
    match segments.as_slice() {
        ["certificates", id, "amendments"] => {
            let request: domestic::AmendmentRequest = match read_json(state, req).await {
                Ok(r) => r,
                Err(response) => return Ok(response),
            };
            flow_response(domestic::request_amendment(store, settings, id, &request, &actor, now).await.map(|q| {
                tracing::info!(event = "amendment_requested", certificate = %id, message_id = %q.message_id, %actor, "cancellation notification queued");
                json!(q)
            }))
        }
        ["certificates", id, "cancellation-decision"] => {
            let answer: domestic::CancellationAnswer = match read_json(state, req).await {
                Ok(r) => r,
                Err(response) => return Ok(response),
            };
            flow_response(
                domestic::decide_cancellation(store, settings, id, &answer, &actor, now)
                    .await
                    .map(|m| json!({"certificate_id": id, "decision": answer.decision, "message_id": m})),
            )
        }
        ["certificates", id, "treatment"] => {
            let request: domestic::TreatmentRequest = match read_json(state, req).await {
                Ok(r) => r,
                Err(response) => return Ok(response),
            };
            flow_response(
                domestic::record_treatment(store, settings, id, &request, &actor, now)
                    .await
                    .map(|m| json!({"certificate_id": id, "decision": request.decision, "message_id": m})),
            )
        }
        ["lookup"] => Ok(lookup(state, query).await),
        _ => Ok(json(StatusCode::NOT_FOUND, &json!({"error": "no such resource", "code": "API-NOT-FOUND"}))),
    }
}

/// A JSON body, or the error response to send.
async fn read_json<T: DeserializeOwned>(state: &Core, req: Request<Incoming>) -> Result<T, Response<Body>> {
    let body = read_request_body(state, req).await?;
    serde_json::from_slice(&body)
        .map_err(|e| json(StatusCode::BAD_REQUEST, &json!({"error": format!("invalid JSON: {e}"), "code": "API-JSON"})))
}

fn flow_response(result: Result<serde_json::Value, FlowError>) -> Result<Response<Body>, StoreError> {
    match result {
        Ok(v) => Ok(json(StatusCode::ACCEPTED, &v)),
        Err(FlowError::Refused(e)) => {
            let status = if e.code == LC_UNKNOWN { StatusCode::NOT_FOUND } else { StatusCode::CONFLICT };
            Ok(json(status, &json!({"error": e.description, "code": e.code, "path": e.path})))
        }
        Err(FlowError::Invalid(errors)) => {
            Ok(json(StatusCode::UNPROCESSABLE_ENTITY, &json!({"error": "the request is not valid", "errors": errors})))
        }
        Err(FlowError::Store(e)) => Err(e),
    }
}

async fn lookup(state: &Arc<Core>, query: &[(String, String)]) -> Response<Body> {
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (Some(partner), Some(reference), Some(code)) = (param("partner"), param("reference"), param("code")) else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "give partner, reference and code", "code": "API-QUERY"}),
        );
    };
    let Some(partner) = state.settings.partners.get(partner) else {
        return json(StatusCode::BAD_REQUEST, &json!({"error": "no such partner", "code": "API-PARTNER"}));
    };
    // What the request would carry: checked here, so a bad value is the caller's 400 and not
    // the partner's refusal reported as unavailable.
    for (field, value, max) in [("reference", reference, 35), ("code", code, 64)] {
        let problem = if value.trim().is_empty() || value.trim() != value {
            Some("must be given without surrounding spaces".to_owned())
        } else if value.chars().count() > max {
            Some(format!("is longer than {max} characters"))
        } else {
            crate::message::text::forbidden_char(value, true).map(crate::message::text::describe)
        };
        if let Some(problem) = problem {
            return json(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("{field} {problem}"), "code": "API-QUERY", "path": field}),
            );
        }
    }
    match crate::flows::lookup::ask(state, partner, reference, code).await {
        Ok(LookupResult::Found { status, lpco_xml }) => {
            json(StatusCode::OK, &json!({"found": true, "status": status, "co_xml": lpco_xml}))
        }
        Ok(LookupResult::NotFound) => json(
            StatusCode::NOT_FOUND,
            &json!({"found": false, "error": "the partner holds no CO with this reference and code", "code": "LOOKUP-NOT-FOUND"}),
        ),
        Err(e) => {
            tracing::warn!(event = "lookup_failed", partner = %partner.party, error = %e, "GetCO failed");
            let code = match e {
                AskError::Unverified(_) => "LOOKUP-UNVERIFIED",
                _ => "LOOKUP-UNAVAILABLE",
            };
            json(StatusCode::BAD_GATEWAY, &json!({"error": e.to_string(), "code": code}))
        }
    }
}
