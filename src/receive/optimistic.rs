//! A new document stored without looking first. Nearly every request is a CO or DO that the
//! store has never seen, so it is decided, acknowledged and stored on that assumption, without
//! the look (`store::inbound::look`) that would otherwise come first: no receipt under its
//! message ID, its signature not in the replay cache, no certificate under its reference. The
//! receipt statement checks the assumption where it counts, at the write: each of the three is
//! a unique key it inserts, so if the store holds any of them (or an accepted cancellation awaits
//! the document as its replacement) it writes nothing of the request. Then the signed
//! acknowledgement is dropped and the request takes the usual way ([`super`]: the look, then
//! each decision in order), which decides and answers as if this had not been tried.
//!
//! A new document stored this way costs one statement less (on PostgreSQL a round trip, on
//! SQLite a hand-off to a read connection's thread). A request the store already knew (a retry,
//! a replay, a reused message ID, a conflicting CO) costs a wasted decision, signature and write
//! (on PostgreSQL a statement the server aborts and logs as a duplicate key); a flagged DO is
//! decided twice, and the replacement an accepted cancellation awaits pays a wasted signature
//! and statement. Two byte-identical copies of a timestamped request in flight at once: the
//! second is refused as a replay, as it would be a moment later.
//!
//! Owns: when a request may be decided without the look, and that attempt.
//! Must never: answer from an assumption that the write did not confirm; write any part of a
//! request's receipt when the assumption is wrong; answer a request that the usual way decides
//! from more than those keys (a rejection, another operation, a DO flagged for its approved
//! exporter, a document whose sender is not the authenticated partner); refuse a request itself
//! (a failed attempt leaves the answer to the usual way).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{answer, Answer, ReceiptJob};
use crate::config::Partner;
use crate::flows::{self, FlowError};
use crate::message::request::{Content, InboundRequest};
use crate::refusal::Refusal;
use crate::state::Core;
use crate::store::inbound::Held;
use crate::store::StoreError;
use crate::wssec::inbound::VerifiedMessage;

/// Tries `request` (verified as `verified`) as a new document: its answer once its receipt is
/// stored with the signature `(key, keep until)`; `None` when the request is not one to try,
/// when the store already held something of it (nothing was written), or when the attempt
/// failed (logged): the caller then takes the usual way, which decides and answers as if this
/// had not been tried, and reports a failure that persists.
pub(super) async fn receive(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    verified: &VerifiedMessage,
    request: &InboundRequest,
    signature: (&str, DateTime<Utc>),
    now: DateTime<Utc>,
) -> Option<Answer> {
    // Only SendCO and SendDO carry a document.
    let is_document = matches!(&request.content, Content::Document { read: Ok(_), .. });
    if !is_document || request.header.sender != partner.party {
        return None;
    }
    let attempt = async {
        let decision = flows::inbound::check(core, partner, request, &Held::Nothing).await?;
        if !decision.errors.is_empty() || !decision.effect.recorded_at_once() {
            return Ok(None);
        }
        let reply = answer::Reply::to(verified, Some(request.operation));
        let job = ReceiptJob::signed(core, partner, request, &reply, decision, signature, now)
            .await
            .map_err(Failed::Acknowledgement)?;
        let Some(certificate) = job.clone().store_if_new().await? else {
            return Ok(None);
        };
        super::acknowledged(partner, &job.message_id, job.operation, true, Some(&certificate));
        Ok::<_, Failed>(Some(Answer { version: reply.version, wire: job.ack_wire.to_vec() }))
    };
    match attempt.await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(partner = %partner.party, message_id = %request.header.message_id, error = %e, "a new document could not be stored at once: taking the usual way");
            None
        }
    }
}

/// Why an attempt failed (logged: the usual way follows).
#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error("deciding: {0}")]
    Decision(#[from] StoreError),
    #[error("signing the acknowledgement: {0}")]
    Acknowledgement(Refusal),
    #[error("storing the receipt: {0}")]
    Receipt(#[from] FlowError),
}
