//! The HTTP client that calls partners: Basic credentials, SOAPAction, a timeout; over plain
//! HTTP (to a local TLS-originating proxy) or over mutual TLS with our `[tls]` certificate,
//! verifying the partner's server certificate against its configured CAs only, and its host
//! name. Connections are kept alive and reused (one pool per partner for TLS, since its trust
//! differs), so a partner's handshake is paid once, not per message. No retries here: the
//! outbox owns them (the pool itself only resends a request its reused connection closed
//! before any byte of it was written).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

use crate::config::{Partner, TlsSettings};
use crate::message::Operation;
use crate::wssec::SoapVersion;

/// Largest response accepted from a partner.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

pub struct PartnerClient {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
    tls: Option<TlsSettings>,
    /// Per partner: the pooled client over its mutual-TLS connector.
    tls_clients: Mutex<HashMap<String, Client<TlsConnector, Full<Bytes>>>>,
}

impl PartnerClient {
    pub fn new(timeout: Duration, tls: Option<TlsSettings>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        PartnerClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            tls,
            tls_clients: Mutex::default(),
        }
    }

    /// POSTs `wire` to the partner; returns the HTTP status and body.
    pub async fn post(
        &self,
        partner: &Partner,
        operation: Operation,
        version: SoapVersion,
        wire: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        self.post_to(partner, &partner.endpoint, operation, version, wire).await
    }

    /// GETs `url` (the partner's WSDL) with the partner's TLS settings; the status and body.
    pub async fn get(&self, partner: &Partner, url: &str) -> Result<(u16, Vec<u8>), String> {
        self.exchange(partner, url, Request::get(url), Bytes::new()).await
    }

    /// [`Self::post`] to `endpoint` instead of the partner's configured one (`coconnect probe`).
    pub async fn post_to(
        &self,
        partner: &Partner,
        endpoint: &str,
        operation: Operation,
        version: SoapVersion,
        wire: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", partner.outbound_username, partner.outbound_password));
        let mut builder = Request::post(endpoint).header(AUTHORIZATION, format!("Basic {credentials}"));
        builder = match version {
            SoapVersion::V11 => builder
                .header(CONTENT_TYPE, version.content_type())
                .header("SOAPAction", format!("\"{}\"", operation.soap_action())),
            SoapVersion::V12 => builder
                .header(CONTENT_TYPE, format!("{}; action=\"{}\"", version.content_type(), operation.soap_action())),
        };
        self.exchange(partner, endpoint, builder, Bytes::from(wire)).await
    }

    /// One request to `endpoint` over HTTP, or mutual TLS for `https://`, within the timeout.
    async fn exchange(
        &self,
        partner: &Partner,
        endpoint: &str,
        builder: hyper::http::request::Builder,
        wire: Bytes,
    ) -> Result<(u16, Vec<u8>), String> {
        let url = url::Url::parse(endpoint).map_err(|e| format!("endpoint: {e}"))?;
        let exchange = async {
            let response = if url.scheme() == "https" {
                let host = url.host_str().ok_or("endpoint has no host")?.to_owned();
                let port = url.port_or_known_default().unwrap_or(443);
                let request = builder
                    .header(HOST, format!("{host}:{port}"))
                    .body(Full::new(wire))
                    .map_err(|e| format!("bad request: {e}"))?;
                let client = self.tls_client(partner)?;
                client.request(request).await.map_err(|e| format!("{e}: {}", source_chain(&e)))?
            } else {
                let request = builder.body(Full::new(wire)).map_err(|e| format!("bad request: {e}"))?;
                self.client.request(request).await.map_err(|e| format!("{e}: {}", source_chain(&e)))?
            };
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading response: {e}"))?
                .to_bytes();
            Ok((status, body.to_vec()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }

    /// The pooled mutual-TLS client of `partner`.
    fn tls_client(&self, partner: &Partner) -> Result<Client<TlsConnector, Full<Bytes>>, String> {
        if let Some(c) = self.tls_clients.lock().ok().and_then(|m| m.get(&partner.party).cloned()) {
            return Ok(c);
        }
        let connector = TlsConnector { ssl: self.connector(partner)? };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        if let Ok(mut m) = self.tls_clients.lock() {
            m.insert(partner.party.clone(), client.clone());
        }
        Ok(client)
    }

    fn connector(&self, partner: &Partner) -> Result<Arc<SslConnector>, String> {
        let tls = self.tls.as_ref().ok_or("an https endpoint needs [tls]")?;
        let e = |e: openssl::error::ErrorStack| format!("TLS configuration: {e}");
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(e)?;
        let cert = X509::from_pem(&tls.cert_pem).map_err(e)?;
        let key = PKey::private_key_from_pem(&tls.key_pem).map_err(e)?;
        b.set_certificate(&cert).map_err(e)?;
        b.set_private_key(&key).map_err(e)?;
        // Only the partner's configured CAs: never the system bundle.
        let mut store = X509StoreBuilder::new().map_err(e)?;
        for ca in &partner.tls_server_cas {
            store.add_cert(ca.x509()).map_err(e)?;
        }
        b.set_verify_cert_store(store.build()).map_err(e)?;
        b.set_verify(SslVerifyMode::PEER);
        Ok(Arc::new(b.build()))
    }
}

/// Opens mutual-TLS connections to a partner for the pool: TCP, then the handshake with our
/// certificate, the partner's CAs and its host name checked.
#[derive(Clone)]
pub struct TlsConnector {
    ssl: Arc<SslConnector>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<hyper::Uri> for TlsConnector {
    type Response = TlsConnection;
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<TlsConnection, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let ssl = self.ssl.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("endpoint has no host")?.trim_matches(['[', ']']).to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp =
                tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect: {e}"))?;
            let ssl = ssl.configure().and_then(|c| c.into_ssl(&host)).map_err(|e| format!("TLS: {e}"))?;
            let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| format!("TLS: {e}"))?;
            std::pin::Pin::new(&mut stream).connect().await.map_err(|e| format!("TLS handshake: {e}"))?;
            Ok(TlsConnection(TokioIo::new(stream)))
        })
    }
}

/// One mutual-TLS connection, as the pool sees it.
pub struct TlsConnection(TokioIo<tokio_openssl::SslStream<tokio::net::TcpStream>>);

impl hyper_util::client::legacy::connect::Connection for TlsConnection {
    fn connected(&self) -> hyper_util::client::legacy::connect::Connected {
        hyper_util::client::legacy::connect::Connected::new()
    }
}

impl hyper::rt::Read for TlsConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}
