//! What a partner's verified request does. [`check`] reads the operation's content and decides,
//! without writing, whether it is accepted (the errors go into the signed acknowledgement);
//! [`apply`] then writes its effect in the transaction that stores the receipt, re-checking
//! every transition, so a concurrent change cannot slip between the two.
//! [`record_at_once`] is the same for an accepted document in one round trip to the store (one
//! statement on PostgreSQL, one script in the transaction on SQLite), with the usual way as its
//! fallback.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::domestic::answer_cancellation;
use super::{refused, unknown, validation_errors, FlowError};
use crate::config::{CancellationDecision, Partner};
use crate::lifecycle::{automatic_cancellation_answer, transition, Direction, Event, Role};
use crate::message::business::{Cancellation, CancellationStatus, DocumentId, Feedback};
use crate::message::request::{Content, InboundRequest};
use crate::message::{AckError, Outgoing};
use crate::payload::{DocumentKind, Lpco, ValidationError};
use crate::state::Core;
use crate::store::alerts::{self, NewAlert};
use crate::store::amendments;
use crate::store::certificates::{self, CertificateRecord, NewCertificate};
use crate::store::events::{self, EventKind, NewEvent};
use crate::store::messages::sha256_hex;
use crate::store::{approved_exporters, inbound, outbox, treatments, StoreError, Tx};

/// What an accepted request will write.
#[derive(Debug)]
pub enum Effect {
    /// Nothing (a rejected request, or a re-delivery of a document already held).
    None,
    /// A CO or DO to store as `received`.
    Document(ReceivedDocument),
    /// A cancellation notification on an inbound certificate.
    Cancellation { certificate_id: String, cancellation: Cancellation },
    /// The importer's answer to our cancellation notification.
    CancellationStatus { certificate_id: String, status: CancellationStatus },
    /// The importer's origin-treatment decision on our certificate.
    Feedback { certificate_id: String, feedback: Feedback },
}

impl Effect {
    /// Whether applying it may queue a message for delivery: the automatic answer to a
    /// cancellation notification, or the replacement re-issued after an accepted cancellation.
    pub fn may_queue(&self) -> bool {
        matches!(self, Effect::Cancellation { .. } | Effect::CancellationStatus { .. })
    }

    /// Whether [`record_at_once`] can write it: a CO or DO without a verification flag (a
    /// flagged one also raises an alert).
    pub fn recorded_at_once(&self) -> bool {
        matches!(self, Effect::Document(doc) if doc.verification_flag.is_none())
    }
}

#[derive(Debug)]
pub struct ReceivedDocument {
    pub kind: DocumentKind,
    pub reference: String,
    pub content_sha256: String,
    pub xml: String,
    /// Set when a DO's approved exporter is not on the partner's list.
    pub verification_flag: Option<String>,
}

/// The business decision on a request: errors for the acknowledgement (empty = accepted) and
/// the effect to apply.
pub struct Decision {
    pub errors: Vec<AckError>,
    pub effect: Effect,
}

impl Decision {
    fn rejected(errors: Vec<AckError>) -> Self {
        Decision { errors, effect: Effect::None }
    }
    fn accepted(effect: Effect) -> Self {
        Decision { errors: Vec::new(), effect }
    }
}

/// Decides a verified request from `partner` (any operation but GetCO). `held`: what the
/// store's look before the decision found of the certificate a document would be stored as,
/// or `Held::Nothing` assumed by a new document's attempt (`receive::optimistic`), whose write
/// checks it.
pub async fn check(
    core: &Core,
    partner: &Partner,
    request: &InboundRequest,
    held: &inbound::Held,
) -> Result<Decision, StoreError> {
    let op_name = request.operation.request_element();
    let header = &request.header;
    if header.receiver != core.settings.party {
        return Ok(Decision::rejected(vec![AckError::new(
            "MSG-WRONG-RECEIVER",
            format!("receiver {} is not this gateway ({})", header.receiver, core.settings.party),
            format!("/{op_name}/MessageHeader/ReceiverPartyID"),
        )]));
    }
    match &request.content {
        Content::Invalid(errors) => Ok(Decision::rejected(errors.clone())),
        Content::Document { kind, lpco_xml, read } => check_document(core, partner, *kind, lpco_xml, read, held).await,
        Content::Cancellation(cancellation) => {
            let path = format!("/{op_name}/Cancellation/DocumentReference");
            let resolved = resolve(core, partner, &cancellation.document, Event::CancellationNotified, &path).await?;
            Ok(match resolved {
                Err(e) => Decision::rejected(vec![e]),
                Ok(cert) => Decision::accepted(Effect::Cancellation {
                    certificate_id: cert.id,
                    cancellation: cancellation.clone(),
                }),
            })
        }
        Content::CancellationStatus(status) => {
            let event = if status.accepted { Event::CancellationAccepted } else { Event::CancellationDeclined };
            let path = format!("/{op_name}/CancellationStatus/DocumentReference");
            let cert = match resolve(core, partner, &status.document, event, &path).await? {
                Err(e) => return Ok(Decision::rejected(vec![e])),
                Ok(cert) => cert,
            };
            // The answer must name one of our notifications about this certificate that has
            // not been answered yet.
            let path = format!("/{op_name}/CancellationStatus/CancellationMessageID");
            let mut tx = core.store.begin().await?;
            let answered = amendments::by_message(&mut tx, &cert.id, &status.cancellation_message_id).await?;
            tx.rollback().await?;
            Ok(match answered {
                Some(a) => match a.state.as_str() {
                    amendments::REQUESTED | amendments::UNDELIVERED => Decision::accepted(Effect::CancellationStatus {
                        certificate_id: cert.id,
                        status: status.clone(),
                    }),
                    _ => Decision::rejected(vec![AckError::new(
                        crate::lifecycle::LC_STATE,
                        "this cancellation notification was already answered",
                        path,
                    )]),
                },
                None => Decision::rejected(vec![unknown(&path)]),
            })
        }
        Content::Feedback(feedback) => {
            let path = format!("/{op_name}/Feedback/DocumentReference");
            Ok(match resolve(core, partner, &feedback.document, Event::TreatmentDecided, &path).await? {
                Err(e) => Decision::rejected(vec![e]),
                Ok(cert) => {
                    Decision::accepted(Effect::Feedback { certificate_id: cert.id, feedback: feedback.clone() })
                }
            })
        }
        Content::Lookup(_) => Ok(Decision::rejected(vec![AckError::new(
            "MSG-UNKNOWN-OPERATION",
            "GetCO is answered by a GetCOResponse, not an acknowledgement",
            format!("/{op_name}"),
        )])),
    }
}

/// The certificate a partner's message is about, if it was exchanged with that partner, and
/// whether the partner's role allows `event` in its current state.
async fn resolve(
    state: &Core,
    partner: &Partner,
    document: &DocumentId,
    event: Event,
    path: &str,
) -> Result<Result<CertificateRecord, AckError>, StoreError> {
    let found = certificates::find(state.store.pool(), &document.issuer, &document.reference).await?;
    let Some(cert) = found.into_iter().find(|c| c.partner == partner.party) else {
        return Ok(Err(unknown(path)));
    };
    let role = Role::of_partner(cert.direction);
    Ok(match transition(cert.direction, Some(cert.state), event, role) {
        Ok(_) => Ok(cert),
        Err(refusal) => Err(refused(&refusal, path)),
    })
}

/// SendCO / SendDO: a valid document of the right kind (`read`: `lpco_xml` read and validated
/// by the binding), not conflicting with one already received (`held`, or read here if it was
/// not looked for); a DO's approved exporter is checked against the partner's list.
async fn check_document(
    state: &Core,
    partner: &Partner,
    kind: DocumentKind,
    lpco_xml: &str,
    read: &Result<Box<Lpco>, Vec<ValidationError>>,
    held: &inbound::Held,
) -> Result<Decision, StoreError> {
    let doc = match read {
        Ok(doc) => doc,
        Err(errors) => return Ok(Decision::rejected(validation_errors(errors.clone()))),
    };
    let reference = doc.reference().to_owned();
    let content_sha256 = sha256_hex(lpco_xml.as_bytes());
    let held_digest = match held {
        inbound::Held::NotLooked => inbound::received_certificate(&state.store, &partner.party, &reference)
            .await?
            .map(|existing| existing.content_sha256),
        inbound::Held::Nothing => None,
        inbound::Held::Content(digest) => Some(digest.clone()),
    };
    match held_digest {
        Some(existing) if existing == content_sha256 => return Ok(Decision::accepted(Effect::None)),
        Some(_) => {
            return Ok(Decision::rejected(vec![AckError::new(
                "CO-CONFLICT",
                format!("certificate {reference} of {} was already received with different content", partner.party),
                "/LPCO/ID",
            )]))
        }
        None => {}
    }
    let verification_flag = match (kind, doc.approved_exporter_authorisation_id.as_deref()) {
        (DocumentKind::Do, Some(authorisation)) => {
            let now = state.clock.now();
            (!approved_exporters::is_approved(&state.store, &partner.party, authorisation, now).await?).then(|| {
                format!("approved exporter {authorisation} is not on {}'s list of approved exporters", partner.party)
            })
        }
        _ => None,
    };
    Ok(Decision::accepted(Effect::Document(ReceivedDocument {
        kind,
        reference,
        content_sha256,
        xml: lpco_xml.to_owned(),
        verification_flag,
    })))
}

/// A received document's certificate comes from this event, caused by this role, with this
/// cause in its first history row.
const RECEIVED: (Event, Role) = (Event::ReceivedFromPartner, Role::ExportingPartner);
const RECEIVED_CAUSE: &str = "received from partner";

/// The certificate a received document is stored as.
fn certificate_of<'a>(partner: &'a Partner, doc: &'a ReceivedDocument) -> NewCertificate<'a> {
    NewCertificate {
        issuer: &partner.party,
        reference: &doc.reference,
        direction: Direction::Inbound,
        partner: &partner.party,
        kind: doc.kind,
        replaces: None,
        reference_code: None,
        verification_flag: doc.verification_flag.as_deref(),
        content_sha256: &doc.content_sha256,
        co_xml: &doc.xml,
    }
}

/// The `document.received` event's detail (docs/backend.md).
fn document_detail(replaces: Option<&str>, doc: &ReceivedDocument) -> serde_json::Value {
    json!({
        "replaces": replaces,
        "verification_flag": doc.verification_flag,
        "content_sha256": doc.content_sha256,
    })
}

/// Stores `receipt` of an accepted request and its effect in one round trip where the store
/// can: a CO or DO without a verification flag (a flagged one also raises an alert), on
/// PostgreSQL as one statement on its own (`tx` `None`, [`inbound::record_document`]), on
/// SQLite as one script in `tx` ([`inbound::record_document_in`]). Returns the certificate if
/// it did; `None` when nothing was written (a unique key taken, or an awaited replacement) and
/// the caller must take the usual way: store the receipt with [`inbound::open`], [`apply`] and
/// [`inbound::close`] in one transaction (`tx` if given), which also decides a concurrent copy
/// or a replay, or, after an attempt on an assumed decision, decide again after the look.
pub async fn record_at_once(
    core: &Core,
    partner: &Partner,
    receipt: &inbound::Receipt<'_>,
    effect: &Effect,
    now: DateTime<Utc>,
    tx: Option<&mut Tx<'_>>,
) -> Result<Option<String>, FlowError> {
    let Effect::Document(doc) = effect else { return Ok(None) };
    if !effect.recorded_at_once() {
        return Ok(None);
    }
    let certificate = certificate_of(partner, doc);
    let state = transition(Direction::Inbound, None, RECEIVED.0, RECEIVED.1).map_err(StoreError::from)?;
    // Not a replacement: the statement writes nothing when one is awaited.
    let event_detail = document_detail(None, doc);
    let fused =
        inbound::FusedDocument { certificate: &certificate, state, cause: RECEIVED_CAUSE, event_detail: &event_detail };
    Ok(match tx {
        None => inbound::record_document(&core.store, receipt, &fused, now).await?,
        Some(tx) => inbound::record_document_in(tx, &core.store, receipt, &fused, now).await?,
    })
}

/// Writes an accepted request's effect in `tx`. Returns the certificate it concerns.
pub async fn apply(
    tx: &mut Tx<'_>,
    state: &Core,
    partner: &Partner,
    effect: &Effect,
    message_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, FlowError> {
    let store = &state.store;
    let settings = &state.settings;
    let webhook = settings.alerts.webhook_url.is_some();
    match effect {
        Effect::None => Ok(None),
        Effect::Document(doc) => {
            let cert = certificates::insert(
                tx,
                &certificate_of(partner, doc),
                RECEIVED.0,
                RECEIVED.1,
                RECEIVED_CAUSE,
                Some(message_id),
                now,
            )
            .await?;
            let replaces = amendments::link_replacement(tx, &partner.party, &doc.reference, &cert.id).await?;
            if let Some(original) = &replaces {
                let cause = format!("replaces {original} (announced by its accepted cancellation)");
                certificates::note(tx, &cert.id, &cause, Some(message_id), now).await?;
            }
            let event = NewEvent {
                kind: EventKind::DocumentReceived,
                certificate_id: &cert.id,
                message_id: Some(message_id),
                detail: document_detail(replaces.as_deref(), doc),
            };
            events::append(tx, store, &event, now).await?;
            if let Some(flag) = &doc.verification_flag {
                tracing::warn!(event = "do_unlisted_exporter", partner = %partner.party, reference = %doc.reference, "{flag}");
                let alert = NewAlert {
                    name: alerts::DO_UNLISTED_EXPORTER,
                    partner: Some(&partner.party),
                    message_id: Some(message_id),
                    certificate_id: Some(&cert.id),
                    detail: flag,
                };
                alerts::raise(tx, &alert, webhook, now).await?;
            }
            Ok(Some(cert.id))
        }
        Effect::Cancellation { certificate_id, cancellation } => {
            let cause = format!("cancellation notified by {}: {}", partner.party, cancellation.reason);
            let role = Role::ExportingPartner;
            certificates::apply(
                tx,
                store,
                certificate_id,
                Event::CancellationNotified,
                role,
                &cause,
                Some(message_id),
                now,
            )
            .await?;
            let amendment_id = amendments::insert(
                tx,
                &amendments::NewAmendment {
                    certificate_id,
                    reason: &cancellation.reason,
                    replacement_reference: cancellation.replacement_reference.as_deref(),
                    replacement_xml: None,
                    message_id,
                },
                now,
            )
            .await?;
            let detail = json!({
                "amendment_id": amendment_id,
                "reason": cancellation.reason,
                "replacement_reference": cancellation.replacement_reference,
                "decision": if partner.cancellation_decision == CancellationDecision::Officer { "officer" } else { "automatic" },
            });
            let event = NewEvent {
                kind: EventKind::CancellationNotified,
                certificate_id,
                message_id: Some(message_id),
                detail,
            };
            events::append(tx, store, &event, now).await?;
            let officer = partner.cancellation_decision == CancellationDecision::Officer;
            let decided = treatments::any_for(tx, certificate_id).await?;
            if let Some(answer) = automatic_cancellation_answer(officer, decided) {
                let cert = certificates::get_in(tx, store, certificate_id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("certificate {certificate_id}")))?;
                let accept = answer == Event::CancellationAccepted;
                let reason =
                    (!accept).then_some("an origin-based treatment decision was already made on this certificate");
                answer_cancellation(
                    tx,
                    store,
                    settings,
                    &cert,
                    accept,
                    reason,
                    Role::Gateway,
                    "gateway (automatic)",
                    now,
                )
                .await?;
            }
            Ok(Some(certificate_id.clone()))
        }
        Effect::CancellationStatus { certificate_id, status } => {
            let answered =
                amendments::by_message(tx, certificate_id, &status.cancellation_message_id).await?.ok_or_else(
                    || StoreError::NotFound(format!("amendment of message {}", status.cancellation_message_id)),
                )?;
            let late = answered.state == amendments::UNDELIVERED;
            let cause = format!(
                "cancellation {} by {}{}{}",
                if status.accepted { "accepted" } else { "declined" },
                partner.party,
                if late { " (answer to a notification given up as undelivered)" } else { "" },
                status.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            );
            let decided = if status.accepted { amendments::ACCEPTED } else { amendments::DECLINED };
            let by = partner.party.as_str();
            amendments::decide(tx, &answered.id, decided, status.reason.as_deref(), by, None, now).await?;
            let kind = if status.accepted { EventKind::CancellationAccepted } else { EventKind::CancellationDeclined };
            let detail = |replacement: Option<&str>| {
                json!({
                    "amendment_id": answered.id,
                    "decided_by": partner.party,
                    "reason": status.reason,
                    "replacement_reference": answered.replacement_reference,
                    "replacement_certificate_id": replacement,
                    "cancellation_message_id": status.cancellation_message_id,
                    "late": late,
                })
            };
            if late && !status.accepted {
                // The certificate already went back to valid (or moved on to a later amendment).
                certificates::note(tx, certificate_id, &cause, Some(message_id), now).await?;
                let event = NewEvent { kind, certificate_id, message_id: Some(message_id), detail: detail(None) };
                events::append(tx, store, &event, now).await?;
                return Ok(Some(certificate_id.clone()));
            }
            let event = if status.accepted { Event::CancellationAccepted } else { Event::CancellationDeclined };
            certificates::apply(
                tx,
                store,
                certificate_id,
                event,
                Role::ImportingPartner,
                &cause,
                Some(message_id),
                now,
            )
            .await?;
            let mut replacement = None;
            if status.accepted {
                amendments::close_superseded(tx, certificate_id, &answered.id, now).await?;
                replacement = reissue(tx, state, certificate_id, &answered, now).await?;
                if let Some(replacement) = &replacement {
                    amendments::set_replacement(tx, &answered.id, replacement).await?;
                }
            }
            let event =
                NewEvent { kind, certificate_id, message_id: Some(message_id), detail: detail(replacement.as_deref()) };
            events::append(tx, store, &event, now).await?;
            Ok(Some(certificate_id.clone()))
        }
        Effect::Feedback { certificate_id, feedback } => {
            let cause = format!("origin-based treatment {} reported by {}", feedback.decision, partner.party);
            let role = Role::ImportingPartner;
            certificates::apply(
                tx,
                store,
                certificate_id,
                Event::TreatmentDecided,
                role,
                &cause,
                Some(message_id),
                now,
            )
            .await?;
            treatments::insert(
                tx,
                &treatments::NewDecision {
                    certificate_id,
                    decision: &feedback.decision,
                    declaration_reference: feedback.declaration_reference.as_deref(),
                    reason_codes: &feedback.reason_codes,
                    remarks: feedback.remarks.as_deref(),
                    recorded_by: &partner.party,
                    message_id: Some(message_id),
                },
                now,
            )
            .await?;
            let detail = json!({
                "decision": feedback.decision,
                "declaration_reference": feedback.declaration_reference,
                "reason_codes": feedback.reason_codes,
                "remarks": feedback.remarks,
            });
            let event =
                NewEvent { kind: EventKind::TreatmentReceived, certificate_id, message_id: Some(message_id), detail };
            events::append(tx, store, &event, now).await?;
            Ok(Some(certificate_id.clone()))
        }
    }
}

/// The importer accepted our cancellation: the replacement held by the amendment becomes a new
/// outbound certificate, linked to the original, with its own SendCO — in the same transaction.
/// A replacement whose reference was taken meanwhile raises an alert instead of failing the
/// answer (the cancellation itself stands).
async fn reissue(
    tx: &mut Tx<'_>,
    state: &Core,
    original_id: &str,
    amendment: &amendments::Amendment,
    now: DateTime<Utc>,
) -> Result<Option<String>, FlowError> {
    let settings = &state.settings;
    let original = certificates::get_in(tx, &state.store, original_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("certificate {original_id}")))?;
    let (Some(reference), Some(xml)) = (&amendment.replacement_reference, &amendment.replacement_xml) else {
        return Ok(None);
    };
    if certificates::find_in(tx, &settings.party, reference, Direction::Outbound).await?.is_some() {
        let detail =
            format!("replacement {reference} of {} could not be queued: its reference is taken", original.reference);
        let alert = NewAlert {
            name: alerts::REPLACEMENT_CONFLICT,
            partner: Some(&original.partner),
            message_id: Some(&amendment.message_id),
            certificate_id: Some(original_id),
            detail: &detail,
        };
        alerts::raise(tx, &alert, settings.alerts.webhook_url.is_some(), now).await?;
        return Ok(None);
    }
    let message = Outgoing::Document { kind: original.kind, lpco_xml: xml };
    let operation = message.operation();
    let (message_id, body) = super::outgoing(settings, &original.partner, &message, now);
    let code = super::lookup::new_reference_code();
    let new = NewCertificate {
        issuer: &settings.party,
        reference,
        direction: Direction::Outbound,
        partner: &original.partner,
        kind: original.kind,
        replaces: Some(original_id),
        reference_code: Some(&code),
        verification_flag: None,
        content_sha256: &sha256_hex(xml.as_bytes()),
        co_xml: xml,
    };
    let cause = format!("re-issued, replacing {} (cancellation accepted)", original.reference);
    let record = outbox::submit_in(tx, &new, operation.name(), &message_id.to_string(), &body, &cause, now).await?;
    Ok(Some(record.id))
}
