//! Back-end delivery: the event log (`store::events`) taken to the administration's own
//! systems. Pull is the domestic API's (`GET /api/v1/events`); push is here: one worker per
//! configured subscriber (`[[backend.subscribers]]`), which takes the subscriber's lease, reads
//! the events after its position that match its kinds and partners, in order, hands them to its
//! sink (a [`webhook`] or an [`amqp`] broker) and moves the position past what the sink
//! confirmed. A sink that fails is retried after a doubling delay (`[backend]
//! retry_initial_seconds` to `retry_max_seconds`) for as long as it fails, and raises the alert
//! `backend.subscriber_down` once it has been failing for `alert_after_seconds`: nothing is
//! dropped, and a subscriber that is down holds up no other subscriber and no partner traffic.
//!
//! At least once: an event is pushed again when the process stops between the sink's
//! confirmation and the position's update, or when a webhook's 2xx is lost; receivers
//! de-duplicate by event ID. Order: each subscriber receives its events in `seq` order (so in
//! the order of each certificate's changes).
//!
//! Also here: the sequencer task, which numbers committed events (`store::events::sequence`).
//!
//! Owns: [`feed`] (the event's wire form, shared with the API), the push workers and sinks.
//! Must never: move a position past an event its sink did not confirm; write an event (the
//! flows do, in the transaction of the change); hold a subscriber's lease while idle forever
//! (it is renewed only while the worker runs).

mod amqp;
pub mod feed;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::backend::{Subscriber, Target};
use crate::state::Core;
use crate::store::events::{self, Filter};
use crate::store::{subscribers, StoreError};

/// What a sink confirmed of a batch: the first `confirmed` events, and why it stopped there.
#[derive(Debug)]
pub struct Pushed {
    pub confirmed: usize,
    pub error: Option<String>,
}

/// Starts the sequencer and one worker per configured subscriber (after registering them, so
/// that removed subscribers become inactive). `instance` tells this process's leases apart.
pub async fn start(
    core: Arc<Core>,
    instance: &str,
    shutdown: watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
) -> Result<(), StoreError> {
    let backend = &core.settings.backend;
    let names: Vec<String> = backend.subscribers.iter().map(|s| s.name.clone()).collect();
    subscribers::register(&core.store, &names, core.clock.now()).await?;
    tasks.spawn(sequencer(core.clone(), names, shutdown.clone()));
    for subscriber in &backend.subscribers {
        let owner = format!("{instance}/{}", subscriber.name);
        tasks.spawn(serve(core.clone(), subscriber.clone(), owner, shutdown.clone()));
    }
    Ok(())
}

/// How long a subscriber may go unserved by every instance before it counts as removed from
/// the configuration (its position then no longer holds retention).
const UNSERVED_RETIREMENT: Duration = Duration::hours(24);

/// Numbers committed events every poll interval (readers and workers also number on demand),
/// and once an hour retires the subscribers no instance serves any more.
async fn sequencer(core: Arc<Core>, names: Vec<String>, mut shutdown: watch::Receiver<bool>) {
    let idle = core.settings.backend.poll_interval.std();
    let mut last_retirement: Option<DateTime<Utc>> = None;
    while !*shutdown.borrow() {
        if let Err(e) = events::sequence(&core.store).await {
            tracing::error!(error = %e, "event sequencer failed; will retry");
        }
        let now = core.clock.now();
        if last_retirement.is_none_or(|t| now - t >= Duration::hours(1)) {
            last_retirement = Some(now);
            match subscribers::retire_unserved(&core.store, &names, now - UNSERVED_RETIREMENT).await {
                Ok(retired) if !retired.is_empty() => {
                    tracing::warn!(
                        event = "subscribers_retired",
                        ?retired,
                        "back-end subscribers no instance serves any more are inactive now"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retiring unserved subscribers failed"),
            }
        }
        tokio::select! {
            _ = shutdown.changed() => {},
            _ = tokio::time::sleep(idle) => {},
        }
    }
}

/// A subscriber's sink, connected lazily.
enum Sink {
    Webhook(Box<webhook::Client>),
    Amqp(Box<amqp::Publisher>),
}

impl Sink {
    fn new(core: &Core, subscriber: &Subscriber) -> Result<Self, String> {
        Ok(match &subscriber.target {
            Target::Webhook(w) => Sink::Webhook(Box::new(webhook::Client::new(w)?)),
            Target::Amqp(a) => Sink::Amqp(Box::new(amqp::Publisher::new(
                a,
                format!("coconnect {} {}", core.settings.party, subscriber.name),
            ))),
        })
    }

    /// Events per push: a webhook takes one per request; a broker a batch, confirmed at once.
    fn batch(&self, subscriber: &Subscriber) -> i64 {
        match &subscriber.target {
            Target::Webhook(_) => 1,
            Target::Amqp(a) => i64::try_from(a.batch).unwrap_or(1),
        }
    }

    async fn push(&mut self, batch: &[Rendered], timeout: StdDuration) -> Pushed {
        match self {
            Sink::Webhook(client) => {
                let mut confirmed = 0;
                for r in batch {
                    if let Err(e) = client.post(&r.event_id, r.seq, r.body.clone(), timeout).await {
                        return Pushed { confirmed, error: Some(e) };
                    }
                    confirmed += 1;
                }
                Pushed { confirmed, error: None }
            }
            Sink::Amqp(publisher) => {
                let messages: Vec<amqp::Message<'_>> = batch
                    .iter()
                    .map(|r| amqp::Message {
                        event_id: &r.event_id,
                        seq: r.seq,
                        kind: r.kind,
                        partner: &r.partner,
                        certificate_id: &r.certificate_id,
                        body: &r.body,
                    })
                    .collect();
                publisher.publish(&messages, timeout).await
            }
        }
    }
}

/// An event ready to push.
struct Rendered {
    seq: i64,
    event_id: String,
    kind: &'static str,
    partner: String,
    certificate_id: String,
    body: Vec<u8>,
}

/// The wait after the `failures`+1-th failure in a row: the initial delay doubled per earlier
/// failure, at most the maximum.
pub fn retry_delay(failures: i64, initial: StdDuration, max: StdDuration) -> StdDuration {
    let doublings = u32::try_from(failures.clamp(0, 30)).unwrap_or(30);
    initial.saturating_mul(1u32 << doublings).min(max)
}

/// One subscriber's worker, until shutdown.
async fn serve(core: Arc<Core>, subscriber: Arc<Subscriber>, owner: String, mut shutdown: watch::Receiver<bool>) {
    let backend = &core.settings.backend;
    let idle = backend.poll_interval.std();
    let mut sink = match Sink::new(&core, &subscriber) {
        Ok(sink) => Some(sink),
        Err(e) => {
            tracing::error!(subscriber = %subscriber.name, error = %e, "back-end subscriber cannot be set up");
            None
        }
    };
    while !*shutdown.borrow() {
        match serve_once(&core, &subscriber, &owner, sink.as_mut(), &shutdown).await {
            Ok(()) => {}
            Err(StoreError::LeaseLost(what)) => {
                tracing::warn!(subscriber = %subscriber.name, %what, "another instance took the subscriber over")
            }
            Err(e) => {
                tracing::error!(subscriber = %subscriber.name, error = %e, "back-end push step failed; will retry")
            }
        }
        tokio::select! {
            _ = shutdown.changed() => {},
            _ = tokio::time::sleep(idle) => {},
        }
    }
    let claim = subscribers::Claim {
        name: subscriber.name.clone(),
        owner,
        position: 0,
        failures: 0,
        failing_since: None,
        down_alerted: false,
    };
    if let Err(e) = subscribers::release(&core.store, &claim).await {
        tracing::warn!(subscriber = %subscriber.name, error = %e, "could not release the subscriber's lease");
    }
}

/// Takes the subscriber if it is due and pushes until it has nothing left, fails, or the
/// process stops.
async fn serve_once(
    core: &Core,
    subscriber: &Subscriber,
    owner: &str,
    sink: Option<&mut Sink>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let backend = &core.settings.backend;
    let lease = backend.lease.chrono();
    let Some(mut claim) = subscribers::claim(&core.store, &subscriber.name, owner, core.clock.now(), lease).await?
    else {
        return Ok(());
    };
    let Some(sink) = sink else {
        let error = "the subscriber could not be set up (see the log at start)";
        return fail(core, subscriber, &claim, error).await;
    };
    let filter = Filter { kinds: subscriber.kinds.clone(), partners: subscriber.partners.clone(), ..Filter::default() };
    while !*shutdown.borrow() {
        events::sequence(&core.store).await?;
        // While failing, one event at a time: a message the sink refuses is then not followed
        // by copies of the rest of its batch on every retry.
        let limit = if claim.failures > 0 { 1 } else { sink.batch(subscriber) };
        let page = events::list(&core.store, &Filter { after: claim.position, limit, ..filter.clone() }).await?;
        if page.events.is_empty() {
            if page.next_after > claim.position {
                subscribers::advance(&core.store, &mut claim, page.next_after, 0, core.clock.now(), lease).await?;
            }
            return Ok(());
        }
        let mut rendered = render(core, &page.events).await?;
        let whole_page = within_batch_bytes(&mut rendered);
        let recovering = claim.failures > 0;
        // Renewed right before the push, which then has the whole lease (longer than twice the
        // push's timeout) before another instance could take the subscriber over.
        subscribers::renew(&core.store, &claim, core.clock.now(), lease).await?;
        let pushed = sink.push(&rendered, subscriber.timeout.std()).await;
        if pushed.confirmed > 0 {
            let to = match rendered.get(pushed.confirmed - 1) {
                Some(last) if pushed.confirmed < rendered.len() || !whole_page => last.seq,
                _ => page.next_after,
            };
            subscribers::advance(
                &core.store,
                &mut claim,
                to,
                i64::try_from(pushed.confirmed).unwrap_or(0),
                core.clock.now(),
                lease,
            )
            .await?;
            if recovering {
                tracing::info!(event = "subscriber_recovered", subscriber = %subscriber.name, "back-end subscriber delivers again");
            }
        }
        if let Some(error) = pushed.error {
            return fail(core, subscriber, &claim, &error).await;
        }
    }
    Ok(())
}

/// Records a failed push and when to try again; alerts once the subscriber stays down.
async fn fail(core: &Core, subscriber: &Subscriber, claim: &subscribers::Claim, error: &str) -> Result<(), StoreError> {
    let backend = &core.settings.backend;
    let now = core.clock.now();
    let delay = retry_delay(claim.failures, backend.retry_initial.std(), backend.retry_max.std());
    let next: DateTime<Utc> = now + Duration::from_std(delay).unwrap_or_else(|_| Duration::seconds(1));
    let webhook = core.settings.alerts.webhook_url.is_some();
    let alerted =
        subscribers::fail(&core.store, claim, error, next, backend.alert_after.chrono(), webhook, now).await?;
    tracing::warn!(
        event = "subscriber_failed",
        subscriber = %subscriber.name,
        failures = claim.failures + 1,
        next_attempt_at = %next,
        alerted,
        %error,
        "back-end push failed; will retry"
    );
    Ok(())
}

/// Most bytes of event bodies pushed at once (documents travel inline): a batch stops before
/// the event that would pass it, but always holds at least one.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Cuts `batch` to [`MAX_BATCH_BYTES`]; whether it was left whole.
fn within_batch_bytes(batch: &mut Vec<Rendered>) -> bool {
    let mut total = 0;
    let keep = batch
        .iter()
        .position(|r| {
            total += r.body.len();
            total > MAX_BATCH_BYTES
        })
        .map_or(batch.len(), |over| over.max(1));
    let whole = keep == batch.len();
    batch.truncate(keep);
    whole
}

/// The events in their pushed form.
async fn render(core: &Core, events: &[events::Event]) -> Result<Vec<Rendered>, StoreError> {
    let bodies = feed::render(&core.store, &core.settings.party, events, false).await?;
    Ok(events
        .iter()
        .zip(bodies)
        .map(|(e, body)| Rendered {
            seq: e.seq,
            event_id: e.event_id.clone(),
            kind: e.kind.as_str(),
            partner: e.partner.clone(),
            certificate_id: e.certificate_id.clone(),
            body: body.to_string().into_bytes(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_up_to_the_maximum() {
        let s = StdDuration::from_secs;
        let delays: Vec<u64> = (0..12).map(|f| retry_delay(f, s(1), s(300)).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(retry_delay(i64::MAX, s(1), s(300)), s(300), "no overflow");
        assert_eq!(retry_delay(-5, s(2), s(300)), s(2));
    }
}
