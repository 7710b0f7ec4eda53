//! The configuration file as written: serde types, with secrets redacted in `Debug`. Nothing
//! here is checked; [`super::load`] turns these into [`super::Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

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
    /// Push delivery of the event log to the administration's own systems.
    #[serde(default)]
    pub backend: super::backend::RawBackend,
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
    /// How long the replay cache keeps a signed message that had no Timestamp (partners whose
    /// profile makes the Timestamp optional).
    pub replay_retention_seconds: i64,
}

impl Default for RawSecurity {
    fn default() -> Self {
        RawSecurity {
            clock_skew_seconds: 120,
            timestamp_ttl_seconds: 300,
            max_timestamp_age_seconds: 3600,
            max_message_bytes: 4 * 1024 * 1024,
            replay_retention_seconds: 7 * 86_400,
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
            workers: 8,
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
    /// The WS-Security profile: preset, options, opt-ins (`[partners.security]`).
    #[serde(default)]
    pub security: super::security::RawPartnerSecurity,
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
