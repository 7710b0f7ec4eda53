//! Each partner's pace: at most `flush_rate_per_second` messages a second (a recovering
//! partner's backlog is flushed at this rate), shared by the workers of one process.
//!
//! Two GCRA buckets per partner, in real time. The plan gives each message its turn (a slot;
//! a burst of a tenth of a second's worth, at least one, goes at once): a message whose turn
//! is near (within one interval between messages, and [`HOLD`] at most) waits for it in its
//! worker, so a partner keeps two workers waiting at most; one whose turn is further off keeps
//! it and goes back to the outbox until then ([`Turn::Later`]), so that a worker never sleeps
//! through one partner's backlog while another partner's messages wait behind it (claims take
//! the oldest due messages first, whoever they are for). The sends bucket counts what was
//! actually sent: a message that comes back late (its worker was busy) goes no sooner than the
//! pace allows after the messages sent meanwhile, so late messages never go in a burst; if
//! that is further off than a worker waits, it takes a new turn of the plan (each its own, so
//! that they do not race for one instant again). One that comes back more than [`GRACE`]
//! after its turn (a pause, a partner down, every worker stuck) has lost it and takes the
//! plan's next free turn, behind those already given.
//!
//! Owns: the partners' plans, their sends, and the turns given to messages sent back to the
//! outbox. Must never: let a partner receive more than its rate and burst in any second; let
//! a message go before its turn; measure anything but real time (the pace is a promise to the
//! partner, not a scheduling decision of the gateway's clock).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a worker waits for its message's turn (and never longer than the interval
/// between two messages to its partner); a later turn sends the message back to the outbox.
pub const HOLD: Duration = Duration::from_millis(100);

/// How late a message may come back and keep its turn (at least one interval): long enough
/// for a wake-up that found every worker busy, short enough that a message whose turn went by
/// during a pause or an outage does not jump the queue of those given turns since.
pub const GRACE: Duration = Duration::from_secs(2);

/// How often turns long past are forgotten (messages that never came back: cancelled,
/// delivered by another instance), and how long past they must be.
const SWEEP: Duration = Duration::from_secs(60);
const KEEP_PAST: Duration = Duration::from_secs(600);

/// The configuration's lowest rate is above zero; this keeps the interval finite whatever
/// it is given (one message in 1,000 s).
const MIN_RATE: f64 = 0.001;

/// What a message's partner allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Send at this instant (now, or within the hold).
    At(Instant),
    /// Not before this instant: back to the outbox until then. The turn stays the message's.
    Later(Instant),
}

#[derive(Default)]
pub struct RateLimiter {
    inner: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// Per partner: the plan's theoretical arrival time of its next message.
    plan: HashMap<String, Instant>,
    /// Per partner: the same for the messages actually sent.
    sent: HashMap<String, Instant>,
    /// Per message ID: the turn it was given when it went back to the outbox.
    given: HashMap<String, Instant>,
    swept: Option<Instant>,
}

/// A partner's rate as a GCRA: the time between two messages, and how far ahead of it a
/// message may go (the burst, less one message).
#[derive(Clone, Copy)]
struct Pace {
    interval: Duration,
    tolerance: Duration,
}

impl Pace {
    fn of(per_second: f64) -> Pace {
        let per_second = per_second.max(MIN_RATE);
        let interval = Duration::from_secs_f64(1.0 / per_second);
        let burst = (per_second / 10.0).floor().max(1.0);
        Pace { interval, tolerance: interval.mul_f64(burst - 1.0) }
    }

    /// When the next message may go after `tat` (a bucket's theoretical arrival time).
    fn earliest(self, tat: Option<Instant>, now: Instant) -> Instant {
        let due = tat.filter(|t| *t > now).unwrap_or(now);
        due.checked_sub(self.tolerance).map_or(now, |at| at.max(now))
    }

    /// The bucket's time once a message went at `at`.
    fn after(self, tat: Option<Instant>, at: Instant) -> Instant {
        tat.map_or(at, |t| t.max(at)) + self.interval
    }
}

impl RateLimiter {
    /// The turn of message `message_id` to `partner` at `per_second`: the turn it was given
    /// before (unless it went by more than [`GRACE`] ago) or else the plan's next, and no
    /// sooner than the partner's sends allow.
    pub fn turn(&self, partner: &str, message_id: &str, per_second: f64) -> Turn {
        let now = Instant::now();
        let pace = Pace::of(per_second);
        // A poisoned lock (a panic while holding it cannot happen in the code below) sends at
        // once rather than stopping delivery.
        let Ok(mut slots) = self.inner.lock() else { return Turn::At(now) };
        let planned = match slots.given.remove(message_id) {
            Some(at) if now.saturating_duration_since(at) <= GRACE.max(pace.interval) => at,
            _ => take(&mut slots.plan, partner, pace, now, now),
        };
        let hold = now + pace.interval.min(HOLD);
        let allowed = pace.earliest(slots.sent.get(partner).copied(), now);
        let mut send_at = planned.max(allowed);
        if send_at > hold && allowed > planned {
            // The sends are behind the plan (messages went late): a new turn of the plan, after
            // them, so that each message pushed back has a turn of its own rather than all of
            // them the same instant (and the same race again then).
            send_at = take(&mut slots.plan, partner, pace, now, allowed);
        }
        if send_at <= hold {
            take(&mut slots.sent, partner, pace, now, send_at);
            return Turn::At(send_at);
        }
        slots.give(message_id, send_at, now);
        Turn::Later(send_at)
    }
}

/// Takes `partner`'s next slot of `bucket`, not before `not_before`: when its message may go.
fn take(
    bucket: &mut HashMap<String, Instant>,
    partner: &str,
    pace: Pace,
    now: Instant,
    not_before: Instant,
) -> Instant {
    let tat = bucket.get(partner).copied();
    let at = pace.earliest(tat, now).max(not_before);
    let next = pace.after(tat, at);
    // Allocates the partner's name once, not for every message.
    match bucket.get_mut(partner) {
        Some(t) => *t = next,
        None => {
            bucket.insert(partner.to_owned(), next);
        }
    }
    at
}

impl Slots {
    /// Keeps `at` for `message_id`; forgets turns long past once a minute (bounded memory).
    fn give(&mut self, message_id: &str, at: Instant, now: Instant) {
        if self.swept.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP) {
            self.given.retain(|_, turn| now.saturating_duration_since(*turn) < KEEP_PAST);
            self.swept = Some(now);
        }
        self.given.insert(message_id.to_owned(), at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pace_holds_beyond_the_burst() {
        // 100 per second with a burst of 10: 30 messages, each sent at its turn or sent back
        // to the outbox until then (here: asked again at that moment), take at least 190 ms.
        let limiter = RateLimiter::default();
        let t = Instant::now();
        for i in 0..30 {
            let id = format!("m{i}");
            loop {
                match limiter.turn("ID", &id, 100.0) {
                    Turn::At(at) => {
                        tokio::time::sleep_until(at.into()).await;
                        break;
                    }
                    Turn::Later(at) => tokio::time::sleep_until(at.into()).await,
                }
            }
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
    fn a_message_back_late_goes_at_the_pace_after_those_sent_meanwhile() {
        // 5 a second, a burst of one: a message whose turn went by a second ago (its worker
        // was busy) goes a turn after the message just sent, not with it.
        let limiter = RateLimiter::default();
        let now = Instant::now();
        let missed = now.checked_sub(Duration::from_secs(1)).expect("up for more than a second");
        limiter.inner.lock().expect("lock").given.insert("late".into(), missed);
        assert!(matches!(limiter.turn("ID", "m1", 5.0), Turn::At(_)), "the partner is under its rate");
        let Turn::Later(late) = limiter.turn("ID", "late", 5.0) else { panic!("not at once") };
        assert!(late.duration_since(now) >= Duration::from_millis(199), "a turn after m1's");
    }

    #[test]
    fn messages_pushed_back_by_the_sends_get_turns_of_their_own() {
        // 5 a second, a burst of one. Five messages whose turns went by while the workers were
        // busy, and the sends a second ahead: each gets its own turn, 200 ms apart, not all
        // the same instant (where all but one would be pushed back again, and again).
        let limiter = RateLimiter::default();
        let now = Instant::now();
        let missed = now.checked_sub(Duration::from_millis(500)).expect("up for more than a second");
        {
            let mut slots = limiter.inner.lock().expect("lock");
            for i in 0..5 {
                slots.given.insert(format!("m{i}"), missed);
            }
            slots.sent.insert("ID".into(), now + Duration::from_secs(1));
        }
        let mut turns: Vec<Instant> = (0..5)
            .map(|i| match limiter.turn("ID", &format!("m{i}"), 5.0) {
                Turn::Later(at) => at,
                other => panic!("the sends are a second ahead: {other:?}"),
            })
            .collect();
        turns.sort();
        assert!(turns[0] >= now + Duration::from_millis(999), "not before the sends allow");
        assert!(turns.windows(2).all(|w| w[1].duration_since(w[0]) >= Duration::from_millis(199)), "{turns:?}");
    }

    #[test]
    fn a_message_back_after_the_grace_takes_the_plans_next_turn() {
        // Turns were given to m1..m3 while m0's went by long ago (a pause): m0 goes after them.
        let limiter = RateLimiter::default();
        let now = Instant::now();
        let missed = now.checked_sub(GRACE + Duration::from_secs(1)).expect("up for more than three seconds");
        limiter.inner.lock().expect("lock").given.insert("m0".into(), missed);
        let turns: Vec<Turn> = (1..=3).map(|i| limiter.turn("ID", &format!("m{i}"), 5.0)).collect();
        let Turn::Later(third) = turns[2] else { panic!("{turns:?}") };
        let Turn::Later(m0) = limiter.turn("ID", "m0", 5.0) else { panic!("not at once") };
        assert!(m0.duration_since(third) >= Duration::from_millis(199), "behind m3");
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
