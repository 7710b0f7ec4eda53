//! Two gateways on loopback with a development PKI: writes real configuration files for a pair of
//! parties that trust each other. Used by `coconnect demo` and by the tests (`config`'s own
//! among them, which is why it lives here and not with the demo); never by `serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::hash_password;
use crate::dev_pki::{init_dev_pki_with, party_files, SigningKeyKind};

/// One generated gateway.
#[derive(Debug, Clone)]
pub struct GatewayFiles {
    pub party: String,
    pub config: PathBuf,
    pub soap_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub api_token: String,
    /// The password the other gateway uses to call this one.
    pub inbound_password: String,
    pub database_url: String,
}

/// How the pair is set up.
pub struct PairSpec<'a> {
    pub dir: &'a Path,
    pub parties: [&'a str; 2],
    /// SOAP and API addresses of each gateway.
    pub addrs: [(SocketAddr, SocketAddr); 2],
    pub database_urls: [String; 2],
    /// `sign-encrypt` or `sign`, used in both directions.
    pub profile: &'a str,
    /// Mutual TLS between the gateways (the dev PKI's TLS certificates) instead of plain HTTP.
    pub tls: bool,
    /// The parties' signing keys. With EC P-256, both sign with ECDSA-SHA256 and accept only
    /// that from each other (`[partners.security]`).
    pub signing: SigningKeyKind,
}

fn random_secret() -> String {
    let mut b = [0u8; 18];
    // A failing RNG leaves zeros; these secrets only protect a loopback demo.
    let _ = openssl::rand::rand_bytes(&mut b);
    crate::wssec::material::hex(&b)
}

/// Writes `text` to a file that only its owner may read (mode 0600, also when it existed).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// Creates the PKI (under `dir/pki`) and one TOML configuration per party.
pub fn write_pair(spec: &PairSpec<'_>) -> anyhow::Result<[GatewayFiles; 2]> {
    let pki_dir = spec.dir.join("pki");
    let parties: Vec<String> = spec.parties.iter().map(|p| p.to_string()).collect();
    init_dev_pki_with(&pki_dir, &parties, false, spec.signing)?;
    let ecdsa = match spec.signing {
        SigningKeyKind::Rsa2048 => "",
        SigningKeyKind::EcP256 => {
            "\n[partners.security.inbound]\nsignature_algorithms = [\"ecdsa-sha256\"]\n\
             \n[partners.security.outbound]\nsignature_algorithm = \"ecdsa-sha256\"\n"
        }
    };
    let passwords = [random_secret(), random_secret()];
    let mut out = Vec::new();
    for i in 0..2 {
        let (me, other) = (spec.parties[i], spec.parties[1 - i]);
        let mine = party_files(&pki_dir, me);
        let theirs = party_files(&pki_dir, other);
        let token = random_secret();
        let (soap, api) = spec.addrs[i];
        let (other_soap, _) = spec.addrs[1 - i];
        let ca = pki_dir.join("ca.cert.pem");
        let scheme = if spec.tls { "https" } else { "http" };
        let tls_section = if spec.tls {
            format!(
                "\n[tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_cas = [\"{}\"]\n",
                mine.tls_cert.display(),
                mine.tls_key.display(),
                ca.display()
            )
        } else {
            String::new()
        };
        let partner_tls = if spec.tls {
            format!("tls_client_certs = [\"{}\"]\ntls_server_cas = [\"{}\"]\n", theirs.tls_cert.display(), ca.display())
        } else {
            String::new()
        };
        let config = format!(
            r#"# Generated development configuration for {me} (see docs/configuration.md).
party = "{me}"
public_url = "{scheme}://{soap}/soap/v1"
database_url = "{db}"

[listen]
soap = "{soap}"
api = "{api}"

[keys]
signing_key = "{sk}"
signing_cert = "{sc}"
decryption_key = "{dk}"
decryption_cert = "{dc}"
trust_anchors = ["{ca}"]
{tls_section}
[delivery]
retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]
flush_rate_per_second = 500.0
poll_interval_millis = 100

[limits]
requests_per_second = 1000.0

[[api_tokens]]
name = "domestic-system"
token = "{token}"

[[partners]]
party = "{other}"
endpoint = "{scheme}://{other_soap}/soap/v1"
{partner_tls}
signing_certs = ["{their_sc}"]
encryption_cert = "{their_ec}"
profile = "{profile}"
allowed_networks = ["127.0.0.0/8", "::1/128"]
outbound_auth = {{ username = "{me}", password = "{out_pw}" }}
inbound_auth = {{ username = "{other}", password_hash = "{in_hash}" }}
{ecdsa}"#,
            db = spec.database_urls[i],
            sk = mine.signing_key.display(),
            sc = mine.signing_cert.display(),
            dk = mine.encryption_key.display(),
            dc = mine.encryption_cert.display(),
            ca = ca.display(),
            their_sc = theirs.signing_cert.display(),
            their_ec = theirs.encryption_cert.display(),
            profile = spec.profile,
            out_pw = passwords[1 - i],
            in_hash = hash_password(&passwords[i])?,
        );
        let path = spec.dir.join(format!("{me}.toml"));
        // It holds secrets inline: the gateway refuses it readable by group or others.
        write_private(&path, &config)?;
        out.push(GatewayFiles {
            party: me.to_owned(),
            config: path,
            soap_addr: soap,
            api_addr: api,
            api_token: token,
            inbound_password: passwords[i].clone(),
            database_url: spec.database_urls[i].clone(),
        });
    }
    let [a, b]: [GatewayFiles; 2] = out.try_into().map_err(|_| anyhow::anyhow!("two gateways expected"))?;
    Ok([a, b])
}

/// A free loopback port (bound and released: fine for tests and the demo).
///
/// Picked below the kernel's ephemeral range (read from /proc, 32768+ by default on Linux): a
/// port handed out by `bind(0)` is an ephemeral port, so once released it can be taken as the
/// source port of any outgoing connection before a restarted gateway binds it again. Ports are
/// handed out in turn from a per-process starting point and never twice by one process, so two
/// tests of one run cannot both be given a port that neither has bound yet.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HANDED_OUT: AtomicU64 = AtomicU64::new(0);
    const LOW: u64 = 20000;
    let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u64>().ok())
        .filter(|ephemeral_low| *ephemeral_low > LOW + 2000)
        .map_or(32000, |ephemeral_low| ephemeral_low.min(32000));
    let span = high - LOW;
    // Processes started together (the test binaries, a demo) start far apart.
    let start = u64::from(std::process::id()).wrapping_mul(7919) % span;
    for _ in 0..span {
        let port = LOW + (start + HANDED_OUT.fetch_add(1, Ordering::Relaxed)) % span;
        let Ok(port) = u16::try_from(port) else { continue };
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return Ok(l.local_addr()?);
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}
