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

pub mod backend;
pub mod dev_pair;
mod load;
mod raw;
pub mod security;
mod settings;
mod summary;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use raw::*;
pub use settings::*;

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
        if !ms.is_multiple_of(1000) {
            write!(f, "{ms} ms")
        } else if ms >= 86_400_000 && ms.is_multiple_of(86_400_000) {
            let days = ms / 86_400_000;
            write!(f, "{days} {}", if days == 1 { "day" } else { "days" })
        } else {
            write!(f, "{} s", ms / 1000)
        }
    }
}

/// Top-level keys without a default. serde reports a missing one at whatever table the parser
/// was in last (e.g. the line of the last `[[partners]]`), so [`parse`] checks them first.
const REQUIRED_TOP_LEVEL: [&str; 5] = ["party", "public_url", "database_url", "listen", "keys"];

/// Reads and loads a configuration file; relative paths are relative to the file's folder.
pub fn load(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::File { path: path.to_owned(), reason })?;
    let raw = parse(&text).map_err(|message| ConfigError::Toml { path: path.to_owned(), message })?;
    let inline = raw.inline_secrets();
    if !inline.is_empty() && load::readable_by_others(path)? {
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

pub use crate::party::is_valid_party_code;

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
