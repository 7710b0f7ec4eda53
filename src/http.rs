//! Small HTTP helpers shared by the SOAP listener (`gateway`) and the domestic API (`api`):
//! responses, bounded body reads, `Authorization` scheme parsing, the readiness answer.
//!
//! Must never: import a surface or the wiring; decide who a caller is (it only parses).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

pub type Body = Full<Bytes>;

pub fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response(status, "application/json", value.to_string())
}

/// Why a body could not be read.
pub enum BodyError {
    TooLarge,
    Io(String),
}

/// Reads a body of at most `max` bytes; a declared Content-Length over `max` is refused before
/// anything is read.
pub async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, BodyError> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(req.into_body(), max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Io(e.to_string())),
    }
}

/// The credentials of an `Authorization` value in `scheme` (`Basic`, `Bearer`), trimmed; `None`
/// for another scheme. The scheme name is case-insensitive (RFC 7235 §2.1) and is followed by
/// one or more spaces.
pub fn scheme_credentials<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, credentials) = value.trim_start().split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| credentials.trim())
}

/// `/readyz`: the database answers (keys and configuration were loaded at start, or the
/// process would not run). For orchestrators and the reverse proxy's health checks.
pub async fn readiness(store: &crate::store::Store) -> Response<Body> {
    match sqlx::query("SELECT 1").execute(store.pool()).await {
        Ok(_) => response(StatusCode::OK, "text/plain", "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unavailable");
            response(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "database unavailable")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scheme_credentials;

    #[test]
    fn scheme_credentials_needs_the_scheme_then_a_space() {
        assert_eq!(scheme_credentials("bearer abc ", "Bearer"), Some("abc"));
        assert_eq!(scheme_credentials("BEARER abc", "Bearer"), Some("abc"));
        assert_eq!(scheme_credentials("Bearerabc", "Bearer"), None);
        assert_eq!(scheme_credentials("Basic abc", "Bearer"), None);
    }
}
