//! The certificates and declarations the issuing system submits, and what any certificate
//! looks like now:
//!
//! - `POST /api/v1/certificates?partner=ID` (CO XML body) → 422 with every validation error,
//!   409 `CO-DUPLICATE` if the CO was already submitted, or 202 `{id, kind, state, message_id,
//!   reference_code}`.
//! - `POST /api/v1/declarations?partner=ID` (DO XML body, Annex IV) → the same, sent as SendDO.
//! - `GET /api/v1/certificates/{id}` → the certificate with its history, amendments,
//!   treatment decisions, the certificate that replaced it, and what the back-end was told
//!   (`backend`: its events and whether they were acknowledged: `received` → `downloaded`).
//! - `GET /api/v1/certificates/{id}/document` → the CO or DO as validated: XML (an inbound one
//!   in its exclusive canonical form, whose SHA-256 is `content_sha256`), or JSON under the
//!   WCO data-element names with `Accept: application/json` (`payload::json`); 406
//!   `API-NOT-ACCEPTABLE` for any other `Accept`, 410 `API-PURGED` with what is kept once
//!   retention erased the content.
//! - `GET /api/v1/certificates?issuer=KR&reference=...` → the certificates with that identity;
//!   without them, a listing (`direction`, `partner`, `state`, `kind`, `after`=ID, `limit`) in
//!   the order the certificates were created: `{"certificates": [...], "next_after": ID}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, PathParams, Query};
use crate::delivery::Claims;
use crate::flows::domestic::SubmitError;
use crate::lifecycle::{Direction, State as CertificateState};
use crate::payload::DocumentKind;
use crate::state::Core;
use crate::store::certificates::{self, CertificateRecord, ListFilter};
use crate::store::{amendments, events, treatments, StoreError};

pub async fn submit_co(
    State(core): State<Arc<Core>>,
    Extension(claims): Extension<Arc<Claims>>,
    caller: Caller,
    query: Query,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit(&core, &claims, &caller, &query, &body, DocumentKind::Co).await
}

pub async fn submit_do(
    State(core): State<Arc<Core>>,
    Extension(claims): Extension<Arc<Claims>>,
    caller: Caller,
    query: Query,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit(&core, &claims, &caller, &query, &body, DocumentKind::Do).await
}

async fn submit(
    core: &Core,
    claims: &Arc<Claims>,
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
    let promise = claims.submission_lease(now, core.settings.delivery.lease.chrono());
    let lease = promise.as_ref().map(|p| p.lease);
    match crate::flows::domestic::submit(&core.store, &core.settings, &partner.party, kind, body, now, lease).await {
        Ok(submitted) => {
            if let Some(message) = submitted.leased {
                claims.hand_over(&core.store, message).await;
            }
            drop(promise);
            core.outbox_changed();
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
        "content_sha256": c.content_sha256,
        "purged_at": c.purged_at,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "history": history,
    })
}

pub async fn show(State(core): State<Arc<Core>>, PathParams(id): PathParams<String>) -> Result<Json<Value>, ApiError> {
    // Every committed event numbered first, so that the view shows them all.
    events::sequence(&core.store).await?;
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
    v["backend"] = backend_view(&events::for_certificate(&mut *snapshot, &c.id).await?);
    snapshot.rollback().await.map_err(StoreError::from)?;
    Ok(Json(v))
}

/// What the back-end was told about a certificate: its events, and `downloaded` once every one
/// was acknowledged (Domibus: RECEIVED → DOWNLOADED); `received` before, `none` without events.
fn backend_view(events: &[events::Event]) -> Value {
    let listed: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "event_id": e.event_id,
                "kind": e.kind,
                "at": e.at,
                "acknowledged_at": e.acknowledged_at,
                "acknowledged_by": e.acknowledged_by,
            })
        })
        .collect();
    let acknowledged: Vec<_> = events.iter().filter_map(|e| e.acknowledged_at).collect();
    let (status, downloaded_at) = match (events.len(), acknowledged.len()) {
        (0, _) => ("none", None),
        (all, done) if all == done => ("downloaded", acknowledged.iter().max().copied()),
        _ => ("received", None),
    };
    json!({"status": status, "downloaded_at": downloaded_at, "events": listed})
}

/// How a caller wants the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Xml,
    Json,
}

/// The form the caller's `Accept` ranks highest (by `q`, then in the order listed; `q=0`
/// refuses a form); XML without the header.
fn negotiate(headers: &HeaderMap) -> Option<Form> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Some(Form::Xml) };
    let mut offered: Vec<(f32, usize, Form)> = Vec::new();
    for (position, item) in accept.split(',').enumerate() {
        let mut params = item.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let q =
            params.find_map(|p| p.strip_prefix("q=").map(|q| q.trim().parse::<f32>().unwrap_or(0.0))).unwrap_or(1.0);
        let form = match media.as_str() {
            "application/json" => Form::Json,
            "application/xml" | "text/xml" | "application/*" | "text/*" | "*/*" => Form::Xml,
            _ => continue,
        };
        if q > 0.0 {
            offered.push((q, position, form));
        }
    }
    offered.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
    offered.into_iter().next().map(|(_, _, form)| form)
}

pub async fn document(
    State(core): State<Arc<Core>>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(form) = negotiate(&headers) else {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "API-NOT-ACCEPTABLE",
            "the document is offered as application/xml or application/json",
        ));
    };
    let Some(c) = certificates::get(core.store.pool(), &id).await? else {
        return Err(ApiError::not_found("certificate"));
    };
    if let Some(purged_at) = c.purged_at {
        return Err(ApiError::new(
            StatusCode::GONE,
            "API-PURGED",
            "the document's content was erased by the retention policy; its identity, digest, state and history are kept",
        )
        .with("certificate_id", &c.id)
        .with("issuer", &c.issuer)
        .with("reference", &c.reference)
        .with("kind", c.kind)
        .with("state", c.state)
        .with("content_sha256", &c.content_sha256)
        .with("purged_at", purged_at)
        .with("kept", ["identity", "state", "history", "content_sha256", "signed acknowledgements", "signature evidence"]));
    }
    let etag = HeaderValue::from_str(&format!("\"sha256-{}\"", c.content_sha256)).ok();
    let mut response = match form {
        Form::Xml => ([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], c.co_xml).into_response(),
        Form::Json => {
            let doc = crate::payload::parse_document(&c.co_xml, c.kind).map_err(|errors| {
                // It was validated when it was stored: a failure now is ours.
                tracing::error!(certificate = %c.id, errors = errors.len(), "a stored document no longer parses");
                ApiError::store(&StoreError::Corrupt(format!("stored document of {} does not parse", c.id)))
            })?;
            Json(crate::payload::json::to_json(&doc)).into_response()
        }
    };
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("Accept"));
    Ok(response)
}

pub async fn find(State(core): State<Arc<Core>>, query: Query) -> Result<Json<Value>, ApiError> {
    let (issuer, reference) = (query.get("issuer"), query.get("reference"));
    let (Some(issuer), Some(reference)) = (issuer, reference) else {
        if issuer.is_some() || reference.is_some() {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "API-QUERY", "give issuer and reference together"));
        }
        return list(&core, &query).await;
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

/// The listing form of `GET /api/v1/certificates`.
async fn list(core: &Core, query: &Query) -> Result<Json<Value>, ApiError> {
    let bad = |name: &str, message: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, "API-QUERY", format!("{name}: {message}")).with("parameter", name)
    };
    let direction = match query.get("direction") {
        None => None,
        Some(d) => Some(Direction::parse(d).ok_or_else(|| bad("direction", "inbound or outbound"))?),
    };
    let state = match query.get("state") {
        None => None,
        Some(s) => Some(CertificateState::parse(s).ok_or_else(|| bad("state", "not a certificate state"))?),
    };
    let kind = match query.get("kind") {
        None => None,
        Some(k) => Some(DocumentKind::parse(k).ok_or_else(|| bad("kind", "CO or DO"))?),
    };
    let limit = match query.get("limit") {
        None => 100,
        Some(l) => l.parse::<i64>().ok().filter(|l| (1..=1000).contains(l)).ok_or_else(|| bad("limit", "1 to 1000"))?,
    };
    let after = query.get("after").map(str::to_owned);
    if let Some(a) = &after {
        if certificates::get(core.store.pool(), a).await?.is_none() {
            return Err(bad("after", "no such certificate"));
        }
    }
    let filter = ListFilter { direction, partner: query.get("partner").map(str::to_owned), state, kind, after, limit };
    let found = certificates::list(core.store.pool(), &filter).await?;
    let next_after =
        if i64::try_from(found.len()).unwrap_or(0) >= limit { found.last().map(|c| c.id.clone()) } else { None };
    let listed: Vec<Value> = found
        .iter()
        .map(|c| certificate_json(c, Vec::new()))
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("history");
            }
            v
        })
        .collect();
    Ok(Json(json!({"certificates": listed, "next_after": next_after})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<Form> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).expect("header"));
        negotiate(&headers)
    }

    #[test]
    fn the_form_is_the_one_the_accept_header_ranks_highest() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Form::Xml), "no header: XML");
        assert_eq!(accept("application/json"), Some(Form::Json));
        assert_eq!(accept("application/xml;q=0.1, application/json"), Some(Form::Json), "by q");
        assert_eq!(accept("application/json, application/xml"), Some(Form::Json), "equal q: as listed");
        assert_eq!(accept("text/html, */*;q=0.5"), Some(Form::Xml));
        assert_eq!(accept("application/json;q=0, application/xml"), Some(Form::Xml), "q=0 refuses");
        assert_eq!(accept("text/html"), None);
        assert_eq!(accept("application/json;q=0"), None);
    }
}
