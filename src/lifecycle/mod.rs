//! The certificate lifecycle: every state, every event and which event moves which state, for
//! both directions. The one place that decides whether a transition is legal.
//!
//! Must never: touch SQL or the network. The store applies transitions computed here and writes
//! the history row in the same transaction (see `store::certificates::apply`).
//!
//! Export side: `queued → sent → acknowledged | rejected`; when the retry schedule (framework
//! 4.3.3) is exhausted `sent → delivery_failed`, from where an operator re-queues
//! (`delivery_failed → queued`) or cancels (`queued | sent | delivery_failed → cancelled`).
//! Import side: `received`.

use serde::Serialize;

/// Which side of the exchange this gateway is on for a given certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// We issued it and push it to the partner.
    Outbound,
    /// A partner pushed it to us.
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "outbound" => Some(Direction::Outbound),
            "inbound" => Some(Direction::Inbound),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Accepted from the domestic system, waiting in the outbox.
    Queued,
    /// Transmitted to the partner at least once, no acknowledgement stored yet.
    Sent,
    /// The partner acknowledged it with status Accepted.
    Acknowledged,
    /// The partner answered Rejected (or a SOAP Sender fault): not retried.
    Rejected,
    /// Received from a partner, verified and validated.
    Received,
    /// Every attempt of the retry schedule failed: manual intervention needed.
    DeliveryFailed,
    /// An operator withdrew the delivery.
    Cancelled,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Queued,
        State::Sent,
        State::Acknowledged,
        State::Rejected,
        State::Received,
        State::DeliveryFailed,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sent => "sent",
            State::Acknowledged => "acknowledged",
            State::Rejected => "rejected",
            State::Received => "received",
            State::DeliveryFailed => "delivery_failed",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What happened to a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The domestic system submitted it for a partner.
    Submitted,
    /// A delivery attempt put it on the wire.
    Transmitted,
    /// The partner's signed acknowledgement says Accepted.
    AcknowledgedAccepted,
    /// The partner's signed acknowledgement says Rejected, or it answered with a Sender fault.
    AcknowledgedRejected,
    /// A partner's SendCO passed security and validation.
    ReceivedFromPartner,
    /// The last attempt of the retry schedule failed.
    DeliveryExhausted,
    /// An operator asked for the delivery to be tried again.
    OperatorRetry,
    /// An operator withdrew the delivery.
    OperatorCancel,
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::Submitted,
        Event::Transmitted,
        Event::AcknowledgedAccepted,
        Event::AcknowledgedRejected,
        Event::ReceivedFromPartner,
        Event::DeliveryExhausted,
        Event::OperatorRetry,
        Event::OperatorCancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Submitted => "submitted",
            Event::Transmitted => "transmitted",
            Event::AcknowledgedAccepted => "acknowledged",
            Event::AcknowledgedRejected => "rejected",
            Event::ReceivedFromPartner => "received",
            Event::DeliveryExhausted => "delivery_exhausted",
            Event::OperatorRetry => "operator_retry",
            Event::OperatorCancel => "operator_cancel",
        }
    }
}

/// Whether delivering a message of `operation` moves its certificate through the export states.
/// Only `SendCO` does today; the other operations of the data cluster (cancellation, status,
/// feedback) will bring their own events, and until then their deliveries are noted in the
/// certificate's history without changing its state.
pub fn delivery_moves_certificate(operation: &str) -> bool {
    operation == "SendCO"
}

/// An event that is not allowed in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed for an {direction:?} certificate in state {from:?}")]
pub struct IllegalTransition {
    pub direction: Direction,
    pub from: Option<State>,
    pub event: Event,
}

/// The transition table. `from == None` means the certificate does not exist yet.
pub fn transition(direction: Direction, from: Option<State>, event: Event) -> Result<State, IllegalTransition> {
    use {Direction::*, Event::*, State::*};
    let to = match (direction, from, event) {
        (Outbound, None, Submitted) => Queued,
        (Outbound, Some(Queued), Transmitted) => Sent,
        // A retry transmits again; the state does not move.
        (Outbound, Some(Sent), Transmitted) => Sent,
        (Outbound, Some(Sent), AcknowledgedAccepted) => Acknowledged,
        (Outbound, Some(Sent), AcknowledgedRejected) => Rejected,
        (Outbound, Some(Queued | Sent), DeliveryExhausted) => DeliveryFailed,
        (Outbound, Some(DeliveryFailed), OperatorRetry) => Queued,
        (Outbound, Some(Queued | Sent | DeliveryFailed), OperatorCancel) => Cancelled,
        (Inbound, None, ReceivedFromPartner) => Received,
        _ => return Err(IllegalTransition { direction, from, event }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (direction, state, event) combination: exactly the documented ones are allowed.
    #[test]
    fn transition_table_is_exactly_the_documented_one() {
        let allowed = [
            (Direction::Outbound, None, Event::Submitted, State::Queued),
            (Direction::Outbound, Some(State::Queued), Event::Transmitted, State::Sent),
            (Direction::Outbound, Some(State::Sent), Event::Transmitted, State::Sent),
            (Direction::Outbound, Some(State::Sent), Event::AcknowledgedAccepted, State::Acknowledged),
            (Direction::Outbound, Some(State::Sent), Event::AcknowledgedRejected, State::Rejected),
            (Direction::Outbound, Some(State::Queued), Event::DeliveryExhausted, State::DeliveryFailed),
            (Direction::Outbound, Some(State::Sent), Event::DeliveryExhausted, State::DeliveryFailed),
            (Direction::Outbound, Some(State::DeliveryFailed), Event::OperatorRetry, State::Queued),
            (Direction::Outbound, Some(State::Queued), Event::OperatorCancel, State::Cancelled),
            (Direction::Outbound, Some(State::Sent), Event::OperatorCancel, State::Cancelled),
            (Direction::Outbound, Some(State::DeliveryFailed), Event::OperatorCancel, State::Cancelled),
            (Direction::Inbound, None, Event::ReceivedFromPartner, State::Received),
        ];
        let froms: Vec<Option<State>> = std::iter::once(None).chain(State::ALL.into_iter().map(Some)).collect();
        for direction in [Direction::Outbound, Direction::Inbound] {
            for from in &froms {
                for event in Event::ALL {
                    let expected =
                        allowed.iter().find(|(d, f, e, _)| *d == direction && f == from && *e == event).map(|a| a.3);
                    match (transition(direction, *from, event), expected) {
                        (Ok(to), Some(exp)) => assert_eq!(to, exp),
                        (Err(_), None) => {}
                        (got, exp) => panic!("{direction:?} {from:?} {event:?}: got {got:?}, expected {exp:?}"),
                    }
                }
            }
        }
    }
}
