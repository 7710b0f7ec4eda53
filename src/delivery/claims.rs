//! The claims the delivery workers of one process share. One claim transaction takes up to a
//! batch of due messages ([`outbox::claim`]); its worker delivers the first, and the others
//! wait here for the next worker of this process that looks for work. On PostgreSQL a claim
//! costs five round trips and a commit, serialised across workers and instances, so a batch
//! spreads them over several messages.
//!
//! A message waiting here is leased to the claiming worker's name in the store, and every step
//! of its delivery is conditional on that lease (`outbox::begin` and what follows it): if the
//! lease expired and another worker took the message over, the step finds `LeaseLost` and
//! records nothing. So the hand-off needs no store write of its own.
//!
//! Must never: hold a message no worker of this process will take (a batch is at most the
//! number of workers, and a worker that stops gives back what is left, see [`Claims::give_back`]);
//! deliver a message it did not claim.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::store::outbox::{self, OutboxMessage};
use crate::store::{Store, StoreError};

/// The most messages one claim takes for the workers of a process: enough to spread a claim's
/// cost, few enough that a message waits here for a fraction of a delivery at most.
pub const MAX_BATCH: usize = 4;

/// A message taken by a worker: claimed by itself or by another worker of the process.
#[derive(Debug)]
pub struct Taken {
    pub message: OutboxMessage,
    /// More messages were due than this one: another idle worker may find one.
    pub more_due: bool,
}

/// Claimed messages not yet taken by a worker, oldest first.
pub struct Claims {
    batch: usize,
    /// Each with whether its claim saw more due in the store than it took.
    waiting: Mutex<VecDeque<(OutboxMessage, bool)>>,
}

impl Claims {
    /// For `workers` workers: a claim takes up to one message per worker, [`MAX_BATCH`] at most.
    pub fn for_workers(workers: usize) -> Self {
        Claims { batch: workers.clamp(1, MAX_BATCH), waiting: Mutex::new(VecDeque::new()) }
    }

    /// A message claimed before, or else up to a batch claimed now for `owner`.
    pub async fn take(
        &self,
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
        let rest: Vec<_> = messages.map(|m| (m, claimed.more_due)).collect();
        let kept = !rest.is_empty();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.extend(rest);
        }
        Ok(Some(Taken { message: first, more_due: claimed.more_due || kept }))
    }

    fn take_waiting(&self) -> Option<Taken> {
        let mut waiting = self.waiting.lock().ok()?;
        let (message, more_in_store) = waiting.pop_front()?;
        Some(Taken { message, more_due: more_in_store || !waiting.is_empty() })
    }

    /// Gives the messages still waiting back to the outbox (a worker stops): another instance
    /// can claim them at once instead of after their lease.
    pub async fn give_back(&self, store: &Store) {
        let left: Vec<OutboxMessage> = match self.waiting.lock() {
            Ok(mut waiting) => waiting.drain(..).map(|(m, _)| m).collect(),
            Err(_) => return,
        };
        for msg in left {
            if let Err(e) = outbox::unclaim(store, &msg).await {
                tracing::warn!(message_id = %msg.message_id, error = %e, "claim not given back; it will expire");
            }
        }
    }

    /// How many claimed messages wait for a worker.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::Claims;
    use crate::lifecycle::Direction;
    use crate::store::certificates::NewCertificate;
    use crate::store::outbox;
    use crate::store::testdb::fresh_stores;

    fn cert(reference: &str) -> NewCertificate<'_> {
        NewCertificate {
            issuer: "KR",
            reference,
            direction: Direction::Outbound,
            partner: "ID",
            kind: crate::payload::DocumentKind::Co,
            replaces: None,
            reference_code: None,
            verification_flag: None,
            content_sha256: "abc",
            co_xml: "<LPCO/>",
        }
    }

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
            let claims = Claims::for_workers(8);
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
}
