//! The domestic JSON API, for the administration's own issuing or clearance system (bearer
//! token from the configuration). Listens on its own address, separate from the partner-facing
//! SOAP endpoint.
//!
//! - `POST /api/v1/certificates?partner=ID` (CO XML body) → 422 with every validation error,
//!   409 if the CO was already submitted, or 202 `{id, kind, state, message_id, reference_code}`.
//! - `POST /api/v1/declarations?partner=ID` (DO XML body, Annex IV) → the same, sent as SendDO.
//! - `GET /api/v1/certificates/{id}` → the certificate with its history, amendments,
//!   treatment decisions and the certificate that replaced it.
//! - Lifecycle routes (amendment, cancellation decision, treatment, look-up): see [`lifecycle`].
//! - `GET /api/v1/certificates?issuer=KR&reference=...` → the certificates with that identity.
//!
//! - Operator routes (outbox, partners, alerts): see [`operator`].
//!
//! Every route but `/healthz` and `/readyz` needs the bearer token (scheme name in any case):
//! 401 `API-UNAUTHORIZED` with `WWW-Authenticate: Bearer realm="coconnect"` otherwise. A known
//! resource asked with a method it does not answer gets 405 `API-METHOD` with `Allow`; `HEAD`
//! is answered as `GET`. A body must arrive within `[limits] body_read_timeout_seconds` (408
//! `API-READ-TIMEOUT`).
//!
//! Must never: build SOAP or touch keys; DTOs here are separate from the store's records.

mod approved_exporters;
mod claims;
mod lifecycle;
mod operator;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::flows::domestic::SubmitError;
use crate::http::scheme_credentials;
use crate::http::{json, read_body_within, response, with_allow, Body, BodyError};
use crate::payload::DocumentKind;
use crate::state::Core;
use crate::store::certificates::{self, CertificateRecord};
use crate::store::{amendments, treatments, StoreError};

/// Routes the API listener. `HEAD` arrives here as `GET` (see `crate::gateway`).
pub async fn route(state: &Arc<Core>, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" | "/readyz" if req.method() != Method::GET => return method_not_allowed("GET, HEAD"),
        "/healthz" => return response(StatusCode::OK, "text/plain", "ok"),
        "/readyz" => return crate::http::readiness(&state.store).await,
        _ => {}
    }
    let Some(caller) = authorize(state, &req) else {
        let mut refused = json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "a valid bearer token is required", "code": "API-UNAUTHORIZED"}),
        );
        // RFC 7235 §3.1: a 401 names the scheme that would be accepted.
        refused.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"coconnect\""));
        return refused;
    };
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let method = req.method().clone();
    // A known resource asked with a method it does not answer: 405 naming the ones it does
    // (checked once here, so the routers below only ever see methods they handle).
    if let Some(allow) = allowed_methods(&path) {
        if !allow.split(", ").any(|m| m == method.as_str()) {
            return method_not_allowed(allow);
        }
    }
    // `approved_exporters::route` takes the request (it reads the body): decide by the path
    // first, so that `req` is still there for the routes below when the path is not its own.
    if approved_exporters::party_of(&path).is_some() {
        if let Some(result) = approved_exporters::route(state, &method, &path, req, &caller).await {
            return result.unwrap_or_else(|e| {
                tracing::error!(error = %e, "approved exporters request failed");
                json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "store unavailable", "code": "API-STORE"}))
            });
        }
        return json(StatusCode::NOT_FOUND, &json!({"error": "no such resource", "code": "API-NOT-FOUND"}));
    }
    if lifecycle::is_lifecycle_route(&method, &path) {
        return lifecycle::route(state, &path, &query, req, &caller).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "lifecycle request failed");
            json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "store unavailable", "code": "API-STORE"}))
        });
    }
    if let Some(result) = operator::route(state, &method, &path, &query, &caller).await {
        return result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "operator request failed");
            json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "store unavailable", "code": "API-STORE"}))
        });
    }
    // `claims::route` takes the request (it reads the body): asked only for its own paths.
    if claims::handles(&method, &path) {
        if let Some(result) = claims::route(state, &method, &path, req, &caller).await {
            return result.unwrap_or_else(|e| {
                tracing::error!(error = %e, "claims request failed");
                json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "store unavailable", "code": "API-STORE"}))
            });
        }
        return json(StatusCode::NOT_FOUND, &json!({"error": "no such resource", "code": "API-NOT-FOUND"}));
    }
    let result = match (method, path.as_str()) {
        (Method::POST, "/api/v1/certificates") => submit(state, req, &query, &caller, DocumentKind::Co).await,
        (Method::POST, "/api/v1/declarations") => submit(state, req, &query, &caller, DocumentKind::Do).await,
        (Method::GET, "/api/v1/certificates") => lookup(state, &query).await,
        (Method::GET, p) if p.starts_with("/api/v1/certificates/") => {
            show(state, &p["/api/v1/certificates/".len()..]).await
        }
        _ => Ok(json(StatusCode::NOT_FOUND, &json!({"error": "no such resource", "code": "API-NOT-FOUND"}))),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "domestic API request failed");
        json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "store unavailable", "code": "API-STORE"}))
    })
}

/// The methods a known API resource answers, as its `Allow` header (`HEAD` wherever `GET`);
/// `None` for a path that is no resource (answered 404).
fn allowed_methods(path: &str) -> Option<&'static str> {
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    let segments: Vec<&str> = path.strip_prefix("/api/v1/")?.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(match segments.as_slice() {
        ["certificates"] => "GET, HEAD, POST",
        ["declarations"] | ["claims"] => POST,
        ["certificates", _] | ["certificates", _, "claims"] => GET,
        ["certificates", _, "amendments" | "cancellation-decision" | "treatment"] => POST,
        ["lookup"] | ["outbox"] | ["partners"] | ["alerts"] => GET,
        ["outbox", _, "retry" | "cancel"] | ["partners", _, "pause" | "resume"] | ["alerts", _, "ack"] => POST,
        ["partners", _, "approved-exporters"] => approved_exporters::ALLOW,
        _ => return None,
    })
}

/// 405 `API-METHOD` with the `Allow` header.
pub(crate) fn method_not_allowed(allow: &'static str) -> Response<Body> {
    with_allow(
        json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": format!("method not allowed here; use {allow}"), "code": "API-METHOD"}),
        ),
        allow,
    )
}

/// The name of the token the request presents, compared in constant time. The scheme name
/// `Bearer` is case-insensitive (RFC 7235 §2.1).
fn authorize(state: &Core, req: &Request<Incoming>) -> Option<String> {
    let presented = scheme_credentials(req.headers().get(AUTHORIZATION)?.to_str().ok()?, "Bearer")?;
    let presented = openssl::sha::sha256(presented.as_bytes());
    state
        .settings
        .api_tokens
        .iter()
        .find(|(_, token)| openssl::memcmp::eq(&openssl::sha::sha256(token.as_bytes()), &presented))
        .map(|(name, _)| name.clone())
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn submit(
    state: &Arc<Core>,
    req: Request<Incoming>,
    query: &[(String, String)],
    caller: &str,
    kind: DocumentKind,
) -> Result<Response<Body>, StoreError> {
    let settings = &state.settings;
    let Some(partner) = param(query, "partner").and_then(|p| settings.partners.get(p)) else {
        return Ok(json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "query parameter partner must name a configured partner", "code": "API-PARTNER"}),
        ));
    };
    let body = match read_request_body(state, req).await {
        Ok(b) => b,
        Err(refused) => return Ok(refused),
    };
    let now = state.clock.now();
    match crate::flows::domestic::submit(&state.store, settings, &partner.party, kind, &body, now).await {
        Ok(submitted) => {
            let record = &submitted.certificate;
            tracing::info!(event = "submitted", certificate = %record.id, reference = %record.reference, kind = kind.as_str(), partner = %partner.party, caller, message_id = %submitted.message_id, "queued");
            Ok(json(
                StatusCode::ACCEPTED,
                &json!({"id": record.id, "kind": record.kind, "state": record.state, "message_id": submitted.message_id, "reference_code": submitted.reference_code}),
            ))
        }
        Err(SubmitError::Invalid(errors)) => Ok(unprocessable(
            errors.iter().map(|e| json!({"code": e.code, "message": e.description, "path": e.path})).collect(),
        )),
        Err(SubmitError::Duplicate(what)) => Ok(json(
            StatusCode::CONFLICT,
            &json!({"error": format!("{what} was already submitted"), "code": "CO-DUPLICATE"}),
        )),
        Err(SubmitError::Store(e)) => Err(e),
    }
}

/// The request body, at most `security.max_message_bytes`, received within `[limits]
/// body_read_timeout_seconds`; or the error answer (413 `API-TOO-LARGE`, 408
/// `API-READ-TIMEOUT`, 400 `API-READ`).
pub(crate) async fn read_request_body(state: &Core, req: Request<Incoming>) -> Result<bytes::Bytes, Response<Body>> {
    let timeout = state.settings.limits.body_read_timeout.std();
    read_body_within(req, state.settings.security.max_message_bytes, timeout).await.map_err(|e| match e {
        BodyError::Timeout => {
            tracing::warn!(event = "body_timeout", surface = "api", "request body not received in time");
            json(
                StatusCode::REQUEST_TIMEOUT,
                &json!({"error": "request body not received in time", "code": "API-READ-TIMEOUT"}),
            )
        }
        BodyError::TooLarge => {
            json(StatusCode::PAYLOAD_TOO_LARGE, &json!({"error": "body over the size limit", "code": "API-TOO-LARGE"}))
        }
        BodyError::Io(e) => json(StatusCode::BAD_REQUEST, &json!({"error": e, "code": "API-READ"})),
    })
}

fn unprocessable(errors: Vec<serde_json::Value>) -> Response<Body> {
    json(StatusCode::UNPROCESSABLE_ENTITY, &json!({"error": "the CO is not valid", "errors": errors}))
}

fn certificate_json(c: &CertificateRecord, history: Option<Vec<certificates::HistoryEntry>>) -> serde_json::Value {
    let mut v = json!({
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
    });
    if let Some(h) = history {
        v["history"] = json!(h);
    }
    v
}

async fn show(state: &Arc<Core>, id: &str) -> Result<Response<Body>, StoreError> {
    // One snapshot: the certificate's state, history and amendments are read as one commit left them.
    let mut snapshot = state.store.begin_snapshot().await?;
    match certificates::get(&mut *snapshot, id).await? {
        Some(c) => {
            let history = certificates::history(&mut *snapshot, &c.id).await?;
            let mut v = certificate_json(&c, Some(history));
            v["amendments"] = json!(amendments::list(&mut *snapshot, &c.id).await?);
            v["treatment_decisions"] = json!(treatments::list(&mut *snapshot, &c.id).await?);
            v["replaced_by"] = json!(certificates::replaced_by(&mut *snapshot, &c.id).await?);
            snapshot.rollback().await?;
            Ok(json(StatusCode::OK, &v))
        }
        None => Ok(json(StatusCode::NOT_FOUND, &json!({"error": "no such certificate", "code": "API-NOT-FOUND"}))),
    }
}

async fn lookup(state: &Arc<Core>, query: &[(String, String)]) -> Result<Response<Body>, StoreError> {
    let (Some(issuer), Some(reference)) = (param(query, "issuer"), param(query, "reference")) else {
        return Ok(json(StatusCode::BAD_REQUEST, &json!({"error": "give issuer and reference", "code": "API-QUERY"})));
    };
    let mut snapshot = state.store.begin_snapshot().await?;
    let found = certificates::find(&mut *snapshot, issuer, reference).await?;
    let mut out = Vec::new();
    for c in &found {
        out.push(certificate_json(c, Some(certificates::history(&mut *snapshot, &c.id).await?)));
    }
    snapshot.rollback().await?;
    Ok(json(StatusCode::OK, &json!(out)))
}
