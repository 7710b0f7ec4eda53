//! `[backend]`: how the administration's own systems are pushed the event log (documented in
//! docs/configuration.md and docs/backend.md). The raw serde types, and their loading into
//! [`Backend`]: every subscriber's name, filters, target and secret checked once; nothing is
//! connected to (`check-config` validates without reaching a webhook or a broker).
//!
//! Must never: print or log a webhook secret or a broker password (redacted in `Debug`, left
//! out of the summary).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::load::secret;
use super::{in_range, invalid, CheckedDuration, ConfigError};
use crate::store::events::EventKind;

/// `[backend]` as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RawBackend {
    /// How often an idle push worker looks for new events.
    pub poll_interval_millis: u64,
    /// First wait after a failed push; it doubles on each further failure...
    pub retry_initial_seconds: u64,
    /// ...up to this. A subscriber is retried for as long as it fails: no event is dropped.
    pub retry_max_seconds: u64,
    /// Alert (`backend.subscriber_down`) once a subscriber has been failing this long.
    pub alert_after_seconds: u64,
    /// How long an instance owns a subscriber before another may take it over (several
    /// instances on one PostgreSQL database push each subscriber from one at a time).
    pub lease_seconds: u64,
    pub subscribers: Vec<RawSubscriber>,
}

impl Default for RawBackend {
    fn default() -> Self {
        RawBackend {
            poll_interval_millis: 200,
            retry_initial_seconds: 1,
            retry_max_seconds: 300,
            alert_after_seconds: 300,
            lease_seconds: 30,
            subscribers: Vec::new(),
        }
    }
}

/// One `[[backend.subscribers]]` as written: the common keys, then those of its `type`.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSubscriber {
    pub name: String,
    /// `webhook` or `amqp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Event kinds pushed (empty or absent: all).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Partners whose events are pushed (empty or absent: all).
    #[serde(default)]
    pub partners: Vec<String>,
    /// webhook: the URL POSTed to; amqp: the broker URL (`amqp://user:password@host:5672/vhost`,
    /// or `amqps://`), or `url_env` / `url_file` to keep its password out of the file.
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<PathBuf>,
    /// Seconds a push may take (connect, send, answer or broker confirm).
    pub timeout_seconds: Option<u64>,
    /// CA certificates (PEM) the server's certificate must chain to; absent: the system's.
    pub ca_file: Option<PathBuf>,
    /// webhook: the HMAC-SHA256 key (or `secret_env` / `secret_file`).
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// amqp: the exchange events are published to (declared durable).
    pub exchange: Option<String>,
    /// amqp: `topic` (default), `direct`, `fanout` or `headers`.
    pub exchange_type: Option<String>,
    /// amqp: a queue declared durable and bound to the exchange (absent: the consumers bind
    /// their own).
    pub queue: Option<String>,
    /// amqp: the queue's binding key (default `#`, everything on a topic exchange).
    pub binding_key: Option<String>,
    /// amqp: the routing key of every message (default: the event kind, e.g.
    /// `document.received`).
    pub routing_key: Option<String>,
    /// amqp: events published before their confirms are awaited (default 100).
    pub batch: Option<usize>,
}

impl std::fmt::Debug for RawSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSubscriber").field("name", &self.name).field("type", &self.kind).finish_non_exhaustive()
    }
}

/// `[backend]`, checked.
#[derive(Clone, Debug)]
pub struct Backend {
    pub poll_interval: CheckedDuration,
    pub retry_initial: CheckedDuration,
    pub retry_max: CheckedDuration,
    pub alert_after: CheckedDuration,
    pub lease: CheckedDuration,
    pub subscribers: Vec<Arc<Subscriber>>,
}

/// A subscriber, checked.
#[derive(Clone, Debug)]
pub struct Subscriber {
    pub name: String,
    /// Empty: every kind.
    pub kinds: Vec<EventKind>,
    /// Empty: every partner.
    pub partners: Vec<String>,
    pub timeout: CheckedDuration,
    pub target: Target,
}

#[derive(Clone, Debug)]
pub enum Target {
    Webhook(Webhook),
    Amqp(Amqp),
}

impl Target {
    pub fn type_name(&self) -> &'static str {
        match self {
            Target::Webhook(_) => "webhook",
            Target::Amqp(_) => "amqp",
        }
    }
}

#[derive(Clone)]
pub struct Webhook {
    pub url: url::Url,
    pub secret: String,
    /// PEM; `None`: the system's trust store.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("origin", &self.url.origin().ascii_serialization()).finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub struct Amqp {
    /// Holds the broker password: never shown.
    pub url: String,
    pub exchange: String,
    pub exchange_type: String,
    pub queue: Option<String>,
    pub binding_key: String,
    pub routing_key: Option<String>,
    pub ca_pem: Option<String>,
    pub batch: usize,
}

impl std::fmt::Debug for Amqp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Amqp").field("exchange", &self.exchange).field("queue", &self.queue).finish_non_exhaustive()
    }
}

mod range {
    use std::ops::RangeInclusive;
    pub const POLL_INTERVAL_MILLIS: RangeInclusive<i64> = 10..=60_000;
    pub const RETRY_SECONDS: RangeInclusive<i64> = 1..=86_400;
    pub const ALERT_AFTER_SECONDS: RangeInclusive<i64> = 1..=30 * 86_400;
    pub const LEASE_SECONDS: RangeInclusive<i64> = 2..=3600;
    pub const TIMEOUT_SECONDS: RangeInclusive<i64> = 1..=600;
    pub const BATCH: RangeInclusive<usize> = 1..=1000;
    /// Bytes of an HMAC key: less is guessable, more is no stronger.
    pub const SECRET_MIN: usize = 32;
}

const EXCHANGE_TYPES: [&str; 4] = ["topic", "direct", "fanout", "headers"];

impl RawBackend {
    /// The secrets written in the file itself, by key (see `RawConfig::inline_secrets`).
    pub fn inline_secrets(&self) -> Vec<String> {
        let mut found = Vec::new();
        for s in &self.subscribers {
            if s.secret.is_some() {
                found.push(format!("backend subscriber {}: secret", s.name));
            }
            if s.url.as_deref().is_some_and(super::summary::url_has_password) {
                found.push(format!("backend subscriber {}: url password", s.name));
            }
        }
        found
    }

    /// Checks `[backend]`; `partners` are the configured partner codes.
    pub fn load(&self, partners: &HashSet<&str>, base: &Path) -> Result<Backend, ConfigError> {
        let seconds = |key: &str, v: u64, r| CheckedDuration::seconds(&format!("backend.{key}"), v, r);
        let retry_initial = seconds("retry_initial_seconds", self.retry_initial_seconds, range::RETRY_SECONDS)?;
        let retry_max = seconds("retry_max_seconds", self.retry_max_seconds, range::RETRY_SECONDS)?;
        if retry_max < retry_initial {
            return Err(invalid("backend.retry_max_seconds", "must not be below retry_initial_seconds"));
        }
        let mut names = HashSet::new();
        let subscribers = self
            .subscribers
            .iter()
            .map(|s| {
                let subscriber = s.load(partners, base)?;
                if !names.insert(subscriber.name.clone()) {
                    return Err(invalid(format!("backend subscriber {}", s.name), "listed twice"));
                }
                Ok(Arc::new(subscriber))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let lease = seconds("lease_seconds", self.lease_seconds, range::LEASE_SECONDS)?;
        // A push outlasting the lease would let another instance take the subscriber over
        // mid-push and deliver out of order: the lease covers the push twice over (database
        // time, clocks a little apart).
        if let Some(s) = subscribers.iter().find(|s| s.timeout.std() * 2 > lease.std()) {
            return Err(invalid(
                "backend.lease_seconds",
                format!("{lease} must be at least twice subscriber {}'s timeout ({})", s.name, s.timeout),
            ));
        }
        Ok(Backend {
            poll_interval: CheckedDuration::millis(
                "backend.poll_interval_millis",
                self.poll_interval_millis,
                range::POLL_INTERVAL_MILLIS,
            )?,
            retry_initial,
            retry_max,
            alert_after: seconds("alert_after_seconds", self.alert_after_seconds, range::ALERT_AFTER_SECONDS)?,
            lease,
            subscribers,
        })
    }
}

/// A subscriber name: it is a database key and appears in logs and alerts.
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Whether `host` is this machine (plain HTTP is allowed only there).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl RawSubscriber {
    fn load(&self, partners: &HashSet<&str>, base: &Path) -> Result<Subscriber, ConfigError> {
        let what = format!("backend subscriber {}", self.name);
        let key = |k: &str| format!("{what}: {k}");
        if !is_valid_name(&self.name) {
            return Err(invalid(
                format!("backend subscriber {:?}", self.name),
                "a name is 1 to 64 of a-z, 0-9, '-', '_', '.' (starting with a letter or digit)",
            ));
        }
        let kinds = self
            .kinds
            .iter()
            .map(|k| {
                EventKind::parse(k).ok_or_else(|| {
                    let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    invalid(key("kinds"), format!("{k:?} is not an event kind ({})", known.join(", ")))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for p in &self.partners {
            if !partners.contains(p.as_str()) {
                return Err(invalid(key("partners"), format!("{p:?} is not a configured partner")));
            }
        }
        let timeout = CheckedDuration::seconds(
            &key("timeout_seconds"),
            self.timeout_seconds.unwrap_or(10),
            range::TIMEOUT_SECONDS,
        )?;
        let full = |p: &Path| if p.is_absolute() { p.to_owned() } else { base.join(p) };
        let ca_pem = match &self.ca_file {
            Some(f) => {
                let path = full(f);
                let pem = std::fs::read(&path).map_err(|reason| ConfigError::Read {
                    key: key("ca_file"),
                    path: path.clone(),
                    reason,
                })?;
                let certs = openssl::x509::X509::stack_from_pem(&pem)
                    .map_err(|e| invalid(key("ca_file"), format!("{}: {e}", path.display())))?;
                if certs.is_empty() {
                    return Err(invalid(key("ca_file"), format!("{}: no certificate", path.display())));
                }
                Some(pem)
            }
            None => None,
        };
        let url = secret(&key("url"), self.url.as_deref(), self.url_env.as_deref(), self.url_file.as_deref(), base)?;
        let webhook_only =
            [("secret", self.secret.is_some() || self.secret_env.is_some() || self.secret_file.is_some())];
        let amqp_only = [
            ("exchange", self.exchange.is_some()),
            ("exchange_type", self.exchange_type.is_some()),
            ("queue", self.queue.is_some()),
            ("binding_key", self.binding_key.is_some()),
            ("routing_key", self.routing_key.is_some()),
            ("batch", self.batch.is_some()),
        ];
        let refuse_keys = |keys: &[(&str, bool)], kind: &str| -> Result<(), ConfigError> {
            match keys.iter().find(|(_, given)| *given) {
                Some((k, _)) => Err(invalid(key(k), format!("is not a key of a subscriber of type {kind}"))),
                None => Ok(()),
            }
        };
        let target = match self.kind.as_str() {
            "webhook" => {
                refuse_keys(&amqp_only, "webhook")?;
                let parsed = url::Url::parse(&url).map_err(|e| invalid(key("url"), format!("not a URL: {e}")))?;
                match parsed.scheme() {
                    "https" => {}
                    "http" if is_loopback(&parsed) => {}
                    "http" => {
                        return Err(invalid(
                            key("url"),
                            "must be https:// (plain http:// only to this machine: localhost, 127.0.0.0/8, ::1)",
                        ))
                    }
                    other => return Err(invalid(key("url"), format!("{other}: is neither https nor http"))),
                }
                if parsed.host().is_none() {
                    return Err(invalid(key("url"), "has no host"));
                }
                if ca_pem.is_some() && parsed.scheme() != "https" {
                    return Err(invalid(key("ca_file"), "is for an https:// URL"));
                }
                let secret = secret(
                    &key("secret"),
                    self.secret.as_deref(),
                    self.secret_env.as_deref(),
                    self.secret_file.as_deref(),
                    base,
                )?;
                if secret.len() < range::SECRET_MIN {
                    return Err(invalid(
                        key("secret"),
                        format!("must have at least {} characters (e.g. `openssl rand -hex 32`)", range::SECRET_MIN),
                    ));
                }
                Target::Webhook(Webhook { url: parsed, secret, ca_pem })
            }
            "amqp" => {
                refuse_keys(&webhook_only, "amqp")?;
                // Errors name no part of the URL: it holds the broker password.
                let parsed = url::Url::parse(&url).map_err(|_| invalid(key("url"), "not a URL"))?;
                if !matches!(parsed.scheme(), "amqp" | "amqps") {
                    return Err(invalid(key("url"), format!("{}: is neither amqp nor amqps", parsed.scheme())));
                }
                if url.parse::<lapin::uri::AMQPUri>().is_err() {
                    return Err(invalid(key("url"), "not an AMQP URL (amqp://user:password@host:5672/vhost)"));
                }
                match parsed.host_str() {
                    None | Some("") => return Err(invalid(key("url"), "has no host")),
                    // The AMQP client reads an IPv6 literal as localhost: refused, not misrouted.
                    Some(h) if h.starts_with('[') => {
                        return Err(invalid(key("url"), "an IPv6 address literal is not supported: give a host name"))
                    }
                    Some(_) => {}
                }
                if ca_pem.is_some() && parsed.scheme() != "amqps" {
                    return Err(invalid(key("ca_file"), "is for an amqps:// URL"));
                }
                let exchange = self.exchange.clone().unwrap_or_default();
                if exchange.is_empty() || exchange.len() > 255 || exchange.starts_with("amq.") {
                    return Err(invalid(
                        key("exchange"),
                        "give the exchange to publish to (1 to 255 characters, not amq.*, which the broker reserves)",
                    ));
                }
                let exchange_type = self.exchange_type.clone().unwrap_or_else(|| "topic".to_owned());
                if !EXCHANGE_TYPES.contains(&exchange_type.as_str()) {
                    return Err(invalid(
                        key("exchange_type"),
                        format!("{exchange_type:?} is not one of {}", EXCHANGE_TYPES.join(", ")),
                    ));
                }
                if self.queue.as_deref().is_some_and(|q| q.is_empty() || q.len() > 255 || q.starts_with("amq.")) {
                    return Err(invalid(key("queue"), "1 to 255 characters, not amq.*"));
                }
                if self.routing_key.as_deref() == Some("") {
                    return Err(invalid(key("routing_key"), "is empty: leave it out to route by event kind"));
                }
                if self.binding_key.is_some() && self.queue.is_none() {
                    return Err(invalid(key("binding_key"), "binds the queue: give queue too"));
                }
                // A direct exchange routes by exact key: one binding can take one routing key.
                let binding_key = match (exchange_type.as_str(), &self.binding_key, &self.routing_key) {
                    ("direct", None, Some(routing)) => routing.clone(),
                    ("direct", None, None) if self.queue.is_some() => {
                        return Err(invalid(
                            key("exchange_type"),
                            "a direct exchange routes by exact key and each event kind is its own key: set routing_key (the queue is bound with it), or use topic",
                        ))
                    }
                    (_, Some(b), _) => b.clone(),
                    _ => "#".to_owned(),
                };
                let ca_pem = ca_pem
                    .map(|pem| String::from_utf8(pem).map_err(|_| invalid(key("ca_file"), "is not PEM text")))
                    .transpose()?;
                Target::Amqp(Amqp {
                    url,
                    exchange,
                    exchange_type,
                    queue: self.queue.clone(),
                    binding_key,
                    routing_key: self.routing_key.clone(),
                    ca_pem,
                    batch: in_range(&key("batch"), self.batch.unwrap_or(100), range::BATCH)?,
                })
            }
            other => return Err(invalid(key("type"), format!("{other:?} is neither webhook nor amqp"))),
        };
        Ok(Subscriber { name: self.name.clone(), kinds, partners: self.partners.clone(), timeout, target })
    }
}

impl Backend {
    /// `check-config`'s lines about `[backend]` (label, value): no secret, no broker password,
    /// no webhook path.
    pub fn summary_lines(&self) -> Vec<(String, String)> {
        if self.subscribers.is_empty() {
            return vec![("backend".into(), "feed only (GET /api/v1/events); no push subscriber".into())];
        }
        let mut out = vec![(
            "backend".to_owned(),
            format!(
                "{} subscriber(s); retry after {} doubling to {}, alert after {}, lease {}, idle poll {}",
                self.subscribers.len(),
                self.retry_initial,
                self.retry_max,
                self.alert_after,
                self.lease,
                self.poll_interval
            ),
        )];
        for s in &self.subscribers {
            let kinds = if s.kinds.is_empty() {
                "all kinds".to_owned()
            } else {
                s.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            };
            let partners = if s.partners.is_empty() { "all partners".to_owned() } else { s.partners.join(", ") };
            let target = match &s.target {
                Target::Webhook(w) => format!(
                    "webhook POST {} (path not shown), HMAC-SHA256 signed, {}",
                    w.url.origin().ascii_serialization(),
                    if w.ca_pem.is_some() { "configured CA" } else { "system trust" }
                ),
                Target::Amqp(a) => {
                    let host = url::Url::parse(&a.url)
                        .map(|u| {
                            let port = u.port().unwrap_or(if u.scheme() == "amqps" { 5671 } else { 5672 });
                            format!("{}://{}:{port}", u.scheme(), u.host_str().unwrap_or(""))
                        })
                        .unwrap_or_default();
                    format!(
                        "AMQP {host}, exchange {} ({}){}, routing key {}, persistent, publisher confirms, batch {}",
                        a.exchange,
                        a.exchange_type,
                        a.queue
                            .as_deref()
                            .map(|q| format!(", queue {q} bound with {}", a.binding_key))
                            .unwrap_or_default(),
                        a.routing_key.as_deref().unwrap_or("the event kind"),
                        a.batch
                    )
                }
            };
            out.push((
                format!("subscriber {}", s.name),
                format!("{target}; timeout {}; {kinds}; {partners}", s.timeout),
            ));
        }
        out
    }
}
