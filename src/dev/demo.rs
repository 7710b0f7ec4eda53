//! `coconnect demo`: Korea (KR) pushes examples/co.xml to Indonesia (ID), two gateways on
//! loopback with their own SQLite files, printing each step. Succeeds only if the CO ends
//! `acknowledged` on KR and `received` on ID.

/// Prints a line of the demo; a reader that went away (`coconnect demo | head`) is not a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = crate::cli::say(format!($($arg)*));
    }};
}

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::app::App;
use crate::config::dev_pair::{free_addr, write_pair, GatewayFiles, PairSpec};

const EXAMPLE_CO: &str = include_str!("../../examples/co.xml");

/// Runs the demo; `Ok(true)` when the CO was delivered and acknowledged.
pub async fn run(keep: Option<PathBuf>) -> anyhow::Result<bool> {
    let temp;
    let dir = match keep {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_owned()
        }
    };
    say!("1. Development PKI and configurations in {}", dir.display());
    let addrs = [(free_addr()?, free_addr()?), (free_addr()?, free_addr()?)];
    let urls = [format!("sqlite:{}", dir.join("kr.db").display()), format!("sqlite:{}", dir.join("id.db").display())];
    let [kr, id] = write_pair(&PairSpec {
        dir: &dir,
        parties: ["KR", "ID"],
        addrs,
        database_urls: urls,
        profile: "sign-encrypt",
        tls: true,
        signing: Default::default(),
    })?;
    say!("   KR: SOAP {} API {} ({})", kr.soap_addr, kr.api_addr, kr.config.display());
    say!("   ID: SOAP {} API {} ({})", id.soap_addr, id.api_addr, id.config.display());

    say!("2. Starting both gateways");
    let kr_app = App::start(crate::config::load(&kr.config)?).await?;
    let id_app = App::start(crate::config::load(&id.config)?).await?;

    let outcome = exchange(&kr, &id).await;
    kr_app.stop().await;
    id_app.stop().await;
    match outcome {
        Ok(()) => {
            say!("OK: the CO is acknowledged on KR and received on ID, looked up, and its treatment fed back.");
            Ok(true)
        }
        Err(e) => {
            say!("FAILED: {e:#}");
            Ok(false)
        }
    }
}

async fn exchange(kr: &GatewayFiles, id: &GatewayFiles) -> anyhow::Result<()> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    say!("3. KR's issuing system submits examples/co.xml for partner ID (domestic API)");
    let (status, body) = call(&client, kr, "POST", "/api/v1/certificates?partner=ID", EXAMPLE_CO).await?;
    say!("   HTTP {status}: {body}");
    anyhow::ensure!(status == 202, "submission refused");
    let cert_id = body["id"].as_str().ok_or_else(|| anyhow::anyhow!("no id in the answer"))?.to_owned();
    let code = body["reference_code"].as_str().unwrap_or_default().to_owned();

    say!("4. KR's delivery worker signs (rsa-sha256), encrypts (AES-256-GCM, RSA-OAEP) and pushes SendCO to ID");
    say!("   over mutual TLS (both gateways present their TLS certificates);");
    say!("   ID decrypts, verifies, validates, stores and answers with a signed acknowledgement");
    let deadline = Instant::now() + Duration::from_secs(30);
    let cert = loop {
        let (_, cert) = call(&client, kr, "GET", &format!("/api/v1/certificates/{cert_id}"), "").await?;
        let state = cert["state"].as_str().unwrap_or_default().to_owned();
        if state == "acknowledged" || state == "rejected" || Instant::now() > deadline {
            break cert;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    say!("5. KR's certificate {cert_id}: state {}", cert["state"]);
    for h in cert["history"].as_array().into_iter().flatten() {
        say!(
            "   {} {} -> {}  ({})",
            h["at"].as_str().unwrap_or_default(),
            h["from"].as_str().unwrap_or("-"),
            h["to"].as_str().unwrap_or_default(),
            h["cause"].as_str().unwrap_or_default()
        );
    }
    anyhow::ensure!(cert["state"] == "acknowledged", "the CO was not acknowledged");

    let reference = cert["reference"].as_str().unwrap_or_default();
    let (_, found) = call(
        &client,
        id,
        "GET",
        &format!(
            "/api/v1/certificates?issuer=KR&reference={}",
            url::form_urlencoded::byte_serialize(reference.as_bytes()).collect::<String>()
        ),
        "",
    )
    .await?;
    let received =
        found.as_array().and_then(|a| a.iter().find(|c| c["direction"] == "inbound")).cloned().unwrap_or(Value::Null);
    say!("6. ID looks up KR/{reference}: state {}", received["state"]);
    anyhow::ensure!(received["state"] == "received", "ID does not hold the CO as received");
    let (_, feed) = call(&client, id, "GET", "/api/v1/events?kind=document.received&wait=10", "").await?;
    let event = feed["events"].get(0).cloned().unwrap_or(Value::Null);
    say!(
        "   ID's clearance system reads its event feed (GET /api/v1/events): seq {} {} with the CO ({} bytes of XML)",
        event["seq"],
        event["kind"],
        event["document"]["xml"].as_str().map_or(0, str::len)
    );
    anyhow::ensure!(event["kind"] == "document.received", "no document.received event in ID's feed: {feed}");
    let event_id = event["event_id"].as_str().unwrap_or_default();
    let (status, _) = call(&client, id, "POST", &format!("/api/v1/events/{event_id}/ack"), "").await?;
    anyhow::ensure!(status == 200, "the event could not be acknowledged");
    say!("   and acknowledges it: the certificate's view on ID now shows it downloaded");

    let encoded = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let path = format!("/api/v1/lookup?partner=KR&reference={}&code={}", encoded(reference), encoded(&code));
    let (status, looked_up) = call(&client, id, "GET", &path, "").await?;
    say!("7. ID asks KR's gateway for it with GetCO (reference code {code}): HTTP {status}, {}", looked_up["status"]);
    anyhow::ensure!(status == 200, "the look-up failed: {looked_up}");

    let received_id = received["id"].as_str().unwrap_or_default();
    let treatment = r#"{"decision": "Granted", "declaration_reference": "40101-25-123456M"}"#;
    let (status, _) =
        call(&client, id, "POST", &format!("/api/v1/certificates/{received_id}/treatment"), treatment).await?;
    anyhow::ensure!(status == 202, "the treatment decision was refused");
    say!("8. ID's clearance system grants preferential treatment; SendFeedback goes to KR");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, cert) = call(&client, kr, "GET", &format!("/api/v1/certificates/{cert_id}"), "").await?;
        if let Some(decision) = cert["treatment_decisions"].as_array().and_then(|d| d.first()) {
            say!(
                "   KR's certificate shows: {} on declaration {}",
                decision["decision"],
                decision["declaration_reference"]
            );
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the feedback did not reach KR");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn call(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    gw: &GatewayFiles,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<(u16, Value)> {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", gw.api_addr))
        .header("Authorization", format!("Bearer {}", gw.api_token))
        .header("Content-Type", if body.is_empty() { "application/json" } else { "application/xml" })
        .body(Full::new(Bytes::from(body.to_owned())))?;
    let resp = client.request(req).await?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}
