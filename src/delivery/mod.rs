//! Delivery workers: take due messages from the outbox, secure them afresh (new Timestamp and
//! signature, same message ID), send them, and store the partner's verified acknowledgement.
//!
//! Crash safety: the attempt (with the exact bytes) is committed before sending; the outcome is
//! committed with the acknowledgement. A process that dies in between leaves the message
//! pending under an expiring lease, so it is sent again with the same message ID and the
//! partner answers with its original acknowledgement.
//!
//! Must never: delete or complete a message without a verified acknowledgement or a business
//! rejection; retry a business rejection.

mod client;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use base64::Engine;
use chrono::{Duration, Utc};
use tokio::sync::watch;

use crate::app::AppState;
use crate::config::{Partner, SecurityProfile};
use crate::lifecycle::State;
use crate::soap::fault::read_fault;
use crate::soap::{AckStatus, Acknowledgement, Operation};
use crate::store::outbox::{self, OutboxMessage};
use crate::store::StoreError;
use crate::wssec::inbound::InboundPolicy;
use crate::wssec::outbound::{secure, OutboundMessage};
use crate::wssec::SoapVersion;

pub use client::PartnerClient;

/// The result of one delivery step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing was due.
    Idle,
    /// The partner acknowledged (Accepted or Rejected); the certificate is now in this state.
    Completed(State),
    /// A technical failure; retried later.
    WillRetry(String),
}

pub struct Worker {
    state: Arc<AppState>,
    owner: String,
    client: PartnerClient,
}

/// Test hook: `COCONNECT_FAULT_INJECTION=before-send|after-send` aborts the process at that
/// point of a delivery, to prove crash safety. Never set in production.
fn inject_fault(point: &str) {
    if std::env::var("COCONNECT_FAULT_INJECTION").is_ok_and(|v| v == point) {
        eprintln!("fault injection: aborting at {point}");
        std::process::abort();
    }
}

impl Worker {
    pub fn new(state: Arc<AppState>, owner: String) -> Self {
        let timeout = StdDuration::from_secs(state.settings.delivery.request_timeout_seconds);
        Worker { state, owner, client: PartnerClient::new(timeout) }
    }

    /// Delivers until shutdown; between empty polls it waits the configured interval.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let idle = StdDuration::from_millis(self.state.settings.delivery.poll_interval_millis);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let wait = match self.step().await {
                Ok(Step::Idle) => idle,
                Ok(_) => StdDuration::ZERO,
                Err(e) => {
                    tracing::error!(error = %e, "delivery step failed");
                    idle
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = shutdown.changed() => {},
                    _ = tokio::time::sleep(wait) => {},
                }
            }
        }
    }

    /// Claims one due message and delivers it once.
    pub async fn step(&self) -> Result<Step, StoreError> {
        let settings = &self.state.settings;
        let store = &self.state.store;
        let now = Utc::now();
        let Some(msg) = outbox::claim_due(store, &self.owner, now, Duration::seconds(settings.delivery.lease_seconds)).await? else {
            return Ok(Step::Idle);
        };
        let retry_at = || Utc::now() + Duration::seconds(settings.delivery.retry_delay_seconds);
        let Some(partner) = settings.partners.get(&msg.partner).cloned() else {
            // Not configured (any more): keep the message; an operator must restore the partner.
            let reason = format!("partner {} is not configured", msg.partner);
            tracing::error!(message_id = %msg.message_id, "{reason}");
            outbox::fail_attempt(store, &msg, msg.attempts, "configuration", None, &reason, retry_at(), now).await?;
            return Ok(Step::WillRetry(reason));
        };
        let Some(operation) = Operation::from_name(&msg.operation) else {
            return Err(StoreError::Corrupt(format!("unknown operation {}", msg.operation)));
        };
        let wire = match self.secure(&msg, &partner).await {
            Ok(w) => w,
            Err(reason) => {
                outbox::fail_attempt(store, &msg, msg.attempts, "security", None, &reason, retry_at(), now).await?;
                return Ok(Step::WillRetry(reason));
            }
        };
        let attempt = outbox::begin_attempt(store, &msg, &wire, now).await?;
        inject_fault("before-send");
        tracing::info!(message_id = %msg.message_id, partner = %partner.party, attempt, "sending");
        let reply = self.client.post(&partner, operation, SoapVersion::V11, wire).await;
        let (status, body) = match reply {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("transport: {e}");
                tracing::warn!(message_id = %msg.message_id, attempt, %reason, "delivery failed; will retry");
                outbox::fail_attempt(store, &msg, attempt, "transport", None, &reason, retry_at(), Utc::now()).await?;
                return Ok(Step::WillRetry(reason));
            }
        };
        match self.judge(&msg, &partner, status, &body).await {
            Verdict::Acknowledged(ack) => {
                inject_fault("after-send");
                let accepted = ack.status == AckStatus::Accepted;
                let cause = if accepted {
                    format!("acknowledged by {} (ack {})", partner.party, ack.header.message_id)
                } else {
                    let errors: Vec<String> = ack.errors.iter().map(|e| format!("{} {} at {}", e.code, e.description, e.path)).collect();
                    format!("rejected by {}: {}", partner.party, errors.join("; "))
                };
                if !accepted {
                    tracing::warn!(event = "rejected", message_id = %msg.message_id, partner = %partner.party, %cause, "partner rejected the message");
                }
                let to = outbox::complete(store, &msg, attempt, &body, accepted, &cause, status, Utc::now()).await?;
                Ok(Step::Completed(to))
            }
            Verdict::SenderFault(reason) => {
                inject_fault("after-send");
                tracing::warn!(event = "rejected", message_id = %msg.message_id, partner = %partner.party, %reason, "partner refused the message with a fault");
                let to = outbox::complete(store, &msg, attempt, &body, false, &reason, status, Utc::now()).await?;
                Ok(Step::Completed(to))
            }
            Verdict::Retry(outcome, reason) => {
                tracing::warn!(message_id = %msg.message_id, attempt, status, %reason, "delivery failed; will retry");
                outbox::fail_attempt(store, &msg, attempt, outcome, Some(status), &reason, retry_at(), Utc::now()).await?;
                Ok(Step::WillRetry(reason))
            }
        }
    }

    async fn secure(&self, msg: &OutboxMessage, partner: &Arc<Partner>) -> Result<Vec<u8>, String> {
        let state = self.state.clone();
        let partner = partner.clone();
        let body = msg.body_xml.clone();
        tokio::task::spawn_blocking(move || {
            let encrypt_for = match partner.profile {
                SecurityProfile::SignEncrypt => partner.encryption_cert.as_ref(),
                SecurityProfile::Sign => None,
            };
            secure(&OutboundMessage {
                version: SoapVersion::V11,
                body_xml: &body,
                signer: &state.settings.signing,
                encrypt_for,
                now: Utc::now(),
                ttl: Duration::seconds(state.settings.security.timestamp_ttl_seconds),
            })
            .map_err(|e| format!("securing the message failed: {e}"))
        })
        .await
        .map_err(|_| "securing task failed".to_owned())?
    }

    /// Decides what a partner's HTTP answer means.
    async fn judge(&self, msg: &OutboxMessage, partner: &Arc<Partner>, status: u16, body: &[u8]) -> Verdict {
        if status == 200 {
            return match self.verify_ack(msg, partner, body).await {
                Ok(ack) => Verdict::Acknowledged(ack),
                Err(reason) => {
                    tracing::warn!(event = "ack_unverified", message_id = %msg.message_id, partner = %partner.party, %reason, "acknowledgement does not verify");
                    Verdict::Retry("ack-invalid", reason)
                }
            };
        }
        match read_fault(body) {
            // A Sender fault after authentication is a business refusal: retrying won't help.
            Some(f) if f.sender_at_fault && status == 500 => {
                Verdict::SenderFault(format!("SOAP fault {}: {}", f.code.unwrap_or_default(), f.reason))
            }
            Some(f) => Verdict::Retry("fault", format!("HTTP {status}, SOAP fault {}: {}", f.code.unwrap_or_default(), f.reason)),
            None => Verdict::Retry("http", format!("HTTP {status}")),
        }
    }

    async fn verify_ack(&self, msg: &OutboxMessage, partner: &Arc<Partner>, body: &[u8]) -> Result<Acknowledgement, String> {
        let state = self.state.clone();
        let partner_for_check = partner.clone();
        let bytes = body.to_vec();
        let verified = tokio::task::spawn_blocking(move || {
            let s = &state.settings;
            crate::wssec::inbound::process(
                &bytes,
                &InboundPolicy {
                    limits: s.xml_limits(),
                    decryption: None,
                    require_encryption: false,
                    trust: &partner_for_check.trust,
                    now: Utc::now(),
                    clock_skew: Duration::seconds(s.security.clock_skew_seconds),
                    max_ttl: Duration::seconds(s.security.max_timestamp_age_seconds),
                },
            )
        })
        .await
        .map_err(|_| "verification task failed".to_owned())?
        .map_err(|e| format!("{}: {e}", e.code()))?;
        let ack = Acknowledgement::read(verified.body_child())?;
        if ack.received_message_id != msg.message_id {
            return Err(format!("acknowledgement is for message {:?}, not {}", ack.received_message_id, msg.message_id));
        }
        if ack.header.sender != partner.party {
            return Err(format!("acknowledgement sender {} is not {}", ack.header.sender, partner.party));
        }
        let digest = base64::engine::general_purpose::STANDARD
            .decode(ack.received_digest.trim())
            .map(|d| crate::wssec::material::hex(&d))
            .map_err(|_| "acknowledgement digest is not base64".to_owned())?;
        let sent = outbox::sent_digests(&self.state.store, &msg.message_id).await.map_err(|e| e.to_string())?;
        if !sent.contains(&digest) {
            return Err("acknowledgement digest matches none of the messages we sent".to_owned());
        }
        Ok(ack)
    }
}

enum Verdict {
    Acknowledged(Acknowledgement),
    SenderFault(String),
    Retry(&'static str, String),
}
