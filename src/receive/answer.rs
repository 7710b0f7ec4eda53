//! The answers the receive pipeline signs: acknowledgements (BR.5; signed, never encrypted,
//! framework 4.4.3) and GetCO responses (signed, and encrypted under the partner's profile).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Answer;
use crate::config::Partner;
use crate::message::{AckError, AckStatus, Acknowledgement, MessageHeader};
use crate::refusal::Refusal;
use crate::state::Core;
use crate::wssec::outbound::{secure, OutboundMessage};
use crate::wssec::{Profile, SoapVersion};

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

/// Signs an acknowledgement (not encrypted, framework 4.4.3).
pub async fn sign_ack(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    version: SoapVersion,
    ack: &Acknowledgement,
    now: DateTime<Utc>,
) -> Result<Answer, Refusal> {
    secure_response(core, version, ack.to_xml(), partner.clone(), partner.security.signed_only(), now).await
}

/// Secures a response body to `partner` with `profile` on a blocking thread: signed, and
/// encrypted to the partner when the profile encrypts.
pub async fn secure_response(
    core: &Arc<Core>,
    version: SoapVersion,
    body_xml: String,
    partner: Arc<Partner>,
    profile: Profile,
    now: DateTime<Utc>,
) -> Result<Answer, Refusal> {
    let core = core.clone();
    let ttl = core.settings.security.timestamp_ttl.chrono();
    let wire = crate::wssec::on_blocking_thread(move || {
        secure(&OutboundMessage {
            version,
            body_xml: &body_xml,
            signer: &core.settings.signing,
            encrypt_for: profile.encryption.and(partner.encrypt_to()),
            profile: &profile,
            now,
            ttl,
        })
    })
    .await
    .map_err(|e| Refusal::Internal(format!("the response could not be secured: {e}")))?;
    Ok(Answer { version, wire })
}
