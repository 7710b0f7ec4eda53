//! The HTTP client that calls partners: Basic credentials, SOAPAction, a timeout; over plain
//! HTTP (to a local TLS-originating proxy) or over mutual TLS with our `[tls]` certificate,
//! verifying the partner's server certificate against its configured CAs only, and its host
//! name. No retries here: the outbox owns them.

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
    connectors: Mutex<HashMap<String, Arc<SslConnector>>>,
}

impl PartnerClient {
    pub fn new(timeout: Duration, tls: Option<TlsSettings>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        PartnerClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            tls,
            connectors: Mutex::default(),
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
                self.send_tls(partner, &host, port, request).await?
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

    /// One request over a fresh mutual-TLS connection.
    async fn send_tls(
        &self,
        partner: &Partner,
        host: &str,
        port: u16,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let connector = self.connector(partner)?;
        let tcp = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("connect: {e}"))?;
        let ssl = connector.configure().and_then(|c| c.into_ssl(host)).map_err(|e| format!("TLS: {e}"))?;
        let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| format!("TLS: {e}"))?;
        std::pin::Pin::new(&mut stream).connect().await.map_err(|e| format!("TLS handshake: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))
    }

    fn connector(&self, partner: &Partner) -> Result<Arc<SslConnector>, String> {
        if let Some(c) = self.connectors.lock().ok().and_then(|m| m.get(&partner.party).cloned()) {
            return Ok(c);
        }
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
        let connector = Arc::new(b.build());
        if let Ok(mut m) = self.connectors.lock() {
            m.insert(partner.party.clone(), connector.clone());
        }
        Ok(connector)
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
