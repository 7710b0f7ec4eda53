//! Development and demonstration: the development PKI (`coconnect pki init`), a pair of
//! gateway configurations on loopback, and the two-gateway demo (`coconnect demo`).
//!
//! Must never: be used by `coconnect serve` or any module it runs: nothing outside `main`
//! imports this module (tests/gateway/layers.rs), except test modules, which build their keys
//! (`wssec`'s tests) and configuration files (`config`'s tests) with it. Keys made here are for
//! development only.

pub mod demo;
pub mod pair;
pub mod pki;
