//! The receive pipeline: an authenticated partner's request body in, the bytes of its answer
//! out (a signed acknowledgement, or the GetCO response), or the [`Refusal`] it gets.
//!
//! Order of the decisions: WS-Security (on an XML security thread) → replay cache (the signature is
//! remembered in the receipt's transaction, or on its own when no receipt is stored) → the
//! request read into the binding-neutral [`InboundRequest`] (operation, message header) → the
//! sender is the authenticated partner → GetCO leaves here ([`lookup`]) → idempotency by
//! message ID → the business decision (`flows::inbound::check`) → the signed acknowledgement →
//! one transaction that stores the receipt and its effect. Refusals leave nothing in the store
//! but their audit record and, once the signature was checked, its replay-cache entry (so that
//! the same bytes stay refused); business failures get a signed acknowledgement with status
//! Rejected and every error.
//! The request (a document into the payload model, validated) is read on the XML security thread
//! that verified it, in the same hand-off, and before the store is consulted, so that the
//! replay cache, the receipt of its message ID and, for a document, the certificate already
//! received under its reference come in one look (`store::inbound::look`); the decisions keep
//! this order. A valid document from the authenticated partner, nearly every request, is first
//! decided and stored on the assumption that the store holds none of those three, without the
//! look ([`optimistic`]): the receipt's unique keys check the assumption at the write, and when
//! it fails nothing is written and the request takes the order above.
//!
//! Owns: this order, the replay and idempotency decisions, and recording refusals (log line and
//! audit record) for every surface, the gateway's own included ([`refused`]).
//!
//! Must never: read HTTP (the gateway hands in an authenticated partner and the body), hold a
//! libxml document across an `.await` (all XML security work goes through
//! `wssec::on_xml_security_thread`), or store anything for a refused request but its audit record
//! and the replay-cache entry of a checked signature.

mod answer;
mod lookup;
mod optimistic;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::config::{Expect, Partner};
use crate::flows::{self, FlowError};
use crate::message::request::{Content, InboundRequest};
use crate::message::{AckError, Operation};
use crate::refusal::Refusal;
use crate::soap::request::Unreadable;
use crate::state::Core;
use crate::store::audit::AuditEvent;
use crate::store::inbound::{self, Held, Known, Opened, Receipt};
use crate::store::{Backend, StoreError, Tx};
use crate::wssec::inbound::VerifiedMessage;
use crate::wssec::SoapVersion;

/// An answer to send back: its SOAP version and bytes.
pub struct Answer {
    pub version: SoapVersion,
    pub wire: Vec<u8>,
}

/// Logs a refusal and writes its audit record (a failing store is logged, not fatal: the
/// request is refused either way). `partner` is the authenticated partner, if any.
pub async fn refused(
    core: &Core,
    refusal: &Refusal,
    partner: Option<&str>,
    remote: SocketAddr,
    message_id: Option<&str>,
) {
    let code = refusal.detail_code();
    let event = refusal.event();
    match refusal.blame() {
        // Our load is no failure of ours; everything else we are to blame for is.
        crate::refusal::Blame::Ours if !matches!(refusal, Refusal::Busy) => {
            tracing::error!(event, %remote, partner, code, error = %refusal, "request refused: our failure")
        }
        _ => {
            tracing::warn!(event, %remote, partner, code, error = %refusal, "request refused")
        }
    }
    let Some(kind) = refusal.audit_kind() else { return };
    let source = remote.ip().to_string();
    let reason = format!("{code}: {refusal}");
    let record = AuditEvent { kind, partner, source: Some(&source), message_id, actor: None, reason: &reason };
    if let Err(e) = crate::store::audit::append(&core.store, &record, core.clock.now()).await {
        tracing::error!(error = %e, kind, "audit record could not be written");
    }
}

/// Processes one request body from `partner` (authenticated, its body read). Runs to its end
/// once started: the caller spawns it so that a cut connection cannot stop it halfway.
pub async fn process(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    bytes: Bytes,
    remote: SocketAddr,
) -> Result<Answer, Refusal> {
    let mut message_id = None;
    let result = pipeline(core, partner, bytes, remote, &mut message_id).await;
    if let Err(refusal) = &result {
        refused(core, refusal, Some(&partner.party), remote, message_id.as_deref()).await;
    }
    result
}

/// [`process`] without the recording of its refusal; `message_id` is set once known.
async fn pipeline(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    bytes: Bytes,
    remote: SocketAddr,
    message_id: &mut Option<String>,
) -> Result<Answer, Refusal> {
    let now = core.clock.now();
    let (verified, read) = verify_and_read(core, partner, bytes.clone(), now).await?;
    let (namespace, name) = verified.operation();
    // Kept until the Timestamp can no longer be accepted (Expires plus the allowed skew).
    let keep_until = verified.expires() + core.settings.security.clock_skew.chrono();
    let replay_key = format!("{}:{}", partner.party, verified.replay_key());
    // A request that stores a receipt remembers its signature in the receipt's transaction
    // (one commit per message); a look-up, which stores none, remembers it first. Whatever
    // else ends without a stored receipt remembers it on the way out (at the end).
    let operation = Operation::from_request_element(namespace, name);
    let with_receipt = operation.is_some_and(|o| o != Operation::GetCo);
    let signature = (replay_key.as_str(), keep_until);
    // A new document needs no look (see `optimistic`): its receipt, once written, is its answer.
    if let (Ok(request), true) = (&read, with_receipt) {
        if let Some(answer) = optimistic::receive(core, partner, &verified, request, signature, now).await {
            return Ok(answer);
        }
    }
    // The request was read before the store is consulted (it takes no store work), so that
    // the replay cache and the receipt stored under its message ID are one look. What they
    // show is still decided on in the order above.
    let known =
        match (&read, with_receipt) {
            (Ok(request), true) => {
                let message_id = request.header.message_id.to_string();
                let reference = match &request.content {
                    Content::Document { read: Ok(doc), .. } => Some(doc.reference()),
                    _ => None,
                };
                inbound::look(&core.store, &replay_key, &partner.party, &message_id, reference).await
            }
            (Err(_), true) => inbound::signature_seen(&core.store, &replay_key).await.map(|signature_seen| Known {
                signature_seen,
                earlier: None,
                held: Held::NotLooked,
            }),
            (_, false) => inbound::remember_signature(&core.store, &replay_key, keep_until, now)
                .await
                .map(|fresh| Known { signature_seen: !fresh, earlier: None, held: Held::NotLooked }),
        }
        .map_err(|e| Refusal::Internal(format!("replay cache or receipts unavailable: {e}")))?;
    let mut remembered = !with_receipt;
    let checked = Checked { verified, read, bytes, operation, known, signature };
    let result = after_replay_check(core, partner, checked, remote, message_id, &mut remembered, now).await;
    if !remembered {
        if let Err(e) = inbound::remember_signature(&core.store, &replay_key, keep_until, now).await {
            tracing::error!(error = %e, partner = %partner.party, "the signature of an answered request could not be remembered");
        }
    }
    result
}

/// A verified request as the replay cache found it.
struct Checked<'a> {
    verified: VerifiedMessage,
    /// The request read from it.
    read: Result<InboundRequest, Unreadable>,
    /// The request's body as received.
    bytes: Bytes,
    /// Its operation, if it is one we know.
    operation: Option<Operation>,
    /// Whether its signature was in the replay cache, and (for a request that stores a
    /// receipt) the receipt already stored under its message ID.
    known: Known,
    /// Its replay-cache key and until when to keep it.
    signature: (&'a str, DateTime<Utc>),
}

/// [`pipeline`] after the replay cache was consulted; sets `remembered` once a stored receipt
/// holds the signature.
async fn after_replay_check(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    checked: Checked<'_>,
    remote: SocketAddr,
    message_id: &mut Option<String>,
    remembered: &mut bool,
    now: DateTime<Utc>,
) -> Result<Answer, Refusal> {
    let Checked { verified, read, bytes, operation, known, signature } = checked;
    let reply = answer::Reply::to(&verified, operation);
    // A signed message seen before is a replay. Without a Timestamp, a partner's own retry of
    // a message is byte for byte the same (its signature is deterministic): it is answered by
    // message-ID idempotency (its first acknowledgement, nothing stored twice) when its
    // receipt is stored, and refused as a replay otherwise.
    let repeat = known.signature_seen;
    if repeat && verified.timestamped() {
        return Err(Refusal::Replay);
    }
    let request = match read {
        Ok(r) => r,
        Err(Unreadable::UnknownOperation { namespace, name }) => {
            return Err(Refusal::unknown_operation(&namespace, &name))
        }
        Err(Unreadable::Header { operation: Operation::GetCo, errors }) => return Err(invalid_request(&errors)),
        Err(Unreadable::Header { errors, .. }) => {
            // Without a usable message ID there is nothing to key idempotency on: answer,
            // store nothing.
            let digest = crate::message::request::wire_digest(&bytes);
            let ack = answer::acknowledgement(core, partner, "", &digest, errors, now);
            return answer::sign_ack(core, partner, &reply, &ack, now).await;
        }
    };
    drop(verified);
    *message_id = Some(request.header.message_id.to_string());
    if request.header.sender != partner.party {
        return Err(Refusal::PartyMismatch {
            sender: request.header.sender.clone(),
            element: format!("/{}/MessageHeader/SenderPartyID", request.operation.request_element()),
        });
    }
    if request.operation == Operation::GetCo {
        if repeat {
            return Err(Refusal::Replay);
        }
        return lookup::answer(core, partner, &request, &reply, remote, now).await;
    }
    receive(core, partner, &request, &reply, known, signature, remembered, now).await
}

/// A request other than GetCO, from its idempotency check to its stored receipt, which
/// remembers `signature` (then `remembered` is set).
#[allow(clippy::too_many_arguments)]
async fn receive(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    request: &InboundRequest,
    reply: &answer::Reply,
    known: Known,
    signature: (&str, DateTime<Utc>),
    remembered: &mut bool,
    now: DateTime<Utc>,
) -> Result<Answer, Refusal> {
    let version = reply.version;
    let message_id = request.header.message_id.to_string();
    let evidence = &request.evidence;
    let op_name = request.operation.request_element();
    // The answer to a message ID already received: the original acknowledgement for a retry
    // of the same content, MSG-ID-REUSED for anything else.
    let answer_earlier = |previous: inbound::ReceivedMessage| async move {
        if previous.body_sha256 == evidence.content_sha256 {
            tracing::info!(partner = %partner.party, message_id = %request.header.message_id, "retry of a received message: original acknowledgement returned");
            return Ok(Answer { version, wire: previous.ack_wire });
        }
        let errors = vec![AckError::new(
            "MSG-ID-REUSED",
            "this message ID was already used for a different message",
            format!("/{op_name}/MessageHeader/MessageID"),
        )];
        let ack = answer::acknowledgement(
            core,
            partner,
            &request.header.message_id.to_string(),
            &evidence.wire_digest,
            errors,
            now,
        );
        answer::sign_ack(core, partner, reply, &ack, now).await
    };
    let Known { signature_seen: repeat, earlier, held } = known;
    match earlier {
        Some(previous) if !repeat || previous.body_sha256 == evidence.content_sha256 => {
            return answer_earlier(previous).await
        }
        // A repeat of signed content whose receipt is not stored (or stored for other content).
        _ if repeat => return Err(Refusal::Replay),
        _ => {}
    }

    let decision = flows::inbound::check(core, partner, request, &held)
        .await
        .map_err(|e| Refusal::Internal(format!("store unavailable: {e}")))?;
    let accepted = decision.errors.is_empty();
    if !accepted {
        let codes: Vec<&str> = decision.errors.iter().map(|e| e.code.as_str()).collect();
        tracing::info!(event = "request_rejected", partner = %partner.party, %message_id, operation = request.operation.name(), ?codes, "request answered Rejected");
    }
    let may_queue = accepted && decision.effect.may_queue();
    let job = ReceiptJob::signed(core, partner, request, reply, decision, signature, now).await?;
    let ack_wire = job.ack_wire.clone();
    let stored = match job.store_at_once().await {
        Ok(None) => core.store.write(move |tx| Box::pin(job.clone().store(tx))).await,
        written_or_failed => written_or_failed,
    };
    let stored = match stored {
        Ok(certificate) => Ok(Stored::New(certificate)),
        Err(NotStored::Replayed) => Ok(Stored::Replayed),
        Err(NotStored::AlreadyReceived) => match inbound::find(&core.store, &partner.party, &message_id).await {
            Ok(Some(previous)) => Ok(Stored::Earlier(previous)),
            Ok(None) => Err(FlowError::Store(StoreError::Corrupt("inbound message vanished".into()))),
            Err(e) => Err(e.into()),
        },
        Err(NotStored::Failed(e)) => Err(e),
    };
    match stored {
        Ok(Stored::New(certificate)) => {
            *remembered = true;
            // It may have queued an answer (a replacement, a cancellation status).
            if may_queue {
                core.outbox_changed();
            }
            acknowledged(partner, &message_id, request.operation.name(), accepted, certificate.as_deref());
            Ok(Answer { version, wire: ack_wire.to_vec() })
        }
        // A copy that was stored while this one was being checked.
        Ok(Stored::Earlier(previous)) => answer_earlier(previous).await,
        // The same signed bytes got in first under a receipt of their own (or none).
        Ok(Stored::Replayed) => {
            *remembered = true;
            Err(Refusal::Replay)
        }
        // A refusal here means the certificate changed between the check and the write (a
        // concurrent message): nothing was stored, and the partner's retry gets the answer.
        Err(e) => Err(Refusal::Internal(format!("the receipt of {message_id} could not be stored: {e}"))),
    }
}

/// Logs a request whose receipt was stored with its acknowledgement.
fn acknowledged(partner: &Partner, message_id: &str, operation: &str, accepted: bool, certificate: Option<&str>) {
    tracing::info!(event = "received", partner = %partner.party, message_id, operation, accepted, ?certificate, "request acknowledged");
}

/// A receipt to store, owned, for [`Store::write`](crate::store::Store::write) (which may run it
/// in a transaction shared with other receipts, and run it again alone).
struct ReceiptJob {
    core: Arc<Core>,
    partner: Arc<Partner>,
    message_id: String,
    operation: &'static str,
    body_sha256: String,
    accepted: bool,
    request_wire: Bytes,
    ack_wire: Bytes,
    /// The request signature's replay-cache key and until when to keep it.
    signature: (String, DateTime<Utc>),
    effect: flows::inbound::Effect,
    now: DateTime<Utc>,
}

/// Why a receipt was not stored (its transaction is rolled back).
enum NotStored {
    /// The same message ID was stored first.
    AlreadyReceived,
    /// The same signature was remembered first.
    Replayed,
    Failed(FlowError),
}

impl From<StoreError> for NotStored {
    fn from(e: StoreError) -> Self {
        NotStored::Failed(e.into())
    }
}

impl From<FlowError> for NotStored {
    fn from(e: FlowError) -> Self {
        NotStored::Failed(e)
    }
}

impl ReceiptJob {
    /// The receipt of `request` with `decision`, its acknowledgement signed.
    async fn signed(
        core: &Arc<Core>,
        partner: &Arc<Partner>,
        request: &InboundRequest,
        reply: &answer::Reply,
        decision: flows::inbound::Decision,
        signature: (&str, DateTime<Utc>),
        now: DateTime<Utc>,
    ) -> Result<Arc<Self>, Refusal> {
        let message_id = request.header.message_id.to_string();
        let evidence = &request.evidence;
        let accepted = decision.errors.is_empty();
        let ack = answer::acknowledgement(core, partner, &message_id, &evidence.wire_digest, decision.errors, now);
        let ack_wire = answer::sign_ack(core, partner, reply, &ack, now).await?.wire;
        Ok(Arc::new(ReceiptJob {
            core: core.clone(),
            partner: partner.clone(),
            message_id,
            operation: request.operation.name(),
            body_sha256: evidence.content_sha256.clone(),
            accepted,
            request_wire: evidence.wire.clone(),
            ack_wire: Bytes::from(ack_wire),
            signature: (signature.0.to_owned(), signature.1),
            effect: decision.effect,
            now,
        }))
    }

    fn receipt(&self) -> Receipt<'_> {
        Receipt {
            partner: &self.partner.party,
            message_id: &self.message_id,
            operation: self.operation,
            body_sha256: &self.body_sha256,
            accepted: self.accepted,
            request_wire: &self.request_wire,
            ack_wire: &self.ack_wire,
            signature: Some((self.signature.0.as_str(), self.signature.1)),
        }
    }

    /// The whole receipt in one statement, where the store can (an accepted document, on
    /// PostgreSQL): the certificate it concerns once written, `None` if nothing was written and
    /// [`Self::store`] must take the usual way.
    async fn store_at_once(&self) -> Result<Option<String>, NotStored> {
        if !self.accepted {
            return Ok(None);
        }
        Ok(self.record_at_once(None).await?)
    }

    /// [`flows::inbound::record_at_once`] of this receipt, in `tx` if given.
    async fn record_at_once(&self, tx: Option<&mut Tx<'_>>) -> Result<Option<String>, FlowError> {
        let receipt = self.receipt();
        flows::inbound::record_at_once(&self.core, &self.partner, &receipt, &self.effect, self.now, tx).await
    }

    /// The receipt of an accepted document in one statement (PostgreSQL) or one script in a
    /// transaction of its own or its group's (SQLite), and nothing else: the certificate once
    /// written, `None` if nothing was written (a unique key taken, or an awaited replacement;
    /// see [`optimistic`]).
    async fn store_if_new(self: Arc<Self>) -> Result<Option<String>, FlowError> {
        if matches!(self.core.store.backend(), Backend::Postgres) {
            return self.record_at_once(None).await;
        }
        let store = self.core.store.clone();
        store
            .write(move |tx| {
                let job = self.clone();
                Box::pin(async move { job.record_at_once(Some(tx)).await })
            })
            .await
    }

    /// The receipt, the message's effect if accepted, both wire forms and the remembered
    /// signature, in `tx` (on SQLite an accepted document's in one script, where it can);
    /// returns the certificate the message concerns.
    async fn store(self: Arc<Self>, tx: &mut Tx<'static>) -> Result<Option<String>, NotStored> {
        let receipt = self.receipt();
        if self.accepted {
            if let Some(certificate) = self.record_at_once(Some(&mut *tx)).await? {
                return Ok(Some(certificate));
            }
        }
        match inbound::open(tx, &self.core.store, &receipt, self.now).await? {
            Opened::New => {}
            Opened::AlreadyReceived => return Err(NotStored::AlreadyReceived),
            Opened::Replayed => return Err(NotStored::Replayed),
        }
        let certificate = if self.accepted {
            flows::inbound::apply(tx, &self.core, &self.partner, &self.effect, &self.message_id, self.now).await?
        } else {
            None
        };
        inbound::close(tx, &receipt, certificate.as_deref(), self.now).await?;
        Ok(certificate)
    }
}

/// What became of a receipt being stored.
enum Stored {
    /// Stored now, about this certificate (if any).
    New(Option<String>),
    /// The same message ID was stored first.
    Earlier(inbound::ReceivedMessage),
    /// The same signature was remembered first.
    Replayed,
}

/// A request that cannot get its own kind of answer, refused with its first problem.
fn invalid_request(errors: &[AckError]) -> Refusal {
    match errors.first() {
        Some(e) => Refusal::InvalidRequest {
            code: e.code.clone(),
            description: e.description.clone(),
            element: e.path.clone(),
        },
        None => Refusal::InvalidRequest {
            code: "MSG-MALFORMED".into(),
            description: "invalid look-up".into(),
            element: "/".into(),
        },
    }
}

/// WS-Security processing with the partner's profile, then the verified message read into a
/// request (a document into the payload model, validated), in one hand-off to a blocking
/// thread: all of it is CPU work, kept off the async workers.
async fn verify_and_read(
    core: &Arc<Core>,
    partner: &Arc<Partner>,
    bytes: Bytes,
    now: DateTime<Utc>,
) -> Result<(VerifiedMessage, Result<InboundRequest, Unreadable>), Refusal> {
    let (core, partner) = (core.clone(), partner.clone());
    crate::wssec::on_xml_security_thread(crate::wssec::Precedence::New, move || {
        let verified =
            crate::wssec::inbound::process(&bytes, &core.settings.inbound_policy(&partner, Expect::Request, now))?;
        let read = crate::soap::request::read(&verified, bytes);
        Ok((verified, read))
    })
    .await
    .map_err(Refusal::from)
}
