//! Delivery workers: take due messages from the outbox, secure them afresh (new Timestamp and
//! signature, same message ID), send them, and store the partner's verified acknowledgement.
//!
//! Crash safety: the attempt (with the exact bytes) is committed before sending; the outcome is
//! committed with the acknowledgement. A process that dies in between leaves the message
//! pending under an expiring lease, so it is sent again with the same message ID and the
//! partner answers with its original acknowledgement.
//!
//! Retries follow the partner's schedule (framework 4.3.3: marks measured from the first
//! attempt, so an early attempt — a backlog flush — uses up no mark);
//! technical failures mark the partner down (one probe at a time until it answers, then its
//! backlog is flushed at the partner's rate); business rejections end the message at once.
//!
//! Must never: delete or complete a message without a verified acknowledgement or a business
//! rejection; retry a business rejection; read the time other than through `state::Core::clock`.

mod claims;
mod client;
pub mod lookup;
mod pace;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

use crate::config::{Expect, Partner};
use crate::lifecycle::State;
use crate::message::{AckStatus, Acknowledgement, Operation};
use crate::refusal::sender_may_retry;
use crate::soap::fault::read_fault;
use crate::state::Core;
use crate::store::alerts::{self, NewAlert};
use crate::store::outbox::{self, FailedOutcome, Failure, OutboxMessage};
use crate::store::{partners, StoreError};
use crate::wssec::outbound::{secure, AddressingHeaders, OutboundMessage};

pub use claims::{Claims, IdleWorker, Promise, SUBMISSION_LEASE};
pub use client::PartnerClient;
pub use pace::{RateLimiter, Turn};

/// `body_xml` (a request of `operation`) as the partner's profile says we send it: in its
/// SOAP version, signed (with a Timestamp from `now` unless the profile sends none),
/// encrypted to the partner when its profile encrypts, with WS-Addressing headers when it
/// uses them. On an XML security thread: libxml documents must not be held across an `.await`.
pub async fn secure_request(
    state: &Arc<Core>,
    partner: &Arc<Partner>,
    operation: Operation,
    body_xml: String,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, String> {
    let (state, partner) = (state.clone(), partner.clone());
    crate::wssec::on_xml_security_thread(crate::wssec::Precedence::New, move || {
        secured_request(&state.settings, &partner, &partner.security, operation, &body_xml, now)
    })
    .await
    .map_err(|e| format!("securing the message failed: {e}"))
}

/// [`secure_request`]'s work under `profile` (the partner's, or one a probe tries), for a
/// caller already on an XML security thread.
pub fn secured_request(
    settings: &crate::config::Settings,
    partner: &Partner,
    profile: &crate::wssec::Profile,
    operation: Operation,
    body_xml: &str,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, crate::wssec::SecurityError> {
    let outbound = profile.outbound;
    let addressing = outbound.addressing.then(|| AddressingHeaders {
        namespace: crate::wssec::ns::WSA,
        action: operation.soap_action(),
        message_id: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        to: Some(partner.endpoint.clone()),
        relates_to: None,
        reply_to_anonymous: true,
    });
    secure(&OutboundMessage {
        version: outbound.soap_version,
        body_xml,
        signer: &settings.signing,
        encrypt_for: outbound.encryption.and(partner.encrypt_to()),
        profile: &outbound,
        addressing: addressing.as_ref(),
        now,
        ttl: partner.timestamp_ttl.chrono(),
    })
}

/// The result of one delivery step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing was due.
    Idle,
    /// The partner acknowledged (Accepted or Rejected); the certificate is now in this state.
    Completed(State),
    /// A technical failure; retried later.
    WillRetry(String),
    /// The claim ended before the worker could record its attempt (another worker took the
    /// message over, or an operator cancelled it); nothing was recorded by this worker.
    ClaimLost,
    /// The partner's pace puts the message's turn further off than a worker waits for it
    /// (`delivery::pace`): it went back to the outbox, due at its turn.
    Deferred,
}

pub struct Worker {
    state: Arc<Core>,
    limiter: Arc<RateLimiter>,
    claims: Arc<Claims>,
    owner: String,
    client: PartnerClient,
}

/// Test hook: `COCONNECT_FAULT_INJECTION=before-send|after-send` aborts the process at that
/// point of a delivery, to prove crash safety. Compiled only into test builds (feature
/// `test-support`): a production binary has no such hook.
#[cfg(feature = "test-support")]
fn inject_fault(point: &str) {
    if std::env::var("COCONNECT_FAULT_INJECTION").is_ok_and(|v| v == point) {
        eprintln!("fault injection: aborting at {point}");
        std::process::abort();
    }
}

#[cfg(not(feature = "test-support"))]
fn inject_fault(_point: &str) {}

/// Looks at the outbox every `[delivery] poll_interval_millis` for work no commit in this
/// process announced (queued by another instance, a retry coming due, a lease expired) and
/// wakes one idle worker when there is some ([`Core::outbox_changed`]; a worker whose claim
/// sees more due wakes the next). One look a process, on the read connections: before, each
/// idle worker looked on its own, eight looks an interval for nothing. Runs until shutdown.
pub async fn watch_outbox(state: Arc<Core>, mut shutdown: watch::Receiver<bool>) {
    let interval = state.settings.delivery.poll_interval.std();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        if *shutdown.borrow() {
            break;
        }
        match outbox::any_due(&state.store, state.clock.now()).await {
            Ok(true) => state.outbox_changed(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "looking for due messages failed; looking again after the interval"),
        }
    }
}

impl Worker {
    /// A worker named `owner` (its claims carry the name, and so do the attempts of the
    /// messages it claimed, whichever worker of the process sends them); the workers of one
    /// process share `limiter` and `claims`.
    pub fn new(state: Arc<Core>, limiter: Arc<RateLimiter>, claims: Arc<Claims>, owner: String) -> Self {
        let timeout = state.settings.delivery.request_timeout.std();
        let tls = state.settings.tls.clone();
        Worker { state, limiter, claims, owner, client: PartnerClient::new(timeout, tls) }
    }

    /// Delivers until shutdown. A worker that finished a message takes the next at once; one
    /// that found nothing waits to be woken ([`Core::outbox_changed`]): by work committed in
    /// this process, by a worker that saw more due, or by [`watch_outbox`] (work queued by
    /// another instance, or a retry coming due). A delivery in progress is finished before the
    /// loop looks at the shutdown signal.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let idle = self.state.settings.delivery.poll_interval.std();
        // This worker's last claim saw more messages due.
        let mut more_due = false;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Registered before looking, so that work committed while this worker looks is
            // not missed; given up (and a wake-up it got passed on to another idle worker)
            // as soon as the look found work, so that no wake-up waits for a delivery.
            let mut wakeup = Box::pin(self.state.delivery_wakeup.notified());
            wakeup.as_mut().enable();
            let claim = self.claim(std::mem::take(&mut more_due)).await;
            match claim {
                Ok(Some(claimed)) => {
                    more_due = claimed.more_due;
                    drop(wakeup);
                    // More are due, or claimed for this process: the next idle worker takes
                    // one (after this worker's own registration is gone, so that it does not
                    // wake itself). Only then: a wake-up with nothing to find costs an idle
                    // worker a claim transaction.
                    if claimed.more_due {
                        self.state.outbox_changed();
                    }
                    if let Err(e) = self.deliver_claimed(claimed.message).await {
                        tracing::error!(error = %e, "delivery step failed");
                        tokio::select! {
                            _ = shutdown.changed() => {},
                            _ = tokio::time::sleep(idle) => {},
                        }
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    // Tried again after the interval, whether or not work is announced. Not
                    // listening meanwhile: a wake-up this worker holds goes to another.
                    drop(wakeup);
                    tracing::error!(error = %e, "delivery step failed");
                    tokio::select! {
                        _ = shutdown.changed() => {},
                        _ = tokio::time::sleep(idle) => {},
                    }
                    continue;
                }
            }
            // Woken by work committed in this process, passed on by a worker that saw more due,
            // or found by the outbox's watcher: the look on the read connections would find it,
            // so the worker skips the look and claims at once (one store round trip less
            // between a submission and its delivery). A wake-up that finds nothing costs that
            // claim's transaction.
            // Counted as idle meanwhile: a submission then leases its message for this process
            // (`Claims::submission_lease`), and the wake-up finds it waiting here.
            let waiting_for_work = self.claims.idle_worker();
            more_due = tokio::select! {
                _ = shutdown.changed() => false,
                _ = &mut wakeup => true,
            };
            drop(waiting_for_work);
        }
        self.claims.give_back(&self.state.store).await;
    }

    /// Claims one due message and delivers it once.
    pub async fn step(&self) -> Result<Step, StoreError> {
        match self.claim(false).await? {
            Some(claimed) => self.deliver_claimed(claimed.message).await,
            None => Ok(Step::Idle),
        }
    }

    /// A message claimed for this process and not yet taken, or else the oldest messages that
    /// may go now, if any (`expect_due`: see [`outbox::claim`]).
    async fn claim(&self, expect_due: bool) -> Result<Option<claims::Taken>, StoreError> {
        let now = self.state.clock.now();
        let lease = self.state.settings.delivery.lease.chrono();
        self.claims.take(&self.state.store, &self.owner, now, lease, expect_due).await
    }

    /// Delivers a claimed message once.
    async fn deliver_claimed(&self, msg: OutboxMessage) -> Result<Step, StoreError> {
        match self.deliver(msg).await {
            Err(StoreError::LeaseLost(message_id)) => {
                tracing::warn!(%message_id, worker = %self.owner, "claim lost before the attempt was recorded (taken over, cancelled, or its partner went down); left to whoever holds it now");
                Ok(Step::ClaimLost)
            }
            other => other,
        }
    }

    /// Sends `msg` back to the outbox until its partner's turn `at` (no attempt, no error: the
    /// claim is given up and the message is due then), and wakes a worker of this process at
    /// that moment, so that it goes at its turn rather than at the next look at the outbox.
    async fn defer(&self, msg: &OutboxMessage, at: Instant) -> Result<Step, StoreError> {
        let now = self.state.clock.now();
        let wait = at.saturating_duration_since(Instant::now());
        // A turn is at most a backlog's worth of intervals away, far below chrono's range; a
        // day is a safe stand-in that cannot make the message due again at once.
        let due = now + Duration::from_std(wait).unwrap_or(Duration::days(1));
        outbox::defer(&self.state.store, msg, due, now).await?;
        tracing::debug!(message_id = %msg.message_id, partner = %msg.partner, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "partner's pace: back to the outbox until its turn");
        // Weak: a wake-up pending for a later turn must not keep the store (and SQLite's
        // instance lock) alive after the process's workers stopped.
        let state = Arc::downgrade(&self.state);
        // A millisecond past the turn: the stored due time is in whole milliseconds.
        let wake_at = at + StdDuration::from_millis(1);
        tokio::spawn(async move {
            tokio::time::sleep_until(wake_at.into()).await;
            if let Some(state) = state.upgrade() {
                state.outbox_changed();
            }
        });
        Ok(Step::Deferred)
    }

    async fn deliver(&self, mut msg: OutboxMessage) -> Result<Step, StoreError> {
        let settings = &self.state.settings;
        let store = &self.state.store;
        let clock = &self.state.clock;
        let now = clock.now();
        let Some(partner) = settings.partners.get(&msg.partner).cloned() else {
            // Not configured (any more): keep the message; an operator must restore the partner.
            let reason = format!("partner {} is not configured", msg.partner);
            tracing::error!(message_id = %msg.message_id, "{reason}");
            outbox::reschedule(store, &msg, now + Duration::minutes(10), &reason, now).await?;
            return Ok(Step::WillRetry(reason));
        };
        let Some(operation) = Operation::from_name(&msg.operation) else {
            let reason = format!("unknown operation {}", msg.operation);
            tracing::error!(message_id = %msg.message_id, "{reason}; manual intervention needed");
            return Ok(Step::Completed(outbox::unsendable(store, &msg, &reason, self.webhook(), now).await?));
        };
        match self.limiter.turn(&partner.party, &msg.message_id, partner.flush_rate_per_second) {
            // Under the partner's rate (nearly always) there is no timer to set.
            Turn::At(at) if at > Instant::now() => tokio::time::sleep_until(at.into()).await,
            Turn::At(_) => {}
            Turn::Later(at) => return self.defer(&msg, at).await,
        }
        let now = clock.now();
        let wire = match secure_request(&self.state, &partner, operation, msg.body_xml.clone(), now).await {
            Ok(w) => w,
            Err(reason) => {
                // Releasing it would hand the same message back at once, forever.
                tracing::error!(message_id = %msg.message_id, %reason, "message could not be secured; manual intervention needed");
                let to = outbox::unsendable(store, &msg, &reason, self.webhook(), now).await?;
                return Ok(Step::Completed(to));
            }
        };
        let lease = settings.delivery.lease.chrono();
        let began = match outbox::begin(store, &msg, &wire, now, lease).await {
            Err(StoreError::LeaseLost(message_id)) => {
                // The claim expired and was taken over, the message was cancelled, or its
                // partner went down since the claim: given back in the last case (the others
                // leave it alone), for the claims' one-probe rule.
                if let Err(e) = outbox::unclaim(store, &msg).await {
                    tracing::warn!(%message_id, error = %e, "claim not given back; it will expire");
                }
                return Err(StoreError::LeaseLost(message_id));
            }
            other => other?,
        };
        let attempt = began.attempt;
        msg.certificate_seen = began.certificate;
        inject_fault("before-send");
        tracing::info!(message_id = %msg.message_id, partner = %partner.party, attempt, "sending");
        // The latency of the HTTP exchange is real elapsed time, for operators, not a
        // scheduling decision: it is measured on the monotonic clock, not `state::Core::clock`.
        let sent_at = Instant::now();
        let (status, body) =
            match self.client.post(&partner, operation, partner.security.outbound.soap_version, wire).await {
                Ok(r) => r,
                Err(e) => {
                    return self
                        .retry_later(
                            &msg,
                            &partner,
                            now,
                            Failure {
                                attempt,
                                outcome: FailedOutcome::Transport,
                                http_status: None,
                                error: &format!("transport: {e}"),
                            },
                        )
                        .await
                }
            };
        let latency_ms = u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX);
        match self.judge(&msg, &partner, &began.wire_sha256, status, &body).await {
            Verdict::Acknowledged(ack) => {
                inject_fault("after-send");
                let accepted = ack.status == AckStatus::Accepted;
                let cause = if accepted {
                    format!("acknowledged by {} (ack {})", partner.party, ack.header.message_id)
                } else {
                    let errors: Vec<String> =
                        ack.errors.iter().map(|e| format!("{} {} at {}", e.code, e.description, e.path)).collect();
                    format!("rejected by {}: {}", partner.party, errors.join("; "))
                };
                let detail = serde_json::json!({
                    "status": if accepted { "accepted" } else { "rejected" },
                    "acknowledgement_message_id": ack.header.message_id.to_string(),
                    "receipt": ack.receipt,
                    "errors": ack.errors,
                    "fault": null,
                });
                let answer =
                    outbox::Answer { attempt, wire: &body, accepted, cause: &cause, http_status: status, detail };
                let done = outbox::complete(store, &msg, &answer, self.webhook(), clock.now()).await?;
                self.answered(&partner, done).await;
                // Logged once the outcome is committed: a lost claim logs nothing here.
                tracing::info!(
                    message_id = %msg.message_id,
                    partner = %partner.party,
                    attempt,
                    latency_ms,
                    ack_message_id = %ack.header.message_id,
                    status = if accepted { "Accepted" } else { "Rejected" },
                    "acknowledged"
                );
                Ok(Step::Completed(done.state))
            }
            Verdict::Refused { code, reason } => {
                inject_fault("after-send");
                let cause = format!("SOAP fault {}: {reason}", code.as_deref().unwrap_or_default());
                let detail = serde_json::json!({
                    "status": "refused",
                    "acknowledgement_message_id": null,
                    "errors": [],
                    "fault": {"code": code, "reason": reason},
                });
                let answer = outbox::Answer {
                    attempt,
                    wire: &body,
                    accepted: false,
                    cause: &cause,
                    http_status: status,
                    detail,
                };
                let done = outbox::complete(store, &msg, &answer, self.webhook(), clock.now()).await?;
                self.answered(&partner, done).await;
                tracing::info!(message_id = %msg.message_id, partner = %partner.party, attempt, latency_ms, reason = %cause, "refused by the partner; final");
                Ok(Step::Completed(done.state))
            }
            Verdict::Retry(outcome, reason) => {
                if outcome == FailedOutcome::AckInvalid {
                    let alert = NewAlert {
                        name: alerts::ACK_UNVERIFIED,
                        partner: Some(&partner.party),
                        message_id: Some(&msg.message_id),
                        certificate_id: Some(&msg.certificate_id),
                        detail: &reason,
                    };
                    alerts::raise_now(store, &alert, self.webhook(), clock.now()).await?;
                }
                self.retry_later(
                    &msg,
                    &partner,
                    now,
                    Failure { attempt, outcome, http_status: Some(status), error: &reason },
                )
                .await
            }
        }
    }

    /// The partner answered: if it was marked down as the answer was recorded (its probe's
    /// answer, or one to a message sent before a failure of this or another instance marked
    /// it down), it is up again and its backlog is due now. The answer is recorded already: a
    /// store error here leaves the partner down until its next probe's answer, and is logged,
    /// not made the step's failure.
    async fn answered(&self, partner: &Partner, done: outbox::Completed) {
        if !done.partner_down {
            return;
        }
        if let Err(e) = partners::mark_up(&self.state.store, &partner.party, self.state.clock.now()).await {
            tracing::warn!(partner = %partner.party, error = %e, "the partner answered but could not be marked up; its next probe will");
        }
    }

    fn webhook(&self) -> bool {
        self.state.settings.alerts.webhook_url.is_some()
    }

    /// A technical failure: the partner is marked down and the message waits for its next retry
    /// mark, or — after the last mark — ends `delivery_failed` with an alert.
    async fn retry_later(
        &self,
        msg: &OutboxMessage,
        partner: &Partner,
        attempt_started: DateTime<Utc>,
        failure: Failure<'_>,
    ) -> Result<Step, StoreError> {
        let store = &self.state.store;
        let now = self.state.clock.now();
        // Given back first, so that `mark_down` does not count their leases as messages in
        // flight, which would hold the first probe back until those leases end.
        self.claims.give_back_partner(store, &partner.party).await;
        // A request begun before the mark ends within its timeout, and one not yet begun cannot
        // begin now unless it is the partner's probe (`outbox::begin`); `MAX_WAIT` is a margin
        // for an attempt whose start commits as the mark does.
        let in_flight_until = now
            + self.state.settings.delivery.request_timeout.chrono()
            + Duration::from_std(claims::MAX_WAIT).unwrap_or_else(|_| Duration::seconds(1));
        partners::mark_down(store, &partner.party, &msg.message_id, in_flight_until, now).await?;
        // The schedule counts time since the first attempt, not attempts: an early one (a
        // backlog flush after the partner answered again) must not use up a later mark.
        // The mark is chosen by when this attempt started, not when it failed: an attempt that
        // started before a mark and timed out after it still leaves that mark's retry (due at
        // once), and only an attempt started after the last mark ends the schedule.
        let first = msg.first_attempt_at.unwrap_or(attempt_started);
        match retry_due(first, &partner.retry_marks, attempt_started, now) {
            Some(at) => {
                tracing::warn!(message_id = %msg.message_id, attempt = failure.attempt, error = failure.error, next_attempt_at = %at, "delivery failed; will retry");
                outbox::fail_attempt(store, msg, &failure, at, now).await?;
                Ok(Step::WillRetry(failure.error.to_owned()))
            }
            None => {
                tracing::error!(message_id = %msg.message_id, attempt = failure.attempt, error = failure.error, "retry schedule exhausted; manual intervention needed");
                let to = outbox::exhaust(store, msg, &failure, self.webhook(), now).await?;
                Ok(Step::Completed(to))
            }
        }
    }

    /// Decides what a partner's HTTP answer to the request whose digest is `sent_sha256`
    /// means.
    async fn judge(
        &self,
        msg: &OutboxMessage,
        partner: &Arc<Partner>,
        sent_sha256: &str,
        status: u16,
        body: &[u8],
    ) -> Verdict {
        if status == 200 {
            return match self.verify_ack(msg, partner, sent_sha256, body).await {
                Ok(ack) => Verdict::Acknowledged(ack),
                Err(reason) => {
                    tracing::warn!(event = "ack_unverified", message_id = %msg.message_id, partner = %partner.party, %reason, "acknowledgement does not verify");
                    Verdict::Retry(FailedOutcome::AckInvalid, reason)
                }
            };
        }
        match read_fault(body) {
            // A Sender fault is a business refusal: retrying won't help — unless its code is
            // one a fresh attempt cures (the refusal registry says which: clock skew, a replay of
            // our own retry, a timestamp that expired in transit, credentials or certificates
            // out of step, the partner's own trouble).
            Some(f) if f.sender_at_fault && status == 500 && !f.code.as_deref().is_some_and(sender_may_retry) => {
                Verdict::Refused { code: f.code, reason: f.reason }
            }
            Some(f) => Verdict::Retry(
                FailedOutcome::Fault,
                format!("HTTP {status}, SOAP fault {}: {}", f.code.unwrap_or_default(), f.reason),
            ),
            None => Verdict::Retry(FailedOutcome::Http, format!("HTTP {status}")),
        }
    }

    async fn verify_ack(
        &self,
        msg: &OutboxMessage,
        partner: &Arc<Partner>,
        sent_sha256: &str,
        body: &[u8],
    ) -> Result<Acknowledgement, String> {
        let state = self.state.clone();
        let partner_for_check = partner.clone();
        let bytes = body.to_vec();
        let verified = crate::wssec::on_xml_security_thread(crate::wssec::Precedence::InProgress, move || {
            let s = &state.settings;
            crate::wssec::inbound::process(
                &bytes,
                &s.inbound_policy(&partner_for_check, Expect::Acknowledgement, state.clock.now()),
            )
        })
        .await
        .map_err(|e| format!("{}: {e}", e.code()))?;
        let ack = Acknowledgement::read(verified.body_child())?;
        if ack.received_message_id != msg.message_id {
            return Err(format!(
                "acknowledgement is for message {:?}, not {}",
                ack.received_message_id, msg.message_id
            ));
        }
        if ack.header.sender != partner.party {
            return Err(format!("acknowledgement sender {} is not {}", ack.header.sender, partner.party));
        }
        let digest = base64::engine::general_purpose::STANDARD
            .decode(ack.received_digest.trim())
            .map(|d| crate::wssec::material::hex(&d))
            .map_err(|_| "acknowledgement digest is not base64".to_owned())?;
        // Usually the answer to the bytes just sent; a partner answering a retry with the
        // acknowledgement of an earlier attempt is checked against every attempt recorded.
        if digest == sent_sha256 {
            return Ok(ack);
        }
        let sent = outbox::sent_digests(&self.state.store, &msg.message_id).await.map_err(|e| e.to_string())?;
        if !sent.contains(&digest) {
            return Err("acknowledgement digest matches none of the messages we sent".to_owned());
        }
        Ok(ack)
    }
}

/// When the next attempt after a technical failure at `now` is due: the first mark
/// (`first` + mark) strictly after `now`, or `None` once `now` has reached the last mark (the
/// schedule is over). Only time since the first attempt counts, never how many attempts were
/// made: marks already past (the gateway was down, paused work piled up, or the message was
/// sent early by a backlog flush) are skipped rather than spent back to back, and an early
/// attempt uses up no later mark.
pub fn next_attempt(first: DateTime<Utc>, marks: &[Duration], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    marks.iter().map(|m| first + *m).find(|at| *at > now)
}

/// After a technical failure at `now` of an attempt that started at `attempt_started`: when
/// the retry is due (the next mark after the attempt's start, at the earliest now), or `None`
/// when the attempt started at or after the last mark.
pub fn retry_due(
    first: DateTime<Utc>,
    marks: &[Duration],
    attempt_started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    next_attempt(first, marks, attempt_started).map(|at| at.max(now))
}

/// What a partner's answer to one attempt means.
enum Verdict {
    /// A verified acknowledgement (Accepted or Rejected): the message is done.
    Acknowledged(Acknowledgement),
    /// A fault no new attempt cures: a final refusal of the message, with the fault's code
    /// and reason.
    Refused { code: Option<String>, reason: String },
    /// A technical failure: retried on the schedule.
    Retry(FailedOutcome, String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_follows_the_marks_then_ends() {
        let t0 = DateTime::from_timestamp(0, 0).unwrap_or_default();
        let marks: Vec<Duration> = crate::config::DEFAULT_RETRY_MARKS.iter().map(|s| Duration::seconds(*s)).collect();
        assert_eq!(next_attempt(t0, &marks, t0), Some(t0 + Duration::minutes(10)));
        // Each failure at a mark is followed by the next mark.
        assert_eq!(next_attempt(t0, &marks, t0 + Duration::minutes(50)), Some(t0 + Duration::hours(1)));
        assert_eq!(next_attempt(t0, &marks, t0 + Duration::hours(8)), Some(t0 + Duration::hours(16)));
        // The attempt at the last mark failed: the schedule is over.
        assert_eq!(next_attempt(t0, &marks, t0 + Duration::hours(16)), None);
        // After a 5-hour outage of our own, the 10-minute to 4-hour marks are gone: next is 8 h.
        assert_eq!(next_attempt(t0, &marks, t0 + Duration::hours(5)), Some(t0 + Duration::hours(8)));
        assert_eq!(next_attempt(t0, &marks, t0 + Duration::hours(17)), None);
        assert_eq!(next_attempt(t0, &[], t0), None);
    }

    #[test]
    fn early_attempts_use_up_no_mark() {
        let t0 = DateTime::from_timestamp(0, 0).unwrap_or_default();
        let marks = [Duration::seconds(5), Duration::seconds(10), Duration::seconds(20)];
        // However many attempts a backlog flush made before the 5 s mark, the next is that mark,
        // and the schedule ends only once the last mark has been reached.
        for early in [0, 100, 4_600, 4_999] {
            assert_eq!(next_attempt(t0, &marks, t0 + Duration::milliseconds(early)), Some(t0 + marks[0]));
        }
        assert_eq!(next_attempt(t0, &marks, t0 + Duration::seconds(5)), Some(t0 + marks[1]));
        assert_eq!(next_attempt(t0, &marks, t0 + Duration::milliseconds(19_999)), Some(t0 + marks[2]));
        assert_eq!(next_attempt(t0, &marks, t0 + Duration::seconds(20)), None);
    }

    #[test]
    fn a_slow_failure_keeps_the_mark_its_attempt_started_before() {
        let t0 = DateTime::from_timestamp(0, 0).unwrap_or_default();
        let marks = [Duration::seconds(5), Duration::seconds(10), Duration::seconds(20)];
        let at = |s: i64| t0 + Duration::seconds(s);
        // The first attempt times out after 30 s: the 5 s mark's retry is due at once.
        assert_eq!(retry_due(t0, &marks, t0, at(30)), Some(at(30)));
        // Started at 10 s, failed at 25 s: the 20 s mark's retry, due at once, not the end.
        assert_eq!(retry_due(t0, &marks, at(10), at(25)), Some(at(25)));
        // Started at 4.9 s, failed at 5.1 s: the retry of the 5 s mark, at once.
        let ms = |m: i64| t0 + Duration::milliseconds(m);
        assert_eq!(retry_due(t0, &marks, ms(4_900), ms(5_100)), Some(ms(5_100)));
        // A quick failure waits for its mark; an attempt started at the last mark ends it.
        assert_eq!(retry_due(t0, &marks, at(6), at(7)), Some(at(10)));
        assert_eq!(retry_due(t0, &marks, at(20), at(21)), None);
    }
}
