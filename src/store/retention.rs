//! Retention (framework SP2 "erase confidential data once no longer needed", model agreement
//! Art. 25(5)): [`purge`] erases the contents of certificates and messages whose retention has
//! run out, and keeps what non-repudiation needs.
//!
//! Owns: the `purged_at` columns of `certificates`, `outbox` and `message_log`, and
//! `message_log.evidence` (migrations `0005_retention.sql`). It is the one writer that changes
//! rows of the otherwise append-only message log, and only in the way described here. The
//! caller (configuration, schedule, CLI) decides the retention and passes `older_than`.
//!
//! What a purge erases, for content older than `older_than`:
//! - `certificates.co_xml` becomes `''`, for certificates in a settled state
//!   (`acknowledged`, `rejected`, `received`, `cancelled`, `withdrawn`; last change before the cutoff) with no
//!   outbox message pending or failed. `content_sha256`, issuer, reference, state and the whole
//!   history stay.
//! - `amendments.replacement_xml` of decided amendments becomes NULL (the re-issued certificate
//!   holds the replacement).
//! - `outbox.body_xml` becomes `''` for closed messages (`delivered`, `rejected`, `cancelled`) of
//!   a purged certificate.
//! - `message_log.wire` of a *request* becomes an empty blob, once its outbox message is purged
//!   (outgoing) or its certificate is purged or it created none (incoming: rejected, or a
//!   re-delivery). `wire_sha256` (digest of the exact bytes signed and sent or received),
//!   message ID, partner, kind, operation and time stay; `evidence` receives the wire without
//!   the content of its SOAP Body (envelope, headers, the WS-Security timestamp, token and
//!   signature with its signed digests: the signature stays verifiable over SignedInfo and
//!   commits to a Body digest), as the caller's [`Evidence`] function cuts it (the store
//!   parses no envelope); NULL when the wire is not a SOAP envelope.
//!
//! What it keeps, deliberately:
//! - Acknowledgements, in `message_log` (both directions; the receipts written before the log
//!   held the only copy also keep theirs in `inbound_messages.ack_wire`). They
//!   are the signed evidence of receipt (the partner's ack of our CO carries, signed, the digest
//!   of our request; ours carries the digest of theirs) and hold identifiers, party codes, times,
//!   the digest and status, no CO content (`soap::messages::Acknowledgement`). The one residue:
//!   a rejection's error descriptions may quote a malformed value, cut to 40 characters
//!   (`payload::validate::shown`; free-text fields such as names are reported by length only).
//!   `inbound::find` and `inbound::look` answer a retried message ID with them: emptying one
//!   would make the endpoint answer with an empty body, so they stay.
//! - The content of a received document whose `document.received` event an active push
//!   subscriber has not confirmed yet (`backend_subscribers.position`): the event carries it,
//!   and a back-end that was down must still get it. (A back-end that only pulls the feed must
//!   read within the retention.)
//! - `delivery_failed` certificates and `failed` outbox messages: an operator may still retry
//!   them (`delivery_failed -> queued`), and the retry sends `body_xml` again. They become
//!   purgeable once cancelled (or, after a retry, acknowledged or rejected).
//! - History causes, delivery attempt errors and alerts (transport errors and partner error
//!   descriptions, as above).
//!
//! How: batches of at most [`BATCH`] rows, each in one transaction that also appends one audit
//! record (`retention.purge`, with the counts and the cutoff) through
//! [`super::audit::append_in`], so no content is erased without its record. A run that finds
//! nothing still appends one record (the purge ran, with this cutoff). Idempotent: purged rows
//! carry `purged_at` and are not taken again.
//!
//! Must never: delete a row; touch the audit log other than by appending; erase a digest,
//! message ID or acknowledgement; erase anything still in flight (a queued or sent certificate,
//! a pending or failed outbox message, or the log of one).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::Row;

use super::audit::{self, AuditEvent};
use super::outbox::{CANCELLED, DELIVERED, FAILED, PENDING, REJECTED};
use super::{millis, Store, StoreError, Tx};
use crate::lifecycle::State;

/// Most rows changed in one transaction.
pub const BATCH: i64 = 500;

/// Audit kind of a purge record.
pub const AUDIT_KIND: &str = "retention.purge";

/// Certificate states no event leaves (see `crate::lifecycle::transition`). `delivery_failed`
/// is not among them: an operator may re-queue it.
const FINAL_STATES: [State; 5] =
    [State::Acknowledged, State::Rejected, State::Received, State::Cancelled, State::Withdrawn];

/// What one [`purge`] erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Request wires emptied in the message log.
    pub messages_purged: i64,
    /// Certificate contents (`co_xml`) emptied.
    pub certificates_purged: i64,
    /// Outbox bodies emptied.
    pub outbox_purged: i64,
    pub cutoff: DateTime<Utc>,
}

/// What a purged request keeps of its wire: the wire without its payload, as the binding that
/// carried it cuts it (`soap::evidence::without_body_content`), or `None` when it cannot. The
/// store is handed this: it knows no envelope itself.
pub type Evidence = fn(&[u8]) -> Option<Vec<u8>>;

/// Erases the contents described in the module documentation for everything older than
/// `older_than`, in batches of at most [`BATCH`] rows, each with its audit record by `actor`;
/// a purged request keeps what `evidence` gives of its wire.
pub async fn purge(
    store: &Store,
    older_than: DateTime<Utc>,
    actor: &str,
    now: DateTime<Utc>,
    evidence: Evidence,
) -> Result<PurgeReport, StoreError> {
    // Committed events numbered first: an event not yet numbered holds its document.
    super::events::sequence(store).await?;
    purge_in_batches(store, older_than, actor, now, BATCH, evidence).await
}

async fn purge_in_batches(
    store: &Store,
    older_than: DateTime<Utc>,
    actor: &str,
    now: DateTime<Utc>,
    batch: i64,
    evidence: Evidence,
) -> Result<PurgeReport, StoreError> {
    let mut report = PurgeReport { messages_purged: 0, certificates_purged: 0, outbox_purged: 0, cutoff: older_than };
    for number in 1.. {
        let mut tx = store.begin().await?;
        if number == 1 {
            // A decided amendment's replacement CO lives on as its own certificate (purged with
            // it); the copy kept for the re-issue is no longer needed.
            sqlx::query("UPDATE amendments SET replacement_xml = NULL WHERE state <> 'requested' AND replacement_xml IS NOT NULL AND decided_at < $1")
                .bind(millis(older_than))
                .execute(&mut *tx)
                .await?;
        }
        let certificates = purge_certificates(&mut tx, older_than, now, batch).await?;
        let mut left = batch - certificates;
        let outbox = if left > 0 { purge_outbox(&mut tx, older_than, now, left).await? } else { 0 };
        left -= outbox;
        let messages =
            if left > 0 { purge_messages(&mut tx, store, older_than, now, left, evidence).await? } else { 0 };
        let total = certificates + outbox + messages;
        if total == 0 && number > 1 {
            // The previous batch was full and took the last rows: nothing to record.
            tx.rollback().await?;
            break;
        }
        let reason = format!(
            "erased content older than {}: {certificates} certificates, {outbox} outbox messages, {messages} logged requests (batch {number})",
            older_than.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        audit::append_in(
            &mut tx,
            store,
            &AuditEvent { kind: AUDIT_KIND, actor: Some(actor), reason: &reason, ..Default::default() },
            now,
        )
        .await?;
        tx.commit().await?;
        report.certificates_purged += certificates;
        report.outbox_purged += outbox;
        report.messages_purged += messages;
        if total < batch {
            // Each step saw the rows the previous ones freed in this transaction: none is left.
            break;
        }
    }
    Ok(report)
}

fn sql_list(values: &[&str]) -> String {
    values.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(", ")
}

async fn purge_certificates(
    tx: &mut Tx<'_>,
    older_than: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<i64, StoreError> {
    let finals = sql_list(&FINAL_STATES.map(State::as_str));
    let busy = sql_list(&[PENDING, FAILED]);
    // The state is checked again on the updated row (PostgreSQL re-reads it under the lock).
    // `created_at < $2` adds nothing (a row updated before the cutoff was created before it):
    // it is what the index is on (migration 0010), so that a certificate's updates do not
    // touch it.
    let sql = format!(
        "UPDATE certificates SET co_xml = '', purged_at = $1 \
         WHERE purged_at IS NULL AND state IN ({finals}) AND id IN (\
           SELECT c.id FROM certificates c \
           WHERE c.purged_at IS NULL AND c.created_at < $2 AND c.updated_at < $2 AND c.state IN ({finals}) \
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.certificate_id = c.id AND o.state IN ({busy})) \
           AND NOT EXISTS (SELECT 1 FROM events e WHERE e.certificate_id = c.id AND e.kind = 'document.received' \
             AND (e.seq IS NULL OR e.seq > COALESCE((SELECT MIN(b.position) FROM backend_subscribers b WHERE b.active = 1), e.seq))) \
           ORDER BY c.created_at, c.id LIMIT {limit})"
    );
    let done = sqlx::query(&sql).bind(millis(now)).bind(millis(older_than)).execute(&mut **tx).await?;
    Ok(done.rows_affected() as i64)
}

async fn purge_outbox(
    tx: &mut Tx<'_>,
    older_than: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<i64, StoreError> {
    let closed = sql_list(&[DELIVERED, REJECTED, CANCELLED]);
    // `created_at < $2`: see `purge_certificates`.
    let sql = format!(
        "UPDATE outbox SET body_xml = '', purged_at = $1 \
         WHERE purged_at IS NULL AND state IN ({closed}) AND message_id IN (\
           SELECT o.message_id FROM outbox o JOIN certificates c ON c.id = o.certificate_id \
           WHERE o.purged_at IS NULL AND o.state IN ({closed}) AND o.created_at < $2 AND o.updated_at < $2 \
           AND c.purged_at IS NOT NULL \
           ORDER BY o.created_at, o.message_id LIMIT {limit})"
    );
    let done = sqlx::query(&sql).bind(millis(now)).bind(millis(older_than)).execute(&mut **tx).await?;
    Ok(done.rows_affected() as i64)
}

async fn purge_messages(
    tx: &mut Tx<'_>,
    store: &Store,
    older_than: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
    evidence: Evidence,
) -> Result<i64, StoreError> {
    // Outgoing: its outbox message was purged (so it is closed and its certificate final).
    // Incoming: its certificate was purged, or it created none.
    let sql = format!(
        "SELECT m.id, m.wire FROM message_log m \
         WHERE m.purged_at IS NULL AND m.kind = 'request' AND m.at < $1 AND (\
           (m.direction = 'out' AND EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.message_id AND o.purged_at IS NOT NULL)) \
           OR (m.direction = 'in' AND EXISTS (SELECT 1 FROM inbound_messages i LEFT JOIN certificates c ON c.id = i.certificate_id \
               WHERE i.partner = m.partner AND i.message_id = m.message_id AND (i.certificate_id IS NULL OR c.purged_at IS NOT NULL)))) \
         ORDER BY m.at, m.id LIMIT {limit}{}",
        store.for_update()
    );
    let rows = sqlx::query(&sql).bind(millis(older_than)).fetch_all(&mut **tx).await?;
    let mut purged = 0;
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let wire: Vec<u8> = row.try_get("wire")?;
        let done = sqlx::query(
            "UPDATE message_log SET wire = $1, evidence = $2, purged_at = $3 WHERE id = $4 AND purged_at IS NULL",
        )
        .bind(Vec::<u8>::new())
        .bind(evidence(&wire))
        .bind(millis(now))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        purged += done.rows_affected() as i64;
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use sqlx::Row;

    use super::super::certificates::{self, NewCertificate};
    use super::super::inbound::{self, Receipt, Recorded};
    use super::super::messages::{self, Kind};
    use super::super::testdb::fresh_stores;

    /// What the SOAP binding gives a purge (the store's own tests use the real one).
    const EVIDENCE: super::Evidence = crate::soap::evidence::without_body_content;
    use super::super::{audit, outbox, Store};
    use super::*;
    use crate::lifecycle::Direction;

    const ACTOR: &str = "test:retention";

    /// A signed request as on the wire, with personal data in the Body.
    fn envelope(message_id: &str) -> Vec<u8> {
        format!(
            concat!(
                r#"<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Header>"#,
                r#"<wsse:Security><ds:Signature><ds:SignedInfo><ds:DigestValue>Ym9keQ==</ds:DigestValue></ds:SignedInfo>"#,
                r#"<ds:SignatureValue>c2lnbmF0dXJl</ds:SignatureValue></ds:Signature></wsse:Security></soap:Header>"#,
                r#"<soap:Body wsu:Id="Body-1"><cc:SendCORequest><cc:MessageID>{}</cc:MessageID>"#,
                r#"<LPCO><Exporter><Name>Jane Exporter</Name></Exporter></LPCO></cc:SendCORequest></soap:Body></soap:Envelope>"#
            ),
            message_id
        )
        .into_bytes()
    }

    fn new_cert<'a>(reference: &'a str, direction: Direction, partner: &'a str) -> NewCertificate<'a> {
        NewCertificate {
            issuer: "KR",
            reference,
            direction,
            partner,
            kind: crate::payload::DocumentKind::Co,
            replaces: None,
            reference_code: None,
            verification_flag: None,
            content_sha256: "content-digest",
            co_xml: "<LPCO><Name>Jane Exporter</Name></LPCO>",
        }
    }

    /// Submits and starts one attempt (the certificate is `sent`, the message pending).
    async fn send(store: &Store, reference: &str, message_id: &str, at: DateTime<Utc>) -> outbox::OutboxMessage {
        outbox::submit(store, &new_cert(reference, Direction::Outbound, "ID"), "SendCO", message_id, "<body/>", at)
            .await
            .expect("submit");
        let msg = outbox::claim_due(store, "w", at, Duration::seconds(30)).await.expect("claim").expect("due");
        assert_eq!(msg.message_id, message_id);
        outbox::begin_attempt(store, &msg, &envelope(message_id), at, chrono::Duration::seconds(30))
            .await
            .expect("attempt");
        msg
    }

    /// Sends and gets it acknowledged: returns the certificate ID.
    async fn deliver(store: &Store, reference: &str, message_id: &str, at: DateTime<Utc>) -> String {
        let msg = send(store, reference, message_id, at).await;
        outbox::complete(store, &msg, &outbox::Answer::for_test(1, b"<partner-ack/>", true, "accepted"), false, at)
            .await
            .expect("complete");
        msg.certificate_id
    }

    async fn receive(store: &Store, reference: Option<&str>, message_id: &str, at: DateTime<Utc>) {
        let wire = envelope(message_id);
        let receipt = Receipt {
            partner: "KR",
            message_id,
            operation: "SendCO",
            body_sha256: "body-digest",
            accepted: reference.is_some(),
            request_wire: &wire,
            ack_wire: b"<our-ack/>",
            signature: None,
        };
        let certificate = reference.map(|r| new_cert(r, Direction::Inbound, "KR"));
        assert!(matches!(
            inbound::record(store, &receipt, certificate.as_ref(), at).await.expect("record"),
            Recorded::New(_)
        ));
    }

    /// (wire, wire_sha256, evidence, purged) of the logged request.
    async fn logged_request(
        store: &Store,
        message_id: &str,
        incoming: bool,
    ) -> (Vec<u8>, String, Option<Vec<u8>>, bool) {
        let r = sqlx::query("SELECT wire, wire_sha256, evidence, purged_at FROM message_log WHERE message_id = $1 AND direction = $2 AND kind = 'request'")
            .bind(message_id)
            .bind(if incoming { "in" } else { "out" })
            .fetch_one(store.pool())
            .await
            .expect("logged");
        (
            r.try_get("wire").expect("wire"),
            r.try_get("wire_sha256").expect("sha"),
            r.try_get("evidence").expect("evidence"),
            r.try_get::<Option<i64>, _>("purged_at").expect("purged_at").is_some(),
        )
    }

    async fn body(store: &Store, message_id: &str) -> String {
        sqlx::query_scalar("SELECT body_xml FROM outbox WHERE message_id = $1")
            .bind(message_id)
            .fetch_one(store.pool())
            .await
            .expect("body")
    }

    async fn purge_records(store: &Store) -> Vec<(String, String)> {
        let rows = sqlx::query("SELECT actor, reason FROM audit_log WHERE kind = $1 ORDER BY seq")
            .bind(AUDIT_KIND)
            .fetch_all(store.pool())
            .await
            .expect("audit");
        rows.iter().map(|r| (r.try_get("actor").expect("actor"), r.try_get("reason").expect("reason"))).collect()
    }

    async fn stores() -> (tempfile::TempDir, Vec<Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = fresh_stores(dir.path()).await.expect("stores");
        (dir, stores)
    }

    #[tokio::test]
    async fn purge_erases_old_final_content_and_keeps_ids_digests_acks_and_the_audit_chain() {
        let (_d, stores) = stores().await;
        for store in stores {
            let now = Utc::now();
            let old = now - Duration::days(100);
            let cutoff = now - Duration::days(30);
            let recent = now - Duration::days(1);
            let delivered = deliver(&store, "CO-OLD", "m-old", old).await;
            receive(&store, Some("CO-IN"), "m-in", old).await;
            receive(&store, None, "m-rejected", old).await;
            let fresh = deliver(&store, "CO-NEW", "m-new", recent).await;
            let failing = send(&store, "CO-FAIL", "m-fail", old).await;
            let failure = outbox::Failure {
                attempt: 1,
                outcome: outbox::FailedOutcome::Transport,
                http_status: None,
                error: "down",
            };
            outbox::exhaust(&store, &failing, &failure, false, old).await.expect("exhaust");
            let in_flight = send(&store, "CO-SENT", "m-sent", old).await;
            let queued = outbox::submit(
                &store,
                &new_cert("CO-QUEUED", Direction::Outbound, "ID"),
                "SendCO",
                "m-queued",
                "<q/>",
                old,
            )
            .await
            .expect("submit");
            let history_before = certificates::history(store.pool(), &delivered).await.expect("history").len();
            let received = inbound::received_certificate(&store, "KR", "CO-IN").await.expect("find").expect("received");

            let report = purge(&store, cutoff, ACTOR, now, EVIDENCE).await.expect("purge");
            assert_eq!(
                report,
                PurgeReport { messages_purged: 3, certificates_purged: 2, outbox_purged: 1, cutoff },
                "CO-OLD and CO-IN; m-old's body; the requests m-old, m-in, m-rejected"
            );

            // Contents gone; digests, identifiers, states and history stay.
            let original = envelope("m-old");
            let (wire, sha, evidence, purged) = logged_request(&store, "m-old", false).await;
            assert!(wire.is_empty() && purged);
            assert_eq!(sha, messages::sha256_hex(&original));
            assert_eq!(outbox::sent_digests(&store, "m-old").await.expect("digests"), vec![sha]);
            let evidence = String::from_utf8(evidence.expect("evidence")).expect("utf8");
            assert!(evidence.contains("<ds:SignatureValue>c2lnbmF0dXJl</ds:SignatureValue>"), "{evidence}");
            assert!(evidence.ends_with(r#"<soap:Body wsu:Id="Body-1"></soap:Body></soap:Envelope>"#), "{evidence}");
            assert!(!evidence.contains("Jane"), "{evidence}");
            for (message_id, incoming) in [("m-in", true), ("m-rejected", true)] {
                let (wire, sha, evidence, purged) = logged_request(&store, message_id, incoming).await;
                assert!(wire.is_empty() && purged && evidence.is_some(), "{message_id}");
                assert_eq!(sha, messages::sha256_hex(&envelope(message_id)));
            }
            for id in [&delivered, &received.id] {
                let c = certificates::get(store.pool(), id).await.expect("get").expect("certificate");
                assert_eq!((c.co_xml.as_str(), c.content_sha256.as_str()), ("", "content-digest"));
            }
            assert_eq!(
                certificates::get(store.pool(), &delivered).await.expect("get").expect("c").state,
                State::Acknowledged
            );
            assert_eq!(certificates::history(store.pool(), &delivered).await.expect("history").len(), history_before);
            assert_eq!(body(&store, "m-old").await, "");
            assert_eq!(outbox::status(&store, "m-old").await.expect("status"), Some(("delivered".to_owned(), 1)));

            // Acknowledgements stay, and a retried message still gets the original ack.
            assert_eq!(
                messages::wires(&store, "m-old", true, Kind::Acknowledgement).await.expect("acks"),
                vec![b"<partner-ack/>".to_vec()]
            );
            assert_eq!(
                messages::wires(&store, "m-in", false, Kind::Acknowledgement).await.expect("acks"),
                vec![b"<our-ack/>".to_vec()]
            );
            for message_id in ["m-in", "m-rejected"] {
                let again = inbound::find(&store, "KR", message_id).await.expect("find").expect("received");
                assert_eq!(again.ack_wire, b"<our-ack/>");
            }

            // Recent, in flight, queued and failed (an operator may retry it) are untouched.
            for (message_id, cert) in [
                ("m-new", fresh.as_str()),
                ("m-sent", in_flight.certificate_id.as_str()),
                ("m-fail", failing.certificate_id.as_str()),
            ] {
                let (wire, _, evidence, purged) = logged_request(&store, message_id, false).await;
                assert_eq!(wire, envelope(message_id), "{message_id}");
                assert!(evidence.is_none() && !purged, "{message_id}");
                assert_eq!(body(&store, message_id).await, "<body/>", "{message_id}");
                assert_ne!(certificates::get(store.pool(), cert).await.expect("get").expect("c").co_xml, "");
            }
            assert_eq!(body(&store, "m-queued").await, "<q/>");
            assert_ne!(certificates::get(store.pool(), &queued.id).await.expect("get").expect("c").co_xml, "");

            // One audit record, chain intact.
            let records = purge_records(&store).await;
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].0, ACTOR);
            assert!(records[0].1.contains("2 certificates, 1 outbox messages, 3 logged requests"), "{}", records[0].1);
            assert_eq!(audit::verify(&store).await.expect("verify").broken_at, None);

            // Again: nothing new, one more (empty) record.
            let again = purge(&store, cutoff, ACTOR, now, EVIDENCE).await.expect("purge again");
            assert_eq!(again, PurgeReport { messages_purged: 0, certificates_purged: 0, outbox_purged: 0, cutoff });
            assert_eq!(purge_records(&store).await.len(), 2);

            // Cancelled by an operator (before the cutoff), the failed CO becomes purgeable.
            outbox::operator_cancel(&store, "m-fail", "test:operator", old + Duration::hours(1)).await.expect("cancel");
            let cancelled = purge(&store, cutoff, ACTOR, now, EVIDENCE).await.expect("purge cancelled");
            assert_eq!(cancelled, PurgeReport { messages_purged: 1, certificates_purged: 1, outbox_purged: 1, cutoff });
            assert_eq!(body(&store, "m-fail").await, "");
            assert!(!logged_request(&store, "m-sent", false).await.3, "still in flight");
            let v = audit::verify(&store).await.expect("verify");
            assert_eq!((v.records, v.broken_at), (4, None), "three purges and the operator's cancel");
        }
    }

    #[tokio::test]
    async fn large_purges_go_in_batches_each_with_its_audit_record() {
        let (_d, stores) = stores().await;
        for store in stores {
            let now = Utc::now();
            let old = now - Duration::days(100);
            for n in 0..3 {
                deliver(&store, &format!("CO-{n}"), &format!("m-{n}"), old + Duration::seconds(n)).await;
            }
            // 3 certificates, 3 outbox bodies, 3 logged requests: five batches of at most 2 rows.
            let report = purge_in_batches(&store, now, ACTOR, now, 2, EVIDENCE).await.expect("purge");
            assert_eq!(
                report,
                PurgeReport { messages_purged: 3, certificates_purged: 3, outbox_purged: 3, cutoff: now }
            );
            let records = purge_records(&store).await;
            assert_eq!(records.len(), 5, "{records:?}");
            assert!(records[4].1.ends_with("(batch 5)"), "{records:?}");
            assert_eq!(audit::verify(&store).await.expect("verify").broken_at, None);
            let again = purge_in_batches(&store, now, ACTOR, now, 2, EVIDENCE).await.expect("again");
            assert_eq!((again.messages_purged, again.certificates_purged, again.outbox_purged), (0, 0, 0));
        }
    }
}
