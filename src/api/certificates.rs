//! The certificates and declarations the issuing system submits, and what any certificate
//! looks like now:
//!
//! - `POST /api/v1/certificates?partner=ID` (CO XML body) → 422 with every validation error,
//!   409 `CO-DUPLICATE` if the CO was already submitted, or 202 `{id, kind, state, message_id,
//!   reference_code}`.
//! - `POST /api/v1/declarations?partner=ID` (DO XML body, Annex IV) → the same, sent as SendDO.
//! - `GET /api/v1/certificates/{id}` → the certificate with its history, amendments,
//!   treatment decisions and the certificate that replaced it.
//! - `GET /api/v1/certificates?issuer=KR&reference=...` → the certificates with that identity.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, PathParams, Query};
use crate::flows::domestic::SubmitError;
use crate::payload::DocumentKind;
use crate::state::Core;
use crate::store::certificates::{self, CertificateRecord};
use crate::store::{amendments, treatments, StoreError};

pub async fn submit_co(
    State(core): State<Arc<Core>>,
    caller: Caller,
    query: Query,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit(&core, &caller, &query, &body, DocumentKind::Co).await
}

pub async fn submit_do(
    State(core): State<Arc<Core>>,
    caller: Caller,
    query: Query,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit(&core, &caller, &query, &body, DocumentKind::Do).await
}

async fn submit(
    core: &Core,
    caller: &Caller,
    query: &Query,
    body: &[u8],
    kind: DocumentKind,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(partner) = query.get("partner").and_then(|p| core.settings.partners.get(p)) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "API-PARTNER",
            "query parameter partner must name a configured partner",
        ));
    };
    let now = core.clock.now();
    match crate::flows::domestic::submit(&core.store, &core.settings, &partner.party, kind, body, now).await {
        Ok(submitted) => {
            let record = &submitted.certificate;
            tracing::info!(event = "submitted", certificate = %record.id, reference = %record.reference, kind = kind.as_str(), partner = %partner.party, caller = %caller.0, message_id = %submitted.message_id, "queued");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({
                    "id": record.id,
                    "kind": record.kind,
                    "state": record.state,
                    "message_id": submitted.message_id,
                    "reference_code": submitted.reference_code,
                })),
            ))
        }
        Err(SubmitError::Invalid(errors)) => {
            let errors: Vec<Value> =
                errors.iter().map(|e| json!({"code": e.code, "message": e.description, "path": e.path})).collect();
            Err(ApiError::with_body(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "the CO is not valid", "errors": errors}),
            ))
        }
        Err(SubmitError::Duplicate(what)) => {
            Err(ApiError::new(StatusCode::CONFLICT, "CO-DUPLICATE", format!("{what} was already submitted")))
        }
        Err(SubmitError::Store(e)) => Err(e.into()),
    }
}

fn certificate_json(c: &CertificateRecord, history: Vec<certificates::HistoryEntry>) -> Value {
    json!({
        "id": c.id,
        "issuer": c.issuer,
        "reference": c.reference,
        "partner": c.partner,
        "direction": c.direction,
        "kind": c.kind,
        "state": c.state,
        "replaces": c.replaces,
        "reference_code": c.reference_code,
        "verification_flag": c.verification_flag,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "history": history,
    })
}

pub async fn show(State(core): State<Arc<Core>>, PathParams(id): PathParams<String>) -> Result<Json<Value>, ApiError> {
    // One snapshot: the certificate's state, history and amendments are read as one commit left them.
    let mut snapshot = core.store.begin_snapshot().await?;
    let Some(c) = certificates::get(&mut *snapshot, &id).await? else {
        return Err(ApiError::not_found("certificate"));
    };
    let history = certificates::history(&mut *snapshot, &c.id).await?;
    let mut v = certificate_json(&c, history);
    v["amendments"] = json!(amendments::list(&mut *snapshot, &c.id).await?);
    v["treatment_decisions"] = json!(treatments::list(&mut *snapshot, &c.id).await?);
    v["replaced_by"] = json!(certificates::replaced_by(&mut *snapshot, &c.id).await?);
    snapshot.rollback().await.map_err(StoreError::from)?;
    Ok(Json(v))
}

pub async fn find(State(core): State<Arc<Core>>, query: Query) -> Result<Json<Value>, ApiError> {
    let (Some(issuer), Some(reference)) = (query.get("issuer"), query.get("reference")) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "API-QUERY", "give issuer and reference"));
    };
    let mut snapshot = core.store.begin_snapshot().await?;
    let found = certificates::find(&mut *snapshot, issuer, reference).await?;
    let mut out = Vec::new();
    for c in &found {
        out.push(certificate_json(c, certificates::history(&mut *snapshot, &c.id).await?));
    }
    snapshot.rollback().await.map_err(StoreError::from)?;
    Ok(Json(json!(out)))
}
