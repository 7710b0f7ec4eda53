//! `coconnect ops`: the operator's command line, a thin client of the running gateway's
//! operator API (so it works the same on SQLite and PostgreSQL and every action is attributed).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cli::OpsCommand;

/// Runs one operator command; prints the JSON answer. `Ok(false)` if the gateway refused.
pub async fn run(api: &str, token: &str, command: &OpsCommand) -> anyhow::Result<bool> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (method, path) = match command {
        OpsCommand::Outbox { state, partner } => {
            let mut q = Vec::new();
            if let Some(s) = state {
                q.push(format!("state={}", enc(s)));
            }
            if let Some(p) = partner {
                q.push(format!("partner={}", enc(p)));
            }
            ("GET", format!("/api/v1/outbox?{}", q.join("&")))
        }
        OpsCommand::Retry { message_id } => ("POST", format!("/api/v1/outbox/{}/retry", enc(message_id))),
        OpsCommand::Cancel { message_id } => ("POST", format!("/api/v1/outbox/{}/cancel", enc(message_id))),
        OpsCommand::Partners => ("GET", "/api/v1/partners".to_owned()),
        OpsCommand::Pause { partner } => ("POST", format!("/api/v1/partners/{}/pause", enc(partner))),
        OpsCommand::Resume { partner } => ("POST", format!("/api/v1/partners/{}/resume", enc(partner))),
        OpsCommand::Alerts { all } => ("GET", format!("/api/v1/alerts?unacknowledged={}", !all)),
        OpsCommand::AckAlert { id } => ("POST", format!("/api/v1/alerts/{id}/ack")),
        OpsCommand::Events { after, limit, kind, partner, unacknowledged } => {
            let mut q = vec![format!("after={after}"), format!("limit={limit}")];
            if let Some(k) = kind {
                q.push(format!("kind={}", enc(k)));
            }
            if let Some(p) = partner {
                q.push(format!("partner={}", enc(p)));
            }
            if *unacknowledged {
                q.push("unacknowledged=true".to_owned());
            }
            ("GET", format!("/api/v1/events?{}", q.join("&")))
        }
        OpsCommand::Subscribers => ("GET", "/api/v1/backend/subscribers".to_owned()),
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::builder()
        .method(method)
        .uri(format!("{}{path}", api.trim_end_matches('/')))
        .header("Authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let resp = client.request(req).await?;
    let ok = resp.status().is_success();
    let body = resp.into_body().collect().await?.to_bytes();
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => crate::cli::say(serde_json::to_string_pretty(&v)?)?,
        Err(_) => crate::cli::say(String::from_utf8_lossy(&body))?,
    }
    Ok(ok)
}
