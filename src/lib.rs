//! coconnect: a gateway for the WCO Interconnectivity Framework for Certificates of Origin.
//!
//! Module map, outside in (docs/architecture.md has the layers and the rule that
//! `tests/gateway/layers.rs` enforces; nothing but `main` and [`dev`] imports [`app`]):
//! - [`gateway`]: the HTTP server (accept loop, TLS, proxy trust, the SOAP endpoint's gate
//!   before the body); [`api`]: the domestic JSON API; [`http`]: helpers of both.
//! - [`receive`]: the partner request pipeline after the body is read; [`refusal`]: every way a
//!   request is refused, with its code.
//! - [`flows`]: what each operation and domestic request does, in one transaction.
//! - [`delivery`]: the workers that push queued messages to partners, and GetCO asked of one;
//!   [`backend`]: the event log pushed to the administration's own systems (webhook, AMQP).
//! - [`alerts`]: late-delivery alerts, the alert webhook, the retention schedule.
//! - [`state`]: the core handed down to every part (settings, store, clock); [`config`]: the
//!   configuration file.
//! - [`store`]: sqlx persistence (SQLite or PostgreSQL): certificates, outbox, receipts and
//!   replay cache, message log, event log, audit chain, retention.
//! - [`message`]: the binding-neutral vocabulary; [`soap`]: its SOAP binding, faults, WSDL.
//! - [`payload`]: the CO and DO as WCO DM LPCO XML (yaserde), validation (Annex II), JSON.
//! - [`lifecycle`]: the certificate state machine; [`reconcile`]: claims.
//! - [`wssec`]: WS-Security (X.509 token profile) over libxmlsec1; `wssec::ffi` holds every
//!   `unsafe` block of the crate.
//! - [`app`], [`cli`], [`ops`], [`probe`], [`telemetry`]: wiring, command line, the operator
//!   client, the conformance probe, logging; [`dev`]: development PKI, pair and demo.
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
pub mod dev_pki;
pub mod flows;
pub mod gateway;
pub mod http;
pub mod lifecycle;
pub mod message;
pub mod ops;
pub mod party;
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
