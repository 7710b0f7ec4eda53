//! What `check-config` shows of the settings: every effective value an operator needs to
//! check, never a secret.

use std::sync::Arc;

use super::{CancellationDecision, Partner, SecurityProfile, Settings};
use crate::wssec::material::Certificate;

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
        for (label, value) in self.backend.summary_lines() {
            line(&label, &value);
        }
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
            for (label, value) in security_lines(p) {
                field(label, &value);
            }
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

/// The partner's WS-Security profile as `check-config` shows it: preset, opt-ins, what we
/// accept, what we send.
fn security_lines(p: &Partner) -> Vec<(&'static str, String)> {
    use crate::wssec::profile::TimestampRule;
    let s = &p.security;
    let names = |v: Vec<&str>| v.join(", ");
    let weak = s.weaknesses();
    let mut out = vec![(
        "security preset",
        format!(
            "{}{}",
            s.preset.name(),
            if weak.is_empty() { String::new() } else { format!(" (WEAK, opted in: {})", weak.join(", ")) }
        ),
    )];
    let a = &s.inbound.signature;
    out.push((
        "accept signature",
        format!(
            "{}; digests {}; c14n {}; transforms {}; key references {}",
            names(a.methods.iter().map(|m| m.name()).collect()),
            names(a.digests.iter().map(|d| d.name()).collect()),
            names(a.c14n.iter().map(|c| c.name()).collect()),
            names(a.transforms.iter().map(|t| t.name()).collect()),
            names(a.key_references.iter().map(|k| k.name()).collect()),
        ),
    ));
    let mut signed = vec!["Body"];
    if a.timestamp_signed {
        signed.push("Timestamp");
    }
    if a.addressing_signed {
        signed.push("WS-Addressing headers");
    }
    if a.token_signed {
        signed.push("token");
    }
    let timestamp = match s.inbound.timestamp {
        TimestampRule::Required => "Timestamp required",
        TimestampRule::Optional => "Timestamp optional (without one: replay cache and message-ID idempotency)",
    };
    out.push(("accept signed", format!("{}; {timestamp}", signed.join(", "))));
    out.push((
        "accept encryption",
        match &s.inbound.encryption {
            None => "none (nothing is decrypted)".to_owned(),
            Some(e) => format!(
                "{}; key transport {}; key references {}; parts {}{}",
                names(e.data.iter().map(|d| d.name()).collect()),
                names(e.key_transport.iter().map(|k| k.name()).collect()),
                names(e.key_references.iter().map(|k| k.name()).collect()),
                names(e.parts.iter().map(|p| p.name()).collect()),
                if e.encrypted_signature { "; encrypted signature" } else { "" },
            ),
        },
    ));
    let o = &s.outbound;
    out.push((
        "send",
        format!(
            "SOAP {}; {}, {}, {}, {}; key reference {}{}{}",
            match o.soap_version {
                crate::wssec::SoapVersion::V11 => "1.1",
                crate::wssec::SoapVersion::V12 => "1.2",
            },
            o.signature.method.name(),
            o.signature.digest.name(),
            o.signature.c14n.name(),
            o.signature.transforms.name(),
            o.signature.key_reference.name(),
            if o.timestamp { format!("; Timestamp {}", p.timestamp_ttl) } else { "; no Timestamp".to_owned() },
            if o.addressing {
                if o.signature.sign_addressing {
                    "; WS-Addressing, signed"
                } else {
                    "; WS-Addressing"
                }
            } else {
                ""
            },
        ),
    ));
    out.push((
        "send encryption",
        match &o.encryption {
            None => "none (signed only)".to_owned(),
            Some(e) => format!(
                "{}; {}; key reference {}; part {}{}",
                e.data.name(),
                e.key_transport.name(),
                e.key_reference.name(),
                e.part.name(),
                if e.encrypt_signature { "; signature encrypted" } else { "" },
            ),
        },
    ));
    out.push(("clock skew", p.clock_skew.to_string()));
    out
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
pub(super) fn url_has_password(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.password().is_some() || u.query_pairs().any(|(k, _)| k == "password"))
}
