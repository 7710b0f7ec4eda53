//! The gateway's configuration: one TOML file per gateway (documented in
//! docs/configuration.md), read into raw serde types, then loaded into [`Settings`] with every
//! file read, every key checked against its certificate and every partner's trust built.
//!
//! Must never: log secrets (passwords, tokens and private keys are redacted in `Debug`), or
//! accept a partner without a way to authenticate it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::wssec::limits::XmlLimits;
use crate::wssec::material::{Certificate, KeyPair};
use crate::wssec::trust::PartnerTrust;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Toml { path: PathBuf, source: toml::de::Error },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { what: what.into(), reason: reason.into() }
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
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            header_read_timeout_seconds: 10,
            body_read_timeout_seconds: 30,
            max_header_bytes: 16 * 1024,
            max_concurrent_requests: 64,
            requests_per_second: 50.0,
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

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawInboundAuth {
    pub username: String,
    /// Argon2 PHC string (`coconnect hash-password` makes one).
    pub password_hash: String,
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
    pub security: RawSecurity,
    pub delivery: RawDelivery,
    pub limits: RawLimits,
    pub retention: RawRetention,
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
        let encrypted = matches!(expect, Expect::Request | Expect::LookupResponse)
            && partner.profile == SecurityProfile::SignEncrypt;
        crate::wssec::inbound::InboundPolicy {
            limits: XmlLimits { max_bytes: partner.max_message_bytes, ..XmlLimits::default() },
            // Nothing is decrypted for a partner that has no business encrypting to us.
            decryption: encrypted.then_some(&self.decryption),
            require_encryption: encrypted,
            trust: &partner.trust,
            now,
            clock_skew: chrono::Duration::seconds(self.security.clock_skew_seconds),
            max_ttl: chrono::Duration::seconds(self.security.max_timestamp_age_seconds),
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
    pub encryption_cert: Option<Certificate>,
    pub profile: SecurityProfile,
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

/// Reads and loads a configuration file; relative paths are relative to the file's folder.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let raw: RawConfig = toml::from_str(&text).map_err(|source| ConfigError::Toml { path: path.to_owned(), source })?;
    let base = path.parent().unwrap_or(Path::new("."));
    raw.load(base)
}

impl RawConfig {
    pub fn load(self, base: &Path) -> Result<Settings, ConfigError> {
        if !crate::pki::is_valid_party_code(&self.party) {
            return Err(invalid("party", format!("{:?} is not a party code ([A-Z]{{2}}[A-Z0-9]{{0,8}})", self.party)));
        }
        let read = |p: &PathBuf| -> Result<Vec<u8>, ConfigError> {
            let full = if p.is_absolute() { p.clone() } else { base.join(p) };
            std::fs::read(&full).map_err(|source| ConfigError::Read { path: full, source })
        };
        let cert = |p: &PathBuf| -> Result<Certificate, ConfigError> {
            Certificate::from_pem(&read(p)?).map_err(|e| invalid(p.display().to_string(), e.to_string()))
        };
        let pair = |k: &PathBuf, c: &PathBuf| -> Result<KeyPair, ConfigError> {
            check_key_permissions(&if k.is_absolute() { k.clone() } else { base.join(k) })?;
            KeyPair::from_pem(read(k)?, cert(c)?).map_err(|e| invalid(k.display().to_string(), e.to_string()))
        };
        let signing = pair(&self.keys.signing_key, &self.keys.signing_cert)?;
        let decryption = pair(&self.keys.decryption_key, &self.keys.decryption_cert)?;
        if let Some(url) = &self.alerts.webhook_url {
            let parsed = url::Url::parse(url).map_err(|e| invalid("alerts.webhook_url", e.to_string()))?;
            if parsed.scheme() != "http" {
                return Err(invalid("alerts.webhook_url", "only http:// is supported yet (TLS is not built in)"));
            }
        }
        let global_anchors = self.keys.trust_anchors.iter().map(cert).collect::<Result<Vec<_>, _>>()?;
        let mut partners = HashMap::new();
        for p in &self.partners {
            let what = format!("partner {}", p.party);
            if !crate::pki::is_valid_party_code(&p.party) {
                return Err(invalid(&what, "party is not a party code"));
            }
            let endpoint = url::Url::parse(&p.endpoint).map_err(|e| invalid(&what, format!("endpoint: {e}")))?;
            match endpoint.scheme() {
                "http" => {}
                "https" if self.tls.is_some() && !p.tls_server_cas.is_empty() => {}
                "https" => {
                    return Err(invalid(
                        &what,
                        "an https endpoint needs [tls] (our client certificate) and tls_server_cas",
                    ))
                }
                other => return Err(invalid(&what, format!("endpoint scheme {other} is not supported"))),
            }
            if self.tls.is_some() && p.tls_client_certs.is_empty() && p.tls_client_subject.is_none() {
                return Err(invalid(
                    &what,
                    "with [tls], give tls_client_certs or tls_client_subject: the partner's TLS identity must be bound",
                ));
            }
            let pinned = p.signing_certs.iter().map(cert).collect::<Result<Vec<_>, _>>()?;
            let mut anchors = p.trust_anchors.iter().map(cert).collect::<Result<Vec<_>, _>>()?;
            if pinned.is_empty() && anchors.is_empty() {
                anchors = global_anchors.clone();
            }
            let trust = PartnerTrust::new(pinned, &anchors, p.signing_subject.clone())
                .map_err(|e| invalid(&what, e.to_string()))?;
            let encryption_cert = p.encryption_cert.as_ref().map(cert).transpose()?;
            if p.profile == SecurityProfile::SignEncrypt && encryption_cert.is_none() {
                return Err(invalid(&what, "profile sign-encrypt needs encryption_cert"));
            }
            let allowed_networks = p
                .allowed_networks
                .iter()
                .map(|n| {
                    n.parse::<IpNet>()
                        .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                        .map_err(|e| invalid(&what, format!("allowed_networks {n:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            argon2::PasswordHash::new(&p.inbound_auth.password_hash)
                .map_err(|e| invalid(&what, format!("inbound_auth.password_hash: {e}")))?;
            let marks = p.retry_marks_seconds.clone().unwrap_or_else(|| self.delivery.retry_marks_seconds.clone());
            if marks.windows(2).any(|w| w[0] >= w[1]) || marks.iter().any(|m| *m <= 0) {
                return Err(invalid(&what, "retry_marks_seconds must be positive and increasing"));
            }
            let flush_rate_per_second = p.flush_rate_per_second.unwrap_or(self.delivery.flush_rate_per_second);
            let requests_per_second = p.requests_per_second.unwrap_or(self.limits.requests_per_second);
            if requests_per_second.is_nan() || requests_per_second <= 0.0 {
                return Err(invalid(&what, "requests_per_second must be positive"));
            }
            if flush_rate_per_second.is_nan() || flush_rate_per_second <= 0.0 {
                return Err(invalid(&what, "flush_rate_per_second must be positive"));
            }
            let outbound_password = secret(
                &what,
                p.outbound_auth.password.as_deref(),
                p.outbound_auth.password_env.as_deref(),
                p.outbound_auth.password_file.as_deref(),
                base,
            )?;
            let partner = Partner {
                party: p.party.clone(),
                endpoint: p.endpoint.clone(),
                trust,
                encryption_cert,
                profile: p.profile,
                retry_marks: marks.iter().map(|s| chrono::Duration::seconds(*s)).collect(),
                flush_rate_per_second,
                max_message_bytes: p.max_message_bytes.unwrap_or(self.security.max_message_bytes),
                requests_per_second,
                cancellation_decision: p.cancellation_decision,
                tls_client_certs: p.tls_client_certs.iter().map(cert).collect::<Result<Vec<_>, _>>()?,
                tls_client_subject: p.tls_client_subject.clone(),
                tls_server_cas: p.tls_server_cas.iter().map(cert).collect::<Result<Vec<_>, _>>()?,
                allowed_networks,
                outbound_username: p.outbound_auth.username.clone(),
                outbound_password,
                inbound_username: p.inbound_auth.username.clone(),
                inbound_password_hash: p.inbound_auth.password_hash.clone(),
            };
            if partners.values().any(|o: &Arc<Partner>| o.inbound_username == partner.inbound_username) {
                return Err(invalid(&what, "inbound_auth.username is used by another partner"));
            }
            if partners.insert(p.party.clone(), Arc::new(partner)).is_some() {
                return Err(invalid(&what, "listed twice"));
            }
        }
        let api_tokens = self
            .api_tokens
            .iter()
            .map(|t| {
                Ok((
                    t.name.clone(),
                    secret(
                        &format!("api token {}", t.name),
                        t.token.as_deref(),
                        t.token_env.as_deref(),
                        t.token_file.as_deref(),
                        base,
                    )?,
                ))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        if api_tokens.iter().any(|(_, t)| t.len() < 16) {
            return Err(invalid("api_tokens", "tokens must have at least 16 characters"));
        }
        let tls = match &self.tls {
            Some(t) => {
                check_key_permissions(&if t.key.is_absolute() { t.key.clone() } else { base.join(&t.key) })?;
                let cert_pem = read(&t.cert)?;
                let key_pem = read(&t.key)?;
                let own = Certificate::from_pem(&cert_pem).map_err(|e| invalid("tls.cert", e.to_string()))?;
                KeyPair::from_pem(key_pem.clone(), own).map_err(|e| invalid("tls.key", e.to_string()))?;
                let client_cas = t.client_cas.iter().map(cert).collect::<Result<Vec<_>, _>>()?;
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
        if self.retention.message_contents_days.is_some_and(|d| d < 1) {
            return Err(invalid("retention.message_contents_days", "must be at least 1"));
        }
        if self.limits.max_header_bytes < 8192 {
            return Err(invalid("limits.max_header_bytes", "must be at least 8192"));
        }
        if self.delivery.lease_seconds <= self.delivery.request_timeout_seconds as i64 {
            return Err(invalid(
                "delivery.lease_seconds",
                "must be longer than delivery.request_timeout_seconds, or a slow delivery could be claimed twice",
            ));
        }
        Ok(Settings {
            party: self.party,
            public_url: self.public_url,
            database_url: resolve_sqlite_path(&self.database_url, base),
            listen: self.listen,
            signing,
            decryption,
            security: self.security,
            delivery: self.delivery,
            limits: self.limits,
            retention: self.retention,
            alerts: self.alerts,
            api_tokens,
            tls,
            proxy,
            partners,
        })
    }
}

/// A relative `sqlite:` path is relative to the configuration file's folder, like key paths.
fn resolve_sqlite_path(url: &str, base: &Path) -> String {
    match url.strip_prefix("sqlite:") {
        Some(rest) if !rest.starts_with('/') && !rest.starts_with(':') && !rest.is_empty() => {
            let rest = rest.trim_start_matches("./");
            format!("sqlite:{}", base.join(rest).display())
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
            check_key_permissions(&path)?;
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned())
        }
        _ => Err(invalid(what, "give exactly one of the value, its environment variable (…_env) or its file (…_file)")),
    }
}

/// Private keys and secret files must not be readable by group or others.
fn check_key_permissions(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(invalid(path.display().to_string(), "private key file is readable by group or others (chmod 600)"));
    }
    Ok(())
}

/// Hashes a password for `inbound_auth.password_hash`.
pub fn hash_password(password: &str) -> Result<String, ConfigError> {
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
