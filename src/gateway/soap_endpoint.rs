//! `POST /soap/v1`: a partner's request, from HTTP to a signed acknowledgement.
//!
//! Order: Basic user → source address → password (all before the body is read) → body size →
//! WS-Security (on a blocking thread) → replay cache → operation → message header and the
//! partner's identity → idempotency by message ID → the business decision (`flows::inbound`:
//! validation, the certificate's lifecycle and the partner's role) → one transaction that
//! stores the receipt and its effect → the signed acknowledgement. GetCO is answered with the
//! CO itself (`flows::lookup`), signed, instead of an acknowledgement. Everything after the
//! body read runs in a task of [`SoapState::processing`]: a cut connection does not stop it.
//! Security failures get a SOAP Fault and leave nothing in the store; business failures get a
//! signed acknowledgement with status Rejected and every error.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use uuid::Uuid;

use super::auth::AuthFailure;
use super::SoapState;
use crate::config::{Expect, Partner};
use crate::flows::{self, FlowError};
use crate::http::{read_body_within, response, Body, BodyError};
use crate::soap::business::{Lookup, LookupResult};
use crate::soap::fault::{Fault, FaultSide, SubcodeNs};
use crate::soap::{self, AckError, AckStatus, Acknowledgement, MessageHeader, Operation};
use crate::store::audit::AuditEvent;
use crate::store::inbound::{self, Opened, Receipt};
use crate::store::messages::sha256_hex;
use crate::wssec::inbound::VerifiedMessage;
use crate::wssec::material::Certificate;
use crate::wssec::outbound::{secure, OutboundMessage};
use crate::wssec::{SecurityError, SoapVersion};

/// Routes the partner-facing listener. `HEAD` arrives here as `GET` (see `crate::gateway`); a
/// known path asked with another method gets 405 with `Allow`, an unknown one 404.
pub async fn route(
    state: &Arc<SoapState>,
    req: Request<Incoming>,
    remote: SocketAddr,
    client_cert: Option<Arc<Certificate>>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let schema = path.strip_prefix("/xsd/").and_then(soap::wsdl::schema);
    let allow = match path.as_str() {
        "/soap/v1" => "GET, HEAD, POST",
        "/healthz" | "/readyz" => "GET, HEAD",
        _ if schema.is_some() => "GET, HEAD",
        _ => return response(StatusCode::NOT_FOUND, "text/plain", "not found"),
    };
    match (req.method(), path.as_str()) {
        (&Method::GET, "/soap/v1") if query.eq_ignore_ascii_case("wsdl") => {
            response(StatusCode::OK, "text/xml; charset=utf-8", soap::wsdl::wsdl_for(&state.core.settings.public_url))
        }
        (&Method::GET, "/soap/v1") => response(StatusCode::NOT_FOUND, "text/plain", "not found; the WSDL is at ?wsdl"),
        (&Method::POST, "/soap/v1") => handle(state, req, remote, client_cert).await,
        (&Method::GET, "/healthz") => response(StatusCode::OK, "text/plain", "ok"),
        (&Method::GET, "/readyz") => crate::http::readiness(&state.core.store).await,
        // The only other known paths are the schemas.
        (&Method::GET, _) => match schema {
            Some(xsd) => response(StatusCode::OK, "text/xml; charset=utf-8", xsd),
            None => response(StatusCode::NOT_FOUND, "text/plain", "not found"),
        },
        _ => {
            let mut r =
                response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", format!("method not allowed; use {allow}"));
            r.headers_mut().insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static(allow));
            r
        }
    }
}

/// Records a security decision in the audit chain; a failing store is logged, not fatal (the
/// request is refused either way).
async fn audit(
    state: &SoapState,
    kind: &str,
    partner: Option<&str>,
    remote: SocketAddr,
    message_id: Option<&str>,
    reason: &str,
) {
    let source = remote.ip().to_string();
    let event = AuditEvent { kind, partner, source: Some(&source), message_id, actor: None, reason };
    if let Err(e) = crate::store::audit::append(&state.core.store, &event, state.core.clock.now()).await {
        tracing::error!(error = %e, kind, "audit record could not be written");
    }
}

/// A SOAP Fault response (HTTP 500 as the SOAP HTTP bindings require, or the given status for
/// failures before SOAP processing such as authentication).
fn fault_response(version: SoapVersion, status: StatusCode, fault: &Fault) -> Response<Body> {
    response(status, version.content_type(), fault.to_envelope(version))
}

fn fault(
    side: FaultSide,
    subcode_ns: SubcodeNs,
    subcode: &str,
    code: &str,
    reason: impl Into<String>,
    element: Option<String>,
) -> Fault {
    Fault {
        side,
        subcode_ns,
        subcode: subcode.to_owned(),
        code: code.to_owned(),
        reason: reason.into(),
        element,
        not_understood: vec![],
    }
}

/// The fault a partner gets for a security refusal: the code and its fixed sentence (the
/// detail is in our log and audit record only); our own failures as a Receiver fault that the
/// partner retries; a `MustUnderstand` fault naming the blocks.
fn security_fault(e: &SecurityError) -> Fault {
    if e.is_internal() {
        // Already logged, with the partner, by the caller.
        return internal_reply();
    }
    let mut f = fault(FaultSide::Sender, SubcodeNs::Wsse, e.fault_subcode(), e.code(), e.public_reason(), None);
    if let SecurityError::MustUnderstand(blocks) = e {
        f.not_understood = blocks.clone();
    }
    f
}

/// Our own failure: a Receiver fault `GW-INTERNAL` that a sender retries on its schedule. The
/// sentence is fixed ("internal error of the receiving gateway; retry later"); `cause` is only
/// logged, with the request it belongs to.
fn internal_fault(cause: &str) -> Fault {
    tracing::error!(%cause, "request failed on our side: answered GW-INTERNAL");
    internal_reply()
}

/// The Receiver fault `GW-INTERNAL` with its fixed sentence.
fn internal_reply() -> Fault {
    fault(
        FaultSide::Receiver,
        SubcodeNs::Coconnect,
        "InternalError",
        "GW-INTERNAL",
        crate::wssec::error::INTERNAL_REASON,
        None,
    )
}

/// The caller as the gateway sees it: its address and TLS client certificate, taken from a
/// trusted reverse proxy's headers, or from the connection itself. Forwarded headers from
/// anyone but a configured proxy are ignored.
fn effective_client(
    state: &SoapState,
    req: &Request<Incoming>,
    remote: SocketAddr,
    direct_cert: Option<Arc<Certificate>>,
) -> (SocketAddr, Option<Arc<Certificate>>) {
    let proxy = &state.core.settings.proxy;
    if !proxy.trusts(remote.ip()) {
        return (remote, direct_cert);
    }
    // The entry the trusted proxy added is the rightmost one (earlier ones are the client's word).
    let forwarded_ip = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .or_else(|| req.headers().get("forwarded").and_then(|v| v.to_str().ok()).and_then(forwarded_for));
    let address = forwarded_ip.map(|ip| SocketAddr::new(ip, 0)).unwrap_or(remote);
    let cert = proxy
        .client_cert_header
        .as_deref()
        .and_then(|h| req.headers().get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|escaped| {
            url::form_urlencoded::parse(format!("c={}", escaped.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        })
        .and_then(|pem| Certificate::from_pem(pem.as_bytes()).ok())
        .map(Arc::new);
    (address, cert.or(direct_cert))
}

/// The `for=` address of the last element of an RFC 7239 `Forwarded` header
/// (`for=192.0.2.1`, `for="192.0.2.1:4711"`, `for="[2001:db8::1]:4711"`).
fn forwarded_for(header: &str) -> Option<std::net::IpAddr> {
    let last = header.rsplit(',').next()?;
    let value = last.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"').to_owned())
    })?;
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    value.parse().ok().or_else(|| value.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

/// Whether a TLS client identity is required: when we terminate TLS, or when a proxy is
/// configured to pass certificates (then a request that bypasses the proxy has none, and is
/// refused).
fn tls_identity_required(state: &SoapState) -> bool {
    state.core.settings.tls.is_some() || state.core.settings.proxy.client_cert_header.is_some()
}

async fn handle(
    state: &Arc<SoapState>,
    req: Request<Incoming>,
    connection_peer: SocketAddr,
    direct_cert: Option<Arc<Certificate>>,
) -> Response<Body> {
    let (remote, tls_cert) = effective_client(state, &req, connection_peer, direct_cert);
    let version = match req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(ct) if ct.to_ascii_lowercase().starts_with("application/soap+xml") => SoapVersion::V12,
        _ => SoapVersion::V11,
    };
    // A source that keeps failing authentication waits longer and longer for its answers.
    let penalty = state.gate.penalty(remote.ip());
    if !penalty.is_zero() {
        tokio::time::sleep(penalty).await;
    }
    let Some(slot) = state.gate.enter() else {
        tracing::warn!(event = "busy", %remote, "concurrent request limit reached");
        let f = fault(
            FaultSide::Receiver,
            SubcodeNs::Coconnect,
            "Busy",
            "GW-BUSY",
            "too many requests in progress; retry later",
            None,
        );
        return fault_response(version, StatusCode::SERVICE_UNAVAILABLE, &f);
    };
    let partner = match state.credentials.authenticate(&state.core.settings, req.headers(), remote.ip()).await {
        Ok(p) => {
            state.gate.record_success(remote.ip());
            p
        }
        Err(AuthFailure::SourceAddress) => {
            tracing::warn!(event = "ip_refused", %remote, "source address not allowed for the partner");
            audit(state, "auth.source_refused", None, remote, None, "source address not allowed for the partner").await;
            return fault_response(
                version,
                StatusCode::FORBIDDEN,
                &fault(
                    FaultSide::Sender,
                    SubcodeNs::Coconnect,
                    "Forbidden",
                    "AUTH-SOURCE-ADDRESS",
                    "source address not allowed",
                    None,
                ),
            );
        }
        Err(failure) => {
            state.gate.record_failure(remote.ip());
            tracing::warn!(event = "auth_refused", %remote, code = failure.code(), "HTTP Basic authentication failed");
            audit(state, "auth.failed", None, remote, None, &format!("{failure:?}")).await;
            let mut r = fault_response(
                version,
                StatusCode::UNAUTHORIZED,
                &fault(
                    FaultSide::Sender,
                    SubcodeNs::Wsse,
                    "FailedAuthentication",
                    failure.code(),
                    "authentication failed",
                    None,
                ),
            );
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Basic realm=\"coconnect\""));
            return r;
        }
    };
    if tls_identity_required(state) && !tls_cert.as_deref().is_some_and(|c| partner.tls_identity_matches(c)) {
        let presented = tls_cert.as_deref().map(|c| c.subject.clone()).unwrap_or_else(|| "none".into());
        tracing::warn!(event = "tls_mismatch", %remote, partner = %partner.party, %presented, "TLS client certificate is not the partner's");
        let reason = format!("TLS client certificate {presented} is not {}'s", partner.party);
        audit(state, "auth.tls_mismatch", Some(&partner.party), remote, None, &reason).await;
        let f = fault(
            FaultSide::Sender,
            SubcodeNs::Wsse,
            "FailedAuthentication",
            "AUTH-TLS-MISMATCH",
            "TLS client certificate does not belong to the authenticated partner",
            None,
        );
        return fault_response(version, StatusCode::FORBIDDEN, &f);
    }
    if !state.gate.allow(&partner.party, partner.requests_per_second) {
        tracing::warn!(event = "rate_limited", %remote, partner = %partner.party, "partner over its request rate");
        audit(state, "limit.rate", Some(&partner.party), remote, None, "request rate exceeded").await;
        let f = fault(
            FaultSide::Receiver,
            SubcodeNs::Coconnect,
            "RateLimited",
            "MSG-RATE-LIMIT",
            "request rate exceeded; retry later",
            None,
        );
        return fault_response(version, StatusCode::TOO_MANY_REQUESTS, &f);
    }
    let body_timeout = state.core.settings.limits.body_read_timeout.std();
    let bytes = match read_body_within(req, partner.max_message_bytes, body_timeout).await {
        Ok(b) => b,
        Err(BodyError::Timeout) => {
            tracing::warn!(event = "body_timeout", %remote, partner = %partner.party, "request body not received in time");
            audit(state, "limit.body_timeout", Some(&partner.party), remote, None, "request body not received in time")
                .await;
            let f = fault(
                FaultSide::Sender,
                SubcodeNs::Coconnect,
                "Timeout",
                "MSG-READ-TIMEOUT",
                "request body not received in time",
                None,
            );
            return fault_response(version, StatusCode::REQUEST_TIMEOUT, &f);
        }
        Err(BodyError::TooLarge) => {
            tracing::warn!(event = "too_large", %remote, partner = %partner.party, "request body over the limit");
            audit(state, "limit.too_large", Some(&partner.party), remote, None, "request body over the limit").await;
            return fault_response(
                version,
                StatusCode::PAYLOAD_TOO_LARGE,
                &fault(
                    FaultSide::Sender,
                    SubcodeNs::Coconnect,
                    "TooLarge",
                    "MSG-TOO-LARGE",
                    "message over the size limit",
                    None,
                ),
            );
        }
        Err(BodyError::Io(e)) => {
            tracing::info!(%remote, error = %e, "request body could not be read");
            return fault_response(
                version,
                StatusCode::BAD_REQUEST,
                &fault(
                    FaultSide::Sender,
                    SubcodeNs::Coconnect,
                    "BadRequest",
                    "MSG-READ",
                    "request body could not be read",
                    None,
                ),
            );
        }
    };
    // From here on the request runs to its end even if its connection is cut (the client gone,
    // or the shutdown grace over): stopped halfway, its signature could stay remembered as seen
    // without its receipt, and the partner's retry of the same bytes would be refused as a
    // replay. Shutdown waits for these tasks; the request slot is held until the end.
    let processing = {
        let (state, partner) = (state.clone(), partner.clone());
        state.processing.clone().spawn(async move {
            let _slot = slot;
            process(&state, &partner, bytes, remote).await
        })
    };
    match processing.await {
        Ok(Ok((version, ack))) => response(StatusCode::OK, version.content_type(), ack),
        Ok(Err(f)) => fault_response(version, StatusCode::INTERNAL_SERVER_ERROR, &f),
        Err(e) => fault_response(
            version,
            StatusCode::INTERNAL_SERVER_ERROR,
            &internal_fault(&format!("request task failed: {e}")),
        ),
    }
}

/// Everything after the body is read. `Ok` carries the acknowledgement bytes (new or the one
/// stored for an earlier copy of the same message).
async fn process(
    state: &Arc<SoapState>,
    partner: &Arc<Partner>,
    bytes: Bytes,
    remote: SocketAddr,
) -> Result<(SoapVersion, Vec<u8>), Fault> {
    let now = state.core.clock.now();
    let verified = match verify(state, partner, bytes.clone(), now).await {
        Ok(v) => v,
        Err(e) if e.is_internal() => {
            tracing::error!(event = "security_internal", partner = %partner.party, code = e.code(), error = %e, "WS-Security processing failed on our side");
            audit(state, "security.internal", Some(&partner.party), remote, None, &format!("{}: {e}", e.code())).await;
            return Err(security_fault(&e));
        }
        Err(e) => {
            tracing::warn!(event = "security_refused", partner = %partner.party, code = e.code(), error = %e, "WS-Security check failed");
            audit(state, "security.refused", Some(&partner.party), remote, None, &format!("{}: {e}", e.code())).await;
            return Err(security_fault(&e));
        }
    };
    let version = verified.version();
    // Kept until the Timestamp can no longer be accepted (Expires plus the allowed skew).
    let keep_until = verified.expires() + state.core.settings.security.clock_skew.chrono();
    let replay_key = format!("{}:{}", partner.party, verified.replay_key());
    let fresh = inbound::remember_signature(&state.core.store, &replay_key, keep_until, now).await.map_err(|e| {
        tracing::error!(error = %e, "replay cache unavailable");
        internal_fault("store unavailable")
    })?;
    if !fresh {
        tracing::warn!(event = "replay_refused", partner = %partner.party, "replayed message");
        audit(state, "security.replay", Some(&partner.party), remote, None, "replayed message").await;
        return Err(security_fault(&SecurityError::Replay));
    }
    let (op_ns, op_name) = verified.operation();
    let Some(operation) = Operation::from_request_element(op_ns, op_name) else {
        return Err(fault(
            FaultSide::Sender,
            SubcodeNs::Coconnect,
            "UnknownOperation",
            "MSG-UNKNOWN-OPERATION",
            format!("{{{op_ns}}}{op_name} is not an operation of this service"),
            Some(format!("/Envelope/Body/{op_name}")),
        ));
    };
    let body_child = verified.body_child().to_vec();
    let received_digest = base64::engine::general_purpose::STANDARD.encode(openssl::sha::sha256(&bytes));
    let header = match MessageHeader::read(&body_child) {
        Ok(h) => h,
        Err(errors) if operation == Operation::GetCo => return Err(first_error_fault(&errors)),
        Err(errors) => {
            // Without a usable message ID there is nothing to key idempotency on: answer, store nothing.
            let ack = ack_for(state, partner, "", &received_digest, errors, now);
            return sign_ack(state, partner, version, &ack, now).await.map(|a| (version, a));
        }
    };
    if header.sender != partner.party {
        tracing::warn!(event = "party_mismatch", partner = %partner.party, sender = %header.sender, "message header sender is not the authenticated partner");
        let reason = format!("message header sender {} is not the authenticated partner", header.sender);
        audit(
            state,
            "authorization.refused",
            Some(&partner.party),
            remote,
            Some(&header.message_id.to_string()),
            &reason,
        )
        .await;
        return Err(fault(
            FaultSide::Sender,
            SubcodeNs::Wsse,
            "FailedAuthentication",
            "AUTH-PARTY-MISMATCH",
            "sender party does not match the authenticated partner",
            Some(format!("/{op_name}/MessageHeader/SenderPartyID")),
        ));
    }
    if operation == Operation::GetCo {
        return lookup(state, partner, &header, &verified, remote, now).await.map(|wire| (version, wire));
    }
    let message_id = header.message_id.to_string();
    let body_sha256 = sha256_hex(&body_child);
    // The answer to a message ID already received: the original acknowledgement for a retry
    // of the same body, MSG-ID-REUSED for anything else.
    let (id, digest, body_digest) = (&message_id, &received_digest, &body_sha256);
    let answer_earlier = |previous: inbound::ReceivedMessage| async move {
        if previous.body_sha256 == *body_digest {
            tracing::info!(partner = %partner.party, message_id = %id, "retry of a received message: original acknowledgement returned");
            return Ok((version, previous.ack_wire));
        }
        let errors = vec![AckError::new(
            "MSG-ID-REUSED",
            "this message ID was already used for a different message",
            format!("/{op_name}/MessageHeader/MessageID"),
        )];
        let ack = ack_for(state, partner, id, digest, errors, now);
        sign_ack(state, partner, version, &ack, now).await.map(|a| (version, a))
    };
    match inbound::find(&state.core.store, &partner.party, &message_id).await {
        Ok(Some(previous)) => return answer_earlier(previous).await,
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, "store unavailable");
            return Err(internal_fault("store unavailable"));
        }
    }

    let decision = flows::inbound::check(&state.core, partner, operation, &header, &verified).await.map_err(|e| {
        tracing::error!(error = %e, "store unavailable");
        internal_fault("store unavailable")
    })?;
    let accepted = decision.errors.is_empty();
    if !accepted {
        let codes: Vec<&str> = decision.errors.iter().map(|e| e.code.as_str()).collect();
        tracing::info!(event = "request_rejected", partner = %partner.party, %message_id, operation = operation.name(), ?codes, "request answered Rejected");
    }
    let ack = ack_for(state, partner, &message_id, &received_digest, decision.errors, now);
    let ack_wire = sign_ack(state, partner, version, &ack, now).await?;
    let receipt = Receipt {
        partner: &partner.party,
        message_id: &message_id,
        operation: operation.name(),
        body_sha256: &body_sha256,
        accepted,
        request_wire: &bytes,
        ack_wire: &ack_wire,
    };
    let stored = async {
        let mut tx = match inbound::open(&state.core.store, &receipt, now).await? {
            Opened::New(tx) => tx,
            Opened::AlreadyReceived(previous) => return Ok::<_, FlowError>((Some(previous), None)),
        };
        let certificate = if accepted {
            flows::inbound::apply(&mut tx, &state.core, partner, &decision.effect, &message_id, now).await?
        } else {
            None
        };
        inbound::close(tx, &receipt, certificate.as_deref(), now).await?;
        Ok((None, certificate))
    };
    match stored.await {
        Ok((None, certificate)) => {
            tracing::info!(event = "received", partner = %partner.party, %message_id, operation = operation.name(), accepted, ?certificate, "request acknowledged");
            Ok((version, ack_wire))
        }
        // A copy that was stored while this one was being checked.
        Ok((Some(previous), _)) => answer_earlier(previous).await,
        Err(e) => {
            // A refusal here means the certificate changed between the check and the write (a
            // concurrent message): nothing was stored, and the partner's retry gets the answer.
            tracing::error!(error = %e, %message_id, "receipt could not be stored");
            Err(internal_fault("the message could not be stored"))
        }
    }
}

/// A GetCO that cannot be answered with a GetCOResponse: a Sender fault with its first error.
fn first_error_fault(errors: &[AckError]) -> Fault {
    let first = errors.first();
    fault(
        FaultSide::Sender,
        SubcodeNs::Coconnect,
        "InvalidRequest",
        first.map_or("MSG-MALFORMED", |e| e.code.as_str()),
        first.map_or_else(|| "invalid look-up".to_owned(), |e| e.description.clone()),
        first.map(|e| e.path.clone()),
    )
}

/// GetCO (Annex III): the CO for the asking partner, or the same `NotFound` for anything else;
/// signed, and encrypted under the partner's `sign-encrypt` profile.
async fn lookup(
    state: &Arc<SoapState>,
    partner: &Arc<Partner>,
    header: &MessageHeader,
    verified: &VerifiedMessage,
    remote: SocketAddr,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<u8>, Fault> {
    let op_name = Operation::GetCo.request_element();
    let request = Lookup::read(verified.body_child()).map_err(|errors| first_error_fault(&errors))?;
    if header.receiver != state.core.settings.party {
        return Err(fault(
            FaultSide::Sender,
            SubcodeNs::Coconnect,
            "InvalidRequest",
            "MSG-WRONG-RECEIVER",
            "the receiver is not this gateway",
            Some(format!("/{op_name}/MessageHeader/ReceiverPartyID")),
        ));
    }
    let result = flows::lookup::find(&state.core, partner, &request).await.map_err(|e| {
        tracing::error!(error = %e, "store unavailable");
        internal_fault("store unavailable")
    })?;
    let message_id = header.message_id.to_string();
    let found = matches!(result, LookupResult::Found { .. });
    tracing::info!(event = "lookup", partner = %partner.party, reference = %request.document.reference, found, "GetCO answered");
    if !found {
        let reason = format!("GetCO {} {}: not found", request.document.issuer, request.document.reference);
        audit(state, "lookup.not_found", Some(&partner.party), remote, Some(&message_id), &reason).await;
    }
    let body = flows::lookup::response_body(&state.core.settings, partner, &message_id, &result, now);
    secure_response(state, verified.version(), body, partner.clone(), partner.security, now).await
}

fn ack_for(
    state: &SoapState,
    partner: &Partner,
    received_id: &str,
    digest: &str,
    errors: Vec<AckError>,
    now: chrono::DateTime<Utc>,
) -> Acknowledgement {
    Acknowledgement {
        header: MessageHeader::new(&state.core.settings.party, &partner.party, Uuid::new_v4(), now),
        received_message_id: received_id.to_owned(),
        receipt: now,
        received_digest: digest.to_owned(),
        status: if errors.is_empty() { AckStatus::Accepted } else { AckStatus::Rejected },
        errors,
    }
}

/// Signs an acknowledgement (not encrypted, framework 4.4.3).
async fn sign_ack(
    state: &Arc<SoapState>,
    partner: &Arc<Partner>,
    version: SoapVersion,
    ack: &Acknowledgement,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<u8>, Fault> {
    secure_response(state, version, ack.to_xml(), partner.clone(), partner.security.signed_only(), now).await
}

/// Secures a response body to `partner` with `profile` on a blocking thread: signed, and
/// encrypted to the partner when the profile encrypts.
async fn secure_response(
    state: &Arc<SoapState>,
    version: SoapVersion,
    body_xml: String,
    partner: Arc<Partner>,
    profile: crate::wssec::Profile,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<u8>, Fault> {
    let state = state.clone();
    let ttl = state.core.settings.security.timestamp_ttl.chrono();
    crate::wssec::on_blocking_thread(move || {
        secure(&OutboundMessage {
            version,
            body_xml: &body_xml,
            signer: &state.core.settings.signing,
            encrypt_for: profile.encryption.and(partner.encrypt_to()),
            profile: &profile,
            now,
            ttl,
        })
    })
    .await
    .map_err(|e| internal_fault(&format!("the response could not be secured: {e}")))
}

/// WS-Security processing with the partner's profile, on a blocking thread.
async fn verify(
    state: &Arc<SoapState>,
    partner: &Arc<Partner>,
    bytes: Bytes,
    now: chrono::DateTime<Utc>,
) -> Result<VerifiedMessage, SecurityError> {
    let state = state.clone();
    let partner = partner.clone();
    crate::wssec::on_blocking_thread(move || {
        let s = &state.core.settings;
        crate::wssec::inbound::process(&bytes, &s.inbound_policy(&partner, Expect::Request, now))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_failures_are_receiver_faults_a_sender_retries() {
        for e in [
            SecurityError::KeyMaterial("our decryption key could not be loaded".into()),
            SecurityError::Build("template".into()),
            SecurityError::Internal("security task failed".into()),
        ] {
            let f = security_fault(&e);
            assert_eq!((f.side, f.code.as_str()), (FaultSide::Receiver, "GW-INTERNAL"), "{e}");
            assert!(!f.reason.contains("template") && !f.reason.contains("key"), "{}", f.reason);
            let back = crate::soap::fault::read_fault(f.to_envelope(SoapVersion::V11).as_bytes()).expect("fault");
            assert!(!back.sender_at_fault, "a sender must retry our failure");
        }
        let peer = security_fault(&SecurityError::UnsupportedToken("X509PKIPathv1".into()));
        assert_eq!((peer.side, peer.code.as_str()), (FaultSide::Sender, "WSS-UNSUPPORTED-TOKEN"));
        assert!(!peer.reason.contains("X509PKIPathv1"));
        let mu = security_fault(&SecurityError::MustUnderstand(vec![("urn:x".into(), "Ext".into())]));
        assert_eq!(mu.not_understood, vec![("urn:x".to_owned(), "Ext".to_owned())]);
    }

    #[test]
    fn forwarded_header_gives_the_last_hop() {
        assert_eq!(forwarded_for("for=192.0.2.60;proto=https"), "192.0.2.60".parse().ok());
        assert_eq!(forwarded_for("for=10.0.0.1, for=\"198.51.100.17:4711\""), "198.51.100.17".parse().ok());
        assert_eq!(forwarded_for("For=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17".parse().ok());
        assert_eq!(forwarded_for("by=203.0.113.43"), None);
        assert_eq!(forwarded_for("for=unknown"), None);
    }
}
