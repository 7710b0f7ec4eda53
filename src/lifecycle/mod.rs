//! The certificate lifecycle: every state, every event, who may cause it and which state it
//! leads to, for both directions and for COs and DOs alike. The one place that decides whether
//! a transition is legal; `docs/lifecycle.md` shows the same table (a test reads it back).
//!
//! Must never: touch SQL or the network. The store applies transitions computed here and writes
//! the history row in the same transaction (see `store::certificates::apply`).
//!
//! Export side: `queued → sent → acknowledged | rejected`, `delivery_failed` when the retry
//! schedule (framework 4.3.3) is exhausted, `withdrawn` by an operator. An amendment (T2) is a
//! cancellation plus a re-issue: `acknowledged → cancellation_requested → cancelled` when the
//! importer accepts (the replacement is a new certificate), back to `acknowledged` when it
//! declines or the notification cannot be delivered.
//! Import side: `received → cancellation_pending → cancelled | received`; the origin-treatment
//! decision (T3) and its feedback are recorded without a state change, but they decide the
//! automatic answer to a cancellation (see [`automatic_cancellation_answer`]).

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
    pub const ALL: [Direction; 2] = [Direction::Outbound, Direction::Inbound];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Accepted from the domestic system, waiting in the outbox.
    Queued,
    /// Transmitted to the partner at least once, no acknowledgement stored yet.
    Sent,
    /// The partner acknowledged it with status Accepted: valid at the importer.
    Acknowledged,
    /// The partner answered Rejected (or a SOAP Sender fault): not retried.
    Rejected,
    /// Every attempt of the retry schedule failed: manual intervention needed.
    DeliveryFailed,
    /// An operator withdrew the delivery before it was acknowledged.
    Withdrawn,
    /// Our issuing system asked for an amendment; the cancellation notification is on its way
    /// or waiting for the importer's answer.
    CancellationRequested,
    /// Received from a partner, verified and validated: valid here.
    Received,
    /// The exporter notified a cancellation; waiting for our officer's decision.
    CancellationPending,
    /// Cancelled by an accepted cancellation (both directions; the replacement is another
    /// certificate).
    Cancelled,
}

impl State {
    pub const ALL: [State; 10] = [
        State::Queued,
        State::Sent,
        State::Acknowledged,
        State::Rejected,
        State::DeliveryFailed,
        State::Withdrawn,
        State::CancellationRequested,
        State::Received,
        State::CancellationPending,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Sent => "sent",
            State::Acknowledged => "acknowledged",
            State::Rejected => "rejected",
            State::DeliveryFailed => "delivery_failed",
            State::Withdrawn => "withdrawn",
            State::CancellationRequested => "cancellation_requested",
            State::Received => "received",
            State::CancellationPending => "cancellation_pending",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Nothing can happen to the certificate any more.
    pub fn is_final(self) -> bool {
        matches!(self, State::Rejected | State::Withdrawn | State::Cancelled)
    }
}

/// Who causes an event. Partners are named by the role they have for this certificate: the
/// exporting partner issued a certificate we received, the importing partner is the one we
/// pushed ours to. A partner that is neither has no role at all (`LC-UNKNOWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// This gateway itself: the delivery worker, automatic decisions.
    Gateway,
    /// An operator of this gateway (manual intervention, framework 4.3.3).
    Operator,
    /// Our domestic issuing system (exporting side).
    Issuer,
    /// Our domestic clearance system or customs officer (importing side).
    Clearance,
    /// The partner that issued the certificate and pushed it to us.
    ExportingPartner,
    /// The partner we pushed the certificate to.
    ImportingPartner,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Gateway, Role::Operator, Role::Issuer, Role::Clearance, Role::ExportingPartner, Role::ImportingPartner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Operator => "operator",
            Role::Issuer => "issuer",
            Role::Clearance => "clearance",
            Role::ExportingPartner => "exporting_partner",
            Role::ImportingPartner => "importing_partner",
        }
    }

    /// The role a partner has for a certificate of `direction` exchanged with it.
    pub fn of_partner(direction: Direction) -> Role {
        match direction {
            Direction::Outbound => Role::ImportingPartner,
            Direction::Inbound => Role::ExportingPartner,
        }
    }
}

/// What happened to a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The domestic system submitted it for a partner.
    Submitted,
    /// A delivery attempt put it on the wire.
    Transmitted,
    /// The partner's signed acknowledgement says Accepted.
    AcknowledgedAccepted,
    /// The partner's signed acknowledgement says Rejected, or it answered with a Sender fault.
    AcknowledgedRejected,
    /// The last attempt of the retry schedule failed.
    DeliveryExhausted,
    /// An operator asked for the delivery to be tried again.
    OperatorRetry,
    /// An operator withdrew the delivery.
    OperatorWithdraw,
    /// A partner's SendCO or SendDO passed security and validation.
    ReceivedFromPartner,
    /// Our issuing system asked to amend the certificate (cancellation + re-issue).
    AmendmentRequested,
    /// The cancellation notification was rejected by the partner or withdrawn by an operator:
    /// the amendment failed, the certificate stays valid.
    CancellationUndelivered,
    /// The exporting partner notified a cancellation (SendCancellation).
    CancellationNotified,
    /// The cancellation was accepted: by our officer or automatically (inbound), or by the
    /// importing partner's SendCancellationStatus (outbound).
    CancellationAccepted,
    /// The cancellation was declined, likewise.
    CancellationDeclined,
    /// The importing side decided on origin-based treatment (inbound: recorded by our clearance
    /// system; outbound: received as SendFeedback).
    TreatmentDecided,
}

impl Event {
    pub const ALL: [Event; 14] = [
        Event::Submitted,
        Event::Transmitted,
        Event::AcknowledgedAccepted,
        Event::AcknowledgedRejected,
        Event::DeliveryExhausted,
        Event::OperatorRetry,
        Event::OperatorWithdraw,
        Event::ReceivedFromPartner,
        Event::AmendmentRequested,
        Event::CancellationUndelivered,
        Event::CancellationNotified,
        Event::CancellationAccepted,
        Event::CancellationDeclined,
        Event::TreatmentDecided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Submitted => "submitted",
            Event::Transmitted => "transmitted",
            Event::AcknowledgedAccepted => "acknowledged",
            Event::AcknowledgedRejected => "rejected",
            Event::DeliveryExhausted => "delivery_exhausted",
            Event::OperatorRetry => "operator_retry",
            Event::OperatorWithdraw => "operator_withdraw",
            Event::ReceivedFromPartner => "received",
            Event::AmendmentRequested => "amendment_requested",
            Event::CancellationUndelivered => "cancellation_undelivered",
            Event::CancellationNotified => "cancellation_notified",
            Event::CancellationAccepted => "cancellation_accepted",
            Event::CancellationDeclined => "cancellation_declined",
            Event::TreatmentDecided => "treatment_decided",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One row of the transition table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub direction: Direction,
    /// `None`: the certificate does not exist yet.
    pub from: Option<State>,
    pub event: Event,
    pub roles: &'static [Role],
    pub to: State,
}

const fn rule(direction: Direction, from: Option<State>, event: Event, roles: &'static [Role], to: State) -> Rule {
    Rule { direction, from, event, roles, to }
}

use {Direction::*, Event::*, Role::*, State::*};

/// The transition table: every allowed (direction, from, event, role) and where it leads.
/// Anything not here is refused.
pub const RULES: &[Rule] = &[
    rule(Outbound, None, Submitted, &[Issuer], Queued),
    rule(Outbound, Some(Queued), Transmitted, &[Gateway], Sent),
    // A retry transmits again; the state does not move.
    rule(Outbound, Some(Sent), Transmitted, &[Gateway], Sent),
    rule(Outbound, Some(Sent), AcknowledgedAccepted, &[Gateway], Acknowledged),
    rule(Outbound, Some(Sent), AcknowledgedRejected, &[Gateway], Rejected),
    rule(Outbound, Some(Queued), DeliveryExhausted, &[Gateway], DeliveryFailed),
    rule(Outbound, Some(Sent), DeliveryExhausted, &[Gateway], DeliveryFailed),
    rule(Outbound, Some(DeliveryFailed), OperatorRetry, &[Operator], Queued),
    rule(Outbound, Some(Queued), OperatorWithdraw, &[Operator], Withdrawn),
    rule(Outbound, Some(Sent), OperatorWithdraw, &[Operator], Withdrawn),
    rule(Outbound, Some(DeliveryFailed), OperatorWithdraw, &[Operator], Withdrawn),
    rule(Outbound, Some(Acknowledged), AmendmentRequested, &[Issuer], CancellationRequested),
    rule(Outbound, Some(CancellationRequested), CancellationUndelivered, &[Gateway, Operator], Acknowledged),
    rule(Outbound, Some(CancellationRequested), CancellationAccepted, &[ImportingPartner], Cancelled),
    rule(Outbound, Some(CancellationRequested), CancellationDeclined, &[ImportingPartner], Acknowledged),
    // A late answer to a notification we gave up as undelivered (it had reached the importer
    // after all): the flow applies it only to the notification it names, so both sides agree.
    rule(Outbound, Some(Acknowledged), CancellationAccepted, &[ImportingPartner], Cancelled),
    rule(Outbound, Some(Acknowledged), CancellationDeclined, &[ImportingPartner], Acknowledged),
    // Feedback can cross a cancellation notification on the wire.
    rule(Outbound, Some(Acknowledged), TreatmentDecided, &[ImportingPartner], Acknowledged),
    rule(Outbound, Some(CancellationRequested), TreatmentDecided, &[ImportingPartner], CancellationRequested),
    // The importer's signed feedback proves it holds the CO even when our copy of its
    // acknowledgement is not stored yet (crash after sending, lost answer, an ack that did not
    // verify): refusing it would lose the decision for good, the refusal being final.
    rule(Outbound, Some(Sent), TreatmentDecided, &[ImportingPartner], Sent),
    rule(Outbound, Some(DeliveryFailed), TreatmentDecided, &[ImportingPartner], DeliveryFailed),
    rule(Inbound, None, ReceivedFromPartner, &[ExportingPartner], Received),
    rule(Inbound, Some(Received), CancellationNotified, &[ExportingPartner], CancellationPending),
    rule(Inbound, Some(CancellationPending), CancellationAccepted, &[Clearance, Gateway], Cancelled),
    rule(Inbound, Some(CancellationPending), CancellationDeclined, &[Clearance, Gateway], Received),
    rule(Inbound, Some(Received), TreatmentDecided, &[Clearance], Received),
];

/// Why an event was refused. Each has its stable code (`docs/lifecycle.md`), used in error
/// acknowledgements to partners and in domestic API errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The role may never cause this event on a certificate of this direction (only the
    /// importer accepts a cancellation, only the exporter cancels ...).
    #[error("a {} may not cause {} on an {} certificate", role.as_str(), event.as_str(), direction.as_str())]
    NotAuthorised { direction: Direction, event: Event, role: Role },
    /// The role may cause the event, but not in the certificate's current state.
    #[error("{} is not possible for an {} certificate in state {}", event.as_str(), direction.as_str(), from.map_or("(new)", State::as_str))]
    WrongState { direction: Direction, from: Option<State>, event: Event },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotAuthorised { .. } => LC_NOT_AUTHORISED,
            Refusal::WrongState { .. } => LC_STATE,
        }
    }
}

/// The role may never cause the event on a certificate of this direction.
pub const LC_NOT_AUTHORISED: &str = "LC-NOT-AUTHORISED";
/// The event is not possible in the certificate's current state.
pub const LC_STATE: &str = "LC-STATE";
/// No such certificate exchanged with the partner (indistinguishable from one exchanged with
/// another partner, on purpose).
pub const LC_UNKNOWN: &str = "LC-UNKNOWN";

/// Decides an event caused by `role`. `from == None` means the certificate does not exist yet.
pub fn transition(direction: Direction, from: Option<State>, event: Event, role: Role) -> Result<State, Refusal> {
    let mut authorised = false;
    for r in RULES.iter().filter(|r| r.direction == direction && r.event == event && r.roles.contains(&role)) {
        authorised = true;
        if r.from == from {
            return Ok(r.to);
        }
    }
    if authorised {
        Err(Refusal::WrongState { direction, from, event })
    } else {
        Err(Refusal::NotAuthorised { direction, event, role })
    }
}

/// How delivering a message of an operation shows in its certificate's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Transmitted,
    Accepted,
    Rejected,
    Exhausted,
    OperatorRetry,
    OperatorWithdraw,
}

/// The certificate event (caused by the gateway or an operator) that a delivery outcome of
/// `operation` brings, or `None` when it is only noted in the history. SendCO and SendDO drive
/// the export states. A cancellation notification the importer rejected, or an operator
/// withdrew, ends the amendment; one whose retries ran out may have arrived, so the amendment
/// stays open for the operator (retry or withdraw). Answers and feedback are decided before
/// they are sent, so their delivery changes nothing.
pub fn delivery_event(operation: &str, outcome: DeliveryOutcome) -> Option<(Event, Role)> {
    use DeliveryOutcome as O;
    match operation {
        "SendCO" | "SendDO" => Some(match outcome {
            O::Transmitted => (Transmitted, Gateway),
            O::Accepted => (AcknowledgedAccepted, Gateway),
            O::Rejected => (AcknowledgedRejected, Gateway),
            O::Exhausted => (DeliveryExhausted, Gateway),
            O::OperatorRetry => (OperatorRetry, Operator),
            O::OperatorWithdraw => (OperatorWithdraw, Operator),
        }),
        "SendCancellation" => match outcome {
            O::Rejected => Some((CancellationUndelivered, Gateway)),
            O::OperatorWithdraw => Some((CancellationUndelivered, Operator)),
            _ => None,
        },
        _ => None,
    }
}

/// The importer's automatic answer to a cancellation notification (A.27–A.28): decline when an
/// origin-based treatment decision was already made on the certificate, accept otherwise.
/// `None` when an officer decides (configured per partner).
pub fn automatic_cancellation_answer(officer_decides: bool, treatment_decided: bool) -> Option<Event> {
    match (officer_decides, treatment_decided) {
        (true, _) => None,
        (false, true) => Some(CancellationDeclined),
        (false, false) => Some(CancellationAccepted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type DocumentedRow = (Direction, Option<State>, Event, Vec<Role>, State);

    /// The table in docs/lifecycle.md: `| direction | from | event | roles | to |` rows.
    fn documented() -> Vec<DocumentedRow> {
        let doc = include_str!("../../docs/lifecycle.md");
        let mut rows = Vec::new();
        for line in doc.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(|c| c.trim().trim_matches('`')).collect();
            let [direction, from, event, roles, to] = cells.as_slice() else { continue };
            let Some(direction) = Direction::parse(direction) else { continue };
            let from = if *from == "(new)" { None } else { Some(State::parse(from).expect("documented state")) };
            let event = Event::parse(event).expect("documented event");
            let roles: Vec<Role> = roles
                .split(',')
                .map(|r| {
                    let r = r.trim().trim_matches('`');
                    Role::ALL.into_iter().find(|x| x.as_str() == r).expect("documented role")
                })
                .collect();
            let to = State::parse(to).expect("documented state");
            rows.push((direction, from, event, roles, to));
        }
        rows
    }

    /// Every (direction, state, event, role) combination: exactly the documented ones are
    /// allowed and reach the documented state; the others are refused with the documented code.
    #[test]
    fn transition_table_is_exactly_the_documented_one() {
        let doc = documented();
        assert_eq!(doc.len(), RULES.len(), "docs/lifecycle.md and RULES list the same transitions");
        let froms: Vec<Option<State>> = std::iter::once(None).chain(State::ALL.into_iter().map(Some)).collect();
        let mut allowed = 0;
        for direction in Direction::ALL {
            for from in &froms {
                for event in Event::ALL {
                    for role in Role::ALL {
                        let row = doc
                            .iter()
                            .find(|(d, f, e, rs, _)| *d == direction && f == from && *e == event && rs.contains(&role));
                        let role_ever =
                            doc.iter().any(|(d, _, e, rs, _)| *d == direction && *e == event && rs.contains(&role));
                        match (transition(direction, *from, event, role), row) {
                            (Ok(to), Some(r)) => {
                                assert_eq!(to, r.4);
                                allowed += 1;
                            }
                            (Err(refusal), None) => {
                                let expected = if role_ever { LC_STATE } else { LC_NOT_AUTHORISED };
                                assert_eq!(refusal.code(), expected, "{direction:?} {from:?} {event:?} {role:?}");
                            }
                            (got, exp) => {
                                panic!("{direction:?} {from:?} {event:?} {role:?}: got {got:?}, documented {exp:?}")
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(allowed, RULES.iter().map(|r| r.roles.len()).sum::<usize>());
    }

    #[test]
    fn only_the_importer_answers_and_only_the_exporter_cancels() {
        let r = transition(Outbound, Some(CancellationRequested), CancellationAccepted, Issuer);
        assert_eq!(r.map_err(|e| e.code()), Err(LC_NOT_AUTHORISED));
        let r = transition(Inbound, Some(Received), CancellationNotified, ImportingPartner);
        assert_eq!(r.map_err(|e| e.code()), Err(LC_NOT_AUTHORISED));
        let r = transition(Inbound, Some(Cancelled), CancellationNotified, ExportingPartner);
        assert_eq!(r.map_err(|e| e.code()), Err(LC_STATE));
    }

    #[test]
    fn automatic_answer_declines_once_treatment_is_decided() {
        assert_eq!(automatic_cancellation_answer(false, true), Some(CancellationDeclined));
        assert_eq!(automatic_cancellation_answer(false, false), Some(CancellationAccepted));
        assert_eq!(automatic_cancellation_answer(true, false), None);
    }

    #[test]
    fn every_state_is_reachable() {
        for s in State::ALL {
            assert!(RULES.iter().any(|r| r.to == s), "{s:?} is never reached");
        }
    }
}
