//! The domestic JSON API, for the administration's own issuing or clearance system and its
//! operators (bearer tokens from the configuration), on its own listener, separate from the
//! partner-facing SOAP endpoint. An axum [`Router`] served by the gateway's accept loop.
//!
//! - [`certificates`]: submitting a CO or DO, a certificate's view and its document (XML or
//!   JSON), the certificates of one identity, a listing.
//! - [`events`]: the back-end's event feed (long poll), acknowledgements, push subscribers.
//! - [`lifecycle`]: amendment, cancellation decision, treatment, look-up at a partner.
//! - [`claims`]: declarations reconciled against received certificates.
//! - [`approved_exporters`]: a partner's list of approved exporters.
//! - [`operator`]: outbox, partners, alerts.
//!
//! Every route but `/healthz` and `/readyz` needs the bearer token (scheme name in any case):
//! 401 `API-UNAUTHORIZED` with `WWW-Authenticate: Bearer realm="coconnect"` otherwise, before
//! anything else is looked at. A known resource asked with a method it does not answer gets
//! 405 `API-METHOD` with `Allow`, an unknown path 404 `API-NOT-FOUND`; `HEAD` is answered as
//! `GET`. A body is read whole, within `security.max_message_bytes` and `[limits]
//! body_read_timeout_seconds`, before a handler runs ([`extract::read_body`]); every refusal
//! is an [`ApiError`].
//!
//! Must never: build SOAP or touch keys (the flows give a message its form); DTOs here are
//! separate from the store's records.

mod approved_exporters;
mod certificates;
mod claims;
mod error;
mod events;
mod extract;
mod lifecycle;
mod operator;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

pub use error::ApiError;

use crate::delivery::Claims;
use crate::state::Core;

/// The domestic API as the service the accept loop calls: the [`router`], its bare 405
/// answered as an [`ApiError`] (the router adds `Allow` outside its own layers, so this wraps
/// it whole).
pub type Service = tower::util::MapResponse<Router, fn(Response) -> Response>;

/// The [`Service`] of `core`'s API, whose submissions hand their messages to `claims`.
pub fn service(core: Arc<Core>, claims: Arc<Claims>) -> Service {
    tower::util::MapResponse::new(router(core, claims), method_not_allowed as fn(Response) -> Response)
}

/// The domestic API's routes, with their layers: authentication in front of every route but
/// the health checks, the body read in front of each handler. A submission may lease its
/// message for an idle delivery worker of this process and hand it over in `claims`
/// ([`Claims::submission_lease`]).
pub fn router(core: Arc<Core>, claims: Arc<Claims>) -> Router {
    let protected = Router::new()
        .route("/api/v1/certificates", get(certificates::find).post(certificates::submit_co))
        .route("/api/v1/declarations", post(certificates::submit_do))
        .route("/api/v1/certificates/{id}", get(certificates::show))
        .route("/api/v1/certificates/{id}/document", get(certificates::document))
        .route("/api/v1/events", get(events::list))
        .route("/api/v1/events/{id}/ack", post(events::acknowledge))
        .route("/api/v1/backend/subscribers", get(events::subscribers))
        .route("/api/v1/certificates/{id}/claims", get(claims::list))
        .route("/api/v1/certificates/{id}/amendments", post(lifecycle::amend))
        .route("/api/v1/certificates/{id}/cancellation-decision", post(lifecycle::decide_cancellation))
        .route("/api/v1/certificates/{id}/treatment", post(lifecycle::record_treatment))
        .route("/api/v1/claims", post(claims::post))
        .route("/api/v1/lookup", get(lifecycle::lookup))
        .route("/api/v1/outbox", get(operator::outbox_list))
        .route("/api/v1/outbox/{id}/retry", post(operator::retry))
        .route("/api/v1/outbox/{id}/cancel", post(operator::cancel))
        .route("/api/v1/partners", get(operator::partner_list))
        .route("/api/v1/partners/{party}/pause", post(operator::pause))
        .route("/api/v1/partners/{party}/resume", post(operator::resume))
        .route(
            "/api/v1/partners/{party}/approved-exporters",
            get(approved_exporters::list).put(approved_exporters::replace),
        )
        .route("/api/v1/alerts", get(operator::alert_list))
        .route("/api/v1/alerts/{id}/ack", post(operator::acknowledge_alert))
        // Only a routed request with an allowed method has its body read.
        .route_layer(from_fn_with_state(core.clone(), extract::read_body))
        // `read_body` bounds the body by `max_message_bytes` and time; axum's own 2 MiB default
        // for the extractors after it would refuse what it let through, and not as an ApiError.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .fallback(not_found)
        .layer(from_fn_with_state(core.clone(), extract::authenticate))
        .layer(Extension(claims));
    Router::new().route("/healthz", get(healthy)).route("/readyz", get(ready)).merge(protected).with_state(core)
}

async fn healthy() -> Response {
    // The same type as `/readyz` and the SOAP listener's `/healthz`.
    ([(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
}

async fn ready(State(core): State<Arc<Core>>) -> Response {
    crate::http::readiness(&core.store).await.map(axum::body::Body::new)
}

async fn not_found() -> ApiError {
    ApiError::not_found("resource")
}

/// The order methods are named in an `Allow` header.
const METHOD_ORDER: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The router's bare 405 as an [`ApiError`] (`API-METHOD`), with its `Allow` header in one
/// spelling (`GET, HEAD, POST`).
fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let offered = response.headers().get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut methods: Vec<&str> = offered.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
    methods.sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m).unwrap_or(METHOD_ORDER.len()));
    methods.dedup();
    let allow = methods.join(", ");
    let mut refused =
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "API-METHOD", format!("method not allowed here; use {allow}"))
            .into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        refused.headers_mut().insert(header::ALLOW, value);
    }
    refused
}
