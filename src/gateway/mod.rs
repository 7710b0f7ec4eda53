//! The HTTP server (hyper, HTTP/1.1): accepts connections, routes requests to the SOAP endpoint
//! or the domestic API, and stops accepting on shutdown while in-flight requests finish.
//!
//! Must never: hold a libxml document across an `.await` (all XML security work runs inside
//! `spawn_blocking` in the handlers), or read a request body before its sender is authenticated.

pub mod auth;
pub mod http;
pub mod limits;
pub mod soap_endpoint;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::AppState;

/// Which face of the gateway a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Partners: `/soap/v1`, the WSDL and its schemas, `/healthz`.
    Soap,
    /// Our own systems: `/api/v1/...`, `/healthz`.
    Api,
}

/// Accept loop; one task per connection. On the SOAP surface with `[tls]`, each connection
/// first completes a mutual-TLS handshake (bounded by the header timeout).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    surface: Surface,
    acceptor: Option<Arc<openssl::ssl::SslAcceptor>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let header_timeout = Duration::from_secs(state.settings.limits.header_read_timeout_seconds);
    let max_header_bytes = state.settings.limits.max_header_bytes;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = state.clone();
                let conn_shutdown = shutdown.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            match tokio::time::timeout(header_timeout, tls::accept(&acceptor, stream)).await {
                                Ok(Ok((tls_stream, cert))) => {
                                    serve_connection(TokioIo::new(tls_stream), state, surface, remote, Some(cert), header_timeout, max_header_bytes, conn_shutdown).await
                                }
                                Ok(Err(e)) => tracing::warn!(event = "tls_refused", %remote, error = %e, "TLS handshake failed"),
                                Err(_) => tracing::warn!(event = "tls_timeout", %remote, "TLS handshake not completed in time"),
                            }
                        }
                        None => serve_connection(TokioIo::new(stream), state, surface, remote, None, header_timeout, max_header_bytes, conn_shutdown).await,
                    }
                });
            }
        }
    }
    while connections.join_next().await.is_some() {}
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection<I>(
    io: I,
    state: Arc<AppState>,
    surface: Surface,
    remote: std::net::SocketAddr,
    client_cert: Option<Arc<crate::wssec::material::Certificate>>,
    header_timeout: Duration,
    max_header_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        let client_cert = client_cert.clone();
        async move {
            Ok::<_, std::convert::Infallible>(match surface {
                Surface::Soap => soap_endpoint::route(&state, req, remote, client_cert).await,
                Surface::Api => crate::api::route(&state, req).await,
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

/// `/readyz`: the database answers (keys and configuration were loaded at start, or the
/// process would not run). For orchestrators and the reverse proxy's health checks.
pub async fn readiness(state: &AppState) -> hyper::Response<http::Body> {
    match sqlx::query("SELECT 1").execute(state.store.pool()).await {
        Ok(_) => http::response(hyper::StatusCode::OK, "text/plain", "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unavailable");
            http::response(hyper::StatusCode::SERVICE_UNAVAILABLE, "text/plain", "database unavailable")
        }
    }
}
