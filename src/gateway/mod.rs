//! The HTTP server (hyper, HTTP/1.1): accepts connections (at most `[limits] max_connections`
//! per listener), routes requests to the SOAP endpoint or the domestic API (`HEAD` as `GET`),
//! and on shutdown stops accepting while in-flight requests finish, for at most
//! `[limits] shutdown_grace_seconds`.
//!
//! On the SOAP listener a connection is kept only if its peer may ever be served: a trusted
//! proxy, or an address in some partner's `allowed_networks`; others are closed right after
//! `accept`, before TLS, and hold no slot. At most `[limits] max_connections_per_source` are
//! open from one address (a trusted proxy's are not counted). On both listeners a client that
//! takes none of a response for `[limits] write_timeout_seconds` is cut.
//!
//! Must never: hold a libxml document across an `.await` (all XML security work runs on the XML
//! security threads, through `wssec::on_xml_security_thread`), read a request body before its
//! sender is authenticated, wait on a client without a deadline, or abort a SOAP request whose
//! body has been read (it runs to its end in [`SoapState::processing`], which shutdown waits
//! for).

pub mod auth;
pub mod limits;
pub mod proxy;
pub mod soap_endpoint;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::state::Core;

/// What the partner-facing listener keeps beside the core: remembered credentials, the
/// request gate (concurrency, per-partner rate, delays after failed authentications), and the
/// requests being processed.
pub struct SoapState {
    pub core: Arc<Core>,
    pub credentials: auth::CredentialCache,
    pub gate: limits::RequestGate,
    /// Requests whose body has been read: each runs to its end (receipt stored, or nothing
    /// kept) even if its connection is cut, and shutdown waits for them.
    pub processing: TaskTracker,
}

impl SoapState {
    pub fn new(core: Arc<Core>) -> Self {
        let gate = limits::RequestGate::new(core.settings.limits.max_concurrent_requests);
        SoapState { core, credentials: auth::CredentialCache::default(), gate, processing: TaskTracker::new() }
    }

    /// True if a connection from `peer` could ever be served: a trusted proxy, or an address
    /// some partner may call from. Anyone else is refused at every request, so its connection
    /// is not worth a slot, a TLS handshake or a header read.
    fn admits(&self, peer: IpAddr) -> bool {
        let settings = &self.core.settings;
        settings.proxy.trusts(peer) || settings.partners.values().any(|p| p.allows(peer))
    }
}

/// Which face of the gateway a listener serves, with what it needs.
#[derive(Clone)]
pub enum Surface {
    /// Partners: `/soap/v1`, the WSDL and its schemas, `/healthz`.
    Soap(Arc<SoapState>),
    /// Our own systems: `/api/v1/...`, `/healthz`, served by the API's router.
    Api { core: Arc<Core>, service: crate::api::Service },
}

impl Surface {
    /// The domestic API's surface; its submissions hand their messages to `claims`, the
    /// process's delivery workers'.
    pub fn api(core: Arc<Core>, claims: Arc<crate::delivery::Claims>) -> Self {
        Surface::Api { service: crate::api::service(core.clone(), claims), core }
    }

    fn core(&self) -> &Core {
        match self {
            Surface::Soap(soap) => &soap.core,
            Surface::Api { core, .. } => core,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Surface::Soap(_) => "soap",
            Surface::Api { .. } => "api",
        }
    }
}

/// What a connection holds while it is open: its slot of `[limits] max_connections`, and on
/// the SOAP listener its source's count (none for a trusted proxy). Dropped, however the
/// connection ends, they free both.
struct Held {
    _slot: OwnedSemaphorePermit,
    _source: Option<limits::SourceSlot>,
}

/// Accept loop; one task per connection. On the SOAP surface with `[tls]`, each connection
/// first completes a mutual-TLS handshake (bounded by the header timeout).
///
/// At most `[limits] max_connections` connections are open at once: when all slots are taken
/// the loop stops accepting, and further clients wait in the kernel's backlog until one
/// closes (rather than being accepted and dropped). A failing `accept` (EMFILE, ENFILE, ...)
/// is retried after a growing pause. On shutdown the listening socket is closed at once (new
/// clients are refused, not queued), open connections finish their requests within
/// `[limits] shutdown_grace_seconds`, then the rest are cut; SOAP requests already being
/// processed are then waited for.
pub async fn serve(
    listener: TcpListener,
    surface: Surface,
    acceptor: Option<Arc<openssl::ssl::SslAcceptor>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = &surface.core().settings.limits;
    let grace = limits.shutdown_grace.std();
    let per_source = limits.max_connections_per_source;
    let slots = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let sources = Arc::new(limits::ConnectionsPerSource::default());
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::default();
    let (mut last_refusal_log, mut refused_since_log): (Option<std::time::Instant>, u64) = (None, 0);
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
        let source = match &surface {
            Surface::Soap(soap) => match admit(soap, &sources, remote.ip(), per_source) {
                Ok(source) => source,
                // Dropping the stream closes it; dropping `slot` frees the slot for the next.
                Err(refusal) => {
                    // A warning at most once a second: a flood must not flood the log too.
                    refused_since_log += 1;
                    if last_refusal_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(event = "ip_refused", %remote, refusal, refused = refused_since_log, "connection closed at accept");
                        last_refusal_log = Some(std::time::Instant::now());
                        refused_since_log = 0;
                    }
                    continue;
                }
            },
            Surface::Api { .. } => None,
        };
        let held = Held { _slot: slot, _source: source };
        connections.spawn(connection(stream, remote, surface.clone(), acceptor.clone(), shutdown.clone(), held));
    }
    // New clients are refused from now on rather than left waiting in the backlog.
    drop(listener);
    drain(connections, grace, surface.name()).await;
    if let Surface::Soap(soap) = &surface {
        finish_processing(&soap.processing).await;
    }
}

/// Whether a connection from `peer` is kept on the SOAP listener, with its source's count (none
/// for a trusted proxy, which carries many clients); `Err` says why not.
fn admit(
    soap: &SoapState,
    sources: &Arc<limits::ConnectionsPerSource>,
    peer: IpAddr,
    per_source: usize,
) -> Result<Option<limits::SourceSlot>, &'static str> {
    if !soap.admits(peer) {
        return Err("not a trusted proxy nor in any partner's allowed_networks");
    }
    if soap.core.settings.proxy.trusts(peer) {
        return Ok(None);
    }
    sources.enter(peer, per_source).map(Some).ok_or("max_connections_per_source reached")
}

/// One connection, from the accepted socket to its close; `held` is released when it ends.
async fn connection(
    stream: TcpStream,
    remote: SocketAddr,
    surface: Surface,
    acceptor: Option<Arc<openssl::ssl::SslAcceptor>>,
    shutdown: watch::Receiver<bool>,
    held: Held,
) {
    let _held = held;
    let limits = &surface.core().settings.limits;
    let header_timeout = limits.header_read_timeout.std();
    // Under TLS too, so that it sees the bytes the client actually takes.
    let stream = limits::WriteStallTimeout::new(stream, limits.write_timeout.std());
    match acceptor {
        Some(acceptor) => match tokio::time::timeout(header_timeout, tls::accept(&acceptor, stream)).await {
            Ok(Ok((tls_stream, cert))) => {
                serve_connection(TokioIo::new(tls_stream), surface, remote, Some(cert), shutdown).await
            }
            Ok(Err(e)) => tracing::warn!(event = "tls_refused", %remote, error = %e, "TLS handshake failed"),
            Err(_) => tracing::warn!(event = "tls_timeout", %remote, "TLS handshake not completed in time"),
        },
        None => serve_connection(TokioIo::new(stream), surface, remote, None, shutdown).await,
    }
}

/// How long, after the connections are gone, the SOAP requests still being processed may take
/// to store their receipt; past it the process stops without them (a store that does not
/// answer must not hold the stop forever; what was not committed is not there).
pub const PROCESSING_DEADLINE: Duration = Duration::from_secs(30);

/// Waits for the SOAP requests still being processed once their connections are gone, for at
/// most [`PROCESSING_DEADLINE`].
async fn finish_processing(processing: &TaskTracker) {
    processing.close();
    if !processing.is_empty() {
        tracing::info!(
            event = "shutdown_processing",
            requests = processing.len(),
            "waiting for requests being processed"
        );
    }
    if tokio::time::timeout(PROCESSING_DEADLINE, processing.wait()).await.is_err() {
        tracing::warn!(
            event = "shutdown_processing_forced",
            requests = processing.len(),
            "requests still being processed after the deadline: stopping without them"
        );
    }
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

async fn serve_connection<I>(
    io: I,
    surface: Surface,
    remote: SocketAddr,
    client_cert: Option<Arc<crate::wssec::material::Certificate>>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let limits = &surface.core().settings.limits;
    let (header_timeout, max_header_bytes) = (limits.header_read_timeout.std(), limits.max_header_bytes);
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
                Surface::Soap(soap) => {
                    soap_endpoint::route(soap, req, remote, client_cert).await.map(axum::body::Body::new)
                }
                Surface::Api { service, .. } => match tower::ServiceExt::oneshot(service.clone(), req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
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

    /// Out of descriptors, `accept` fails at once every time: the loop must not spin. On the
    /// paused clock, in 0.7 s it tries exactly seven times (at 0, 10, 30, 70, 150, 310 and
    /// 630 ms; a fixed 50 ms pause would try fourteen), and after a success the pauses start
    /// small again.
    #[tokio::test(start_paused = true)]
    async fn a_failing_accept_is_retried_after_growing_pauses() {
        let calls = std::cell::Cell::new(0u32);
        let emfile = || {
            calls.set(calls.get() + 1);
            async { Err::<((), std::net::SocketAddr), _>(std::io::Error::from_raw_os_error(24)) }
        };
        let mut backoff = AcceptBackoff::default();
        let gave_up = tokio::time::timeout(Duration::from_millis(700), accept(emfile, &mut backoff)).await;
        assert!(gave_up.is_err());
        assert_eq!(calls.get(), 7);
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
