//! Wiring: loads the store, binds the listeners, starts the SOAP server, the domestic API, the
//! delivery workers, the alert loop and the back-end push workers, and stops them on shutdown. Tests and the demo build an [`App`] on
//! port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::delivery::RateLimiter;
use crate::gateway::{SoapState, Surface};
use crate::state::Core;
use crate::store::Store;

/// A running gateway.
pub struct App {
    /// Settings, store and clock, shared by every part.
    pub state: Arc<Core>,
    /// The delivery workers' per-partner send rate, shared by this process's workers.
    pub limiter: Arc<RateLimiter>,
    pub soap_addr: SocketAddr,
    pub api_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Why the gateway did not start. As in `ConfigError`, each cause is said once, in the message
/// (no variant has a `source`): `main` prints the chain with `{:#}`.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: std::io::Error },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Tls(#[from] crate::gateway::tls::TlsError),
}

impl App {
    /// Binds the configured addresses and starts everything.
    pub async fn start(settings: Settings) -> Result<App, StartError> {
        let soap = bind(settings.listen.soap).await?;
        let api = bind(settings.listen.api).await?;
        Self::start_on(settings, soap, api).await
    }

    /// Starts on listeners the caller bound (tests and the demo use port 0).
    pub async fn start_on(settings: Settings, soap: TcpListener, api: TcpListener) -> Result<App, StartError> {
        Self::start_with(settings, soap, api, crate::clock::system(), true).await
    }

    /// Starts with the given clock; without `workers` no delivery or alert task runs (tests
    /// drive [`crate::delivery::Worker::step`] themselves).
    pub async fn start_with(
        settings: Settings,
        soap: TcpListener,
        api: TcpListener,
        clock: SharedClock,
        workers: bool,
    ) -> Result<App, StartError> {
        if cfg!(feature = "test-support") {
            // `cargo build --all-targets` unifies dev-dependency features: say so loudly.
            tracing::warn!("built with the test-support feature (test seams compiled in): not a production build");
        }
        // Said at start, not found out as failing accepts under load.
        crate::gateway::limits::warn_if_descriptors_short(settings.limits.max_connections);
        // A TLS misconfiguration stops the start, rather than leave a gateway without its listener.
        let acceptor = settings.tls.as_ref().map(crate::gateway::tls::acceptor).transpose()?.map(Arc::new);
        let store = Store::connect(&settings.database_url).await?;
        let worker_count = if workers { settings.delivery.workers.max(1) } else { 0 };
        let state = Arc::new(Core::new(settings, store, clock));
        let limiter = Arc::new(RateLimiter::default());
        let (shutdown, watch_rx) = watch::channel(false);
        let soap_addr =
            soap.local_addr().map_err(|reason| StartError::Bind { addr: state.settings.listen.soap, reason })?;
        let api_addr =
            api.local_addr().map_err(|reason| StartError::Bind { addr: state.settings.listen.api, reason })?;
        // Names this process's claims and attempts (several instances may share PostgreSQL).
        let instance = format!(
            "{}-{}-{}",
            state.settings.party,
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let claims = Arc::new(crate::delivery::Claims::for_process(&instance, worker_count));
        let mut tasks = JoinSet::new();
        let soap_state = Arc::new(SoapState::new(state.clone()));
        tasks.spawn(crate::gateway::serve(soap, Surface::Soap(soap_state), acceptor, watch_rx.clone()));
        tasks.spawn(crate::gateway::serve(api, Surface::api(state.clone(), claims.clone()), None, watch_rx.clone()));
        for n in 0..worker_count {
            let worker =
                crate::delivery::Worker::new(state.clone(), limiter.clone(), claims.clone(), format!("{instance}-{n}"));
            tasks.spawn(worker.run(watch_rx.clone()));
        }
        if workers {
            tasks.spawn(crate::delivery::watch_outbox(state.clone(), watch_rx.clone()));
            tasks.spawn(crate::alerts::run(state.clone(), watch_rx.clone()));
            crate::backend::start(state.clone(), &instance, watch_rx.clone(), &mut tasks).await?;
        }
        tracing::info!(party = %state.settings.party, %soap_addr, %api_addr, workers = worker_count, "gateway started");
        Ok(App { state, limiter, soap_addr, api_addr, shutdown, tasks })
    }

    /// A delivery worker of this process (tests drive [`crate::delivery::Worker::step`]); it
    /// claims one message at a time, for itself only.
    pub fn worker(&self, owner: &str) -> crate::delivery::Worker {
        self.worker_sharing(owner, Arc::new(crate::delivery::Claims::for_workers(1)))
    }

    /// A delivery worker of this process sharing `claims` with others, as the workers
    /// `start_with` spawns do (tests hand it messages claimed beforehand).
    pub fn worker_sharing(&self, owner: &str, claims: Arc<crate::delivery::Claims>) -> crate::delivery::Worker {
        crate::delivery::Worker::new(self.state.clone(), self.limiter.clone(), claims, owner.to_owned())
    }

    /// Stops accepting, lets in-flight work finish, and waits for every task. Each listener
    /// closes its socket, cuts the connections still open after `[limits]
    /// shutdown_grace_seconds`, and the SOAP listener then waits for the requests it was
    /// processing (bounded by their own timeouts); a worker finishes the delivery it is in,
    /// which its own timeouts bound.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Runs until SIGTERM or Ctrl-C, then stops.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|reason| StartError::Bind { addr, reason })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
