//! The HTTP server (hyper, HTTP/1.1): accepts connections (at most `[limits] max_connections`
//! per listener), routes requests to the SOAP endpoint or the domestic API (`HEAD` as `GET`),
//! and on shutdown stops accepting while in-flight requests finish, for at most
//! `[limits] shutdown_grace_seconds`.
//!
//! Must never: hold a libxml document across an `.await` (all XML security work runs inside
//! `spawn_blocking` in the handlers), read a request body before its sender is authenticated,
//! or wait on a client without a deadline.

pub mod auth;
pub mod limits;
pub mod soap_endpoint;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::state::Core;

/// What the partner-facing listener keeps beside the core: remembered credentials and the
/// request gate (concurrency, per-partner rate, delays after failed authentications).
pub struct SoapState {
    pub core: Arc<Core>,
    pub credentials: auth::CredentialCache,
    pub gate: limits::RequestGate,
}

impl SoapState {
    pub fn new(core: Arc<Core>) -> Self {
        let gate = limits::RequestGate::new(core.settings.limits.max_concurrent_requests);
        SoapState { core, credentials: auth::CredentialCache::default(), gate }
    }
}

/// Which face of the gateway a listener serves, with what it needs.
#[derive(Clone)]
pub enum Surface {
    /// Partners: `/soap/v1`, the WSDL and its schemas, `/healthz`.
    Soap(Arc<SoapState>),
    /// Our own systems: `/api/v1/...`, `/healthz`.
    Api(Arc<Core>),
}

impl Surface {
    fn core(&self) -> &Core {
        match self {
            Surface::Soap(soap) => &soap.core,
            Surface::Api(core) => core,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Surface::Soap(_) => "soap",
            Surface::Api(_) => "api",
        }
    }
}

/// Accept loop; one task per connection. On the SOAP surface with `[tls]`, each connection
/// first completes a mutual-TLS handshake (bounded by the header timeout).
///
/// At most `[limits] max_connections` connections are open at once: when all slots are taken
/// the loop stops accepting, and further clients wait in the kernel's backlog until one
/// closes (rather than being accepted and dropped). A failing `accept` (EMFILE, ENFILE, ...)
/// is retried after a growing pause. On shutdown, open connections finish their requests
/// within `[limits] shutdown_grace_seconds`; then the rest are cut.
pub async fn serve(
    listener: TcpListener,
    surface: Surface,
    acceptor: Option<Arc<openssl::ssl::SslAcceptor>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = &surface.core().settings.limits;
    let header_timeout = Duration::from_secs(limits.header_read_timeout_seconds);
    let max_header_bytes = limits.max_header_bytes;
    let grace = Duration::from_secs(limits.shutdown_grace_seconds);
    let slots = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::default();
    loop {
        // Finished connections are reaped as we go: the set holds the open ones only.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = shutdown.changed() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = accept(|| listener.accept(), &mut backoff) => accepted,
        };
        let surface = surface.clone();
        let conn_shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            // The slot is held until the connection, TLS handshake included, is over.
            let _slot = slot;
            match acceptor {
                Some(acceptor) => match tokio::time::timeout(header_timeout, tls::accept(&acceptor, stream)).await {
                    Ok(Ok((tls_stream, cert))) => {
                        serve_connection(
                            TokioIo::new(tls_stream),
                            surface,
                            remote,
                            Some(cert),
                            header_timeout,
                            max_header_bytes,
                            conn_shutdown,
                        )
                        .await
                    }
                    Ok(Err(e)) => tracing::warn!(event = "tls_refused", %remote, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::warn!(event = "tls_timeout", %remote, "TLS handshake not completed in time"),
                },
                None => {
                    serve_connection(
                        TokioIo::new(stream),
                        surface,
                        remote,
                        None,
                        header_timeout,
                        max_header_bytes,
                        conn_shutdown,
                    )
                    .await
                }
            }
        });
    }
    drain(connections, grace, surface.name()).await;
}

/// Waits up to `grace` for the open connections to finish (each was told to stop after its
/// request in flight), then aborts the rest: a stalled client must not hold up the stop.
async fn drain(mut connections: JoinSet<()>, grace: Duration, surface: &'static str) {
    let finished = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!(
            event = "shutdown_forced",
            surface,
            open = connections.len(),
            grace_seconds = grace.as_secs(),
            "connections still open after the shutdown grace period: closing them"
        );
        connections.shutdown().await;
    }
}

/// First pause after a failed `accept`; it doubles with every further failure.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// Longest pause between `accept` attempts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Pauses between failing `accept` calls. Out of file descriptors, `accept` fails at once every
/// time: retrying without a growing pause spins a core and floods the log.
struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff { next: ACCEPT_BACKOFF_FIRST }
    }
}

impl AcceptBackoff {
    fn pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (pause * 2).min(ACCEPT_BACKOFF_MAX);
        pause
    }

    fn reset(&mut self) {
        self.next = ACCEPT_BACKOFF_FIRST;
    }
}

/// The next accepted connection; failures are logged and retried after the backoff's pause.
async fn accept<S, F, Fut>(mut accept_once: F, backoff: &mut AcceptBackoff) -> (S, std::net::SocketAddr)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::io::Result<(S, std::net::SocketAddr)>>,
{
    loop {
        match accept_once().await {
            Ok(accepted) => {
                backoff.reset();
                return accepted;
            }
            Err(e) => {
                let pause = backoff.pause();
                tracing::warn!(event = "accept_failed", error = %e, retry_in_ms = pause.as_millis() as u64, "accept failed");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection<I>(
    io: I,
    surface: Surface,
    remote: std::net::SocketAddr,
    client_cert: Option<Arc<crate::wssec::material::Certificate>>,
    header_timeout: Duration,
    max_header_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let surface = surface.clone();
        let client_cert = client_cert.clone();
        async move {
            // HEAD is routed as GET; hyper knows the request was HEAD and sends the GET
            // answer's status and headers (its Content-Length included) without the body.
            if req.method() == hyper::Method::HEAD {
                *req.method_mut() = hyper::Method::GET;
            }
            Ok::<_, std::convert::Infallible>(match &surface {
                Surface::Soap(soap) => soap_endpoint::route(soap, req, remote, client_cert).await,
                Surface::Api(core) => crate::api::route(core, req).await,
            })
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_header_bytes)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, %remote, "connection closed with error");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_backoff_doubles_up_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let pauses: Vec<u64> = (0..9).map(|_| b.pause().as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.pause(), Duration::from_millis(10));
    }

    /// Out of descriptors, `accept` fails at once every time: the loop must not spin. In 0.7 s
    /// it tries about seven times (at 0, 10, 30, 70, 150, 310, 630 ms; a fixed 50 ms pause
    /// would try fourteen), and after a success the pauses start small again.
    #[tokio::test]
    async fn a_failing_accept_is_retried_after_growing_pauses() {
        let calls = std::cell::Cell::new(0u32);
        let emfile = || {
            calls.set(calls.get() + 1);
            async { Err::<((), std::net::SocketAddr), _>(std::io::Error::from_raw_os_error(24)) }
        };
        let mut backoff = AcceptBackoff::default();
        let gave_up = tokio::time::timeout(Duration::from_millis(700), accept(emfile, &mut backoff)).await;
        assert!(gave_up.is_err());
        assert!((5..=8).contains(&calls.get()), "{} attempts", calls.get());
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
        let mut failures = 2;
        let flaky = || {
            failures -= 1;
            let result = if failures >= 0 { Err(std::io::Error::from_raw_os_error(24)) } else { Ok(((), addr)) };
            async move { result }
        };
        let (_, got) = accept(flaky, &mut backoff).await;
        assert_eq!(got, addr);
        assert_eq!(backoff.pause(), ACCEPT_BACKOFF_FIRST, "a success resets the backoff");
    }
}
