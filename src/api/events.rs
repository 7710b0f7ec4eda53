//! The event feed for the administration's own systems (pull), and the push subscribers'
//! state (docs/backend.md):
//!
//! - `GET /api/v1/events?after=SEQ&limit=N&kind=K[,K]&partner=P[,P]&certificate=ID&unacknowledged=true&wait=S`
//!   → `{"events": [...], "next_after": N, "head": H}`: the events numbered after `after`, in
//!   order, at most `limit` (default 100, at most 1000) and about 16 MiB (documents travel
//!   inline). `next_after` is where to continue from (events the filter skipped are not
//!   offered again). With `wait` (seconds, at most 60),
//!   an empty answer is held until an event arrives or the time is up (long poll).
//! - `POST /api/v1/events/{event_id}/ack` → the event with its acknowledgement: the back-end
//!   processed it (the certificate's view then shows it downloaded). The first acknowledgement
//!   stays; repeating it is harmless.
//! - `GET /api/v1/backend/subscribers` → each push subscriber's position, backlog and failures.
//!
//! Must never: show an event before it is numbered (the order would not be final), or hold a
//! long poll past its `wait`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::{Caller, PathParams, Query};
use crate::backend::feed;
use crate::state::Core;
use crate::store::events::{self, EventKind, Filter};
use crate::store::subscribers;

/// Longest `wait` of a long poll.
const MAX_WAIT_SECONDS: u64 = 60;
/// How often a long poll looks again.
const LONG_POLL_STEP: Duration = Duration::from_millis(100);
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
/// Most bytes of events in one page (documents travel inline).
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;

fn bad_query(message: impl Into<String>, parameter: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "API-QUERY", message).with("parameter", parameter)
}

/// The feed's filter and wait, from the query.
fn read_query(core: &Core, query: &Query) -> Result<(Filter, Duration), ApiError> {
    let number = |name: &str, default: i64, range: std::ops::RangeInclusive<i64>| -> Result<i64, ApiError> {
        match query.get(name) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                bad_query(format!("{name} must be a whole number in {}..={}", range.start(), range.end()), name)
            }),
        }
    };
    let list = |name: &str| -> Vec<String> {
        query
            .get(name)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let kinds = list("kind")
        .iter()
        .map(|k| {
            EventKind::parse(k).ok_or_else(|| {
                let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                bad_query(format!("kind {k:?} is not one of {}", known.join(", ")), "kind")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let partners = list("partner");
    if let Some(p) = partners.iter().find(|p| !core.settings.partners.contains_key(p.as_str())) {
        return Err(bad_query(format!("partner {p:?} is not a configured partner"), "partner"));
    }
    let unacknowledged = match query.get("unacknowledged") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad_query("unacknowledged is true or false", "unacknowledged")),
    };
    let wait = number("wait", 0, 0..=i64::try_from(MAX_WAIT_SECONDS).unwrap_or(60))?;
    let filter = Filter {
        after: number("after", 0, 0..=i64::MAX)?,
        limit: number("limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?,
        kinds,
        partners,
        certificate_id: query.get("certificate").map(str::to_owned),
        unacknowledged,
    };
    Ok((filter, Duration::from_secs(u64::try_from(wait).unwrap_or(0))))
}

pub async fn list(State(core): State<Arc<Core>>, query: Query) -> Result<Json<Value>, ApiError> {
    let (filter, wait) = read_query(&core, &query)?;
    let deadline = tokio::time::Instant::now() + wait;
    let page = loop {
        events::sequence(&core.store).await?;
        let page = events::list(&core.store, &filter).await?;
        if !page.events.is_empty() || tokio::time::Instant::now() >= deadline {
            break page;
        }
        tokio::time::sleep(LONG_POLL_STEP.min(deadline - tokio::time::Instant::now())).await;
    };
    let mut rendered = feed::render(&core.store, &core.settings.party, &page.events, true).await?;
    // Documents travel inline: a page stops before the event that would take it past
    // MAX_PAGE_BYTES (at least one event), and continues from there.
    let mut total = 0;
    let keep = rendered
        .iter()
        .position(|e| {
            total += e.to_string().len();
            total > MAX_PAGE_BYTES
        })
        .map_or(rendered.len(), |over| over.max(1));
    let next_after = match page.events.get(keep.wrapping_sub(1)) {
        Some(last) if keep < rendered.len() => last.seq,
        _ => page.next_after,
    };
    rendered.truncate(keep);
    Ok(Json(json!({"events": rendered, "next_after": next_after, "head": page.head})))
}

pub async fn acknowledge(
    State(core): State<Arc<Core>>,
    caller: Caller,
    PathParams(event_id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let Some(event) = events::acknowledge(&core.store, &event_id, &caller.actor(), core.clock.now()).await? else {
        return Err(ApiError::not_found("event"));
    };
    tracing::info!(event = "event_acknowledged", event_id = %event.event_id, seq = event.seq, caller = %caller.0, "back-end acknowledged an event");
    let rendered = feed::render(&core.store, &core.settings.party, std::slice::from_ref(&event), true).await?;
    Ok(Json(rendered.into_iter().next().unwrap_or(Value::Null)))
}

pub async fn subscribers(State(core): State<Arc<Core>>) -> Result<Json<Value>, ApiError> {
    let statuses = subscribers::list(&core.store).await?;
    let head = events::head(&core.store).await?;
    let mut out = Vec::new();
    for subscriber in &core.settings.backend.subscribers {
        let Some(status) = statuses.iter().find(|s| s.name == subscriber.name) else { continue };
        let filter = Filter {
            after: status.position,
            kinds: subscriber.kinds.clone(),
            partners: subscriber.partners.clone(),
            ..Filter::default()
        };
        let backlog = events::count(&core.store, &filter).await?;
        let mut v = json!(status);
        v["type"] = json!(subscriber.target.type_name());
        v["backlog"] = json!(backlog);
        v["head"] = json!(head);
        v["state"] = json!(if status.failures > 0 {
            "failing"
        } else if backlog > 0 {
            "delivering"
        } else {
            "up to date"
        });
        out.push(v);
    }
    Ok(Json(json!({"subscribers": out, "head": head, "unsequenced": events::unsequenced(&core.store).await?})))
}
