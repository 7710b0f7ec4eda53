//! Integration tests: two real gateways on loopback (one test binary).

mod common;
mod crash;
mod exchange;
mod rejections;
mod interop;
mod delivery;
mod soak;
