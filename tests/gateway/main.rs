//! Integration tests: two real gateways on loopback (one test binary).

mod approved_exporters;
mod backend;
mod claims;
mod cli;
mod codes;
mod common;
mod crash;
mod delivery;
mod exchange;
mod http;
mod interop;
mod layers;
mod lifecycle;
mod limits;
mod matrix;
mod proxy;
mod rejections;
mod soak;
mod tls;
