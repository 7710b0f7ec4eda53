//! coconnect: a gateway for the WCO Interconnectivity Framework for Certificates of Origin.
pub mod payload;
pub mod pki;
pub mod wssec;
pub mod lifecycle;
pub mod soap;
pub mod store;
