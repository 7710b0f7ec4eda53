//! The claims the delivery workers of one process share. One claim transaction takes up to a
//! batch of due messages ([`outbox::claim`]); its worker delivers the first, and the others
//! wait here for the next worker of this process that looks for work. On PostgreSQL a claim
//! costs three round trips and a commit (two more for each other partner it reads), serialised
//! across workers and instances, so a batch
//! spreads them over several messages.
//!
//! A message waiting here is leased to the claiming worker's name in the store, or to
//! `<instance>-submit` when a submission handed it over (its attempt is recorded under that
//! name too, whichever worker of the process sends it), and every step of
//! its delivery is conditional on that lease (`outbox::begin` and what follows it): if the
//! lease expired and another worker took the message over, the step finds `LeaseLost` and
//! records nothing. So the hand-off needs no store write of its own.
//!
//! A submission through this process's API may lease its own message for the workers when one
//! of them waits for work ([`Claims::submission_lease`], `outbox::submit_leased`) and hand it
//! over here ([`Claims::hand_over`]): it then goes without a claim transaction.
//!
//! A waiting message is held from every other worker and instance, so it waits here
//! [`MAX_WAIT`] at most (all the process's workers busy with a slow partner): then it is given
//! back to the outbox ([`outbox::unclaim`]). The messages waiting for a partner that just failed
//! are given back at once, so that the one-probe rule for a partner that is down applies to
//! them ([`Claims::give_back_partner`]).
//!
//! Must never: hold a message longer than [`MAX_WAIT`] plus the time a give-back takes, nor
//! after its workers stop ([`Claims::give_back`]); deliver a message it did not claim.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};

use crate::store::outbox::{self, Lease, OutboxMessage};
use crate::store::{Store, StoreError};

/// The most messages one claim takes for the workers of a process: enough to spread a claim's
/// cost (the next ones are taken within milliseconds while the workers keep up), few enough
/// that a stalled process holds few messages from the others.
pub const MAX_BATCH: usize = 4;

/// How long a claimed message may wait here for a worker before it goes back to the outbox.
pub const MAX_WAIT: StdDuration = StdDuration::from_secs(1);

/// A message taken by a worker: claimed by itself or by another worker of the process.
#[derive(Debug)]
pub struct Taken {
    pub message: OutboxMessage,
    /// More messages were due than this one (or wait here): another idle worker may find one.
    /// Counted over messages a claim may take (not a paused partner's, nor one behind an
    /// earlier one of its certificate); one may still be taken by another claim meanwhile.
    pub more_due: bool,
}

/// A claimed message not yet taken.
struct Waiting {
    message: OutboxMessage,
    /// Its claim saw more due in the store than it took.
    more_in_store: bool,
    since: Instant,
}

/// Claimed messages not yet taken by a worker, oldest first, and whether a worker waits for
/// work.
pub struct Claims {
    batch: usize,
    waiting: Mutex<VecDeque<Waiting>>,
    /// The lease owner of the messages this process's submissions lease for its workers
    /// ([`Claims::submission_lease`]); none: submissions lease nothing.
    submission_owner: Option<String>,
    /// Workers waiting for work.
    idle: AtomicUsize,
    /// Submissions that may lease for them now ([`Promise`]).
    promised: AtomicUsize,
    /// The workers stopped: what is handed over goes straight back.
    closed: AtomicBool,
}

impl Claims {
    /// For `workers` workers: a claim takes up to one message per worker, [`MAX_BATCH`] at most.
    pub fn for_workers(workers: usize) -> Self {
        Claims {
            batch: workers.clamp(1, MAX_BATCH),
            waiting: Mutex::new(VecDeque::new()),
            submission_owner: None,
            idle: AtomicUsize::new(0),
            promised: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// [`Claims::for_workers`] for the workers of process `instance`, whose submissions may
    /// lease their own messages for them.
    pub fn for_process(instance: &str, workers: usize) -> Self {
        Claims { submission_owner: Some(format!("{instance}-submit")), ..Claims::for_workers(workers) }
    }

    /// The lease a submission may take on its own message (`outbox::submit_leased`), held by
    /// the returned [`Promise`] until the message is handed over: only while a worker of this
    /// process waits for work that no other submission was promised, and no claimed message
    /// waits for a worker, so that the message goes at once. The lease lasts
    /// [`SUBMISSION_LEASE`] at most (the attempt renews it): a message whose hand-over never
    /// happens (the request dropped after its commit, the process stopped) is soon claimable
    /// again.
    pub fn submission_lease(&self, now: DateTime<Utc>, lease: Duration) -> Option<Promise<'_>> {
        let owner = self.submission_owner.as_deref()?;
        if self.closed.load(Ordering::Acquire) || !self.waiting.lock().is_ok_and(|w| w.is_empty()) {
            return None;
        }
        let promise =
            Promise { lease: Lease { owner, until: now + lease.min(SUBMISSION_LEASE) }, promised: &self.promised };
        // Counted first, so that two submissions at once cannot both take the last idle worker.
        let before = self.promised.fetch_add(1, Ordering::AcqRel);
        (before < self.idle.load(Ordering::Acquire)).then_some(promise)
    }

    /// A message a submission leased ([`Claims::submission_lease`]), for the next worker that
    /// looks for work (wake one: `Core::outbox_changed`); given back like any claimed message
    /// if none takes it within [`MAX_WAIT`], and at once if the workers have stopped.
    pub async fn hand_over(self: &Arc<Self>, store: &Store, message: OutboxMessage) {
        if self.closed.load(Ordering::Acquire) {
            if let Err(e) = outbox::unclaim(store, &message).await {
                tracing::warn!(message_id = %message.message_id, error = %e, "lease not given back; it will expire");
            }
            return;
        }
        self.keep(store, vec![Waiting { message, more_in_store: false, since: Instant::now() }]);
    }

    /// Counts the calling worker as waiting for work while the guard lives.
    pub fn idle_worker(&self) -> IdleWorker<'_> {
        self.idle.fetch_add(1, Ordering::AcqRel);
        IdleWorker(&self.idle)
    }

    /// A message claimed before, or else up to a batch claimed now for `owner`.
    pub async fn take(
        self: &Arc<Self>,
        store: &Store,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        expect_due: bool,
    ) -> Result<Option<Taken>, StoreError> {
        if let Some(taken) = self.take_waiting() {
            return Ok(Some(taken));
        }
        let Some(claimed) = outbox::claim(store, owner, now, lease, expect_due, self.batch).await? else {
            return Ok(None);
        };
        let mut messages = claimed.messages.into_iter();
        let Some(first) = messages.next() else { return Ok(None) };
        let since = Instant::now();
        let rest: Vec<_> =
            messages.map(|message| Waiting { message, more_in_store: claimed.more_due, since }).collect();
        let kept = !rest.is_empty();
        if kept {
            self.keep(store, rest);
        }
        Ok(Some(Taken { message: first, more_due: claimed.more_due || kept }))
    }

    /// Keeps `claimed` for the next workers; whatever no worker took within [`MAX_WAIT`] goes
    /// back.
    fn keep(self: &Arc<Self>, store: &Store, claimed: Vec<Waiting>) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.extend(claimed);
        }
        let (claims, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            tokio::time::sleep(MAX_WAIT).await;
            claims.give_back_where(&store, |w| w.since.elapsed() >= MAX_WAIT).await;
        });
    }

    fn take_waiting(&self) -> Option<Taken> {
        let mut waiting = self.waiting.lock().ok()?;
        let next = waiting.pop_front()?;
        Some(Taken { message: next.message, more_due: next.more_in_store || !waiting.is_empty() })
    }

    /// Gives every message still waiting back to the outbox (the workers stop): another
    /// instance can claim them at once instead of after their lease. What is handed over
    /// afterwards goes straight back ([`Claims::hand_over`]).
    pub async fn give_back(&self, store: &Store) {
        self.closed.store(true, Ordering::Release);
        self.give_back_where(store, |_| true).await;
    }

    /// Gives back the messages waiting for `partner` (its delivery just failed and it is marked
    /// down): claimed while it was up, they would each be a probe.
    pub async fn give_back_partner(&self, store: &Store, partner: &str) {
        self.give_back_where(store, |w| w.message.partner == partner).await;
    }

    async fn give_back_where(&self, store: &Store, which: impl Fn(&Waiting) -> bool) {
        let left: Vec<OutboxMessage> = match self.waiting.lock() {
            Ok(mut waiting) => {
                let (back, keep): (VecDeque<Waiting>, VecDeque<Waiting>) = waiting.drain(..).partition(|w| which(w));
                *waiting = keep;
                back.into_iter().map(|w| w.message).collect()
            }
            Err(_) => return,
        };
        for msg in left {
            if let Err(e) = outbox::unclaim(store, &msg).await {
                tracing::warn!(message_id = %msg.message_id, error = %e, "claim not given back; it will expire");
            }
        }
    }

    /// How many claimed messages wait for a worker.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }
}

/// The longest lease a submission takes for a worker of its process: long enough for the
/// hand-over, the partner's rate and the signature (the attempt then renews the lease).
pub const SUBMISSION_LEASE: Duration = Duration::seconds(10);

/// A submission's claim on an idle worker ([`Claims::submission_lease`]): its lease, and the
/// worker promised to it until dropped (after the hand-over, or when the submission failed).
pub struct Promise<'a> {
    pub lease: Lease<'a>,
    promised: &'a AtomicUsize,
}

impl Drop for Promise<'_> {
    fn drop(&mut self) {
        self.promised.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A worker counted as waiting for work ([`Claims::idle_worker`]) until dropped.
pub struct IdleWorker<'a>(&'a AtomicUsize);

impl Drop for IdleWorker<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{Duration, Utc};

    use super::{Claims, MAX_WAIT, SUBMISSION_LEASE};
    use crate::store::certificates::NewCertificate;
    use crate::store::outbox;
    use crate::store::testdb::{fresh_stores, outbound_co as cert};

    /// One claim transaction serves several takes, oldest first; what is left when the workers
    /// stop goes back to the outbox, due at once for another instance.
    #[tokio::test]
    async fn a_batch_claimed_once_is_taken_in_order_and_given_back_when_the_workers_stop() {
        let dir = tempfile::tempdir().expect("tempdir");
        for store in fresh_stores(dir.path()).await.expect("stores") {
            let t = Utc::now();
            for n in 0..6 {
                let reference = format!("CO-TAKE-{n}");
                let id = format!("m-take-{n}");
                outbox::submit(&store, &cert(&reference), "SendCO", &id, "<x/>", t + Duration::milliseconds(n))
                    .await
                    .expect("submit");
            }
            let (now, lease) = (t + Duration::seconds(1), Duration::seconds(30));
            let claims = Arc::new(Claims::for_workers(8));
            let first = claims.take(&store, "w-0", now, lease, false).await.expect("take").expect("due");
            assert_eq!(first.message.message_id, "m-take-0");
            assert!(first.more_due);
            assert_eq!(claims.waiting(), 3, "a batch of four");
            // The next take needs no claim: another owner could not claim these now.
            assert!(outbox::claim(&store, "other", now, lease, false, 8).await.expect("claim").is_some_and(|c| {
                c.messages.iter().map(|m| m.message_id.as_str()).collect::<Vec<_>>() == ["m-take-4", "m-take-5"]
            }));
            let second = claims.take(&store, "w-1", now, lease, false).await.expect("take").expect("waiting");
            assert_eq!((second.message.message_id.as_str(), second.message.lease_owner.as_str()), ("m-take-1", "w-0"));
            assert!(second.more_due, "two more wait");
            assert_eq!(claims.waiting(), 2);

            claims.give_back(&store).await;
            assert_eq!(claims.waiting(), 0);
            let again = outbox::claim(&store, "other", now, lease, false, 8).await.expect("claim").expect("due");
            let ids: Vec<_> = again.messages.iter().map(|m| m.message_id.as_str()).collect();
            assert_eq!(ids, ["m-take-2", "m-take-3"], "given back, due at once");
            assert!(claims.take(&store, "w-0", now, lease, false).await.expect("take").is_none());
        }
    }

    /// A submission leases its message only for a process whose worker waits, is not promised
    /// to another submission, and has no claimed message waiting; the message handed over is
    /// taken by the next worker without a claim, given back after [`MAX_WAIT`], or at once
    /// once the workers have stopped.
    #[tokio::test]
    async fn a_submission_leases_for_an_idle_worker_only_and_its_message_is_taken_or_given_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        for store in fresh_stores(dir.path()).await.expect("stores") {
            let t = Utc::now();
            let lease = Duration::seconds(120);
            let claims = Arc::new(Claims::for_process("KR-1-abc", 2));
            assert!(claims.submission_lease(t, lease).is_none(), "no worker waits");
            let idle = claims.idle_worker();
            let promise = claims.submission_lease(t, lease).expect("a worker waits");
            assert_eq!((promise.lease.owner, promise.lease.until), ("KR-1-abc-submit", t + SUBMISSION_LEASE));
            assert!(claims.submission_lease(t, lease).is_none(), "its one idle worker is promised");
            drop(promise);
            assert!(Claims::for_workers(2).submission_lease(t, lease).is_none(), "not a process's claims");

            let submit = |n: i64| {
                let (store, claims) = (store.clone(), claims.clone());
                async move {
                    let promise = claims.submission_lease(t, lease).expect("lease");
                    let (reference, id) = (format!("CO-HAND-{n}"), format!("m-hand-{n}"));
                    let (_, leased) =
                        outbox::submit_leased(&store, &cert(&reference), "SendCO", &id, "<x/>", t, Some(promise.lease))
                            .await
                            .expect("submit");
                    leased.expect("leased")
                }
            };
            let first = submit(1).await;
            claims.hand_over(&store, first).await;
            assert!(claims.submission_lease(t, lease).is_none(), "a handed-over message waits");
            let next = claims.take(&store, "w-0", t, lease, true).await.expect("take").expect("handed over");
            assert_eq!((next.message.message_id.as_str(), next.more_due), ("m-hand-1", false));
            assert_eq!(next.message.lease_owner, "KR-1-abc-submit");

            let second = submit(2).await;
            claims.hand_over(&store, second).await;
            drop(idle);
            assert!(claims.submission_lease(t, lease).is_none(), "no worker waits any more");
            tokio::time::sleep(MAX_WAIT + std::time::Duration::from_millis(300)).await;
            assert_eq!(claims.waiting(), 0, "nobody took it within the longest wait");
            let back = outbox::claim(&store, "other", t, lease, false, 8).await.expect("claim").expect("given back");
            let ids: Vec<_> = back.messages.iter().map(|m| m.message_id.as_str()).collect();
            assert_eq!(ids, ["m-hand-2"]);

            // Leased while a worker waited, handed over after the workers stopped: straight back.
            let idle = claims.idle_worker();
            let third = submit(3).await;
            drop(idle);
            claims.give_back(&store).await;
            claims.hand_over(&store, third).await;
            assert_eq!(claims.waiting(), 0);
            let back = outbox::claim(&store, "other", t, lease, false, 8).await.expect("claim").expect("given back");
            let ids: Vec<_> = back.messages.iter().map(|m| m.message_id.as_str()).collect();
            assert_eq!(ids, ["m-hand-3"], "given back at once");
            let idle = claims.idle_worker();
            assert!(claims.submission_lease(t, lease).is_none(), "the workers stopped");
            drop(idle);
        }
    }

    /// A waiting message is not held from the others for long: messages for a partner whose
    /// delivery just failed go back at once, the others after [`MAX_WAIT`].
    #[tokio::test]
    async fn waiting_claims_go_back_when_their_partner_fails_and_after_the_longest_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        for store in fresh_stores(dir.path()).await.expect("stores") {
            let t = Utc::now();
            for (n, partner) in ["ID", "JP", "ID", "ID"].into_iter().enumerate() {
                let reference = format!("CO-WAIT-{n}");
                let id = format!("m-wait-{n}");
                let new = NewCertificate { partner, ..cert(&reference) };
                outbox::submit(&store, &new, "SendCO", &id, "<x/>", t + Duration::milliseconds(n as i64))
                    .await
                    .expect("submit");
            }
            let (now, lease) = (t + Duration::seconds(1), Duration::seconds(30));
            let claims = Arc::new(Claims::for_workers(8));
            let first = claims.take(&store, "w-0", now, lease, false).await.expect("take").expect("due");
            assert_eq!(first.message.message_id, "m-wait-0");
            assert_eq!(claims.waiting(), 3);
            let claim_ids = |c: Option<outbox::Claimed>| {
                c.map(|c| c.messages.into_iter().map(|m| m.message_id).collect::<Vec<_>>()).unwrap_or_default()
            };

            claims.give_back_partner(&store, "JP").await;
            assert_eq!(claims.waiting(), 2);
            let jp = outbox::claim(&store, "other", now, lease, false, 8).await.expect("claim");
            assert_eq!(claim_ids(jp), ["m-wait-1"], "JP's message went back; ID's still wait");

            tokio::time::sleep(MAX_WAIT + std::time::Duration::from_millis(300)).await;
            assert_eq!(claims.waiting(), 0, "nobody took them within the longest wait");
            let rest = outbox::claim(&store, "other", now, lease, false, 8).await.expect("claim");
            assert_eq!(claim_ids(rest), ["m-wait-2", "m-wait-3"]);
        }
    }
}
