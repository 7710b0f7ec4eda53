//! Delivery guarantees (framework 4.3.3) on a manual clock: the retry schedule, manual
//! intervention, business rejections with alerts and webhook, pauses.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use coconnect::clock::{ManualClock, SharedClock};
use coconnect::delivery::Step;
use coconnect::lifecycle::State;
use coconnect::store::outbox;
use serde_json::Value;

use crate::common::*;

/// Runs the worker (and the alert pass) until nothing is due at the clock's current time.
async fn drain(gw: &Gateway, worker: &coconnect::delivery::Worker) -> Vec<Step> {
    let mut steps = Vec::new();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    loop {
        coconnect::alerts::step(&gw.app().state, &client).await.expect("alerts");
        match worker.step().await.expect("step") {
            Step::Idle => return steps,
            s => steps.push(s),
        }
    }
}

async fn alert_names(gw: &Gateway) -> Vec<String> {
    let (status, alerts) = gw.api("GET", "/api/v1/alerts?unacknowledged=true", "").await;
    assert_eq!(status, 200);
    alerts.as_array().expect("alerts").iter().map(|a| a["name"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_down_for_twenty_hours_gets_exactly_the_framework_schedule_then_manual_retry() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    // The framework's own marks: every 10 minutes for an hour, then at 2, 4, 8 and 16 hours.
    p.kr.reconfigure(
        "retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]",
        "retry_marks_seconds = [600, 1200, 1800, 2400, 3000, 3600, 7200, 14400, 28800, 57600]",
    );
    let clock = ManualClock::new(now());
    let shared: SharedClock = Arc::new(clock.clone());
    p.kr.start_with(shared.clone(), false).await;
    let t0 = clock.now_for_test();
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    let message_id = outbox::message_for_certificate(p.kr.store(), &cert).await.expect("store").expect("message");
    let worker = p.kr.worker("test-worker");

    // ID is down (nothing listens on its port) for 20 simulated hours, minute by minute.
    for minute in 0..=(20 * 60) {
        clock.set(t0 + Duration::minutes(minute));
        drain(&p.kr, &worker).await;
    }
    let marks = [0, 10, 20, 30, 40, 50, 60, 120, 240, 480, 960];
    let expected: Vec<_> = marks.iter().map(|m| t0 + Duration::minutes(*m)).collect();
    let got = outbox::attempt_times(p.kr.store(), &message_id).await.expect("attempts");
    assert_eq!(got, expected, "attempts must happen exactly at the marks");
    let cert_now = p.kr.api("GET", &format!("/api/v1/certificates/{cert}"), "").await.1;
    assert_eq!(cert_now["state"], "delivery_failed");
    let alerts = alert_names(&p.kr).await;
    assert!(
        alerts.contains(&"co.delivery_failed".to_owned())
            && alerts.contains(&"co.undelivered_after_first_hour".to_owned()),
        "{alerts:?}"
    );
    assert_eq!(alerts.iter().filter(|a| *a == "co.undelivered_after_first_hour").count(), 1, "raised once");

    // The partner comes back (on the same clock); an operator retries; it is delivered once.
    p.id.start_with(shared.clone(), false).await;
    let (status, body) = p.kr.api("POST", &format!("/api/v1/outbox/{message_id}/retry"), "").await;
    assert_eq!(status, 200, "{body}");
    let steps = drain(&p.kr, &worker).await;
    assert_eq!(steps, vec![Step::Completed(State::Acknowledged)]);
    let history = p.kr.api("GET", &format!("/api/v1/certificates/{cert}"), "").await.1;
    assert!(
        history["history"]
            .as_array()
            .expect("h")
            .iter()
            .any(|h| h["cause"].as_str().is_some_and(|c| c.contains("retry requested by api:domestic-system"))),
        "{history}"
    );
    assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), 1);
    // Nothing else goes out, however long we wait.
    clock.advance(Duration::hours(20));
    assert!(drain(&p.kr, &worker).await.is_empty());
}

/// A message claimed while its partner was up, and not yet sent when another of this
/// process's deliveries failed and marked the partner down, is not sent beside the partner's
/// probe: its attempt is refused and it goes back to the outbox at once, to be sent as the
/// probe, whose answer marks the partner up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_claimed_before_its_partner_went_down_waits_for_the_probe_rule() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let clock = ManualClock::new(now());
    let shared: SharedClock = Arc::new(clock.clone());
    p.kr.start_with(shared.clone(), false).await;
    p.id.start_with(shared.clone(), false).await;
    let first = p.kr.submit("ID", &co_with_reference("CLAIMED-UP-1")).await;
    clock.advance(Duration::milliseconds(1));
    let second = p.kr.submit("ID", &co_with_reference("CLAIMED-UP-2")).await;
    // One claim takes both while ID is up: the first for a worker whose delivery will fail,
    // the second waits for the next worker of the process.
    let claims = Arc::new(coconnect::delivery::Claims::for_workers(2));
    let t = clock.now_for_test();
    let taken =
        claims.take(p.kr.store(), "w", t, Duration::seconds(120), false).await.expect("claim").expect("due").message;
    assert_eq!(taken.certificate_id, first);
    // The first one's delivery failed: ID is marked down.
    let until = t + Duration::seconds(31);
    coconnect::store::partners::mark_down(p.kr.store(), "ID", &taken.message_id, until, t).await.expect("down");
    // The second one may not go now, and is not left leased for two minutes either.
    let worker = p.kr.app().worker_sharing("w", claims.clone());
    assert_eq!(worker.step().await.expect("step"), Step::ClaimLost);
    assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), 0, "nothing sent");
    // Once the requests then in flight are over, it goes as the probe, and ID is up again.
    clock.set(until + Duration::seconds(1));
    assert_eq!(worker.step().await.expect("step"), Step::Completed(State::Acknowledged));
    let status = coconnect::store::partners::status(p.kr.store(), "ID").await.expect("status");
    assert!(status.down_since.is_none(), "ID is still marked down: {status:?}");
    assert_eq!(p.kr.api("GET", &format!("/api/v1/certificates/{second}"), "").await.1["state"], "acknowledged");
}

/// A message sent while its partner was up, and answered after another delivery failed and
/// marked the partner down, marks the partner up again: the answer shows it answers, so its
/// backlog goes out now rather than at the next retry mark. Whether the failure was this
/// process's or another instance's (workers that share no claims, on PostgreSQL as instances
/// do).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_a_message_sent_before_its_partner_went_down_marks_it_up() {
    answer_after_a_down_mark(true, Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_a_message_sent_before_another_instance_marked_its_partner_down_marks_it_up() {
    let name = "an_answer_to_a_message_sent_before_another_instance_marked_its_partner_down_marks_it_up";
    if coconnect::store::testdb::postgres_or_skip(name, true).is_none() {
        return;
    }
    answer_after_a_down_mark(false, Db::Postgres).await;
}

async fn answer_after_a_down_mark(same_process: bool, db: Db) {
    use tokio::sync::Notify;
    let mut p = pair_stopped("sign-encrypt", db).await;
    let clock = ManualClock::new(now());
    p.kr.start_with(Arc::new(clock.clone()), false).await;
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let script = {
        let (arrived, release) = (arrived.clone(), release.clone());
        move |n| match n {
            0 => {
                arrived.notify_one();
                Reply::HoldThenAnswer(release.clone())
            }
            1 => Reply::Unavailable,
            _ => Reply::Answer,
        }
    };
    let seen = scripted_partner(&p, clock.clone(), script).await;
    let first = p.kr.submit("ID", &co_with_reference("HELD-1")).await;
    clock.advance(Duration::milliseconds(1));
    let second = p.kr.submit("ID", &co_with_reference("HELD-2")).await;
    // Apart, each instance's claim takes one message.
    let claims = Arc::new(coconnect::delivery::Claims::for_workers(if same_process { 2 } else { 1 }));
    let held = p.kr.app().worker_sharing("a", claims.clone());
    let failing = match same_process {
        true => p.kr.app().worker_sharing("b", claims),
        false => p.kr.app().worker_sharing("b", Arc::new(coconnect::delivery::Claims::for_workers(1))),
    };
    let sending = tokio::spawn(async move { held.step().await });
    tokio::time::timeout(std::time::Duration::from_secs(20), arrived.notified()).await.expect("the first CO is sent");
    // While ID holds the first CO, the second one fails: ID is marked down.
    let step = failing.step().await.expect("step");
    assert!(matches!(step, Step::WillRetry(_)), "{step:?}");
    let status = coconnect::store::partners::status(p.kr.store(), "ID").await.expect("status");
    assert!(status.down_since.is_some(), "{status:?}");
    release.notify_one();
    assert_eq!(sending.await.expect("join").expect("step"), Step::Completed(State::Acknowledged));
    let status = coconnect::store::partners::status(p.kr.store(), "ID").await.expect("status");
    assert!(status.down_since.is_none(), "ID is still marked down: {status:?}");
    // The second CO is due now (the clock has not moved), not at its first retry mark.
    assert_eq!(failing.step().await.expect("step"), Step::Completed(State::Acknowledged));
    for cert in [first, second] {
        assert_eq!(p.kr.api("GET", &format!("/api/v1/certificates/{cert}"), "").await.1["state"], "acknowledged");
    }
    let answered: Vec<bool> = seen.lock().expect("lock").iter().map(|(_, up)| *up).collect();
    assert_eq!(answered.iter().filter(|up| !**up).count(), 1, "{answered:?}");
}

/// A webhook receiver that records what it is sent.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/alerts", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let sink = sink.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let sink = sink.clone();
                    async move {
                        let body = http_body_util::BodyExt::collect(req.into_body())
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        if let Ok(v) = serde_json::from_slice(&body) {
                            sink.lock().expect("lock").push(v);
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_is_final_after_one_attempt_and_raises_an_alert_and_the_webhook() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let (url, seen) = webhook().await;
    p.kr.configure(&format!("\n[alerts]\nwebhook_url = \"{url}\"\n"));
    let clock: SharedClock = Arc::new(ManualClock::new(now()));
    p.kr.start_with(clock.clone(), false).await;
    p.id.start_with(clock.clone(), false).await;
    // ID already holds this CO from KR with other content: KR's version is rejected (CO-CONFLICT).
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let earlier = EXAMPLE_CO.replace("KRPUS", "KRINC");
    let (status, ack) = post_soap(
        &p.id.soap_url(),
        "KR",
        &p.id.files.inbound_password,
        c.secure(&send_co_body(uuid::Uuid::new_v4(), &earlier), true, clock.now()),
    )
    .await;
    assert!(status == 200 && ack.contains("Accepted"), "{ack}");

    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    let message_id = outbox::message_for_certificate(p.kr.store(), &cert).await.expect("store").expect("message");
    let worker = p.kr.worker("w");
    assert_eq!(drain(&p.kr, &worker).await, vec![Step::Completed(State::Rejected)]);
    // Never retried, whatever time passes.
    for _ in 0..3 {
        drain(&p.kr, &worker).await;
    }
    assert_eq!(outbox::attempt_times(p.kr.store(), &message_id).await.expect("attempts").len(), 1);
    let cert_now = p.kr.api("GET", &format!("/api/v1/certificates/{cert}"), "").await.1;
    assert_eq!(cert_now["state"], "rejected");
    assert!(
        cert_now["history"].as_array().expect("h").last().expect("last")["cause"]
            .as_str()
            .expect("cause")
            .contains("CO-CONFLICT"),
        "{cert_now}"
    );
    assert_eq!(alert_names(&p.kr).await, vec!["co.rejected"]);
    let posted = seen.lock().expect("lock").clone();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0]["alert"]["name"], "co.rejected");
    assert_eq!(posted[0]["alert"]["message_id"], message_id.as_str());

    // The operator acknowledges it.
    let id = alert_id(&p.kr).await;
    let (status, _) = p.kr.api("POST", &format!("/api/v1/alerts/{id}/ack"), "").await;
    assert_eq!(status, 200);
    assert!(alert_names(&p.kr).await.is_empty());
}

async fn alert_id(gw: &Gateway) -> i64 {
    gw.api("GET", "/api/v1/alerts", "").await.1[0]["id"].as_i64().expect("id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_time_does_not_consume_retries_and_operators_can_cancel() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.kr.reconfigure(
        "retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]",
        "retry_marks_seconds = [600, 1200, 1800]",
    );
    let clock = ManualClock::new(now());
    p.kr.start_with(Arc::new(clock.clone()), false).await;
    let t0 = clock.now_for_test();
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    let message_id = outbox::message_for_certificate(p.kr.store(), &cert).await.expect("store").expect("message");
    let worker = p.kr.worker("w");
    drain(&p.kr, &worker).await; // attempt 1 at t0 fails: ID is down
    clock.set(t0 + Duration::minutes(5));
    assert_eq!(p.kr.api("POST", "/api/v1/partners/ID/pause", "").await.0, 200);
    clock.set(t0 + Duration::hours(3));
    assert!(drain(&p.kr, &worker).await.is_empty(), "nothing goes to a paused partner");
    assert_eq!(p.kr.api("POST", "/api/v1/partners/ID/resume", "").await.0, 200);
    // Paused for 2 h 55 min: the 10-minute mark moves to t0 + 3 h 5 min.
    clock.set(t0 + Duration::hours(3) + Duration::minutes(4));
    assert!(drain(&p.kr, &worker).await.is_empty());
    clock.set(t0 + Duration::hours(3) + Duration::minutes(5));
    assert_eq!(drain(&p.kr, &worker).await.len(), 1);
    assert_eq!(
        outbox::attempt_times(p.kr.store(), &message_id).await.expect("a"),
        vec![t0, t0 + Duration::hours(3) + Duration::minutes(5)]
    );

    let (status, body) = p.kr.api("POST", &format!("/api/v1/outbox/{message_id}/cancel"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["certificate_state"], "withdrawn");
    clock.advance(Duration::hours(10));
    assert!(drain(&p.kr, &worker).await.is_empty(), "a cancelled message is never sent");
    let (status, list) = p.kr.api("GET", "/api/v1/outbox?state=cancelled&partner=ID", "").await;
    assert_eq!((status, list.as_array().map(Vec::len)), (200, Some(1)));
}

/// A partner that fails every other request (HTTP 503) and otherwise verifies, records and
/// acknowledges like a gateway would, on the test's clock.
/// What the scripted partner does with its n-th request (from 0).
#[derive(Clone)]
enum Reply {
    /// A signed acknowledgement.
    Answer,
    /// HTTP 503, as a partner that is down behind its proxy.
    Unavailable,
    /// Holds the request until `release` is notified, then acknowledges it.
    HoldThenAnswer(Arc<tokio::sync::Notify>),
}

/// A partner that fails every other request (the first one fails).
async fn flapping_partner(p: &Pair, clock: ManualClock) -> Arc<Mutex<Vec<(String, bool)>>> {
    scripted_partner(p, clock, |n| if n % 2 == 1 { Reply::Answer } else { Reply::Unavailable }).await
}

/// ID played by a stub that verifies each request and answers it as `script` says; returns the
/// requests seen, in order, each with whether it was answered.
async fn scripted_partner(
    p: &Pair,
    clock: ManualClock,
    script: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> Arc<Mutex<Vec<(String, bool)>>> {
    use coconnect::message::{AckStatus, Acknowledgement, MessageHeader};
    use coconnect::wssec::material::{Certificate, KeyPair};
    let pki = p.dir.path().join("pki");
    let load = |party: &str, signing: bool| {
        let f = coconnect::dev_pki::party_files(&pki, party);
        let (k, c) = if signing { (f.signing_key, f.signing_cert) } else { (f.encryption_key, f.encryption_cert) };
        KeyPair::from_pem(
            std::fs::read(k).expect("key"),
            Certificate::from_pem(&std::fs::read(c).expect("cert")).expect("cert"),
        )
        .expect("pair")
    };
    let (id_sign, id_decrypt, kr_sign) = (load("ID", true), load("ID", false), load("KR", true));
    let trust =
        coconnect::wssec::trust::PartnerTrust::new(vec![kr_sign.certificate.clone()], &[], None).expect("trust");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind(p.id.files.soap_addr).await.expect("bind");
    // What every connection and request of the stub shares.
    struct Stub<F> {
        record: Arc<Mutex<Vec<(String, bool)>>>,
        counter: std::sync::atomic::AtomicUsize,
        clock: ManualClock,
        trust: coconnect::wssec::trust::PartnerTrust,
        id_sign: KeyPair,
        id_decrypt: KeyPair,
        script: F,
    }
    let stub = Arc::new(Stub {
        record: seen.clone(),
        counter: std::sync::atomic::AtomicUsize::new(0),
        clock,
        trust,
        id_sign,
        id_decrypt,
        script,
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let stub = stub.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let stub = stub.clone();
                    async move {
                        let body = http_body_util::BodyExt::collect(req.into_body())
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let up = match (stub.script)(stub.counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) {
                            Reply::Answer => true,
                            Reply::Unavailable => false,
                            Reply::HoldThenAnswer(release) => {
                                release.notified().await;
                                true
                            }
                        };
                        let answer = tokio::task::spawn_blocking(move || {
                            let now = stub.clock.now_for_test();
                            let policy = coconnect::wssec::inbound::InboundPolicy {
                                limits: Default::default(),
                                decryption: Some(&stub.id_decrypt),
                                profile: coconnect::wssec::Profile::strict(true).inbound,
                                trust: &stub.trust,
                                now,
                                clock_skew: chrono::Duration::seconds(60),
                                max_ttl: chrono::Duration::hours(1),
                                require_fresh_timestamp: true,
                                replay_retention: chrono::Duration::days(7),
                            };
                            let m = coconnect::wssec::inbound::process(&body, &policy).expect("a genuine message");
                            let header = MessageHeader::read(m.body_child()).expect("header");
                            stub.record.lock().expect("lock").push((m.operation().1.to_owned(), up));
                            if !up {
                                return None;
                            }
                            let ack = Acknowledgement {
                                header: MessageHeader::new("ID", "KR", uuid::Uuid::new_v4(), now),
                                received_message_id: header.message_id.to_string(),
                                receipt: now,
                                received_digest: base64::Engine::encode(
                                    &base64::engine::general_purpose::STANDARD,
                                    openssl::sha::sha256(&body),
                                ),
                                status: AckStatus::Accepted,
                                errors: vec![],
                            };
                            let xml = ack.to_xml();
                            Some(
                                coconnect::wssec::outbound::secure(&coconnect::wssec::outbound::OutboundMessage {
                                    version: coconnect::wssec::SoapVersion::V11,
                                    body_xml: &xml,
                                    signer: &stub.id_sign,
                                    encrypt_for: None,
                                    profile: &coconnect::wssec::Profile::strict(false).outbound,
                                    addressing: None,
                                    now,
                                    ttl: chrono::Duration::minutes(5),
                                })
                                .expect("sign ack"),
                            )
                        })
                        .await
                        .expect("join");
                        let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                            answer.clone().unwrap_or_default(),
                        )));
                        if answer.is_none() {
                            *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_co_and_its_cancellation_arrive_in_order_at_a_flapping_partner() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let clock = ManualClock::new(now());
    p.kr.start_with(Arc::new(clock.clone()), false).await;
    let seen = flapping_partner(&p, clock.clone()).await;
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    // The cancellation of the same CO, queued right behind it.
    let header = coconnect::message::MessageHeader::new("KR", "ID", uuid::Uuid::new_v4(), clock.now_for_test());
    let body = coconnect::soap::messages::request_xml(
        coconnect::message::Operation::SendCancellation,
        &header,
        "<cc:Cancellation><cc:IssuerPartyID>KR</cc:IssuerPartyID><cc:DocumentReference>KRIDCEPA-2025-PUS-000417</cc:DocumentReference><cc:Reason>amendment</cc:Reason></cc:Cancellation>",
    );
    let mut tx = p.kr.store().begin().await.expect("tx");
    outbox::enqueue(
        &mut tx,
        &cert,
        "ID",
        "SendCancellation",
        &header.message_id.to_string(),
        &body,
        clock.now_for_test() + Duration::milliseconds(1),
    )
    .await
    .expect("enqueue");
    tx.commit().await.expect("commit");

    let worker = p.kr.worker("w");
    for _ in 0..(3 * 60) {
        drain(&p.kr, &worker).await;
        let (_, delivered) = p.kr.api("GET", "/api/v1/outbox?state=delivered", "").await;
        if delivered.as_array().map(Vec::len) == Some(2) {
            break;
        }
        clock.advance(Duration::minutes(1));
    }
    let seen = seen.lock().expect("lock").clone();
    let ops: Vec<&str> = seen.iter().map(|(op, _)| op.as_str()).collect();
    let first_cancellation =
        ops.iter().position(|op| *op == "SendCancellationRequest").expect("the cancellation arrived");
    let co_accepted = seen.iter().position(|(op, up)| op == "SendCORequest" && *up).expect("the CO was accepted");
    assert!(co_accepted < first_cancellation, "the cancellation never overtakes the CO: {seen:?}");
    assert!(seen.iter().any(|(_, up)| !*up), "the partner did flap: {seen:?}");
    assert!(seen.iter().filter(|(op, up)| op == "SendCancellationRequest" && *up).count() == 1, "{seen:?}");
    let state = p.kr.api("GET", &format!("/api/v1/certificates/{cert}"), "").await.1;
    assert_eq!(state["state"], "acknowledged", "a cancellation delivery notes but does not move the CO: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_secured_fails_at_once_for_an_operator_instead_of_spinning() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let clock = ManualClock::new(now());
    p.kr.start_with(Arc::new(clock.clone()), false).await;
    // A body no XML parser accepts; only the store API can queue one (the domestic API refuses
    // such text), but a message that cannot be signed must not be handed back to the workers
    // forever whatever its cause.
    let cert = coconnect::store::certificates::NewCertificate {
        issuer: "KR",
        reference: "UNSENDABLE-1",
        direction: coconnect::lifecycle::Direction::Outbound,
        partner: "ID",
        kind: coconnect::payload::DocumentKind::Co,
        replaces: None,
        reference_code: None,
        verification_flag: None,
        content_sha256: "0",
        co_xml: "<LPCO/>",
    };
    let message_id = uuid::Uuid::new_v4().to_string();
    let record = outbox::submit(
        p.kr.store(),
        &cert,
        "SendCO",
        &message_id,
        "<cc:Broken>\u{b}</cc:Broken>",
        clock.now_for_test(),
    )
    .await
    .expect("queued");
    let worker = p.kr.worker("w");
    assert_eq!(drain(&p.kr, &worker).await, vec![Step::Completed(State::DeliveryFailed)]);
    clock.set(clock.now_for_test() + Duration::hours(20));
    assert_eq!(drain(&p.kr, &worker).await, vec![], "never handed out again");
    assert!(outbox::attempt_times(p.kr.store(), &message_id).await.expect("attempts").is_empty(), "nothing was sent");
    let shown = p.kr.api("GET", &format!("/api/v1/certificates/{}", record.id), "").await.1;
    assert_eq!(shown["state"], "delivery_failed");
    let cause = shown["history"].as_array().and_then(|h| h.last()).map(|h| h["cause"].to_string()).unwrap_or_default();
    assert!(cause.contains("cannot be sent") && cause.contains("securing the message failed"), "{shown}");
    assert_eq!(alert_names(&p.kr).await, vec!["co.delivery_failed"]);
}

/// The signing and encryption certificates of two gateways out of step (a key roll-over not
/// yet taken over by the partner) are a configuration problem, not the CO's: the refusal is
/// retried on the schedule and the CO goes through once the partner catches up, instead of
/// ending `rejected` for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_out_of_step_between_partners_are_retried_not_rejected() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let pki = p.dir.path().join("pki");
    let (kr_files, id_files) =
        (coconnect::dev_pki::party_files(&pki, "KR"), coconnect::dev_pki::party_files(&pki, "ID"));
    let setting = |key: &str, path: &std::path::Path| format!("{key} = \"{}\"", path.display());
    let pinned = |path: &std::path::Path| format!("signing_certs = [\"{}\"]", path.display());
    let clock = ManualClock::new(now());
    let worker_outcome = |steps: Vec<Step>, code: &str| match steps.as_slice() {
        [Step::WillRetry(reason)] => assert!(reason.contains(code), "{reason}"),
        other => panic!("expected one attempt refused with {code}, to be retried: {other:?}"),
    };

    // ID does not accept KR's signing certificate yet.
    p.id.reconfigure(&pinned(&kr_files.signing_cert), &pinned(&id_files.signing_cert));
    p.kr.start_with(Arc::new(clock.clone()), false).await;
    p.id.start().await;
    let first = p.kr.submit("ID", EXAMPLE_CO).await;
    let worker = p.kr.worker("w");
    worker_outcome(drain(&p.kr, &worker).await, "WSS-UNTRUSTED-CERT");
    p.id.stop().await;
    p.id.reconfigure(&pinned(&id_files.signing_cert), &pinned(&kr_files.signing_cert));
    p.id.start().await;
    clock.advance(Duration::seconds(2));
    assert_eq!(drain(&p.kr, &worker).await, vec![Step::Completed(State::Acknowledged)]);
    assert_eq!(p.kr.api("GET", &format!("/api/v1/certificates/{first}"), "").await.1["state"], "acknowledged");

    // KR encrypts to a certificate whose key ID does not hold. (The worker holds the store,
    // and with it SQLite's instance lock, until dropped.)
    drop(worker);
    p.kr.stop().await;
    p.kr.reconfigure(
        &setting("encryption_cert", &id_files.encryption_cert),
        &setting("encryption_cert", &kr_files.encryption_cert),
    );
    p.kr.start_with(Arc::new(clock.clone()), false).await;
    let second = p.kr.submit("ID", &co_with_reference("OUT-OF-STEP-2")).await;
    let worker = p.kr.worker("w");
    worker_outcome(drain(&p.kr, &worker).await, "WSS-DECRYPT");
    drop(worker);
    p.kr.stop().await;
    p.kr.reconfigure(
        &setting("encryption_cert", &kr_files.encryption_cert),
        &setting("encryption_cert", &id_files.encryption_cert),
    );
    p.kr.start_with(Arc::new(clock.clone()), false).await;
    clock.advance(Duration::seconds(2));
    assert_eq!(drain(&p.kr, &p.kr.worker("w")).await, vec![Step::Completed(State::Acknowledged)]);
    assert_eq!(p.kr.api("GET", &format!("/api/v1/certificates/{second}"), "").await.1["state"], "acknowledged");
    assert!(alert_names(&p.kr).await.iter().all(|a| a != "co.rejected"));
}

/// Framework 4.3.3 counts the retry marks from the first attempt: the backlog flush after a
/// partner answers again sends waiting messages early, and those early attempts must not use up
/// later marks. With marks [5, 10, 20] s and a partner failing every other request, no CO may
/// end `delivery_failed` before 20 s after its first attempt, and all go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_flush_to_a_flapping_partner_uses_up_no_retry_marks() {
    backlog_flush_to_a_flapping_partner_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_flush_to_a_flapping_partner_uses_up_no_retry_marks_postgres() {
    if coconnect::store::testdb::postgres_or_skip(
        "a_backlog_flush_to_a_flapping_partner_uses_up_no_retry_marks_postgres",
        true,
    )
    .is_none()
    {
        return;
    }
    backlog_flush_to_a_flapping_partner_on(Db::Postgres).await;
}

async fn backlog_flush_to_a_flapping_partner_on(db: Db) {
    let mut p = pair_stopped("sign-encrypt", db).await;
    p.kr.reconfigure(
        "retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]",
        "retry_marks_seconds = [5, 10, 20]",
    );
    let clock = ManualClock::new(now());
    p.kr.start_with(Arc::new(clock.clone()), false).await;
    let seen = flapping_partner(&p, clock.clone()).await;
    let t0 = clock.now_for_test();
    let mut certs = Vec::new();
    for n in 1..=4 {
        certs.push(p.kr.submit("ID", &co_with_reference(&format!("FLAP-{n}"))).await);
    }
    let worker = p.kr.worker("w");
    let last_mark = Duration::seconds(20);
    for tenth in 0..=400 {
        clock.set(t0 + Duration::milliseconds(100 * tenth));
        drain(&p.kr, &worker).await;
        for failed in outbox::list(p.kr.store(), Some("failed"), None).await.expect("list") {
            let times = outbox::attempt_times(p.kr.store(), &failed.message_id).await.expect("attempts");
            let first = times.first().copied().expect("a failed message was attempted");
            let after = clock.now_for_test() - first;
            assert!(
                after >= last_mark,
                "{} ended failed {} ms after its first attempt, before the last mark (attempts at {times:?})",
                failed.message_id,
                after.num_milliseconds()
            );
        }
    }
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.iter().any(|(_, up)| !*up) && seen.iter().any(|(_, up)| *up), "the partner did flap: {seen:?}");
    // The flush did send a message again before its first mark (the case that used up marks).
    let mut early = false;
    for entry in outbox::list(p.kr.store(), None, Some("ID")).await.expect("list") {
        let times = outbox::attempt_times(p.kr.store(), &entry.message_id).await.expect("attempts");
        early |= times.iter().filter(|t| **t < times[0] + Duration::seconds(5)).count() > 1;
        assert_eq!(entry.state, "delivered", "{entry:?}, attempts at {times:?}");
    }
    assert!(early, "no attempt was made early by the backlog flush: {seen:?}");
    for cert in &certs {
        assert_eq!(p.kr.api("GET", &format!("/api/v1/certificates/{cert}"), "").await.1["state"], "acknowledged");
    }
    assert!(alert_names(&p.kr).await.iter().all(|a| a != "co.delivery_failed"));
}

/// A backlog to one partner beyond its pace (framework 4.3.3: flushed at a bounded rate, by a
/// gateway that may serve several partners) holds no worker: a message whose turn is further
/// off than a worker waits goes back to the outbox unleased, due at its turn, and the worker
/// is free at once for whatever else is due. The backlog still goes at the pace,
/// each message at its turn without waiting for a look at the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_beyond_its_partners_pace_holds_no_worker() {
    backlog_beyond_the_pace_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_beyond_its_partners_pace_holds_no_worker_postgres() {
    if coconnect::store::testdb::postgres_or_skip("a_backlog_beyond_its_partners_pace_holds_no_worker_postgres", true)
        .is_none()
    {
        return;
    }
    backlog_beyond_the_pace_on(Db::Postgres).await;
}

/// The point of the pace's deferral, end to end: KR serves two partners, ID with a backlog
/// it may receive one message a second of, JP at the default pace. JP's CO, submitted after
/// ID's eight, is delivered at once instead of after ID's backlog (about seven seconds with
/// two workers sleeping on ID's turns), and ID's backlog still goes at its pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_flushed_at_its_pace_does_not_hold_up_another_partner() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let mut jp = third_gateway(&p, "JP");
    p.kr.reconfigure("party = \"ID\"\n", "party = \"ID\"\nflush_rate_per_second = 1.0\n");
    p.kr.reconfigure("[delivery]\n", "[delivery]\nworkers = 2\n");
    p.id.start().await;
    jp.start().await;
    p.kr.start().await;
    let mut to_id = Vec::new();
    for n in 1..=8 {
        to_id.push(p.kr.submit("ID", &co_with_reference(&format!("BACKLOG-{n}"))).await);
    }
    let to_jp = p.kr.submit("JP", &co_with_reference("OTHER-PARTNER")).await;
    p.kr.wait_state(&to_jp, "acknowledged").await;
    for cert in &to_id {
        p.kr.wait_state(cert, "acknowledged").await;
    }
    // Measured against ID's own sends, not the clock, so that a loaded machine does not
    // fail it: JP's went before ID's third (two seconds into the backlog), not after its
    // sixth or seventh as when the workers slept on ID's turns.
    let mut to_id_sent = first_attempts(&p.kr, "ID").await;
    to_id_sent.sort();
    let to_jp_sent = first_attempts(&p.kr, "JP").await;
    assert!(to_jp_sent[0] < to_id_sent[2], "JP's CO waited behind ID's backlog: {to_jp_sent:?} against {to_id_sent:?}");
    let gaps = gaps_between_sends(&p.kr, "ID").await;
    assert_eq!(gaps.len(), 7);
    assert!(gaps.iter().all(|g| *g >= 900), "faster than ID's pace: {gaps:?}");
    jp.stop().await;
}

/// The first attempts' start times of `partner`'s messages, oldest message first.
async fn first_attempts(gw: &Gateway, partner: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
    let mut starts = Vec::new();
    for entry in outbox::list(gw.store(), None, Some(partner)).await.expect("list") {
        let times = outbox::attempt_times(gw.store(), &entry.message_id).await.expect("attempts");
        starts.push(*times.first().expect("attempted"));
    }
    starts
}

/// The gaps between `partner`'s first attempts, in the order they were made.
async fn gaps_between_sends(gw: &Gateway, partner: &str) -> Vec<i64> {
    let mut starts = first_attempts(gw, partner).await;
    starts.sort();
    starts.windows(2).map(|w| (w[1] - w[0]).num_milliseconds()).collect()
}

async fn backlog_beyond_the_pace_on(db: Db) {
    use std::time::{Duration as Wait, Instant};
    let mut p = pair_stopped("sign-encrypt", db).await;
    // One message every two seconds.
    p.kr.reconfigure("flush_rate_per_second = 500.0", "flush_rate_per_second = 0.5");
    p.kr.start_with(coconnect::clock::system(), false).await;
    p.id.start().await;
    let mut certs = Vec::new();
    for n in 1..=4 {
        certs.push(p.kr.submit("ID", &co_with_reference(&format!("PACE-{n}"))).await);
    }
    let worker = p.kr.worker("w");
    assert_eq!(worker.step().await.expect("step"), Step::Completed(State::Acknowledged));
    let first_sent = Instant::now();
    for _ in 0..3 {
        assert_eq!(worker.step().await.expect("step"), Step::Deferred);
    }
    // Nothing else is due: the worker is free now, not six seconds from now.
    assert_eq!(worker.step().await.expect("step"), Step::Idle);
    assert!(first_sent.elapsed() < Wait::from_secs(2), "the worker waited for the pace: {:?}", first_sent.elapsed());
    let waiting = outbox::list(p.kr.store(), Some("pending"), Some("ID")).await.expect("list");
    assert!(waiting.iter().all(|e| e.attempts == 0 && e.last_error.is_none()), "a deferral is no attempt: {waiting:?}");
    let due: Vec<_> = waiting.iter().map(|e| e.next_attempt_at).collect();
    let gaps: Vec<i64> = due.windows(2).map(|w| (w[1] - w[0]).num_milliseconds()).collect();
    assert_eq!(gaps.len(), 2, "three wait: {waiting:?}");
    assert!(gaps.iter().all(|g| (1800..=2200).contains(g)), "their turns are not two seconds apart: {gaps:?}");

    // No worker looks until every turn has gone by, two of them more than the grace ago (as
    // when a pause or every worker busy kept them): the three still go at the pace, not in a
    // burst.
    tokio::time::sleep_until((first_sent + Wait::from_millis(6500)).into()).await;
    let mut delivered = 0;
    while delivered < 3 {
        assert!(first_sent.elapsed() < Wait::from_secs(40), "the backlog was not delivered");
        match worker.step().await.expect("step") {
            Step::Completed(State::Acknowledged) => delivered += 1,
            Step::Idle => tokio::time::sleep(Wait::from_millis(20)).await,
            Step::Deferred => {}
            other => panic!("{other:?}"),
        }
    }
    let gaps = gaps_between_sends(&p.kr, "ID").await;
    assert!(gaps.iter().all(|g| *g >= 1800), "faster than the pace: {gaps:?}");

    // Running workers that look at the outbox once a minute: each deferred message is sent at
    // its turn all the same (the worker that deferred it wakes one then), and at the pace.
    drop(worker);
    p.kr.stop().await;
    p.kr.reconfigure("flush_rate_per_second = 0.5", "flush_rate_per_second = 1.0");
    p.kr.reconfigure("poll_interval_millis = 100", "poll_interval_millis = 60000");
    p.kr.start().await;
    let t = Instant::now();
    for n in 5..=8 {
        certs.push(p.kr.submit("ID", &co_with_reference(&format!("PACE-{n}"))).await);
    }
    for cert in &certs[4..] {
        p.kr.wait_state(cert, "acknowledged").await;
    }
    assert!(t.elapsed() < Wait::from_secs(20), "a deferred message waited for the poll: {:?}", t.elapsed());
    let gaps = gaps_between_sends(&p.kr, "ID").await;
    // (The gap between the two runs is not the pace's: a restarted process starts afresh.)
    assert!(gaps[4..].iter().all(|g| *g >= 900), "faster than the pace: {gaps:?}");
}

/// Submits `count` COs at once (concurrent API calls) and then one at a time, to a KR whose
/// watcher of the outbox looks for work only every 60 s: each CO must be acknowledged within
/// 20 s, so none may wait for a poll. A wake-up lost while every worker is busy, or one that
/// reaches only one worker when several COs are queued, fails here.
async fn wake_ups_deliver_without_polling(workers: usize, count: usize) {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.kr.reconfigure("poll_interval_millis = 100", &format!("poll_interval_millis = 60000\nworkers = {workers}"));
    p.id.start().await;
    p.kr.start().await;
    // Every worker has made its first look and waits now.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let kr = &p.kr;
    let burst = futures_util::future::join_all(
        (0..count)
            .map(|n| async move { kr.submit("ID", &co_with_reference(&format!("WAKE-{workers}-B{n:03}"))).await }),
    )
    .await;
    let mut ids = burst;
    for n in 0..count {
        ids.push(kr.submit("ID", &co_with_reference(&format!("WAKE-{workers}-S{n:03}"))).await);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for id in &ids {
        loop {
            let (_, cert) = kr.api("GET", &format!("/api/v1/certificates/{id}"), "").await;
            if cert["state"] == "acknowledged" {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "certificate {id} not acknowledged within 20 s with a 60 s poll interval ({workers} workers): {cert}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_work_wakes_idle_workers_without_waiting_for_a_poll() {
    wake_ups_deliver_without_polling(8, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_committed_while_the_only_worker_is_busy_is_not_left_for_the_poll() {
    wake_ups_deliver_without_polling(1, 6).await;
}

/// A CO submitted while a worker waits is leased by its submission and sent without a claim:
/// its one attempt is recorded under the submission's lease (`<instance>-submit`). COs
/// submitted together, some leased and some claimed (this half also passes without the
/// lease: it checks that the two paths together send each CO once), are each sent once.
async fn a_submission_hands_its_message_to_an_idle_worker(db: Db) {
    let mut p = pair_stopped("sign-encrypt", db).await;
    p.kr.reconfigure("poll_interval_millis = 100", "poll_interval_millis = 60000\nworkers = 2");
    p.id.start().await;
    p.kr.start().await;
    // One CO at a time, each once the one before was acknowledged and a worker waits again
    // (a busy machine may need more than one try), until one goes under the lease.
    let mut sent = 0;
    let leased = loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let cert = p.kr.submit("ID", &co_with_reference(&format!("HANDED-{sent}"))).await;
        p.kr.wait_state(&cert, "acknowledged").await;
        sent += 1;
        let by_instance = outbox::attempts_by_instance(p.kr.store()).await.expect("attempts");
        let leased: i64 = by_instance.iter().filter(|(i, _)| i.ends_with("-submit")).map(|(_, n)| n).sum();
        if leased > 0 || sent == 5 {
            break leased;
        }
    };
    assert_eq!(leased, 1, "one of {sent} COs sent under its submission's lease");

    let kr = &p.kr;
    let burst = futures_util::future::join_all(
        (0..6).map(|n| async move { kr.submit("ID", &co_with_reference(&format!("HANDED-B{n}"))).await }),
    )
    .await;
    for id in &burst {
        p.kr.wait_state(id, "acknowledged").await;
    }
    let by_instance = outbox::attempts_by_instance(p.kr.store()).await.expect("attempts");
    let all = sent + 6;
    assert_eq!(by_instance.iter().map(|(_, n)| n).sum::<i64>(), all, "each CO sent once: {by_instance:?}");
    assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_hands_its_message_to_an_idle_worker_sqlite() {
    a_submission_hands_its_message_to_an_idle_worker(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_hands_its_message_to_an_idle_worker_postgres() {
    a_submission_hands_its_message_to_an_idle_worker(Db::Postgres).await;
}

/// Work no commit of this process announced (queued by another instance sharing the store)
/// is found by the process's watcher of the outbox (every 100 ms here), although every
/// worker is idle and waits only to be woken. Without the watcher it would wait for the next
/// submission in this process, and `wait_state` gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queued_by_another_instance_is_found_by_the_watcher_and_delivered() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.start().await;
    p.kr.start().await;
    // A CO through the API first: once it is acknowledged, every worker has made its first
    // look (a look then would find the next CO without the watcher) and waits to be woken.
    let first = p.kr.submit("ID", &co_with_reference("WATCHED-0")).await;
    p.kr.wait_state(&first, "acknowledged").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let state = &p.kr.app().state;
    let co = co_with_reference("WATCHED-1");
    let submitted = coconnect::flows::domestic::submit(
        &state.store,
        &state.settings,
        "ID",
        coconnect::payload::DocumentKind::Co,
        co.as_bytes(),
        state.clock.now(),
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("submitted as another instance would: {e:?}"));
    p.kr.wait_state(&submitted.certificate.id, "acknowledged").await;
}
