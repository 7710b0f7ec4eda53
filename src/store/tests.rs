//! Store behaviour on SQLite and, with DATABASE_URL, on PostgreSQL: same tests, same migrations.

use chrono::{Duration, Utc};

use super::certificates::{self, NewCertificate};
use super::inbound::{self, Receipt, Recorded};
use super::testdb::fresh_stores;
use super::{messages, outbox, Store, StoreError};
use crate::lifecycle::{Direction, State};

use super::testdb::outbound_co as cert;

async fn stores() -> (tempfile::TempDir, Vec<Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = fresh_stores(dir.path()).await.expect("stores");
    (dir, stores)
}

#[tokio::test]
async fn outbound_lifecycle_from_submit_to_acknowledged() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let rec = outbox::submit(&store, &cert("CO-1"), "SendCO", "m-1", "<x/>", now).await.expect("submit");
        assert_eq!(rec.state, State::Queued);
        let msg = outbox::claim_due(&store, "w1", now, Duration::seconds(30)).await.expect("claim").expect("due");
        assert_eq!(msg.message_id, "m-1");
        // Leased: nobody else gets it until the lease expires.
        assert!(outbox::claim_due(&store, "w2", now, Duration::seconds(30)).await.expect("claim").is_none());
        let began =
            outbox::begin(&store, &msg, b"<signed/>", now, chrono::Duration::seconds(30)).await.expect("attempt");
        let attempt = began.attempt;
        assert_eq!(attempt, 1);
        assert_eq!(certificates::get(store.pool(), &rec.id).await.expect("get").expect("cert").state, State::Sent);
        // As the delivery worker does: the next step moves the certificate from the state the
        // attempt left it in.
        let msg = outbox::OutboxMessage { certificate_seen: began.certificate, ..msg };
        assert_eq!(
            outbox::sent_digests(&store, "m-1").await.expect("digests"),
            vec![messages::sha256_hex(b"<signed/>")]
        );
        let to =
            outbox::complete(&store, &msg, &outbox::Answer::for_test(attempt, b"<ack/>", true, "accepted"), false, now)
                .await
                .expect("complete");
        assert_eq!(to.state, State::Acknowledged);
        // Both steps in one round trip each (a statement on PostgreSQL, a script on SQLite),
        // writing what the usual way writes (below).
        assert_eq!(store.fused_steps(), 2, "{:?}", store.backend());
        let history = certificates::history(store.pool(), &rec.id).await.expect("history");
        let path: Vec<_> = history.iter().map(|h| (h.from, h.to)).collect();
        assert_eq!(
            path,
            vec![(None, State::Queued), (Some(State::Queued), State::Sent), (Some(State::Sent), State::Acknowledged)]
        );
        assert!(history.iter().all(|h| h.message_id.as_deref() == Some("m-1")));
        // Completing again is refused and changes nothing.
        assert!(outbox::complete(
            &store,
            &msg,
            &outbox::Answer::for_test(attempt, b"<ack/>", true, "again"),
            false,
            now
        )
        .await
        .is_err());
        assert_eq!(certificates::history(store.pool(), &rec.id).await.expect("history").len(), 3);
        assert_eq!(messages::count(&store).await.expect("count"), 2);
    }
}

#[tokio::test]
async fn duplicate_submission_writes_nothing() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        outbox::submit(&store, &cert("CO-2"), "SendCO", "m-2", "<x/>", now).await.expect("submit");
        let err = outbox::submit(&store, &cert("CO-2"), "SendCO", "m-3", "<x/>", now).await.unwrap_err();
        assert!(matches!(err, StoreError::Duplicate(_)), "{err:?}");
        assert_eq!(certificates::count(&store).await.expect("count"), 1);
        assert!(outbox::status(&store, "m-3").await.expect("status").is_none());
    }
}

#[tokio::test]
async fn a_submission_is_written_whole_or_refused_with_nothing_written() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let original = outbox::submit(&store, &cert("CO-AM"), "SendCO", "m-am", "<x/>", now).await.expect("submit");
        assert_eq!(original.state, State::Queued);
        assert_eq!(outbox::status(&store, "m-am").await.expect("status"), Some(("pending".to_owned(), 0)));
        let history = certificates::history(store.pool(), &original.id).await.expect("history");
        assert_eq!((history.len(), history[0].to, history[0].message_id.as_deref()), (1, State::Queued, Some("m-am")));

        // An open amendment reserves its replacement's reference.
        let mut tx = store.begin().await.expect("begin");
        let amendment = super::amendments::NewAmendment {
            certificate_id: &original.id,
            reason: "typo",
            replacement_reference: Some("CO-AM-R"),
            replacement_xml: Some("<LPCO/>"),
            message_id: "m-notice",
        };
        super::amendments::insert(&mut tx, &amendment, now).await.expect("amendment");
        tx.commit().await.expect("commit");
        let err = outbox::submit(&store, &cert("CO-AM-R"), "SendCO", "m-taken", "<x/>", now).await.unwrap_err();
        assert!(matches!(&err, StoreError::Duplicate(m) if m.contains("open amendment")), "{err:?}");

        // A message ID used twice is no duplicate certificate, and leaves nothing either.
        let err = outbox::submit(&store, &cert("CO-OTHER"), "SendCO", "m-am", "<x/>", now).await.unwrap_err();
        assert!(!matches!(err, StoreError::Duplicate(_)), "{err:?}");

        assert_eq!(certificates::count(&store).await.expect("count"), 1);
        assert!(outbox::status(&store, "m-taken").await.expect("status").is_none());
    }
}

#[tokio::test]
async fn expired_lease_is_claimed_again_with_the_same_message_id() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        outbox::submit(&store, &cert("CO-3"), "SendCO", "m-4", "<x/>", now).await.expect("submit");
        let first =
            outbox::claim_due(&store, "crashed", now, Duration::seconds(30)).await.expect("claim").expect("due");
        let again = outbox::claim_due(&store, "w2", now + Duration::seconds(31), Duration::seconds(30))
            .await
            .expect("claim")
            .expect("due again");
        assert_eq!(first.message_id, again.message_id);
    }
}

#[tokio::test]
async fn failed_attempt_reschedules_and_releases() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        outbox::submit(&store, &cert("CO-4"), "SendCO", "m-5", "<x/>", now).await.expect("submit");
        let msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        let attempt =
            outbox::begin_attempt(&store, &msg, b"<s1/>", now, chrono::Duration::seconds(30)).await.expect("attempt");
        outbox::fail_attempt(
            &store,
            &msg,
            &outbox::Failure {
                attempt,
                outcome: outbox::FailedOutcome::Transport,
                http_status: None,
                error: "refused",
            },
            now + Duration::minutes(10),
            now,
        )
        .await
        .expect("fail");
        assert!(outbox::claim_due(&store, "w", now + Duration::minutes(9), Duration::seconds(30))
            .await
            .expect("claim")
            .is_none());
        let retry = outbox::claim_due(&store, "w", now + Duration::minutes(10), Duration::seconds(30))
            .await
            .expect("claim")
            .expect("due");
        assert_eq!(retry.attempts, 1);
        let second =
            outbox::begin_attempt(&store, &retry, b"<s2/>", now, chrono::Duration::seconds(30)).await.expect("attempt");
        assert_eq!(second, 2);
        assert_eq!(outbox::sent_digests(&store, "m-5").await.expect("digests").len(), 2);
    }
}

#[tokio::test]
async fn inbound_receipt_is_idempotent_and_replay_cache_refuses_repeats() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        assert!(inbound::remember_signature(&store, "sig-a", now + Duration::minutes(5), now).await.expect("replay"));
        assert!(!inbound::remember_signature(&store, "sig-a", now + Duration::minutes(5), now).await.expect("replay"));
        let new = NewCertificate {
            issuer: "KR",
            reference: "CO-9",
            direction: Direction::Inbound,
            partner: "KR",
            kind: crate::payload::DocumentKind::Co,
            replaces: None,
            reference_code: None,
            verification_flag: None,
            content_sha256: "h",
            co_xml: "<LPCO/>",
        };
        let receipt = Receipt {
            partner: "KR",
            message_id: "m-9",
            operation: "SendCO",
            body_sha256: "b",
            accepted: true,
            request_wire: b"<req/>",
            ack_wire: b"<ack/>",
            signature: None,
        };
        match inbound::record(&store, &receipt, Some(&new), now).await.expect("record") {
            Recorded::New(Some(c)) => assert_eq!(c.state, State::Received),
            _ => panic!("expected a new certificate"),
        }
        match inbound::record(&store, &receipt, None, now).await.expect("record") {
            Recorded::AlreadyReceived(m) => assert_eq!(m.ack_wire, b"<ack/>"),
            Recorded::New(_) => panic!("second receipt must not be new"),
        }
        assert_eq!(certificates::count(&store).await.expect("count"), 1);
        assert_eq!(messages::count(&store).await.expect("count"), 2);
    }
}

#[tokio::test]
async fn messages_about_one_certificate_never_overtake_each_other() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let rec = outbox::submit(&store, &cert("CO-ORDER"), "SendCO", "m-first", "<x/>", now).await.expect("submit");
        let mut tx = store.begin().await.expect("tx");
        outbox::enqueue(&mut tx, &rec.id, "ID", "SendCancellation", "m-second", "<y/>", now + Duration::seconds(1))
            .await
            .expect("enqueue");
        tx.commit().await.expect("commit");
        let first = outbox::claim_due(&store, "w", now + Duration::seconds(2), Duration::seconds(30))
            .await
            .expect("claim")
            .expect("due");
        assert_eq!(first.message_id, "m-first");
        let attempt =
            outbox::begin_attempt(&store, &first, b"<s/>", now, chrono::Duration::seconds(30)).await.expect("attempt");
        outbox::fail_attempt(
            &store,
            &first,
            &outbox::Failure { attempt, outcome: outbox::FailedOutcome::Transport, http_status: None, error: "down" },
            now + Duration::minutes(10),
            now,
        )
        .await
        .expect("fail");
        // The second message is due, the first is waiting for its retry: nothing may go.
        assert!(outbox::claim_due(&store, "w", now + Duration::minutes(1), Duration::seconds(30))
            .await
            .expect("claim")
            .is_none());
        let again = outbox::claim_due(&store, "w", now + Duration::minutes(10), Duration::seconds(30))
            .await
            .expect("claim")
            .expect("due");
        assert_eq!(again.message_id, "m-first");
    }
}

#[tokio::test]
async fn a_paused_partner_gets_nothing_and_its_schedule_moves_by_the_pause() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t0 = Utc::now();
        let claim = |at| outbox::claim_due(&store, "w", at, Duration::hours(1));
        // m-a's first attempt failed at t0; its next mark is t0 + 10 min.
        outbox::submit(&store, &cert("CO-PAUSE-A"), "SendCO", "m-a", "<x/>", t0).await.expect("submit");
        let a = claim(t0).await.expect("claim").expect("due");
        let attempt =
            outbox::begin_attempt(&store, &a, b"<signed/>", t0, chrono::Duration::seconds(30)).await.expect("attempt");
        let failure =
            outbox::Failure { attempt, outcome: outbox::FailedOutcome::Transport, http_status: None, error: "refused" };
        outbox::fail_attempt(&store, &a, &failure, t0 + Duration::minutes(10), t0).await.expect("failed");

        let paused_at = t0 + Duration::minutes(5);
        assert!(super::partners::pause(&store, "ID", "test:operator", paused_at).await.expect("pause"));
        // m-b is submitted during the pause.
        outbox::submit(&store, &cert("CO-PAUSE-B"), "SendCO", "m-b", "<x/>", t0 + Duration::hours(1))
            .await
            .expect("submit");
        assert!(claim(t0 + Duration::hours(1)).await.expect("claim").is_none(), "nothing goes to a paused partner");
        let resumed_at = t0 + Duration::hours(2);
        assert!(super::partners::resume(&store, "ID", "test:operator", resumed_at).await.expect("resume"));

        // m-b never waited on a schedule: due at once, not pushed back by the pause.
        let first = claim(resumed_at).await.expect("claim").expect("due");
        assert_eq!(first.message_id, "m-b");
        assert!(claim(resumed_at).await.expect("claim").is_none());
        // m-a's 10-minute mark moves by the 1 h 55 min it spent paused: t0 + 2 h 5 min.
        let moved = t0 + Duration::minutes(10) + (resumed_at - paused_at);
        assert!(claim(moved - Duration::seconds(1)).await.expect("claim").is_none());
        assert_eq!(claim(moved).await.expect("claim").expect("due").message_id, "m-a");
    }
}

/// A binary refuses a database a newer one migrated, and changes nothing in it: the upgrade
/// notes promise it, and migration 0015 relies on it (an older binary would answer a retry of
/// a newer receipt from its empty `ack_wire`).
#[tokio::test]
async fn a_database_migrated_by_a_newer_binary_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    for url in super::testdb::fresh_database_urls(dir.path()).await.expect("urls") {
        let store = Store::connect(&url).await.expect("first start");
        let migrations = "SELECT COUNT(*) FROM _sqlx_migrations";
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
             SELECT 9999, 'from a newer binary', installed_on, success, checksum, execution_time \
             FROM _sqlx_migrations WHERE version = 1",
        )
        .execute(store.pool())
        .await
        .expect("a newer binary's migration");
        let applied: i64 = sqlx::query_scalar(migrations).fetch_one(store.pool()).await.expect("count");
        drop(store);
        let err = Store::connect(&url).await.expect_err("refused");
        assert!(matches!(err, StoreError::Migrate(_)), "{err}");
        assert!(err.to_string().starts_with("migration failed"), "{err}");
        let err = Store::connect_for_inspection(&url).await.expect_err("refused for inspection too");
        assert!(matches!(err, StoreError::Migrate(_)), "{err}");
        let raw = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&url).await.expect("raw connection");
        let after: i64 = sqlx::query_scalar(migrations).fetch_one(&raw).await.expect("count");
        assert_eq!(after, applied, "nothing migrated");
    }
}

#[tokio::test]
async fn a_second_instance_on_the_same_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite:{}", dir.path().join("one.db").display());
    let first = Store::connect(&url).await.expect("first");
    let err = Store::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::SqliteInUse(_)), "{err}");
    assert!(err.to_string().contains("one instance"), "{err}");
    drop(first);
    Store::connect(&url).await.expect("free again once the first is gone");
}

#[tokio::test]
async fn the_audit_chain_detects_altered_and_removed_records() {
    use super::audit::{append, verify, AuditEvent};
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        for n in 0..5 {
            let reason = format!("refusal {n}");
            append(
                &store,
                &AuditEvent { kind: "auth.failed", source: Some("192.0.2.1"), reason: &reason, ..Default::default() },
                now,
            )
            .await
            .expect("append");
        }
        assert_eq!(verify(&store).await.expect("verify").broken_at, None);
        sqlx::query("UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 3")
            .execute(store.pool())
            .await
            .expect("tamper");
        let v = verify(&store).await.expect("verify");
        assert_eq!(v.broken_at.as_ref().map(|b| b.0), Some(3), "{v:?}");
        sqlx::query("UPDATE audit_log SET reason = 'refusal 2' WHERE seq = 3")
            .execute(store.pool())
            .await
            .expect("restore");
        assert_eq!(verify(&store).await.expect("verify").broken_at, None);
        sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(store.pool()).await.expect("remove");
        let v = verify(&store).await.expect("verify");
        assert_eq!(v.broken_at, Some((3, "record 2 is missing".to_owned())));
        // Operator actions enter the chain too.
        assert!(super::partners::pause(&store, "ID", "api:ops", now).await.expect("pause"));
        let kinds: Vec<String> =
            sqlx::query_scalar("SELECT kind FROM audit_log ORDER BY seq").fetch_all(store.pool()).await.expect("kinds");
        assert_eq!(kinds.last().map(String::as_str), Some("operator.action"));
    }
}

#[tokio::test]
async fn while_a_partner_is_down_one_probe_at_a_time_then_the_backlog_in_order() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        for n in 0..3 {
            outbox::submit(
                &store,
                &cert(&format!("CO-DOWN-{n}")),
                "SendCO",
                &format!("m-down-{n}"),
                "<x/>",
                now + Duration::milliseconds(n),
            )
            .await
            .expect("submit");
        }
        super::partners::mark_down(&store, "ID", "m-failed", now + Duration::minutes(5), now).await.expect("down");
        let probe = outbox::claim_due(&store, "w1", now + Duration::seconds(1), Duration::seconds(30))
            .await
            .expect("claim")
            .expect("probe");
        assert_eq!(probe.message_id, "m-down-0");
        assert!(
            outbox::claim_due(&store, "w2", now + Duration::seconds(1), Duration::seconds(30))
                .await
                .expect("claim")
                .is_none(),
            "one probe at a time"
        );
        // The probe fails and waits; the others are due later too.
        let attempt =
            outbox::begin_attempt(&store, &probe, b"<s/>", now, chrono::Duration::seconds(30)).await.expect("attempt");
        outbox::fail_attempt(
            &store,
            &probe,
            &outbox::Failure { attempt, outcome: outbox::FailedOutcome::Transport, http_status: None, error: "down" },
            now + Duration::minutes(10),
            now,
        )
        .await
        .expect("fail");
        // A retry that came due before the partner answered keeps no later place either.
        sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE message_id = 'm-down-0'")
            .bind(super::millis(now + Duration::seconds(3)))
            .execute(store.pool())
            .await
            .expect("retry due");
        // It answers again: the backlog is due at once, in the original order. Only the
        // message that was tried is written: due since its submission, as the others are.
        assert!(super::partners::mark_up(&store, "ID", now + Duration::seconds(5)).await.expect("up"));
        let due: Vec<(String, i64, i64)> =
            sqlx::query_as("SELECT message_id, next_attempt_at, created_at FROM outbox WHERE message_id LIKE 'm-down-%' ORDER BY message_id")
                .fetch_all(store.pool())
                .await
                .expect("rows");
        assert!(due.iter().all(|(_, next, created)| next == created), "{:?}: {due:?}", store.backend());
        let order: Vec<String> = {
            let mut v = Vec::new();
            while let Some(m) =
                outbox::claim_due(&store, "w", now + Duration::seconds(5), Duration::seconds(30)).await.expect("claim")
            {
                v.push(m.message_id);
            }
            v
        };
        assert_eq!(order, ["m-down-0", "m-down-1", "m-down-2"]);
    }
}

/// The messages of a partner in flight when it is marked down (sent while it was up, by this
/// or another instance) count as probes: the first probe waits for the end of their leases.
/// The failed message's own lease does not count, and the probe a claim takes is seen by the
/// next claim until its attempt ends.
#[tokio::test]
async fn messages_in_flight_when_a_partner_goes_down_hold_its_first_probe_back() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t = Utc::now();
        for n in 0..4 {
            let reference = format!("CO-FLY-{n}");
            outbox::submit(
                &store,
                &cert(&reference),
                "SendCO",
                &format!("m-fly-{n}"),
                "<x/>",
                t + Duration::milliseconds(n),
            )
            .await
            .expect("submit");
        }
        let lease = Duration::seconds(30);
        let sent_at = t + Duration::milliseconds(10);
        let failed = outbox::claim_due(&store, "w1", sent_at, lease).await.expect("claim").expect("m-fly-0");
        let in_flight = outbox::claim_due(&store, "w2", sent_at, lease).await.expect("claim").expect("m-fly-1");
        assert_eq!(in_flight.message_id, "m-fly-1");
        let down_at = t + Duration::seconds(1);
        // Bounded by the lease (t + 30 s), not by the later bound of the requests' timeouts.
        super::partners::mark_down(&store, "ID", &failed.message_id, down_at + Duration::minutes(5), down_at)
            .await
            .expect("down");
        outbox::fail_attempt(
            &store,
            &failed,
            &outbox::Failure {
                attempt: 1,
                outcome: outbox::FailedOutcome::Transport,
                http_status: None,
                error: "down",
            },
            t + Duration::minutes(10),
            down_at,
        )
        .await
        .expect("fail");
        let before_lease_end = t + Duration::seconds(29);
        assert!(
            outbox::claim_due(&store, "w3", before_lease_end, lease).await.expect("claim").is_none(),
            "m-fly-1 is in flight: no probe beside it ({:?})",
            store.backend()
        );
        // m-fly-1's lease is over (its worker died, say): one probe, the oldest due message.
        let after_lease_end = t + Duration::seconds(31);
        let probe = outbox::claim_due(&store, "w3", after_lease_end, lease).await.expect("claim").expect("probe");
        assert_eq!(probe.message_id, "m-fly-1");
        assert!(probe.partner_seen_down);
        assert!(
            outbox::claim_due(&store, "w4", after_lease_end, lease).await.expect("claim").is_none(),
            "one probe at a time ({:?})",
            store.backend()
        );
        // The probe is given back unsent: the next claim may probe.
        outbox::unclaim(&store, &probe).await.expect("unclaim");
        let next = outbox::claim_due(&store, "w4", after_lease_end, lease).await.expect("claim").expect("probe");
        assert_eq!(next.message_id, "m-fly-1");

        // A partner whose only leased message is the one that failed is probed at once.
        let to_jp = NewCertificate { partner: "JP", ..cert("CO-FLY-JP-0") };
        outbox::submit(&store, &to_jp, "SendCO", "m-jp-0", "<x/>", t).await.expect("submit");
        let jp_failed = outbox::claim_due(&store, "w5", t, lease).await.expect("claim").expect("m-jp-0");
        assert_eq!(jp_failed.message_id, "m-jp-0");
        super::partners::mark_down(&store, "JP", &jp_failed.message_id, down_at + Duration::minutes(5), down_at)
            .await
            .expect("down");
        let to_jp = NewCertificate { partner: "JP", ..cert("CO-FLY-JP-1") };
        outbox::submit(&store, &to_jp, "SendCO", "m-jp-1", "<x/>", down_at).await.expect("submit");
        let jp_probe = outbox::claim_due(&store, "w6", down_at, lease).await.expect("claim").expect("probe");
        assert_eq!(jp_probe.message_id, "m-jp-1");

        // The bound given for the requests in flight comes before their leases end: it holds.
        let to_kr = NewCertificate { partner: "KR", ..cert("CO-FLY-KR-0") };
        outbox::submit(&store, &to_kr, "SendCO", "m-kr-0", "<x/>", t).await.expect("submit");
        let to_kr = NewCertificate { partner: "KR", ..cert("CO-FLY-KR-1") };
        outbox::submit(&store, &to_kr, "SendCO", "m-kr-1", "<x/>", t).await.expect("submit");
        let kr_batch = outbox::claim(&store, "w7", sent_at, lease, false, 4).await.expect("claim").expect("due");
        let kr: Vec<_> = kr_batch.messages.iter().filter(|m| m.partner == "KR").collect();
        assert_eq!(kr.len(), 2, "both in flight ({:?})", store.backend());
        let in_flight_until = down_at + Duration::seconds(5);
        super::partners::mark_down(&store, "KR", &kr[0].message_id, in_flight_until, down_at).await.expect("down");
        // Claimed while KR was up but not yet sent: it may not begin now (only the probe may).
        let unsent = outbox::begin_attempt(&store, kr[1], b"<s/>", down_at, lease).await;
        assert!(matches!(unsent, Err(StoreError::LeaseLost(_))), "{unsent:?} ({:?})", store.backend());
        let to_kr = NewCertificate { partner: "KR", ..cert("CO-FLY-KR-2") };
        outbox::submit(&store, &to_kr, "SendCO", "m-kr-2", "<x/>", t).await.expect("submit");
        let before = in_flight_until - Duration::milliseconds(1);
        let kr_due = |m: &outbox::OutboxMessage| m.partner == "KR";
        let early = outbox::claim(&store, "w8", before, lease, false, 4).await.expect("claim");
        assert!(!early.is_some_and(|c| c.messages.iter().any(kr_due)), "{:?}", store.backend());
        let after = in_flight_until + Duration::milliseconds(1);
        let probe = outbox::claim(&store, "w8", after, lease, false, 4).await.expect("claim").expect("probe");
        let probes: Vec<_> = probe.messages.iter().filter(|m| kr_due(m)).map(|m| m.message_id.as_str()).collect();
        assert_eq!(probes, ["m-kr-2"], "{:?}", store.backend());
        let probe = probe.messages.iter().find(|m| kr_due(m)).expect("probe");
        outbox::begin_attempt(&store, probe, b"<s/>", after, lease).await.expect("the probe begins");
    }
}

/// A claim that has leased a partner's message but not yet committed when a failure marks the
/// partner down: the mark waits for it (the claims' lock), so the first probe still waits for
/// that message's lease. Were the mark to read the leases beside the claim, it would miss this
/// one, and a probe would go beside a message in flight.
#[tokio::test]
async fn a_partner_marked_down_during_a_claim_counts_the_claims_lease() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t = Utc::now();
        for n in 0..3 {
            let reference = format!("CO-RACE-{n}");
            let at = t + Duration::milliseconds(n);
            outbox::submit(&store, &cert(&reference), "SendCO", &format!("m-race-{n}"), "<x/>", at)
                .await
                .expect("submit");
        }
        let lease = Duration::seconds(30);
        let failed = outbox::claim_due(&store, "w1", t, lease).await.expect("claim").expect("m-race-0");
        // A claim of m-race-1 in progress: the claims' lock, the lease written, not committed.
        let mut claim = store.begin().await.expect("begin");
        outbox::wait_for_claims(&mut claim, store.backend()).await.expect("claims' lock");
        sqlx::query("UPDATE outbox SET lease_owner = 'w2', lease_until = $1 WHERE message_id = 'm-race-1'")
            .bind(super::millis(t + lease))
            .execute(&mut *claim)
            .await
            .expect("lease");
        let down_at = t + Duration::seconds(1);
        let marking = tokio::spawn({
            let (store, failed) = (store.clone(), failed.message_id.clone());
            async move { super::partners::mark_down(&store, "ID", &failed, down_at + Duration::minutes(5), down_at).await }
        });
        until_it_waits_for_the_claims(&store, &marking, "the mark").await;
        claim.commit().await.expect("commit");
        marking.await.expect("join").expect("down");
        let before_lease_end = t + Duration::seconds(29);
        assert!(
            outbox::claim_due(&store, "w3", before_lease_end, lease).await.expect("claim").is_none(),
            "m-race-1 is in flight: no probe beside it ({:?})",
            store.backend()
        );
        let after_lease_end = t + Duration::seconds(31);
        let probe = outbox::claim_due(&store, "w3", after_lease_end, lease).await.expect("claim").expect("probe");
        assert!(probe.partner_seen_down);
    }
}

/// Returns once `task` waits for the claims' lock (PostgreSQL: an advisory lock not granted in
/// this database; SQLite: the one writer connection, after a while), failing if it finished.
async fn until_it_waits_for_the_claims<T>(store: &Store, task: &tokio::task::JoinHandle<T>, what: &str) {
    match store.backend() {
        // Polled: a fixed sleep could end before the task got there on a busy machine, and
        // pass without the wait.
        super::Backend::Postgres => {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .fetch_one(store.pool())
                .await
                .expect("locks");
                if waiting > 0 {
                    break;
                }
                assert!(!task.is_finished(), "{what} did not wait for the claims' lock");
                assert!(std::time::Instant::now() < deadline, "{what} never reached the claims' lock");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        super::Backend::Sqlite => tokio::time::sleep(std::time::Duration::from_millis(300)).await,
    }
    assert!(!task.is_finished(), "{what} waits for the claims' lock ({:?})", store.backend());
}

/// A submission leases its own message for a worker of its process only where a claim would
/// take that message now and first: the partner up and not paused, nothing else due and
/// unleased. The message comes back as a claim returns it, no claim takes it, and its attempt
/// begins under the submission's lease.
#[tokio::test]
async fn a_submission_leases_its_message_only_where_a_claim_would_take_it_first() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t = Utc::now();
        let span = Duration::seconds(30);
        let lease = outbox::Lease { owner: "KR-1-submit", until: t + span };
        let submit = |n: i64| {
            let store = store.clone();
            async move {
                let reference = format!("CO-LEASE-{n}");
                let id = format!("m-lease-{n}");
                let at = t + Duration::milliseconds(n);
                outbox::submit_leased(&store, &cert(&reference), "SendCO", &id, "<x/>", at, Some(lease))
                    .await
                    .expect("submit")
            }
        };
        let (record, leased) = submit(1).await;
        let m = leased.unwrap_or_else(|| panic!("nothing due, partner up: leased ({:?})", store.backend()));
        assert_eq!(
            (m.message_id.as_str(), m.certificate_id.as_str(), m.lease_owner.as_str(), m.attempts),
            ("m-lease-1", record.id.as_str(), "KR-1-submit", 0)
        );
        assert!(!m.partner_seen_down && m.first_attempt_at.is_none());
        assert_eq!(
            m.certificate_seen,
            Some(certificates::Seen { direction: Direction::Outbound, state: State::Queued })
        );
        let stored: (Option<String>, Option<i64>) =
            sqlx::query_as("SELECT lease_owner, lease_until FROM outbox WHERE message_id = 'm-lease-1'")
                .fetch_one(store.pool())
                .await
                .expect("row");
        assert_eq!(stored, (Some("KR-1-submit".to_owned()), Some(super::millis(t + span))));
        assert!(outbox::claim_due(&store, "w", t, span).await.expect("claim").is_none(), "leased: no claim takes it");
        assert_eq!(outbox::begin_attempt(&store, &m, b"<wire/>", t, span).await.expect("attempt"), 1);

        // A message leased by a submission does not hold the next one back; one due and
        // unleased does: the next submission leases nothing, and the claim takes the older.
        assert!(submit(2).await.1.is_some(), "m-lease-1 is leased, not waiting");
        outbox::submit(&store, &cert("CO-LEASE-3"), "SendCO", "m-lease-3", "<x/>", t + Duration::milliseconds(3))
            .await
            .expect("submit");
        assert!(submit(4).await.1.is_none(), "m-lease-3 is due ({:?})", store.backend());
        let first = outbox::claim_due(&store, "w", t + span, span).await.expect("claim").expect("due");
        assert_eq!(first.message_id, "m-lease-3", "oldest first");
        let second = outbox::claim_due(&store, "w", t + span, span).await.expect("claim").expect("due");
        assert_eq!(second.message_id, "m-lease-4");

        // A paused partner, and a partner that is down: nothing leased.
        super::partners::pause(&store, "ID", "operator", t).await.expect("pause");
        assert!(submit(5).await.1.is_none(), "paused ({:?})", store.backend());
        sqlx::query("UPDATE outbox SET lease_owner = 'w', lease_until = $1 WHERE message_id = 'm-lease-5'")
            .bind(super::millis(t + span))
            .execute(store.pool())
            .await
            .expect("claimed");
        super::partners::resume(&store, "ID", "operator", t).await.expect("resume");
        super::partners::mark_down(&store, "ID", "m-lease-5", t, t).await.expect("down");
        assert!(submit(6).await.1.is_none(), "down ({:?})", store.backend());
    }
}

/// A submission that would lease its message waits for the claims' lock first, as a claim
/// does: a partner marked down while it waits is seen, and nothing is leased (on PostgreSQL,
/// read before the mark's commit, the partner would have been up).
#[tokio::test]
async fn a_submission_waits_for_the_claims_lock_before_it_leases() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t = Utc::now();
        // A mark-down in progress: the claims' lock held and the partner marked, not committed.
        let mut marking = store.begin().await.expect("begin");
        outbox::wait_for_claims(&mut marking, store.backend()).await.expect("claims' lock");
        sqlx::query(
            "INSERT INTO partner_status (party, updated_at, down_since) VALUES ('ID', $1, $1) \
             ON CONFLICT (party) DO UPDATE SET down_since = excluded.down_since",
        )
        .bind(super::millis(t))
        .execute(&mut *marking)
        .await
        .expect("down");
        let submitting = tokio::spawn({
            let store = store.clone();
            async move {
                let lease = outbox::Lease { owner: "KR-1-submit", until: t + Duration::seconds(30) };
                outbox::submit_leased(&store, &cert("CO-WAIT-1"), "SendCO", "m-wait-1", "<x/>", t, Some(lease)).await
            }
        });
        until_it_waits_for_the_claims(&store, &submitting, "the submission").await;
        marking.commit().await.expect("commit");
        let (_, leased) = submitting.await.expect("join").expect("submitted");
        assert!(leased.is_none(), "the partner went down while the submission waited ({:?})", store.backend());
    }
}

#[tokio::test]
async fn an_inspection_of_a_missing_sqlite_file_is_an_error_not_an_empty_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("absent.db");
    let err = Store::connect_for_inspection(&format!("sqlite:{}", path.display())).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert!(!path.exists(), "nothing was created");
}

/// Every (direction, state, event, role) applied to a stored certificate: what the lifecycle
/// allows reaches its state through the store; every refusal carries the lifecycle's code and,
/// even when the caller commits its transaction anyway, leaves the certificate and its history
/// exactly as they were.
#[tokio::test]
async fn every_state_event_and_role_through_the_store() {
    use crate::lifecycle::{transition, Event, Role};
    use sqlx::Row;
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let snapshot = |id: String| {
            let store = store.clone();
            async move {
                let row = sqlx::query("SELECT state, updated_at, (SELECT COUNT(*) FROM certificate_history WHERE certificate_id = $1) AS n FROM certificates WHERE id = $1")
                    .bind(&id)
                    .fetch_one(store.pool())
                    .await
                    .expect("snapshot");
                (row.get::<String, _>("state"), row.get::<i64, _>("updated_at"), row.get::<i64, _>("n"))
            }
        };
        let mut checked = 0;
        for direction in Direction::ALL {
            for from in State::ALL {
                // A certificate sitting in `from`, whatever path led there.
                let reference = format!("{}-{}", direction.as_str(), from.as_str());
                let new = NewCertificate { direction, ..cert(&reference) };
                let mut tx = store.begin().await.expect("tx");
                let event =
                    if direction == Direction::Outbound { Event::Submitted } else { Event::ReceivedFromPartner };
                let role = if direction == Direction::Outbound { Role::Issuer } else { Role::ExportingPartner };
                let rec = certificates::insert(&mut tx, &new, event, role, "setup", None, now).await.expect("insert");
                sqlx::query("UPDATE certificates SET state = $1 WHERE id = $2")
                    .bind(from.as_str())
                    .bind(&rec.id)
                    .execute(&mut *tx)
                    .await
                    .expect("set state");
                tx.commit().await.expect("commit");
                for event in Event::ALL {
                    for role in Role::ALL {
                        let before = snapshot(rec.id.clone()).await;
                        let mut tx = store.begin().await.expect("tx");
                        let got = certificates::apply(&mut tx, &store, &rec.id, event, role, "t", None, now).await;
                        match (transition(direction, Some(from), event, role), got) {
                            (Ok(expected), Ok(to)) => {
                                assert_eq!(to, expected);
                                drop(tx);
                            }
                            (Err(refusal), Err(StoreError::Illegal(got))) => {
                                assert_eq!(got.code(), refusal.code());
                                tx.commit().await.expect("commit after refusal");
                                assert_eq!(
                                    snapshot(rec.id.clone()).await,
                                    before,
                                    "{direction:?} {from:?} {event:?} {role:?}"
                                );
                            }
                            (want, got) => panic!("{direction:?} {from:?} {event:?} {role:?}: {want:?} vs {got:?}"),
                        }
                        checked += 1;
                    }
                }
            }
            // And on a certificate that does not exist yet.
            for event in Event::ALL {
                for role in Role::ALL {
                    let reference = format!("new-{}-{}-{}", direction.as_str(), event.as_str(), role.as_str());
                    let new = NewCertificate { direction, ..cert(&reference) };
                    let count = certificates::count(&store).await.expect("count");
                    let mut tx = store.begin().await.expect("tx");
                    let got = certificates::insert(&mut tx, &new, event, role, "t", None, now).await;
                    match (transition(direction, None, event, role), got) {
                        (Ok(expected), Ok(rec)) => assert_eq!(rec.state, expected),
                        (Err(refusal), Err(StoreError::Illegal(got))) => {
                            assert_eq!(got.code(), refusal.code());
                            tx.commit().await.expect("commit after refusal");
                            assert_eq!(certificates::count(&store).await.expect("count"), count);
                        }
                        (want, got) => {
                            panic!("{direction:?} new {event:?} {role:?}: {want:?} vs {:?}", got.map(|r| r.state))
                        }
                    }
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 2 * (State::ALL.len() + 1) * Event::ALL.len() * Role::ALL.len());
    }
}

/// A cancellation notification whose outcome arrives after the certificate moved on (an answer
/// crossed it) still closes its outbox row: the outcome is noted, never refused, so the row
/// cannot stay pending for ever.
#[tokio::test]
async fn a_crossed_cancellation_notification_still_closes_its_outbox_row() {
    use super::amendments::{self, NewAmendment};
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let rec = outbox::submit(&store, &cert("CO-X"), "SendCO", "m-co", "<x/>", now).await.expect("submit");
        let mut tx = store.begin().await.expect("tx");
        sqlx::query("UPDATE certificates SET state = 'cancelled' WHERE id = $1")
            .bind(&rec.id)
            .execute(&mut *tx)
            .await
            .expect("state");
        sqlx::query("UPDATE outbox SET state = 'delivered' WHERE message_id = 'm-co'")
            .execute(&mut *tx)
            .await
            .expect("co");
        outbox::enqueue(&mut tx, &rec.id, "ID", "SendCancellation", "m-cancel", "<c/>", now).await.expect("enqueue");
        let new = NewAmendment {
            certificate_id: &rec.id,
            reason: "r",
            replacement_reference: None,
            replacement_xml: None,
            message_id: "m-cancel",
        };
        amendments::insert(&mut tx, &new, now).await.expect("amendment");
        tx.commit().await.expect("commit");
        let msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        assert_eq!(msg.message_id, "m-cancel");
        let attempt =
            outbox::begin_attempt(&store, &msg, b"<wire/>", now, chrono::Duration::seconds(30)).await.expect("attempt");
        let to = outbox::complete(
            &store,
            &msg,
            &outbox::Answer::for_test(attempt, b"<ack/>", false, "LC-STATE"),
            false,
            now,
        )
        .await
        .expect("the rejection is recorded although the certificate moved on");
        assert_eq!(to.state, State::Cancelled);
        assert_eq!(outbox::status(&store, "m-cancel").await.expect("status").map(|s| s.0).as_deref(), Some("rejected"));
        let history = certificates::history(store.pool(), &rec.id).await.expect("history");
        assert!(history.last().is_some_and(|h| h.cause.contains("not applied")), "{history:?}");
    }
}

/// A view read through `begin_snapshot` sees one commit: a transition committed while the view
/// is being read (PostgreSQL) or waiting for it (SQLite's single connection) is not half-seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_sees_the_certificate_and_its_history_as_one_commit_left_them() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let rec = outbox::submit(&store, &cert("CO-SNAP"), "SendCO", "m-snap", "<x/>", now).await.expect("submit");
        let msg = outbox::claim_due(&store, "w1", now, Duration::seconds(30)).await.expect("claim").expect("due");

        let mut snapshot = store.begin_snapshot().await.expect("snapshot");
        let first = certificates::get(&mut *snapshot, &rec.id).await.expect("get").expect("cert");
        assert_eq!(first.state, State::Queued);
        // queued → sent, with its history row, committed by another task meanwhile.
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                outbox::begin_attempt(&store, &msg, b"<signed/>", now, chrono::Duration::seconds(30)).await
            })
        };
        let writer = match store.backend() {
            // PostgreSQL: the writer has its own connection and commits while the snapshot is open.
            super::Backend::Postgres => {
                writer.await.expect("join").expect("attempt");
                None
            }
            // SQLite: one connection, so the writer waits for the snapshot; give it every chance
            // to slip in between the snapshot's statements if it could.
            super::Backend::Sqlite => {
                for _ in 0..100 {
                    tokio::task::yield_now().await;
                }
                Some(writer)
            }
        };
        let again = certificates::get(&mut *snapshot, &rec.id).await.expect("get").expect("cert");
        let history = certificates::history(&mut *snapshot, &rec.id).await.expect("history");
        assert_eq!((again.state, history.len()), (State::Queued, 1), "{:?}: {history:?}", store.backend());
        snapshot.rollback().await.expect("rollback");

        if let Some(writer) = writer {
            writer.await.expect("join").expect("attempt");
        }
        assert_eq!(certificates::get(store.pool(), &rec.id).await.expect("get").expect("cert").state, State::Sent);
        assert_eq!(certificates::history(store.pool(), &rec.id).await.expect("history").len(), 2);
    }
}

/// A claim that expired (its worker waited too long for its partner's rate) cannot be used any
/// more once another worker or an operator acted: nothing the stale worker records lands, and
/// a cancelled message is never sent. Beginning an attempt renews the claim for the request.
#[tokio::test]
async fn a_stale_claim_records_nothing_and_an_attempt_renews_the_claim() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t0 = Utc::now();
        let lease = Duration::seconds(30);
        outbox::submit(&store, &cert("CO-LEASE"), "SendCO", "m-l", "<x/>", t0).await.expect("submit");
        let stale = outbox::claim_due(&store, "a", t0, lease).await.expect("claim").expect("due");
        // The claim expires; b takes the message over and begins its attempt.
        let fresh =
            outbox::claim_due(&store, "b", t0 + Duration::seconds(31), lease).await.expect("claim").expect("due");
        let lost = |r: Result<_, StoreError>| matches!(r, Err(StoreError::LeaseLost(_)));
        assert!(lost(
            outbox::begin_attempt(&store, &stale, b"<a/>", t0 + Duration::seconds(32), lease).await.map(|_| ())
        ));
        let attempt =
            outbox::begin_attempt(&store, &fresh, b"<b/>", t0 + Duration::seconds(35), lease).await.expect("b");
        // b's claim now runs 30 s from its attempt: nobody else gets the message meanwhile.
        assert!(outbox::claim_due(&store, "c", t0 + Duration::seconds(62), lease).await.expect("claim").is_none());
        // a's late records are refused: no failure over b's attempt, no completion.
        let failure = outbox::Failure {
            attempt: 1,
            outcome: outbox::FailedOutcome::Transport,
            http_status: None,
            error: "stale",
        };
        assert!(lost(outbox::fail_attempt(&store, &stale, &failure, t0 + Duration::minutes(10), t0).await));
        assert!(lost(
            outbox::complete(
                &store,
                &stale,
                &outbox::Answer::for_test(1, b"<ack/>", true, "stale"),
                false,
                t0 + Duration::seconds(40)
            )
            .await
            .map(|_| ())
        ));
        let done = outbox::complete(
            &store,
            &fresh,
            &outbox::Answer::for_test(attempt, b"<ack/>", true, "acknowledged"),
            false,
            t0,
        )
        .await
        .expect("b completes");
        assert_eq!(done.state, State::Acknowledged);
        assert_eq!(outbox::attempt_times(&store, "m-l").await.expect("attempts").len(), 1);

        // An operator cancels a message whose claim expired: its stale worker never sends it.
        outbox::submit(&store, &cert("CO-LEASE-2"), "SendCO", "m-l2", "<x/>", t0).await.expect("submit");
        let stale = outbox::claim_due(&store, "a", t0, lease).await.expect("claim").expect("due");
        outbox::operator_cancel(&store, "m-l2", "test:operator", t0 + Duration::seconds(31)).await.expect("cancel");
        assert!(lost(
            outbox::begin_attempt(&store, &stale, b"<a/>", t0 + Duration::seconds(32), lease).await.map(|_| ())
        ));
        assert!(outbox::attempt_times(&store, "m-l2").await.expect("attempts").is_empty());
    }
}

/// Many workers claiming at once (PostgreSQL: several connections, several instances) still
/// send a down partner one probe at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claimers_send_a_down_partner_one_probe() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        for round in 0..10 {
            let partner = format!("P{round}");
            for n in 0..3 {
                let reference = format!("CO-PROBE-{round}-{n}");
                let new = NewCertificate { partner: &partner, ..cert(&reference) };
                outbox::submit(&store, &new, "SendCO", &format!("m-probe-{round}-{n}"), "<x/>", now)
                    .await
                    .expect("submit");
            }
            super::partners::mark_down(&store, &partner, "m-failed", now + Duration::minutes(5), now)
                .await
                .expect("down");
            let claims: Vec<_> = (0..6)
                .map(|w| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        outbox::claim_due(&store, &format!("w{w}"), now, Duration::seconds(30)).await
                    })
                })
                .collect();
            let mut probes = 0;
            for claim in claims {
                probes += usize::from(claim.await.expect("join").expect("claim").is_some());
            }
            assert_eq!(probes, 1, "{:?} round {round}", store.backend());
        }
    }
}

/// A failed message (schedule exhausted) holds back what follows about its certificate until an
/// operator retries or cancels it: a later message never overtakes it.
#[tokio::test]
async fn a_later_message_waits_behind_a_failed_one_of_its_certificate() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let record = outbox::submit(&store, &cert("CO-ORDER"), "SendCO", "m-first", "<x/>", now).await.expect("submit");
        let first = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        let attempt =
            outbox::begin_attempt(&store, &first, b"<s/>", now, Duration::seconds(30)).await.expect("attempt");
        let failure =
            outbox::Failure { attempt, outcome: outbox::FailedOutcome::Transport, http_status: None, error: "down" };
        outbox::exhaust(&store, &first, &failure, false, now).await.expect("exhaust");
        let mut tx = store.begin().await.expect("tx");
        outbox::enqueue(&mut tx, &record.id, "ID", "SendCancellation", "m-later", "<x/>", now + Duration::seconds(1))
            .await
            .expect("enqueue");
        tx.commit().await.expect("commit");
        let later = now + Duration::seconds(2);
        assert!(outbox::claim_due(&store, "w", later, Duration::seconds(30)).await.expect("claim").is_none());
        outbox::operator_retry(&store, "m-first", "test:operator", later).await.expect("retry");
        let next = outbox::claim_due(&store, "w", later, Duration::seconds(30)).await.expect("claim").expect("due");
        assert_eq!(next.message_id, "m-first");
    }
}

/// A delivered (or business-rejected) message no longer shows the error of an earlier technical
/// attempt as its `last_error`; the attempt keeps its error in `delivery_attempts`.
#[tokio::test]
async fn a_message_delivered_after_a_failure_has_no_last_error() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        for (n, accepted, state) in [(1, true, outbox::DELIVERED), (2, false, outbox::REJECTED)] {
            let (reference, message_id) = (format!("CO-LAST-ERROR-{n}"), format!("m-last-error-{n}"));
            outbox::submit(&store, &cert(&reference), "SendCO", &message_id, "<x/>", now).await.expect("submit");
            let msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
            let attempt =
                outbox::begin_attempt(&store, &msg, b"<s1/>", now, Duration::seconds(30)).await.expect("attempt");
            let failure = outbox::Failure {
                attempt,
                outcome: outbox::FailedOutcome::Http,
                http_status: Some(503),
                error: "HTTP 503",
            };
            outbox::fail_attempt(&store, &msg, &failure, now, now).await.expect("fail");
            let shown = outbox::list(&store, Some(outbox::PENDING), None).await.expect("list");
            assert_eq!(shown[0].last_error.as_deref(), Some("HTTP 503"), "{shown:?}");
            let retry = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
            let second =
                outbox::begin_attempt(&store, &retry, b"<s2/>", now, Duration::seconds(30)).await.expect("attempt");
            outbox::complete(
                &store,
                &retry,
                &outbox::Answer::for_test(second, b"<ack/>", accepted, "answered"),
                false,
                now,
            )
            .await
            .expect("complete");
            let shown = outbox::list(&store, Some(state), None).await.expect("list");
            assert_eq!(shown.len(), 1, "{shown:?}");
            assert_eq!((shown[0].message_id.as_str(), shown[0].last_error.as_deref()), (message_id.as_str(), None));
            let kept: Option<String> =
                sqlx::query_scalar("SELECT error FROM delivery_attempts WHERE message_id = $1 AND attempt = 1")
                    .bind(&message_id)
                    .fetch_one(store.pool())
                    .await
                    .expect("attempt 1");
            assert_eq!(kept.as_deref(), Some("HTTP 503"), "the attempt history is kept");
        }
    }
}

#[tokio::test]
async fn a_claim_looks_past_a_window_of_messages_that_may_not_go() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t0 = Utc::now();
        // 40 older messages to a paused partner (more than one claim window), then one to
        // another partner: that one is claimed, nothing of the paused partner's is.
        for n in 0..40 {
            let reference = format!("CO-WIN-{n:02}");
            outbox::submit(&store, &cert(&reference), "SendCO", &format!("m-win-{n:02}"), "<x/>", t0)
                .await
                .expect("submit");
        }
        assert!(super::partners::pause(&store, "ID", "test:operator", t0).await.expect("pause"));
        let mut other = cert("CO-WIN-OTHER");
        other.partner = "TH";
        outbox::submit(&store, &other, "SendCO", "m-win-other", "<x/>", t0 + Duration::seconds(1))
            .await
            .expect("submit");
        let claimed = outbox::claim_due(&store, "w", t0 + Duration::seconds(2), Duration::seconds(30))
            .await
            .expect("claim")
            .expect("the message behind the blocked window");
        assert_eq!(claimed.message_id, "m-win-other");
        assert!(outbox::claim_due(&store, "w2", t0 + Duration::seconds(2), Duration::seconds(30))
            .await
            .expect("claim")
            .is_none());
    }
}

/// What no claim can take now costs a claim nothing: a paused partner's backlog, a down
/// partner's behind its probe in flight, and a backlog waiting for its retry time or its turn
/// in the partner's pace. Each is older than the one message that may go; the claim runs three
/// statements to find it (the partners, its partner's window, the claim), and says nothing
/// else is due, and so does the outbox's watcher: no worker is woken for them, and a
/// submission to another partner still leases its message.
#[tokio::test]
async fn a_claim_reads_nothing_of_a_backlog_that_cannot_go_now() {
    let (_d, stores) = stores().await;
    for store in stores {
        let backend = store.backend();
        let t0 = Utc::now();
        for (partner, prefix) in [("ID", "paused"), ("TH", "down"), ("JP", "waiting")] {
            for n in 0..100 {
                let reference = format!("CO-{prefix}-{n:03}");
                let mut c = cert(&reference);
                c.partner = partner;
                outbox::submit(
                    &store,
                    &c,
                    "SendCO",
                    &format!("m-{prefix}-{n:03}"),
                    "<x/>",
                    t0 + Duration::milliseconds(n),
                )
                .await
                .expect("submit");
            }
        }
        assert!(super::partners::pause(&store, "ID", "test:operator", t0).await.expect("pause"));
        let t1 = t0 + Duration::seconds(1);
        super::partners::mark_down(&store, "TH", "m-failed", t1, t1).await.expect("down");
        sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE partner = 'JP'")
            .bind(super::millis(t0 + Duration::hours(1)))
            .execute(store.pool())
            .await
            .expect("later");
        let probe = outbox::claim_due(&store, "w", t1, Duration::seconds(30)).await.expect("claim").expect("probe");
        assert_eq!(probe.message_id, "m-down-000", "{backend:?}");
        let mut c = cert("CO-MAY-GO");
        c.partner = "SG";
        outbox::submit(&store, &c, "SendCO", "m-may-go", "<x/>", t1).await.expect("submit");

        let before = outbox::claim_statements_on_this_thread();
        let claimed =
            outbox::claim(&store, "w", t1, Duration::seconds(30), true, 8).await.expect("claim").expect("due");
        let statements = outbox::claim_statements_on_this_thread() - before;
        let ids: Vec<_> = claimed.messages.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["m-may-go"], "{backend:?}");
        assert!(!claimed.more_due, "{backend:?}: nothing else may go");
        assert_eq!(statements, 3, "{backend:?}: the claim read windows of messages that cannot go");
        assert!(!outbox::any_due(&store, t1).await.expect("look"), "{backend:?}: an idle worker is not woken for them");
        // Nor do they keep a submission to another partner from leasing its message.
        let mut c = cert("CO-MAY-LEASE");
        c.partner = "SG";
        let lease = outbox::Lease { owner: "KR-1-submit", until: t1 + Duration::seconds(30) };
        let (_, leased) =
            outbox::submit_leased(&store, &c, "SendCO", "m-may-lease", "<x/>", t1, Some(lease)).await.expect("submit");
        assert!(leased.is_some(), "{backend:?}: a claim would take it first");
        let before = outbox::claim_statements_on_this_thread();
        assert!(outbox::claim(&store, "w", t1, Duration::seconds(30), true, 8).await.expect("claim").is_none());
        assert_eq!(outbox::claim_statements_on_this_thread() - before, 1, "{backend:?}: one look at the partners");
    }
}

/// A batch's share of a partner whose oldest due messages may not go (each behind an earlier
/// one of its certificate, in flight) goes to the next partner: the claim does not come back
/// empty while another partner's message may go.
#[tokio::test]
async fn messages_that_may_not_go_leave_their_share_of_a_claim_to_other_partners() {
    let (_d, stores) = stores().await;
    for store in stores {
        let backend = store.backend();
        let t = Utc::now();
        let first = outbox::submit(&store, &cert("CO-SHARE-A"), "SendCO", "m-share-a1", "<x/>", t).await.expect("a1");
        let in_flight = outbox::claim_due(&store, "w", t, Duration::seconds(30)).await.expect("claim").expect("a1");
        assert_eq!(in_flight.message_id, "m-share-a1");
        let mut tx = store.begin().await.expect("tx");
        outbox::enqueue(&mut tx, &first.id, "ID", "SendCancellation", "m-share-a2", "<y/>", t).await.expect("a2");
        tx.commit().await.expect("commit");
        let mut other = cert("CO-SHARE-B");
        other.partner = "TH";
        outbox::submit(&store, &other, "SendCO", "m-share-b", "<x/>", t + Duration::seconds(1)).await.expect("b");

        let now = t + Duration::seconds(2);
        let claimed = outbox::claim(&store, "v", now, Duration::seconds(30), false, 1).await.expect("claim");
        let ids: Vec<_> = claimed.iter().flat_map(|c| c.messages.iter().map(|m| m.message_id.as_str())).collect();
        assert_eq!(ids, ["m-share-b"], "{backend:?}: a2 waits for a1, b goes");
    }
}

/// The claims take messages in one order across partners (due time, then age), counting
/// only messages that may go: a partner whose first due message waits behind an earlier one
/// of its certificate neither takes another partner's turn with a younger message nor, tied
/// with another partner on the due time, keeps that partner's message from going.
#[tokio::test]
async fn claims_go_in_one_order_across_partners_past_messages_that_may_not_go() {
    let (_d, stores) = stores().await;
    for store in stores {
        let backend = store.backend();
        let t = Utc::now();
        let at = |ms: i64| t + Duration::milliseconds(ms);
        let lease = Duration::seconds(30);
        // ID: a1 in flight, a2 (its cancellation) behind it, and a younger d.
        let first =
            outbox::submit(&store, &cert("CO-ORDER-A"), "SendCO", "m-order-a1", "<x/>", at(0)).await.expect("a1");
        let in_flight = outbox::claim_due(&store, "w", at(0), lease).await.expect("claim").expect("a1");
        assert_eq!(in_flight.message_id, "m-order-a1");
        let mut tx = store.begin().await.expect("tx");
        outbox::enqueue(&mut tx, &first.id, "ID", "SendCancellation", "m-order-a2", "<y/>", at(1)).await.expect("a2");
        tx.commit().await.expect("commit");
        for (partner, reference, id, ms) in [
            ("TH", "CO-ORDER-B", "m-order-b", 2),
            ("AA", "CO-ORDER-AA", "m-order-aa", 3),
            ("ID", "CO-ORDER-D", "m-order-d", 4),
        ] {
            let mut c = cert(reference);
            c.partner = partner;
            outbox::submit(&store, &c, "SendCO", id, "<x/>", at(ms)).await.expect("submit");
        }
        // AA's message due when a2 is: AA and ID tie on the due time, and a2 is older.
        sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE message_id = 'm-order-aa'")
            .bind(super::millis(at(1)))
            .execute(store.pool())
            .await
            .expect("due");
        let mut order = Vec::new();
        while let Some(m) = outbox::claim_due(&store, "v", at(1000), lease).await.expect("claim") {
            order.push(m.message_id);
        }
        assert_eq!(order, ["m-order-aa", "m-order-b", "m-order-d"], "{backend:?}");
    }
}

#[tokio::test]
async fn a_receipt_remembers_its_signature_and_a_second_copy_of_the_bytes_is_a_replay() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        assert!(!inbound::signature_seen(&store, "KR:sig-r").await.expect("seen"));
        let mut receipt = Receipt {
            partner: "KR",
            message_id: "m-r1",
            operation: "SendCO",
            body_sha256: "b",
            accepted: false,
            request_wire: b"<req/>",
            ack_wire: b"<ack/>",
            signature: Some(("KR:sig-r", now + Duration::minutes(5))),
        };
        assert!(matches!(inbound::record(&store, &receipt, None, now).await.expect("record"), Recorded::New(None)));
        assert!(inbound::signature_seen(&store, "KR:sig-r").await.expect("seen"));
        // The same signature under another message ID's receipt: refused, nothing stored.
        receipt.message_id = "m-r2";
        assert!(inbound::record(&store, &receipt, None, now).await.is_err());
        assert!(inbound::find(&store, "KR", "m-r2").await.expect("find").is_none());
        // Remembered, so a look-up or an unstored answer with it is refused too.
        assert!(!inbound::remember_signature(&store, "KR:sig-r", now + Duration::minutes(5), now).await.expect("r"));
    }
}

/// The words of every index definition on `table` (key columns and, for a partial index, its
/// predicate), lower case.
async fn index_words(store: &Store, table: &str) -> std::collections::BTreeSet<String> {
    let sql = match store.backend() {
        super::Backend::Postgres => "SELECT indexdef FROM pg_indexes WHERE tablename = $1",
        // Constraints' own indexes have no SQL text: none of them is on a column checked here.
        super::Backend::Sqlite => {
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL"
        }
    };
    let definitions: Vec<String> = sqlx::query_scalar(sql).bind(table).fetch_all(store.pool()).await.expect("indexes");
    assert!(!definitions.is_empty(), "{table} has indexes");
    definitions
        .iter()
        .flat_map(|d| d.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map(str::to_ascii_lowercase))
        .collect()
}

#[tokio::test]
async fn a_claim_a_delivery_attempt_and_a_certificates_move_write_no_indexed_column() {
    // Such an UPDATE adds no index entry on PostgreSQL (a heap-only update), and touches no
    // index on SQLite. The claim, the attempt and the certificate's moves happen for every CO;
    // an index on one of these columns, or whose predicate reads one, would cost an entry in
    // every index of the table for each of them (migrations 0010 and 0011).
    let (_d, stores) = stores().await;
    for store in stores {
        let outbox = index_words(&store, "outbox").await;
        for column in ["attempts", "updated_at", "first_attempt_at", "lease_until", "lease_owner"] {
            assert!(!outbox.contains(column), "{:?}: an outbox index holds {column}", store.backend());
        }
        let certificates = index_words(&store, "certificates").await;
        for column in ["state", "updated_at"] {
            assert!(!certificates.contains(column), "{:?}: a certificates index holds {column}", store.backend());
        }
    }
}

/// The claims' index holds pending messages only (migrations 0012 and 0014), so the answer
/// that ends a delivery adds no entry to it; a partner's window read, which says
/// `state = 'pending'`, can still use it and reads the due messages only (PostgreSQL is made
/// to: on a table this small it would rather read the table), and the partners' read never
/// reads the table. The operators' list of failed messages has its own (migration 0013) on
/// PostgreSQL.
#[tokio::test]
async fn the_claims_indexes_hold_pending_messages_only_and_the_claims_still_use_them() {
    use sqlx::Row;
    let (_d, stores) = stores().await;
    for store in stores {
        let backend = store.backend();
        let definitions = match backend {
            super::Backend::Postgres => {
                "SELECT indexname::text AS name, indexdef AS sql FROM pg_indexes WHERE tablename = 'outbox'"
            }
            super::Backend::Sqlite => {
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox'"
            }
        };
        let rows = sqlx::query(definitions).fetch_all(store.pool()).await.expect("indexes");
        for (name, state) in
            [("outbox_partner_due", "pending"), ("outbox_unalerted", "pending"), ("outbox_failed_order", "failed")]
        {
            let sql: String = rows
                .iter()
                .find(|r| r.get::<String, _>("name") == name)
                .map(|r| r.get::<Option<String>, _>("sql").unwrap_or_default())
                .unwrap_or_default();
            let predicate = sql.split_once(" WHERE ").map(|(_, p)| p.replace(['(', ')'], "")).unwrap_or_default();
            assert!(
                predicate.starts_with(&format!("state = '{state}'")),
                "{backend:?}: {name} is not limited to {state} messages: {sql}"
            );
        }
        let mut tx = store.begin().await.expect("tx");
        let explain = match backend {
            super::Backend::Postgres => {
                sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.expect("set");
                sqlx::query("SET LOCAL enable_bitmapscan = off").execute(&mut *tx).await.expect("set");
                "EXPLAIN "
            }
            super::Backend::Sqlite => "EXPLAIN QUERY PLAN ",
        };
        let column = if backend == super::Backend::Postgres { 0 } else { 3 };
        let plan: Vec<String> = sqlx::query(&format!("{explain}{}", *outbox::CLAIM_WINDOW_SQL))
            .bind(super::millis(Utc::now()))
            .bind("ID")
            .bind(32_i64)
            .fetch_all(&mut *tx)
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get::<String, _>(column))
            .collect();
        // The due time bounds the scan itself: a message not due yet is not read.
        let bounded = |line: &String| match backend {
            super::Backend::Postgres => line.contains("Index Cond") && line.contains("next_attempt_at <="),
            super::Backend::Sqlite => line.contains("outbox_partner_due") && line.contains("next_attempt_at<"),
        };
        assert!(
            plan.iter().any(|line| line.contains("outbox_partner_due")) && plan.iter().any(bounded),
            "{backend:?}: the claims' window read does not read a partner's due messages through outbox_partner_due: {plan:#?}"
        );
        let plan: Vec<String> = sqlx::query(&format!("{explain}{}", *outbox::PARTNERS_DUE_SQL))
            .bind(super::millis(Utc::now()))
            .fetch_all(&mut *tx)
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get::<String, _>(column))
            .collect();
        assert!(
            !plan
                .iter()
                .any(|line| line.contains("Seq Scan on outbox")
                    || (line.starts_with("SCAN o") && !line.contains("INDEX"))),
            "{backend:?}: the claims' partners read scans the outbox: {plan:#?}"
        );
        if backend == super::Backend::Postgres {
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN {}", outbox::LIST_SQL))
                .bind("failed")
                .bind("")
                .fetch_all(&mut *tx)
                .await
                .expect("explain")
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
            assert!(
                plan.iter().any(|line| line.contains("outbox_failed_order")),
                "the list of failed messages does not use outbox_failed_order: {plan:#?}"
            );
        }
    }
}

/// An answer recorded while its partner is marked down says so, however it is written: an
/// acceptance in one statement on PostgreSQL or one script on SQLite, a rejection in a
/// transaction. The worker then marks the partner up; `complete` itself does not.
#[tokio::test]
async fn an_answer_tells_whether_its_partner_was_marked_down() {
    let (_d, stores) = stores().await;
    for store in stores {
        let backend = store.backend();
        let lease = Duration::seconds(30);
        let mut now = Utc::now();
        for (n, down) in [(0, false), (1, false), (2, true), (3, true)] {
            if n == 2 {
                super::partners::mark_down(&store, "ID", "m-ans-1", now, now).await.expect("down");
            }
            let accepted = n % 2 == 0;
            now += Duration::seconds(1);
            let message_id = format!("m-ans-{n}");
            outbox::submit(&store, &cert(&format!("CO-ANS-{n}")), "SendCO", &message_id, "<x/>", now)
                .await
                .expect("submit");
            let mut msg = outbox::claim_due(&store, "w", now, lease).await.expect("claim").expect("due");
            assert_eq!(msg.message_id, message_id, "{backend:?}");
            let began = outbox::begin(&store, &msg, b"<s/>", now, lease).await.expect("begin");
            msg.certificate_seen = began.certificate;
            let answer = outbox::Answer::for_test(began.attempt, b"<ack/>", accepted, "answered");
            let done = outbox::complete(&store, &msg, &answer, false, now).await.expect("complete");
            assert_eq!(done.partner_down, down, "{backend:?}: {message_id}, accepted: {accepted}");
        }
        let status = super::partners::status(&store, "ID").await.expect("status");
        assert!(status.down_since.is_some(), "{backend:?}: complete marks nothing up itself");
    }
}

#[tokio::test]
async fn the_sqlite_writer_is_durable_checks_foreign_keys_and_journals_savepoints_in_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("d.db").display());
    let store = Store::connect(&url).await.expect("store");
    // Set on every connection the pool opens (after_connect), not once on the first.
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(store.pool()).await.expect("pragma");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(store.pool()).await.expect("pragma");
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(store.pool()).await.expect("pragma");
    let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store").fetch_one(store.pool()).await.expect("pragma");
    assert_eq!(
        (synchronous, foreign_keys, journal.as_str(), temp_store),
        (2, 1, "wal", 2),
        "FULL, ON, WAL, sub-journals in memory"
    );
    // The read connections refuse writes.
    assert!(sqlx::query("DELETE FROM replay_cache").execute(store.readers()).await.is_err());
}

/// A replacement from a partner is linked to the oldest accepted cancellation that announced
/// its reference for a certificate received from that same partner: another partner's
/// announcement of the same reference is passed over although it is older, and an
/// announcement is linked once.
#[tokio::test]
async fn a_replacement_is_linked_to_its_own_partners_announcement_once() {
    use super::amendments;
    use crate::lifecycle::{Event, Role};
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let mut tx = store.begin().await.expect("tx");
        let mut received = Vec::new();
        for (reference, partner) in [("JP-1", "JP"), ("KR-1", "KR"), ("KR-1B", "KR"), ("KR-2", "KR"), ("KR-3", "KR")] {
            let new = NewCertificate { issuer: partner, direction: Direction::Inbound, partner, ..cert(reference) };
            let record =
                certificates::insert(&mut tx, &new, Event::ReceivedFromPartner, Role::ExportingPartner, "r", None, now)
                    .await
                    .expect("certificate");
            received.push(record.id);
        }
        // JP's announcement first, then two of KR's (the older one is taken first).
        for (n, certificate_id) in received[..3].iter().enumerate() {
            let new = amendments::NewAmendment {
                certificate_id,
                reason: "r",
                replacement_reference: Some("R-1"),
                replacement_xml: None,
                message_id: &format!("m-cancel-{n}"),
            };
            let id =
                amendments::insert(&mut tx, &new, now + Duration::milliseconds(n as i64)).await.expect("amendment");
            amendments::decide(&mut tx, &id, amendments::ACCEPTED, None, "partner", None, now).await.expect("accept");
        }
        let first = amendments::link_replacement(&mut tx, "KR", "R-1", &received[3]).await.expect("link");
        assert_eq!(first.as_deref(), Some(received[1].as_str()), "KR's oldest announcement, not JP's");
        let second = amendments::link_replacement(&mut tx, "KR", "R-1", &received[4]).await.expect("link");
        assert_eq!(second.as_deref(), Some(received[2].as_str()), "the linked one is not taken again");
        let none = amendments::link_replacement(&mut tx, "KR", "R-1", &received[4]).await.expect("link");
        assert_eq!(none, None);
        let unknown = amendments::link_replacement(&mut tx, "KR", "R-2", &received[4]).await.expect("link");
        assert_eq!(unknown, None);
        tx.commit().await.expect("commit");
    }
}

/// PostgreSQL: large values (wire forms, documents) are compressed with lz4 where the server
/// has it, on every pooled connection; pglz cost a tenth of the server's CPU under load.
#[tokio::test]
async fn postgres_compresses_stored_messages_with_lz4_where_the_server_has_it() {
    let (_d, stores) = stores().await;
    for store in stores.into_iter().filter(|s| s.backend() == super::Backend::Postgres) {
        let mut probe = store.pool().acquire().await.expect("connection");
        let server_has_lz4 =
            sqlx::query("SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
                .fetch_optional(&mut *probe)
                .await
                .expect("pg_settings")
                .is_some();
        drop(probe);
        if !server_has_lz4 {
            eprintln!("this PostgreSQL server has no lz4: nothing to check");
            continue;
        }
        let now = Utc::now();
        let mut tx = store.begin().await.expect("tx");
        // Compressible and well over the TOAST threshold (2 kB).
        let wire = "<Envelope>".repeat(2000).into_bytes();
        let entry = messages::LogEntry {
            message_id: "m-lz4",
            incoming: true,
            kind: messages::Kind::Request,
            partner: "ID",
            operation: "SendCO",
            wire: &wire,
        };
        messages::append(&mut tx, &entry, now).await.expect("append");
        tx.commit().await.expect("commit");
        let method: Option<String> =
            sqlx::query_scalar("SELECT pg_column_compression(wire) FROM message_log WHERE message_id = 'm-lz4'")
                .fetch_one(store.pool())
                .await
                .expect("compression");
        assert_eq!(method.as_deref(), Some("lz4"));
    }
}

#[tokio::test]
async fn one_look_shows_the_replay_cache_and_the_receipt_of_a_message_id() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let known = inbound::look(&store, "KR:sig-l", "KR", "m-l1", None).await.expect("look");
        assert!(!known.signature_seen && known.earlier.is_none());
        let receipt = Receipt {
            partner: "KR",
            message_id: "m-l1",
            operation: "SendCO",
            body_sha256: "b-l1",
            accepted: false,
            request_wire: b"<req/>",
            ack_wire: b"<ack-l1/>",
            signature: Some(("KR:sig-l", now + Duration::minutes(5))),
        };
        assert!(matches!(inbound::record(&store, &receipt, None, now).await.expect("record"), Recorded::New(None)));
        let known = inbound::look(&store, "KR:sig-l", "KR", "m-l1", None).await.expect("look");
        assert!(known.signature_seen);
        let earlier = known.earlier.expect("the stored receipt");
        assert_eq!((earlier.body_sha256.as_str(), earlier.ack_wire.as_slice()), ("b-l1", &b"<ack-l1/>"[..]));
        // Each half on its own: another signature with the same message ID, another partner.
        let known = inbound::look(&store, "KR:sig-other", "KR", "m-l1", None).await.expect("look");
        assert!(!known.signature_seen && known.earlier.is_some());
        let known = inbound::look(&store, "KR:sig-l", "JP", "m-l1", None).await.expect("look");
        assert!(known.signature_seen && known.earlier.is_none());
        assert_eq!(known.held, inbound::Held::NotLooked, "no document reference given");

        // A document's reference: the partner's inbound certificate under it, and nothing else.
        let held = |partner: &'static str, reference: &'static str| {
            let store = store.clone();
            async move { inbound::look(&store, "KR:sig-h", partner, "m-h", Some(reference)).await.expect("look").held }
        };
        assert_eq!(held("KR", "CO-HELD").await, inbound::Held::Nothing);
        let received = NewCertificate {
            issuer: "KR",
            direction: Direction::Inbound,
            partner: "KR",
            content_sha256: "held-sha",
            ..cert("CO-HELD")
        };
        let mut tx = store.begin().await.expect("begin");
        let (event, role) = (crate::lifecycle::Event::ReceivedFromPartner, crate::lifecycle::Role::ExportingPartner);
        certificates::insert(&mut tx, &received, event, role, "received", None, now).await.expect("insert");
        // Ours under the same issuer and reference (outbound) is not what a partner's document
        // would be stored as.
        tx.commit().await.expect("commit");
        let ours = NewCertificate { issuer: "JP", partner: "JP", content_sha256: "ours-sha", ..cert("CO-OURS") };
        outbox::submit(&store, &ours, "SendCO", "m-ours", "<x/>", now).await.expect("submit");
        assert_eq!(held("KR", "CO-HELD").await, inbound::Held::Content("held-sha".into()));
        assert_eq!(held("JP", "CO-HELD").await, inbound::Held::Nothing, "another partner's");
        assert_eq!(held("JP", "CO-OURS").await, inbound::Held::Nothing, "ours, outbound");
    }
}

#[tokio::test]
async fn a_delivery_step_moves_the_certificate_from_the_state_seen_and_a_stale_view_changes_nothing_wrong() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let rec = outbox::submit(&store, &cert("CO-SEEN"), "SendCO", "m-seen", "<x/>", now).await.expect("submit");
        let claimed =
            outbox::claim(&store, "w", now, Duration::seconds(30), false, 1).await.expect("claim").expect("due");
        assert!(!claimed.more_due, "nothing else was due");
        let mut msg = claimed.messages.into_iter().next().expect("one");
        let seen = certificates::Seen { direction: Direction::Outbound, state: State::Queued };
        assert_eq!(msg.certificate_seen, Some(seen), "the claim reads the certificate");
        let began = outbox::begin(&store, &msg, b"<signed/>", now, Duration::seconds(30)).await.expect("begin");
        assert_eq!(began.certificate, Some(certificates::Seen { state: State::Sent, ..seen }));
        assert_eq!(began.wire_sha256, messages::sha256_hex(b"<signed/>"));
        // A stale view (the claim's): the step reads the certificate and still gets it right.
        let stale = msg.clone();
        msg.certificate_seen = began.certificate;
        let answer = outbox::Answer::for_test(began.attempt, b"<ack/>", true, "accepted");
        assert_eq!(
            outbox::complete(&store, &stale, &answer, false, now).await.expect("complete").state,
            State::Acknowledged
        );
        let history = certificates::history(store.pool(), &rec.id).await.expect("history");
        let path: Vec<_> = history.iter().map(|h| (h.from, h.to)).collect();
        assert_eq!(
            path,
            vec![(None, State::Queued), (Some(State::Queued), State::Sent), (Some(State::Sent), State::Acknowledged)]
        );

        // The view kept up to date moves it with the conditional update alone.
        let rec = outbox::submit(&store, &cert("CO-SEEN-2"), "SendCO", "m-seen-2", "<x/>", now).await.expect("submit");
        let mut msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        let began = outbox::begin(&store, &msg, b"<signed-2/>", now, Duration::seconds(30)).await.expect("begin");
        msg.certificate_seen = began.certificate;
        let answer = outbox::Answer::for_test(began.attempt, b"<ack/>", false, "rejected");
        assert_eq!(outbox::complete(&store, &msg, &answer, false, now).await.expect("complete").state, State::Rejected);
        let stored = certificates::get(store.pool(), &rec.id).await.expect("get").expect("cert");
        assert_eq!(stored.state, State::Rejected);
        let last = certificates::history(store.pool(), &rec.id).await.expect("history").pop().expect("entry");
        assert_eq!((last.from, last.to), (Some(State::Sent), State::Rejected));
    }
}

#[tokio::test]
async fn a_claim_tells_whether_other_messages_were_due() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        for n in 0..2 {
            let reference = format!("CO-MORE-{n}");
            let id = format!("m-more-{n}");
            outbox::submit(&store, &cert(&reference), "SendCO", &id, "<x/>", now + Duration::milliseconds(n))
                .await
                .expect("submit");
        }
        let first =
            outbox::claim(&store, "w", now + Duration::seconds(1), Duration::seconds(30), true, 1).await.expect("c");
        assert!(first.expect("due").more_due, "the second was due too");
        let second =
            outbox::claim(&store, "w", now + Duration::seconds(1), Duration::seconds(30), true, 1).await.expect("c");
        assert!(!second.expect("due").more_due, "the first is leased");
    }
}

/// A batch claim keeps the conditions of single claims: never two messages of one
/// certificate, one probe for a partner that is down, oldest first; a claim given back is due
/// again at once.
#[tokio::test]
async fn a_batch_claim_takes_the_oldest_claimable_messages_and_keeps_each_rule() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t = Utc::now();
        let at = |n: i64| t + Duration::milliseconds(n);
        let first = outbox::submit(&store, &cert("CO-BATCH-A"), "SendCO", "m-a1", "<x/>", at(0)).await.expect("a1");
        let mut tx = store.begin().await.expect("tx");
        outbox::enqueue(&mut tx, &first.id, "ID", "SendCancellation", "m-a2", "<y/>", at(1)).await.expect("a2");
        tx.commit().await.expect("commit");
        outbox::submit(&store, &cert("CO-BATCH-B"), "SendCO", "m-b", "<x/>", at(2)).await.expect("b");
        for (n, id) in [(3, "m-j1"), (4, "m-j2")] {
            let to_jp = NewCertificate { partner: "JP", ..cert(if n == 3 { "CO-BATCH-J1" } else { "CO-BATCH-J2" }) };
            outbox::submit(&store, &to_jp, "SendCO", id, "<x/>", at(n)).await.expect("jp");
        }
        outbox::submit(&store, &cert("CO-BATCH-C"), "SendCO", "m-c", "<x/>", at(5)).await.expect("c");
        outbox::submit(&store, &cert("CO-BATCH-D"), "SendCO", "m-d", "<x/>", at(6)).await.expect("d");
        super::partners::mark_down(&store, "JP", "m-failed", t + Duration::minutes(5), t).await.expect("down");

        let now = t + Duration::seconds(1);
        let lease = Duration::seconds(30);
        let ids = |c: &outbox::Claimed| c.messages.iter().map(|m| m.message_id.clone()).collect::<Vec<_>>();
        let batch = outbox::claim(&store, "w", now, lease, false, 4).await.expect("claim").expect("due");
        assert_eq!(ids(&batch), ["m-a1", "m-b", "m-j1", "m-c"], "a2 waits for a1; one probe to JP");
        assert!(batch.messages.iter().all(|m| m.lease_owner == "w"));
        assert!(batch.more_due, "m-d was due too");
        assert!(batch.messages[2].partner_seen_down && !batch.messages[0].partner_seen_down);

        let rest = outbox::claim(&store, "v", now, lease, false, 4).await.expect("claim").expect("due");
        assert_eq!(ids(&rest), ["m-d"]);
        assert!(!rest.more_due, "a2 waits for a1, j2 for JP's probe: nothing more a claim may take");
        assert!(outbox::claim(&store, "v", now, lease, true, 4).await.expect("claim").is_none());

        // Given back, b is due again at once; another owner's claim is not given back.
        outbox::unclaim(&store, &batch.messages[1]).await.expect("unclaim");
        let stale = outbox::OutboxMessage { lease_owner: "x".into(), ..batch.messages[3].clone() };
        outbox::unclaim(&store, &stale).await.expect("unclaim");
        let again = outbox::claim(&store, "v", now, lease, false, 4).await.expect("claim").expect("due");
        assert_eq!(ids(&again), ["m-b"]);
        assert_eq!(again.messages[0].lease_owner, "v");
    }
}

#[tokio::test]
async fn a_claim_tells_whether_its_partner_was_marked_down() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        outbox::submit(&store, &cert("CO-UP-0"), "SendCO", "m-up-0", "<x/>", now).await.expect("submit");
        let msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        assert!(!msg.partner_seen_down, "no status yet: up");
        super::partners::mark_down(&store, "ID", "m-up-0", now + Duration::minutes(5), now).await.expect("down");
        outbox::submit(&store, &cert("CO-UP-1"), "SendCO", "m-up-1", "<x/>", now).await.expect("submit");
        let later = now + Duration::seconds(60);
        let msg = outbox::claim_due(&store, "w", later, Duration::seconds(30)).await.expect("claim").expect("due");
        assert!(msg.partner_seen_down, "it is the probe");
        assert!(super::partners::mark_up(&store, "ID", later).await.expect("up"));
        outbox::submit(&store, &cert("CO-UP-2"), "SendCO", "m-up-2", "<x/>", later).await.expect("submit");
        let msg = outbox::claim_due(&store, "w", later + Duration::seconds(60), Duration::seconds(30))
            .await
            .expect("claim")
            .expect("due");
        assert!(!msg.partner_seen_down);
    }
}

/// A message sent back to the outbox for its partner's pace (`outbox::defer`) is due at its
/// turn, unleased, with no attempt and no error; a worker whose claim was taken over meanwhile
/// defers nothing (`LeaseLost`), and the new holder's lease and the due time stay as they were.
#[tokio::test]
async fn a_deferral_keeps_no_lease_and_no_attempt_and_writes_nothing_once_its_claim_is_lost() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        outbox::submit(&store, &cert("CO-PACE"), "SendCO", "m-pace", "<x/>", now).await.expect("submit");
        let msg = outbox::claim_due(&store, "w1", now, Duration::seconds(30)).await.expect("claim").expect("due");
        let turn = now + Duration::seconds(2);
        outbox::defer(&store, &msg, turn, now).await.expect("defer");
        let row = |store: Store| async move {
            let r = sqlx::query(
                "SELECT lease_owner, next_attempt_at, attempts, last_error FROM outbox WHERE message_id = 'm-pace'",
            )
            .fetch_one(store.pool())
            .await
            .expect("row");
            let owner: Option<String> = sqlx::Row::get(&r, 0);
            let due: i64 = sqlx::Row::get(&r, 1);
            let attempts: i64 = sqlx::Row::get(&r, 2);
            let error: Option<String> = sqlx::Row::get(&r, 3);
            (owner, due, attempts, error)
        };
        assert_eq!(row(store.clone()).await, (None, turn.timestamp_millis(), 0, None), "deferred");
        assert!(
            outbox::claim_due(&store, "w2", now, Duration::seconds(30)).await.expect("claim").is_none(),
            "not due before its turn"
        );

        // Claimed again at its turn by w2; w1's stale deferral must not touch it.
        let taken = outbox::claim_due(&store, "w2", turn, Duration::seconds(30))
            .await
            .expect("claim")
            .expect("due at its turn");
        let stale = outbox::defer(&store, &msg, turn + Duration::seconds(5), turn).await;
        assert!(matches!(stale, Err(StoreError::LeaseLost(ref id)) if id == "m-pace"), "{stale:?}");
        assert_eq!(
            row(store.clone()).await,
            (Some(taken.lease_owner.clone()), turn.timestamp_millis(), 0, None),
            "untouched"
        );
    }
}

/// A delivery step whose certificate moved after the worker last saw it (the fused statement's
/// or script's move then matches nothing) still records the step, and records what happens to
/// the certificate from the state it is in, not the one seen; a step whose claim was lost writes
/// nothing at all.
#[tokio::test]
async fn a_delivery_step_follows_a_certificate_that_moved_and_writes_nothing_once_its_claim_is_lost() {
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let acks = |certificate_id: String| {
            let store = store.clone();
            async move {
                let details: Vec<String> = sqlx::query_scalar(
                    "SELECT detail FROM events WHERE certificate_id = $1 AND kind = 'acknowledgement.received'",
                )
                .bind(certificate_id)
                .fetch_all(store.pool())
                .await
                .expect("events");
                details
            }
        };
        // Behind the worker's back: an operator's withdrawal, say. Not the state the step
        // would have moved it to, so a step that trusted its own plan would show.
        let withdraw = |certificate_id: String| {
            let store = store.clone();
            async move {
                sqlx::query("UPDATE certificates SET state = 'withdrawn' WHERE id = $1")
                    .bind(certificate_id)
                    .execute(store.pool())
                    .await
                    .expect("withdraw");
            }
        };

        // An answer.
        let rec = outbox::submit(&store, &cert("CO-MOVED"), "SendCO", "m-moved", "<x/>", now).await.expect("submit");
        let mut msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        let began = outbox::begin(&store, &msg, b"<signed/>", now, Duration::seconds(30)).await.expect("begin");
        msg.certificate_seen = began.certificate;
        assert_eq!(msg.certificate_seen.map(|s| s.state), Some(State::Sent));
        withdraw(rec.id.clone()).await;
        let answer = outbox::Answer::for_test(began.attempt, b"<ack/>", true, "accepted");
        assert_eq!(
            outbox::complete(&store, &msg, &answer, false, now).await.expect("complete").state,
            State::Withdrawn
        );
        assert_eq!(outbox::status(&store, "m-moved").await.expect("status").map(|s| s.0).as_deref(), Some("delivered"));
        let stored = certificates::get(store.pool(), &rec.id).await.expect("get").expect("cert");
        assert_eq!(stored.state, State::Withdrawn, "the answer does not undo the withdrawal");
        let last = certificates::history(store.pool(), &rec.id).await.expect("history").pop().expect("entry");
        assert_eq!((last.from, last.to), (Some(State::Withdrawn), State::Withdrawn), "noted from the state found");
        let details = acks(rec.id.clone()).await;
        assert_eq!(details.len(), 1, "one event");
        assert!(details[0].contains(r#""certificate_state":"withdrawn""#), "{}", details[0]);
        assert_eq!(messages::count(&store).await.expect("count"), 2, "the request and its acknowledgement");
        let attempt = sqlx::query(
            "SELECT finished_at, outcome, http_status, error FROM delivery_attempts WHERE message_id = 'm-moved'",
        )
        .fetch_one(store.pool())
        .await
        .expect("attempt");
        use sqlx::Row;
        assert_eq!(attempt.try_get::<Option<i64>, _>("finished_at").expect("at"), Some(super::millis(now)));
        assert_eq!(attempt.try_get::<Option<String>, _>("outcome").expect("outcome").as_deref(), Some("accepted"));
        assert_eq!(attempt.try_get::<Option<i64>, _>("http_status").expect("status"), Some(200));
        assert_eq!(attempt.try_get::<Option<String>, _>("error").expect("error"), None);

        // An answer whose claim another worker took over.
        let rec = outbox::submit(&store, &cert("CO-LOST"), "SendCO", "m-lost", "<x/>", now).await.expect("submit");
        let mut msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        let began = outbox::begin(&store, &msg, b"<signed-2/>", now, Duration::seconds(30)).await.expect("begin");
        msg.certificate_seen = began.certificate;
        let history_before = certificates::history(store.pool(), &rec.id).await.expect("history").len();
        sqlx::query("UPDATE outbox SET lease_owner = 'other' WHERE message_id = 'm-lost'")
            .execute(store.pool())
            .await
            .expect("take over");
        let answer = outbox::Answer::for_test(began.attempt, b"<ack-2/>", true, "accepted");
        assert!(matches!(
            outbox::complete(&store, &msg, &answer, false, now).await,
            Err(StoreError::LeaseLost(id)) if id == "m-lost"
        ));
        let stored = certificates::get(store.pool(), &rec.id).await.expect("get").expect("cert");
        assert_eq!(stored.state, State::Sent, "the certificate did not move");
        assert_eq!(certificates::history(store.pool(), &rec.id).await.expect("history").len(), history_before);
        assert!(acks(rec.id.clone()).await.is_empty(), "no event");
        assert_eq!(messages::count(&store).await.expect("count"), 3, "only the second request was logged");
        let finished: Option<i64> =
            sqlx::query_scalar("SELECT finished_at FROM delivery_attempts WHERE message_id = 'm-lost'")
                .fetch_one(store.pool())
                .await
                .expect("attempt");
        assert_eq!(finished, None, "the attempt was not ended");
        assert_eq!(outbox::status(&store, "m-lost").await.expect("status").map(|s| s.0).as_deref(), Some("pending"));

        // An attempt.
        let rec =
            outbox::submit(&store, &cert("CO-MOVED-2"), "SendCO", "m-moved-2", "<x/>", now).await.expect("submit");
        let msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        assert_eq!(msg.certificate_seen.map(|s| s.state), Some(State::Queued));
        withdraw(rec.id.clone()).await;
        let began = outbox::begin(&store, &msg, b"<signed-3/>", now, Duration::seconds(30)).await.expect("begin");
        assert_eq!(began.attempt, 1);
        assert_eq!(began.certificate.map(|s| s.state), Some(State::Withdrawn), "the state found");
        let last = certificates::history(store.pool(), &rec.id).await.expect("history").pop().expect("entry");
        assert_eq!((last.from, last.to), (Some(State::Withdrawn), State::Withdrawn), "noted from the state found");
        assert_eq!(
            outbox::sent_digests(&store, "m-moved-2").await.expect("digests"),
            vec![messages::sha256_hex(b"<signed-3/>")]
        );
        assert_eq!(outbox::status(&store, "m-moved-2").await.expect("status"), Some(("pending".to_owned(), 1)));
        assert_eq!(messages::count(&store).await.expect("count"), 4);

        // An attempt whose claim another worker took over.
        let rec = outbox::submit(&store, &cert("CO-LOST-2"), "SendCO", "m-lost-2", "<x/>", now).await.expect("submit");
        let msg = outbox::claim_due(&store, "w", now, Duration::seconds(30)).await.expect("claim").expect("due");
        sqlx::query("UPDATE outbox SET lease_owner = 'other' WHERE message_id = 'm-lost-2'")
            .execute(store.pool())
            .await
            .expect("take over");
        assert!(matches!(
            outbox::begin(&store, &msg, b"<signed-4/>", now, Duration::seconds(30)).await,
            Err(StoreError::LeaseLost(id)) if id == "m-lost-2"
        ));
        let stored = certificates::get(store.pool(), &rec.id).await.expect("get").expect("cert");
        assert_eq!(stored.state, State::Queued, "the certificate did not move");
        assert!(outbox::sent_digests(&store, "m-lost-2").await.expect("digests").is_empty(), "no attempt");
        assert_eq!(outbox::status(&store, "m-lost-2").await.expect("status"), Some(("pending".to_owned(), 0)));
        assert_eq!(messages::count(&store).await.expect("count"), 4, "nothing logged");
    }
}

/// Every row a received document's receipt left, without the values that name it (IDs, the
/// message ID, the reference, the signature): two receipts written alike give equal lists.
async fn receipt_rows(store: &Store, message_id: &str, reference: &str, signature: &str) -> Vec<String> {
    use sqlx::Row;
    let text = |r: &sqlx::any::AnyRow, c: &str| -> String {
        r.try_get::<Option<String>, _>(c).map(|v| format!("{c}={v:?}")).unwrap_or_else(|_| {
            r.try_get::<Option<i64>, _>(c).map(|v| format!("{c}={v:?}")).unwrap_or_else(|_| {
                format!("{c}={:?}", r.try_get::<Option<Vec<u8>>, _>(c).expect("a text, integer or bytes column"))
            })
        })
    };
    let all = |sql: &'static str, key: String, columns: &'static [&'static str]| {
        let store = store.clone();
        async move {
            let rows = sqlx::query(sql).bind(key).fetch_all(store.pool()).await.expect(sql);
            rows.iter().map(|r| columns.iter().map(|c| text(r, c)).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>()
        }
    };
    let certificate_id: String = sqlx::query_scalar("SELECT id FROM certificates WHERE reference = $1")
        .bind(reference)
        .fetch_one(store.pool())
        .await
        .expect("the certificate");
    let mut rows = Vec::new();
    rows.extend(
        all(
            "SELECT operation, body_sha256, status, ack_wire, received_at, certificate_id FROM inbound_messages WHERE message_id = $1",
            message_id.to_owned(),
            &["operation", "body_sha256", "status", "ack_wire", "received_at"],
        )
        .await,
    );
    let named: Option<String> = sqlx::query_scalar("SELECT certificate_id FROM inbound_messages WHERE message_id = $1")
        .bind(message_id)
        .fetch_one(store.pool())
        .await
        .expect("receipt");
    assert_eq!(named.as_deref(), Some(certificate_id.as_str()), "the receipt names its certificate");
    rows.extend(
        all("SELECT expires_at FROM replay_cache WHERE signature_key = $1", signature.to_owned(), &["expires_at"])
            .await,
    );
    rows.extend(
        all(
            "SELECT issuer, direction, partner, state, content_sha256, co_xml, created_at, updated_at, kind, replaces, reference_code, verification_flag, purged_at FROM certificates WHERE id = $1",
            certificate_id.clone(),
            &[
                "issuer", "direction", "partner", "state", "content_sha256", "co_xml", "created_at", "updated_at", "kind",
                "replaces", "reference_code", "verification_flag", "purged_at",
            ],
        )
        .await,
    );
    rows.extend(
        all(
            "SELECT from_state, to_state, at, cause, message_id FROM certificate_history WHERE certificate_id = $1 ORDER BY id",
            certificate_id.clone(),
            &["from_state", "to_state", "at", "cause"],
        )
        .await,
    );
    rows.extend(
        all(
            "SELECT seq, kind, partner, direction, issuer, document_kind, detail, at, acked_at, acked_by FROM events WHERE certificate_id = $1 ORDER BY id",
            certificate_id.clone(),
            &["seq", "kind", "partner", "direction", "issuer", "document_kind", "detail", "at", "acked_at", "acked_by"],
        )
        .await,
    );
    rows.extend(
        all(
            "SELECT direction, kind, partner, operation, wire_sha256, wire, at, purged_at, evidence FROM message_log WHERE message_id = $1 ORDER BY id",
            message_id.to_owned(),
            &["direction", "kind", "partner", "operation", "wire_sha256", "wire", "at", "purged_at", "evidence"],
        )
        .await,
    );
    // The values left out above name this receipt's message, reference and certificate.
    let history_messages: Vec<Option<String>> =
        sqlx::query_scalar("SELECT message_id FROM certificate_history WHERE certificate_id = $1")
            .bind(&certificate_id)
            .fetch_all(store.pool())
            .await
            .expect("history");
    assert_eq!(history_messages, vec![Some(message_id.to_owned())]);
    let events: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT message_id, reference FROM events WHERE certificate_id = $1")
            .bind(&certificate_id)
            .fetch_all(store.pool())
            .await
            .expect("events");
    assert_eq!(events, vec![(Some(message_id.to_owned()), reference.to_owned())]);
    rows
}

/// A receipt's acknowledgement is stored once, in the message log row written with it: the
/// receipt's own copy stays empty, whichever way wrote it, and a retry (`find`, `look`) still
/// gets the exact bytes. No other acknowledgement logged under the same message ID (another
/// operation's or another partner's at the same time, one earlier or later) is taken for it,
/// should a path ever log one; a receipt written with its own copy (before migration 0015) is
/// answered with that copy.
#[tokio::test]
async fn a_receipts_acknowledgement_is_stored_once_and_a_retry_still_gets_it() {
    use crate::lifecycle::{transition, Event, Role};
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let receipt = |message_id, ack_wire| Receipt {
            partner: "KR",
            message_id,
            operation: "SendCO",
            body_sha256: "body-sha",
            accepted: true,
            request_wire: b"<request/>",
            ack_wire,
            signature: None,
        };
        let log = |partner, message_id, operation, wire, at| {
            let store = store.clone();
            async move {
                let mut tx = store.begin().await.expect("begin");
                let entry = messages::LogEntry {
                    message_id,
                    incoming: false,
                    kind: messages::Kind::Acknowledgement,
                    partner,
                    operation,
                    wire,
                };
                messages::append(&mut tx, &entry, at).await.expect("log");
                tx.commit().await.expect("commit");
            }
        };
        // Logged first under the same message ID, none of them this receipt's: another
        // operation's answer at the same time, another partner's, and an earlier one.
        log("KR", "m-usual", "GetCO", b"<lookup-answer/>", now).await;
        log("XX", "m-usual", "SendCO", b"<other-partner/>", now).await;
        log("KR", "m-usual", "SendCO", b"<earlier/>", now - Duration::milliseconds(1)).await;
        let Recorded::New(_) =
            inbound::record(&store, &receipt("m-usual", b"<ack-usual/>"), None, now).await.expect("usual")
        else {
            panic!("a new receipt");
        };
        let received = NewCertificate {
            issuer: "KR",
            direction: Direction::Inbound,
            partner: "KR",
            verification_flag: None,
            ..cert("CO-ACK-ONCE")
        };
        let state =
            transition(Direction::Inbound, None, Event::ReceivedFromPartner, Role::ExportingPartner).expect("state");
        let detail = serde_json::json!({});
        let doc = inbound::FusedDocument { certificate: &received, state, cause: "received", event_detail: &detail };
        let fused = Receipt {
            signature: Some(("sig-ack-once", now + Duration::minutes(5))),
            ..receipt("m-fused", b"<ack-fused/>")
        };
        assert!(at_once(&store, &fused, &doc, now).await.is_some(), "written at once");
        // One logged later.
        log("KR", "m-fused", "SendCO", b"<msg-id-reused/>", now + Duration::milliseconds(1)).await;
        // A receipt written with its own copy.
        sqlx::query(
            "INSERT INTO inbound_messages (partner, message_id, operation, body_sha256, status, certificate_id, ack_wire, received_at) \
             VALUES ('KR', 'm-before', 'SendCO', 'body-sha', 'accepted', NULL, $1, $2)",
        )
        .bind(b"<ack-before/>".to_vec())
        .bind(super::millis(now))
        .execute(store.pool())
        .await
        .expect("a receipt holding its copy");

        for (message_id, ack) in
            [("m-usual", &b"<ack-usual/>"[..]), ("m-fused", b"<ack-fused/>"), ("m-before", b"<ack-before/>")]
        {
            let found = inbound::find(&store, "KR", message_id).await.expect("find").expect("the receipt");
            assert_eq!(found.ack_wire, ack, "{message_id}: find");
            let known = inbound::look(&store, "sig-none", "KR", message_id, None).await.expect("look");
            assert_eq!(known.earlier.expect("the receipt").ack_wire, ack, "{message_id}: look");
        }
        for message_id in ["m-usual", "m-fused"] {
            let own: Vec<u8> =
                sqlx::query_scalar("SELECT ack_wire FROM inbound_messages WHERE partner = 'KR' AND message_id = $1")
                    .bind(message_id)
                    .fetch_one(store.pool())
                    .await
                    .expect("the receipt's column");
            assert!(own.is_empty(), "{message_id}: the acknowledgement is stored once, in the log");
        }
    }
}

/// How many rows a receipt can write to, table by table.
async fn receipt_tables(store: &Store) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in ["inbound_messages", "replay_cache", "certificates", "certificate_history", "events", "message_log"] {
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(store.pool()).await.expect("count");
        counts.push(n);
    }
    counts
}

/// Both ways of storing a receipt in one round trip, each on the store it is for (the other
/// must answer None), the script in a transaction that goes on after it and is committed.
async fn at_once(
    store: &Store,
    r: &Receipt<'_>,
    doc: &inbound::FusedDocument<'_>,
    now: chrono::DateTime<Utc>,
) -> Option<String> {
    let mut tx = store.begin().await.expect("begin");
    let in_tx = inbound::record_document_in(&mut tx, store, r, doc, now).await.expect("script");
    if store.backend() == super::Backend::Sqlite {
        let released = sqlx::query("RELEASE fused_receipt").execute(&mut *tx).await;
        assert!(released.is_err(), "the script's savepoint is released or rolled back to and released");
    }
    sqlx::query("SELECT 1 AS one").fetch_one(&mut *tx).await.expect("the transaction goes on");
    tx.commit().await.expect("commit");
    let alone = inbound::record_document(store, r, doc, now).await.expect("statement");
    let postgres = store.backend() == super::Backend::Postgres;
    assert!(if postgres { in_tx.is_none() } else { alone.is_none() }, "one way per store");
    in_tx.or(alone)
}

/// An accepted document's receipt in one round trip: one statement on PostgreSQL
/// (`inbound::record_document`), one script in the transaction on SQLite
/// (`inbound::record_document_in`); each writes nothing on the other store. It writes exactly
/// what the usual way writes (the receipt, its signature, the certificate and its first history
/// row, the event, both wire forms), and nothing at all where the usual way must decide: a
/// message ID, a signature or a certificate already taken, a replacement that an accepted
/// cancellation awaits. On SQLite the script's statements before the one that failed are
/// undone too (the message ID's case fails after the certificate's row), and the transaction
/// goes on.
#[tokio::test]
async fn a_received_document_in_one_round_trip_is_stored_as_the_usual_way_stores_it() {
    use super::events::{self, EventKind, NewEvent};
    use crate::lifecycle::{transition, Event, Role};
    let (_d, stores) = stores().await;
    for store in stores {
        let now = Utc::now();
        let expires = now + Duration::minutes(5);
        let receipt = |message_id, signature| Receipt {
            partner: "KR",
            message_id,
            operation: "SendCO",
            body_sha256: "body-sha",
            accepted: true,
            request_wire: b"<request/>",
            ack_wire: b"<ack/>",
            signature: Some((signature, expires)),
        };
        let received = |reference| NewCertificate {
            issuer: "KR",
            direction: Direction::Inbound,
            partner: "KR",
            verification_flag: None,
            ..cert(reference)
        };
        let (event, role, cause) = (Event::ReceivedFromPartner, Role::ExportingPartner, "received from partner");
        let state = transition(Direction::Inbound, None, event, role).expect("received");
        let detail = serde_json::json!({ "replaces": null, "verification_flag": null, "content_sha256": "abc" });

        // The usual way, as the receive path takes it for a CO.
        let usual = received("CO-USUAL");
        let mut tx = store.begin().await.expect("begin");
        assert_eq!(
            inbound::open(&mut tx, &store, &receipt("m-usual", "sig-usual"), now).await.expect("open"),
            inbound::Opened::New
        );
        let c = certificates::insert(&mut tx, &usual, event, role, cause, Some("m-usual"), now).await.expect("insert");
        let appended = NewEvent {
            kind: EventKind::DocumentReceived,
            certificate_id: &c.id,
            message_id: Some("m-usual"),
            detail: detail.clone(),
        };
        events::append(&mut tx, &store, &appended, now).await.expect("event");
        inbound::close(&mut tx, &receipt("m-usual", "sig-usual"), Some(&c.id), now).await.expect("close");
        tx.commit().await.expect("commit");

        let one = received("CO-ONE");
        let doc = inbound::FusedDocument { certificate: &one, state, cause, event_detail: &detail };
        let written = at_once(&store, &receipt("m-one", "sig-one"), &doc, now).await;
        assert!(written.is_some(), "written at once");
        assert_eq!(
            receipt_rows(&store, "m-one", "CO-ONE", "sig-one").await,
            receipt_rows(&store, "m-usual", "CO-USUAL", "sig-usual").await
        );

        // Where the usual way must decide, nothing is written.
        let before = receipt_tables(&store).await;
        let unwritten =
            |message_id: &'static str, signature: &'static str, reference: &'static str, why: &'static str| {
                let store = store.clone();
                let detail = detail.clone();
                let before = before.clone();
                async move {
                    let certificate = received(reference);
                    let doc = inbound::FusedDocument { certificate: &certificate, state, cause, event_detail: &detail };
                    let written = at_once(&store, &receipt(message_id, signature), &doc, now).await;
                    assert_eq!(written, None, "{why}");
                    assert_eq!(receipt_tables(&store).await, before, "{why}: nothing written");
                }
            };
        unwritten("m-one", "sig-again", "CO-AGAIN", "the message ID was received").await;
        unwritten("m-replayed", "sig-one", "CO-REPLAYED", "the signature was seen").await;
        unwritten("m-held", "sig-held", "CO-ONE", "the certificate is held").await;
        let mut tx = store.begin().await.expect("begin");
        let awaited = super::amendments::NewAmendment {
            certificate_id: &c.id,
            reason: "typo",
            replacement_reference: Some("CO-REPLACEMENT"),
            replacement_xml: None,
            message_id: "m-cancel",
        };
        let amendment = super::amendments::insert(&mut tx, &awaited, now).await.expect("amendment");
        sqlx::query("UPDATE amendments SET state = $1 WHERE id = $2")
            .bind(super::amendments::ACCEPTED)
            .bind(&amendment)
            .execute(&mut *tx)
            .await
            .expect("accept");
        tx.commit().await.expect("commit");
        unwritten("m-replacement", "sig-replacement", "CO-REPLACEMENT", "a replacement is awaited").await;
        // Once linked, the same reference is no longer awaited.
        sqlx::query("UPDATE amendments SET replacement_id = $1 WHERE id = $2")
            .bind(&c.id)
            .bind(&amendment)
            .execute(store.pool())
            .await
            .expect("link");
        let certificate = received("CO-REPLACEMENT");
        let doc = inbound::FusedDocument { certificate: &certificate, state, cause, event_detail: &detail };
        let written = at_once(&store, &receipt("m-later", "sig-later"), &doc, now).await;
        assert!(written.is_some(), "no replacement awaited any more");
    }
}
