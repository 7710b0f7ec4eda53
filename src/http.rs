//! Small HTTP helpers shared by the SOAP listener (`gateway`) and the domestic API (`api`):
//! responses (405 with `Allow`), bounded body reads, `Authorization` scheme parsing, the
//! readiness answer.
//!
//! Must never: import a surface or the wiring; decide who a caller is (it only parses).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
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

/// A plain-text 405 naming the methods the resource answers in `Allow` (RFC 9110 §15.5.6).
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", format!("method not allowed; use {allow}"));
    r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    /// The whole body did not arrive within the time allowed.
    Timeout,
    Io(String),
}

/// Reads a body of at most `max` bytes that must arrive whole within `timeout`; a declared
/// Content-Length over `max` is refused before anything is read.
pub async fn read_body_within<B>(req: Request<B>, max: usize, timeout: std::time::Duration) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::time::timeout(timeout, read_body(req, max)).await.unwrap_or(Err(BodyError::Timeout))
}

async fn read_body<B>(req: Request<B>, max: usize) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
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
    use std::time::Duration;

    use super::*;

    /// A body whose sender never sends anything.
    struct Stalled;

    impl hyper::body::Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_is_read_whole_within_its_time_and_size_or_refused_saying_why() {
        let second = Duration::from_secs(1);
        let ok = read_body_within(Request::new(Full::new(Bytes::from_static(b"<x/>"))), 10, second).await;
        assert_eq!(ok.ok(), Some(Bytes::from_static(b"<x/>")));
        let big = read_body_within(Request::new(Full::new(Bytes::from(vec![b'a'; 11]))), 10, second).await;
        assert!(matches!(big, Err(BodyError::TooLarge)), "{big:?}");
        let declared = Request::builder().header(CONTENT_LENGTH, "11").body(Stalled).expect("request");
        let declared = read_body_within(declared, 10, second).await;
        assert!(matches!(declared, Err(BodyError::TooLarge)), "refused before reading: {declared:?}");
        let started = tokio::time::Instant::now();
        let stalled = read_body_within(Request::new(Stalled), 10, second).await;
        assert!(matches!(stalled, Err(BodyError::Timeout)), "{stalled:?}");
        assert_eq!(started.elapsed(), second);
    }

    #[test]
    fn a_405_names_the_allowed_methods() {
        let r = method_not_allowed("GET, HEAD");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers().get(ALLOW).and_then(|v| v.to_str().ok()), Some("GET, HEAD"));
    }

    #[test]
    fn scheme_credentials_needs_the_scheme_then_a_space() {
        assert_eq!(scheme_credentials("bearer abc ", "Bearer"), Some("abc"));
        assert_eq!(scheme_credentials("BEARER abc", "Bearer"), Some("abc"));
        assert_eq!(scheme_credentials("Bearerabc", "Bearer"), None);
        assert_eq!(scheme_credentials("Basic abc", "Bearer"), None);
    }
}
