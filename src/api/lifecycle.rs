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

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, JsonBody, PathParams, Query};
use crate::delivery::lookup::AskError;
use crate::flows::domestic;
use crate::message::business::LookupResult;
use crate::state::Core;

type Accepted = (StatusCode, Json<Value>);

pub async fn amend(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(request): JsonBody<domestic::AmendmentRequest>,
) -> Result<Accepted, ApiError> {
    let actor = caller.actor();
    let queued =
        domestic::request_amendment(&core.store, &core.settings, &id, &request, &actor, core.clock.now()).await?;
    core.outbox_changed();
    tracing::info!(event = "amendment_requested", certificate = %id, message_id = %queued.message_id, %actor, "cancellation notification queued");
    Ok((StatusCode::ACCEPTED, Json(json!(queued))))
}

pub async fn decide_cancellation(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(answer): JsonBody<domestic::CancellationAnswer>,
) -> Result<Accepted, ApiError> {
    let (actor, now) = (caller.actor(), core.clock.now());
    let message_id = domestic::decide_cancellation(&core.store, &core.settings, &id, &answer, &actor, now).await?;
    core.outbox_changed();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"certificate_id": id, "decision": answer.decision, "message_id": message_id})),
    ))
}

pub async fn record_treatment(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(request): JsonBody<domestic::TreatmentRequest>,
) -> Result<Accepted, ApiError> {
    let (actor, now) = (caller.actor(), core.clock.now());
    let message_id = domestic::record_treatment(&core.store, &core.settings, &id, &request, &actor, now).await?;
    core.outbox_changed();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"certificate_id": id, "decision": request.decision, "message_id": message_id})),
    ))
}

pub async fn lookup(State(core): State<Arc<Core>>, query: Query) -> Result<Json<Value>, ApiError> {
    let (Some(partner), Some(reference), Some(code)) =
        (query.get("partner"), query.get("reference"), query.get("code"))
    else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "API-QUERY", "give partner, reference and code"));
    };
    let Some(partner) = core.settings.partners.get(partner) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "API-PARTNER", "no such partner"));
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
            return Err(
                ApiError::new(StatusCode::BAD_REQUEST, "API-QUERY", format!("{field} {problem}")).with("path", field)
            );
        }
    }
    match crate::delivery::lookup::ask(&core, partner, reference, code).await {
        Ok(LookupResult::Found { status, lpco_xml }) => {
            Ok(Json(json!({"found": true, "status": status, "co_xml": lpco_xml})))
        }
        Ok(LookupResult::NotFound) => Err(ApiError::with_body(
            StatusCode::NOT_FOUND,
            json!({"found": false, "error": "the partner holds no CO with this reference and code", "code": "LOOKUP-NOT-FOUND"}),
        )),
        Err(e) => {
            tracing::warn!(event = "lookup_failed", partner = %partner.party, error = %e, "GetCO failed");
            // The detail (our key, a TLS or parser message) is in the log line above.
            let (code, sentence) = match &e {
                AskError::Secure(_) => {
                    ("LOOKUP-UNAVAILABLE", "our gateway could not secure the look-up (see its log)".to_owned())
                }
                AskError::Transport(_) => {
                    ("LOOKUP-UNAVAILABLE", "the partner's gateway could not be reached".to_owned())
                }
                AskError::Http(status) => {
                    ("LOOKUP-UNAVAILABLE", format!("the partner's gateway answered HTTP {status}"))
                }
                AskError::Unverified(_) => ("LOOKUP-UNVERIFIED", "the partner's answer did not verify".to_owned()),
            };
            Err(ApiError::new(StatusCode::BAD_GATEWAY, code, sentence))
        }
    }
}
