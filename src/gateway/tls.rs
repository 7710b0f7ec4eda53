//! Mutual TLS for the partner-facing listener (OpenSSL): our server certificate, and a client
//! certificate required from every caller, verified against the configured partner CAs only
//! (never the system bundle). Which partner the certificate belongs to is decided per request,
//! together with the Basic user and the signing certificate (see `soap_endpoint`).

use std::pin::Pin;
use std::sync::Arc;

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::config::TlsSettings;
use crate::wssec::material::Certificate;

#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct TlsError(String);

fn err(e: impl std::fmt::Display) -> TlsError {
    TlsError(e.to_string())
}

/// Builds the acceptor once at start.
pub fn acceptor(tls: &TlsSettings) -> Result<SslAcceptor, TlsError> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(err)?;
    let cert = X509::from_pem(&tls.cert_pem).map_err(err)?;
    let key = PKey::private_key_from_pem(&tls.key_pem).map_err(err)?;
    b.set_certificate(&cert).map_err(err)?;
    b.set_private_key(&key).map_err(err)?;
    b.check_private_key().map_err(err)?;
    for ca in &tls.client_cas {
        b.cert_store_mut().add_cert(ca.x509()).map_err(err)?;
        b.add_client_ca(&ca.x509()).map_err(err)?;
    }
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    // Session resumption (nginx egress and Java clients resume by default) needs a session id
    // context once client certificates are verified; OpenSSL refuses every resumption without
    // one. It names this trust configuration, so a session is only ever resumed under the
    // client CAs and server certificate it was verified with. The partner identity is still
    // checked on every request, against the certificate the session carries.
    b.set_session_id_context(&session_id_context(tls)).map_err(err)?;
    Ok(b.build())
}

/// SHA-256 of our certificate and the client CAs: 32 bytes, OpenSSL's maximum.
fn session_id_context(tls: &TlsSettings) -> [u8; 32] {
    let mut h = openssl::sha::Sha256::new();
    h.update(b"coconnect soap listener\0");
    h.update(&tls.cert_pem);
    for ca in &tls.client_cas {
        h.update(&ca.der);
    }
    h.finish()
}

/// Completes the handshake over `tcp` (the connection's socket, possibly wrapped); returns the
/// stream and the verified client certificate.
pub async fn accept<S>(acceptor: &SslAcceptor, tcp: S) -> Result<(SslStream<S>, Arc<Certificate>), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ssl = Ssl::new(acceptor.context()).map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream).accept().await.map_err(|e| e.to_string())?;
    let peer = stream.ssl().peer_certificate().ok_or("no client certificate")?;
    let der = peer.to_der().map_err(|e| e.to_string())?;
    // A partner's client certificate is the same on each connection: parsed once.
    let cert = Certificate::from_der_cached(&der).map_err(|e| e.to_string())?;
    Ok((stream, Arc::new(cert)))
}
