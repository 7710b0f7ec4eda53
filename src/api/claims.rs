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

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::read_request_body;
use crate::http::{json, Body};
use crate::lifecycle::Direction;
use crate::payload::Lpco;
use crate::reconcile::{code, parse_declaration, ClaimStatus, Declaration};
use crate::state::Core;
use crate::store::certificates::{self, CertificateRecord};
use crate::store::claims::{self, Against, NewClaim};
use crate::store::StoreError;

/// Whether `path` with `method` is a claims route (then [`route`] answers it).
pub fn handles(method: &Method, path: &str) -> bool {
    target(method, path).is_some()
}

enum Target<'p> {
    Post,
    List(&'p str),
}

fn target<'p>(method: &Method, path: &'p str) -> Option<Target<'p>> {
    let segments: Vec<&str> = path.strip_prefix("/api/v1/")?.split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["claims"]) => Some(Target::Post),
        (&Method::GET, ["certificates", id, "claims"]) if !id.is_empty() => Some(Target::List(id)),
        _ => None,
    }
}

/// Handles the claims routes; `None` (and `req` unused) if `path` is none of them.
pub async fn route(
    state: &Arc<Core>,
    method: &Method,
    path: &str,
    req: Request<Incoming>,
    caller: &str,
) -> Option<Result<Response<Body>, StoreError>> {
    Some(match target(method, path)? {
        Target::Post => post(state, req, caller).await,
        Target::List(id) => list(state, id).await,
    })
}

async fn post(state: &Arc<Core>, req: Request<Incoming>, caller: &str) -> Result<Response<Body>, StoreError> {
    // A declaration summary is far smaller than a CO; the CO's limit bounds it all the same.
    let body = match read_request_body(state, req).await {
        Ok(b) => b,
        Err(refused) => return Ok(refused),
    };
    let declaration = match parse_declaration(&body) {
        Ok(d) => d,
        Err(errors) => {
            return Ok(json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "the declaration is not acceptable", "code": code::INVALID, "errors": errors}),
            ))
        }
    };
    let certificate = received(state, &declaration).await?;
    let co = match &certificate {
        Some(c) => Some(document(c)?),
        None => None,
    };
    let against = match (&certificate, &co) {
        (Some(c), Some(co)) => Against::Certificate { id: &c.id, co },
        _ => Against::Nothing { status: unreconciled_status(state, &declaration), certificate_id: None },
    };
    let new = NewClaim { declaration: &declaration, claimed_by: caller, against };
    let record = claims::record(&state.store, &new, state.clock.now()).await?;
    tracing::info!(
        event = "claim",
        claim = %record.id,
        declaration = %record.declaration_number,
        issuer = %record.issuer,
        reference = %record.reference,
        status = record.result.status.as_str(),
        mismatches = record.result.mismatches.len(),
        over_utilised = record.result.over_utilised.len(),
        caller,
        "claim reconciled"
    );
    let mut answer = json!(record.result);
    answer["claim_id"] = json!(record.id);
    Ok(json(StatusCode::OK, &answer))
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

async fn list(state: &Arc<Core>, id: &str) -> Result<Response<Body>, StoreError> {
    // One snapshot, so the totals are those of the claims listed.
    let mut snapshot = state.store.begin_snapshot().await?;
    if certificates::get(&mut *snapshot, id).await?.is_none() {
        return Ok(json(StatusCode::NOT_FOUND, &json!({"error": "no such certificate", "code": "API-NOT-FOUND"})));
    }
    let records = claims::list_for_certificate(&mut *snapshot, id).await?;
    let utilisation: Vec<_> = claims::utilisation_of(&mut *snapshot, id)
        .await?
        .into_iter()
        .map(|(co_item, u)| json!({"co_item": co_item, "quantity": u.quantity, "weight": u.weight}))
        .collect();
    snapshot.rollback().await?;
    Ok(json(StatusCode::OK, &json!({"certificate_id": id, "claims": records, "utilisation": utilisation})))
}
