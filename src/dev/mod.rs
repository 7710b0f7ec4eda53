//! Demonstration: the two-gateway demo (`coconnect demo`). The keys it uses come from the
//! development PKI (`crate::dev_pki`), its configuration files from `crate::config::dev_pair`;
//! both sit low in the layers so that the tests of `wssec` and `config` can use them without
//! importing this module, which starts whole gateways (`crate::app`).
//!
//! Must never: be used by `coconnect serve` or any module it runs: nothing outside `main`
//! imports this module, test modules included (tests/gateway/layers.rs).

pub mod demo;
