//! The business flows of the lifecycle after a certificate is pushed (seed 3.5–3.7, Annex I
//! P.3–P.5, Annex III, Annex IV): what each partner operation and each domestic request does.
//! Every flow runs in one transaction that applies the lifecycle transition (with the caller's
//! role), writes what the flow records (amendment, decision, claim ...) and queues the messages
//! it must send, so nothing is half-done.
//!
//! - [`inbound`]: SendCO, SendDO, SendCancellation, SendCancellationStatus, SendFeedback from a
//!   partner: checked before the acknowledgement is signed, applied when it is stored.
//! - [`domestic`]: amendment requests, the officer's cancellation answer, treatment decisions.
//! - [`lookup`]: GetCO answered for a partner, reference codes (Annex III); asking a partner
//!   is `delivery::lookup`'s.
//!
//! Must never: parse SOAP, verify or sign anything, or touch keys (the SOAP layer hands in
//! typed content; [`outgoing`] asks the binding for a message's form), or change a
//! certificate's state other than through `store::certificates::apply`.

pub mod domestic;
pub mod inbound;
pub mod lookup;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Settings;
use crate::lifecycle::{Refusal, LC_UNKNOWN};
use crate::message::{AckError, Outgoing};
use crate::payload::ValidationError;
use crate::store::{outbox, StoreError, Tx};

/// Why a flow did not happen. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The lifecycle refuses the event for this role and state, or the certificate is unknown
    /// to the caller.
    #[error("{}: {}", .0.code, .0.description)]
    Refused(AckError),
    /// The content is invalid; every problem is listed.
    #[error("invalid content ({} errors)", .0.len())]
    Invalid(Vec<AckError>),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for FlowError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Illegal(refusal) => FlowError::Refused(refused(&refusal, "")),
            other => FlowError::Store(other),
        }
    }
}

/// A refusal of the lifecycle as an acknowledgement error at `path`.
pub fn refused(refusal: &Refusal, path: &str) -> AckError {
    AckError::new(refusal.code(), refusal.to_string(), path)
}

/// The certificate is not one exchanged with the caller (or does not exist: same answer).
pub fn unknown(path: &str) -> AckError {
    AckError::new(LC_UNKNOWN, "no such certificate exchanged with this partner", path)
}

/// Validation errors of a payload as acknowledgement errors.
pub fn validation_errors(errors: Vec<ValidationError>) -> Vec<AckError> {
    errors.into_iter().map(|v| AckError::new(v.code, v.message, v.path)).collect()
}

/// A new message from us to `partner` carrying `outgoing`: its message ID and the document the
/// outbox keeps (the operation element with its header, in our vocabulary; security and
/// envelope are added when it is sent). The one place the flows give an outgoing message its
/// form.
pub(crate) fn outgoing(
    settings: &Settings,
    partner: &str,
    outgoing: &Outgoing<'_>,
    now: DateTime<Utc>,
) -> (Uuid, String) {
    crate::soap::messages::new_request(&settings.party, partner, outgoing, now)
}

/// Queues `outgoing` about certificate `certificate_id` to `partner`, in `tx`. Returns its
/// message ID.
pub(crate) async fn queue(
    tx: &mut Tx<'_>,
    settings: &Settings,
    certificate_id: &str,
    partner: &str,
    message: &Outgoing<'_>,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let (message_id, body) = outgoing(settings, partner, message, now);
    let message_id = message_id.to_string();
    outbox::enqueue(tx, certificate_id, partner, message.operation().name(), &message_id, &body, now).await?;
    Ok(message_id)
}
