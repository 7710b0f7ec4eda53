//! Test harness: a pair of gateways (KR exports, ID imports) on loopback port 0 equivalents,
//! with a dev PKI, generated configurations, and helpers to call their API and SOAP endpoints.

#![allow(dead_code)]

/// How long a test waits for what takes well under a second on an idle machine: long only so
/// that a loaded CI machine running every test at once does not fail it.
pub const PATIENCE: Duration = Duration::from_secs(60);

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use coconnect::app::App;
use coconnect::config::dev_pair::{free_addr, write_pair, GatewayFiles, PairSpec};
pub use coconnect::dev_pki::SigningKeyKind;
use coconnect::store::Store;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use serde_json::Value;

pub const EXAMPLE_CO: &str = include_str!("../../examples/co.xml");

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Which databases the pair uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    /// Fresh databases on the server of DATABASE_URL (test skipped without it).
    Postgres,
}

pub struct Gateway {
    pub files: GatewayFiles,
    pub app: Option<App>,
}

impl Gateway {
    pub fn app(&self) -> &App {
        self.app.as_ref().expect("gateway is running")
    }

    pub fn store(&self) -> &Store {
        &self.app().state.store
    }

    pub fn soap_url(&self) -> String {
        format!("http://{}/soap/v1", self.files.soap_addr)
    }

    /// Calls the domestic API with this gateway's token.
    pub async fn api(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.files.api_addr))
            .header("Authorization", format!("Bearer {}", self.files.api_token))
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request");
        let resp = client().request(req).await.expect("API call");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Submits a CO for the other party; returns the certificate id.
    pub async fn submit(&self, partner: &str, co: &str) -> String {
        let (status, body) = self.api("POST", &format!("/api/v1/certificates?partner={partner}"), co).await;
        assert_eq!(status, 202, "submission refused: {body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Waits until the certificate is in `state` (or fails after `PATIENCE`).
    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        self.wait_for(id, &format!("reached {state}"), |cert| cert["state"] == state).await
    }

    /// Polls `GET /api/v1/certificates/{id}` until `done` holds for it (or fails after
    /// `PATIENCE`, saying what never happened).
    pub async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, cert) = self.api("GET", &format!("/api/v1/certificates/{id}"), "").await;
            if done(&cert) {
                return cert;
            }
            assert!(Instant::now() < deadline, "certificate {id} never {what}: {cert}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    pub async fn start(&mut self) {
        let settings = coconnect::config::load(&self.files.config).expect("config");
        self.app = Some(App::start(settings).await.expect("start"));
    }

    /// Starts on the given clock; without `workers`, the test drives delivery with [`Self::worker`].
    pub async fn start_with(&mut self, clock: coconnect::clock::SharedClock, workers: bool) {
        let settings = coconnect::config::load(&self.files.config).expect("config");
        let soap = tokio::net::TcpListener::bind(self.files.soap_addr).await.expect("bind soap");
        let api = tokio::net::TcpListener::bind(self.files.api_addr).await.expect("bind api");
        self.app = Some(App::start_with(settings, soap, api, clock, workers).await.expect("start"));
    }

    pub fn worker(&self, name: &str) -> coconnect::delivery::Worker {
        self.app().worker(name)
    }

    /// Appends TOML to this gateway's configuration (takes effect at the next start).
    pub fn configure(&self, extra: &str) {
        let mut text = std::fs::read_to_string(&self.files.config).expect("config");
        text.push_str(extra);
        std::fs::write(&self.files.config, text).expect("write config");
    }

    /// Replaces text in this gateway's configuration (takes effect at the next start).
    pub fn reconfigure(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.files.config).expect("config");
        assert!(text.contains(from), "{from} not in the configuration");
        std::fs::write(&self.files.config, text.replace(from, to)).expect("write config");
    }
}

pub struct Pair {
    pub dir: tempfile::TempDir,
    pub kr: Gateway,
    pub id: Gateway,
}

pub fn postgres_url() -> Option<String> {
    std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres"))
}

/// Writes the pair's files without starting anything.
pub async fn pair_files(profile: &str, db: Db) -> (tempfile::TempDir, [GatewayFiles; 2]) {
    pair_files_with(profile, db, false).await
}

/// As [`pair_files`], with mutual TLS between the gateways when `tls`.
pub async fn pair_files_with(profile: &str, db: Db, tls: bool) -> (tempfile::TempDir, [GatewayFiles; 2]) {
    pair_files_signing(profile, db, tls, SigningKeyKind::Rsa2048).await
}

/// As [`pair_files_with`], with signing keys of `signing`'s kind (EC P-256: both sign with
/// ECDSA and accept only that).
pub async fn pair_files_signing(
    profile: &str,
    db: Db,
    tls: bool,
    signing: SigningKeyKind,
) -> (tempfile::TempDir, [GatewayFiles; 2]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let urls = match db {
        Db::Sqlite => [
            format!("sqlite:{}", dir.path().join("kr.db").display()),
            format!("sqlite:{}", dir.path().join("id.db").display()),
        ],
        Db::Postgres => {
            let base = postgres_url().expect("DATABASE_URL");
            [
                coconnect::store::testdb::fresh_postgres(&base).await.expect("pg"),
                coconnect::store::testdb::fresh_postgres(&base).await.expect("pg"),
            ]
        }
    };
    let addrs = [
        (free_addr().expect("port"), free_addr().expect("port")),
        (free_addr().expect("port"), free_addr().expect("port")),
    ];
    let files = write_pair(&PairSpec {
        dir: dir.path(),
        parties: ["KR", "ID"],
        addrs,
        database_urls: urls,
        profile,
        tls,
        signing,
    })
    .expect("pair");
    (dir, files)
}

/// The pair's gateways, not started.
pub async fn pair_stopped(profile: &str, db: Db) -> Pair {
    let (dir, [kr, id]) = pair_files(profile, db).await;
    Pair { dir, kr: Gateway { files: kr, app: None }, id: Gateway { files: id, app: None } }
}

/// A third gateway, `party`, partnered with KR only (ID knows nothing of it): its keys from
/// the pair's development CA, its files under the pair's directory, a SQLite database. KR's
/// configuration gets its partner entry (taken into account at KR's next start). Not started.
pub fn third_gateway(p: &Pair, party: &str) -> Gateway {
    let dir = p.dir.path().join(party);
    std::fs::create_dir_all(&dir).expect("dir");
    // The pair's CA signs the new party's keys (and a second set for KR, unused: the new
    // party's configuration is pointed at KR's own below).
    let pki = dir.join("pki");
    std::fs::create_dir_all(&pki).expect("pki dir");
    for file in ["ca.cert.pem", "ca.key.pem"] {
        std::fs::copy(p.dir.path().join("pki").join(file), pki.join(file)).expect("copy the CA");
    }
    let [kr_side, theirs] = write_pair(&PairSpec {
        dir: &dir,
        parties: ["KR", party],
        addrs: [(p.kr.files.soap_addr, p.kr.files.api_addr), (free_addr().expect("port"), free_addr().expect("port"))],
        database_urls: [
            format!("sqlite:{}", dir.join("unused-kr.db").display()),
            format!("sqlite:{}", dir.join(format!("{}.db", party.to_lowercase())).display()),
        ],
        profile: "sign-encrypt",
        tls: false,
        signing: SigningKeyKind::Rsa2048,
    })
    .expect("third gateway");
    let theirs_config = std::fs::read_to_string(&theirs.config).expect("config");
    let kr_keys = |root: &std::path::Path| format!("{}/", root.join("pki").join("KR").display());
    std::fs::write(&theirs.config, theirs_config.replace(&kr_keys(&dir), &kr_keys(p.dir.path()))).expect("config");
    let kr_config = std::fs::read_to_string(&kr_side.config).expect("config");
    let entry = &kr_config[kr_config.find("[[partners]]").expect("a partner entry")..];
    p.kr.configure(&format!("\n{entry}"));
    Gateway { files: theirs, app: None }
}

/// Starts KR and ID in this process.
pub async fn pair(profile: &str, db: Db) -> Pair {
    pair_signing(profile, db, SigningKeyKind::Rsa2048).await
}

/// As [`pair`], with signing keys of `signing`'s kind.
pub async fn pair_signing(profile: &str, db: Db, signing: SigningKeyKind) -> Pair {
    let (dir, [kr, id]) = pair_files_signing(profile, db, false, signing).await;
    let mut kr = Gateway { files: kr, app: None };
    let mut id = Gateway { files: id, app: None };
    kr.start().await;
    id.start().await;
    Pair { dir, kr, id }
}

/// A pair whose gateways use `preset` for each other (`encrypt`: profile sign-encrypt), with
/// the opt-ins the preset needs.
pub async fn preset_pair(preset: coconnect::wssec::profile::Preset, encrypt: bool) -> Pair {
    let mut p = pair_stopped(if encrypt { "sign-encrypt" } else { "sign" }, Db::Sqlite).await;
    let weak: Vec<String> = preset.profile(encrypt).weaknesses().iter().map(|w| format!("\"{w}\"")).collect();
    let section =
        format!("\n[partners.security]\npreset = \"{}\"\nallow_weak = [{}]\n", preset.name(), weak.join(", "));
    p.kr.configure(&section);
    p.id.configure(&section);
    p.kr.start().await;
    p.id.start().await;
    p
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// POSTs raw bytes to a SOAP endpoint with Basic credentials.
pub async fn post_soap(url: &str, user: &str, password: &str, body: Vec<u8>) -> (u16, String) {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let req = Request::post(url)
        .header("Authorization", format!("Basic {auth}"))
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", "\"urn:coconnect:soap:v1/SendCO\"")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = client().request(req).await.expect("SOAP call");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The example CO with another document reference (D014).
pub fn co_with_reference(reference: &str) -> String {
    let start = EXAMPLE_CO.find("<ID>").expect("LPCO/ID");
    let end = EXAMPLE_CO[start..].find("</ID>").expect("end") + start;
    format!("{}<ID>{reference}{}", &EXAMPLE_CO[..start], &EXAMPLE_CO[end..])
}

/// Now, to the millisecond (the precision the store keeps).
pub fn now() -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

use coconnect::message::{MessageHeader, Operation};
use coconnect::soap::messages::request_xml;
use coconnect::wssec::material::{Certificate, KeyPair};
use coconnect::wssec::outbound::{secure, OutboundMessage};
use coconnect::wssec::SoapVersion;

/// Builds requests the way a partner's stack would, with the pair's dev keys.
pub struct Crafter {
    pub signer: KeyPair,
    pub recipient: Certificate,
}

impl Crafter {
    /// Signs as `from` (its signing key) and encrypts to `to`'s encryption certificate.
    pub fn new(pki: &std::path::Path, from: &str, to: &str) -> Self {
        let f = coconnect::dev_pki::party_files(pki, from);
        let t = coconnect::dev_pki::party_files(pki, to);
        let signer = KeyPair::from_pem(
            std::fs::read(&f.signing_key).expect("key"),
            Certificate::from_pem(&std::fs::read(&f.signing_cert).expect("cert")).expect("cert"),
        )
        .expect("pair");
        let recipient = Certificate::from_pem(&std::fs::read(&t.encryption_cert).expect("cert")).expect("cert");
        Crafter { signer, recipient }
    }

    /// Secured as `profile`'s outbound side says (as a partner's stack with that profile would).
    pub fn secure_as(&self, body: &str, profile: &coconnect::wssec::Profile, at: chrono::DateTime<Utc>) -> Vec<u8> {
        secure(&OutboundMessage {
            version: profile.outbound.soap_version,
            body_xml: body,
            signer: &self.signer,
            encrypt_for: profile.outbound.encryption.map(|_| &self.recipient),
            profile: &profile.outbound,
            addressing: None,
            now: at,
            ttl: chrono::Duration::minutes(5),
        })
        .expect("secure")
    }

    pub fn secure(&self, body: &str, encrypt: bool, at: chrono::DateTime<Utc>) -> Vec<u8> {
        secure(&OutboundMessage {
            version: SoapVersion::V11,
            body_xml: body,
            signer: &self.signer,
            encrypt_for: encrypt.then_some(&self.recipient),
            profile: &coconnect::wssec::Profile::strict(encrypt).outbound,
            addressing: None,
            now: at,
            ttl: chrono::Duration::minutes(5),
        })
        .expect("secure")
    }
}

/// A SendCO request element from KR to ID with the given message ID and CO XML.
pub fn send_co_body(message_id: uuid::Uuid, co_xml: &str) -> String {
    let co = coconnect::payload::parse_co(co_xml)
        .map(|c| coconnect::payload::to_xml(&c).expect("xml"))
        .unwrap_or_else(|_| strip_declaration(co_xml));
    request_xml(Operation::SendCo, &MessageHeader::new("KR", "ID", message_id, Utc::now()), &co)
}

pub fn strip_declaration(xml: &str) -> String {
    match xml.find("?>") {
        Some(i) if xml.trim_start().starts_with("<?xml") => xml[i + 2..].trim_start().to_owned(),
        _ => xml.to_owned(),
    }
}

/// The stable error code in a fault or acknowledgement (first `cc:Code`).
pub fn first_code(xml: &str) -> String {
    let Some(s) = xml.find("<cc:Code>") else { return String::new() };
    let rest = &xml[s + 9..];
    rest[..rest.find("</cc:Code>").unwrap_or(0)].to_owned()
}

pub fn all_codes(xml: &str) -> Vec<String> {
    xml.split("<cc:Code>").skip(1).map(|p| p[..p.find("</cc:Code>").unwrap_or(0)].to_owned()).collect()
}

/// Certificates and logged messages in a store: both zero means nothing was stored.
pub async fn stored(store: &Store) -> (i64, i64) {
    (
        coconnect::store::certificates::count(store).await.expect("count"),
        coconnect::store::messages::count(store).await.expect("count"),
    )
}

/// A TCP connection from a chosen loopback source address (127.0.0.2 is not the proxy).
pub async fn connect_from(source: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{source}:0").parse().expect("addr")).expect("bind source");
    socket.connect(to).await.expect("connect")
}

pub struct Call<'a> {
    pub to: std::net::SocketAddr,
    pub from: &'a str,
    pub tls: Option<(&'a std::path::Path, Option<(&'a std::path::Path, &'a std::path::Path)>)>,
    pub headers: Vec<(&'a str, String)>,
    pub user: &'a str,
    pub password: &'a str,
    pub body: Vec<u8>,
}

/// One POST to `/soap/v1` from a chosen loopback source, over TLS (with an optional client
/// certificate) or plain HTTP; Err on a failed connection or handshake.
pub async fn call(c: Call<'_>) -> Result<(u16, String), String> {
    let tcp = connect_from(c.from, c.to).await;
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{}:{}", c.user, c.password));
    let mut req = hyper::Request::post("/soap/v1")
        .header("Host", c.to.to_string())
        .header("Authorization", format!("Basic {auth}"))
        .header("Content-Type", "text/xml; charset=utf-8");
    for (k, v) in &c.headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(Bytes::from(c.body))).expect("request");
    let resp = match c.tls {
        Some((ca, client)) => {
            let mut b = SslConnector::builder(SslMethod::tls_client()).expect("ssl");
            if let Some((cert, key)) = client {
                b.set_certificate(&X509::from_pem(&std::fs::read(cert).expect("c")).expect("x")).expect("c");
                b.set_private_key(&PKey::private_key_from_pem(&std::fs::read(key).expect("k")).expect("k")).expect("k");
            }
            let mut store = X509StoreBuilder::new().expect("store");
            store.add_cert(X509::from_pem(&std::fs::read(ca).expect("ca")).expect("ca")).expect("add");
            b.set_verify_cert_store(store.build()).expect("store");
            b.set_verify(SslVerifyMode::PEER);
            let ssl = b.build().configure().and_then(|cfg| cfg.into_ssl("127.0.0.1")).map_err(|e| e.to_string())?;
            let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
            std::pin::Pin::new(&mut stream).connect().await.map_err(|e| format!("handshake: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(|e| e.to_string())?
        }
        None => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            sender.send_request(req).await.map_err(|e| e.to_string())?
        }
    };
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
