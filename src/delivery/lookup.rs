//! The domestic side of the Annex III look-up: asking a partner's gateway for one of its COs
//! by reference number and reference code (`GetCO`), signed (and encrypted) to the partner's
//! profile, and its `GetCOResponse` verified, read, and the CO in it validated.
//!
//! Must never: return a CO whose answer did not verify, answers another request, or is not the
//! CO asked for.

use std::sync::Arc;

use crate::config::{Expect, Partner};
use crate::message::business::{DocumentId, Lookup, LookupResult};
use crate::message::{Operation, Outgoing};
use crate::soap::business::read_lookup_response;
use crate::state::Core;

/// Why asking a partner failed.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("the look-up could not be secured: {0}")]
    Secure(String),
    #[error("the partner could not be reached: {0}")]
    Transport(String),
    #[error("the partner answered HTTP {0}")]
    Http(u16),
    #[error("the partner's answer does not verify: {0}")]
    Unverified(String),
}

/// Asks `partner` for its CO `reference` with `code` (the domestic side of Annex III).
pub async fn ask(
    state: &Arc<Core>,
    partner: &Arc<Partner>,
    reference: &str,
    code: &str,
) -> Result<LookupResult, AskError> {
    let now = state.clock.now();
    let lookup = Lookup {
        document: DocumentId { issuer: partner.party.clone(), reference: reference.to_owned() },
        reference_code: code.to_owned(),
    };
    let (message_id, body) =
        crate::soap::messages::new_request(&state.settings.party, &partner.party, &Outgoing::Lookup(&lookup), now);
    let wire = super::secure_request(state, partner, Operation::GetCo, body, now).await.map_err(AskError::Secure)?;
    let timeout = state.settings.delivery.request_timeout.std();
    // Look-ups are rare, manual queries: a client of their own keeps them off the delivery
    // workers' connections and rate limits.
    let client = super::PartnerClient::new(timeout, state.settings.tls.clone());
    let (status, answer) = client
        .post(partner, Operation::GetCo, partner.security.outbound.soap_version, wire)
        .await
        .map_err(AskError::Transport)?;
    if status != 200 {
        return Err(AskError::Http(status));
    }
    let (s, p) = (state.clone(), partner.clone());
    let verified = crate::wssec::on_xml_security_thread(crate::wssec::Precedence::InProgress, move || {
        crate::wssec::inbound::process(&answer, &s.settings.inbound_policy(&p, Expect::LookupResponse, s.clock.now()))
    })
    .await
    .map_err(|e| AskError::Unverified(format!("{}: {e}", e.code())))?;
    let lpco = verified
        .parts()
        .iter()
        .find(|p| p.local_name == "LPCO" && p.namespace == crate::payload::LPCO_NAMESPACE)
        .map(|p| p.xml.as_slice());
    let (answered, result) = read_lookup_response(verified.body_child(), lpco).map_err(AskError::Unverified)?;
    if answered != message_id.to_string() {
        return Err(AskError::Unverified(format!("the answer is for request {answered}, not {message_id}")));
    }
    if let LookupResult::Found { lpco_xml, .. } = &result {
        // What the partner sends back is checked like anything it pushes, and must be the CO
        // asked for.
        match crate::payload::parse_co(lpco_xml) {
            Err(errors) => {
                return Err(AskError::Unverified(format!("the CO returned is not valid ({} errors)", errors.len())))
            }
            Ok(co) if co.reference() != reference => {
                return Err(AskError::Unverified(format!(
                    "the partner returned CO {}, not {reference}",
                    co.reference()
                )))
            }
            Ok(_) => {}
        }
    }
    Ok(result)
}
