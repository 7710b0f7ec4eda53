//! Crash and concurrency soak tests: hundreds of COs while one side is killed (SIGKILL) at
//! random moments (the receiver's back-end broker cut meanwhile), and two instances sharing
//! one PostgreSQL database.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

const COS: usize = 500;
const KILLS: usize = 10;
/// Short marks and leases so recovery after each kill takes seconds.
const FAST: &str = "poll_interval_millis = 20\nlease_seconds = 3\nrequest_timeout_seconds = 2";

fn fast_marks() -> String {
    // Every second for longer than the tests wait (240 s): a slow kill phase on a loaded
    // machine must not exhaust a message's schedule.
    let marks: Vec<String> = (1..=300).map(|s| s.to_string()).collect();
    format!("retry_marks_seconds = [{}]", marks.join(", "))
}

fn make_fast(gw: &Gateway) {
    gw.reconfigure("retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]", &fast_marks());
    gw.reconfigure("poll_interval_millis = 100", FAST);
}

fn spawn(gw: &Gateway) -> Child {
    Command::new(env!("CARGO_BIN_EXE_coconnect"))
        .arg("serve")
        .arg("--config")
        .arg(&gw.files.config)
        .env("RUST_LOG", "error")
        .env_remove("COCONNECT_FAULT_INJECTION")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn coconnect serve")
}

async fn wait_ready(gw: &Gateway) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if tokio::net::TcpStream::connect(gw.files.api_addr).await.is_ok()
            && tokio::net::TcpStream::connect(gw.files.soap_addr).await.is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "gateway did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A small deterministic generator for the kill moments (seed printed for reruns).
struct Moments(u64);

impl Moments {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
            | 1;
        eprintln!("kill moments seed {seed}");
        Moments(seed)
    }
    fn next_millis(&mut self, low: u64, high: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        low + self.0 % (high - low)
    }
}

/// Whether the gateway at `api` (which may be down between kills) reports a failure of its
/// first back-end subscriber.
async fn subscriber_failed(api: std::net::SocketAddr, token: &str) -> bool {
    let req = hyper::Request::get(format!("http://{api}/api/v1/backend/subscribers"))
        .header("Authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::new()));
    let Ok(req) = req else { return false };
    let Ok(resp) = client().request(req).await else { return false };
    let Ok(body) = http_body_util::BodyExt::collect(resp.into_body()).await else { return false };
    serde_json::from_slice::<serde_json::Value>(&body.to_bytes())
        .ok()
        .and_then(|v| v["subscribers"][0]["failures"].as_i64())
        .is_some_and(|f| f >= 1)
}

async fn submit_all(kr: &Gateway, prefix: &str) {
    for n in 0..COS {
        kr.submit("ID", &co_with_reference(&format!("{prefix}-{n:05}"))).await;
    }
}

async fn wait_delivered(kr: &Gateway, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (status, list) = kr.api("GET", "/api/v1/outbox?state=delivered", "").await;
        let n = list.as_array().map(Vec::len).unwrap_or(0);
        if status == 200 && n == count {
            return;
        }
        let (_, pending) = kr.api("GET", "/api/v1/outbox?state=pending", "").await;
        assert!(
            Instant::now() < deadline,
            "only {n} of {count} delivered; pending: {}",
            pending.as_array().map(Vec::len).unwrap_or(0)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn kill_repeatedly(gw: &Gateway, mut child: Child, moments: &mut Moments) -> Child {
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(moments.next_millis(150, 900))).await;
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        child = spawn(gw);
        wait_ready(gw).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_killed_ten_times_under_five_hundred_cos_delivers_each_exactly_once() {
    let started = Instant::now();
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    make_fast(&p.kr);
    p.id.start().await;
    let child = spawn(&p.kr);
    wait_ready(&p.kr).await;
    submit_all(&p.kr, "KILLKR").await;
    let mut moments = Moments::new();
    let mut child = kill_repeatedly(&p.kr, child, &mut moments).await;
    wait_delivered(&p.kr, COS, Duration::from_secs(240)).await;
    let (_, acked) = p.kr.api("GET", "/api/v1/outbox?state=delivered", "").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(acked.as_array().map(Vec::len), Some(COS));
    assert_eq!(
        coconnect::store::certificates::count(p.id.store()).await.expect("count"),
        COS as i64,
        "the receiver holds every CO exactly once"
    );
    eprintln!("sender kill test: {COS} COs, {KILLS} SIGKILLs, {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_killed_ten_times_under_five_hundred_cos_with_its_broker_down_stores_and_publishes_each() {
    receiver_killed_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_killed_ten_times_under_five_hundred_cos_with_its_broker_down_stores_and_publishes_each_postgres() {
    if coconnect::store::testdb::postgres_or_skip(
        "receiver_killed_ten_times_under_five_hundred_cos_with_its_broker_down_stores_and_publishes_each_postgres",
        true,
    )
    .is_none()
    {
        return;
    }
    receiver_killed_on(Db::Postgres).await;
}

/// The importing gateway is SIGKILLed ten times while 500 COs arrive, and the broker its
/// back-end subscriber publishes to is down at first (until the subscriber has failed on it),
/// goes away and comes back (a loopback proxy cut) three times meanwhile, and once more after: every CO is stored once, and every `document.received` event reaches the
/// broker, in order, with repeats only as at-least-once allows (counted and printed).
async fn receiver_killed_on(db: Db) {
    use crate::backend::{BrokerQueue, Proxy};
    let started = Instant::now();
    let mut p = pair_stopped("sign-encrypt", db).await;
    make_fast(&p.kr);
    make_fast(&p.id);
    let queue = BrokerQueue::new("kill").await;
    let proxy = Proxy::start().await;
    // Short backend lease and timeout: a restarted process takes a killed one's subscriber
    // over within seconds.
    p.id.configure(
        "\n[backend]\npoll_interval_millis = 50\nretry_initial_seconds = 1\nretry_max_seconds = 1\nlease_seconds = 4\n",
    );
    p.id.configure(&queue.subscriber("broker", &proxy.url(), "batch = 50\ntimeout_seconds = 2\n"));
    p.kr.start().await;
    let child = spawn(&p.id);
    wait_ready(&p.id).await;
    // The broker is down from the start, until the subscriber has found it so (it has events
    // to publish once the first COs arrive): one outage that is felt whatever the timing.
    proxy.down();
    let watched = (p.id.files.api_addr, p.id.files.api_token.clone());
    submit_all(&p.kr, "KILLID").await;
    let mut moments = Moments::new();
    let outages: Vec<(u64, u64)> =
        (0..3).map(|_| (moments.next_millis(300, 1500), moments.next_millis(500, 2500))).collect();
    let outage = tokio::spawn(async move {
        let deadline = Instant::now() + PATIENCE;
        while !subscriber_failed(watched.0, &watched.1).await {
            assert!(Instant::now() < deadline, "the subscriber never met the broker outage");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        proxy.up();
        for (before, during) in outages {
            tokio::time::sleep(Duration::from_millis(before)).await;
            proxy.down();
            tokio::time::sleep(Duration::from_millis(during)).await;
            proxy.up();
        }
        proxy
    });
    let mut child = kill_repeatedly(&p.id, child, &mut moments).await;
    let proxy = outage.await.expect("outages");
    // One more while the last process catches up: it keeps retrying a broker that is gone.
    proxy.down();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    proxy.up();
    let (cut, refused) =
        (proxy.cut.load(std::sync::atomic::Ordering::SeqCst), proxy.refused.load(std::sync::atomic::Ordering::SeqCst));
    assert!(refused > 0, "the outages were felt: connections refused");
    wait_delivered(&p.kr, COS, Duration::from_secs(240)).await;

    // The last process runs on until its subscriber has published everything.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (_, subs) = p.id.api("GET", "/api/v1/backend/subscribers", "").await;
        let (_, page) = p.id.api("GET", "/api/v1/events?kind=document.received&limit=1000", "").await;
        let received = page["events"].as_array().map(Vec::len).unwrap_or(0);
        if received == COS && subs["subscribers"][0]["backlog"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{received} events; subscriber {subs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, page) = p.id.api("GET", "/api/v1/events?limit=1000", "").await;
    let feed: Vec<String> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(feed.len(), COS, "one event per CO in the feed");
    child.kill().expect("kill");
    let _ = child.wait();
    p.kr.stop().await;

    let published = queue.drain().await;
    let mut seen = std::collections::HashSet::new();
    let first_of_each: Vec<String> =
        published.iter().map(|(id, _, _)| id.clone()).filter(|id| seen.insert(id.clone())).collect();
    let repeats = published.len() - first_of_each.len();
    assert_eq!(first_of_each, feed, "every event published, none missing, in order");
    queue.delete().await;
    let id_store = coconnect::store::Store::connect(&p.id.files.database_url).await.expect("receiver store");
    assert_eq!(
        coconnect::store::certificates::count(&id_store).await.expect("count"),
        COS as i64,
        "every CO stored exactly once"
    );
    eprintln!(
        "receiver kill test ({db:?}): {COS} COs, {KILLS} SIGKILLs, 5 broker outages ({cut} connections cut, {refused} refused), {} messages published for {COS} events ({repeats} repeats), {:.1} s",
        published.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_share_a_thousand_cos_each_delivered_once() {
    if coconnect::store::testdb::postgres_or_skip(
        "two_instances_on_one_postgresql_share_a_thousand_cos_each_delivered_once",
        true,
    )
    .is_none()
    {
        return;
    }
    let mut p = pair_stopped("sign-encrypt", Db::Postgres).await;
    // A second KR instance: same configuration and database, its own listeners.
    let second_config = p.dir.path().join("KR-2.toml");
    let (soap2, api2) = (
        coconnect::config::dev_pair::free_addr().expect("port"),
        coconnect::config::dev_pair::free_addr().expect("port"),
    );
    let text = std::fs::read_to_string(&p.kr.files.config).expect("config");
    let text = text
        .replace(&format!("soap = \"{}\"", p.kr.files.soap_addr), &format!("soap = \"{soap2}\""))
        .replace(&format!("api = \"{}\"", p.kr.files.api_addr), &format!("api = \"{api2}\""));
    std::fs::write(&second_config, text).expect("write");
    // It holds the pair's secrets inline: the gateway refuses it readable by group or others.
    std::fs::set_permissions(&second_config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let mut files2 = p.kr.files.clone();
    files2.config = second_config;
    files2.soap_addr = soap2;
    files2.api_addr = api2;
    let mut kr2 = Gateway { files: files2, app: None };

    p.id.start().await;
    // Submit before the instances start delivering, so both find a full outbox.
    p.kr.start_with(coconnect::clock::system(), false).await;
    for n in 0..1000 {
        p.kr.submit("ID", &co_with_reference(&format!("TWO-{n:05}"))).await;
    }
    p.kr.stop().await;
    let started = Instant::now();
    p.kr.start().await;
    kr2.start().await;
    wait_delivered(&p.kr, 1000, Duration::from_secs(300)).await;
    let elapsed = started.elapsed();
    let by_instance = coconnect::store::outbox::attempts_by_instance(p.kr.store()).await.expect("attempts");
    let mut per_process: std::collections::BTreeMap<String, i64> = Default::default();
    for (instance, n) in &by_instance {
        let process = instance.rsplit_once('-').map(|(p, _)| p.to_owned()).unwrap_or_default();
        *per_process.entry(process).or_default() += n;
    }
    assert_eq!(per_process.len(), 2, "both instances worked: {by_instance:?}");
    assert!(per_process.values().all(|n| *n > 0));
    assert_eq!(per_process.values().sum::<i64>(), 1000, "each CO sent once: {by_instance:?}");
    assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), 1000);
    eprintln!(
        "two instances on PostgreSQL: 1000 COs in {:.1} s ({:.0}/s), attempts {per_process:?}",
        elapsed.as_secs_f64(),
        1000.0 / elapsed.as_secs_f64()
    );
    kr2.stop().await;
}
