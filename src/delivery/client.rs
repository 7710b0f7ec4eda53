//! The HTTP client that calls partners: Basic credentials, SOAPAction, a timeout. No retries
//! here: the outbox owns them.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::Partner;
use crate::soap::Operation;
use crate::wssec::SoapVersion;

/// Largest response accepted from a partner.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

pub struct PartnerClient {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl PartnerClient {
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        PartnerClient { client: Client::builder(TokioExecutor::new()).build(connector), timeout }
    }

    /// POSTs `wire` to the partner; returns the HTTP status and body.
    pub async fn post(
        &self,
        partner: &Partner,
        operation: Operation,
        version: SoapVersion,
        wire: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", partner.outbound_username, partner.outbound_password));
        let mut builder = Request::post(&partner.endpoint).header(AUTHORIZATION, format!("Basic {credentials}"));
        builder = match version {
            SoapVersion::V11 => builder
                .header(CONTENT_TYPE, version.content_type())
                .header("SOAPAction", format!("\"{}\"", operation.soap_action())),
            SoapVersion::V12 => builder
                .header(CONTENT_TYPE, format!("{}; action=\"{}\"", version.content_type(), operation.soap_action())),
        };
        let request = builder.body(Full::new(Bytes::from(wire))).map_err(|e| format!("bad request: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| format!("{e}: {}", source_chain(&e)))?;
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
