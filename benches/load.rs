//! The load generator: drives real `coconnect serve` processes over loopback and prints
//! throughput, latency percentiles, each gateway's CPU use and peak RSS, beside a same-run
//! bound — the WS-Security work alone, through our own `wssec` layer, on all cores — and the
//! ratio of the whole pipeline to that bound. Absolute times on a shared machine are noise;
//! the ratio is the figure. Also the CPU each process spent a CO (the gateways and, on this
//! machine, the PostgreSQL server) against the bound's own CPU a CO, and the WS-Security
//! work's share of it: an optimisation that saves CPU shows there even when the rate is lost
//! in the machine's noise. Asserts that nothing was lost or stored twice; nothing about speed.
//!
//!     cargo bench --bench load                                 # both modes, SQLite (+ PostgreSQL with DATABASE_URL)
//!     cargo bench --bench load -- receive --db sqlite --count 2000 --clients 8
//!     DATABASE_URL=postgres://... cargo bench --bench load -- e2e --db postgres --count 3000 --instances 2 --workers 16
//!     cargo bench --bench load -- e2e --tls          # the gateways over mutual TLS
//!     cargo bench --bench load -- e2e --rate 20      # the latency part at 20 COs/s, not half the rate reached
//!     cargo bench --bench load -- e2e --db postgres --count 8 --rate 0.08   # each CO after 12.5 s of quiet
//!     cargo bench --bench load -- e2e --held 10000   # behind 10,000 older messages to a paused partner
//!     COCONNECT_BENCH_ID_UNDER="valgrind --tool=callgrind --callgrind-out-file=/tmp/id.%p" \
//!         cargo bench --bench load -- receive --db sqlite --count 100   # ID's instructions, to compare builds
//!
//! `receive`: N unique COs, signed and encrypted beforehand as KR would, posted to ID's SOAP
//! endpoint by `--clients` keep-alive connections as fast as they are answered, then the same
//! number again open-loop at half the rate reached (latency measured from each message's
//! scheduled time, so a stall is not hidden). `e2e`: KR's outbox holds a backlog of N COs (a
//! partner back after an outage, framework 4.3.3) and KR's workers deliver it to ID (sign +
//! encrypt, send, decrypt + verify, validate, store, signed ack, ack verified and stored);
//! then COs are submitted through KR's domestic API open-loop at half that rate and each one's
//! latency is submission to stored acknowledgement, with the stages of that time read from the
//! timestamps both stores keep (attempt's start, ID's receipt, recorded outcome).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use coconnect::config::dev_pair::{free_addr, write_pair, GatewayFiles, PairSpec};
use coconnect::dev_pki::SigningKeyKind;
use coconnect::message::{MessageHeader, Operation};
use coconnect::soap::messages::request_xml;
use coconnect::store::Store;
use coconnect::wssec::inbound::{process, InboundPolicy};
use coconnect::wssec::material::{Certificate, KeyPair};
use coconnect::wssec::outbound::{secure, OutboundMessage};
use coconnect::wssec::profile::SignatureAlgorithm;
use coconnect::wssec::{Profile, SoapVersion};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sqlx::Row;

/// The gateway's allocator (src/main.rs), so that the WS-Security bound measured here in-process
/// runs on the same `malloc` as the gateways it is compared with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CO: &str = include_str!("../examples/co.xml");
const CORES: usize = 2;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

#[derive(Debug, Clone)]
struct Options {
    modes: Vec<String>,
    dbs: Vec<String>,
    count: usize,
    clients: usize,
    instances: usize,
    /// `[delivery] workers` of KR (its default when not given).
    workers: Option<usize>,
    /// Mutual TLS between the gateways (the e2e mode).
    tls: bool,
    /// The signing keys (`--ecdsa`: EC P-256 for both gateways, and the bound); encryption
    /// stays RSA-OAEP.
    signing: SigningKeyKind,
    /// `--rate N`: the open-loop part at N COs/s instead of half the rate reached (the
    /// latency at a light load shows the floor the path itself sets).
    rate: Option<f64>,
    /// `--held N` (e2e): N messages to another partner that is paused, older than the
    /// backlog: what no claim may take, and every claim must pass by.
    held: usize,
}

impl Options {
    /// What the figures' lines say of the signatures.
    fn signatures(&self) -> &'static str {
        match self.signing {
            SigningKeyKind::Rsa2048 => "",
            SigningKeyKind::EcP256 => " (ECDSA P-256)",
        }
    }

    /// The open-loop part's rate, and how its line names it, after `reached` COs/s.
    fn open_loop(&self, reached: f64) -> (f64, &'static str) {
        match self.rate {
            Some(rate) => (rate, "--rate"),
            None => ((reached / 2.0).max(1.0), "half"),
        }
    }
}

/// A rate as the lines print it: whole COs a second, or as given below one (`--rate 0.08`).
fn per_second(rate: f64) -> String {
    if rate >= 1.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate}")
    }
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut o = Options {
        modes: vec![],
        dbs: vec![],
        count: 2000,
        clients: 8,
        instances: 1,
        workers: None,
        tls: false,
        signing: SigningKeyKind::Rsa2048,
        rate: None,
        held: 0,
    };
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).cloned().unwrap_or_else(|| panic!("{} needs a value", args[i]));
        match args[i].as_str() {
            "receive" | "e2e" => o.modes.push(args[i].clone()),
            "--db" => {
                o.dbs.push(value());
                i += 1;
            }
            "--count" => {
                o.count = value().parse().expect("--count N");
                i += 1;
            }
            "--clients" => {
                o.clients = value().parse().expect("--clients N");
                i += 1;
            }
            "--tls" => o.tls = true,
            "--ecdsa" => o.signing = SigningKeyKind::EcP256,
            "--rate" => {
                let rate: f64 = value().parse().expect("--rate N (COs a second)");
                assert!(rate >= 0.01, "--rate: at least one CO every 100 seconds");
                o.rate = Some(rate);
                i += 1;
            }
            "--workers" => {
                o.workers = Some(value().parse().expect("--workers N"));
                i += 1;
            }
            "--instances" => {
                o.instances = value().parse().expect("--instances 1|2");
                i += 1;
            }
            "--held" => {
                o.held = value().parse().expect("--held N");
                i += 1;
            }
            other => panic!(
                "unknown argument {other:?} (receive|e2e, --db sqlite|postgres, --count, --clients, --instances, --workers, --tls, --ecdsa, --rate, --held)"
            ),
        }
        i += 1;
    }
    if o.modes.is_empty() {
        o.modes = vec!["receive".into(), "e2e".into()];
    }
    if o.dbs.is_empty() {
        o.dbs.push("sqlite".into());
        if std::env::var("DATABASE_URL").is_ok() {
            o.dbs.push("postgres".into());
        }
    }
    o
}

// ---- processes ------------------------------------------------------------------------------

/// The command that runs the gateway `label`: `coconnect` itself, or under the command in
/// `COCONNECT_BENCH_ID_UNDER` for ID, `COCONNECT_BENCH_KR_UNDER` for KR's first instance
/// (split at spaces), such as `valgrind --tool=callgrind --callgrind-out-file=/tmp/id.%p`.
/// Instruction counts, unlike times, repeat from run to run, so two builds can be compared
/// on a machine whose speed moves.
fn command_for(label: &str) -> Command {
    let coconnect = env!("CARGO_BIN_EXE_coconnect");
    let under = std::env::var(format!("COCONNECT_BENCH_{label}_UNDER")).ok().filter(|_| matches!(label, "ID" | "KR"));
    let mut words = under.iter().flat_map(|u| u.split_whitespace());
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(coconnect);
            command
        }
        None => Command::new(coconnect),
    }
}

/// A running `coconnect serve`.
struct Gateway {
    child: Child,
    label: String,
}

impl Gateway {
    fn start(label: &str, config: &Path, log: &Path) -> Gateway {
        let log = std::fs::File::create(log).expect("gateway log file");
        let child = command_for(label)
            .args(["serve", "--config"])
            .arg(config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("coconnect serve");
        Gateway { child, label: label.to_owned() }
    }

    /// User + system CPU seconds used so far (from /proc).
    fn cpu_seconds(&self) -> f64 {
        proc_stat(Path::new(&format!("/proc/{}", self.child.id()))).map_or(0.0, |(_, ticks)| cpu_seconds(&ticks, 2))
    }

    /// Context switches of all its threads so far, voluntary and not (from /proc; those of
    /// threads that ended are not counted: the XML security threads live as long as the process).
    fn context_switches(&self) -> u64 {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).into_iter().flatten().flatten();
        tasks
            .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
            .flat_map(|status| {
                status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Peak resident set size so far, in MB (VmHWM).
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killed", self.label);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    /// A panicking run leaves no gateway behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The command name of the process at `dir` (`/proc/<pid>`) and the fields of its `stat` that
/// follow the name (index 0 is field 3 of stat(5), the state); `None` if it is gone.
fn proc_stat(dir: &Path) -> Option<(String, Vec<f64>)> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(').map_or("", |(_, n)| n).to_owned();
    Some((name, rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect()))
}

/// CPU seconds in the `count` clock-tick fields (of 1/100 s) from utime (field 14 of
/// stat(5)) on, in [`proc_stat`]'s fields: 2 for the process itself (utime, stime), 4 with
/// the children it reaped (cutime, cstime).
fn cpu_seconds(fields: &[f64], count: usize) -> f64 {
    fields.get(11..11 + count).map_or(0.0, |f| f.iter().sum::<f64>()) / 100.0
}

/// CPU seconds used so far by the PostgreSQL server on this machine: every process named
/// `postgres`, with the children it reaped (backends that ended). `None` when there is none
/// here (SQLite, or a server on another host). It counts the server's other work too.
fn postgres_cpu_seconds() -> Option<f64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        if let Some((_, fields)) = proc_stat(&entry.path()).filter(|(name, _)| name == "postgres") {
            *total.get_or_insert(0.0) += cpu_seconds(&fields, 4);
        }
    }
    total
}

/// The PostgreSQL server's share of one core, from its CPU seconds ([`postgres_cpu_since`])
/// over `wall` seconds, as a line part; empty when there is no reading.
fn postgres_line(cpu: Option<f64>, wall: f64) -> String {
    cpu.map_or(String::new(), |cpu| format!("; PostgreSQL server CPU {:.0} % of one core", 100.0 * cpu / wall))
}

async fn wait_ready(client: &HttpClient, api: std::net::SocketAddr) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let req = hyper::Request::get(format!("http://{api}/readyz")).body(Full::new(Bytes::new())).unwrap();
        if let Ok(resp) = client.request(req).await {
            if resp.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < until, "gateway at {api} not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- messages and the WS-Security bound ----------------------------------------------------

fn key_pair(dir: &Path, party: &str, purpose: &str) -> KeyPair {
    let f = coconnect::dev_pki::party_files(&dir.join("pki"), party);
    let (k, c) = match purpose {
        "signing" => (f.signing_key, f.signing_cert),
        _ => (f.encryption_key, f.encryption_cert),
    };
    KeyPair::from_pem(std::fs::read(k).unwrap(), Certificate::from_pem(&std::fs::read(c).unwrap()).unwrap()).unwrap()
}

fn co_xml(reference: &str) -> String {
    let co = CO.replace("KRIDCEPA-2025-PUS-000417", reference);
    coconnect::payload::to_xml(&coconnect::payload::parse_co(&co).unwrap()).unwrap()
}

/// A request body KR sends ID: a CO with its own reference and message ID.
fn request_body(reference: &str) -> String {
    request_xml(
        Operation::SendCo,
        &MessageHeader::new("KR", "ID", uuid::Uuid::new_v4(), Utc::now()),
        &co_xml(reference),
    )
}

/// About the size and shape of ID's acknowledgement body (what its signature costs).
fn ack_body() -> String {
    format!(
        "<AcknowledgementMessage xmlns=\"urn:wco:datamodel:WCO:ECO:1\"><MessageHeader><MessageID>{}</MessageID>\
         <SenderPartyID>ID</SenderPartyID><RecipientPartyID>KR</RecipientPartyID><SentDateTime>{}</SentDateTime>\
         </MessageHeader><ReceivedMessageID>{}</ReceivedMessageID><ReceivedMessageDigest>\
         W6ph5Mm5Pz8GgiULbPgzG37mj9g=W6ph5Mm5Pz8GgiULbPgzG37mj9g</ReceivedMessageDigest>\
         <Status>Accepted</Status></AcknowledgementMessage>",
        uuid::Uuid::new_v4(),
        Utc::now().to_rfc3339(),
        uuid::Uuid::new_v4()
    )
}

struct Keys {
    kr_signing: KeyPair,
    id_signing: KeyPair,
    id_encryption: KeyPair,
    /// The signing keys are EC: both sides sign with ECDSA-SHA256 (as `PairSpec` configures).
    ecdsa: bool,
}

impl Keys {
    fn load(dir: &Path) -> Keys {
        let kr_signing = key_pair(dir, "KR", "signing");
        Keys {
            ecdsa: kr_signing.certificate.is_ec,
            kr_signing,
            id_signing: key_pair(dir, "ID", "signing"),
            id_encryption: key_pair(dir, "ID", "encryption"),
        }
    }
}

/// The strict profile, with ECDSA-SHA256 signatures for EC keys (as the gateways are configured).
fn profile(ecdsa: bool, encrypted: bool) -> Profile {
    let mut p = Profile::strict(encrypted);
    if ecdsa {
        p.outbound.signature.method = SignatureAlgorithm::EcdsaSha256;
        p.inbound.signature.methods = vec![SignatureAlgorithm::EcdsaSha256];
    }
    p
}

/// KR's side of a request: signed and encrypted to ID under the strict profile.
fn secure_request(keys: &Keys, body: &str) -> Vec<u8> {
    secure(&OutboundMessage {
        version: SoapVersion::V11,
        body_xml: body,
        signer: &keys.kr_signing,
        encrypt_for: Some(&keys.id_encryption.certificate),
        profile: &profile(keys.ecdsa, true).outbound,
        addressing: None,
        now: Utc::now(),
        ttl: chrono::Duration::minutes(30),
    })
    .unwrap()
}

fn sign_ack(keys: &Keys) -> Vec<u8> {
    secure(&OutboundMessage {
        version: SoapVersion::V11,
        body_xml: &ack_body(),
        signer: &keys.id_signing,
        encrypt_for: None,
        profile: &profile(keys.ecdsa, false).outbound,
        addressing: None,
        now: Utc::now(),
        ttl: chrono::Duration::minutes(30),
    })
    .unwrap()
}

fn check(keys: &Keys, wire: &[u8], decryption: Option<&KeyPair>, signer: &KeyPair, encrypted: bool, fresh: bool) {
    let trust = coconnect::wssec::trust::PartnerTrust::new(vec![signer.certificate.clone()], &[], None).unwrap();
    process(
        wire,
        &InboundPolicy {
            limits: Default::default(),
            decryption,
            profile: profile(keys.ecdsa, encrypted).inbound,
            trust: &trust,
            now: Utc::now(),
            clock_skew: chrono::Duration::seconds(60),
            max_ttl: chrono::Duration::hours(1),
            require_fresh_timestamp: fresh,
            replay_retention: chrono::Duration::days(7),
        },
    )
    .unwrap();
}

/// What [`on_all_cores`] measured: items per second, and the CPU its threads spent an item.
#[derive(Clone, Copy)]
struct Bound {
    per_second: f64,
    cpu_ms: f64,
}

/// User + system CPU seconds the calling thread used so far (from /proc, in 1/100 s).
fn thread_cpu_seconds() -> f64 {
    proc_stat(Path::new("/proc/thread-self")).map_or(0.0, |(_, fields)| cpu_seconds(&fields, 2))
}

/// Runs `work(i)` for i in 0..n on `CORES` threads. The CPU is the threads' own (loading the
/// keys not counted), so that, unlike the rate, it does not grow when the machine is busy.
fn on_all_cores(dir: &Path, n: usize, work: impl Fn(&Keys, usize) + Sync) -> Bound {
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    let cpu: f64 = std::thread::scope(|s| {
        let threads: Vec<_> = (0..CORES)
            .map(|_| {
                s.spawn(|| {
                    let keys = Keys::load(dir);
                    let start = thread_cpu_seconds();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        work(&keys, i);
                    }
                    thread_cpu_seconds() - start
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("bound thread")).sum()
    });
    Bound { per_second: n as f64 / t.elapsed().as_secs_f64(), cpu_ms: 1000.0 * cpu / n.max(1) as f64 }
}

/// `n` wires for ID, built on all cores.
fn build_wires(dir: &Path, prefix: &str, n: usize) -> Vec<Vec<u8>> {
    let slots: Vec<std::sync::Mutex<Vec<u8>>> = (0..n).map(|_| Default::default()).collect();
    on_all_cores(dir, n, |keys, i| {
        *slots[i].lock().unwrap() = secure_request(keys, &request_body(&format!("{prefix}-{i:06}")));
    });
    slots.into_iter().map(|m| m.into_inner().unwrap()).collect()
}

/// The receiving side's WS-Security work alone for `wires`: decrypt + verify + sign an ack.
fn receive_bound(dir: &Path, wires: &[Vec<u8>]) -> Bound {
    on_all_cores(dir, wires.len(), |keys, i| {
        check(keys, &wires[i], Some(&keys.id_encryption), &keys.kr_signing, true, true);
        sign_ack(keys);
    })
}

/// Both sides' WS-Security work alone per CO: sign + encrypt, decrypt + verify, sign the ack,
/// verify the ack.
fn e2e_bound(dir: &Path, n: usize) -> Bound {
    let bodies: Vec<String> = (0..n).map(|i| request_body(&format!("BOUND-{i:06}"))).collect();
    on_all_cores(dir, n, |keys, i| {
        let wire = secure_request(keys, &bodies[i]);
        check(keys, &wire, Some(&keys.id_encryption), &keys.kr_signing, true, true);
        let ack = sign_ack(keys);
        check(keys, &ack, None, &keys.id_signing, false, false);
    })
}

// ---- figures --------------------------------------------------------------------------------

struct Latencies(Vec<Duration>);

impl Latencies {
    /// From whole milliseconds (stored timestamps' differences; a negative one counts as 0).
    fn from_ms(ms: impl Iterator<Item = i64>) -> Self {
        Latencies(ms.map(|ms| Duration::from_millis(ms.max(0) as u64)).collect())
    }

    fn line(mut self) -> String {
        self.0.sort();
        format!("p50 {:.1} ms  p99 {:.1} ms  p999 {:.1} ms", self.ms(0.50), self.ms(0.99), self.ms(0.999))
    }

    fn p50_p99(mut self) -> String {
        self.0.sort();
        format!("{:.0} / {:.0} ms", self.ms(0.50), self.ms(0.99))
    }

    /// The `q` quantile of the sorted samples, in ms.
    fn ms(&self, q: f64) -> f64 {
        let i = ((self.0.len() as f64 * q).ceil() as usize).clamp(1, self.0.len()) - 1;
        self.0[i].as_secs_f64() * 1000.0
    }
}

/// A CO submitted in the open-loop part of `e2e`, with the times (ms) stored with it on KR.
struct LiveCo {
    message_id: String,
    submitted: i64,
    attempt_started: i64,
    attempt_finished: i64,
    /// Sent under its submission's lease, without a claim.
    leased_at_submission: bool,
}

/// Where the live COs' time went, from the timestamps stored with them on both sides:
/// submission to the attempt's start (read before the signature), to ID's receipt (its
/// `received_at`, once the request was read), to the recorded outcome.
fn stages(live: &[LiveCo], received: &std::collections::HashMap<String, i64>) -> String {
    let at_id = |c: &LiveCo| received.get(&c.message_id).copied().unwrap_or(c.attempt_started);
    let leased = live.iter().filter(|c| c.leased_at_submission).count();
    format!(
        "stages (p50 / p99, stored timestamps): submission to the attempt's start {}, to ID's receipt {}, to the recorded outcome {}; {leased} of {} sent under their submission's lease",
        Latencies::from_ms(live.iter().map(|c| c.attempt_started - c.submitted)).p50_p99(),
        Latencies::from_ms(live.iter().map(|c| at_id(c) - c.attempt_started)).p50_p99(),
        Latencies::from_ms(live.iter().map(|c| c.attempt_finished - at_id(c))).p50_p99(),
        live.len()
    )
}

/// Prints a progress line every second until `done` reaches `total`.
fn progress(label: String, done: Arc<AtomicUsize>, total: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let t = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let d = done.load(Ordering::Relaxed);
            eprint!("\r  {label}: {d}/{total}  {:.0}/s    ", d as f64 / t.elapsed().as_secs_f64());
            if d >= total {
                eprintln!();
                return;
            }
        }
    })
}

/// The CPU spent a CO, in ms: by each process (`parts`: name and CPU seconds over `n` COs),
/// in all, and by the WS-Security work alone (the bound's threads' own CPU a CO), with that
/// work's share of the whole. Unlike the rate, none of these counts idle time: the share is
/// what an optimisation that saves CPU moves. KR's CPU includes its start-up.
fn cpu_line(parts: &[(&str, Option<f64>)], n: usize, bound: Bound) -> String {
    let per_co = |seconds: f64| 1000.0 * seconds / n.max(1) as f64;
    let known: Vec<(&str, f64)> = parts.iter().filter_map(|(name, cpu)| cpu.map(|c| (*name, per_co(c)))).collect();
    let total: f64 = known.iter().map(|(_, ms)| ms).sum();
    let alone = bound.cpu_ms;
    format!(
        "CPU a CO: {}, {total:.2} ms in all; WS-Security alone {alone:.2} ms, {:.0} % of it",
        known.iter().map(|(name, ms)| format!("{name} {ms:.2} ms")).collect::<Vec<_>>().join(", "),
        100.0 * alone / total.max(f64::MIN_POSITIVE)
    )
}

/// `; context switches a CO: ID x` for each gateway (`parts`: name and switches over `n`
/// COs): each is a thread put to sleep or preempted, the cost of a hand-off between threads
/// (a blocking job, a statement on SQLite's connection thread) that the CPU a CO only partly
/// shows.
fn switches_line(parts: &[(&str, u64)], n: usize) -> String {
    let each: Vec<String> =
        parts.iter().map(|(name, switches)| format!("{name} {:.0}", *switches as f64 / n.max(1) as f64)).collect();
    format!("; context switches a CO: {}", each.join(", "))
}

/// The PostgreSQL server's CPU seconds since `from` (a [`postgres_cpu_seconds`] reading).
fn postgres_cpu_since(from: Option<f64>) -> Option<f64> {
    Some(postgres_cpu_seconds()? - from?)
}

/// The PostgreSQL server's WAL position in bytes (`None` on SQLite), read through a connection
/// to `url`. The WAL written a CO counts each row, index entry and TOAST chunk the stores wrote
/// for it (and whatever else the server did meanwhile): unlike the CPU a CO it hardly varies
/// from run to run, so a change to the store's work shows in it at once.
async fn wal_position(db: &str, url: &str) -> Option<i64> {
    if db != "postgres" {
        return None;
    }
    let store = Store::connect_for_inspection(url).await.ok()?;
    sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::BIGINT").fetch_one(store.pool()).await.ok()
}

/// `; WAL x KB a CO` between two [`wal_position`] readings, or nothing.
fn wal_line(from: Option<i64>, to: Option<i64>, n: usize) -> String {
    match (from, to) {
        (Some(from), Some(to)) => format!("; WAL {:.1} KB a CO", (to - from) as f64 / 1024.0 / n.max(1) as f64),
        _ => String::new(),
    }
}

fn gateway_line(g: &Gateway, cpu: f64, wall: f64) -> String {
    format!("{} CPU {:.0} % of one core, peak RSS {:.0} MB", g.label, 100.0 * cpu / wall, g.peak_rss_mb())
}

// ---- receive ------------------------------------------------------------------------------

async fn post(client: &HttpClient, url: &str, auth: &str, wire: Vec<u8>) -> Result<(), String> {
    let req = hyper::Request::post(url)
        .header("Authorization", auth)
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(Full::new(Bytes::from(wire)))
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    if status != 200 || !body.windows(8).any(|w| w == b"Accepted") {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

async fn receive(db: &str, o: &Options) {
    let dir = work_dir();
    let pair = pair(dir.path(), db, 1, None, false, o.signing).await;
    let id = &pair.files[1];
    let n = o.count;
    let t = Instant::now();
    let warm = build_wires(dir.path(), "WARM", 50);
    let closed = build_wires(dir.path(), "MAX", n);
    let open = build_wires(dir.path(), "HALF", n);
    eprintln!(
        "[{db}] receive: {} messages of {} bytes built in {:.1} s",
        2 * n + 50,
        closed[0].len(),
        t.elapsed().as_secs_f64()
    );

    let gateway = Gateway::start("ID", &id.config, &dir.path().join("id.log"));
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http();
    wait_ready(&client, id.api_addr).await;
    let url = Arc::new(format!("http://{}/soap/v1", id.soap_addr));
    let auth = Arc::new(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("KR:{}", id.inbound_password))
    ));
    for w in warm {
        if let Err(e) = post(&client, &url, &auth, w).await {
            let log = std::fs::read_to_string(dir.path().join("id.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            panic!(
                "warm-up message refused: {e}\nID's log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    // The bound, measured now (the gateway is idle) over messages like the measured ones.
    let bound = receive_bound(dir.path(), &closed[..n.min(400)]);

    // Closed loop: `clients` connections, each sends its next message once answered.
    let closed = Arc::new(closed);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let progress_line = progress(format!("[{db}] receive, {} clients", o.clients), done.clone(), n);
    let wal0 = wal_position(db, &id.database_url).await;
    let cpu0 = gateway.cpu_seconds();
    let switches0 = gateway.context_switches();
    let server0 = (db == "postgres").then(postgres_cpu_seconds).flatten();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..o.clients {
        let (client, url, auth, closed, next, done) =
            (client.clone(), url.clone(), auth.clone(), closed.clone(), next.clone(), done.clone());
        tasks.spawn(async move {
            let mut samples = Vec::new();
            while let Some(wire) = closed.get(next.fetch_add(1, Ordering::Relaxed)).cloned() {
                let s = Instant::now();
                post(&client, &url, &auth, wire).await.expect("message refused");
                samples.push(s.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            samples
        });
    }
    let mut samples = Vec::new();
    while let Some(s) = tasks.join_next().await {
        samples.extend(s.unwrap());
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = gateway.cpu_seconds() - cpu0;
    let switches = switches_line(&[("ID", gateway.context_switches() - switches0)], n);
    let server_cpu = postgres_cpu_since(server0);
    let wal = wal_line(wal0, wal_position(db, &id.database_url).await, n);
    let _ = progress_line.await;
    let rate = n as f64 / wall;
    println!(
        "[{db}] receive{}, {} clients: {rate:.0} COs/s  {}  | WS-Security alone on {CORES} cores {:.0}/s  ratio {:.0} %  | {}{}",
        o.signatures(),
        o.clients,
        Latencies(samples).line(),
        bound.per_second,
        100.0 * rate / bound.per_second,
        gateway_line(&gateway, cpu, wall),
        postgres_line(server_cpu, wall)
    );
    println!("[{db}] receive: {}{wal}{switches}", cpu_line(&[("ID", Some(cpu)), ("PostgreSQL", server_cpu)], n, bound));

    // Open loop at half that rate (or --rate): latency from each message's scheduled time.
    let (half, named) = o.open_loop(rate);
    let done = Arc::new(AtomicUsize::new(0));
    let half_label = per_second(half);
    let progress_line = progress(format!("[{db}] receive at {half_label}/s"), done.clone(), n);
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, wire) in open.into_iter().enumerate() {
        let at = t + Duration::from_secs_f64(i as f64 / half);
        tokio::time::sleep_until(at.into()).await;
        let (client, url, auth, done) = (client.clone(), url.clone(), auth.clone(), done.clone());
        tasks.spawn(async move {
            post(&client, &url, &auth, wire).await.expect("message refused");
            done.fetch_add(1, Ordering::Relaxed);
            at.elapsed()
        });
    }
    let mut samples = Vec::new();
    while let Some(s) = tasks.join_next().await {
        samples.push(s.unwrap());
    }
    let _ = progress_line.await;
    println!("[{db}] receive{} at {half_label} COs/s ({named}): {}", o.signatures(), Latencies(samples).line());
    gateway.stop();

    let store = Store::connect(&id.database_url).await.unwrap();
    let stored = coconnect::store::certificates::count(&store).await.unwrap();
    let receipts: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM inbound_messages").fetch_one(store.pool()).await.unwrap().get("n");
    let expected = (2 * n + 50) as i64;
    assert_eq!((stored, receipts), (expected, expected), "COs stored, receipts: each message exactly once");
    println!("[{db}] receive: {expected} COs sent, {stored} stored, {receipts} receipts: none lost, none twice");
    drop(store);
    pair.drop_databases().await;
}

// ---- two gateways ---------------------------------------------------------------------------

/// The gateway refuses a configuration file readable by others.
fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A temporary directory, kept (and named on stderr) with `COCONNECT_BENCH_KEEP=1`, to read the
/// gateways' logs afterwards.
struct WorkDir {
    path: PathBuf,
    _removed_on_drop: Option<tempfile::TempDir>,
}

impl WorkDir {
    fn path(&self) -> &Path {
        &self.path
    }
}

fn work_dir() -> WorkDir {
    let dir = tempfile::tempdir().unwrap();
    if std::env::var("COCONNECT_BENCH_KEEP").is_ok_and(|v| v == "1") {
        let path = dir.keep();
        eprintln!("work directory (kept): {}", path.display());
        return WorkDir { path, _removed_on_drop: None };
    }
    WorkDir { path: dir.path().to_owned(), _removed_on_drop: Some(dir) }
}

struct Pair {
    files: [GatewayFiles; 2],
    /// KR's extra instances: configuration file (same database, other ports) and API address.
    extra_kr: Vec<(PathBuf, std::net::SocketAddr)>,
}

impl Pair {
    /// Drops the pair's PostgreSQL databases, unless `COCONNECT_BENCH_KEEP=1` keeps them with
    /// the work directory (a run that fails leaves them to the next run's clean-up, see
    /// `store::testdb`).
    async fn drop_databases(&self) {
        let Ok(base) = std::env::var("DATABASE_URL") else { return };
        if std::env::var("COCONNECT_BENCH_KEEP").is_ok_and(|v| v == "1") {
            return;
        }
        for url in self.files.iter().map(|f| &f.database_url).filter(|u| u.starts_with("postgres")) {
            if let Err(e) = coconnect::store::testdb::drop_postgres(&base, url).await {
                eprintln!("database {url} not dropped: {e}");
            }
        }
    }
}

async fn pair(
    dir: &Path,
    db: &str,
    kr_instances: usize,
    kr_workers: Option<usize>,
    tls: bool,
    signing: SigningKeyKind,
) -> Pair {
    let urls = match db {
        "sqlite" => {
            [format!("sqlite:{}", dir.join("kr.db").display()), format!("sqlite:{}", dir.join("id.db").display())]
        }
        "postgres" => {
            let base = std::env::var("DATABASE_URL").expect("--db postgres needs DATABASE_URL");
            [
                coconnect::store::testdb::fresh_postgres(&base).await.unwrap(),
                coconnect::store::testdb::fresh_postgres(&base).await.unwrap(),
            ]
        }
        other => panic!("--db {other}: sqlite or postgres"),
    };
    assert!(kr_instances == 1 || db == "postgres", "several instances need PostgreSQL");
    let addrs = [(free_addr().unwrap(), free_addr().unwrap()), (free_addr().unwrap(), free_addr().unwrap())];
    let files = write_pair(&PairSpec {
        dir,
        parties: ["KR", "ID"],
        addrs,
        database_urls: urls,
        profile: "sign-encrypt",
        tls,
        signing,
    })
    .unwrap();
    let mut kr_config = std::fs::read_to_string(&files[0].config).unwrap();
    if let Some(n) = kr_workers {
        kr_config = kr_config.replacen("[delivery]\n", &format!("[delivery]\nworkers = {n}\n"), 1);
        std::fs::write(&files[0].config, &kr_config).unwrap();
        set_private(&files[0].config);
    }
    let extra_kr = (1..kr_instances)
        .map(|i| {
            let path = dir.join(format!("kr-{i}.toml"));
            let api = free_addr().unwrap();
            let text = kr_config
                .replace(&files[0].soap_addr.to_string(), &free_addr().unwrap().to_string())
                .replace(&files[0].api_addr.to_string(), &api.to_string());
            std::fs::write(&path, text).unwrap();
            set_private(&path);
            (path, api)
        })
        .collect();
    Pair { files, extra_kr }
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query(sql).fetch_one(store.pool()).await.unwrap().get::<i64, _>(0)
}

/// The paused partner of `--held`.
const HELD_FOR: &str = "XX";

async fn e2e(db: &str, o: &Options) {
    let dir = work_dir();
    let pair = pair(dir.path(), db, o.instances, o.workers, o.tls, o.signing).await;
    let [kr, id] = &pair.files;
    let n = o.count;

    // KR's backlog, written before KR starts (SQLite admits one process), after the messages
    // held for a paused partner (`--held`).
    let t = Instant::now();
    {
        let store = Store::connect(&kr.database_url).await.unwrap();
        if o.held > 0 {
            coconnect::store::partners::pause(&store, HELD_FOR, "bench", Utc::now()).await.unwrap();
        }
        for (i, partner) in (0..o.held).map(|i| (i, HELD_FOR)).chain((0..n).map(|i| (i, "ID"))) {
            let reference = format!("BACKLOG-{partner}-{i:06}");
            let co_xml = co_xml(&reference);
            let message_id = uuid::Uuid::new_v4();
            let body =
                request_xml(Operation::SendCo, &MessageHeader::new("KR", partner, message_id, Utc::now()), &co_xml);
            let new = coconnect::store::certificates::NewCertificate {
                issuer: "KR",
                reference: &reference,
                direction: coconnect::lifecycle::Direction::Outbound,
                partner,
                kind: coconnect::payload::DocumentKind::Co,
                replaces: None,
                reference_code: None,
                verification_flag: None,
                content_sha256: "bench",
                co_xml: &co_xml,
            };
            coconnect::store::outbox::submit(&store, &new, "SendCO", &message_id.to_string(), &body, Utc::now())
                .await
                .unwrap();
        }
    }
    eprintln!("[{db}] e2e: backlog of {n} COs written in {:.1} s", t.elapsed().as_secs_f64());
    if o.held > 0 {
        println!("[{db}] e2e: {} older messages held for {HELD_FOR}, a paused partner", o.held);
    }
    let bound = e2e_bound(dir.path(), n.min(300));

    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(256).build_http();
    let id_gw = Gateway::start("ID", &id.config, &dir.path().join("id.log"));
    wait_ready(&client, id.api_addr).await;
    let wal0 = wal_position(db, &kr.database_url).await;
    let (id_cpu0, t) = (id_gw.cpu_seconds(), Instant::now());
    let id_switches0 = id_gw.context_switches();
    let server0 = (db == "postgres").then(postgres_cpu_seconds).flatten();
    let mut krs = vec![Gateway::start("KR", &kr.config, &dir.path().join("kr.log"))];
    for (i, (c, _)) in pair.extra_kr.iter().enumerate() {
        krs.push(Gateway::start(&format!("KR#{}", i + 2), c, &dir.path().join(format!("kr-{i}.log"))));
    }
    wait_ready(&client, kr.api_addr).await;
    for (_, api) in &pair.extra_kr {
        wait_ready(&client, *api).await;
    }
    let kr_store = Store::connect_for_inspection(&kr.database_url).await.unwrap();
    let delivered = Arc::new(AtomicUsize::new(0));
    let progress_line = progress(format!("[{db}] e2e backlog, {} KR instance(s)", krs.len()), delivered.clone(), n);
    loop {
        let d = count(&kr_store, "SELECT COUNT(*) FROM outbox WHERE state = 'delivered'").await as usize;
        delivered.store(d, Ordering::Relaxed);
        if d >= n {
            break;
        }
        let pending_or_failed =
            count(&kr_store, "SELECT COUNT(*) FROM outbox WHERE state <> 'delivered' AND state <> 'pending'").await;
        assert_eq!(pending_or_failed, 0, "a message ended other than delivered");
        assert!(t.elapsed() < Duration::from_secs(900), "only {d} of {n} delivered in 15 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = progress_line.await;
    let wall_poll = t.elapsed().as_secs_f64();
    // The rate between the first attempt and the last acknowledgement stored, from KR's store
    // (start-up and the polling interval of this loop are not counted).
    let first = count(&kr_store, "SELECT MIN(started_at) FROM delivery_attempts").await;
    let last = count(&kr_store, "SELECT MAX(updated_at) FROM outbox WHERE state = 'delivered'").await;
    let wall = ((last - first) as f64 / 1000.0).max(0.001);
    let rate = n as f64 / wall;
    let id_cpu = id_gw.cpu_seconds() - id_cpu0;
    // KR started after these readings: its count, like its CPU, includes its start-up.
    let kr_switches: u64 = krs.iter().map(Gateway::context_switches).sum();
    let switches = switches_line(&[("KR", kr_switches), ("ID", id_gw.context_switches() - id_switches0)], n);
    let kr_cpus: Vec<f64> = krs.iter().map(Gateway::cpu_seconds).collect();
    let kr_cpu: f64 = kr_cpus.iter().sum();
    let server_cpu = postgres_cpu_since(server0);
    let wal = wal_line(wal0, wal_position(db, &kr.database_url).await, n);
    let kr_lines: Vec<String> = krs.iter().zip(&kr_cpus).map(|(g, cpu)| gateway_line(g, *cpu, wall_poll)).collect();
    println!(
        "[{db}] e2e{}{} backlog of {n} COs, {} KR instance(s): {rate:.0} COs/s sustained  | WS-Security alone on {CORES} cores {:.0}/s  ratio {:.0} %  | {}; {}{}",
        if o.tls { " (mutual TLS)" } else { "" },
        o.signatures(),
        krs.len(),
        bound.per_second,
        100.0 * rate / bound.per_second,
        kr_lines.join("; "),
        gateway_line(&id_gw, id_cpu, wall_poll),
        postgres_line(server_cpu, wall_poll)
    );
    println!(
        "[{db}] e2e backlog: {}{wal}{switches}",
        cpu_line(&[("KR", Some(kr_cpu)), ("ID", Some(id_cpu)), ("PostgreSQL", server_cpu)], n, bound)
    );

    // Open loop through KR's domestic API at half that rate (or --rate) for about ten seconds.
    let (half, named) = o.open_loop(rate);
    let half_label = per_second(half);
    let m = ((half * 10.0) as usize).max(50).min(n);
    let submitted = Arc::new(AtomicUsize::new(0));
    let progress_line = progress(format!("[{db}] e2e at {half_label}/s"), submitted.clone(), m);
    let api = Arc::new(format!("http://{}/api/v1/certificates?partner=ID", kr.api_addr));
    let bearer = Arc::new(format!("Bearer {}", kr.api_token));
    let since = chrono::Utc::now().timestamp_millis();
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..m {
        // One interval after the backlog, not at once: at a low --rate each CO comes after a quiet spell.
        let at = t + Duration::from_secs_f64((i + 1) as f64 / half);
        tokio::time::sleep_until(at.into()).await;
        let (client, api, bearer, submitted) = (client.clone(), api.clone(), bearer.clone(), submitted.clone());
        let body = co_xml(&format!("LIVE-{i:06}"));
        tasks.spawn(async move {
            let req = hyper::Request::post(api.as_str())
                .header("Authorization", bearer.as_str())
                .header("Content-Type", "application/xml")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let resp = client.request(req).await.expect("KR's API");
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(status.is_success(), "submission refused: {status} {}", String::from_utf8_lossy(&body));
            submitted.fetch_add(1, Ordering::Relaxed);
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let _ = progress_line.await;
    let until = Instant::now() + Duration::from_secs(300);
    while count(&kr_store, "SELECT COUNT(*) FROM outbox WHERE state = 'delivered'").await < (n + m) as i64 {
        assert!(Instant::now() < until, "the submitted COs were not all delivered within 5 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = sqlx::query("SELECT created_at, updated_at FROM outbox WHERE created_at >= $1 AND state = 'delivered'")
        .bind(since)
        .fetch_all(kr_store.pool())
        .await
        .unwrap();
    let samples = Latencies::from_ms(rows.iter().map(|r| r.get::<i64, _>(1) - r.get::<i64, _>(0)));
    assert_eq!(samples.0.len(), m);
    println!(
        "[{db}] e2e{} at {half_label} COs/s ({named}), submission to stored acknowledgement: {}  | peak RSS {}",
        o.signatures(),
        samples.line(),
        krs.iter()
            .chain([&id_gw])
            .map(|g| format!("{} {:.0} MB", g.label, g.peak_rss_mb()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Each live CO's first attempt, for where its time went (printed once ID's store is read).
    let attempts = sqlx::query(
        "SELECT o.message_id, o.created_at, a.started_at, a.finished_at, a.instance FROM outbox o \
         JOIN delivery_attempts a ON a.message_id = o.message_id AND a.attempt = 1 \
         WHERE o.created_at >= $1 AND o.state = 'delivered'",
    )
    .bind(since)
    .fetch_all(kr_store.pool())
    .await
    .unwrap();
    let live: Vec<LiveCo> = attempts
        .iter()
        .map(|r| LiveCo {
            message_id: r.get(0),
            submitted: r.get(1),
            attempt_started: r.get(2),
            attempt_finished: r.get::<Option<i64>, _>(3).unwrap_or_default(),
            leased_at_submission: r.get::<Option<String>, _>(4).is_some_and(|i| i.ends_with("-submit")),
        })
        .collect();
    drop(kr_store);
    for g in krs {
        g.stop();
    }
    id_gw.stop();

    let id_store = Store::connect(&id.database_url).await.unwrap();
    let received: std::collections::HashMap<String, i64> =
        sqlx::query("SELECT message_id, received_at FROM inbound_messages")
            .fetch_all(id_store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    println!("[{db}] e2e at {half_label} COs/s, {}", stages(&live, &received));
    let stored = coconnect::store::certificates::count(&id_store).await.unwrap();
    let receipts = count(&id_store, "SELECT COUNT(*) FROM inbound_messages").await;
    let events = count(&id_store, "SELECT COUNT(*) FROM events WHERE kind = 'document.received'").await;
    let total = (n + m) as i64;
    assert_eq!(
        (stored, receipts, events),
        (total, total, total),
        "COs stored, receipts, events at ID: each exactly once"
    );
    println!("[{db}] e2e: {total} COs sent, {stored} stored at ID, {receipts} receipts, {events} events: none lost, none twice");
    drop(id_store);
    pair.drop_databases().await;
}

fn main() {
    // `cargo test --all-targets` runs bench targets without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("load generator: run with `cargo bench --bench load [-- receive|e2e --db sqlite|postgres ...]`");
        return;
    }
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for db in &o.dbs {
            for mode in &o.modes {
                match mode.as_str() {
                    "receive" => receive(db, &o).await,
                    _ => e2e(db, &o).await,
                }
            }
        }
    });
}
