//! The domestic JSON API, for the administration's own issuing or clearance system (bearer
//! token from the configuration). Listens on its own address, separate from the partner-facing
//! SOAP endpoint.
//!
//! - `POST /api/v1/certificates?partner=ID` (CO XML body) → 422 with every validation error,
//!   409 if the CO was already submitted, or 202 `{id, state, message_id}`.
//! - `GET /api/v1/certificates/{id}` → the certificate with its history.
//! - `GET /api/v1/certificates?issuer=KR&reference=...` → the certificates with that identity.
//!
//! - Operator routes (outbox, partners, alerts): see [`operator`].
//!
//! Must never: build SOAP or touch keys; DTOs here are separate from the store's records.

mod operator;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::gateway::http::{json, read_body, response, Body, BodyError};
use crate::lifecycle::Direction;
use crate::soap::messages::request_xml;
use crate::soap::{MessageHeader, Operation};
use crate::store::certificates::{self, CertificateRecord, NewCertificate};
use crate::store::messages::sha256_hex;
use crate::store::{outbox, StoreError};
use crate::wssec::limits::precheck;

pub async fn route(state: &Arc<AppState>, req: Request<Incoming>) -> Response<Body> {
    if req.method() == Method::GET && req.uri().path() == "/healthz" {
        return response(StatusCode::OK, "text/plain", "ok");
    }
    if req.method() == Method::GET && req.uri().path() == "/readyz" {
        return crate::gateway::readiness(state).await;
    }
    let Some(caller) = authorize(state, &req) else {
        return json(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "a valid bearer token is required", "code": "API-UNAUTHORIZED"}),
        );
    };
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let method = req.method().clone();
    if let Some(result) = operator::route(state, &method, &path, &query, &caller).await {
        return result.unwrap_or_else(|e| {
            tracing::error!(error = %e, "operator request failed");
            json(StatusCode::SERVICE_UNAVAILABLE, &json!({"error": "store unavailable", "code": "API-STORE"}))
        });
    }
    let result = match (method, path.as_str()) {
        (Method::POST, "/api/v1/certificates") => submit(state, req, &query, &caller).await,
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

/// The name of the token the request presents, compared in constant time.
fn authorize(state: &AppState, req: &Request<Incoming>) -> Option<String> {
    let presented = req.headers().get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?.trim();
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
    state: &Arc<AppState>,
    req: Request<Incoming>,
    query: &[(String, String)],
    caller: &str,
) -> Result<Response<Body>, StoreError> {
    let settings = &state.settings;
    let Some(partner) = param(query, "partner").and_then(|p| settings.partners.get(p)) else {
        return Ok(json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "query parameter partner must name a configured partner", "code": "API-PARTNER"}),
        ));
    };
    let body = match read_body(req, settings.security.max_message_bytes).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return Ok(json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "body over the size limit", "code": "API-TOO-LARGE"}),
            ))
        }
        Err(BodyError::Io(e)) => return Ok(json(StatusCode::BAD_REQUEST, &json!({"error": e, "code": "API-READ"}))),
    };
    if let Err(e) = precheck(&body, &settings.xml_limits()) {
        return Ok(unprocessable(vec![json!({"code": "CO-XML-MALFORMED", "message": e.to_string(), "path": "/"})]));
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return Ok(unprocessable(vec![
            json!({"code": "CO-XML-MALFORMED", "message": "body is not UTF-8", "path": "/"}),
        ]));
    };
    let co = match crate::payload::parse_co(text) {
        Ok(co) => co,
        Err(errors) => {
            return Ok(unprocessable(
                errors.iter().map(|e| json!({"code": e.code, "message": e.message, "path": e.path})).collect(),
            ))
        }
    };
    // The CO travels as the model serialises it: exactly what was validated.
    let co_xml = match crate::payload::to_xml(&co) {
        Ok(x) => x,
        Err(e) => return Ok(unprocessable(vec![json!({"code": "CO-XML-MALFORMED", "message": e, "path": "/"})])),
    };
    let now = state.clock.now();
    let message_id = Uuid::new_v4();
    let header = MessageHeader::new(&settings.party, &partner.party, message_id, now);
    let body_xml = request_xml(Operation::SendCo, &header, &co_xml);
    let new = NewCertificate {
        issuer: &settings.party,
        reference: co.reference(),
        direction: Direction::Outbound,
        partner: &partner.party,
        content_sha256: &sha256_hex(co_xml.as_bytes()),
        co_xml: &co_xml,
    };
    match outbox::submit(&state.store, &new, Operation::SendCo.name(), &message_id.to_string(), &body_xml, now).await {
        Ok(record) => {
            tracing::info!(event = "submitted", certificate = %record.id, reference = %record.reference, partner = %partner.party, caller, %message_id, "CO queued");
            Ok(json(
                StatusCode::ACCEPTED,
                &json!({"id": record.id, "state": record.state, "message_id": message_id.to_string()}),
            ))
        }
        Err(StoreError::Duplicate(what)) => Ok(json(
            StatusCode::CONFLICT,
            &json!({"error": format!("{what} was already submitted"), "code": "CO-DUPLICATE"}),
        )),
        Err(e) => Err(e),
    }
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
        "state": c.state,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    });
    if let Some(h) = history {
        v["history"] = json!(h);
    }
    v
}

async fn show(state: &Arc<AppState>, id: &str) -> Result<Response<Body>, StoreError> {
    match certificates::get(&state.store, id).await? {
        Some(c) => {
            let history = certificates::history(&state.store, &c.id).await?;
            Ok(json(StatusCode::OK, &certificate_json(&c, Some(history))))
        }
        None => Ok(json(StatusCode::NOT_FOUND, &json!({"error": "no such certificate", "code": "API-NOT-FOUND"}))),
    }
}

async fn lookup(state: &Arc<AppState>, query: &[(String, String)]) -> Result<Response<Body>, StoreError> {
    let (Some(issuer), Some(reference)) = (param(query, "issuer"), param(query, "reference")) else {
        return Ok(json(StatusCode::BAD_REQUEST, &json!({"error": "give issuer and reference", "code": "API-QUERY"})));
    };
    let found = certificates::find(&state.store, issuer, reference).await?;
    let mut out = Vec::new();
    for c in &found {
        out.push(certificate_json(c, Some(certificates::history(&state.store, &c.id).await?)));
    }
    Ok(json(StatusCode::OK, &json!(out)))
}
