//! Integration tests: two real gateways on loopback (one test binary).

mod common;
mod crash;
mod delivery;
mod exchange;
mod interop;
mod limits;
mod proxy;
mod rejections;
mod soak;
mod tls;
