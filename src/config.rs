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
    #[serde(default)]
    pub api_tokens: Vec<RawToken>,
    #[serde(default)]
    pub partners: Vec<RawPartner>,
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
        RawSecurity { clock_skew_seconds: 120, timestamp_ttl_seconds: 300, max_timestamp_age_seconds: 3600, max_message_bytes: 4 * 1024 * 1024 }
    }
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RawDelivery {
    /// Delay before retrying after a technical failure (the full 4.3.3 schedule is configurable
    /// per partner in a later release).
    pub retry_delay_seconds: i64,
    pub request_timeout_seconds: u64,
    /// How long a worker owns a claimed message before another may take it.
    pub lease_seconds: i64,
    pub poll_interval_millis: u64,
    /// Concurrent delivery workers in this process.
    pub workers: usize,
}

impl Default for RawDelivery {
    fn default() -> Self {
        RawDelivery { retry_delay_seconds: 600, request_timeout_seconds: 30, lease_seconds: 120, poll_interval_millis: 500, workers: 2 }
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    /// The bearer token itself, or
    pub token: Option<String>,
    /// the name of an environment variable holding it.
    pub token_env: Option<String>,
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
    pub api_tokens: Vec<(String, String)>,
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

impl Settings {
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
    pub allowed_networks: Vec<IpNet>,
    pub outbound_username: String,
    pub outbound_password: String,
    pub inbound_username: String,
    pub inbound_password_hash: String,
}

impl std::fmt::Debug for Partner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partner").field("party", &self.party).field("endpoint", &self.endpoint).field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl Partner {
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
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
        let global_anchors = self.keys.trust_anchors.iter().map(cert).collect::<Result<Vec<_>, _>>()?;
        let mut partners = HashMap::new();
        for p in &self.partners {
            let what = format!("partner {}", p.party);
            if !crate::pki::is_valid_party_code(&p.party) {
                return Err(invalid(&what, "party is not a party code"));
            }
            url::Url::parse(&p.endpoint).map_err(|e| invalid(&what, format!("endpoint: {e}")))?;
            let pinned = p.signing_certs.iter().map(cert).collect::<Result<Vec<_>, _>>()?;
            let mut anchors = p.trust_anchors.iter().map(cert).collect::<Result<Vec<_>, _>>()?;
            if pinned.is_empty() && anchors.is_empty() {
                anchors = global_anchors.clone();
            }
            let trust = PartnerTrust::new(pinned, &anchors, p.signing_subject.clone()).map_err(|e| invalid(&what, e.to_string()))?;
            let encryption_cert = p.encryption_cert.as_ref().map(cert).transpose()?;
            if p.profile == SecurityProfile::SignEncrypt && encryption_cert.is_none() {
                return Err(invalid(&what, "profile sign-encrypt needs encryption_cert"));
            }
            let allowed_networks = p
                .allowed_networks
                .iter()
                .map(|n| n.parse::<IpNet>().or_else(|_| n.parse::<IpAddr>().map(IpNet::from)).map_err(|e| invalid(&what, format!("allowed_networks {n:?}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            argon2::PasswordHash::new(&p.inbound_auth.password_hash).map_err(|e| invalid(&what, format!("inbound_auth.password_hash: {e}")))?;
            let outbound_password = secret(&what, p.outbound_auth.password.as_deref(), p.outbound_auth.password_env.as_deref())?;
            let partner = Partner {
                party: p.party.clone(),
                endpoint: p.endpoint.clone(),
                trust,
                encryption_cert,
                profile: p.profile,
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
            .map(|t| Ok((t.name.clone(), secret(&format!("api token {}", t.name), t.token.as_deref(), t.token_env.as_deref())?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        if api_tokens.iter().any(|(_, t)| t.len() < 16) {
            return Err(invalid("api_tokens", "tokens must have at least 16 characters"));
        }
        Ok(Settings {
            party: self.party,
            public_url: self.public_url,
            database_url: self.database_url,
            listen: self.listen,
            signing,
            decryption,
            security: self.security,
            delivery: self.delivery,
            api_tokens,
            partners,
        })
    }
}

fn secret(what: &str, inline: Option<&str>, env: Option<&str>) -> Result<String, ConfigError> {
    match (inline, env) {
        (Some(v), None) => Ok(v.to_owned()),
        (None, Some(var)) => std::env::var(var).map_err(|_| invalid(what, format!("environment variable {var} is not set"))),
        _ => Err(invalid(what, "give exactly one of the value or the name of its environment variable (…_env)")),
    }
}

/// Private keys must not be readable by group or others.
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
    argon2::Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| invalid("password", e.to_string()))
}
