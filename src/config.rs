//! The gateway's configuration: one TOML file per gateway (documented in
//! docs/configuration.md), read into raw serde types, then loaded into [`Settings`] with every
//! file read, every key checked against its certificate and every partner's trust built.
//!
//! Every number an operator writes is checked against its range here, once, at load: durations
//! become [`CheckedDuration`]s, and an error names its key (`security.clock_skew_seconds: ...`).
//!
//! Must never: log or print secrets (passwords, tokens, hashes and private keys are redacted in
//! `Debug` and left out of [`Settings::summary`]), accept a partner without a way to
//! authenticate it, or pass on a value that could make later arithmetic overflow or panic.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::wssec::limits::XmlLimits;
use crate::wssec::material::{Certificate, KeyPair};
use crate::wssec::trust::PartnerTrust;

/// A configuration error. Each names what it is about (the file, or the key: `keys.signing_key`,
/// `partner ID: encryption_cert`), and says the cause once: no variant has a `source`, so an
/// error chain printed with `{:#}` does not repeat the OS error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file itself.
    #[error("cannot read {path}: {reason}")]
    File { path: PathBuf, reason: std::io::Error },
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    /// A file named by a key.
    #[error("{key}: cannot read {path}: {reason}")]
    Read { key: String, path: PathBuf, reason: std::io::Error },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { what: what.into(), reason: reason.into() }
}

/// `value` if it lies in `range`, else an error naming `key` and the range, e.g.
/// `security.clock_skew_seconds: 99999999999 is out of range (0..=86400)`. For every number an
/// operator writes (configuration or command line), so that none reaches arithmetic that
/// could overflow or panic.
pub fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(key, format!("{value} is out of range ({}..={})", range.start(), range.end())))
    }
}

/// A duration an operator wrote (a configuration key or a command-line argument), checked
/// against its key's range when it was read. The only constructors check, and every range is
/// far below the limits of `chrono` and `std`, so converting it and adding it to a time of
/// this era cannot overflow or panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckedDuration(std::time::Duration);

/// No configured duration may exceed this (100 years), whatever its key's range says.
const MAX_CHECKED_SECONDS: i64 = 100 * 366 * 86_400;

impl CheckedDuration {
    /// `value` seconds, if `value` is in `range` (e.g. `0..=86_400`); the error names `key`.
    pub fn seconds(
        key: &str,
        value: impl Into<i128>,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Self, ConfigError> {
        Self::checked(key, value.into(), range, 1000)
    }

    /// `value` milliseconds, if in `range`.
    pub fn millis(
        key: &str,
        value: impl Into<i128>,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Self, ConfigError> {
        Self::checked(key, value.into(), range, 1)
    }

    /// `value` days, if in `range`.
    pub fn days(key: &str, value: impl Into<i128>, range: std::ops::RangeInclusive<i64>) -> Result<Self, ConfigError> {
        Self::checked(key, value.into(), range, 86_400_000)
    }

    fn checked(
        key: &str,
        value: i128,
        range: std::ops::RangeInclusive<i64>,
        unit_millis: i128,
    ) -> Result<Self, ConfigError> {
        let (lo, hi) = (i128::from(*range.start()), i128::from(*range.end()));
        let millis = value * unit_millis;
        if value < lo || value > hi || millis < 0 || millis > i128::from(MAX_CHECKED_SECONDS) * 1000 {
            return Err(invalid(key, format!("{value} is out of range ({lo}..={hi})")));
        }
        // In 0..=MAX_CHECKED_SECONDS * 1000, checked just above: fits a u64.
        Ok(CheckedDuration(std::time::Duration::from_millis(millis as u64)))
    }

    /// For timeouts and sleeps.
    pub fn std(self) -> std::time::Duration {
        self.0
    }

    /// For times of messages and schedules.
    pub fn chrono(self) -> chrono::Duration {
        // Cannot fail: the constructors keep it under 100 years.
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

/// As written in the configuration's units: `500 ms`, `120 s`, `1825 days`.
impl std::fmt::Display for CheckedDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            write!(f, "{ms} ms")
        } else if ms >= 86_400_000 && ms % 86_400_000 == 0 {
            let days = ms / 86_400_000;
            write!(f, "{days} {}", if days == 1 { "day" } else { "days" })
        } else {
            write!(f, "{} s", ms / 1000)
        }
    }
}

/// The file as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Our party code (e.g. `KR`), sender/receiver ID in message headers.
    pub party: String,
    /// The URL partners call (`.../soap/v1`); written into the served WSDL.
    pub public_url: String,
    /// `sqlite:PATH` (default embedded) or `postgres://...`.
    pub database_url: String,
    pub listen: RawListen,
    pub keys: RawKeys,
    #[serde(default)]
    pub security: RawSecurity,
    #[serde(default)]
    pub delivery: RawDelivery,
    /// Terminate TLS in the gateway (mutual TLS with partners); absent: plain HTTP behind a
    /// TLS-terminating reverse proxy (see `[proxy]`).
    pub tls: Option<RawTls>,
    #[serde(default)]
    pub proxy: RawProxy,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub api_tokens: Vec<RawToken>,
    #[serde(default)]
    pub partners: Vec<RawPartner>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Our TLS certificate and key: server certificate of the SOAP listener, and client
    /// certificate when we call partners over https.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA certificates partners' TLS client certificates must chain to (no system bundle).
    pub client_cas: Vec<PathBuf>,
}

/// A reverse proxy in front of the gateway.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawProxy {
    /// Addresses of the proxies whose forwarded headers are believed; from anyone else those
    /// headers are ignored.
    pub trusted: Vec<String>,
    /// Header in which the proxy passes the verified client certificate (URL-escaped PEM, as
    /// nginx's `$ssl_client_escaped_cert`).
    pub client_cert_header: Option<String>,
}

/// How long message contents (personal data) are kept (framework SP2).
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetention {
    /// Contents of closed messages older than this many days are purged once a day (digests,
    /// IDs, signatures' evidence and the audit chain stay). Absent: kept until `coconnect purge`.
    pub message_contents_days: Option<i64>,
}

/// HTTP limits of the partner-facing endpoint (framework SP6).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Time a client has to send the request headers (slow-loris) and idle time on keep-alive.
    pub header_read_timeout_seconds: u64,
    /// Time a client has to send the whole body.
    pub body_read_timeout_seconds: u64,
    /// Largest request head (request line and headers), at least 8192.
    pub max_header_bytes: usize,
    /// Requests processed at once; more get HTTP 503.
    pub max_concurrent_requests: usize,
    /// Default request rate per partner (per second); more get HTTP 429.
    pub requests_per_second: f64,
    /// Connections open at once on each listener; when all are taken, no more are accepted
    /// until one closes.
    pub max_connections: usize,
    /// On shutdown, how long open connections have to finish before they are cut.
    pub shutdown_grace_seconds: u64,
    /// Connections open at once from one address on the SOAP listener (a trusted proxy's are
    /// not counted); more are closed at once.
    pub max_connections_per_source: usize,
    /// How long a client may go without taking any of the response we are sending before its
    /// connection is closed (a client that never reads must not keep its connection).
    pub write_timeout_seconds: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            header_read_timeout_seconds: 10,
            body_read_timeout_seconds: 30,
            max_header_bytes: 16 * 1024,
            max_concurrent_requests: 64,
            requests_per_second: 50.0,
            max_connections: 1024,
            shutdown_grace_seconds: 30,
            max_connections_per_source: 64,
            write_timeout_seconds: 30,
        }
    }
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// Every alert is also POSTed as JSON to this URL (retried with backoff).
    pub webhook_url: Option<String>,
    pub webhook_max_attempts: Option<i64>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// SOAP endpoint for partners (`POST /soap/v1`, `GET /soap/v1?wsdl`).
    pub soap: SocketAddr,
    /// Domestic JSON API for our own systems; keep it on an internal interface.
    pub api: SocketAddr,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawKeys {
    pub signing_key: PathBuf,
    pub signing_cert: PathBuf,
    pub decryption_key: PathBuf,
    pub decryption_cert: PathBuf,
    /// CA certificates partners' signing certificates may chain to (in addition to pins).
    #[serde(default)]
    pub trust_anchors: Vec<PathBuf>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RawSecurity {
    pub clock_skew_seconds: i64,
    pub timestamp_ttl_seconds: i64,
    pub max_timestamp_age_seconds: i64,
    pub max_message_bytes: usize,
}

impl Default for RawSecurity {
    fn default() -> Self {
        RawSecurity {
            clock_skew_seconds: 120,
            timestamp_ttl_seconds: 300,
            max_timestamp_age_seconds: 3600,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Framework 4.3.3: 10, 20, 30, 40, 50, 60 minutes, then 2, 4, 8 and 16 hours.
pub const DEFAULT_RETRY_MARKS: [i64; 10] = [600, 1200, 1800, 2400, 3000, 3600, 7200, 14400, 28800, 57600];

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RawDelivery {
    /// Retry marks, in seconds after the first attempt, for technical failures (framework
    /// 4.3.3: every 10 minutes for an hour, then at 2, 4, 8 and 16 hours). After the last mark
    /// the message ends `delivery_failed` and an alert asks for manual intervention.
    pub retry_marks_seconds: Vec<i64>,
    /// Messages sent per second to a partner at most (a backlog is flushed at this rate).
    pub flush_rate_per_second: f64,
    /// Alert when a message is still undelivered this long after it was submitted.
    pub undelivered_alert_seconds: i64,
    pub request_timeout_seconds: u64,
    /// How long a worker owns a claimed message before another may take it.
    pub lease_seconds: i64,
    pub poll_interval_millis: u64,
    /// Concurrent delivery workers in this process.
    pub workers: usize,
}

impl Default for RawDelivery {
    fn default() -> Self {
        RawDelivery {
            retry_marks_seconds: DEFAULT_RETRY_MARKS.to_vec(),
            flush_rate_per_second: 20.0,
            undelivered_alert_seconds: 3600,
            request_timeout_seconds: 30,
            lease_seconds: 120,
            poll_interval_millis: 500,
            workers: 2,
        }
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    /// The bearer token itself, or
    pub token: Option<String>,
    /// the name of an environment variable holding it, or
    pub token_env: Option<String>,
    /// a file holding it (permissions checked like a private key's).
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for RawToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawToken").field("name", &self.name).finish_non_exhaustive()
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityProfile {
    /// Signed and encrypted (framework 4.4.3: all messages but simple acknowledgements).
    #[default]
    SignEncrypt,
    /// Signed only (for partners whose stack cannot encrypt; TLS still protects the channel).
    Sign,
}

/// Who answers a partner's cancellation notifications (A.27–A.28).
#[derive(Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CancellationDecision {
    /// Decline when an origin-treatment decision was recorded on the CO, accept otherwise.
    #[default]
    Automatic,
    /// An officer decides through the domestic API.
    Officer,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawPartner {
    pub party: String,
    /// The partner's SOAP endpoint.
    pub endpoint: String,
    /// Signing certificates accepted from this partner as they are (pinned).
    #[serde(default)]
    pub signing_certs: Vec<PathBuf>,
    /// CA certificates this partner's signing certificates may chain to (instead of pins).
    #[serde(default)]
    pub trust_anchors: Vec<PathBuf>,
    /// Subject (RFC 2253, e.g. `CN=ID signing,O=...,C=ID`) the partner's signing certificate
    /// must carry when it is trusted by CA chain; required then.
    pub signing_subject: Option<String>,
    /// The partner's encryption certificate (we encrypt to it).
    pub encryption_cert: Option<PathBuf>,
    #[serde(default)]
    pub profile: SecurityProfile,
    /// This partner's retry marks (seconds after the first attempt); default `[delivery]`'s.
    pub retry_marks_seconds: Option<Vec<i64>>,
    /// This partner's send rate limit; default `[delivery]`'s.
    pub flush_rate_per_second: Option<f64>,
    /// Largest message accepted from this partner; default `[security] max_message_bytes`.
    pub max_message_bytes: Option<usize>,
    /// Requests per second accepted from this partner; default `[limits]`'s.
    pub requests_per_second: Option<f64>,
    /// Who answers this partner's cancellation notifications: `automatic` (default: decline
    /// when an origin-treatment decision was recorded, accept otherwise) or `officer` (through
    /// the domestic API).
    #[serde(default)]
    pub cancellation_decision: CancellationDecision,
    /// The partner's TLS client certificates (pinned), checked against the one it presents
    /// (directly, or through a trusted proxy).
    #[serde(default)]
    pub tls_client_certs: Vec<PathBuf>,
    /// Or: the subject (RFC 2253) of its TLS client certificate, which must chain to our
    /// `[tls] client_cas` / the proxy's verification.
    pub tls_client_subject: Option<String>,
    /// CA certificates the partner's TLS server certificate must chain to (https endpoints).
    #[serde(default)]
    pub tls_server_cas: Vec<PathBuf>,
    /// Source networks the partner may call from (CIDR); empty refuses everyone.
    pub allowed_networks: Vec<String>,
    /// Credentials we present when calling the partner.
    pub outbound_auth: RawOutboundAuth,
    /// Credentials the partner presents when calling us.
    pub inbound_auth: RawInboundAuth,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawOutboundAuth {
    pub username: String,
    pub password: Option<String>,
    pub password_env: Option<String>,
    /// A file holding the password (permissions checked like a private key's).
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for RawOutboundAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawOutboundAuth").field("username", &self.username).finish_non_exhaustive()
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawInboundAuth {
    pub username: String,
    /// Argon2 PHC string (`coconnect hash-password` makes one), or
    pub password_hash: Option<String>,
    /// the name of an environment variable holding it, or
    pub password_hash_env: Option<String>,
    /// a file holding it (permissions checked like a private key's).
    pub password_hash_file: Option<PathBuf>,
}

impl std::fmt::Debug for RawInboundAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawInboundAuth").field("username", &self.username).finish_non_exhaustive()
    }
}

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
            Expect::Request | Expect::LookupResponse => partner.security,
            Expect::Acknowledgement => partner.security.signed_only(),
        };
        crate::wssec::inbound::InboundPolicy {
            limits: XmlLimits { max_bytes: partner.max_message_bytes, ..XmlLimits::default() },
            // Nothing is decrypted for a partner that has no business encrypting to us.
            decryption: profile.encryption.is_some().then_some(&self.decryption),
            profile,
            trust: &partner.trust,
            now,
            clock_skew: self.security.clock_skew.chrono(),
            max_ttl: self.security.max_timestamp_age.chrono(),
            require_fresh_timestamp: matches!(expect, Expect::Request | Expect::LookupResponse),
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
    /// The WS-Security profile `profile` names, as data for `wssec` (algorithms, references,
    /// what is signed, encryption), built once at load.
    pub security: crate::wssec::Profile,
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

impl Settings {
    /// What `check-config` prints: what was loaded, one line per topic, without secrets.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let mut line = |label: &str, value: &str| {
            let _ = writeln!(out, "{label:<16}{value}");
        };
        line("party", &self.party);
        line("public URL", &shown_url(&self.public_url).to_string());
        line("database", &describe_database(&self.database_url));
        let soap_mode = if self.tls.is_some() { "TLS, client certificate required" } else { "plain HTTP" };
        line("SOAP listener", &format!("{} ({soap_mode})", self.listen.soap));
        line("API listener", &format!("{} (plain HTTP, bearer tokens)", self.listen.api));
        match &self.tls {
            Some(t) => {
                let own = Certificate::from_pem(&t.cert_pem).map(|c| c.subject).unwrap_or_default();
                let cas: Vec<&str> = t.client_cas.iter().map(|c| c.subject.as_str()).collect();
                line("TLS", &format!("certificate {own}; partners' client certificates chain to {}", cas.join("; ")));
            }
            None => line("TLS", "none in the gateway (a reverse proxy terminates it)"),
        }
        let trusted: Vec<String> = self.proxy.trusted.iter().map(|n| n.to_string()).collect();
        let proxy = match (&self.proxy.client_cert_header, trusted.is_empty()) {
            (_, true) => "none trusted".to_owned(),
            (None, false) => format!("trusted {}; no client certificate header", trusted.join(", ")),
            (Some(h), false) => format!("trusted {}; client certificate in header {h}", trusted.join(", ")),
        };
        line("proxy", &proxy);
        let s = &self.security;
        line(
            "security",
            &format!(
                "clock skew {}, our Timestamps live {}, longest accepted Timestamp {}, largest message {} bytes",
                s.clock_skew, s.timestamp_ttl, s.max_timestamp_age, s.max_message_bytes
            ),
        );
        let d = &self.delivery;
        line(
            "delivery",
            &format!(
                "{} workers, request timeout {}, lease {}, idle poll {}, alert if undelivered after {}",
                d.workers.max(1),
                d.request_timeout,
                d.lease,
                d.poll_interval,
                d.undelivered_alert
            ),
        );
        let l = &self.limits;
        line(
            "limits",
            &format!(
                "header read {}, body read {}, request head {} bytes, {} requests at once, {} requests/s per \
                 partner by default, {} connections per listener ({} per source on SOAP), write stall {}, shutdown grace {}",
                l.header_read_timeout,
                l.body_read_timeout,
                l.max_header_bytes,
                l.max_concurrent_requests.max(1),
                l.requests_per_second,
                l.max_connections,
                l.max_connections_per_source,
                l.write_timeout,
                l.shutdown_grace
            ),
        );
        let retention = match self.retention.message_contents {
            Some(keep) => format!("contents of closed messages purged after {keep}"),
            None => "contents kept until `coconnect purge`".to_owned(),
        };
        line("retention", &retention);
        let alerts = match &self.alerts.webhook_url {
            Some(url) => format!(
                "stored, logged and POSTed to {}, at most {} attempts",
                url_origin(url),
                self.alerts.webhook_max_attempts.unwrap_or(20)
            ),
            None => "stored and logged; no webhook".to_owned(),
        };
        line("alerts", &alerts);
        let tokens: Vec<&str> = self.api_tokens.iter().map(|(name, _)| name.as_str()).collect();
        line(
            "API tokens",
            &if tokens.is_empty() {
                "none: every API route but /healthz and /readyz answers 401".to_owned()
            } else {
                tokens.join(", ")
            },
        );
        let mut partners: Vec<&Arc<Partner>> = self.partners.values().collect();
        partners.sort_by(|a, b| a.party.cmp(&b.party));
        line("partners", &if partners.is_empty() { "none".to_owned() } else { partners.len().to_string() });
        for p in partners {
            let _ = writeln!(out, "partner {}", p.party);
            let mut field = |label: &str, value: &str| {
                let _ = writeln!(out, "  {label:<16}{value}");
            };
            field("endpoint", &shown_url(&p.endpoint).to_string());
            field(
                "profile",
                &match (p.profile, &p.encryption_cert) {
                    (SecurityProfile::SignEncrypt, Some(c)) => format!("sign-encrypt (we encrypt to {})", c.subject),
                    (SecurityProfile::SignEncrypt, None) => "sign-encrypt".to_owned(),
                    (SecurityProfile::Sign, _) => "sign (signed only)".to_owned(),
                },
            );
            field("signing trust", &p.signing_trust);
            let tls_identity = match (&p.tls_client_subject, p.tls_client_certs.is_empty()) {
                (Some(subject), _) => format!("; TLS client subject {subject}"),
                (None, false) => {
                    let pins: Vec<&str> = p.tls_client_certs.iter().map(|c| c.subject.as_str()).collect();
                    format!("; TLS client certificate pinned {}", pins.join("; "))
                }
                (None, true) => String::new(),
            };
            field("inbound auth", &format!("Basic user {} (Argon2 hash){tls_identity}", p.inbound_username));
            field("outbound auth", &format!("Basic user {}", p.outbound_username));
            let networks: Vec<String> = p.allowed_networks.iter().map(|n| n.to_string()).collect();
            field(
                "networks",
                &if networks.is_empty() { "none: every request refused".to_owned() } else { networks.join(", ") },
            );
            let marks: Vec<String> = p.retry_marks.iter().map(|m| m.num_seconds().to_string()).collect();
            field(
                "retry marks",
                &if marks.is_empty() {
                    "none: no retry".to_owned()
                } else {
                    format!("{} s after the first attempt", marks.join(", "))
                },
            );
            field(
                "rates",
                &format!(
                    "send {}/s, accept {}/s, largest message {} bytes",
                    p.flush_rate_per_second, p.requests_per_second, p.max_message_bytes
                ),
            );
            let cancellation = match p.cancellation_decision {
                CancellationDecision::Automatic => "automatic",
                CancellationDecision::Officer => "officer (through the domestic API)",
            };
            field("cancellation", cancellation);
        }
        out
    }
}

/// `database_url` as the summary shows it: no password, no query.
fn describe_database(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return match crate::store::sqlite_target(url) {
            Ok(crate::store::SqliteTarget::File { path, read_only }) => {
                format!("SQLite {}{}", path.display(), if read_only { " (read-only)" } else { "" })
            }
            Ok(crate::store::SqliteTarget::Memory) => "SQLite in memory (nothing is kept)".to_owned(),
            Err(_) => "SQLite (unparsable URL)".to_owned(),
        };
    }
    let mut shown = shown_url(url);
    let password =
        if url_has_password(url) { "password in the URL, not shown" } else { "password from PGPASSWORD or ~/.pgpass" };
    // The password in the query is already said.
    shown.hidden.retain(|h| *h != "password");
    let hidden =
        if shown.hidden.is_empty() { String::new() } else { format!("; {} not shown", shown.hidden.join(", ")) };
    format!("PostgreSQL {} ({password}{hidden})", shown.url)
}

/// A URL as the summary may show it, and what of it was left out.
struct ShownUrl {
    url: String,
    hidden: Vec<&'static str>,
}

impl std::fmt::Display for ShownUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.hidden.as_slice() {
            [] => f.write_str(&self.url),
            hidden => write!(f, "{} ({} not shown)", self.url, hidden.join(", ")),
        }
    }
}

/// `url` without the password of its userinfo, its query and its fragment: any of them may carry
/// a secret (sqlx reads a PostgreSQL password from `?password=`; webhooks and proxies take tokens
/// in the query).
fn shown_url(url: &str) -> ShownUrl {
    let Ok(mut u) = url::Url::parse(url) else {
        return ShownUrl { url: "(not a URL)".to_owned(), hidden: Vec::new() };
    };
    let mut hidden = Vec::new();
    if u.password().is_some() {
        let _ = u.set_password(None);
        hidden.push("password");
    }
    if u.query().is_some() {
        u.set_query(None);
        hidden.push("query");
    }
    if u.fragment().is_some() {
        u.set_fragment(None);
        hidden.push("fragment");
    }
    ShownUrl { url: u.to_string(), hidden }
}

/// Only the origin (scheme, host, port) of `url`: for URLs whose path is itself a secret (a
/// webhook's token is often in its path).
fn url_origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => format!("{} (path not shown)", u.origin().ascii_serialization()),
        _ => "(not a URL)".to_owned(),
    }
}

/// True if `url` carries a password: in its userinfo, or as a `password` query parameter (which
/// sqlx reads for PostgreSQL).
fn url_has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some() || u.query_pairs().any(|(k, _)| k == "password"))
}

/// Top-level keys without a default. serde reports a missing one at whatever table the parser
/// was in last (e.g. the line of the last `[[partners]]`), so [`parse`] checks them first.
const REQUIRED_TOP_LEVEL: [&str; 5] = ["party", "public_url", "database_url", "listen", "keys"];

/// Reads and loads a configuration file; relative paths are relative to the file's folder.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::File { path: path.to_owned(), reason })?;
    let raw = parse(&text).map_err(|message| ConfigError::Toml { path: path.to_owned(), message })?;
    let inline = raw.inline_secrets();
    if !inline.is_empty() && readable_by_others(path)? {
        return Err(invalid(
            path.display().to_string(),
            format!(
                "holds secrets ({}) and is readable by group or others: chmod 600 {}, or give them by \
                 …_env or …_file instead",
                inline.join(", "),
                path.display()
            ),
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    raw.load(base)
}

/// Parses a configuration's text; a missing top-level key is reported as that key.
pub fn parse(text: &str) -> Result<RawConfig, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    for key in REQUIRED_TOP_LEVEL {
        if table.contains_key(key) {
            continue;
        }
        // A top-level key written after a `[table]` header belongs to that table.
        let under = table.iter().find_map(|(name, value)| match value {
            toml::Value::Table(t) if t.contains_key(key) => Some(format!("[{name}]")),
            toml::Value::Array(a) if a.iter().filter_map(|t| t.as_table()).any(|t| t.contains_key(key)) => {
                Some(format!("[[{name}]]"))
            }
            _ => None,
        });
        return Err(match under {
            Some(t) => format!(
                "{key}: missing (top-level key; the {key} under {t} belongs to that table: write top-level keys \
                 before the first [table])"
            ),
            None => format!("{key}: missing (top-level key)"),
        });
    }
    toml::from_str(text).map_err(|e: toml::de::Error| e.to_string())
}

/// Ranges of the numbers an operator writes; docs/configuration.md lists them.
mod range {
    use std::ops::RangeInclusive;

    pub const CLOCK_SKEW_SECONDS: RangeInclusive<i64> = 0..=86_400;
    pub const TIMESTAMP_TTL_SECONDS: RangeInclusive<i64> = 1..=86_400;
    pub const MAX_TIMESTAMP_AGE_SECONDS: RangeInclusive<i64> = 1..=86_400;
    pub const MESSAGE_BYTES: RangeInclusive<usize> = 1024..=1024 * 1024 * 1024;
    /// 30 days: a message is not retried for longer.
    pub const RETRY_MARK_SECONDS: RangeInclusive<i64> = 1..=30 * 86_400;
    pub const UNDELIVERED_ALERT_SECONDS: RangeInclusive<i64> = 1..=30 * 86_400;
    pub const REQUEST_TIMEOUT_SECONDS: RangeInclusive<i64> = 1..=3600;
    pub const LEASE_SECONDS: RangeInclusive<i64> = 2..=86_400;
    pub const POLL_INTERVAL_MILLIS: RangeInclusive<i64> = 1..=60_000;
    pub const WORKERS: RangeInclusive<usize> = 0..=256;
    /// Messages or requests per second (`flush_rate_per_second`, `requests_per_second`).
    pub const MAX_RATE: f64 = 1_000_000.0;
    pub const HTTP_TIMEOUT_SECONDS: RangeInclusive<i64> = 1..=3600;
    pub const HEADER_BYTES: RangeInclusive<usize> = 8192..=1024 * 1024;
    pub const CONCURRENT_REQUESTS: RangeInclusive<usize> = 0..=65_536;
    /// Per listener; far below what a semaphore can count.
    pub const CONNECTIONS: RangeInclusive<usize> = 1..=1_000_000;
    /// An hour: a stop that takes longer is a hang.
    pub const SHUTDOWN_GRACE_SECONDS: RangeInclusive<i64> = 0..=3600;
    /// 100 years.
    pub const RETENTION_DAYS: RangeInclusive<i64> = 1..=36_500;
    pub const WEBHOOK_ATTEMPTS: RangeInclusive<i64> = 1..=1000;
}

/// `value` per second, if it is a number in (0, `range::MAX_RATE`].
fn rate(key: &str, value: f64) -> Result<f64, ConfigError> {
    if value.is_finite() && value > 0.0 && value <= range::MAX_RATE {
        Ok(value)
    } else {
        Err(invalid(key, format!("{value} is out of range (a number above 0, at most {})", range::MAX_RATE)))
    }
}

/// Retry marks: each in range, strictly increasing.
fn retry_marks(key: &str, marks: &[i64]) -> Result<Vec<chrono::Duration>, ConfigError> {
    let checked = marks
        .iter()
        .enumerate()
        .map(|(i, m)| CheckedDuration::seconds(&format!("{key}[{i}]"), *m, range::RETRY_MARK_SECONDS))
        .collect::<Result<Vec<_>, _>>()?;
    if marks.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(key, "must be strictly increasing (seconds after the first attempt)"));
    }
    Ok(checked.into_iter().map(CheckedDuration::chrono).collect())
}

/// Which databases `database_url` may name; anything else would only fail at `serve`.
fn check_database_url(url: &str) -> Result<(), ConfigError> {
    if url.starts_with("sqlite:") {
        // As the store will read it: an option sqlx refuses fails the check, not `serve`.
        return crate::store::sqlite_target(url).map(|_| ()).map_err(|e| invalid("database_url", e.to_string()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return url::Url::parse(url)
            .map(|_| ())
            .map_err(|e| invalid("database_url", format!("not a PostgreSQL URL: {e}")));
    }
    let scheme = url.split(':').next().unwrap_or(url);
    Err(invalid(
        "database_url",
        format!("{scheme}: is not supported: give sqlite:PATH or postgres://USER@HOST:PORT/DATABASE"),
    ))
}

impl RawConfig {
    /// The secrets written in the file itself (not by `…_env` or `…_file`), by key.
    pub fn inline_secrets(&self) -> Vec<String> {
        let mut found = Vec::new();
        if url_has_password(&self.database_url) {
            found.push("database_url password".to_owned());
        }
        if self.alerts.webhook_url.as_deref().is_some_and(url_has_password) {
            found.push("alerts.webhook_url password".to_owned());
        }
        for t in self.api_tokens.iter().filter(|t| t.token.is_some()) {
            found.push(format!("api token {}: token", t.name));
        }
        for p in &self.partners {
            if url_has_password(&p.endpoint) {
                found.push(format!("partner {}: endpoint password", p.party));
            }
            if p.outbound_auth.password.is_some() {
                found.push(format!("partner {}: outbound_auth.password", p.party));
            }
            // An Argon2 hash is no password, but it lets anyone who reads it guess offline.
            if p.inbound_auth.password_hash.is_some() {
                found.push(format!("partner {}: inbound_auth.password_hash", p.party));
            }
        }
        found
    }

    pub fn load(self, base: &Path) -> Result<Settings, ConfigError> {
        if !crate::pki::is_valid_party_code(&self.party) {
            return Err(invalid("party", format!("{:?} is not a party code ([A-Z]{{2}}[A-Z0-9]{{0,8}})", self.party)));
        }
        check_database_url(&self.database_url)?;
        let full = |p: &Path| if p.is_absolute() { p.to_owned() } else { base.join(p) };
        let read = |key: &str, p: &Path| -> Result<Vec<u8>, ConfigError> {
            let path = full(p);
            std::fs::read(&path).map_err(|reason| ConfigError::Read { key: key.to_owned(), path, reason })
        };
        let cert = |key: &str, p: &Path| -> Result<Certificate, ConfigError> {
            Certificate::from_pem(&read(key, p)?).map_err(|e| invalid(key, format!("{}: {e}", full(p).display())))
        };
        let certs = |key: &str, paths: &[PathBuf]| -> Result<Vec<Certificate>, ConfigError> {
            paths.iter().enumerate().map(|(i, p)| cert(&format!("{key}[{i}]"), p)).collect()
        };
        let pair = |key_key: &str, k: &Path, cert_key: &str, c: &Path| -> Result<KeyPair, ConfigError> {
            check_private_file(key_key, &full(k))?;
            KeyPair::from_pem(read(key_key, k)?, cert(cert_key, c)?)
                .map_err(|e| invalid(key_key, format!("{}: {e}", full(k).display())))
        };
        let k = &self.keys;
        let signing = pair("keys.signing_key", &k.signing_key, "keys.signing_cert", &k.signing_cert)?;
        let decryption = pair("keys.decryption_key", &k.decryption_key, "keys.decryption_cert", &k.decryption_cert)?;
        let s = &self.security;
        let security = Security {
            clock_skew: CheckedDuration::seconds(
                "security.clock_skew_seconds",
                s.clock_skew_seconds,
                range::CLOCK_SKEW_SECONDS,
            )?,
            timestamp_ttl: CheckedDuration::seconds(
                "security.timestamp_ttl_seconds",
                s.timestamp_ttl_seconds,
                range::TIMESTAMP_TTL_SECONDS,
            )?,
            max_timestamp_age: CheckedDuration::seconds(
                "security.max_timestamp_age_seconds",
                s.max_timestamp_age_seconds,
                range::MAX_TIMESTAMP_AGE_SECONDS,
            )?,
            max_message_bytes: in_range("security.max_message_bytes", s.max_message_bytes, range::MESSAGE_BYTES)?,
        };
        let d = &self.delivery;
        // Checked here, under their own keys, though only partners use them.
        let default_marks = retry_marks("delivery.retry_marks_seconds", &d.retry_marks_seconds)?;
        let default_flush_rate = rate("delivery.flush_rate_per_second", d.flush_rate_per_second)?;
        let delivery = Delivery {
            undelivered_alert: CheckedDuration::seconds(
                "delivery.undelivered_alert_seconds",
                d.undelivered_alert_seconds,
                range::UNDELIVERED_ALERT_SECONDS,
            )?,
            request_timeout: CheckedDuration::seconds(
                "delivery.request_timeout_seconds",
                d.request_timeout_seconds,
                range::REQUEST_TIMEOUT_SECONDS,
            )?,
            lease: CheckedDuration::seconds("delivery.lease_seconds", d.lease_seconds, range::LEASE_SECONDS)?,
            poll_interval: CheckedDuration::millis(
                "delivery.poll_interval_millis",
                d.poll_interval_millis,
                range::POLL_INTERVAL_MILLIS,
            )?,
            workers: in_range("delivery.workers", d.workers, range::WORKERS)?,
        };
        if delivery.lease <= delivery.request_timeout {
            return Err(invalid(
                "delivery.lease_seconds",
                "must be longer than delivery.request_timeout_seconds, or a slow delivery could be claimed twice",
            ));
        }
        let limits = self.limits()?;
        let retention = Retention {
            message_contents: self
                .retention
                .message_contents_days
                .map(|days| CheckedDuration::days("retention.message_contents_days", days, range::RETENTION_DAYS))
                .transpose()?,
        };
        if let Some(attempts) = self.alerts.webhook_max_attempts {
            in_range("alerts.webhook_max_attempts", attempts, range::WEBHOOK_ATTEMPTS)?;
        }
        if let Some(url) = &self.alerts.webhook_url {
            let parsed = url::Url::parse(url).map_err(|e| invalid("alerts.webhook_url", e.to_string()))?;
            if parsed.scheme() != "http" {
                return Err(invalid("alerts.webhook_url", "only http:// is supported yet (TLS is not built in)"));
            }
        }
        let global_anchors = certs("keys.trust_anchors", &self.keys.trust_anchors)?;
        // A proxy that passes client certificates binds each partner to its TLS identity, as
        // [tls] does; a partner without one could never be accepted through it.
        let tls_identity_needed = match (&self.tls, &self.proxy.client_cert_header) {
            (Some(_), _) => Some("with [tls]"),
            (None, Some(_)) => Some("with [proxy] client_cert_header"),
            (None, None) => None,
        };
        let mut partners = HashMap::new();
        for p in &self.partners {
            let what = format!("partner {}", p.party);
            let key = |k: &str| format!("{what}: {k}");
            if !crate::pki::is_valid_party_code(&p.party) {
                return Err(invalid(key("party"), "is not a party code ([A-Z]{2}[A-Z0-9]{0,8})"));
            }
            let endpoint = url::Url::parse(&p.endpoint).map_err(|e| invalid(key("endpoint"), e.to_string()))?;
            match endpoint.scheme() {
                "http" => {}
                "https" if self.tls.is_some() && !p.tls_server_cas.is_empty() => {}
                "https" => {
                    return Err(invalid(
                        key("endpoint"),
                        "an https endpoint needs [tls] (our client certificate) and tls_server_cas",
                    ))
                }
                other => return Err(invalid(key("endpoint"), format!("scheme {other} is not supported"))),
            }
            if let Some(with) = tls_identity_needed {
                if p.tls_client_certs.is_empty() && p.tls_client_subject.is_none() {
                    return Err(invalid(
                        &what,
                        format!(
                            "{with}, give tls_client_certs or tls_client_subject: the partner's TLS identity must be bound"
                        ),
                    ));
                }
            }
            let pinned = certs(&key("signing_certs"), &p.signing_certs)?;
            let mut anchors = certs(&key("trust_anchors"), &p.trust_anchors)?;
            if pinned.is_empty() && anchors.is_empty() {
                anchors = global_anchors.clone();
            }
            let signing_trust = describe_trust(&pinned, &anchors, p.signing_subject.as_deref());
            let trust = PartnerTrust::new(pinned, &anchors, p.signing_subject.clone())
                .map_err(|e| invalid(&what, e.to_string()))?;
            let encryption_cert = p.encryption_cert.as_ref().map(|c| cert(&key("encryption_cert"), c)).transpose()?;
            if p.profile == SecurityProfile::SignEncrypt && encryption_cert.is_none() {
                return Err(invalid(key("encryption_cert"), "missing: profile sign-encrypt needs it"));
            }
            let allowed_networks = p
                .allowed_networks
                .iter()
                .map(|n| {
                    n.parse::<IpNet>()
                        .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|e| invalid(key("allowed_networks"), format!("{n:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let a = &p.inbound_auth;
            let inbound_password_hash = secret(
                &key("inbound_auth.password_hash"),
                a.password_hash.as_deref(),
                a.password_hash_env.as_deref(),
                a.password_hash_file.as_deref(),
                base,
            )?;
            argon2::PasswordHash::new(&inbound_password_hash)
                .map_err(|e| invalid(key("inbound_auth.password_hash"), e.to_string()))?;
            let retry_marks = match &p.retry_marks_seconds {
                Some(marks) => self::retry_marks(&key("retry_marks_seconds"), marks)?,
                None => default_marks.clone(),
            };
            let flush_rate_per_second = match p.flush_rate_per_second {
                Some(r) => rate(&key("flush_rate_per_second"), r)?,
                None => default_flush_rate,
            };
            let requests_per_second = match p.requests_per_second {
                Some(r) => rate(&key("requests_per_second"), r)?,
                None => limits.requests_per_second,
            };
            let max_message_bytes = match p.max_message_bytes {
                Some(n) => in_range(&key("max_message_bytes"), n, range::MESSAGE_BYTES)?,
                None => security.max_message_bytes,
            };
            let outbound_password = secret(
                &key("outbound_auth.password"),
                p.outbound_auth.password.as_deref(),
                p.outbound_auth.password_env.as_deref(),
                p.outbound_auth.password_file.as_deref(),
                base,
            )?;
            let partner = Partner {
                party: p.party.clone(),
                endpoint: p.endpoint.clone(),
                trust,
                signing_trust,
                encryption_cert,
                profile: p.profile,
                security: crate::wssec::Profile::strict(p.profile == SecurityProfile::SignEncrypt),
                retry_marks,
                flush_rate_per_second,
                max_message_bytes,
                requests_per_second,
                cancellation_decision: p.cancellation_decision,
                tls_client_certs: certs(&key("tls_client_certs"), &p.tls_client_certs)?,
                tls_client_subject: p.tls_client_subject.clone(),
                tls_server_cas: certs(&key("tls_server_cas"), &p.tls_server_cas)?,
                allowed_networks,
                outbound_username: p.outbound_auth.username.clone(),
                outbound_password,
                inbound_username: p.inbound_auth.username.clone(),
                inbound_password_hash,
            };
            if partners.values().any(|o: &Arc<Partner>| o.inbound_username == partner.inbound_username) {
                return Err(invalid(key("inbound_auth.username"), "is used by another partner"));
            }
            if partners.insert(p.party.clone(), Arc::new(partner)).is_some() {
                return Err(invalid(&what, "listed twice"));
            }
        }
        let api_tokens = self
            .api_tokens
            .iter()
            .map(|t| {
                let what = format!("api token {}", t.name);
                let token = secret(&what, t.token.as_deref(), t.token_env.as_deref(), t.token_file.as_deref(), base)?;
                if token.len() < 16 {
                    return Err(invalid(what, "tokens must have at least 16 characters"));
                }
                Ok((t.name.clone(), token))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let tls = match &self.tls {
            Some(t) => {
                check_private_file("tls.key", &full(&t.key))?;
                let cert_pem = read("tls.cert", &t.cert)?;
                let key_pem = read("tls.key", &t.key)?;
                let own = Certificate::from_pem(&cert_pem)
                    .map_err(|e| invalid("tls.cert", format!("{}: {e}", full(&t.cert).display())))?;
                KeyPair::from_pem(key_pem.clone(), own)
                    .map_err(|e| invalid("tls.key", format!("{}: {e}", full(&t.key).display())))?;
                let client_cas = certs("tls.client_cas", &t.client_cas)?;
                if client_cas.is_empty() {
                    return Err(invalid("tls.client_cas", "give the CAs of partners' TLS client certificates"));
                }
                Some(TlsSettings { cert_pem, key_pem: Arc::new(key_pem), client_cas })
            }
            None => None,
        };
        let proxy = ProxySettings {
            trusted: self
                .proxy
                .trusted
                .iter()
                .map(|n| {
                    n.parse::<IpNet>()
                        .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|e| invalid("proxy.trusted", format!("{n:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
            client_cert_header: self.proxy.client_cert_header.clone(),
        };
        if proxy.client_cert_header.is_some() && proxy.trusted.is_empty() {
            return Err(invalid(
                "proxy.client_cert_header",
                "is believed only from proxy.trusted, which is empty: list the proxy's address there",
            ));
        }
        Ok(Settings {
            party: self.party,
            public_url: self.public_url,
            database_url: resolve_sqlite_path(&self.database_url, base),
            listen: self.listen,
            signing,
            decryption,
            security,
            delivery,
            limits,
            retention,
            alerts: self.alerts,
            api_tokens,
            tls,
            proxy,
            partners,
        })
    }

    /// `[limits]`, each value in its range.
    fn limits(&self) -> Result<Limits, ConfigError> {
        let l = &self.limits;
        let timeout = |key: &str, seconds: u64| CheckedDuration::seconds(key, seconds, range::HTTP_TIMEOUT_SECONDS);
        Ok(Limits {
            header_read_timeout: timeout("limits.header_read_timeout_seconds", l.header_read_timeout_seconds)?,
            body_read_timeout: timeout("limits.body_read_timeout_seconds", l.body_read_timeout_seconds)?,
            max_header_bytes: in_range("limits.max_header_bytes", l.max_header_bytes, range::HEADER_BYTES)?,
            max_concurrent_requests: in_range(
                "limits.max_concurrent_requests",
                l.max_concurrent_requests,
                range::CONCURRENT_REQUESTS,
            )?,
            requests_per_second: rate("limits.requests_per_second", l.requests_per_second)?,
            max_connections: in_range("limits.max_connections", l.max_connections, range::CONNECTIONS)?,
            shutdown_grace: CheckedDuration::seconds(
                "limits.shutdown_grace_seconds",
                l.shutdown_grace_seconds,
                range::SHUTDOWN_GRACE_SECONDS,
            )?,
            max_connections_per_source: in_range(
                "limits.max_connections_per_source",
                l.max_connections_per_source,
                range::CONNECTIONS,
            )?,
            write_timeout: timeout("limits.write_timeout_seconds", l.write_timeout_seconds)?,
        })
    }
}

/// How a partner's signing certificate is trusted, for `check-config`.
fn describe_trust(pinned: &[Certificate], anchors: &[Certificate], subject: Option<&str>) -> String {
    let mut parts = Vec::new();
    if !pinned.is_empty() {
        let subjects: Vec<&str> = pinned.iter().map(|c| c.subject.as_str()).collect();
        parts.push(format!("pinned {}", subjects.join("; ")));
    }
    if !anchors.is_empty() {
        let subjects: Vec<&str> = anchors.iter().map(|c| c.subject.as_str()).collect();
        parts.push(format!("by CA {} with subject {}", subjects.join("; "), subject.unwrap_or("(none)")));
    }
    parts.join(", or ")
}

/// A relative `sqlite:` path is relative to the configuration file's folder, like key paths.
fn resolve_sqlite_path(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite:") {
        Some(rest) if !rest.starts_with('/') && !rest.starts_with(':') && !rest.is_empty() => {
            let rest = rest.trim_start_matches("./");
            // sqlx percent-decodes the path and ends it at `?`: the folder must not be misread.
            let folder = base.display().to_string().replace('%', "%25").replace('?', "%3F");
            format!("sqlite:{}", Path::new(&folder).join(rest).display())
        }
        _ => url.to_owned(),
    }
}

/// A secret given inline, by environment variable, or by file (relative to the config's folder;
/// the file must not be readable by group or others, and one trailing newline is dropped).
fn secret(
    what: &str,
    inline: Option<&str>,
    env: Option<&str>,
    file: Option<&Path>,
    base: &Path,
) -> Result<String, ConfigError> {
    match (inline, env, file) {
        (Some(v), None, None) => Ok(v.to_owned()),
        (None, Some(var), None) => {
            std::env::var(var).map_err(|_| invalid(what, format!("environment variable {var} is not set")))
        }
        (None, None, Some(f)) => {
            let path = if f.is_absolute() { f.to_owned() } else { base.join(f) };
            check_private_file(what, &path)?;
            let text = std::fs::read_to_string(&path).map_err(|reason| ConfigError::Read {
                key: what.to_owned(),
                path: path.clone(),
                reason,
            })?;
            Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned())
        }
        _ => Err(invalid(what, "give exactly one of the value, its environment variable (…_env) or its file (…_file)")),
    }
}

/// Private keys and secret files must not be readable by group or others.
fn check_private_file(key: &str, path: &Path) -> Result<(), ConfigError> {
    let open = readable_by_others(path).map_err(|e| match e {
        ConfigError::File { path, reason } => ConfigError::Read { key: key.to_owned(), path, reason },
        other => other,
    })?;
    if open {
        return Err(invalid(key, format!("{} is readable by group or others: chmod 600 {0}", path.display())));
    }
    Ok(())
}

/// True if group or others have any permission on `path`.
fn readable_by_others(path: &Path) -> Result<bool, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|reason| ConfigError::File { path: path.to_owned(), reason })?;
    Ok(meta.permissions().mode() & 0o077 != 0)
}

/// Hashes a password for `inbound_auth.password_hash`.
pub fn hash_password(password: &str) -> Result<String, ConfigError> {
    if password.is_empty() {
        return Err(invalid("password", "is empty"));
    }
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| invalid("password", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_come_inline_from_the_environment_or_from_a_private_file() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(secret("t", Some("abc"), None, None, dir.path()).expect("inline"), "abc");
        // A variable every process has: setting one here would race with other test threads.
        let path = std::env::var("PATH").expect("PATH is set");
        assert_eq!(secret("t", None, Some("PATH"), None, dir.path()).expect("env"), path);
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(secret("t", None, None, Some(Path::new("pw")), dir.path()).expect("file"), "from-file");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(secret("t", None, None, Some(&f), dir.path()).is_err(), "a world-readable secret file is refused");
        assert!(secret("t", Some("a"), Some("B"), None, dir.path()).is_err(), "exactly one source");
        assert!(secret("t", None, Some("COCONNECT_TEST_UNSET_VARIABLE"), None, dir.path()).is_err());
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A generated pair's KR configuration (as the tests and the demo use), and its folder.
    struct Fixture {
        dir: tempfile::TempDir,
        config: PathBuf,
        text: String,
    }

    fn fixture(tls: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("tmp");
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let [kr, _] = crate::devpair::write_pair(&crate::devpair::PairSpec {
            dir: dir.path(),
            parties: ["KR", "ID"],
            addrs: [(addr(1), addr(2)), (addr(3), addr(4))],
            database_urls: ["sqlite:kr.db".into(), "sqlite:id.db".into()],
            profile: "sign-encrypt",
            tls,
        })
        .expect("pair");
        let text = std::fs::read_to_string(&kr.config).expect("config");
        Fixture { dir, config: kr.config, text }
    }

    impl Fixture {
        /// Loads `text` as the configuration file (mode 0600).
        fn load(&self, text: &str) -> Result<Settings, ConfigError> {
            std::fs::write(&self.config, text).expect("write");
            std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            load(&self.config)
        }

        fn replaced(&self, from: &str, to: &str) -> String {
            assert!(self.text.contains(from), "{from} not in the configuration");
            self.text.replacen(from, to, 1)
        }

        fn error(&self, text: &str) -> String {
            match self.load(text) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => e.to_string(),
            }
        }
    }

    #[test]
    fn the_generated_configuration_loads() {
        let f = fixture(false);
        f.load(&f.text).expect("loads");
    }

    #[test]
    fn limits_are_loaded_as_checked_values() {
        let f = fixture(false);
        let text = f.replaced(
            "requests_per_second = 1000.0",
            "requests_per_second = 1000.0\nheader_read_timeout_seconds = 7\nshutdown_grace_seconds = 0\nmax_connections = 5",
        );
        let l = f.load(&text).expect("loads").limits;
        assert_eq!(l.header_read_timeout.std(), std::time::Duration::from_secs(7));
        assert_eq!(l.body_read_timeout.std(), std::time::Duration::from_secs(30));
        assert_eq!(l.shutdown_grace.std(), std::time::Duration::ZERO, "0: cut at once");
        assert_eq!((l.max_connections, l.requests_per_second), (5, 1000.0));
    }

    #[test]
    fn out_of_range_numbers_are_refused_naming_the_key() {
        let f = fixture(false);
        let marks = "retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]";
        let cases = [
            (
                f.text.clone() + "\n[security]\nclock_skew_seconds = 99999999999\n",
                "security.clock_skew_seconds: 99999999999 is out of range (0..=86400)",
            ),
            (
                f.text.clone() + "\n[security]\ntimestamp_ttl_seconds = -5\n",
                "security.timestamp_ttl_seconds: -5 is out of range",
            ),
            (
                f.text.clone() + "\n[security]\nmax_timestamp_age_seconds = 9223372036854775807\n",
                "security.max_timestamp_age_seconds: 9223372036854775807 is out of range",
            ),
            (
                f.replaced(marks, "retry_marks_seconds = [2, 99999999999]"),
                "delivery.retry_marks_seconds[1]: 99999999999",
            ),
            (f.replaced(marks, &format!("{marks}\nlease_seconds = 9223372036854775807")), "delivery.lease_seconds:"),
            (
                f.replaced(marks, &format!("{marks}\nundelivered_alert_seconds = -1")),
                "delivery.undelivered_alert_seconds:",
            ),
            (
                f.replaced(marks, &format!("{marks}\nrequest_timeout_seconds = 99999999999")),
                "delivery.request_timeout_seconds:",
            ),
            (f.replaced("poll_interval_millis = 100", "poll_interval_millis = 0"), "delivery.poll_interval_millis: 0"),
            (f.replaced(marks, &format!("{marks}\nworkers = 100000")), "delivery.workers: 100000 is out of range"),
            (
                f.text.clone() + "\n[retention]\nmessage_contents_days = 99999999999999\n",
                "retention.message_contents_days: 99999999999999 is out of range (1..=36500)",
            ),
            (f.text.clone() + "\n[alerts]\nwebhook_max_attempts = 0\n", "alerts.webhook_max_attempts: 0"),
            (
                f.replaced(
                    "requests_per_second = 1000.0",
                    "requests_per_second = 1000.0\nheader_read_timeout_seconds = 99999999999",
                ),
                "limits.header_read_timeout_seconds: 99999999999",
            ),
            (
                f.replaced(
                    "requests_per_second = 1000.0",
                    "requests_per_second = 1000.0\nmax_concurrent_requests = 4611686018427387904",
                ),
                "limits.max_concurrent_requests: 4611686018427387904",
            ),
            (
                f.replaced("requests_per_second = 1000.0", "requests_per_second = inf"),
                "limits.requests_per_second: inf",
            ),
            (
                f.replaced(
                    "requests_per_second = 1000.0",
                    "requests_per_second = 1000.0\nbody_read_timeout_seconds = 0",
                ),
                "limits.body_read_timeout_seconds: 0 is out of range (1..=3600)",
            ),
            (
                f.replaced("requests_per_second = 1000.0", "requests_per_second = 1000.0\nmax_connections = 0"),
                "limits.max_connections: 0 is out of range (1..=1000000)",
            ),
            (
                f.replaced(
                    "requests_per_second = 1000.0",
                    "requests_per_second = 1000.0\nshutdown_grace_seconds = 3601",
                ),
                "limits.shutdown_grace_seconds: 3601 is out of range (0..=3600)",
            ),
            // The partner's table is the last one of the file: these keys land in it.
            (f.text.clone() + "retry_marks_seconds = [0]\n", "partner ID: retry_marks_seconds[0]: 0 is out of range"),
            (f.text.clone() + "max_message_bytes = 0\n", "partner ID: max_message_bytes: 0 is out of range"),
        ];
        for (text, expected) in cases {
            let e = f.error(&text);
            assert!(e.contains(expected), "expected {expected:?}, got {e:?}");
        }
    }

    #[test]
    fn delivery_errors_are_not_blamed_on_a_partner() {
        let f = fixture(false);
        let marks = "retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]";
        let e = f.error(&f.replaced(marks, "retry_marks_seconds = [5, 3]"));
        assert!(e.starts_with("delivery.retry_marks_seconds: must be strictly increasing"), "{e}");
        let e = f.error(&f.replaced("flush_rate_per_second = 500.0", "flush_rate_per_second = -1.0"));
        assert!(e.starts_with("delivery.flush_rate_per_second: -1 is out of range"), "{e}");
        // A partner's own value is the partner's.
        let e = f.error(&(f.text.clone() + "flush_rate_per_second = 0.0\n"));
        assert!(e.starts_with("partner ID: flush_rate_per_second:"), "{e}");
    }

    #[test]
    fn a_missing_top_level_key_is_named_as_such() {
        let f = fixture(false);
        let line = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url line").to_owned();
        let without = f.text.replacen(&format!("{line}\n"), "", 1);
        let e = f.error(&without);
        assert!(e.ends_with("database_url: missing (top-level key)"), "{e}");
        assert!(!e.contains("[[partners]]"), "{e}");
        // Written below a table header, it belongs to that table: say so.
        let e = f.error(&format!("{without}{line}\n"));
        assert!(e.contains("database_url: missing (top-level key; the database_url under [[partners]]"), "{e}");
    }

    #[test]
    fn an_unreadable_file_is_named_by_its_key_and_its_cause_said_once() {
        let f = fixture(false);
        let sk = f.text.lines().find(|l| l.starts_with("signing_key")).expect("signing_key").to_owned();
        let e = f.error(&f.text.replacen(&sk, "signing_key = \"missing.pem\"", 1));
        let path = f.dir.path().join("missing.pem");
        assert_eq!(
            e,
            format!("keys.signing_key: cannot read {}: No such file or directory (os error 2)", path.display())
        );
        // As main prints it (the whole chain): the OS error once.
        let chained = format!(
            "{:#}",
            anyhow::Error::from(
                f.load(&f.text.replacen(&sk, "signing_key = \"missing.pem\"", 1)).expect_err("refused")
            )
        );
        assert_eq!(chained.matches("os error 2").count(), 1, "{chained}");
        let e =
            f.error(&(f.text.clone() + "encryption_cert = \"nowhere.pem\"\n").replacen("encryption_cert", "# was", 1));
        assert!(e.starts_with("partner ID: encryption_cert: cannot read"), "{e}");
    }

    #[test]
    fn an_unsupported_database_url_fails_the_check() {
        let f = fixture(false);
        let line = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let e = f.error(&f.text.replacen(&line, "database_url = \"mysql://u:secret@db/x\"", 1));
        assert!(e.starts_with("database_url: mysql: is not supported"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn a_proxy_certificate_header_needs_each_partners_tls_identity() {
        let f = fixture(false);
        let proxy = "\n[proxy]\ntrusted = [\"127.0.0.1/32\"]\nclient_cert_header = \"X-SSL-Client-Cert\"\n";
        // [proxy] goes before [[partners]], whose keys follow it.
        let with_proxy = f.replaced("[[partners]]", &format!("{proxy}\n[[partners]]"));
        let e = f.error(&with_proxy);
        assert!(
            e.starts_with("partner ID: with [proxy] client_cert_header, give tls_client_certs or tls_client_subject"),
            "{e}"
        );
        let bound = with_proxy + "tls_client_subject = \"CN=ID tls,C=ID\"\n";
        f.load(&bound).expect("a partner with a TLS identity is accepted");
        // Believed from no one, the header would bind nobody.
        let e = f.error(&bound.replace("trusted = [\"127.0.0.1/32\"]", "trusted = []"));
        assert!(e.starts_with("proxy.client_cert_header:"), "{e}");
    }

    #[test]
    fn a_config_file_with_inline_secrets_must_be_private() {
        let f = fixture(false);
        std::fs::write(&f.config, &f.text).expect("write");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load(&f.config).expect_err("a world-readable file with secrets").to_string();
        assert!(e.starts_with(&format!("{}: holds secrets", f.config.display())), "{e}");
        assert!(e.contains("api token domestic-system: token"), "{e}");
        assert!(e.contains("partner ID: outbound_auth.password"), "{e}");
        assert!(e.contains(&format!("chmod 600 {}", f.config.display())), "{e}");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(load(&f.config).is_err(), "readable by the group is refused too");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        load(&f.config).expect("private");

        // Without inline secrets (token from a file, no partner), a readable file is fine.
        let token_file = f.dir.path().join("token");
        std::fs::write(&token_file, "0123456789abcdef0123\n").expect("write");
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let head = &f.text[..f.text.find("[[partners]]").expect("partners")];
        let token_line = head.lines().find(|l| l.starts_with("token = ")).expect("token").to_owned();
        std::fs::write(&f.config, head.replacen(&token_line, "token_file = \"token\"", 1)).expect("write");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        load(&f.config).expect("no inline secret: readable is fine");
        // A password in the database URL is a secret too.
        let line = head.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let with_password = head.replacen(&token_line, "token_file = \"token\"", 1).replacen(
            &line,
            "database_url = \"postgres://coconnect:hunter2@db:5432/coconnect\"",
            1,
        );
        std::fs::write(&f.config, with_password).expect("write");
        let e = load(&f.config).expect_err("password in the URL").to_string();
        assert!(e.contains("database_url password") && !e.contains("hunter2"), "{e}");
    }

    /// The value of `key = "..."` in the fixture (inline tables included).
    fn quoted_value(text: &str, key: &str) -> String {
        let from = text.find(&format!("{key} = \"")).unwrap_or_else(|| panic!("{key} not in the configuration"));
        let rest = &text[from + key.len() + 4..];
        rest[..rest.find('"').expect("closing quote")].to_owned()
    }

    #[test]
    fn the_summary_says_what_was_loaded_and_no_secret() {
        let f = fixture(true);
        let line = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let text =
            f.text.replacen(&line, "database_url = \"postgres://coconnect:hunter2@db.internal:5432/coconnect\"", 1)
                + "\n[retention]\nmessage_contents_days = 1825\n";
        let settings = f.load(&text).expect("loads");
        let summary = settings.summary();
        for expected in [
            "party           KR\n",
            "public URL      https://127.0.0.1:1/soap/v1\n",
            "database        PostgreSQL postgres://coconnect@db.internal:5432/coconnect (password in the URL, not shown)\n",
            "SOAP listener   127.0.0.1:1 (TLS, client certificate required)\n",
            "API listener    127.0.0.1:2 (plain HTTP, bearer tokens)\n",
            "TLS             certificate CN=KR tls",
            "proxy           none trusted\n",
            "security        clock skew 120 s, our Timestamps live 300 s, longest accepted Timestamp 3600 s",
            "delivery        2 workers, request timeout 30 s, lease 120 s, idle poll 100 ms",
            "limits          header read 10 s, body read 30 s",
            "retention       contents of closed messages purged after 1825 days\n",
            "alerts          stored and logged; no webhook\n",
            "API tokens      domestic-system\n",
            "partner ID\n",
            "  endpoint        https://127.0.0.1:3/soap/v1\n",
            "  profile         sign-encrypt (we encrypt to CN=ID encryption",
            "  signing trust   pinned CN=ID signing",
            "  inbound auth    Basic user ID (Argon2 hash); TLS client certificate pinned CN=ID tls",
            "  outbound auth   Basic user KR\n",
            "  networks        127.0.0.0/8, ::1/128\n",
            "  retry marks     2, 4, 6, 8, 10, 20, 40, 80, 160, 320 s after the first attempt\n",
            "  rates           send 500/s, accept 1000/s",
        ] {
            assert!(summary.contains(expected), "{expected:?} not in\n{summary}");
        }
        // Every secret of the fixture, inline in the file: the API token, our outbound password,
        // the partner's password hash.
        let token = quoted_value(&f.text, "token");
        let outbound_password = quoted_value(&f.text, "password");
        let hash = quoted_value(&f.text, "password_hash");
        assert!(outbound_password.len() >= 16 && hash.starts_with("$argon2id$"), "{outbound_password} {hash}");
        for secret in ["hunter2", &token, &outbound_password, &hash, "$argon2id", "Settings {", "Partner {"] {
            assert!(!summary.contains(secret), "{secret:?} in\n{summary}");
        }
    }

    #[test]
    fn the_summary_shows_no_secret_of_a_url() {
        let f = fixture(true);
        let db = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let text = f
            .replaced(
                &db,
                "database_url = \"postgres://coconnect@db.internal:5432/coconnect?password=hunter3&sslmode=disable\"",
            )
            .replacen(
                "public_url = \"https://127.0.0.1:1/soap/v1\"",
                "public_url = \"https://kr:pubpass@127.0.0.1:1/soap/v1?key=pubquery#pubfragment\"",
                1,
            )
            .replacen(
                "endpoint = \"https://127.0.0.1:3/soap/v1\"",
                "endpoint = \"https://kr:endpass@127.0.0.1:3/soap/v1?key=endquery\"",
                1,
            )
            .replacen(
                "[[api_tokens]]",
                "[alerts]\nwebhook_url = \"http://hooks.internal:9099/services/T0/B0/pathsecret?token=hookquery\"\n\n\
                 [[api_tokens]]",
                1,
            );
        let summary = f.load(&text).expect("loads").summary();
        for expected in [
            "public URL      https://kr@127.0.0.1:1/soap/v1 (password, query, fragment not shown)\n",
            "database        PostgreSQL postgres://coconnect@db.internal:5432/coconnect (password in the URL, not \
             shown; query not shown)\n",
            "alerts          stored, logged and POSTed to http://hooks.internal:9099 (path not shown), at most 20 \
             attempts\n",
            "  endpoint        https://kr@127.0.0.1:3/soap/v1 (password, query not shown)\n",
        ] {
            assert!(summary.contains(expected), "{expected:?} not in\n{summary}");
        }
        for secret in [
            "hunter3",
            "sslmode",
            "pubpass",
            "pubquery",
            "pubfragment",
            "endpass",
            "endquery",
            "pathsecret",
            "hookquery",
        ] {
            assert!(!summary.contains(secret), "{secret:?} in\n{summary}");
        }
    }

    #[test]
    fn a_password_in_a_urls_query_is_an_inline_secret() {
        let f = fixture(false);
        let db = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let raw = parse(&f.replaced(&db, "database_url = \"postgres://coconnect@db:5432/coconnect?password=hunter3\""))
            .expect("parses");
        let inline = raw.inline_secrets();
        assert!(inline.contains(&"database_url password".to_owned()), "{inline:?}");
        let raw = parse(&f.replaced(&db, "database_url = \"postgres://coconnect@db:5432/coconnect?sslmode=disable\""))
            .expect("parses");
        assert!(!raw.inline_secrets().contains(&"database_url password".to_owned()));
        let raw = parse(&f.replaced(
            "endpoint = \"http://127.0.0.1:3/soap/v1\"",
            "endpoint = \"http://kr:endpass@127.0.0.1:3/soap/v1\"",
        ))
        .expect("parses");
        assert!(raw.inline_secrets().contains(&"partner ID: endpoint password".to_owned()));
    }

    #[test]
    fn an_inbound_password_hash_can_live_outside_the_configuration() {
        let f = fixture(false);
        let private = |name: &str, text: &str| {
            let path = f.dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        };
        let hash = quoted_value(&f.text, "password_hash");
        let token = quoted_value(&f.text, "token");
        let password = quoted_value(&f.text, "password");
        private("id.hash", &format!("{hash}\n"));
        private("token", &token);
        private("id.password", &password);
        // Every secret in a file of its own: the configuration itself may then be readable.
        let text = f
            .replaced(&format!("password_hash = \"{hash}\""), "password_hash_file = \"id.hash\"")
            .replacen(&format!("token = \"{token}\""), "token_file = \"token\"", 1)
            .replacen(&format!("password = \"{password}\""), "password_file = \"id.password\"", 1);
        std::fs::write(&f.config, &text).expect("write");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let settings = load(&f.config).expect("no inline secret: a readable file is fine");
        assert_eq!(settings.partners["ID"].inbound_password_hash, hash);
        // The hash file is held to a private key's permissions.
        std::fs::set_permissions(f.dir.path().join("id.hash"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load(&f.config).expect_err("readable hash file").to_string();
        assert!(e.starts_with("partner ID: inbound_auth.password_hash: "), "{e}");
        assert!(e.contains("is readable by group or others"), "{e}");
        // From the environment; one source only.
        let e = f.error(&text.replacen(
            "password_hash_file = \"id.hash\"",
            "password_hash_env = \"COCONNECT_TEST_UNSET_VARIABLE\"",
            1,
        ));
        assert_eq!(
            e,
            "partner ID: inbound_auth.password_hash: environment variable COCONNECT_TEST_UNSET_VARIABLE is not set"
        );
        let e = f.error(&text.replacen(
            "password_hash_file = \"id.hash\"",
            &format!("password_hash_file = \"id.hash\", password_hash = \"{hash}\""),
            1,
        ));
        assert!(e.starts_with("partner ID: inbound_auth.password_hash: give exactly one of"), "{e}");
    }

    #[test]
    fn a_top_level_key_under_any_partner_is_pointed_out() {
        let text = "party = \"KR\"\npublic_url = \"https://kr/soap/v1\"\n\n[[partners]]\nparty = \"ID\"\n\
                    database_url = \"sqlite:kr.db\"\n\n[[partners]]\nparty = \"JP\"\n";
        let e = parse(text).expect_err("database_url is in the first partner's table");
        assert!(e.starts_with("database_url: missing (top-level key; the database_url under [[partners]]"), "{e}");
    }

    #[test]
    fn checked_durations_keep_to_their_range() {
        let d = CheckedDuration::seconds("k", 120, 0..=86_400).expect("in range");
        assert_eq!((d.as_secs(), d.chrono(), d.to_string()), (120, chrono::Duration::seconds(120), "120 s".into()));
        assert_eq!(CheckedDuration::millis("k", 500, 1..=1000).expect("ms").to_string(), "500 ms");
        assert_eq!(CheckedDuration::days("k", 2, 1..=10).expect("days").to_string(), "2 days");
        let e = CheckedDuration::seconds("a.b", i64::MAX, 0..=i64::MAX).expect_err("past 100 years").to_string();
        assert!(e.starts_with("a.b: 9223372036854775807 is out of range"), "{e}");
        assert!(CheckedDuration::days("k", i64::MAX, 0..=i64::MAX).is_err());
        assert!(CheckedDuration::seconds("k", -1, -5..=5).is_err(), "no negative duration");
        assert!(CheckedDuration::seconds("k", u64::MAX, 0..=10).is_err());
    }

    #[test]
    fn an_empty_password_is_not_hashed() {
        assert!(hash_password("").is_err());
        assert!(hash_password("x").is_ok());
    }
}
