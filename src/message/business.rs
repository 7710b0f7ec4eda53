//! The business content of the lifecycle operations (seed 3.6 data clusters): the cancellation
//! notification, its answer, the origin-treatment feedback, and the look-up (Annex III) request
//! and its result. Their SOAP form is `soap::business`.
//!
//! Must never: decide whether the content is allowed (that is the lifecycle's).

/// Identifies a certificate across gateways: its issuer and its reference number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentId {
    pub issuer: String,
    pub reference: String,
}

/// T2: the exporter notifies the cancellation of a certificate, to be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    pub document: DocumentId,
    pub reason: String,
    pub replacement_reference: Option<String>,
}

/// T2 answer: the importer accepts or declines the cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationStatus {
    pub document: DocumentId,
    /// The MessageID of the SendCancellation answered: an answer applies to that notification
    /// only, never to a later one about the same certificate.
    pub cancellation_message_id: String,
    pub accepted: bool,
    pub reason: Option<String>,
}

/// The origin-based treatment decisions of the schema.
pub const TREATMENT_DECISIONS: [&str; 3] = ["Granted", "Rejected", "PartiallyGranted"];

/// At most this many reason codes in one origin-treatment decision (the schema's maxOccurs).
pub const MAX_REASON_CODES: usize = 99;

/// T3: the importer's origin-based treatment decision on a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub document: DocumentId,
    pub decision: String,
    pub declaration_reference: Option<String>,
    pub reason_codes: Vec<String>,
    pub remarks: Option<String>,
}

/// Annex III: a look-up of a certificate by reference number and reference code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub document: DocumentId,
    pub reference_code: String,
}

/// The outcome of a look-up, as carried by `cc:GetCOResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupResult {
    /// The certificate (its `LPCO` element) and whether it is still valid or was cancelled.
    Found { status: String, lpco_xml: String },
    /// No certificate with this reference and code for the asking partner — the same answer
    /// whether the reference exists or not.
    NotFound,
}
