//! GetCO (Annex III) answered: the CO for the asking partner, or the same `NotFound` for
//! anything else, signed (under `sign-encrypt` also encrypted). Nothing is stored but the
//! audit record `lookup.not_found` of a miss, and the `lookup.answered` event of a hit.

use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{invalid_request, Answer};
use crate::config::Partner;
use crate::message::business::LookupResult;
use crate::message::request::{Content, InboundRequest};
use crate::message::{AckError, MessageHeader};
use crate::refusal::Refusal;
use crate::state::Core;
use crate::store::audit::AuditEvent;

/// The signed GetCO response to `request` (a GetCO from `partner`).
pub async fn answer(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    request: &InboundRequest,
    reply: &super::answer::Reply,
    remote: SocketAddr,
    now: DateTime<Utc>,
) -> Result<Answer, Refusal> {
    let op_name = request.operation.request_element();
    let lookup = match &request.content {
        Content::Lookup(lookup) => lookup,
        Content::Invalid(errors) => return Err(invalid_request(errors)),
        _ => return Err(Refusal::Internal("a GetCO request without look-up content".into())),
    };
    if request.header.receiver != core.settings.party {
        return Err(invalid_request(&[AckError::new(
            "MSG-WRONG-RECEIVER",
            "the receiver is not this gateway",
            format!("/{op_name}/MessageHeader/ReceiverPartyID"),
        )]));
    }
    let (result, certificate_id) = crate::flows::lookup::find(core, partner, lookup)
        .await
        .map_err(|e| Refusal::Internal(format!("store unavailable: {e}")))?;
    let message_id = request.header.message_id.to_string();
    let found = matches!(result, LookupResult::Found { .. });
    tracing::info!(event = "lookup", partner = %partner.party, reference = %lookup.document.reference, found, "GetCO answered");
    if !found {
        let reason = format!("GetCO {} {}: not found", lookup.document.issuer, lookup.document.reference);
        let source = remote.ip().to_string();
        let record = AuditEvent {
            kind: "lookup.not_found",
            partner: Some(&partner.party),
            source: Some(&source),
            message_id: Some(&message_id),
            actor: None,
            reason: &reason,
        };
        if let Err(e) = crate::store::audit::append(&core.store, &record, core.clock.now()).await {
            tracing::error!(error = %e, kind = record.kind, "audit record could not be written");
        }
    }
    let header = MessageHeader::new(&core.settings.party, &partner.party, Uuid::new_v4(), now);
    let body = crate::soap::business::lookup_response_xml(&header.to_xml(), &message_id, &result);
    let answer =
        super::answer::secure_response(core, reply, body, partner.clone(), partner.security.outbound, now).await?;
    // Recorded once the answer is ready to go: a failure here is answered as ours (the
    // partner asks again), never with a CO whose look-up the issuing system does not learn.
    if let (Some(id), LookupResult::Found { status, .. }) = (&certificate_id, &result) {
        crate::flows::lookup::answered(core, partner, id, &message_id, status)
            .await
            .map_err(|e| Refusal::Internal(format!("store unavailable: {e}")))?;
    }
    Ok(answer)
}
