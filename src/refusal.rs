//! Every way a partner's request is refused before, or instead of, a business answer, as one
//! type: its stable code, who is at fault, the HTTP status, the SOAP fault it becomes and the
//! audit record it leaves. This is the single mapping that the SOAP fault writer
//! (`soap::fault`), the audit trail (`receive`), the sending side's verdict on a partner's fault
//! (`delivery`: retry or final) and metrics read; a new way of refusing is a variant here.
//!
//! A business rejection (a valid, authenticated request whose content is refused) is not a
//! refusal: it gets a signed acknowledgement with status Rejected and every error.
//!
//! Must never: act (write a response, a log line or an audit record): it describes, the layers
//! that refuse act on it; or put internal detail into what a partner is told
//! ([`Refusal::public_reason`] is a fixed sentence, or the description of one of our content
//! checks naming the field; the detail is the `Display` form, for our log and audit record
//! only, with a partner's own values cut to [`MAX_ECHOED_CHARS`]).

use crate::wssec::SecurityError;

/// Most characters of a partner's own value (an element name, a namespace) repeated in a fault
/// or a log line: a name can be megabytes long.
pub const MAX_ECHOED_CHARS: usize = 128;

fn bounded(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// Whose fault a refusal is: the peer's (its request, credentials, pace or address) or ours
/// (load, a failure of our own). Not the same as the SOAP fault side: a request over its
/// partner's rate is the peer's fault, yet answered as a Receiver fault so that it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Peer,
    Ours,
}

/// The SOAP fault side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSide {
    /// The request is wrong (SOAP 1.1 `Client`, 1.2 `Sender`): retrying it unchanged won't help.
    Sender,
    /// We failed (SOAP 1.1 `Server`, 1.2 `Receiver`): a retry may succeed.
    Receiver,
}

/// A qualified fault subcode: WS-Security faults use the wsse namespace, ours the coconnect one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubcodeNs {
    Wsse,
    Coconnect,
}

/// What was wrong with the HTTP Basic credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header.
    Missing,
    /// Not `Basic` with base64 of `user:password` in UTF-8.
    Malformed,
    /// Unknown user name (an unknown user costs as much time as a wrong password).
    UnknownUser,
    WrongPassword,
}

/// Why a partner's request was refused. The `Display` form is the detail for our log and audit
/// record; a partner is told [`Refusal::code`] and [`Refusal::public_reason`] only.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("HTTP Basic authentication failed: {}", match .0 {
        Credentials::Missing => "no credentials",
        Credentials::Malformed => "malformed credentials",
        Credentials::UnknownUser => "unknown user",
        Credentials::WrongPassword => "wrong password",
    })]
    Authentication(Credentials),
    #[error("source address not allowed for the partner")]
    SourceAddress,
    #[error("TLS client certificate {presented} is not {partner}'s")]
    TlsMismatch { presented: String, partner: String },
    #[error("concurrent request limit reached")]
    Busy,
    #[error("request rate exceeded")]
    RateLimited,
    #[error("request body over the limit")]
    TooLarge,
    #[error("request body not received in time")]
    BodyTimeout,
    #[error("request body could not be read: {0}")]
    BodyUnreadable(String),
    /// Any WS-Security refusal, and our own failures while processing one (those are answered
    /// `GW-INTERNAL`).
    #[error(transparent)]
    Security(SecurityError),
    #[error("replayed message (signature seen before)")]
    Replay,
    #[error("message header sender {sender} is not the authenticated partner")]
    PartyMismatch { sender: String, element: String },
    /// The Body's element is no operation of ours: its namespace and name, each cut to
    /// [`MAX_ECHOED_CHARS`] (built by [`Refusal::unknown_operation`]), and the element's path.
    #[error("{{{namespace}}}{name} is not an operation of this service")]
    UnknownOperation { namespace: String, name: String, element: String },
    #[error("mandatory header blocks not understood: {}", .0.iter().map(|(n, l)| format!("{{{n}}}{l}")).collect::<Vec<_>>().join(", "))]
    MustUnderstand(Vec<(String, String)>),
    /// A request that cannot get its own kind of answer (a look-up whose header or content is
    /// invalid): its first problem, with a `MSG-*` code.
    #[error("invalid request: {code} {description} at {element}")]
    InvalidRequest { code: String, description: String, element: String },
    /// Our own failure (the store, a task): answered `GW-INTERNAL`, retried by the sender.
    #[error("internal failure: {0}")]
    Internal(String),
}

impl From<SecurityError> for Refusal {
    fn from(e: SecurityError) -> Self {
        match e {
            SecurityError::MustUnderstand(blocks) => Refusal::MustUnderstand(blocks),
            other => Refusal::Security(other),
        }
    }
}

impl Refusal {
    /// The stable code a partner is told (one of `crate::codes::ALL`).
    pub fn code(&self) -> &str {
        match self {
            Refusal::Authentication(Credentials::Missing) => "AUTH-MISSING",
            Refusal::Authentication(Credentials::Malformed) => "AUTH-MALFORMED",
            Refusal::Authentication(_) => "AUTH-FAILED",
            Refusal::SourceAddress => "AUTH-SOURCE-ADDRESS",
            Refusal::TlsMismatch { .. } => "AUTH-TLS-MISMATCH",
            Refusal::Busy => "GW-BUSY",
            Refusal::RateLimited => "MSG-RATE-LIMIT",
            Refusal::TooLarge => "MSG-TOO-LARGE",
            Refusal::BodyTimeout => "MSG-READ-TIMEOUT",
            Refusal::BodyUnreadable(_) => "MSG-READ",
            Refusal::Security(e) => e.public_code(),
            Refusal::Replay => "WSS-REPLAY",
            Refusal::PartyMismatch { .. } => "AUTH-PARTY-MISMATCH",
            Refusal::UnknownOperation { .. } => "MSG-UNKNOWN-OPERATION",
            Refusal::MustUnderstand(_) => "MSG-MUST-UNDERSTAND",
            Refusal::InvalidRequest { code, .. } => code,
            Refusal::Internal(_) => "GW-INTERNAL",
        }
    }

    /// The code our log and audit record carry: [`Self::code`], but for our own WS-Security
    /// failures the code that says which (`WSS-KEY`, `WSS-BUILD`), where the partner is told
    /// `GW-INTERNAL`.
    pub fn detail_code(&self) -> &str {
        match self {
            Refusal::Security(e) => e.code(),
            other => other.code(),
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            Refusal::Busy | Refusal::Internal(_) => Blame::Ours,
            Refusal::Security(e) if e.is_internal() => Blame::Ours,
            _ => Blame::Peer,
        }
    }

    /// The HTTP status: the SOAP HTTP bindings answer a fault processed as SOAP with 500; the
    /// refusals decided before the body was read have their own status.
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::Authentication(_) => 401,
            Refusal::SourceAddress | Refusal::TlsMismatch { .. } => 403,
            Refusal::Busy => 503,
            Refusal::RateLimited => 429,
            Refusal::TooLarge => 413,
            Refusal::BodyTimeout => 408,
            Refusal::BodyUnreadable(_) => 400,
            Refusal::Security(_)
            | Refusal::Replay
            | Refusal::PartyMismatch { .. }
            | Refusal::UnknownOperation { .. }
            | Refusal::MustUnderstand(_)
            | Refusal::InvalidRequest { .. }
            | Refusal::Internal(_) => 500,
        }
    }

    /// The SOAP fault side: Receiver where the sender should simply try again later (our load,
    /// our failure, its own pace), Sender where the request itself is refused.
    pub fn fault_side(&self) -> FaultSide {
        match self {
            Refusal::Busy | Refusal::RateLimited | Refusal::Internal(_) => FaultSide::Receiver,
            Refusal::Security(e) if e.is_internal() => FaultSide::Receiver,
            _ => FaultSide::Sender,
        }
    }

    /// The fault subcode: a WS-Security 1.0 fault code for security and authentication
    /// refusals, ours otherwise.
    pub fn subcode(&self) -> (SubcodeNs, &'static str) {
        use SubcodeNs::{Coconnect, Wsse};
        match self {
            Refusal::Authentication(_) | Refusal::TlsMismatch { .. } | Refusal::PartyMismatch { .. } => {
                (Wsse, "FailedAuthentication")
            }
            Refusal::SourceAddress => (Coconnect, "Forbidden"),
            Refusal::Busy => (Coconnect, "Busy"),
            Refusal::RateLimited => (Coconnect, "RateLimited"),
            Refusal::TooLarge => (Coconnect, "TooLarge"),
            Refusal::BodyTimeout => (Coconnect, "Timeout"),
            Refusal::BodyUnreadable(_) => (Coconnect, "BadRequest"),
            Refusal::Security(e) if e.is_internal() => (Coconnect, "InternalError"),
            Refusal::Security(e) => (Wsse, e.fault_subcode()),
            Refusal::Replay => (Wsse, "MessageExpired"),
            Refusal::UnknownOperation { .. } => (Coconnect, "UnknownOperation"),
            Refusal::MustUnderstand(_) => (Wsse, "InvalidSecurity"),
            Refusal::InvalidRequest { .. } => (Coconnect, "InvalidRequest"),
            Refusal::Internal(_) => (Coconnect, "InternalError"),
        }
    }

    /// The one fixed sentence a partner is told; never the detail.
    pub fn public_reason(&self) -> String {
        match self {
            Refusal::Authentication(_) => "authentication failed".into(),
            Refusal::SourceAddress => "source address not allowed".into(),
            Refusal::TlsMismatch { .. } => "TLS client certificate does not belong to the authenticated partner".into(),
            Refusal::Busy => "too many requests in progress; retry later".into(),
            Refusal::RateLimited => "request rate exceeded; retry later".into(),
            Refusal::TooLarge => "message over the size limit".into(),
            Refusal::BodyTimeout => "request body not received in time".into(),
            Refusal::BodyUnreadable(_) => "request body could not be read".into(),
            Refusal::Security(e) => e.public_reason().into(),
            Refusal::Replay => "this signed message was received before".into(),
            Refusal::PartyMismatch { .. } => "sender party does not match the authenticated partner".into(),
            Refusal::UnknownOperation { .. } => "the Body's element is not an operation of this service".into(),
            Refusal::MustUnderstand(_) => SecurityError::MustUnderstand(Vec::new()).public_reason().into(),
            // The description of a content check of ours (fixed per check, naming the field).
            Refusal::InvalidRequest { description, .. } => description.clone(),
            Refusal::Internal(_) => crate::wssec::error::INTERNAL_REASON.into(),
        }
    }

    /// [`Refusal::UnknownOperation`] for the Body element `{namespace}name`.
    pub fn unknown_operation(namespace: &str, name: &str) -> Self {
        let name = bounded(name);
        Refusal::UnknownOperation { namespace: bounded(namespace), element: format!("/Envelope/Body/{name}"), name }
    }

    /// The offending element, when the refusal is about one.
    pub fn element(&self) -> Option<&str> {
        match self {
            Refusal::PartyMismatch { element, .. } | Refusal::InvalidRequest { element, .. } => Some(element),
            Refusal::UnknownOperation { element, .. } => Some(element),
            _ => None,
        }
    }

    /// The mandatory header blocks not understood (namespace, local name), for a SOAP
    /// `MustUnderstand` fault; empty for every other refusal.
    pub fn not_understood(&self) -> &[(String, String)] {
        match self {
            Refusal::MustUnderstand(blocks) => blocks,
            _ => &[],
        }
    }

    /// The audit record kind (docs/architecture.md, "Audit chain"); `None` for refusals that
    /// are only logged (our load, unreadable bodies, requests that are not ours to audit).
    pub fn audit_kind(&self) -> Option<&'static str> {
        match self {
            Refusal::Authentication(_) => Some("auth.failed"),
            Refusal::SourceAddress => Some("auth.source_refused"),
            Refusal::TlsMismatch { .. } => Some("auth.tls_mismatch"),
            Refusal::RateLimited => Some("limit.rate"),
            Refusal::TooLarge => Some("limit.too_large"),
            Refusal::BodyTimeout => Some("limit.body_timeout"),
            Refusal::Security(e) if e.is_internal() => Some("security.internal"),
            Refusal::Security(_) | Refusal::MustUnderstand(_) => Some("security.refused"),
            Refusal::Replay => Some("security.replay"),
            Refusal::PartyMismatch { .. } => Some("authorization.refused"),
            Refusal::Busy
            | Refusal::BodyUnreadable(_)
            | Refusal::UnknownOperation { .. }
            | Refusal::InvalidRequest { .. }
            | Refusal::Internal(_) => None,
        }
    }

    /// The log event name of this refusal.
    pub fn event(&self) -> &'static str {
        match self {
            Refusal::Authentication(_) => "auth_refused",
            Refusal::SourceAddress => "ip_refused",
            Refusal::TlsMismatch { .. } => "tls_mismatch",
            Refusal::Busy => "busy",
            Refusal::RateLimited => "rate_limited",
            Refusal::TooLarge => "too_large",
            Refusal::BodyTimeout => "body_timeout",
            Refusal::BodyUnreadable(_) => "body_unreadable",
            Refusal::Security(e) if e.is_internal() => "security_internal",
            Refusal::Security(_) | Refusal::MustUnderstand(_) => "security_refused",
            Refusal::Replay => "replay_refused",
            Refusal::PartyMismatch { .. } => "party_mismatch",
            Refusal::UnknownOperation { .. } => "unknown_operation",
            Refusal::InvalidRequest { .. } => "invalid_request",
            Refusal::Internal(_) => "internal_error",
        }
    }

    /// Whether a sender given this refusal should send the same message again (with a fresh
    /// Timestamp and signature) rather than take it as the final word on it: our load or
    /// failure, its pace, a clock or transit problem, a replay of its own retry, or the two
    /// gateways' credentials and certificates out of step (a password or key roll-over the
    /// partner has not taken over yet: a matter for the operators, not a verdict on the CO).
    pub fn retry_cures(&self) -> bool {
        match self {
            Refusal::Authentication(c) => *c != Credentials::Malformed,
            Refusal::Busy
            | Refusal::RateLimited
            | Refusal::BodyTimeout
            | Refusal::BodyUnreadable(_)
            | Refusal::Replay
            | Refusal::Internal(_) => true,
            Refusal::Security(e) => e.retry_cures(),
            Refusal::SourceAddress
            | Refusal::TlsMismatch { .. }
            | Refusal::TooLarge
            | Refusal::PartyMismatch { .. }
            | Refusal::UnknownOperation { .. }
            | Refusal::MustUnderstand(_)
            | Refusal::InvalidRequest { .. } => false,
        }
    }

    /// One refusal of every kind and every security code (details empty): what
    /// [`sender_may_retry`] reads, and what the tests check against the registry.
    /// The variant's place in [`Refusal::every_kind`]'s coverage: the match is exhaustive, so a
    /// new variant must be given one, and a test checks that `every_kind` has every place.
    #[cfg(test)]
    fn ordinal(&self) -> usize {
        match self {
            Refusal::Authentication(_) => 0,
            Refusal::SourceAddress => 1,
            Refusal::TlsMismatch { .. } => 2,
            Refusal::Busy => 3,
            Refusal::RateLimited => 4,
            Refusal::TooLarge => 5,
            Refusal::BodyTimeout => 6,
            Refusal::BodyUnreadable(_) => 7,
            Refusal::Security(_) => 8,
            Refusal::Replay => 9,
            Refusal::PartyMismatch { .. } => 10,
            Refusal::UnknownOperation { .. } => 11,
            Refusal::MustUnderstand(_) => 12,
            Refusal::InvalidRequest { .. } => 13,
            Refusal::Internal(_) => 14,
        }
    }

    /// One past the highest [`Refusal::ordinal`].
    #[cfg(test)]
    const KINDS: usize = 15;

    pub fn every_kind() -> Vec<Refusal> {
        let mut all = vec![
            Refusal::Authentication(Credentials::Missing),
            Refusal::Authentication(Credentials::Malformed),
            Refusal::Authentication(Credentials::UnknownUser),
            Refusal::Authentication(Credentials::WrongPassword),
            Refusal::SourceAddress,
            Refusal::TlsMismatch { presented: String::new(), partner: String::new() },
            Refusal::Busy,
            Refusal::RateLimited,
            Refusal::TooLarge,
            Refusal::BodyTimeout,
            Refusal::BodyUnreadable(String::new()),
            Refusal::Replay,
            Refusal::PartyMismatch { sender: String::new(), element: String::new() },
            Refusal::unknown_operation("urn:x", "Foo"),
            Refusal::MustUnderstand(Vec::new()),
            Refusal::InvalidRequest { code: "MSG-MALFORMED".into(), description: String::new(), element: "/".into() },
            Refusal::Internal(String::new()),
        ];
        all.extend(SecurityError::every_kind().into_iter().map(Refusal::from));
        all
    }
}

/// The sending side's verdict on a code a partner refused our message with: whether a new
/// attempt can cure it (see [`Refusal::retry_cures`]). Read from [`Refusal::every_kind`], so it
/// cannot disagree with what we answer ourselves; both the code a partner is told and the
/// detail code count (gateways of earlier versions answered `WSS-KEY` and `WSS-BUILD`).
/// Unknown codes are not cured by a retry.
pub fn sender_may_retry(code: &str) -> bool {
    Refusal::every_kind().iter().any(|r| (r.code() == code || r.detail_code() == code) && r.retry_cures())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_covers_every_variant() {
        let places: std::collections::BTreeSet<usize> = Refusal::every_kind().iter().map(Refusal::ordinal).collect();
        assert_eq!(places, (0..Refusal::KINDS).collect(), "a variant is missing from every_kind");
    }

    #[test]
    fn an_unknown_operation_names_its_element_and_echoes_at_most_a_bounded_name() {
        let r = Refusal::unknown_operation("urn:x", "Foo");
        assert_eq!(r.element(), Some("/Envelope/Body/Foo"));
        assert_eq!(r.public_reason(), "the Body's element is not an operation of this service");
        let huge = "n".repeat(100_000);
        let r = Refusal::unknown_operation(&huge, &huge);
        assert!(r.to_string().chars().count() < 400, "{} characters", r.to_string().len());
        assert!(r.element().is_some_and(|e| e.chars().count() < 200));
    }

    #[test]
    fn every_refusal_code_is_registered_and_every_registered_refusal_family_code_is_a_refusal() {
        let kinds = Refusal::every_kind();
        for r in &kinds {
            for code in [r.code(), r.detail_code()] {
                assert!(crate::codes::ALL.contains(&code), "{code} ({r:?}) is not in the registry");
            }
        }
        // Every WSS- and AUTH- code is a refusal (MSG-, GW- have business codes as well).
        for code in crate::codes::ALL.iter().filter(|c| c.starts_with("WSS-") || c.starts_with("AUTH-")) {
            assert!(kinds.iter().any(|r| r.code() == *code || r.detail_code() == *code), "{code} is no refusal");
        }
    }

    #[test]
    fn the_retry_verdict_is_the_one_the_gateway_used_before_the_registry() {
        // The set the sending side retried on before refusals were one type, plus the
        // refusals that were always answered with a retryable HTTP status, plus WSS-CHECK-FAILED
        // (under CBC a partner's key roll-over looks like it).
        let retried = [
            "WSS-CHECK-FAILED",
            "WSS-EXPIRED",
            "WSS-FUTURE-TIMESTAMP",
            "WSS-BAD-TIMESTAMP",
            "WSS-REPLAY",
            "WSS-UNTRUSTED-CERT",
            "WSS-DECRYPT",
            "GW-INTERNAL",
            "WSS-KEY",
            "WSS-BUILD",
            "AUTH-FAILED",
            "AUTH-MISSING",
            "GW-BUSY",
            "MSG-RATE-LIMIT",
            "MSG-READ-TIMEOUT",
            "MSG-READ",
        ];
        for code in crate::codes::ALL {
            assert_eq!(sender_may_retry(code), retried.contains(code), "{code}");
        }
        assert!(!sender_may_retry("SOMETHING-ELSE"));
    }

    #[test]
    fn our_failures_are_ours_and_receiver_faults() {
        for r in Refusal::every_kind() {
            let ours = r.blame() == Blame::Ours;
            if ours {
                assert_eq!(r.fault_side(), FaultSide::Receiver, "{r:?}");
                assert!(r.retry_cures(), "{r:?}");
            }
            if r.fault_side() == FaultSide::Receiver {
                assert!(r.retry_cures(), "a Receiver fault is retried: {r:?}");
            }
            assert!(
                !r.public_reason().is_empty() || matches!(r, Refusal::InvalidRequest { .. }),
                "{r:?} has no sentence"
            );
        }
        let internal = Refusal::from(SecurityError::KeyMaterial("our key".into()));
        assert_eq!((internal.code(), internal.detail_code()), ("GW-INTERNAL", "WSS-KEY"));
        assert_eq!(internal.audit_kind(), Some("security.internal"));
        assert!(!internal.public_reason().contains("key"));
        assert_eq!(Refusal::RateLimited.blame(), Blame::Peer, "over its rate is the peer's doing");
        assert_eq!(Refusal::RateLimited.fault_side(), FaultSide::Receiver, "but answered so that it retries");
    }
}
