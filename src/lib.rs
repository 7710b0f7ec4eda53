//! coconnect: a gateway for the WCO Interconnectivity Framework for Certificates of Origin.
//!
//! Module map, outside in:
//! - [`gateway`]: the HTTP server; [`gateway::soap_endpoint`] is the partner-facing receive
//!   pipeline, [`api`] the domestic JSON API.
//! - [`soap`]: the message vocabulary (operations, message header, acknowledgement), faults, WSDL.
//! - [`wssec`]: WS-Security (X.509 token profile) over libxmlsec1; [`wssec::ffi`] holds every
//!   `unsafe` block of the crate.
//! - [`payload`]: the CO as WCO DM LPCO XML (yaserde) and its validation (Annex II).
//! - [`lifecycle`]: the certificate state machine. [`store`]: sqlx persistence (SQLite or
//!   PostgreSQL), outbox, replay cache, message log.
//! - [`delivery`]: the workers that push queued messages to partners; [`backend`]: the event
//!   log pushed to the administration's own systems (webhook, AMQP).
//! - [`state`]: the core handed down to every part (settings, store, clock); [`http`]: HTTP
//!   helpers of both listeners.
//! - [`config`], [`app`], [`cli`], [`telemetry`]: configuration, wiring, command line, logging.
//!   Nothing but `main` and the demo imports [`app`]; docs/architecture.md ("Layers") has the
//!   dependency rule, which `tests/gateway/layers.rs` enforces.
//! - [`pki`], [`devpair`], [`demo`]: development PKI and the two-gateway demo.
#![deny(unsafe_code)]

pub mod alerts;
pub mod api;
pub mod app;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod codes;
pub mod config;
pub mod delivery;
pub mod dev;
pub mod flows;
pub mod gateway;
pub mod http;
pub mod lifecycle;
pub mod message;
pub mod ops;
pub mod payload;
pub mod probe;
pub mod receive;
pub mod reconcile;
pub mod refusal;
pub mod soap;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod wssec;
