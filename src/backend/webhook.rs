//! A webhook subscriber: one event per HTTPS POST (plain HTTP only to this machine), signed with
//! HMAC-SHA256 so that the receiver can tell it came from us and was not replayed from long
//! ago, with the event ID as idempotency key so that it can drop a repeat:
//!
//! - `Content-Type: application/json`, the body the event's wire form (`super::feed`);
//! - `Idempotency-Key` and `X-Coconnect-Event-Id`: the event ID; `X-Coconnect-Sequence`: its seq;
//! - `X-Coconnect-Timestamp`: Unix seconds of this attempt;
//! - `X-Coconnect-Signature: sha256=<hex>`: HMAC-SHA256 with the shared secret over
//!   `<timestamp>.<body>` (the timestamp, a dot, the exact body bytes).
//!
//! Any 2xx answer confirms the event; anything else (or no answer within the timeout) is a
//! failure, retried by the worker. The server's certificate is verified against the configured
//! CA or the system's trust store, and its host name. One connection is kept and reused.
//!
//! Must never: send the secret, or follow a redirect (a 3xx is a failure).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::Request;
use hyper_util::rt::TokioIo;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

use crate::config::backend::Webhook;

/// Most of an answer's body read (and dropped): an answer is a status, not content.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The signature of `body` sent at `timestamp` (Unix seconds) with `secret`: lower-case hex of
/// HMAC-SHA256 over `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> Result<String, openssl::error::ErrorStack> {
    let key = PKey::hmac(secret)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.update(timestamp.to_string().as_bytes())?;
    signer.update(b".")?;
    signer.update(body)?;
    Ok(signer.sign_to_vec()?.iter().map(|b| format!("{b:02x}")).collect())
}

pub struct Client {
    target: Webhook,
    tls: Option<SslConnector>,
    connection: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(target: &Webhook) -> Result<Self, String> {
        let tls = match target.url.scheme() {
            "https" => Some(connector(target.ca_pem.as_deref()).map_err(|e| format!("TLS configuration: {e}"))?),
            _ => None,
        };
        Ok(Client { target: target.clone(), tls, connection: None })
    }

    /// POSTs one event; `Ok` once the receiver answered 2xx.
    pub async fn post(&mut self, event_id: &str, seq: i64, body: Vec<u8>, timeout: Duration) -> Result<(), String> {
        let timestamp = chrono::Utc::now().timestamp();
        let signature =
            signature(self.target.secret.as_bytes(), timestamp, &body).map_err(|e| format!("signing: {e}"))?;
        let body = Bytes::from(body);
        let result = tokio::time::timeout(timeout, async {
            // A kept connection the server closed meanwhile fails before any answer: try a fresh
            // one, once. An answer (whatever its status) is never sent again at once.
            let reused = self.connection.is_some();
            match self.send(event_id, seq, timestamp, &signature, body.clone()).await {
                Err(Failure::Connection(e)) if reused => {
                    tracing::debug!(error = %e, "webhook: kept connection failed; reconnecting");
                    self.connection = None;
                    self.send(event_id, seq, timestamp, &signature, body).await
                }
                other => other,
            }
        })
        .await;
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Failure::Connection(e) | Failure::Answer(e))) => Err(e),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        if outcome.is_err() {
            self.connection = None;
        }
        outcome
    }

    async fn send(
        &mut self,
        event_id: &str,
        seq: i64,
        timestamp: i64,
        signature: &str,
        body: Bytes,
    ) -> Result<(), Failure> {
        let url = &self.target.url;
        let (host, port) = host_and_port(url).map_err(Failure::Connection)?;
        if self.connection.as_ref().is_none_or(|c| c.is_closed()) {
            self.connection = Some(self.connect(&host, port).await.map_err(Failure::Connection)?);
        }
        let sender = self.connection.as_mut().ok_or(Failure::Connection("no connection".into()))?;
        sender.ready().await.map_err(|e| Failure::Connection(format!("connection: {e}")))?;
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let authority = url.host_str().unwrap_or_default();
        let request = Request::post(path)
            .header(HOST, if url.port().is_some() { format!("{authority}:{port}") } else { authority.to_owned() })
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("coconnect/", env!("CARGO_PKG_VERSION")))
            .header("Idempotency-Key", event_id)
            .header("X-Coconnect-Event-Id", event_id)
            .header("X-Coconnect-Sequence", seq.to_string())
            .header("X-Coconnect-Timestamp", timestamp.to_string())
            .header("X-Coconnect-Signature", format!("sha256={signature}"))
            .body(Full::new(body))
            .map_err(|e| Failure::Connection(format!("request: {e}")))?;
        // Sent on a connection that turned out closed: no answer came, so a retry is safe.
        let response = sender.send_request(request).await.map_err(|e| Failure::Connection(format!("HTTP: {e}")))?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await.map(|b| b.to_bytes());
        if status.is_success() {
            return Ok(());
        }
        let excerpt: String = answer
            .map(|b| String::from_utf8_lossy(&b).chars().filter(|c| !c.is_control()).take(200).collect())
            .unwrap_or_default();
        Err(Failure::Answer(format!(
            "HTTP {}{}",
            status.as_u16(),
            if excerpt.is_empty() { String::new() } else { format!(": {excerpt}") }
        )))
    }

    async fn connect(&self, host: &str, port: u16) -> Result<SendRequest<Full<Bytes>>, String> {
        let tcp =
            tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(connector) => {
                let ssl = connector.configure().and_then(|c| c.into_ssl(host)).map_err(|e| format!("TLS: {e}"))?;
                let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| format!("TLS: {e}"))?;
                std::pin::Pin::new(&mut stream).connect().await.map_err(|e| format!("TLS handshake: {e}"))?;
                handshake(stream).await
            }
            None => handshake(tcp).await,
        }
    }
}

/// Why a POST did not get a 2xx: no answer came (a retry on a fresh connection is safe), or
/// the receiver answered otherwise.
enum Failure {
    Connection(String),
    Answer(String),
}

/// The host to connect to (an IPv6 literal without its brackets) and the port.
fn host_and_port(url: &url::Url) -> Result<(String, u16), String> {
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("the URL has no host".into()),
    };
    Ok((host, url.port_or_known_default().unwrap_or(443)))
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Full<Bytes>>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// A TLS client that verifies the server against `ca_pem` only, or the system's trust store.
fn connector(ca_pem: Option<&[u8]>) -> Result<SslConnector, openssl::error::ErrorStack> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    match ca_pem {
        Some(pem) => {
            let mut store = X509StoreBuilder::new()?;
            for ca in X509::stack_from_pem(pem)? {
                store.add_cert(ca)?;
            }
            builder.set_verify_cert_store(store.build())?;
        }
        None => builder.set_default_verify_paths()?,
    }
    builder.set_verify(SslVerifyMode::PEER);
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac k
        let got = signature(b"k", 1_700_000_000, br#"{"a":1}"#).expect("sign");
        assert_eq!(got, "1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3");
        assert_ne!(got, signature(b"k", 1_700_000_001, br#"{"a":1}"#).expect("sign"), "the timestamp is signed");
    }
}
