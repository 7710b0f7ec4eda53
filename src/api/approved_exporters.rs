//! Domestic API routes for a partner's list of approved exporters (Annex IV): the list the
//! partner's customs shares is imported here, and the receive path of declarations of origin
//! looks exporters up in it (`crate::store::approved_exporters::is_approved`).
//!
//! - `PUT /api/v1/partners/{party}/approved-exporters` (JSON array of
//!   `{"authorisation_id", "name"?, "valid_until"?}`) replaces the partner's whole list →
//!   200 `{"partner", "count"}`; 400 `API-APPROVED-EXPORTERS` naming the offending `index`;
//!   404 `API-PARTNER` for a party that is not a configured partner; 413 `API-TOO-LARGE`.
//!   The import is an operator action attributed to `api:{caller}`.
//! - `GET` on the same path → the list, the same JSON array (ordered by authorisation code).
//!
//! Owns: the HTTP form of the list and the checks on what a caller may import. Must never: read
//! the list for any decision (the store and the receive path do), or accept a list it did not
//! check entirely: one bad entry refuses the whole import, so a partial list never replaces a
//! good one.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, PathParams};
use crate::message::text;
use crate::state::Core;
use crate::store::approved_exporters::{self, ApprovedExporter};
use crate::store::StoreError;

/// The stable code of every fault in an imported list.
const CODE: &str = "API-APPROVED-EXPORTERS";

/// Longest authorisation code: an..35, as `ApprovedExporterAuthorisationID` in `xsd/lpco-co.xsd`.
const MAX_ID_CHARS: usize = 35;

/// `GET`: the partner's list, ordered by authorisation code.
pub async fn list(
    State(core): State<Arc<Core>>,
    PathParams(party): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    if !core.settings.partners.contains_key(&party) {
        return Err(ApiError::no_such_partner());
    }
    Ok(Json(json!(approved_exporters::list(&core.store, &party).await?)))
}

/// `PUT`: replaces the partner's whole list, or refuses it whole.
pub async fn replace(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(party): PathParams<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    if !core.settings.partners.contains_key(&party) {
        return Err(ApiError::no_such_partner());
    }
    let exporters = parse_list(&body).map_err(|fault| ApiError::with_body(StatusCode::BAD_REQUEST, fault.to_json()))?;
    let actor = caller.actor();
    match approved_exporters::replace_list_as(&core.store, &party, &exporters, &actor, core.clock.now()).await {
        Ok(count) => {
            tracing::info!(
                event = "approved_exporters_imported",
                partner = %party,
                count,
                actor,
                "approved exporters list replaced"
            );
            Ok(Json(json!({"partner": party, "count": count})))
        }
        // parse_list refuses duplicates already; this is the store saying the same.
        Err(StoreError::Duplicate(what)) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, CODE, format!("{what} occurs twice")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Why an imported list is refused: a message and, for a fault of one entry, its 0-based index.
#[derive(Debug, PartialEq, Eq)]
struct ListFault {
    index: Option<usize>,
    message: String,
}

impl ListFault {
    fn at(index: usize, message: String) -> Self {
        ListFault { index: Some(index), message }
    }

    fn to_json(&self) -> serde_json::Value {
        let mut v = json!({"error": self.message, "code": CODE});
        if let Some(index) = self.index {
            v["index"] = json!(index);
        }
        v
    }
}

/// Reads and checks a whole list: a JSON array of [`ApprovedExporter`] objects, each with an
/// authorisation code that a DO can carry (an..35, as the DO parser hands it over: no leading
/// or trailing whitespace, no control characters) and none twice.
fn parse_list(body: &[u8]) -> Result<Vec<ApprovedExporter>, ListFault> {
    // Entries one by one, so that a fault in one of them can say which.
    let values: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| ListFault {
        index: None,
        message: format!("the body must be a JSON array of approved exporters: {e}"),
    })?;
    let mut first_seen: HashMap<String, usize> = HashMap::with_capacity(values.len());
    let mut exporters = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let exporter: ApprovedExporter = serde_json::from_value(value).map_err(|e| {
            ListFault::at(
                index,
                format!("entry {index} is not {{\"authorisation_id\", \"name\"?, \"valid_until\"?}}: {e}"),
            )
        })?;
        check_authorisation_id(&exporter.authorisation_id)
            .map_err(|why| ListFault::at(index, format!("entry {index}: authorisation_id {why}")))?;
        if let Some(c) = exporter.name.as_deref().and_then(|name| text::forbidden_char(name, true)) {
            return Err(ListFault::at(index, format!("entry {index}: name {}", text::describe(c))));
        }
        if let Some(first) = first_seen.insert(exporter.authorisation_id.clone(), index) {
            let message =
                format!("entry {index}: authorisation_id {:?} is already entry {first}", exporter.authorisation_id);
            return Err(ListFault::at(index, message));
        }
        exporters.push(exporter);
    }
    Ok(exporters)
}

/// An authorisation code must be comparable with the one a DO carries: the DO parser trims the
/// value, so a code stored with spaces around it would never match.
fn check_authorisation_id(id: &str) -> Result<(), String> {
    let chars = id.chars().count();
    if id.trim().is_empty() {
        Err("is empty".to_owned())
    } else if chars > MAX_ID_CHARS {
        Err(format!("has {chars} characters; at most {MAX_ID_CHARS} are allowed (an..35)"))
    } else if id.trim() != id {
        Err("has leading or trailing whitespace".to_owned())
    } else if let Some(c) = text::forbidden_char(id, true) {
        Err(text::describe(c))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_list_is_read_whole() {
        let body = br#"[{"authorisation_id": "KR-AE-1", "name": "Hanbit", "valid_until": "2026-12-31T23:59:59Z"},
                        {"authorisation_id": "KR-AE-2"}]"#;
        let list = parse_list(body).expect("valid list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name.as_deref(), Some("Hanbit"));
        assert_eq!(list[1].valid_until, None);
        assert_eq!(parse_list(b"[]").expect("empty list"), vec![]);
    }

    #[test]
    fn each_bad_entry_is_named_by_its_index() {
        let long = "A".repeat(36);
        let cases: &[(String, Option<usize>)] = &[
            ("{}".to_owned(), None),
            ("not json".to_owned(), None),
            (r#"[{"authorisation_id": "A"}, {"authorisation_id": ""}]"#.to_owned(), Some(1)),
            (r#"[{"authorisation_id": "   "}]"#.to_owned(), Some(0)),
            (
                format!(
                    r#"[{{"authorisation_id": "A"}}, {{"authorisation_id": "B"}}, {{"authorisation_id": "{long}"}}]"#
                ),
                Some(2),
            ),
            (r#"[{"authorisation_id": " A"}]"#.to_owned(), Some(0)),
            (r#"[{"authorisation_id": "A\tB"}]"#.to_owned(), Some(0)),
            (r#"[{"authorisation_id": "A"}, {"authorisation_id": "B", "name": "Han\u0000bit"}]"#.to_owned(), Some(1)),
            (
                r#"[{"authorisation_id": "A"}, {"authorisation_id": "B"}, {"authorisation_id": "A"}]"#.to_owned(),
                Some(2),
            ),
            (r#"[{"authorisation_id": "A"}, {"id": "B"}]"#.to_owned(), Some(1)),
            (r#"[{"authorisation_id": "A", "valid_until": "31/12/2026"}]"#.to_owned(), Some(0)),
            (r#"[{"authorisation_id": "A"}, 7]"#.to_owned(), Some(1)),
        ];
        for (body, index) in cases {
            let fault = parse_list(body.as_bytes()).expect_err(body);
            assert_eq!(fault.index, *index, "{body}: {fault:?}");
            let v = fault.to_json();
            assert_eq!(v["code"], CODE);
            assert_eq!(v.get("index").and_then(serde_json::Value::as_u64), index.map(|i| i as u64), "{v}");
        }
        let fault = parse_list(br#"[{"authorisation_id": "A"}, {"authorisation_id": "A"}]"#).expect_err("duplicate");
        assert!(fault.message.contains("already entry 0"), "{}", fault.message);
    }

    #[test]
    fn thirty_five_characters_are_enough() {
        let id = "é".repeat(35);
        assert_eq!(check_authorisation_id(&id), Ok(()));
        assert!(check_authorisation_id(&format!("{id}x")).is_err());
        assert_eq!(check_authorisation_id("KR AE 1"), Ok(()));
    }
}
