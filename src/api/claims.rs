//! Claims routes of the domestic API (WCO framework Annex I A.42–A.48), for the importing
//! administration's clearance system:
//!
//! - `POST /api/v1/claims` (JSON [`Declaration`]) → 400 `{"code": "CLAIM-INVALID", "errors":
//!   [{code, path, message}]}` for a declaration that is not acceptable; otherwise the claim is
//!   recorded and answered 200 `{claim_id, status, certificate_id, mismatches, over_utilised,
//!   claimed}`, `status` one of `match`, `mismatch`, `cancelled`, `cancellation_pending`,
//!   `not_received`, `unknown_issuer` (see [`crate::reconcile`]).
//! - `GET /api/v1/certificates/{id}/claims` → `{certificate_id, claims, utilisation}`.
//!
//! Every claim is attributed to the caller's token name.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, PathParams};
use crate::lifecycle::Direction;
use crate::payload::Lpco;
use crate::reconcile::{code, parse_declaration, ClaimStatus, Declaration};
use crate::state::Core;
use crate::store::certificates::{self, CertificateRecord};
use crate::store::claims::{self, Against, NewClaim};
use crate::store::StoreError;

/// `POST /api/v1/claims`. A declaration summary is far smaller than a CO; the CO's limit
/// bounds it all the same (the body layer).
pub async fn post(State(core): State<Arc<Core>>, caller: Caller, body: Bytes) -> Result<Json<Value>, ApiError> {
    let declaration = parse_declaration(&body).map_err(|errors| {
        ApiError::new(StatusCode::BAD_REQUEST, code::INVALID, "the declaration is not acceptable")
            .with("errors", errors)
    })?;
    let certificate = received(&core, &declaration).await?;
    let co = match &certificate {
        Some(c) => Some(document(c)?),
        None => None,
    };
    let against = match (&certificate, &co) {
        (Some(c), Some(co)) => Against::Certificate { id: &c.id, co },
        _ => Against::Nothing { status: unreconciled_status(&core, &declaration), certificate_id: None },
    };
    let new = NewClaim { declaration: &declaration, claimed_by: &caller.0, against };
    let record = claims::record(&core.store, &new, core.clock.now()).await?;
    tracing::info!(
        event = "claim",
        claim = %record.id,
        declaration = %record.declaration_number,
        issuer = %record.issuer,
        reference = %record.reference,
        status = record.result.status.as_str(),
        mismatches = record.result.mismatches.len(),
        over_utilised = record.result.over_utilised.len(),
        caller = %caller.0,
        "claim reconciled"
    );
    let mut answer = json!(record.result);
    answer["claim_id"] = json!(record.id);
    Ok(Json(answer))
}

/// The certificate the declaration relies on: received from its issuer, a configured partner.
async fn received(state: &Core, d: &Declaration) -> Result<Option<CertificateRecord>, StoreError> {
    if !state.settings.partners.contains_key(&d.issuer) {
        return Ok(None);
    }
    let found = certificates::find(state.store.pool(), &d.issuer, &d.reference).await?;
    Ok(found.into_iter().find(|c| c.direction == Direction::Inbound))
}

/// Why a declaration has nothing to be reconciled with.
fn unreconciled_status(state: &Core, d: &Declaration) -> ClaimStatus {
    if state.settings.partners.contains_key(&d.issuer) {
        ClaimStatus::NotReceived
    } else {
        ClaimStatus::UnknownIssuer
    }
}

/// The stored document, read again as the kind it was received as. It was validated on
/// receipt: failing now means the stored data is damaged.
fn document(c: &CertificateRecord) -> Result<Lpco, StoreError> {
    let kind = c.kind;
    crate::payload::parse_document(&c.co_xml, kind).map_err(|errors| {
        let first = errors.first().map(|e| format!("{} at {}", e.code, e.path)).unwrap_or_default();
        StoreError::Corrupt(format!("certificate {} no longer reads as a {kind}: {first}", c.id))
    })
}

/// `GET /api/v1/certificates/{id}/claims`.
pub async fn list(State(core): State<Arc<Core>>, PathParams(id): PathParams<String>) -> Result<Json<Value>, ApiError> {
    // One snapshot, so the totals are those of the claims listed.
    let mut snapshot = core.store.begin_snapshot().await?;
    if certificates::get(&mut *snapshot, &id).await?.is_none() {
        return Err(ApiError::not_found("certificate"));
    }
    let records = claims::list_for_certificate(&mut *snapshot, &id).await?;
    let utilisation: Vec<_> = claims::utilisation_of(&mut *snapshot, &id)
        .await?
        .into_iter()
        .map(|(co_item, u)| json!({"co_item": co_item, "quantity": u.quantity, "weight": u.weight}))
        .collect();
    snapshot.rollback().await.map_err(StoreError::from)?;
    Ok(Json(json!({"certificate_id": id, "claims": records, "utilisation": utilisation})))
}
