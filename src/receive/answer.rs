//! The answers the receive pipeline signs: acknowledgements (BR.5; signed, never encrypted,
//! framework 4.4.3) and GetCO responses (signed, and encrypted under the partner's profile).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Answer;
use crate::config::Partner;
use crate::message::{AckError, AckStatus, Acknowledgement, MessageHeader, Operation};
use crate::refusal::Refusal;
use crate::state::Core;
use crate::wssec::inbound::{Addressing, VerifiedMessage};
use crate::wssec::outbound::{secure, AddressingHeaders, OutboundMessage};
use crate::wssec::profile::Outbound;
use crate::wssec::{ns, SoapVersion};

/// Our acknowledgement of message `received_id` (empty when it had no usable ID) whose bytes
/// had the digest `digest`: Accepted without errors, Rejected with every one.
pub fn acknowledgement(
    core: &Core,
    partner: &Partner,
    received_id: &str,
    digest: &str,
    errors: Vec<AckError>,
    now: DateTime<Utc>,
) -> Acknowledgement {
    Acknowledgement {
        header: MessageHeader::new(&core.settings.party, &partner.party, Uuid::new_v4(), now),
        received_message_id: received_id.to_owned(),
        receipt: now,
        received_digest: digest.to_owned(),
        status: if errors.is_empty() { AckStatus::Accepted } else { AckStatus::Rejected },
        errors,
    }
}

/// How an answer goes back: in the request's SOAP version, and with WS-Addressing headers
/// answering the request's when the partner's profile uses WS-Addressing.
#[derive(Debug, Clone)]
pub struct Reply {
    pub version: SoapVersion,
    /// The request's WS-Addressing headers, when it had any.
    pub request_addressing: Option<Addressing>,
    /// The request's operation's action, for an answer to a request that named none.
    pub operation_action: Option<String>,
}

impl Reply {
    /// The answer to `verified`, a request of `operation` if it is one we know.
    pub fn to(verified: &VerifiedMessage, operation: Option<Operation>) -> Self {
        Reply {
            version: verified.version(),
            request_addressing: verified.addressing().cloned(),
            operation_action: operation.map(|o| o.soap_action()),
        }
    }

    /// The answer's WS-Addressing headers: `RelatesTo` the request's `MessageID`, the
    /// operation's response action, to the request's `ReplyTo` unless it is anonymous.
    fn addressing(&self, partner: &Partner) -> Option<AddressingHeaders> {
        if !partner.security.outbound.addressing {
            return None;
        }
        let request = self.request_addressing.as_ref()?;
        let namespace = if request.namespace == ns::WSA_2004 { ns::WSA_2004 } else { ns::WSA };
        let to = request.reply_to.clone().filter(|r| !r.ends_with("/anonymous"));
        Some(AddressingHeaders {
            namespace,
            action: format!(
                "{}Response",
                request.action.clone().or_else(|| self.operation_action.clone()).unwrap_or_default()
            ),
            message_id: format!("urn:uuid:{}", Uuid::new_v4()),
            to,
            relates_to: request.message_id.clone(),
            reply_to_anonymous: false,
        })
    }
}

/// Signs an acknowledgement (not encrypted, framework 4.4.3).
pub async fn sign_ack(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    reply: &Reply,
    ack: &Acknowledgement,
    now: DateTime<Utc>,
) -> Result<Answer, Refusal> {
    let profile = partner.security.signed_only().outbound;
    secure_response(core, reply, ack.to_xml(), partner.clone(), profile, now).await
}

/// Secures a response body to `partner` with `profile` on an XML security thread: signed, and
/// encrypted to the partner when the profile encrypts.
pub async fn secure_response(
    core: &Arc<Core>,
    reply: &Reply,
    body_xml: String,
    partner: Arc<Partner>,
    profile: Outbound,
    now: DateTime<Utc>,
) -> Result<Answer, Refusal> {
    let core = core.clone();
    let ttl = partner.timestamp_ttl.chrono();
    let version = reply.version;
    let addressing = reply.addressing(&partner);
    let wire = crate::wssec::on_xml_security_thread(crate::wssec::Precedence::InProgress, move || {
        secure(&OutboundMessage {
            version,
            body_xml: &body_xml,
            signer: &core.settings.signing,
            encrypt_for: profile.encryption.and(partner.encrypt_to()),
            profile: &profile,
            addressing: addressing.as_ref(),
            now,
            ttl,
        })
    })
    .await
    .map_err(|e| Refusal::Internal(format!("the response could not be secured: {e}")))?;
    Ok(Answer { version, wire })
}
