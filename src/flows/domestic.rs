//! Flows the domestic systems start: the issuing system's amendment request (T2, A.21–A.26),
//! the officer's answer to a cancellation (A.27–A.28) and the clearance system's
//! origin-treatment decision (T3, A.49–A.52). Each is one transaction: transition, record, and
//! the message to the partner queued.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{queue, refused, unknown, validation_errors, FlowError};
use crate::config::Settings;
use crate::lifecycle::{Direction, Event, Role};
use crate::message::business::{
    Cancellation, CancellationStatus, DocumentId, Feedback, MAX_REASON_CODES, TREATMENT_DECISIONS,
};
use crate::message::text::{describe, forbidden_char};
use crate::message::{AckError, Outgoing};
use crate::store::amendments::{self, NewAmendment};
use crate::store::certificates::{self, CertificateRecord};
use crate::store::events::{self, EventKind, NewEvent};
use crate::store::treatments::{self, NewDecision};
use crate::store::{Store, StoreError, Tx};

/// Checks a text: mandatory or not, at most `max` characters, XML characters only (free texts
/// may have line breaks, codes may not).
fn text(errors: &mut Vec<AckError>, field: &str, value: Option<&str>, max: usize, required: bool, single_line: bool) {
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        if required {
            errors.push(AckError::new("API-FIELD", format!("{field} is mandatory"), field));
        }
    } else if value.chars().count() > max {
        errors.push(AckError::new("API-FIELD", format!("{field} is longer than {max} characters"), field));
    } else if let Some(c) = forbidden_char(value, single_line) {
        errors.push(AckError::new("API-FIELD", format!("{field} {}", describe(c)), field));
    }
}

/// A refusal of the lifecycle about the certificate named by the route's `id`.
fn refused_at_id(e: StoreError) -> FlowError {
    match e {
        StoreError::Illegal(r) => FlowError::Refused(refused(&r, "id")),
        other => other.into(),
    }
}

/// Whether the lifecycle lets `role` cause `event` on `cert` now: refused before anything is
/// read, validated or queued (`certificates::apply` checks again under the row lock).
fn allowed(cert: &CertificateRecord, event: Event, role: Role) -> Result<(), FlowError> {
    crate::lifecycle::transition(cert.direction, Some(cert.state), event, role)
        .map(|_| ())
        .map_err(|r| FlowError::Refused(refused(&r, "id")))
}

/// A trimmed optional text; empty counts as absent (the schema's texts are at least one
/// character).
fn trimmed(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// The certificate `id` in `tx`, or `LC-UNKNOWN`.
async fn certificate(tx: &mut Tx<'_>, store: &Store, id: &str) -> Result<CertificateRecord, FlowError> {
    certificates::get_in(tx, store, id).await?.ok_or_else(|| FlowError::Refused(unknown("id")))
}

/// The issuing system's amendment request.
#[derive(Debug, Deserialize)]
pub struct AmendmentRequest {
    pub reason: String,
    /// The replacement CO (LPCO XML), pushed when the importer accepts the cancellation.
    pub replacement: String,
}

/// What an accepted amendment request queued.
#[derive(Debug, serde::Serialize)]
pub struct AmendmentQueued {
    pub amendment_id: String,
    pub message_id: String,
    pub replacement_reference: String,
}

/// Amendment = cancellation + re-issue: validates the replacement, moves the CO to
/// `cancellation_requested`, stores the amendment and queues `SendCancellation`.
pub async fn request_amendment(
    store: &Store,
    settings: &Settings,
    certificate_id: &str,
    request: &AmendmentRequest,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<AmendmentQueued, FlowError> {
    let mut errors = Vec::new();
    text(&mut errors, "reason", Some(&request.reason), 512, true, false);
    let mut tx = store.begin().await?;
    let original = certificate(&mut tx, store, certificate_id).await?;
    // Whether it may be amended at all comes before what the replacement looks like.
    allowed(&original, Event::AmendmentRequested, Role::Issuer)?;
    let replacement = match crate::payload::parse_document(&request.replacement, original.kind) {
        Ok(doc) => Some(doc),
        Err(e) => {
            errors.extend(validation_errors(e).into_iter().map(|mut e| {
                e.path = format!("replacement{}", e.path);
                e
            }));
            None
        }
    };
    let replacement_xml = match &replacement {
        Some(doc) if doc.reference() == original.reference => {
            errors.push(AckError::new(
                "AMEND-SAME-REFERENCE",
                "the replacement must carry a new reference number",
                "replacement/LPCO/ID",
            ));
            None
        }
        Some(doc) => match crate::payload::to_xml(doc) {
            Ok(xml) => Some((doc.reference().to_owned(), xml)),
            Err(e) => {
                errors.push(AckError::new("CO-XML-MALFORMED", e, "replacement"));
                None
            }
        },
        None => None,
    };
    let Some((replacement_reference, replacement_xml)) = replacement_xml.filter(|_| errors.is_empty()) else {
        return Err(FlowError::Invalid(errors));
    };
    certificates::lock_reference(&mut tx, store, &settings.party, &replacement_reference).await?;
    if certificates::find_in(&mut tx, &settings.party, &replacement_reference, Direction::Outbound).await?.is_some()
        || amendments::replacement_reserved(&mut tx, &replacement_reference).await?
    {
        return Err(FlowError::Invalid(vec![AckError::new(
            "CO-DUPLICATE",
            format!("certificate {replacement_reference} was already submitted, or is the replacement of another open amendment"),
            "replacement/LPCO/ID",
        )]));
    }
    let cause = format!("amendment requested by {actor}: {}", request.reason.trim());
    let cancellation = Cancellation {
        document: DocumentId { issuer: original.issuer.clone(), reference: original.reference.clone() },
        reason: request.reason.trim().to_owned(),
        replacement_reference: Some(replacement_reference.clone()),
    };
    let message_id =
        queue(&mut tx, settings, &original.id, &original.partner, &Outgoing::Cancellation(&cancellation), now).await?;
    // The transition comes after queueing only for the message ID in its history; a refusal
    // rolls everything back.
    certificates::apply(
        &mut tx,
        store,
        &original.id,
        Event::AmendmentRequested,
        Role::Issuer,
        &cause,
        Some(&message_id),
        now,
    )
    .await
    .map_err(refused_at_id)?;
    let amendment_id = amendments::insert(
        &mut tx,
        &NewAmendment {
            certificate_id: &original.id,
            reason: request.reason.trim(),
            replacement_reference: Some(&replacement_reference),
            replacement_xml: Some(&replacement_xml),
            message_id: &message_id,
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(AmendmentQueued { amendment_id, message_id, replacement_reference })
}

/// The officer's answer to a pending cancellation.
#[derive(Debug, Deserialize)]
pub struct CancellationAnswer {
    /// `accept` or `decline`.
    pub decision: String,
    pub reason: Option<String>,
}

/// Answers a cancellation notification on an inbound certificate, in `tx`: the transition
/// (caused by `role`), the amendment closed, `SendCancellationStatus` queued. Returns the
/// status message ID.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn answer_cancellation(
    tx: &mut Tx<'_>,
    store: &Store,
    settings: &Settings,
    cert: &CertificateRecord,
    accept: bool,
    reason: Option<&str>,
    role: Role,
    decided_by: &str,
    now: DateTime<Utc>,
) -> Result<String, FlowError> {
    let event = if accept { Event::CancellationAccepted } else { Event::CancellationDeclined };
    allowed(cert, event, role)?;
    let open = amendments::open_for(tx, &cert.id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("certificate {} has no open amendment", cert.id)))?;
    let status = CancellationStatus {
        document: DocumentId { issuer: cert.issuer.clone(), reference: cert.reference.clone() },
        cancellation_message_id: open.message_id.clone(),
        accepted: accept,
        reason: reason.map(str::to_owned),
    };
    let message_id = queue(tx, settings, &cert.id, &cert.partner, &Outgoing::CancellationStatus(&status), now).await?;
    let cause = format!(
        "cancellation {} by {decided_by}{}",
        if accept { "accepted" } else { "declined" },
        reason.map(|r| format!(": {r}")).unwrap_or_default()
    );
    certificates::apply(tx, store, &cert.id, event, role, &cause, Some(&message_id), now)
        .await
        .map_err(refused_at_id)?;
    let state = if accept { amendments::ACCEPTED } else { amendments::DECLINED };
    amendments::decide(tx, &open.id, state, reason, decided_by, None, now).await?;
    let kind = if accept { EventKind::CancellationAccepted } else { EventKind::CancellationDeclined };
    let detail = json!({
        "amendment_id": open.id,
        "decided_by": decided_by,
        "reason": reason,
        "replacement_reference": open.replacement_reference,
        "answer_message_id": message_id,
        "late": false,
    });
    let event = NewEvent { kind, certificate_id: &cert.id, message_id: Some(&open.message_id), detail };
    events::append(tx, store, &event, now).await?;
    Ok(message_id)
}

/// The officer accepts or declines a pending cancellation (partner configured with
/// `cancellation_decision = "officer"`).
pub async fn decide_cancellation(
    store: &Store,
    settings: &Settings,
    certificate_id: &str,
    answer: &CancellationAnswer,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<String, FlowError> {
    let accept = match answer.decision.as_str() {
        "accept" => true,
        "decline" => false,
        other => {
            return Err(FlowError::Invalid(vec![AckError::new(
                "API-FIELD",
                format!("decision {other:?} is neither accept nor decline"),
                "decision",
            )]))
        }
    };
    let reason = trimmed(&answer.reason);
    let mut errors = Vec::new();
    text(&mut errors, "reason", reason.as_deref(), 512, !accept, false);
    if !errors.is_empty() {
        return Err(FlowError::Invalid(errors));
    }
    let mut tx = store.begin().await?;
    let cert = certificate(&mut tx, store, certificate_id).await?;
    let reason = reason.as_deref();
    let id = answer_cancellation(&mut tx, store, settings, &cert, accept, reason, Role::Clearance, actor, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(id)
}

/// The clearance system's origin-treatment decision on a received certificate.
#[derive(Debug, Deserialize)]
pub struct TreatmentRequest {
    pub decision: String,
    pub declaration_reference: Option<String>,
    #[serde(default)]
    pub reason_codes: Vec<String>,
    pub remarks: Option<String>,
}

/// Records the decision and queues `SendFeedback` to the exporter. Returns its message ID.
pub async fn record_treatment(
    store: &Store,
    settings: &Settings,
    certificate_id: &str,
    request: &TreatmentRequest,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<String, FlowError> {
    // What is checked is what is stored and sent: trimmed, empty texts absent.
    let declaration_reference = trimmed(&request.declaration_reference);
    let remarks = trimmed(&request.remarks);
    let reason_codes: Vec<String> = request.reason_codes.iter().map(|c| c.trim().to_owned()).collect();
    let mut errors = Vec::new();
    if !TREATMENT_DECISIONS.contains(&request.decision.as_str()) {
        errors.push(AckError::new("API-FIELD", format!("decision must be one of {TREATMENT_DECISIONS:?}"), "decision"));
    }
    text(&mut errors, "declaration_reference", declaration_reference.as_deref(), 70, false, true);
    text(&mut errors, "remarks", remarks.as_deref(), 512, false, false);
    if reason_codes.len() > MAX_REASON_CODES {
        errors.push(AckError::new("API-FIELD", format!("at most {MAX_REASON_CODES} reason codes"), "reason_codes"));
    }
    for (i, code) in reason_codes.iter().enumerate().take(MAX_REASON_CODES) {
        text(&mut errors, &format!("reason_codes[{i}]"), Some(code), 35, true, true);
    }
    if !errors.is_empty() {
        return Err(FlowError::Invalid(errors));
    }
    let mut tx = store.begin().await?;
    let cert = certificate(&mut tx, store, certificate_id).await?;
    let feedback = Feedback {
        document: DocumentId { issuer: cert.issuer.clone(), reference: cert.reference.clone() },
        decision: request.decision.clone(),
        declaration_reference,
        reason_codes,
        remarks,
    };
    let message_id = queue(&mut tx, settings, &cert.id, &cert.partner, &Outgoing::Feedback(&feedback), now).await?;
    let cause = format!("origin-based treatment {} recorded by {actor}", request.decision);
    certificates::apply(
        &mut tx,
        store,
        &cert.id,
        Event::TreatmentDecided,
        Role::Clearance,
        &cause,
        Some(&message_id),
        now,
    )
    .await
    .map_err(refused_at_id)?;
    treatments::insert(
        &mut tx,
        &NewDecision {
            certificate_id: &cert.id,
            decision: &feedback.decision,
            declaration_reference: feedback.declaration_reference.as_deref(),
            reason_codes: &feedback.reason_codes,
            remarks: feedback.remarks.as_deref(),
            recorded_by: actor,
            message_id: Some(&message_id),
        },
        now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(message_id)
}

/// What the issuing system submitted, once queued.
#[derive(Debug)]
pub struct Submitted {
    pub certificate: CertificateRecord,
    pub message_id: String,
    /// Annex III: the code printed on a CO, which a partner's GetCO must present.
    pub reference_code: Option<String>,
    /// Its message, leased for a delivery worker of this process (`lease` given and taken).
    pub leased: Option<crate::store::outbox::OutboxMessage>,
}

/// Why a submission was not queued. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The document is not valid: every problem, with its path.
    #[error("the document is not valid ({} errors)", .0.len())]
    Invalid(Vec<AckError>),
    /// A document with this identity was already submitted.
    #[error("{0} was already submitted")]
    Duplicate(String),
    #[error(transparent)]
    Store(StoreError),
}

/// A CO or DO from the issuing system for `partner` (Annex I A.1–A.6, Annex IV): screened,
/// validated, stored as an outbound certificate and queued as `SendCO`/`SendDO`, in one
/// transaction. The document travels as the model serialises it: exactly what was validated.
/// With `lease`, its message is leased for a worker of this process when a claim would take it
/// now (`outbox::submit_leased`).
pub async fn submit(
    store: &Store,
    settings: &Settings,
    partner: &str,
    kind: crate::payload::DocumentKind,
    body: &[u8],
    now: DateTime<Utc>,
    lease: Option<crate::store::outbox::Lease<'_>>,
) -> Result<Submitted, SubmitError> {
    use crate::payload::DocumentKind;
    let malformed = |message: String| SubmitError::Invalid(vec![AckError::new("CO-XML-MALFORMED", message, "/")]);
    crate::wssec::limits::precheck(body, &settings.xml_limits()).map_err(|e| malformed(e.to_string()))?;
    let text = std::str::from_utf8(body).map_err(|_| malformed("body is not UTF-8".into()))?;
    let document =
        crate::payload::parse_document(text, kind).map_err(|e| SubmitError::Invalid(validation_errors(e)))?;
    let xml = crate::payload::to_xml(&document).map_err(malformed)?;
    let message = Outgoing::Document { kind, lpco_xml: &xml };
    let operation = message.operation();
    let (message_id, body_xml) = super::outgoing(settings, partner, &message, now);
    let reference_code = (kind == DocumentKind::Co).then(super::lookup::new_reference_code);
    let new = certificates::NewCertificate {
        issuer: &settings.party,
        reference: document.reference(),
        direction: Direction::Outbound,
        partner,
        kind,
        replaces: None,
        reference_code: reference_code.as_deref(),
        verification_flag: None,
        content_sha256: &crate::store::messages::sha256_hex(xml.as_bytes()),
        co_xml: &xml,
    };
    let message_id = message_id.to_string();
    match crate::store::outbox::submit_leased(store, &new, operation.name(), &message_id, &body_xml, now, lease).await {
        Ok((certificate, leased)) => Ok(Submitted { certificate, message_id, reference_code, leased }),
        Err(StoreError::Duplicate(what)) => Err(SubmitError::Duplicate(what)),
        Err(e) => Err(SubmitError::Store(e)),
    }
}
