//! The wire form of an event, the same in the pull feed (`GET /api/v1/events`), in a webhook's
//! body and in an AMQP message (documented field by field in docs/backend.md):
//!
//! ```json
//! {"version": 1, "event_id": "…", "seq": 42, "kind": "document.received",
//!  "at": "2026-12-05T10:00:00Z", "gateway": "ID", "partner": "KR", "direction": "inbound",
//!  "certificate_id": "…", "issuer": "KR", "reference": "…", "document_kind": "CO",
//!  "message_id": "…", "detail": {…},
//!  "document": {"content_type": "application/xml", "sha256": "…", "xml": "<LPCO …>"}}
//! ```
//!
//! `document` is present on `document.received` only: the CO or DO as validated (an inbound
//! document in its exclusive canonical form, whose SHA-256 is `sha256`), or `{"sha256": …,
//! "purged": true}` once retention erased the content.
//!
//! Must never: include a secret, or anything of a certificate other than what the event is about.

use serde_json::{json, Value};

use crate::store::events::{self, Event, EventKind};
use crate::store::{Store, StoreError};

/// Version of the wire form: a change that is not an addition raises it.
pub const VERSION: u32 = 1;

/// `events` in their wire form, the documents of `document.received` read in one query.
/// `acknowledgement` adds the back-end's acknowledgement (the feed shows it; a push does not,
/// so that every push of one event carries the same bytes).
pub async fn render(
    store: &Store,
    gateway: &str,
    events: &[Event],
    acknowledgement: bool,
) -> Result<Vec<Value>, StoreError> {
    let wanted: Vec<&str> =
        events.iter().filter(|e| e.kind == EventKind::DocumentReceived).map(|e| e.certificate_id.as_str()).collect();
    let documents = if wanted.is_empty() { Default::default() } else { events::documents(store, &wanted).await? };
    Ok(events
        .iter()
        .map(|e| {
            let mut v = json!({
                "version": VERSION,
                "event_id": e.event_id,
                "seq": e.seq,
                "kind": e.kind,
                "at": e.at,
                "gateway": gateway,
                "partner": e.partner,
                "direction": e.direction,
                "certificate_id": e.certificate_id,
                "issuer": e.issuer,
                "reference": e.reference,
                "document_kind": e.document_kind,
                "message_id": e.message_id,
                "detail": e.detail,
            });
            if e.kind == EventKind::DocumentReceived {
                v["document"] = match documents.get(&e.certificate_id) {
                    Some(events::Document { sha256, xml: Some(xml) }) => {
                        json!({"content_type": "application/xml", "sha256": sha256, "xml": xml})
                    }
                    Some(events::Document { sha256, xml: None }) => json!({"sha256": sha256, "purged": true}),
                    None => Value::Null,
                };
            }
            if acknowledgement {
                v["acknowledged"] = match (&e.acknowledged_at, &e.acknowledged_by) {
                    (Some(at), by) => json!({"at": at, "by": by}),
                    _ => Value::Null,
                };
            }
            v
        })
        .collect())
}
