//! Back-end delivery (issue 12) with real components: each side's event log reaches its
//! back-end through the feed, an HTTPS webhook receiver on loopback (which checks the HMAC
//! signature as docs/backend.md tells a receiver to) and the RabbitMQ broker at
//! `AMQP_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f, on every development and CI
//! machine), with an exchange and a queue of the test's own, deleted afterwards. A broker
//! outage is made with a loopback proxy the test controls (stopping the shared broker would
//! disturb the tests running beside it).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use openssl::ssl::{SslAcceptor, SslMethod};
use serde_json::{json, Value};

use crate::common::*;

/// The shared broker of development and CI machines.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The broker's address (for the proxy).
fn broker_addr() -> SocketAddr {
    let url = url::Url::parse(&amqp_url()).expect("AMQP_URL");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(5672);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).expect("broker address").next().expect("an address")
}

pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

/// HMAC-SHA256 of `<timestamp>.<body>`, computed here as a receiver would (not with the
/// gateway's own function).
fn expected_signature(timestamp: &str, body: &[u8]) -> String {
    let key = openssl::pkey::PKey::hmac(SECRET.as_bytes()).expect("key");
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).expect("signer");
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signer.sign_oneshot_to_vec(&signed).expect("hmac").iter().map(|b| format!("{b:02x}")).collect()
}

/// One POST the receiver accepted.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_id: String,
    pub idempotency_key: String,
    pub seq: i64,
    pub body: Value,
}

/// An HTTPS webhook receiver on loopback, with the pair's development TLS certificate for
/// `localhost`. It answers 401 to a POST whose signature does not verify or is older than five
/// minutes, 503 while failing, 204 otherwise.
pub struct WebhookReceiver {
    pub url: String,
    pub accepted: Arc<Mutex<Vec<Delivery>>>,
    pub refused_signatures: Arc<Mutex<usize>>,
    failing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start(pki: &Path, party: &str) -> Self {
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).expect("acceptor");
        acceptor
            .set_private_key_file(pki.join(party).join("tls.key.pem"), openssl::ssl::SslFiletype::PEM)
            .expect("key");
        acceptor.set_certificate_chain_file(pki.join(party).join("tls.cert.pem")).expect("cert");
        let acceptor = Arc::new(acceptor.build());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let refused_signatures: Arc<Mutex<usize>> = Arc::default();
        let failing = Arc::new(AtomicBool::new(false));
        let (a, r, f) = (accepted.clone(), refused_signatures.clone(), failing.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let (acceptor, a, r, f) = (acceptor.clone(), a.clone(), r.clone(), f.clone());
                tokio::spawn(async move {
                    let Ok(ssl) = openssl::ssl::Ssl::new(acceptor.context()) else { return };
                    let Ok(mut stream) = tokio_openssl::SslStream::new(ssl, tcp) else { return };
                    if std::pin::Pin::new(&mut stream).accept().await.is_err() {
                        return;
                    }
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (a, r, f) = (a.clone(), r.clone(), f.clone());
                        async move { Ok::<_, hyper::Error>(receive(req, &a, &r, &f).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        WebhookReceiver {
            url: format!("https://localhost:{port}/coconnect/events"),
            accepted,
            refused_signatures,
            failing,
            task,
        }
    }

    pub fn fail(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.accepted.lock().expect("lock").clone()
    }

    /// The `[[backend.subscribers]]` entry for this receiver.
    pub fn subscriber(&self, name: &str, pki: &Path, extra: &str) -> String {
        format!(
            "\n[[backend.subscribers]]\nname = \"{name}\"\ntype = \"webhook\"\nurl = \"{}\"\nca_file = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_seconds = 5\n{extra}",
            self.url,
            pki.join("ca.cert.pem").display()
        )
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    req: Request<hyper::body::Incoming>,
    accepted: &Mutex<Vec<Delivery>>,
    refused: &Mutex<usize>,
    failing: &AtomicBool,
) -> Response<Full<Bytes>> {
    let status = |code: u16| Response::builder().status(code).body(Full::new(Bytes::new())).expect("response");
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (timestamp, signature) = (header("x-coconnect-timestamp"), header("x-coconnect-signature"));
    let (event_id, key, seq) =
        (header("x-coconnect-event-id"), header("idempotency-key"), header("x-coconnect-sequence"));
    let ok_type = header("content-type") == "application/json";
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else { return status(400) };
    if failing.load(Ordering::SeqCst) {
        return status(503);
    }
    let fresh = timestamp.parse::<i64>().is_ok_and(|t| (chrono::Utc::now().timestamp() - t).abs() <= 300);
    let verified = signature
        .strip_prefix("sha256=")
        .is_some_and(|s| openssl::memcmp::eq(s.as_bytes(), expected_signature(&timestamp, &body).as_bytes()));
    if !(fresh && verified && ok_type) {
        *refused.lock().expect("lock") += 1;
        return status(401);
    }
    let Ok(json) = serde_json::from_slice::<Value>(&body) else { return status(400) };
    accepted.lock().expect("lock").push(Delivery {
        event_id,
        idempotency_key: key,
        seq: seq.parse().unwrap_or(-1),
        body: json,
    });
    status(204)
}

/// A durable exchange and queue of this test's own on the real broker, deleted by [`Self::delete`].
pub struct BrokerQueue {
    pub exchange: String,
    pub queue: String,
    connection: Connection,
}

impl BrokerQueue {
    pub async fn new(tag: &str) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let (exchange, queue) = (format!("coconnect.test.{tag}.{unique}"), format!("coconnect.test.{tag}.{unique}"));
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.unwrap_or_else(|e| {
            panic!("RabbitMQ must run at {} (rabbitmq-server -detached starts it): {e}", amqp_url())
        });
        let channel = connection.create_channel().await.expect("channel");
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel
            .exchange_declare(exchange.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .expect("exchange");
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel.queue_declare(queue.as_str().into(), durable, FieldTable::default()).await.expect("queue");
        BrokerQueue { exchange, queue, connection }
    }

    /// The `[[backend.subscribers]]` entry publishing to this exchange and queue through `url`.
    pub fn subscriber(&self, name: &str, url: &str, extra: &str) -> String {
        format!(
            "\n[[backend.subscribers]]\nname = \"{name}\"\ntype = \"amqp\"\nurl = \"{url}\"\nexchange = \"{}\"\nqueue = \"{}\"\n{}{extra}",
            self.exchange,
            self.queue,
            if extra.contains("timeout_seconds") { "" } else { "timeout_seconds = 5\n" }
        )
    }

    /// Every message in the queue now, in order: (message_id, type, body).
    pub async fn drain(&self) -> Vec<(String, String, Value)> {
        let channel = self.connection.create_channel().await.expect("channel");
        let mut out = Vec::new();
        while let Some(m) =
            channel.basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("basic.get")
        {
            let props = &m.delivery.properties;
            assert_eq!(props.delivery_mode(), &Some(2), "persistent");
            assert_eq!(props.content_type().as_ref().map(|c| c.as_str()), Some("application/json"));
            let id = props.message_id().as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default();
            let kind = props.kind().as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default();
            out.push((id, kind, serde_json::from_slice(&m.delivery.data).expect("JSON body")));
        }
        out
    }

    pub async fn delete(self) {
        let channel = self.connection.create_channel().await.expect("channel");
        channel.queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default()).await.expect("delete queue");
        channel
            .exchange_delete(self.exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .expect("delete exchange");
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// A loopback TCP proxy to the broker that the test can take down (every connection cut,
/// new ones refused) and bring back.
pub struct Proxy {
    pub addr: SocketAddr,
    /// Connections cut by [`Self::down`] and refused while down: the outage was felt.
    pub cut: Arc<std::sync::atomic::AtomicUsize>,
    pub refused: Arc<std::sync::atomic::AtomicUsize>,
    up: Arc<AtomicBool>,
    pipes: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start() -> Self {
        let target = broker_addr();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let pipes: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let refused: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (u, p, r) = (up.clone(), pipes.clone(), refused.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                if !u.load(Ordering::SeqCst) {
                    r.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                    continue;
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                p.lock().expect("lock").push(pipe);
            }
        });
        Proxy { addr, cut: Arc::default(), refused, up, pipes, task }
    }

    /// The broker URL through the proxy.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&amqp_url()).expect("AMQP_URL");
        url.set_ip_host(self.addr.ip()).expect("host");
        url.set_port(Some(self.addr.port())).expect("port");
        url.to_string()
    }

    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for pipe in self.pipes.lock().expect("lock").drain(..) {
            if !pipe.is_finished() {
                self.cut.fetch_add(1, Ordering::SeqCst);
            }
            pipe.abort();
        }
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.down();
    }
}

/// Short waits, so that the tests see retries and alerts within seconds.
pub const FAST_BACKEND: &str =
    "\n[backend]\npoll_interval_millis = 50\nretry_initial_seconds = 1\nretry_max_seconds = 2\nalert_after_seconds = 1\nlease_seconds = 10\n";

/// The whole feed, read page by page as a back-end would.
pub async fn feed(gw: &Gateway) -> Vec<Value> {
    let mut after = 0;
    let mut out = Vec::new();
    loop {
        let (status, page) = gw.api("GET", &format!("/api/v1/events?after={after}&limit=7"), "").await;
        assert_eq!(status, 200, "{page}");
        let events = page["events"].as_array().expect("events").clone();
        let next = page["next_after"].as_i64().expect("next_after");
        if events.is_empty() {
            return out;
        }
        out.extend(events);
        after = next;
    }
}

/// Waits until every push subscriber of `gw` is up to date and the feed holds `count` events.
pub async fn settled(gw: &Gateway, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events = feed(gw).await;
        let (_, subs) = gw.api("GET", "/api/v1/backend/subscribers", "").await;
        let caught_up = subs["subscribers"].as_array().is_some_and(|s| s.iter().all(|s| s["backlog"] == 0));
        if events.len() == count && caught_up {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} of {count} events, subscribers {subs}",
            gw.files.party,
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["event_id"].as_str().expect("event_id").to_owned()).collect()
}

/// `ids` with repeats removed, keeping the first; and how many were repeats.
fn first_of_each(ids: Vec<String>) -> (Vec<String>, usize) {
    let mut seen = HashSet::new();
    let total = ids.len();
    let unique: Vec<String> = ids.into_iter().filter(|i| seen.insert(i.clone())).collect();
    let repeats = total - unique.len();
    (unique, repeats)
}

/// The kinds of each certificate's events, in feed order.
fn kinds_by_certificate(events: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events {
        out.entry(e["reference"].as_str().expect("reference").to_owned())
            .or_default()
            .push(e["kind"].as_str().expect("kind").to_owned());
    }
    out
}

async fn wait_received(gw: &Gateway, reference: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, found) = gw.api("GET", &format!("/api/v1/certificates?issuer=KR&reference={reference}"), "").await;
        if let Some(c) = found.as_array().and_then(|l| l.iter().find(|c| c["direction"] == "inbound")) {
            return c.clone();
        }
        assert!(Instant::now() < deadline, "never received {reference}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_reaches_each_back_end_once_in_order_through_feed_webhook_and_amqp() {
    whole_lifecycle_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_reaches_each_back_end_once_in_order_through_feed_webhook_and_amqp_postgres() {
    if coconnect::store::testdb::postgres_or_skip(
        "the_whole_lifecycle_reaches_each_back_end_once_in_order_through_feed_webhook_and_amqp_postgres",
        true,
    )
    .is_none()
    {
        return;
    }
    whole_lifecycle_on(Db::Postgres).await;
}

async fn whole_lifecycle_on(db: Db) {
    let mut p = pair_stopped("sign-encrypt", db).await;
    let pki = p.dir.path().join("pki");
    let (kr_hook, id_hook) = (WebhookReceiver::start(&pki, "KR").await, WebhookReceiver::start(&pki, "ID").await);
    let (kr_queue, id_queue) = (BrokerQueue::new("kr").await, BrokerQueue::new("id").await);
    for (gw, hook, queue) in [(&p.kr, &kr_hook, &kr_queue), (&p.id, &id_hook, &id_queue)] {
        gw.configure(FAST_BACKEND);
        gw.configure(&hook.subscriber("issuing-system", &pki, ""));
        gw.configure(&queue.subscriber("broker", &amqp_url(), ""));
    }
    p.kr.start().await;
    p.id.start().await;

    // CO, amendment (cancellation accepted by ID's gateway, replacement pushed), feedback on
    // the replacement, a look-up of it, and a DO.
    let co1 = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&co1, "acknowledged").await;
    let id_co1 = wait_received(&p.id, "KRIDCEPA-2025-PUS-000417").await["id"].as_str().expect("id").to_owned();
    let amendment = json!({"reason": "consignee corrected", "replacement": co_with_reference("R-2")}).to_string();
    let (status, body) = p.kr.api("POST", &format!("/api/v1/certificates/{co1}/amendments"), &amendment).await;
    assert_eq!(status, 202, "{body}");
    let original = p.kr.wait_state(&co1, "cancelled").await;
    let co2 = original["replaced_by"].as_str().expect("replacement").to_owned();
    let (_, co2_view) = p.kr.api("GET", &format!("/api/v1/certificates/{co2}"), "").await;
    let code = co2_view["reference_code"].as_str().expect("code").to_owned();
    p.kr.wait_state(&co2, "acknowledged").await;
    let id_co2 = wait_received(&p.id, "R-2").await["id"].as_str().expect("id").to_owned();
    let treatment = json!({"decision": "Granted", "declaration_reference": "40101-25-1", "reason_codes": ["PREF-OK"]});
    let (status, body) =
        p.id.api("POST", &format!("/api/v1/certificates/{id_co2}/treatment"), &treatment.to_string()).await;
    assert_eq!(status, 202, "{body}");
    p.kr.wait_for(&co2, "got the feedback", |c| c["treatment_decisions"].as_array().is_some_and(|d| !d.is_empty()))
        .await;
    let (status, found) = p.id.api("GET", &format!("/api/v1/lookup?partner=KR&reference=R-2&code={code}"), "").await;
    assert_eq!(status, 200, "{found}");
    let do_xml = std::fs::read_to_string(repo_root().join("examples/do.xml")).expect("do.xml");
    let (status, body) = p.kr.api("POST", "/api/v1/declarations?partner=ID", &do_xml).await;
    assert_eq!(status, 202, "{body}");
    let do1 = body["id"].as_str().expect("id").to_owned();
    p.kr.wait_state(&do1, "acknowledged").await;
    let do_reference = coconnect::payload::parse_do(&do_xml).expect("DO").reference().to_owned();
    wait_received(&p.id, &do_reference).await;
    // ID's answer to the cancellation and its feedback are acknowledged by KR too.
    p.id.wait_for(&id_co2, "had its feedback acknowledged", |c| {
        c["backend"]["events"].as_array().is_some_and(|e| e.iter().any(|e| e["kind"] == "acknowledgement.received"))
    })
    .await;

    // What each side's back-end must learn, per certificate (the order between two
    // certificates, and between a partner's answer and the acknowledgement of our request,
    // depends on timing; within what one side decides it does not).
    let kr_events = settled(&p.kr, 7).await;
    let kr_kinds = kinds_by_certificate(&kr_events);
    let mut co1_kinds = kr_kinds["KRIDCEPA-2025-PUS-000417"].clone();
    co1_kinds.sort();
    assert_eq!(
        co1_kinds,
        ["acknowledgement.received", "acknowledgement.received", "cancellation.accepted"],
        "{kr_kinds:?}"
    );
    assert_eq!(kr_kinds["R-2"], ["acknowledgement.received", "treatment.received", "lookup.answered"], "{kr_kinds:?}");
    assert_eq!(kr_kinds[&do_reference], ["acknowledgement.received"]);
    let id_events = settled(&p.id, 7).await;
    let id_kinds = kinds_by_certificate(&id_events);
    assert_eq!(
        id_kinds["KRIDCEPA-2025-PUS-000417"],
        ["document.received", "cancellation.notified", "cancellation.accepted", "acknowledgement.received"],
        "{id_kinds:?}"
    );
    assert_eq!(id_kinds["R-2"], ["document.received", "acknowledgement.received"], "{id_kinds:?}");
    assert_eq!(id_kinds[&do_reference], ["document.received"]);

    // The facts each event carries.
    let by_kind = |events: &[Value], reference: &str, kind: &str| -> Value {
        events.iter().find(|e| e["reference"] == reference && e["kind"] == kind).cloned().expect("the event")
    };
    let accepted = by_kind(&kr_events, "KRIDCEPA-2025-PUS-000417", "cancellation.accepted");
    assert_eq!(accepted["detail"]["decided_by"], "ID");
    assert_eq!(accepted["detail"]["replacement_certificate_id"], co2.as_str());
    let ack = by_kind(&kr_events, &do_reference, "acknowledgement.received");
    assert_eq!(
        (ack["detail"]["status"].as_str(), ack["detail"]["operation"].as_str()),
        (Some("accepted"), Some("SendDO"))
    );
    let feedback = by_kind(&kr_events, "R-2", "treatment.received");
    assert_eq!(feedback["detail"]["decision"], "Granted");
    assert_eq!(by_kind(&kr_events, "R-2", "lookup.answered")["detail"]["asked_by"], "ID");
    let replacement = by_kind(&id_events, "R-2", "document.received");
    assert_eq!(replacement["detail"]["replaces"], id_co1.as_str(), "the replacement names what it replaces");
    assert_eq!(replacement["gateway"], "ID");
    assert_eq!(replacement["document"]["content_type"], "application/xml");
    let xml = replacement["document"]["xml"].as_str().expect("the document travels with its event");
    assert_eq!(coconnect::payload::parse_co(xml).expect("a valid CO").reference(), "R-2");
    assert_eq!(replacement["document"]["sha256"], coconnect::store::messages::sha256_hex(xml.as_bytes()).as_str());
    let notified = by_kind(&id_events, "KRIDCEPA-2025-PUS-000417", "cancellation.notified");
    assert_eq!(
        (notified["detail"]["reason"].as_str(), notified["detail"]["replacement_reference"].as_str()),
        (Some("consignee corrected"), Some("R-2"))
    );

    // Every channel: the feed's events, in the feed's order, each once after de-duplication.
    for (gw, events, hook, queue) in
        [(&p.kr, &kr_events, &kr_hook, &kr_queue), (&p.id, &id_events, &id_hook, &id_queue)]
    {
        let party = &gw.files.party;
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().expect("seq")).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "{party}: numbered without gaps");
        let deliveries = hook.deliveries();
        assert!(deliveries
            .iter()
            .all(|d| d.idempotency_key == d.event_id && d.body["event_id"] == d.event_id.as_str()));
        assert!(deliveries.iter().all(|d| d.body["seq"] == d.seq));
        assert_eq!(*hook.refused_signatures.lock().expect("lock"), 0, "{party}: every signature verified");
        let (webhook, repeats) = first_of_each(deliveries.iter().map(|d| d.event_id.clone()).collect());
        assert_eq!(webhook, ids(events), "{party}: the webhook got the feed, in order");
        assert_eq!(repeats, 0, "{party}: no repeat without a failure");
        let messages = queue.drain().await;
        let (amqp, repeats) = first_of_each(messages.iter().map(|(id, _, _)| id.clone()).collect());
        assert_eq!(amqp, ids(events), "{party}: the broker got the feed, in order");
        assert_eq!(repeats, 0);
        for ((id, kind, body), event) in messages.iter().zip(events.iter()) {
            assert_eq!((body["event_id"].as_str(), body["kind"].as_str()), (Some(id.as_str()), Some(kind.as_str())));
            let mut without_ack = event.clone();
            if let Some(o) = without_ack.as_object_mut() {
                o.remove("acknowledged");
            }
            assert_eq!(body, &without_ack, "{party}: the same event on every channel");
        }
    }

    // The importing side reads the CO's content, as XML and as JSON, and confirms it.
    let received_event = by_kind(&id_events, "KRIDCEPA-2025-PUS-000417", "document.received");
    let document = |accept: &'static str| {
        let url = format!("http://{}/api/v1/certificates/{id_co1}/document", p.id.files.api_addr);
        let token = p.id.files.api_token.clone();
        async move {
            let req = Request::get(url)
                .header("Authorization", format!("Bearer {token}"))
                .header("Accept", accept)
                .body(Full::new(Bytes::new()))
                .expect("request");
            let resp = client().request(req).await.expect("GET document");
            let status = resp.status().as_u16();
            let content_type =
                resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (status, content_type, body)
        }
    };
    let (status, content_type, xml) = document("application/xml").await;
    assert_eq!((status, content_type.as_str()), (200, "application/xml; charset=utf-8"));
    assert_eq!(received_event["document"]["xml"].as_str().map(str::as_bytes), Some(&xml[..]));
    let (_, view) = p.id.api("GET", &format!("/api/v1/certificates/{id_co1}"), "").await;
    assert_eq!(
        coconnect::store::messages::sha256_hex(&xml),
        view["content_sha256"].as_str().expect("digest"),
        "the XML we validated"
    );
    let (status, content_type, json_body) = document("application/json").await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let json: Value = serde_json::from_slice(&json_body).expect("JSON");
    assert_eq!(json["LPCO"]["ID"], "KRIDCEPA-2025-PUS-000417");
    assert_eq!(json["LPCO"]["Consignment"]["Consignee"]["Name"], "PT Nusantara Makmur Sejahtera");
    assert_eq!(document("text/html").await.0, 406);
    assert_eq!(view["backend"]["status"], "received");
    for event in id_events.iter().filter(|e| e["certificate_id"] == id_co1.as_str()) {
        let (status, acked) =
            p.id.api("POST", &format!("/api/v1/events/{}/ack", event["event_id"].as_str().expect("id")), "").await;
        assert_eq!(status, 200, "{acked}");
        assert_eq!(acked["acknowledged"]["by"], "api:domestic-system", "{acked}");
    }
    let (_, view) = p.id.api("GET", &format!("/api/v1/certificates/{id_co1}"), "").await;
    assert_eq!(view["backend"]["status"], "downloaded", "{view}");
    let (status, _) = p.id.api("POST", "/api/v1/events/no-such-event/ack", "").await;
    assert_eq!(status, 404);
    let (_, open) = p.id.api("GET", "/api/v1/events?unacknowledged=true&kind=document.received", "").await;
    assert_eq!(open["events"].as_array().map(Vec::len), Some(2), "R-2 and the DO are still open: {open}");

    p.kr.stop().await;
    p.id.stop().await;
    kr_queue.delete().await;
    id_queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_are_down_lose_nothing_hold_up_nothing_and_raise_an_alert() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let pki = p.dir.path().join("pki");
    let hook = WebhookReceiver::start(&pki, "ID").await;
    let queue = BrokerQueue::new("down").await;
    let proxy = Proxy::start().await;
    p.id.configure(FAST_BACKEND);
    p.id.configure(&hook.subscriber("clearance", &pki, "kinds = [\"document.received\"]\npartners = [\"KR\"]\n"));
    p.id.configure(&queue.subscriber("broker", &proxy.url(), ""));
    hook.fail(true);
    proxy.down();
    p.kr.start().await;
    p.id.start().await;

    // Three COs arrive and are acknowledged while both subscribers are down.
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(p.kr.submit("ID", &co_with_reference(&format!("DOWN-{n}"))).await);
    }
    for id in &sent {
        p.kr.wait_state(id, "acknowledged").await;
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, alerts) = p.id.api("GET", "/api/v1/alerts?unacknowledged=true", "").await;
        let down: Vec<&Value> =
            alerts.as_array().expect("alerts").iter().filter(|a| a["name"] == "backend.subscriber_down").collect();
        if down.len() == 2 {
            assert!(
                down.iter()
                    .any(|a| a["detail"].as_str().is_some_and(|d| d.contains("clearance") && d.contains("HTTP 503"))),
                "{alerts}"
            );
            assert!(down.iter().any(|a| a["detail"].as_str().is_some_and(|d| d.contains("broker"))), "{alerts}");
            break;
        }
        assert!(Instant::now() < deadline, "no alert for the subscribers that are down: {alerts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, subs) = p.id.api("GET", "/api/v1/backend/subscribers", "").await;
    for s in subs["subscribers"].as_array().expect("subscribers") {
        assert_eq!(s["state"], "failing", "{s}");
        assert_eq!(s["backlog"], 3, "{s}");
        assert!(s["failures"].as_i64().is_some_and(|f| f >= 1) && s["last_error"].is_string(), "{s}");
    }
    assert!(hook.deliveries().is_empty());
    assert!(queue.drain().await.is_empty());

    // Back: everything that waited arrives, in order, and the alerts' cause is cleared.
    hook.fail(false);
    proxy.up();
    let events = settled(&p.id, 3).await;
    let (webhook, repeats) = first_of_each(hook.deliveries().iter().map(|d| d.event_id.clone()).collect());
    assert_eq!((webhook, repeats), (ids(&events), 0));
    let (amqp, _) = first_of_each(queue.drain().await.into_iter().map(|(id, _, _)| id).collect());
    assert_eq!(amqp, ids(&events));
    let (_, subs) = p.id.api("GET", "/api/v1/backend/subscribers", "").await;
    for s in subs["subscribers"].as_array().expect("subscribers") {
        assert_eq!(
            (s["state"].as_str(), s["failures"].as_i64(), s["delivered"].as_i64()),
            (Some("up to date"), Some(0), Some(3)),
            "{s}"
        );
    }

    // The broker connection is cut while idle: the next event goes over a new one.
    proxy.down();
    assert!(proxy.cut.load(Ordering::SeqCst) >= 1, "a live connection was cut");
    proxy.up();
    let cert = p.kr.submit("ID", &co_with_reference("AFTER-CUT")).await;
    p.kr.wait_state(&cert, "acknowledged").await;
    let events = settled(&p.id, 4).await;
    let (amqp, _) = first_of_each(queue.drain().await.into_iter().map(|(id, _, _)| id).collect());
    assert_eq!(amqp, ids(&events[3..]));
    p.kr.stop().await;
    p.id.stop().await;
    queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_when_an_event_arrives_and_bad_queries_are_refused() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let id = &p.id;
    let started = Instant::now();
    let (status, empty) = id.api("GET", "/api/v1/events?wait=1", "").await;
    assert_eq!(
        (status, empty["events"].as_array().map(Vec::len), empty["next_after"].as_i64()),
        (200, Some(0), Some(0))
    );
    assert!(started.elapsed() >= Duration::from_millis(900), "held for its wait");

    let waiting = {
        let (addr, token) = (id.files.api_addr, id.files.api_token.clone());
        tokio::spawn(async move {
            let req = Request::get(format!("http://{addr}/api/v1/events?wait=30&kind=document.received"))
                .header("Authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let started = Instant::now();
            let resp = client().request(req).await.expect("long poll");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (started.elapsed(), serde_json::from_slice::<Value>(&body).expect("JSON"))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&cert, "acknowledged").await;
    let (took, page) = waiting.await.expect("join");
    assert!(took < Duration::from_secs(20), "answered when the event came, not at the end of its wait: {took:?}");
    assert_eq!(page["events"][0]["kind"], "document.received", "{page}");

    for bad in
        ["after=-1", "limit=0", "limit=1001", "wait=61", "kind=document.lost", "partner=XX", "unacknowledged=maybe"]
    {
        let (status, body) = id.api("GET", &format!("/api/v1/events?{bad}"), "").await;
        assert_eq!((status, body["code"].as_str()), (400, Some("API-QUERY")), "{bad}: {body}");
        assert!(body["parameter"].is_string(), "{body}");
    }
    let (status, list) = id.api("GET", "/api/v1/certificates?direction=inbound&partner=KR", "").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["certificates"].as_array().map(Vec::len), Some(1), "{list}");
    assert!(list["certificates"][0]["history"].is_null(), "a listing has no history");
    for bad in ["direction=sideways", "state=lost", "kind=XX", "limit=0", "after=no-such-id", "issuer=KR"] {
        let (status, body) = id.api("GET", &format!("/api/v1/certificates?{bad}"), "").await;
        assert_eq!((status, body["code"].as_str()), (400, Some("API-QUERY")), "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_document_answers_gone_with_what_is_kept() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&cert, "acknowledged").await;
    let received = wait_received(&p.id, "KRIDCEPA-2025-PUS-000417").await;
    let id = received["id"].as_str().expect("id");
    assert_eq!(feed(&p.id).await.len(), 1, "its event is numbered (an event not yet numbered holds its document)");
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    coconnect::store::retention::purge(
        p.id.store(),
        later,
        "test",
        later,
        coconnect::soap::evidence::without_body_content,
    )
    .await
    .expect("purge");
    let (status, gone) = p.id.api("GET", &format!("/api/v1/certificates/{id}/document"), "").await;
    assert_eq!((status, gone["code"].as_str()), (410, Some("API-PURGED")), "{gone}");
    assert_eq!(gone["content_sha256"], received["content_sha256"]);
    assert_eq!(gone["reference"], "KRIDCEPA-2025-PUS-000417");
    assert!(gone["purged_at"].is_string() && gone["kept"].is_array(), "{gone}");
    let events = feed(&p.id).await;
    assert_eq!(events[0]["document"]["purged"], true, "{}", events[0]);
    assert_eq!(events[0]["document"]["sha256"], received["content_sha256"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_a_document_until_every_subscriber_has_it() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let pki = p.dir.path().join("pki");
    let hook = WebhookReceiver::start(&pki, "ID").await;
    hook.fail(true);
    p.id.configure(FAST_BACKEND);
    p.id.configure(&hook.subscriber("clearance", &pki, ""));
    p.kr.start().await;
    p.id.start().await;
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&cert, "acknowledged").await;
    let received = wait_received(&p.id, "KRIDCEPA-2025-PUS-000417").await;
    let id = received["id"].as_str().expect("id").to_owned();
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    let purge = || {
        coconnect::store::retention::purge(
            p.id.store(),
            later,
            "test",
            later,
            coconnect::soap::evidence::without_body_content,
        )
    };
    assert_eq!(purge().await.expect("purge").certificates_purged, 0, "the subscriber has not got it yet");
    assert_eq!(p.id.api("GET", &format!("/api/v1/certificates/{id}/document"), "").await.0, 200);
    hook.fail(false);
    settled(&p.id, 1).await;
    assert_eq!(hook.deliveries()[0].body["document"]["xml"].as_str().map(|x| x.contains("<ID>KRIDCEPA")), Some(true));
    assert_eq!(purge().await.expect("purge").certificates_purged, 1);
    assert_eq!(p.id.api("GET", &format!("/api/v1/certificates/{id}/document"), "").await.0, 410);
}

/// A child process whose output lines are collected as they come.
struct Peer {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Peer {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = tokio::process::Command::new(crate::interop::venv_python());
        cmd.args(args).current_dir(repo_root()).kill_on_drop(true).stdout(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn the example");
        let stdout = child.stdout.take().expect("stdout");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let collected = lines.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut reader = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                collected.lock().expect("lock").push(line);
            }
        });
        Peer { child, lines }
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let lines = self.lines.lock().expect("lock").clone();
            if done(&lines) {
                return lines;
            }
            assert!(Instant::now() < deadline, "the example never {what}: {lines:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// POSTs `body` to the example receiver with the given signature headers.
async fn post_signed(url: &str, event_id: &str, timestamp: &str, signature: &str, body: &str) -> u16 {
    let req = Request::post(url)
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", event_id)
        .header("X-Coconnect-Timestamp", timestamp)
        .header("X-Coconnect-Signature", signature)
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    client().request(req).await.expect("POST").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_webhook_receiver_and_amqp_consumer_work_as_written() {
    if !crate::interop::peers_ready() {
        return;
    }
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let out = p.dir.path();
    let port = coconnect::config::dev_pair::free_addr().expect("port").port().to_string();
    let (webhook_out, amqp_out) = (out.join("webhook.jsonl"), out.join("amqp.jsonl"));
    let receiver = Peer::spawn(
        &["examples/backend/webhook_receiver.py", "--port", &port, "--out", &webhook_out.display().to_string()],
        &[("COCONNECT_WEBHOOK_SECRET", SECRET)],
    );
    receiver.wait_for("listened", |l| l.iter().any(|l| l.starts_with("listening"))).await;
    let queue = BrokerQueue::new("example").await;
    let consumer = Peer::spawn(
        &[
            "examples/backend/amqp_consumer.py",
            "--url",
            &amqp_url(),
            "--queue",
            &queue.queue,
            "--out",
            &amqp_out.display().to_string(),
            "--exit-after",
            "2",
        ],
        &[],
    );
    let url = format!("http://127.0.0.1:{port}/events");
    p.id.configure(FAST_BACKEND);
    p.id.configure(&format!(
        "\n[[backend.subscribers]]\nname = \"clearance\"\ntype = \"webhook\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\ntimeout_seconds = 5\n"
    ));
    p.id.configure(&queue.subscriber("broker", &amqp_url(), ""));
    p.kr.start().await;
    p.id.start().await;
    for n in 0..2 {
        let cert = p.kr.submit("ID", &co_with_reference(&format!("EXAMPLE-{n}"))).await;
        p.kr.wait_state(&cert, "acknowledged").await;
    }
    let events = settled(&p.id, 2).await;
    let accepted =
        receiver.wait_for("accepted both", |l| l.iter().filter(|l| l.starts_with("accepted")).count() == 2).await;
    let consumed =
        consumer.wait_for("consumed both", |l| l.iter().filter(|l| l.starts_with("received")).count() == 2).await;
    for (n, event) in events.iter().enumerate() {
        let id = event["event_id"].as_str().expect("id");
        assert!(accepted[1 + n].ends_with(id) && accepted[1 + n].contains("document.received"), "{accepted:?}");
        assert!(consumed[n].ends_with(id), "{consumed:?}");
    }
    let stored = std::fs::read_to_string(&webhook_out).expect("the receiver's file");
    assert_eq!(stored.lines().count(), 2);

    // What the example refuses, and a repeat it drops.
    let body = events[0].clone();
    let mut body = body;
    if let Some(o) = body.as_object_mut() {
        o.remove("acknowledged");
    }
    let body = body.to_string();
    let id = events[0]["event_id"].as_str().expect("id");
    let now = chrono::Utc::now().timestamp().to_string();
    let good = format!("sha256={}", expected_signature(&now, body.as_bytes()));
    assert_eq!(post_signed(&url, id, &now, "sha256=00", &body).await, 401, "a forged signature");
    let old = (chrono::Utc::now().timestamp() - 3600).to_string();
    let old_signature = format!("sha256={}", expected_signature(&old, body.as_bytes()));
    assert_eq!(post_signed(&url, id, &old, &old_signature, &body).await, 401, "an hour-old request replayed");
    assert_eq!(post_signed(&url, id, &now, &good, &body).await, 204, "a repeat is confirmed ...");
    receiver.wait_for("dropped the repeat", |l| l.iter().any(|l| l == &format!("duplicate {id}"))).await;
    assert_eq!(std::fs::read_to_string(&webhook_out).expect("file").lines().count(), 2, "... and not processed twice");

    let mut consumer = consumer;
    let status =
        tokio::time::timeout(PATIENCE, consumer.child.wait()).await.expect("the consumer stops").expect("status");
    assert!(status.success());
    drop(receiver);
    p.kr.stop().await;
    p.id.stop().await;
    queue.delete().await;
}

/// Waits until `gw`'s subscriber `name` reports a failure whose error contains `what`.
async fn failing_with(gw: &Gateway, name: &str, what: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, subs) = gw.api("GET", "/api/v1/backend/subscribers", "").await;
        if let Some(s) = subs["subscribers"].as_array().and_then(|l| l.iter().find(|s| s["name"] == name)) {
            if s["last_error"].as_str().is_some_and(|e| e.contains(what)) {
                return s.clone();
            }
        }
        assert!(Instant::now() < deadline, "subscriber {name} never failed with {what:?}: {subs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_no_queue_takes_stops_its_subscriber_without_repeating_the_rest_of_its_batch() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let queue = BrokerQueue::new("unroutable").await;
    let proxy = Proxy::start().await;
    p.id.configure(FAST_BACKEND);
    // The queue takes documents only; the subscriber sends every kind.
    p.id.configure(&queue.subscriber("broker", &proxy.url(), "binding_key = \"document.*\"\n"));
    proxy.down();
    p.kr.start().await;
    p.id.start().await;
    let first = p.kr.submit("ID", &co_with_reference("ROUTE-1")).await;
    p.kr.wait_state(&first, "acknowledged").await;
    let id_first = wait_received(&p.id, "ROUTE-1").await["id"].as_str().expect("id").to_owned();
    let treatment = json!({"decision": "Granted"}).to_string();
    let (status, body) = p.id.api("POST", &format!("/api/v1/certificates/{id_first}/treatment"), &treatment).await;
    assert_eq!(status, 202, "{body}");
    p.id.wait_for(&id_first, "had its feedback acknowledged", |c| {
        c["backend"]["events"].as_array().is_some_and(|e| e.iter().any(|e| e["kind"] == "acknowledgement.received"))
    })
    .await;
    let second = p.kr.submit("ID", &co_with_reference("ROUTE-2")).await;
    p.kr.wait_state(&second, "acknowledged").await;
    wait_received(&p.id, "ROUTE-2").await;
    // document, acknowledgement (no queue takes it), document: one batch when the broker is back.
    proxy.up();
    let stuck = failing_with(&p.id, "broker", "unroutable").await;
    assert!(
        stuck["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("acknowledgement.received") && e.contains("set the subscriber's kinds")),
        "{stuck}"
    );
    // Several retries later, nothing was published twice.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, subs) = p.id.api("GET", "/api/v1/backend/subscribers", "").await;
    assert!(subs["subscribers"][0]["failures"].as_i64().is_some_and(|f| f >= 2), "retried: {subs}");
    let messages = queue.drain().await;
    let ids: Vec<&str> = messages.iter().map(|(id, _, _)| id.as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no copies: {ids:?}");
    assert!(messages.iter().all(|(_, kind, _)| kind == "document.received"), "{messages:?}");
    assert_eq!(subs["subscribers"][0]["position"], 1, "held at the event no queue takes: {subs}");
    p.kr.stop().await;
    p.id.stop().await;
    queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_whose_certificate_the_trust_store_does_not_know_gets_nothing() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    let pki = p.dir.path().join("pki");
    let hook = WebhookReceiver::start(&pki, "ID").await;
    p.id.configure(FAST_BACKEND);
    // No ca_file: the system's trust store, which does not know the development CA.
    p.id.configure(&format!(
        "\n[[backend.subscribers]]\nname = \"clearance\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\ntimeout_seconds = 5\n",
        hook.url
    ));
    p.kr.start().await;
    p.id.start().await;
    let cert = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&cert, "acknowledged").await;
    let failing = failing_with(&p.id, "clearance", "certificate verify failed").await;
    assert_eq!(failing["backlog"], 1, "{failing}");
    assert!(hook.deliveries().is_empty());
}
