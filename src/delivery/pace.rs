//! Each partner's pace: at most `flush_rate_per_second` messages a second (a recovering
//! partner's backlog is flushed at this rate), shared by the workers of one process.
//!
//! A GCRA bucket per partner: a message goes at once while the partner is under its rate,
//! and over any second a partner receives at most its rate plus a burst of a tenth of a
//! second's worth of messages (at least one). A message whose turn is near (within one
//! interval between messages, and [`HOLD`] at most) waits for it in its worker, so a partner
//! keeps two workers waiting at most. One whose turn is further off keeps the turn it was
//! given and goes back to the outbox until then ([`Turn::Later`]): a worker never sleeps
//! through one partner's backlog while another partner's messages wait behind it (claims
//! take the oldest due messages first, whoever they are for). A message that comes back more
//! than an interval after its turn (no worker was free, the partner was paused or down) has
//! lost it and takes the partner's next one: late messages never go in a burst.
//!
//! Owns: the partners' next free slots and the slots already given to messages sent back to
//! the outbox. Must never: give two messages the same slot; let a message go before its
//! turn or more than an interval after it; measure anything but real time (the pace is a
//! promise to the partner, not a scheduling decision of the gateway's clock).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a worker waits for its message's turn (and never longer than the interval
/// between two messages to its partner); a later turn sends the message back to the outbox.
pub const HOLD: Duration = Duration::from_millis(100);

/// How long a slot given to a message sent back to the outbox is kept for it after its time.
/// The message comes due at its slot and is normally claimed within the poll interval; one
/// that never comes back (cancelled, delivered by another instance) is forgotten after this.
const KEEP_PAST: Duration = Duration::from_secs(600);

/// What a message's partner allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Send at this instant (now, or within the hold).
    At(Instant),
    /// Not before this instant: back to the outbox until then. The slot stays the message's.
    Later(Instant),
}

#[derive(Default)]
pub struct RateLimiter {
    inner: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// Per partner: the theoretical arrival time of its next message.
    next: HashMap<String, Instant>,
    /// Per message ID: the slot it was given when it went back to the outbox.
    given: HashMap<String, Instant>,
}

impl RateLimiter {
    /// The turn of message `message_id` to `partner` at `per_second`: the slot it was given
    /// before, unless that is more than an interval past, or else the partner's next one.
    pub fn turn(&self, partner: &str, message_id: &str, per_second: f64) -> Turn {
        let now = Instant::now();
        let interval = interval(per_second);
        // A poisoned lock (a panic while holding it cannot happen in the code below) sends at
        // once rather than stopping delivery.
        let Ok(mut slots) = self.inner.lock() else { return Turn::At(now) };
        let send_at = match slots.given.remove(message_id) {
            Some(at) if now.saturating_duration_since(at) <= interval => at,
            _ => slots.take_next(partner, per_second, now),
        };
        if send_at <= now + interval.min(HOLD) {
            return Turn::At(send_at.max(now));
        }
        slots.give(message_id, send_at, now);
        Turn::Later(send_at)
    }

    /// Waits until `partner` may receive one more message at `per_second`, however long.
    pub async fn acquire(&self, partner: &str, per_second: f64) {
        let send_at = {
            let now = Instant::now();
            let Ok(mut slots) = self.inner.lock() else { return };
            slots.take_next(partner, per_second, now)
        };
        if send_at > Instant::now() {
            tokio::time::sleep_until(send_at.into()).await;
        }
    }
}

/// The configuration's lowest rate is above zero; this keeps the interval finite whatever
/// it is given (one message in 1,000 s).
const MIN_RATE: f64 = 0.001;

/// The time between two messages to a partner at `per_second`.
fn interval(per_second: f64) -> Duration {
    Duration::from_secs_f64(1.0 / per_second.max(MIN_RATE))
}

impl Slots {
    /// Takes the partner's next slot: when its message may go.
    fn take_next(&mut self, partner: &str, per_second: f64, now: Instant) -> Instant {
        let interval = interval(per_second);
        let burst = (per_second.max(MIN_RATE) / 10.0).floor().max(1.0);
        let tolerance = interval.mul_f64(burst - 1.0);
        let due = self.next.get(partner).copied().filter(|s| *s > now).unwrap_or(now);
        self.next.insert(partner.to_owned(), due + interval);
        due.checked_sub(tolerance).map_or(now, |at| at.max(now))
    }

    /// Keeps `at` for `message_id`; forgets slots long past now and then (bounded memory).
    fn give(&mut self, message_id: &str, at: Instant, now: Instant) {
        if self.given.len() % 1024 == 1023 {
            self.given.retain(|_, slot| now.saturating_duration_since(*slot) < KEEP_PAST);
        }
        self.given.insert(message_id.to_owned(), at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_rate_limiter_keeps_the_rate_beyond_its_burst() {
        // 100 per second with a burst of 10: 30 messages take at least 190 ms.
        let limiter = RateLimiter::default();
        let t = Instant::now();
        for _ in 0..30 {
            limiter.acquire("ID", 100.0).await;
        }
        assert!(t.elapsed() >= Duration::from_millis(190), "30 messages at 100/s with a burst of 10");
    }

    #[test]
    fn a_turn_beyond_the_hold_is_kept_for_its_message_and_the_partner_moves_on() {
        // 5 a second, a burst of 1: slots 200 ms apart.
        let limiter = RateLimiter::default();
        let t = Instant::now();
        let Turn::At(first) = limiter.turn("ID", "m1", 5.0) else { panic!("the first message goes at once") };
        assert!(first.duration_since(t) < HOLD);
        let Turn::Later(second) = limiter.turn("ID", "m2", 5.0) else { panic!("the second is 200 ms away") };
        let Turn::Later(third) = limiter.turn("ID", "m3", 5.0) else { panic!("the third is 400 ms away") };
        assert!(third.duration_since(second) >= Duration::from_millis(199), "each message its own slot");
        // Another partner is not held up by ID's backlog.
        assert!(matches!(limiter.turn("JP", "m4", 5.0), Turn::At(_)));
        // m2 asks again before its slot: the same slot, not a new one further off.
        assert_eq!(limiter.turn("ID", "m2", 5.0), Turn::Later(second));
        // A message that never went back takes the slot after m3.
        let Turn::Later(fourth) = limiter.turn("ID", "m5", 5.0) else { panic!("after m3") };
        assert!(fourth.duration_since(third) >= Duration::from_millis(199));
    }

    #[test]
    fn a_message_at_its_turn_goes_at_once_and_its_slot_is_used_up() {
        // 5 a second: turns 200 ms apart. m1's turn came 100 ms ago (its worker was busy).
        let limiter = RateLimiter::default();
        let now = Instant::now();
        let turn = now.checked_sub(Duration::from_millis(100)).expect("up for more than a second");
        limiter.inner.lock().expect("lock").given.insert("m1".into(), turn);
        let Turn::At(at) = limiter.turn("ID", "m1", 5.0) else { panic!("its turn has come") };
        assert!(at >= now, "not before now");
        assert!(limiter.inner.lock().expect("lock").given.is_empty(), "used up");
    }

    #[test]
    fn a_message_back_long_after_its_turn_takes_the_next_one_instead_of_a_burst() {
        // 5 a second, a burst of one: a message whose turn went by a second ago (the partner was
        // paused, or down) goes after those whose turns are still to come, not with them.
        let limiter = RateLimiter::default();
        let now = Instant::now();
        let missed = now.checked_sub(Duration::from_secs(1)).expect("up for more than a second");
        limiter.inner.lock().expect("lock").given.insert("late".into(), missed);
        assert!(matches!(limiter.turn("ID", "m1", 5.0), Turn::At(_)), "the partner is under its rate");
        let Turn::Later(late) = limiter.turn("ID", "late", 5.0) else { panic!("a new turn, not at once") };
        assert!(late.duration_since(now) >= Duration::from_millis(199), "the slot after m1's");
    }

    #[test]
    fn a_partner_keeps_at_most_two_workers_waiting_for_its_turns() {
        // 1,000 a second, a burst of 100: after the burst, turns 1 ms apart. Of the messages
        // ready at once, only those due within one interval wait in a worker.
        let limiter = RateLimiter::default();
        let waiting = (0..200)
            .map(|i| limiter.turn("ID", &format!("m{i}"), 1000.0))
            .filter(|t| matches!(t, Turn::At(at) if *at > Instant::now()))
            .count();
        assert!(waiting <= 2, "{waiting} workers would wait for their turns");
    }

    #[test]
    fn slots_long_past_are_forgotten() {
        let limiter = RateLimiter::default();
        let old = Instant::now();
        let later = old + KEEP_PAST + Duration::from_secs(1);
        let mut slots = limiter.inner.lock().expect("lock");
        for i in 0..1023 {
            slots.given.insert(format!("old{i}"), old);
        }
        slots.give("new", later, later);
        assert_eq!(slots.given.len(), 1, "only the new slot is left");
    }
}
