//! `POST /soap/v1` over HTTP: the partner-facing listener's routes, and the ordered gate in
//! front of the receive pipeline.
//!
//! Order: the delay for a source that keeps failing authentication → a request slot → source
//! address, Basic user and password (`auth`) → the TLS client identity → the partner's request
//! rate → the body, within its size and time (all before the body is read, but the last) →
//! `receive::process` in a task of [`SoapState::processing`], so that a cut connection does not
//! stop it halfway. Every refusal is a [`Refusal`]: its fault, HTTP status and audit record come
//! from that one type.
//!
//! Must never: read a body before its sender is authenticated, or do the receive pipeline's
//! work itself.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};

use super::auth::AuthFailure;
use super::SoapState;
use crate::config::Partner;
use crate::http::{read_body_within, response, Body, BodyError};
use crate::refusal::{Credentials, Refusal};
use crate::soap;
use crate::soap::fault::Fault;
use crate::wssec::material::Certificate;
use crate::wssec::SoapVersion;

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
        (&Method::GET, "/soap/v1") if wsdl_query(&query).is_some() => match wsdl_query(&query).flatten() {
            // The default profile, or one partner's (`?wsdl&partner=XX`), as WS-SecurityPolicy.
            None => response(
                StatusCode::OK,
                "text/xml; charset=utf-8",
                soap::wsdl::wsdl_for(&state.core.settings.public_url, &crate::wssec::Profile::strict(true)),
            ),
            Some(party) => partner_wsdl(state, &req, &party, remote, client_cert).await,
        },
        (&Method::GET, "/soap/v1") => response(StatusCode::NOT_FOUND, "text/plain", "not found; the WSDL is at ?wsdl"),
        (&Method::POST, "/soap/v1") => handle(state, req, remote, client_cert).await,
        (&Method::GET, "/healthz") => response(StatusCode::OK, "text/plain", "ok"),
        (&Method::GET, "/readyz") => crate::http::readiness(&state.core.store).await,
        // The only other known paths are the schemas.
        (&Method::GET, _) => match schema {
            Some(xsd) => response(StatusCode::OK, "text/xml; charset=utf-8", xsd),
            None => response(StatusCode::NOT_FOUND, "text/plain", "not found"),
        },
        _ => crate::http::method_not_allowed(allow),
    }
}

/// A partner's own profile as WS-SecurityPolicy, for that partner only: its source address,
/// Basic credentials (and TLS identity, where required) must be those of the partner named.
/// Any other caller, and a name that is no partner, get the same 401: one partner does not
/// learn another's profile, nor which partners exist.
async fn partner_wsdl(
    state: &Arc<SoapState>,
    req: &Request<Incoming>,
    party: &str,
    connection_peer: SocketAddr,
    direct_cert: Option<Arc<Certificate>>,
) -> Response<Body> {
    let (remote, tls_cert) =
        super::proxy::effective_client(&state.core.settings.proxy, req, connection_peer, direct_cert);
    let penalty = state.gate.penalty(remote.ip());
    if !penalty.is_zero() {
        tokio::time::sleep(penalty).await;
    }
    let authenticated = match state.credentials.authenticate(&state.core.settings, req.headers(), remote.ip()).await {
        Ok(partner) => {
            state.gate.record_success(remote.ip());
            Some(partner)
        }
        Err(AuthFailure::SourceAddress) => None,
        Err(_) => {
            state.gate.record_failure(remote.ip());
            None
        }
    };
    let tls_ok =
        |p: &Partner| !tls_identity_required(state) || tls_cert.as_deref().is_some_and(|c| p.tls_identity_matches(c));
    match authenticated {
        Some(partner) if partner.party == party && tls_ok(&partner) => response(
            StatusCode::OK,
            "text/xml; charset=utf-8",
            soap::wsdl::wsdl_for(&state.core.settings.public_url, &partner.security),
        ),
        _ => {
            let mut r = response(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "a partner's own WSDL needs that partner's credentials (the default one is at ?wsdl)",
            );
            r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"coconnect\""));
            r
        }
    }
}

/// `Some(partner)` for a WSDL query (`wsdl`, or `wsdl&partner=XX`, in any order and case of
/// `wsdl`), `None` for any other query.
fn wsdl_query(query: &str) -> Option<Option<String>> {
    let mut wsdl = false;
    let mut partner = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key.eq_ignore_ascii_case("wsdl") && value.is_empty() {
            wsdl = true;
        } else if key == "partner" {
            partner = Some(value.into_owned());
        } else {
            return None;
        }
    }
    wsdl.then_some(partner)
}

/// The answer to a refusal: its SOAP Fault in the request's version, with its HTTP status (and
/// the Basic challenge on a 401).
fn refusal_response(version: SoapVersion, refusal: &Refusal) -> Response<Body> {
    let status = StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = response(status, version.content_type(), Fault::from_refusal(refusal).to_envelope(version));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"coconnect\""));
    }
    r
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
    let (remote, tls_cert) =
        super::proxy::effective_client(&state.core.settings.proxy, &req, connection_peer, direct_cert);
    let version = match req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        Some(ct) if ct.to_ascii_lowercase().starts_with("application/soap+xml") => SoapVersion::V12,
        _ => SoapVersion::V11,
    };
    // A source that keeps failing authentication waits longer and longer for its answers.
    let penalty = state.gate.penalty(remote.ip());
    if !penalty.is_zero() {
        tokio::time::sleep(penalty).await;
    }
    let refuse = |refusal: Refusal, partner: Option<Arc<Partner>>| async move {
        crate::receive::refused(&state.core, &refusal, partner.as_deref().map(|p| p.party.as_str()), remote, None)
            .await;
        refusal_response(version, &refusal)
    };
    let Some(slot) = state.gate.enter() else {
        return refuse(Refusal::Busy, None).await;
    };
    let partner = match state.credentials.authenticate(&state.core.settings, req.headers(), remote.ip()).await {
        Ok(p) => {
            state.gate.record_success(remote.ip());
            p
        }
        Err(AuthFailure::SourceAddress) => return refuse(Refusal::SourceAddress, None).await,
        Err(failure) => {
            state.gate.record_failure(remote.ip());
            let credentials = match failure {
                AuthFailure::Missing => Credentials::Missing,
                AuthFailure::Malformed => Credentials::Malformed,
                AuthFailure::UnknownUser => Credentials::UnknownUser,
                AuthFailure::WrongPassword | AuthFailure::SourceAddress => Credentials::WrongPassword,
            };
            return refuse(Refusal::Authentication(credentials), None).await;
        }
    };
    if tls_identity_required(state) && !tls_cert.as_deref().is_some_and(|c| partner.tls_identity_matches(c)) {
        let presented = tls_cert.as_deref().map(|c| c.subject.clone()).unwrap_or_else(|| "none".into());
        let refusal = Refusal::TlsMismatch { presented, partner: partner.party.clone() };
        return refuse(refusal, Some(partner)).await;
    }
    if !state.gate.allow(&partner.party, partner.requests_per_second) {
        return refuse(Refusal::RateLimited, Some(partner)).await;
    }
    let body_timeout = state.core.settings.limits.body_read_timeout.std();
    let bytes = match read_body_within(req, partner.max_message_bytes, body_timeout).await {
        Ok(b) => b,
        Err(BodyError::Timeout) => return refuse(Refusal::BodyTimeout, Some(partner)).await,
        Err(BodyError::TooLarge) => return refuse(Refusal::TooLarge, Some(partner)).await,
        Err(BodyError::Io(e)) => return refuse(Refusal::BodyUnreadable(e), Some(partner)).await,
    };
    // From here on the request runs to its end even if its connection is cut (the client gone,
    // or the shutdown grace over): stopped halfway, its signature could stay remembered as seen
    // without its receipt, and the partner's retry of the same bytes would be refused as a
    // replay. Shutdown waits for these tasks; the request slot is held until the end.
    let processing = {
        let core = state.core.clone();
        state.processing.clone().spawn(async move {
            let _slot = slot;
            crate::receive::process(&core, &partner, bytes, remote).await
        })
    };
    match processing.await {
        Ok(Ok(answer)) => response(StatusCode::OK, answer.version.content_type(), answer.wire),
        Ok(Err(refusal)) => refusal_response(version, &refusal),
        Err(e) => {
            let refusal = Refusal::Internal(format!("request task failed: {e}"));
            crate::receive::refused(&state.core, &refusal, None, remote, None).await;
            refusal_response(version, &refusal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::FaultSide;
    use crate::wssec::SecurityError;

    #[test]
    fn our_own_failures_are_receiver_faults_a_sender_retries() {
        for e in [
            SecurityError::KeyMaterial("our decryption key could not be loaded".into()),
            SecurityError::Build("template".into()),
            SecurityError::Internal("security task failed".into()),
        ] {
            let f = Fault::from_refusal(&Refusal::from(e));
            assert_eq!((f.side, f.code.as_str()), (FaultSide::Receiver, "GW-INTERNAL"));
            assert!(!f.reason.contains("template") && !f.reason.contains("key"), "{}", f.reason);
            let back = crate::soap::fault::read_fault(f.to_envelope(SoapVersion::V11).as_bytes()).expect("fault");
            assert!(!back.sender_at_fault, "a sender must retry our failure");
        }
        let peer = Fault::from_refusal(&Refusal::from(SecurityError::UnsupportedToken("X509PKIPathv1".into())));
        assert_eq!((peer.side, peer.code.as_str()), (FaultSide::Sender, "WSS-UNSUPPORTED-TOKEN"));
        assert!(!peer.reason.contains("X509PKIPathv1"));
        let mu =
            Fault::from_refusal(&Refusal::from(SecurityError::MustUnderstand(vec![("urn:x".into(), "Ext".into())])));
        assert_eq!(mu.not_understood, vec![("urn:x".to_owned(), "Ext".to_owned())]);
    }

    #[test]
    fn every_refusal_answers_with_its_status_and_code() {
        for refusal in Refusal::every_kind() {
            let r = refusal_response(SoapVersion::V12, &refusal);
            assert_eq!(r.status().as_u16(), refusal.http_status(), "{refusal:?}");
            assert_eq!(r.headers().contains_key(WWW_AUTHENTICATE), refusal.http_status() == 401, "{refusal:?}");
        }
    }
}
