//! What the API's handlers take from a request, each refusal an [`ApiError`]: the caller (the
//! name of its bearer token), the body (read whole by the [`read_body`] layer within its size
//! and time), a JSON body, the query, the path's parameters.
//!
//! Must never: let a handler run for a caller without a valid token, or a body read without a
//! bound on its size and time.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::http::{read_body_within, scheme_credentials, BodyError};
use crate::state::Core;

/// The name of the token the request presented (set by [`authenticate`]).
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl Caller {
    /// How the caller is named in histories and operator records.
    pub fn actor(&self) -> String {
        format!("api:{}", self.0)
    }
}

/// The layer in front of every route but the health checks: the bearer token (scheme name in
/// any case, RFC 7235 §2.1), compared in constant time, or 401.
pub async fn authenticate(State(core): State<Arc<Core>>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| scheme_credentials(v, "Bearer"))
        .map(|token| openssl::sha::sha256(token.as_bytes()));
    let caller = presented.and_then(|presented| {
        core.settings
            .api_tokens
            .iter()
            .find(|(_, token)| openssl::memcmp::eq(&openssl::sha::sha256(token.as_bytes()), &presented))
            .map(|(name, _)| name.clone())
    });
    match caller {
        Some(name) => {
            req.extensions_mut().insert(Caller(name));
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Only reachable without the layer by a routing mistake of ours: refuse, never serve.
        parts.extensions.get::<Caller>().cloned().ok_or_else(ApiError::unauthorized)
    }
}

/// The layer that reads a routed request's body whole before its handler runs: at most
/// `security.max_message_bytes` (a declared Content-Length over it is refused unread, 413
/// `API-TOO-LARGE`), all of it within `[limits] body_read_timeout_seconds` (408
/// `API-READ-TIMEOUT`: a client that trickles its body is cut off however it paces it).
pub async fn read_body(State(core): State<Arc<Core>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let timeout = core.settings.limits.body_read_timeout.std();
    let limit = core.settings.security.max_message_bytes;
    // The body with the one header the read looks at (a declared length over the limit).
    let mut sized = Request::new(body);
    if let Some(length) = parts.headers.get(axum::http::header::CONTENT_LENGTH) {
        sized.headers_mut().insert(axum::http::header::CONTENT_LENGTH, length.clone());
    }
    let read = read_body_within(sized, limit, timeout).await;
    match read {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(BodyError::Timeout) => {
            tracing::warn!(event = "body_timeout", surface = "api", "request body not received in time");
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "API-READ-TIMEOUT", "request body not received in time")
                .into_response()
        }
        Err(BodyError::TooLarge) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "API-TOO-LARGE", "body over the size limit").into_response()
        }
        Err(BodyError::Io(e)) => ApiError::new(StatusCode::BAD_REQUEST, "API-READ", e).into_response(),
    }
}

/// A JSON body of type `T`, or 400 `API-JSON` saying what is wrong with it.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "API-READ", e.body_text()))?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "API-JSON", format!("invalid JSON: {e}")))
    }
}

/// The query's parameters, in order (a parameter given twice counts by its first value).
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        Ok(Query(url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()))
    }
}

/// The path's parameters, or 404 `API-NOT-FOUND` when one cannot be read (it names nothing
/// we hold).
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParams(v))
            .map_err(|_| ApiError::not_found("resource"))
    }
}
