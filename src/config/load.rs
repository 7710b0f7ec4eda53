//! From the raw file to [`Settings`]: every number checked against its range, every file read
//! (secrets inline, from the environment or from a private file), every key checked against
//! its certificate, each partner's trust and security profile built.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;

use super::summary::url_has_password;
use super::*;
use crate::wssec::material::{Certificate, KeyPair};
use crate::wssec::trust::PartnerTrust;

/// Ranges of the numbers an operator writes; docs/configuration.md lists them.
mod range {
    use std::ops::RangeInclusive;

    pub const CLOCK_SKEW_SECONDS: RangeInclusive<i64> = 0..=86_400;
    pub const TIMESTAMP_TTL_SECONDS: RangeInclusive<i64> = 1..=86_400;
    pub const MAX_TIMESTAMP_AGE_SECONDS: RangeInclusive<i64> = 1..=86_400;
    /// A minute to a year: without a Timestamp, the replay cache is all that refuses a replay.
    pub const REPLAY_RETENTION_SECONDS: RangeInclusive<i64> = 60..=366 * 86_400;
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
        found.extend(self.backend.inline_secrets());
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
        if !is_valid_party_code(&self.party) {
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
            replay_retention: CheckedDuration::seconds(
                "security.replay_retention_seconds",
                s.replay_retention_seconds,
                range::REPLAY_RETENTION_SECONDS,
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
            if !is_valid_party_code(&p.party) {
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
            let encrypt = p.profile == SecurityProfile::SignEncrypt;
            let security_key = key("security");
            let profile = super::security::build(
                &p.security,
                &super::security::Context {
                    key: &security_key,
                    encrypt,
                    has_pinned: trust.has_pinned(),
                    our_key_is_ec: signing.certificate.is_ec,
                },
            )?;
            let timestamp_ttl = match p.security.timestamp_ttl_seconds {
                Some(n) => {
                    CheckedDuration::seconds(&key("security.timestamp_ttl_seconds"), n, range::TIMESTAMP_TTL_SECONDS)?
                }
                None => security.timestamp_ttl,
            };
            let clock_skew = match p.security.clock_skew_seconds {
                Some(n) => CheckedDuration::seconds(&key("security.clock_skew_seconds"), n, range::CLOCK_SKEW_SECONDS)?,
                None => security.clock_skew,
            };
            let weak = profile.weaknesses();
            if !weak.is_empty() {
                tracing::warn!(
                    event = "weak_profile",
                    partner = %p.party,
                    preset = profile.preset.name(),
                    weak = %weak.join(", "),
                    "partner profile accepts algorithms weaker than the strict profile (opted in with allow_weak)"
                );
            }
            let partner = Partner {
                party: p.party.clone(),
                endpoint: p.endpoint.clone(),
                trust,
                signing_trust,
                encryption_cert,
                profile: p.profile,
                security: profile,
                timestamp_ttl,
                clock_skew,
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
        let party_codes: std::collections::HashSet<&str> = partners.keys().map(String::as_str).collect();
        let backend = self.backend.load(&party_codes, base)?;
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
            backend,
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
pub(super) fn secret(
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
pub(super) fn readable_by_others(path: &Path) -> Result<bool, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|reason| ConfigError::File { path: path.to_owned(), reason })?;
    Ok(meta.permissions().mode() & 0o077 != 0)
}
