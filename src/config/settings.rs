//! The validated settings a running gateway reads: built once at load, from the raw file,
//! with every file read, key checked and partner's trust and security profile built.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{CancellationDecision, CheckedDuration, RawAlerts, RawListen, SecurityProfile};
use crate::wssec::limits::XmlLimits;
use crate::wssec::material::{Certificate, KeyPair};
use crate::wssec::trust::PartnerTrust;

/// Loaded, checked settings.
#[derive(Clone)]
pub struct Settings {
    pub party: String,
    pub public_url: String,
    pub database_url: String,
    pub listen: RawListen,
    pub signing: KeyPair,
    pub decryption: KeyPair,
    pub security: Security,
    pub delivery: Delivery,
    pub limits: Limits,
    pub retention: Retention,
    pub alerts: RawAlerts,
    pub backend: super::backend::Backend,
    pub api_tokens: Vec<(String, String)>,
    pub tls: Option<TlsSettings>,
    pub proxy: ProxySettings,
    pub partners: HashMap<String, Arc<Partner>>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("party", &self.party)
            .field("public_url", &self.public_url)
            .field("listen", &self.listen)
            .field("partners", &self.partners.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// `[security]`, checked.
#[derive(Clone, Debug)]
pub struct Security {
    pub clock_skew: CheckedDuration,
    /// Lifetime of the Timestamps we write.
    pub timestamp_ttl: CheckedDuration,
    /// Longest accepted lifetime of a received Timestamp.
    pub max_timestamp_age: CheckedDuration,
    /// How long the replay cache keeps a message without a Timestamp.
    pub replay_retention: CheckedDuration,
    pub max_message_bytes: usize,
}

/// `[delivery]`, checked. Its retry marks and send rate are defaults: each [`Partner`] has its
/// own (`Partner::retry_marks`, `Partner::flush_rate_per_second`).
#[derive(Clone, Debug)]
pub struct Delivery {
    pub undelivered_alert: CheckedDuration,
    pub request_timeout: CheckedDuration,
    pub lease: CheckedDuration,
    pub poll_interval: CheckedDuration,
    pub workers: usize,
}

/// `[limits]`, checked: no value reaches a semaphore or a timer that panics on it.
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_read_timeout: CheckedDuration,
    pub body_read_timeout: CheckedDuration,
    pub max_header_bytes: usize,
    pub max_concurrent_requests: usize,
    /// Each partner's default (`Partner::requests_per_second` is what is applied).
    pub requests_per_second: f64,
    pub max_connections: usize,
    pub shutdown_grace: CheckedDuration,
    pub max_connections_per_source: usize,
    pub write_timeout: CheckedDuration,
}

/// `[retention]`, checked.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// Contents of closed messages older than this are purged; `None`: kept.
    pub message_contents: Option<CheckedDuration>,
}

/// What is expected of a message received from a partner.
pub enum Expect {
    /// A partner's request: its profile decides encryption; the Timestamp must be in force.
    Request,
    /// A partner's answer to our look-up (GetCO): it carries a CO, so the partner's profile
    /// decides encryption as for a request, and its Timestamp must be in force.
    LookupResponse,
    /// A partner's acknowledgement of our request: signed only, and possibly the original one
    /// returned for a retry (bound to our request by its digest instead of its Timestamp).
    Acknowledgement,
}

impl Settings {
    /// The receive policy for messages from `partner`.
    pub fn inbound_policy<'a>(
        &'a self,
        partner: &'a Partner,
        expect: Expect,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::wssec::inbound::InboundPolicy<'a> {
        // Acknowledgements are signed only, whatever the partner's profile.
        let profile = match expect {
            Expect::Request | Expect::LookupResponse => partner.security.inbound.clone(),
            Expect::Acknowledgement => partner.security.signed_only().inbound,
        };
        crate::wssec::inbound::InboundPolicy {
            limits: XmlLimits { max_bytes: partner.max_message_bytes, ..XmlLimits::default() },
            // Nothing is decrypted for a partner that has no business encrypting to us.
            decryption: profile.encryption.is_some().then_some(&self.decryption),
            profile,
            trust: &partner.trust,
            now,
            clock_skew: partner.clock_skew.chrono(),
            max_ttl: self.security.max_timestamp_age.chrono(),
            require_fresh_timestamp: matches!(expect, Expect::Request | Expect::LookupResponse),
            replay_retention: self.security.replay_retention.chrono(),
        }
    }

    pub fn xml_limits(&self) -> XmlLimits {
        XmlLimits { max_bytes: self.security.max_message_bytes, ..XmlLimits::default() }
    }

    /// The partner whose inbound Basic user name is `username`.
    pub fn partner_by_username(&self, username: &str) -> Option<&Arc<Partner>> {
        self.partners.values().find(|p| p.inbound_username == username)
    }
}

/// A partner, ready to use.
pub struct Partner {
    pub party: String,
    pub endpoint: String,
    pub trust: PartnerTrust,
    /// How `trust` was made (pins, CAs and subject), for `check-config`.
    pub signing_trust: String,
    pub encryption_cert: Option<Certificate>,
    pub profile: SecurityProfile,
    /// The WS-Security profile (`[partners.security]`: preset and options; encrypted or not by
    /// `profile`), as data for `wssec`, built once at load.
    pub security: crate::wssec::Profile,
    /// The lifetime of the Timestamps we send this partner.
    pub timestamp_ttl: CheckedDuration,
    /// The clock difference allowed with this partner.
    pub clock_skew: CheckedDuration,
    pub retry_marks: Vec<chrono::Duration>,
    pub flush_rate_per_second: f64,
    pub max_message_bytes: usize,
    pub requests_per_second: f64,
    pub cancellation_decision: CancellationDecision,
    pub tls_client_certs: Vec<Certificate>,
    pub tls_client_subject: Option<String>,
    pub tls_server_cas: Vec<Certificate>,
    pub allowed_networks: Vec<IpNet>,
    pub outbound_username: String,
    pub outbound_password: String,
    pub inbound_username: String,
    pub inbound_password_hash: String,
}

impl std::fmt::Debug for Partner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partner")
            .field("party", &self.party)
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

/// Our TLS identity and the CAs of partners' client certificates.
#[derive(Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Arc<Vec<u8>>,
    pub client_cas: Vec<Certificate>,
}

#[derive(Clone, Debug, Default)]
pub struct ProxySettings {
    pub trusted: Vec<IpNet>,
    pub client_cert_header: Option<String>,
}

impl ProxySettings {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl Partner {
    /// The certificate to encrypt what we send this partner to: its encryption certificate
    /// under the `sign-encrypt` profile, none under `sign`.
    pub fn encrypt_to(&self) -> Option<&Certificate> {
        match self.profile {
            SecurityProfile::SignEncrypt => self.encryption_cert.as_ref(),
            SecurityProfile::Sign => None,
        }
    }

    /// True if `cert` is this partner's TLS client certificate (pinned, or by subject).
    pub fn tls_identity_matches(&self, cert: &Certificate) -> bool {
        self.tls_client_certs.iter().any(|c| c.der == cert.der)
            || self.tls_client_subject.as_deref() == Some(cert.subject.as_str())
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.allowed_networks.iter().any(|n| n.contains(&ip))
    }
}
