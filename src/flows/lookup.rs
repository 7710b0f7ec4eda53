//! The Annex III look-up (semi-automated pull): every CO we issue gets a reference code, printed
//! on it; a partner asks with `GetCO` by reference number and reference code and gets the CO
//! back, signed (and encrypted under its `sign-encrypt` profile). A wrong code, a CO issued for
//! another partner and a reference that does not exist all get the same `NotFound`. (Asking a
//! partner is the sending side's: `delivery::lookup`.)
//!
//! Must never: reveal through the answer (or its timing, beyond one indexed query) whether a
//! reference exists.

use uuid::Uuid;

use crate::config::Partner;
use crate::lifecycle::State;
use crate::message::business::{DocumentId, Lookup, LookupResult};
use crate::payload::DocumentKind;
use crate::state::Core;
use crate::store::certificates;
use crate::store::events::{self, EventKind, NewEvent};
use crate::store::StoreError;

/// Digits and capital letters without the easily misread 0, 1, I and O: 32 of them, so the low
/// five bits of a random byte pick one without bias.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// A new reference code: 3 groups of 4 characters (60 bits), e.g. `K7Q2-9XMD-4RTA`.
pub fn new_reference_code() -> String {
    let mut bytes = [0u8; 12];
    // The OpenSSL CSPRNG only fails when it cannot be seeded, which makes the process unusable
    // for signing as well; fall back to UUID v4 randomness rather than issuing a weak code.
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        bytes.copy_from_slice(&Uuid::new_v4().as_bytes()[..12]);
    }
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[(*b & 31) as usize] as char).collect();
    let mut out = String::with_capacity(14);
    for (i, group) in chars.chunks(4).enumerate() {
        if i > 0 {
            out.push('-');
        }
        out.extend(group);
    }
    out
}

/// Compares reference codes in constant time, ignoring case and separators as typed by a
/// person.
fn codes_match(stored: &str, presented: &str) -> bool {
    let norm = |s: &str| -> Vec<u8> {
        s.bytes().filter(|b| b.is_ascii_alphanumeric()).map(|b| b.to_ascii_uppercase()).collect()
    };
    let (a, b) = (norm(stored), norm(presented));
    a.len() == b.len() && openssl::memcmp::eq(&a, &b)
}

/// What a partner's look-up finds: only a CO we issued for that partner, with the right code,
/// that reached the partner's side or could have (not rejected or withdrawn); with the
/// certificate's ID when found.
pub async fn find(
    state: &Core,
    partner: &Partner,
    lookup: &Lookup,
) -> Result<(LookupResult, Option<String>), StoreError> {
    let not_found = Ok((LookupResult::NotFound, None));
    let DocumentId { issuer, reference } = &lookup.document;
    if *issuer != state.settings.party {
        return not_found;
    }
    // The CO's contents are read only once the code matched.
    let candidate =
        certificates::lookup_candidate(&state.store, issuer, reference, &partner.party, DocumentKind::Co).await?;
    let Some((id, Some(code))) = candidate else { return not_found };
    if !codes_match(&code, &lookup.reference_code) {
        return not_found;
    }
    let Some(cert) = certificates::get(state.store.pool(), &id).await? else { return not_found };
    let status = match cert.state {
        _ if cert.co_xml.is_empty() => return not_found,
        State::Rejected | State::Withdrawn => return not_found,
        State::Cancelled => "Cancelled",
        _ => "Valid",
    };
    Ok((LookupResult::Found { status: status.into(), lpco_xml: cert.co_xml }, Some(cert.id)))
}

/// Records that `partner` looked certificate `certificate_id` up and was answered with it
/// (`lookup.answered`, for the issuing system).
pub async fn answered(
    state: &Core,
    partner: &Partner,
    certificate_id: &str,
    message_id: &str,
    status: &str,
) -> Result<(), StoreError> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    // A partner repeating the same GetCO (same message ID) is one look-up for the back-end.
    if events::recorded(&mut tx, EventKind::LookupAnswered, certificate_id, message_id).await? {
        return Ok(());
    }
    let detail = serde_json::json!({ "asked_by": partner.party, "document_status": status });
    let event = NewEvent { kind: EventKind::LookupAnswered, certificate_id, message_id: Some(message_id), detail };
    events::append(&mut tx, &state.store, &event, now).await?;
    tx.commit().await?;
    Ok(())
}
