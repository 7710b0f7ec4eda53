//! coconnect: a gateway for the WCO Interconnectivity Framework for Certificates of Origin.
pub mod payload;
pub mod pki;
pub mod wssec;
pub mod lifecycle;
pub mod soap;
pub mod store;
pub mod api;
pub mod app;
pub mod config;
pub mod delivery;
pub mod gateway;
pub mod cli;
pub mod demo;
pub mod telemetry;
pub mod devpair;
