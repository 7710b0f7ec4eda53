//! The one error type of the domestic API: every refusal (extractors, flows, the store) becomes
//! an [`ApiError`], a status and a JSON body `{"error", "code", ...}` with a stable code.
//!
//! Must never: send a store's or library's message to the caller for our own failure (it is
//! logged; the caller gets `API-STORE`).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::flows::FlowError;
use crate::lifecycle::LC_UNKNOWN;
use crate::store::StoreError;

/// A refused or failed API request: its status and JSON body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
    challenge: bool,
}

impl ApiError {
    /// `{"error": message, "code": code}` with `status`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, body: json!({"error": message.into(), "code": code}), challenge: false }
    }

    /// A body of the caller's own shape (a look-up's answer, a list of errors without a code).
    pub fn with_body(status: StatusCode, body: Value) -> Self {
        ApiError { status, body, challenge: false }
    }

    /// Adds a field to the body (`path`, `errors`, `index` ...).
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        self.body[key] = json!(value);
        self
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "API-NOT-FOUND", format!("no such {what}"))
    }

    pub fn no_such_partner() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "API-PARTNER", "no such partner")
    }

    /// 401 `API-UNAUTHORIZED`, naming the scheme that would be accepted (RFC 7235 §3.1).
    pub fn unauthorized() -> Self {
        let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "API-UNAUTHORIZED", "a valid bearer token is required");
        e.challenge = true;
        e
    }

    /// Our own failure: logged with its cause, answered 503 `API-STORE`.
    pub fn store(e: &StoreError) -> Self {
        tracing::error!(error = %e, "domestic API request failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "API-STORE", "store unavailable")
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::store(&e)
    }
}

/// A flow's refusal: the lifecycle's 409 (`LC-STATE`, `LC-NOT-AUTHORISED`) or 404
/// (`LC-UNKNOWN`), invalid content 422 with every error.
impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::Refused(e) => {
                let status = if e.code == LC_UNKNOWN { StatusCode::NOT_FOUND } else { StatusCode::CONFLICT };
                ApiError::new(status, &e.code, e.description).with("path", e.path)
            }
            FlowError::Invalid(errors) => ApiError::with_body(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "the request is not valid", "errors": errors}),
            ),
            FlowError::Store(e) => ApiError::store(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.challenge {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"coconnect\""));
        }
        response
    }
}
