//! The event log and push subscribers on SQLite and, with DATABASE_URL, PostgreSQL: numbering
//! without gaps under concurrent writers, per-certificate order, acknowledgements, leases,
//! failures and alerts, and what retention keeps for a subscriber that lags.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::json;

use super::certificates::{self, NewCertificate};
use super::events::{self, EventKind, Filter, NewEvent};
use super::subscribers;
use super::testdb::fresh_stores;
use super::{alerts, Store, StoreError};
use crate::lifecycle::{Direction, Event, Role};

async fn stores() -> (tempfile::TempDir, Vec<Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = fresh_stores(dir.path()).await.expect("stores");
    (dir, stores)
}

/// An inbound certificate `reference` from KR, as a received CO is stored.
async fn received(store: &Store, reference: &str) -> String {
    let mut tx = store.begin().await.expect("tx");
    let new = NewCertificate { direction: Direction::Inbound, partner: "KR", ..super::testdb::outbound_co(reference) };
    let cert = certificates::insert(
        &mut tx,
        &new,
        Event::ReceivedFromPartner,
        Role::ExportingPartner,
        "received",
        None,
        Utc::now(),
    )
    .await
    .expect("insert");
    tx.commit().await.expect("commit");
    cert.id
}

async fn append(store: &Store, certificate_id: &str, kind: EventKind, n: i64) -> String {
    let mut tx = store.begin().await.expect("tx");
    let event = NewEvent { kind, certificate_id, message_id: None, detail: json!({ "n": n }) };
    let id = events::append(&mut tx, store, &event, Utc::now()).await.expect("append");
    tx.commit().await.expect("commit");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_produce_a_feed_without_gaps_in_each_certificates_order() {
    let (_d, stores) = stores().await;
    for store in stores {
        const WRITERS: i64 = 6;
        const EACH: i64 = 20;
        // Two writers per certificate: their changes serialise on its row.
        let mut certs = Vec::new();
        for c in 0..WRITERS / 2 {
            certs.push(received(&store, &format!("CERT-{c}")).await);
        }
        let mut writers = Vec::new();
        for w in 0..WRITERS as usize {
            let (store, cert) = (store.clone(), certs[w / 2].clone());
            writers.push(tokio::spawn(async move {
                for n in 0..EACH {
                    let mut tx = store.begin().await.expect("tx");
                    let event = NewEvent {
                        kind: EventKind::TreatmentReceived,
                        certificate_id: &cert,
                        message_id: None,
                        detail: json!({ "n": n, "w": w }),
                    };
                    events::append(&mut tx, &store, &event, Utc::now()).await.expect("append");
                    // Commits land in another order than the inserts, across writers.
                    tokio::time::sleep(StdDuration::from_millis(((n * 7 + w as i64 * 3) % 5) as u64)).await;
                    tx.commit().await.expect("commit");
                }
            }));
        }
        // Other sequencers run at the same time (several instances, workers, long polls).
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sequencers: Vec<_> = (0..2)
            .map(|_| {
                let (store, done) = (store.clone(), done.clone());
                tokio::spawn(async move {
                    while !done.load(std::sync::atomic::Ordering::SeqCst) {
                        events::sequence(&store).await.expect("sequence");
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        // A reader pages through the feed while the writers run, as a back-end would.
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut after = 0;
                let mut seen = Vec::new();
                let deadline = std::time::Instant::now() + StdDuration::from_secs(60);
                while (seen.len() as i64) < WRITERS * EACH {
                    assert!(std::time::Instant::now() < deadline, "the feed stalled at {after}");
                    events::sequence(&store).await.expect("sequence");
                    let page =
                        events::list(&store, &Filter { after, limit: 7, ..Filter::default() }).await.expect("list");
                    for e in &page.events {
                        assert_eq!(e.seq, after + 1, "the feed skipped or repeated a number");
                        after = e.seq;
                        seen.push(e.clone());
                    }
                    after = after.max(page.next_after);
                    tokio::task::yield_now().await;
                }
                seen
            })
        };
        for w in writers {
            w.await.expect("writer");
        }
        let seen = reader.await.expect("reader");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in sequencers {
            s.await.expect("sequencer");
        }
        assert_eq!(seen.len() as i64, WRITERS * EACH);
        let ids: HashSet<&str> = seen.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids.len(), seen.len(), "each event once");
        let mut per_writer: BTreeMap<(&str, i64), Vec<i64>> = BTreeMap::new();
        for e in &seen {
            let w = e.detail["w"].as_i64().expect("w");
            per_writer.entry((&e.certificate_id, w)).or_default().push(e.detail["n"].as_i64().expect("n"));
        }
        assert_eq!(per_writer.len() as i64, WRITERS);
        for ((cert, w), ns) in per_writer {
            assert_eq!(
                ns,
                (0..EACH).collect::<Vec<_>>(),
                "certificate {cert}, writer {w}: in the order of its changes"
            );
        }
        assert!(seen.iter().all(|e| e.issuer == "KR" && e.partner == "KR" && e.direction == "inbound"));
    }
}

#[tokio::test]
async fn an_event_committed_late_is_numbered_after_those_already_read() {
    // Two transactions at once need PostgreSQL (SQLite has one connection).
    let Some(base) =
        super::testdb::postgres_or_skip("an_event_committed_late_is_numbered_after_those_already_read", true)
    else {
        return;
    };
    let store = Store::connect(&super::testdb::fresh_postgres(&base).await.expect("pg")).await.expect("connect");
    let a = received(&store, "CERT-A").await;
    let b = received(&store, "CERT-B").await;
    let mut late = store.begin().await.expect("tx");
    let event =
        NewEvent { kind: EventKind::TreatmentReceived, certificate_id: &a, message_id: None, detail: json!({}) };
    let late_id = events::append(&mut late, &store, &event, Utc::now()).await.expect("append");
    let early_id = append(&store, &b, EventKind::TreatmentReceived, 0).await;
    events::sequence(&store).await.expect("sequence");
    let page = events::list(&store, &Filter { after: 0, limit: 10, ..Filter::default() }).await.expect("list");
    let seen: Vec<&str> = page.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(seen, vec![early_id.as_str()], "only the committed event");
    assert_eq!(page.next_after, 1);
    late.commit().await.expect("commit");
    events::sequence(&store).await.expect("sequence");
    let page = events::list(&store, &Filter { after: 1, limit: 10, ..Filter::default() }).await.expect("list");
    assert_eq!(page.events.len(), 1);
    assert_eq!((page.events[0].event_id.as_str(), page.events[0].seq), (late_id.as_str(), 2), "after what was read");
}

#[tokio::test]
async fn filters_acknowledgements_and_an_event_rolled_back_with_its_change() {
    let (_d, stores) = stores().await;
    for store in stores {
        let a = received(&store, "CERT-A").await;
        let b = received(&store, "CERT-B").await;
        let e1 = append(&store, &a, EventKind::DocumentReceived, 1).await;
        append(&store, &b, EventKind::TreatmentReceived, 2).await;
        // No event without its change: a rolled back transaction leaves none.
        let mut tx = store.begin().await.expect("tx");
        let event =
            NewEvent { kind: EventKind::DeliveryFailed, certificate_id: &a, message_id: None, detail: json!({}) };
        events::append(&mut tx, &store, &event, Utc::now()).await.expect("append");
        tx.rollback().await.expect("rollback");
        // An event needs its certificate.
        let mut tx = store.begin().await.expect("tx");
        let orphan =
            NewEvent { kind: EventKind::DeliveryFailed, certificate_id: "nope", message_id: None, detail: json!({}) };
        assert!(matches!(events::append(&mut tx, &store, &orphan, Utc::now()).await, Err(StoreError::NotFound(_))));
        tx.rollback().await.expect("rollback");
        let e3 = append(&store, &a, EventKind::CancellationNotified, 3).await;
        events::sequence(&store).await.expect("sequence");

        let all = events::list(&store, &Filter { limit: 100, ..Filter::default() }).await.expect("list");
        assert_eq!(all.events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!((all.head, all.next_after), (3, 3));
        let only = Filter {
            kinds: vec![EventKind::DocumentReceived, EventKind::CancellationNotified],
            limit: 1,
            ..Filter::default()
        };
        let page = events::list(&store, &only).await.expect("list");
        assert_eq!(
            (page.events[0].event_id.as_str(), page.next_after),
            (e1.as_str(), 1),
            "a full page continues from its last"
        );
        let page = events::list(&store, &Filter { after: 1, ..only.clone() }).await.expect("list");
        assert_eq!((page.events[0].event_id.as_str(), page.next_after), (e3.as_str(), 3));
        let none = Filter { partners: vec!["ID".into()], limit: 10, ..Filter::default() };
        let page = events::list(&store, &none).await.expect("list");
        assert!(page.events.is_empty());
        assert_eq!(page.next_after, 3, "what the filter does not want is skipped for good");
        assert_eq!(events::count(&store, &Filter { after: 1, ..only }).await.expect("count"), 1);

        let t = Utc::now();
        let acked = events::acknowledge(&store, &e1, "api:clearance", t).await.expect("ack").expect("known");
        assert_eq!(acked.acknowledged_by.as_deref(), Some("api:clearance"));
        let again =
            events::acknowledge(&store, &e1, "api:other", t + Duration::seconds(5)).await.expect("ack").expect("known");
        assert_eq!(again.acknowledged_by.as_deref(), Some("api:clearance"), "the first acknowledgement stays");
        assert!(events::acknowledge(&store, "no-such-event", "api:x", t).await.expect("ack").is_none());
        let open =
            events::list(&store, &Filter { unacknowledged: true, limit: 10, ..Filter::default() }).await.expect("list");
        assert_eq!(open.events.len(), 2);
        let of_a = events::for_certificate(store.pool(), &a).await.expect("of a");
        assert_eq!(
            of_a.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![EventKind::DocumentReceived, EventKind::CancellationNotified]
        );
    }
}

#[tokio::test]
async fn a_subscriber_is_served_by_one_owner_at_a_time_and_alerts_once_when_it_stays_down() {
    let (_d, stores) = stores().await;
    for store in stores {
        let t0 = Utc::now();
        let lease = Duration::seconds(30);
        subscribers::register(&store, &["clearance".into(), "broker".into()], t0).await.expect("register");
        let mut claim = subscribers::claim(&store, "clearance", "a", t0, lease).await.expect("claim").expect("free");
        assert_eq!(claim.position, 0);
        assert!(subscribers::claim(&store, "clearance", "b", t0, lease).await.expect("claim").is_none(), "leased to a");
        subscribers::advance(&store, &mut claim, 5, 3, t0, lease).await.expect("advance");
        // Never backwards, never for a worker that lost the lease.
        assert!(subscribers::advance(&store, &mut claim.clone(), 4, 1, t0, lease).await.is_err());
        let mut taken = subscribers::claim(&store, "clearance", "b", t0 + Duration::seconds(31), lease)
            .await
            .expect("claim")
            .expect("the lease expired");
        assert_eq!(taken.position, 5);
        assert!(matches!(
            subscribers::advance(&store, &mut claim, 6, 1, t0, lease).await,
            Err(StoreError::LeaseLost(_))
        ));

        // Failing: retried later, alerted once after alert_after, cleared on success.
        let after = Duration::seconds(60);
        let t1 = t0 + Duration::seconds(40);
        assert!(!subscribers::fail(&store, &taken, "HTTP 503", t1 + Duration::seconds(1), after, false, t1)
            .await
            .expect("fail"));
        assert!(subscribers::claim(&store, "clearance", "b", t1, lease).await.expect("claim").is_none(), "not due yet");
        let mut raised = 0;
        for s in [2, 30, 61, 90] {
            let t = t1 + Duration::seconds(s);
            taken = subscribers::claim(&store, "clearance", "b", t, lease).await.expect("claim").expect("due");
            assert_eq!(taken.failing_since, Some(super::from_millis(super::millis(t1))));
            if subscribers::fail(&store, &taken, "HTTP 503", t + Duration::seconds(1), after, false, t)
                .await
                .expect("fail")
            {
                raised += 1;
            }
        }
        assert_eq!(raised, 1, "one alert per outage");
        let down: Vec<_> = alerts::list(&store, false)
            .await
            .expect("alerts")
            .into_iter()
            .filter(|a| a.name == subscribers::ALERT_DOWN)
            .collect();
        assert_eq!(down.len(), 1);
        assert!(down[0].detail.contains("clearance") && down[0].detail.contains("HTTP 503"), "{}", down[0].detail);
        let t2 = t1 + Duration::seconds(200);
        let mut back = subscribers::claim(&store, "clearance", "b", t2, lease).await.expect("claim").expect("due");
        subscribers::advance(&store, &mut back, 9, 4, t2, lease).await.expect("advance");
        let status = subscribers::list(&store).await.expect("list");
        let clearance = status.iter().find(|s| s.name == "clearance").expect("listed");
        assert_eq!((clearance.position, clearance.delivered, clearance.failures), (9, 3 + 4, 0));
        assert!(clearance.last_error.is_none() && clearance.failing_since.is_none());

        // Two instances registering at once, the subscriber new: no error.
        let fresh = vec!["fresh".to_owned()];
        let (a, b) = tokio::join!(subscribers::register(&store, &fresh, t2), subscribers::register(&store, &fresh, t2));
        a.expect("first");
        b.expect("second");
        // Registering never deactivates another instance's subscriber; one no instance served
        // for the retirement period is retired (keeping its position), and comes back active
        // when an instance serves it again.
        subscribers::register(&store, &["broker".into()], t2).await.expect("register");
        assert!(
            subscribers::retire_unserved(&store, &["broker".into()], t2 - Duration::hours(1))
                .await
                .expect("retire")
                .is_empty(),
            "served recently"
        );
        let retired =
            subscribers::retire_unserved(&store, &["broker".into()], t2 + Duration::hours(25)).await.expect("retire");
        assert!(retired.contains(&"clearance".to_owned()) && !retired.contains(&"broker".to_owned()), "{retired:?}");
        assert_eq!(subscribers::lowest_active_position(store.pool()).await.expect("lowest"), Some(0));
        let returned = subscribers::claim(&store, "clearance", "c", t2 + Duration::hours(26), lease)
            .await
            .expect("claim")
            .expect("served again");
        assert_eq!(returned.position, 9);
        assert!(subscribers::list(&store).await.expect("list").iter().any(|s| s.name == "clearance" && s.active));
    }
}
