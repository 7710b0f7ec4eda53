//! Development PKI: `coconnect pki init --out DIR --parties KR,ID`.
//!
//! This module owns the creation of a throw-away certificate authority and, for each
//! party (customs administration), three key pairs with certificates signed by that
//! CA: one for signing (WS-Security signatures; RSA-2048, or EC P-256 for a partner profile
//! that signs with ECDSA), one for encryption (RSA-2048: the partner encrypts to it, we
//! decrypt with its key) and one for TLS (RSA-2048). It exists so that two
//! gateways can be run and tested against each other on one machine.
//!
//! What it must never do:
//! * be used for production keys. The CA key sits unprotected next to the party keys,
//!   every certificate says "not for production" in its subject, and in production the
//!   administrations exchange certificates issued by their own CA (or a WCO CA,
//!   framework 4.4.3), never by this tool;
//! * import more of this crate than the party-code rule (`crate::party`): it is the bottom of
//!   the layers, so that the tests of `wssec` and `config` can make keys with it;
//! * overwrite existing keys silently. Existing party files are an error unless the
//!   caller passes `force`; an existing CA is reused, never regenerated; and even with
//!   `force` files are replaced atomically (write to a temporary file, then rename).
//!
//! Layout created under `DIR`:
//! ```text
//! DIR/ca.cert.pem  DIR/ca.key.pem
//! DIR/<PARTY>/signing.key.pem     DIR/<PARTY>/signing.cert.pem
//! DIR/<PARTY>/encryption.key.pem  DIR/<PARTY>/encryption.cert.pem
//! DIR/<PARTY>/tls.key.pem         DIR/<PARTY>/tls.cert.pem
//! ```
//! Private keys are PEM PKCS#8, created with mode 0600; certificates are PEM, mode 0644.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::party::is_valid_party_code;
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509Name, X509NameBuilder, X509Ref, X509};

/// RSA modulus size. 2048 bits: RSA private-key operations dominate per-message cost
/// and 2048 is still the accepted minimum.
const RSA_BITS: u32 = 2048;
const CA_VALIDITY_DAYS: i64 = 3650;
const PARTY_VALIDITY_DAYS: i64 = 730;
/// notBefore is back-dated a little so that a peer with a slightly slow clock accepts
/// a freshly created certificate.
const BACKDATE_SECS: i64 = 300;
const CA_CN: &str = "coconnect development CA";
const DEV_ORG: &str = "coconnect development \u{2014} not for production";
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// Errors of the development PKI, each naming the file and/or party concerned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(
        "invalid party code {party:?}: expected 2 uppercase letters followed by at most 8 \
         uppercase letters or digits (e.g. KR, ID)"
    )]
    InvalidParty { party: String },

    #[error("party {party} is listed more than once")]
    DuplicateParty { party: String },

    #[error(
        "refusing to overwrite key material of party {party}: {} already exists \
         (pass --force to replace all of that party's files)",
        path.display()
    )]
    PartyExists { party: String, path: PathBuf },

    #[error(
        "incomplete development CA: {} exists but {} does not; restore the missing file \
         or remove the other one to create a new CA",
        present.display(),
        missing.display()
    )]
    IncompleteCa { present: PathBuf, missing: PathBuf },

    #[error(
        "development CA key {} does not belong to certificate {}",
        key.display(),
        cert.display()
    )]
    CaKeyMismatch { key: PathBuf, cert: PathBuf },

    #[error("development CA certificate {} has expired (notAfter {not_after})", path.display())]
    CaExpired { path: PathBuf, not_after: String },

    // The cause is in the message and not also a `source`, so that a chain printed with `{:#}`
    // (as `main` prints errors) says it once.
    #[error("{action} {}{}: {reason}", path.display(), for_party(party))]
    Io { action: &'static str, path: PathBuf, party: Option<String>, reason: io::Error },

    #[error("OpenSSL failed while {action} {}{}: {reason}", path.display(), for_party(party))]
    Crypto { action: &'static str, path: PathBuf, party: Option<String>, reason: ErrorStack },
}

fn for_party(party: &Option<String>) -> String {
    match party {
        Some(p) => format!(" (party {p})"),
        None => String::new(),
    }
}

/// Paths of one party's key material (see [`party_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyFiles {
    pub party: String,
    pub signing_key: PathBuf,
    pub signing_cert: PathBuf,
    pub encryption_key: PathBuf,
    pub encryption_cert: PathBuf,
    pub tls_key: PathBuf,
    pub tls_cert: PathBuf,
}

impl PartyFiles {
    /// All six paths, keys before certificates.
    fn all(&self) -> [&Path; 6] {
        [
            &self.signing_key,
            &self.encryption_key,
            &self.tls_key,
            &self.signing_cert,
            &self.encryption_cert,
            &self.tls_cert,
        ]
    }
}

/// What [`init_dev_pki`] created (or reused, for the CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub parties: Vec<PartyFiles>,
}

/// The paths of `party`'s files under `out`, without creating anything.
pub fn party_files(out: &Path, party: &str) -> PartyFiles {
    let dir = out.join(party);
    PartyFiles {
        party: party.to_string(),
        signing_key: dir.join("signing.key.pem"),
        signing_cert: dir.join("signing.cert.pem"),
        encryption_key: dir.join("encryption.key.pem"),
        encryption_cert: dir.join("encryption.cert.pem"),
        tls_key: dir.join("tls.key.pem"),
        tls_cert: dir.join("tls.cert.pem"),
    }
}

/// Creates DIR/ca.cert.pem + DIR/ca.key.pem (reuses them if both already exist, so more
/// parties can be added later) and for each party
/// DIR/<PARTY>/{signing,encryption,tls}.{key,cert}.pem.
///
/// Refuses (error) to overwrite an existing party's files unless `force`; `force` never
/// regenerates the CA. All checks and all key generation happen before the first file
/// is written, so a failed call leaves `out` as it was (short of an I/O error while
/// writing).
pub fn init_dev_pki(out: &Path, parties: &[String], force: bool) -> Result<DevPki, PkiError> {
    init_dev_pki_with(out, parties, force, SigningKeyKind::Rsa2048)
}

/// The kind of the parties' signing keys. The encryption and TLS keys are RSA-2048 either way
/// (XML Encryption's key transport is RSA-OAEP).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SigningKeyKind {
    /// RSA-2048, for RSA-SHA256 signatures (the strict profile).
    #[default]
    Rsa2048,
    /// EC P-256, for a partner profile with `signature_algorithm = "ecdsa-sha256"`.
    EcP256,
}

/// [`init_dev_pki`] with signing keys of `signing`'s kind.
pub fn init_dev_pki_with(
    out: &Path,
    parties: &[String],
    force: bool,
    signing: SigningKeyKind,
) -> Result<DevPki, PkiError> {
    // 1. Validate the request.
    for (i, party) in parties.iter().enumerate() {
        if !is_valid_party_code(party) {
            return Err(PkiError::InvalidParty { party: party.clone() });
        }
        if parties[..i].contains(party) {
            return Err(PkiError::DuplicateParty { party: party.clone() });
        }
    }
    let ca_cert_path = out.join("ca.cert.pem");
    let ca_key_path = out.join("ca.key.pem");
    let files: Vec<PartyFiles> = parties.iter().map(|p| party_files(out, p)).collect();

    // 2. Look at what is already there.
    let ca_exists = (exists(&ca_cert_path, None)?, exists(&ca_key_path, None)?);
    if !force {
        for pf in &files {
            for path in pf.all() {
                if exists(path, Some(&pf.party))? {
                    return Err(PkiError::PartyExists { party: pf.party.clone(), path: path.to_path_buf() });
                }
            }
        }
    }

    // 3. Load or create the CA (in memory).
    let (ca_cert, ca_key, new_ca) = match ca_exists {
        (true, true) => {
            let (cert, key) = load_ca(&ca_cert_path, &ca_key_path)?;
            (cert, key, false)
        }
        (false, false) => {
            let (cert, key) = create_ca(&ca_cert_path)?;
            (cert, key, true)
        }
        (true, false) => return Err(PkiError::IncompleteCa { present: ca_cert_path, missing: ca_key_path }),
        (false, true) => return Err(PkiError::IncompleteCa { present: ca_key_path, missing: ca_cert_path }),
    };

    // 4. Generate every party's keys and certificates (in memory).
    let mut material = Vec::with_capacity(files.len());
    for pf in &files {
        let mut items = Vec::with_capacity(3);
        for purpose in [Purpose::Signing, Purpose::Encryption, Purpose::Tls] {
            let (key_path, cert_path) = purpose.paths(pf);
            let key = match (purpose, signing) {
                (Purpose::Signing, SigningKeyKind::EcP256) => generate_ec_key(key_path, Some(&pf.party))?,
                _ => generate_key(key_path, Some(&pf.party))?,
            };
            let cert = issue(&ca_cert, &ca_key, &key, &pf.party, purpose, cert_path)?;
            let key_pem =
                key.private_key_to_pem_pkcs8().map_err(crypto("encoding private key", key_path, Some(&pf.party)))?;
            let cert_pem = cert.to_pem().map_err(crypto("encoding certificate", cert_path, Some(&pf.party)))?;
            items.push((key_path.to_path_buf(), key_pem, cert_path.to_path_buf(), cert_pem));
        }
        material.push((pf.party.clone(), items));
    }

    // 5. Write. The CA key goes first: a CA certificate without its key is useless.
    if new_ca {
        create_dir(out, None)?;
        let key_pem = ca_key.private_key_to_pem_pkcs8().map_err(crypto("encoding private key", &ca_key_path, None))?;
        let cert_pem = ca_cert.to_pem().map_err(crypto("encoding certificate", &ca_cert_path, None))?;
        write_file(&ca_key_path, &key_pem, KEY_MODE, false, None)?;
        write_file(&ca_cert_path, &cert_pem, CERT_MODE, false, None)?;
    }
    for (party, items) in &material {
        create_dir(&out.join(party), Some(party))?;
        for (key_path, key_pem, cert_path, cert_pem) in items {
            write_file(key_path, key_pem, KEY_MODE, force, Some(party))?;
            write_file(cert_path, cert_pem, CERT_MODE, force, Some(party))?;
        }
    }

    Ok(DevPki { ca_cert: ca_cert_path, ca_key: ca_key_path, parties: files })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Signing,
    Encryption,
    Tls,
}

impl Purpose {
    fn name(self) -> &'static str {
        match self {
            Purpose::Signing => "signing",
            Purpose::Encryption => "encryption",
            Purpose::Tls => "tls",
        }
    }

    fn paths(self, pf: &PartyFiles) -> (&Path, &Path) {
        match self {
            Purpose::Signing => (&pf.signing_key, &pf.signing_cert),
            Purpose::Encryption => (&pf.encryption_key, &pf.encryption_cert),
            Purpose::Tls => (&pf.tls_key, &pf.tls_cert),
        }
    }
}

fn crypto<'a>(
    action: &'static str,
    path: &'a Path,
    party: Option<&'a str>,
) -> impl FnOnce(ErrorStack) -> PkiError + 'a {
    move |reason| PkiError::Crypto { action, path: path.to_path_buf(), party: party.map(str::to_string), reason }
}

fn io_err<'a>(action: &'static str, path: &'a Path, party: Option<&'a str>) -> impl FnOnce(io::Error) -> PkiError + 'a {
    move |reason| PkiError::Io { action, path: path.to_path_buf(), party: party.map(str::to_string), reason }
}

/// Like `Path::try_exists`, but without following a final symlink (a dangling symlink
/// still counts as "something is there").
fn exists(path: &Path, party: Option<&str>) -> Result<bool, PkiError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err("checking", path, party)(e)),
    }
}

fn create_dir(dir: &Path, party: Option<&str>) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(io_err("creating directory", dir, party))
}

fn load_ca(cert_path: &Path, key_path: &Path) -> Result<(X509, PKey<Private>), PkiError> {
    let cert_pem = fs::read(cert_path).map_err(io_err("reading", cert_path, None))?;
    let key_pem = fs::read(key_path).map_err(io_err("reading", key_path, None))?;
    let cert = X509::from_pem(&cert_pem).map_err(crypto("parsing CA certificate", cert_path, None))?;
    let key = PKey::private_key_from_pem(&key_pem).map_err(crypto("parsing CA private key", key_path, None))?;
    let cert_pub = cert.public_key().map_err(crypto("reading public key of", cert_path, None))?;
    if !cert_pub.public_eq(&key) {
        return Err(PkiError::CaKeyMismatch { key: key_path.to_path_buf(), cert: cert_path.to_path_buf() });
    }
    let now = Asn1Time::days_from_now(0).map_err(crypto("reading the clock for", cert_path, None))?;
    if cert.not_after() <= now {
        return Err(PkiError::CaExpired { path: cert_path.to_path_buf(), not_after: cert.not_after().to_string() });
    }
    Ok((cert, key))
}

fn generate_key(path: &Path, party: Option<&str>) -> Result<PKey<Private>, PkiError> {
    let rsa = Rsa::generate(RSA_BITS).map_err(crypto("generating RSA key for", path, party))?;
    PKey::from_rsa(rsa).map_err(crypto("generating RSA key for", path, party))
}

fn generate_ec_key(path: &Path, party: Option<&str>) -> Result<PKey<Private>, PkiError> {
    let group =
        EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(crypto("generating EC key for", path, party))?;
    let ec = EcKey::generate(&group).map_err(crypto("generating EC key for", path, party))?;
    PKey::from_ec_key(ec).map_err(crypto("generating EC key for", path, party))
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn days_from_now(days: i64) -> Result<Asn1Time, ErrorStack> {
    Asn1Time::from_unix((unix_now() + days * 86_400) as _)
}

/// Common part of every certificate: v3, random 128-bit serial, validity, subject,
/// public key.
fn base_builder(subject: &X509Name, key: &PKey<Private>, not_after: &Asn1TimeRef) -> Result<X509Builder, ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    // MsbOption::ONE: exactly 128 bits, hence never zero and always positive.
    serial.rand(128, MsbOption::ONE, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    let not_before = Asn1Time::from_unix((unix_now() - BACKDATE_SECS) as _)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(not_after)?;
    b.set_subject_name(subject)?;
    b.set_pubkey(key)?;
    Ok(b)
}

fn create_ca(cert_path: &Path) -> Result<(X509, PKey<Private>), PkiError> {
    let key = generate_key(cert_path, None)?;
    let build = || -> Result<X509, ErrorStack> {
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("O", DEV_ORG)?;
        name.append_entry_by_text("CN", CA_CN)?;
        let name = name.build();
        let not_after = days_from_now(CA_VALIDITY_DAYS)?;
        let mut b = base_builder(&name, &key, &not_after)?;
        b.set_issuer_name(&name)?;
        b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(b.build())
    };
    let cert = build().map_err(crypto("creating CA certificate", cert_path, None))?;
    Ok((cert, key))
}

fn issue(
    ca_cert: &X509Ref,
    ca_key: &PKey<Private>,
    key: &PKey<Private>,
    party: &str,
    purpose: Purpose,
    cert_path: &Path,
) -> Result<X509, PkiError> {
    let build = || -> Result<X509, ErrorStack> {
        let mut name = X509NameBuilder::new()?;
        if party.len() == 2 {
            // `party` is validated, so a 2-character code is two uppercase letters.
            name.append_entry_by_text("C", party)?;
        }
        name.append_entry_by_text("O", DEV_ORG)?;
        name.append_entry_by_text("CN", &format!("{party} {}", purpose.name()))?;
        let name = name.build();
        // Never outlive the CA (relevant when a reused CA is close to its end).
        let wanted = days_from_now(PARTY_VALIDITY_DAYS)?;
        let not_after: &Asn1TimeRef = if ca_cert.not_after() < wanted { ca_cert.not_after() } else { &wanted };
        let mut b = base_builder(&name, key, not_after)?;
        b.set_issuer_name(ca_cert.subject_name())?;
        b.append_extension(BasicConstraints::new().build()?)?;
        match purpose {
            Purpose::Signing => {
                b.append_extension(KeyUsage::new().critical().digital_signature().non_repudiation().build()?)?
            }
            Purpose::Encryption => {
                b.append_extension(KeyUsage::new().critical().key_encipherment().data_encipherment().build()?)?
            }
            Purpose::Tls => {
                b.append_extension(KeyUsage::new().digital_signature().key_encipherment().build()?)?;
                b.append_extension(ExtendedKeyUsage::new().server_auth().client_auth().build()?)?;
                let san = SubjectAlternativeName::new()
                    .dns("localhost")
                    .ip("127.0.0.1")
                    .ip("::1")
                    .build(&b.x509v3_context(Some(ca_cert), None))?;
                b.append_extension(san)?;
            }
        }
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca_cert), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new().keyid(false).build(&b.x509v3_context(Some(ca_cert), None))?;
        b.append_extension(aki)?;
        b.sign(ca_key, MessageDigest::sha256())?;
        Ok(b.build())
    };
    build().map_err(crypto("issuing certificate", cert_path, Some(party)))
}

/// Writes `data` to `path`, with `mode` set when the file is created (never widened
/// by a later chmod).
///
/// Without `overwrite` the file itself is created with `O_EXCL`, so this fails if
/// anything appeared at `path` since it was checked. With `overwrite` the data goes to
/// a temporary file in the same directory which is then renamed over `path`, so the
/// old file is replaced atomically and never truncated in place.
fn write_file(path: &Path, data: &[u8], mode: u32, overwrite: bool, party: Option<&str>) -> Result<(), PkiError> {
    let target = if overwrite {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        // A leftover of an earlier crashed run with the same pid is garbage.
        let _ = fs::remove_file(&tmp);
        tmp
    } else {
        path.to_path_buf()
    };

    let mut created = false;
    let result = (|| -> io::Result<()> {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = opts.open(&target)?;
        created = true;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        if overwrite {
            fs::rename(&target, path)?;
        }
        Ok(())
    })();

    result.map_err(|e| {
        if created {
            // Do not leave a truncated key or certificate (or a temporary file) behind.
            let _ = fs::remove_file(&target);
        }
        match party {
            Some(party) if !overwrite && e.kind() == io::ErrorKind::AlreadyExists => {
                PkiError::PartyExists { party: party.to_string(), path: path.to_path_buf() }
            }
            _ => io_err("writing", path, party)(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509ExtendedKeyUsage, X509KeyUsage, X509StoreContext};
    use std::os::unix::fs::PermissionsExt;

    fn parties(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn read_cert(p: &Path) -> X509 {
        X509::from_pem(&fs::read(p).unwrap()).unwrap()
    }

    fn read_key(p: &Path) -> PKey<Private> {
        let pem = fs::read(p).unwrap();
        assert!(pem.starts_with(b"-----BEGIN PRIVATE KEY-----"), "{} is not PKCS#8", p.display());
        PKey::private_key_from_pem(&pem).unwrap()
    }

    fn verifies(ca: &X509, cert: &X509) -> bool {
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca.clone()).unwrap();
        let store = store.build();
        let mut ctx = X509StoreContext::new().unwrap();
        ctx.init(&store, cert, &Stack::new().unwrap(), |c| c.verify_cert()).unwrap()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn party_codes() {
        for ok in ["KR", "ID", "ABCDEFGHIJ", "EU27", "XX1"] {
            assert!(is_valid_party_code(ok), "{ok}");
        }
        for bad in ["", "K", "kr", "K1", "1K", "ABCDEFGHIJK", "K R", "../", "KR-1", "ÄB"] {
            assert!(!is_valid_party_code(bad), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let err = init_dev_pki(dir.path(), &parties(&["KR", "kr"]), false).unwrap_err();
        assert!(matches!(err, PkiError::InvalidParty { ref party } if party == "kr"), "{err}");
        let err = init_dev_pki(dir.path(), &parties(&["../X"]), false).unwrap_err();
        assert!(matches!(err, PkiError::InvalidParty { .. }), "{err}");
        let err = init_dev_pki(dir.path(), &parties(&["KR", "KR"]), false).unwrap_err();
        assert!(matches!(err, PkiError::DuplicateParty { .. }), "{err}");
        // Nothing was written by the failed calls.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn dev_pki_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dev");
        let pki = init_dev_pki(&out, &parties(&["KR", "ID"]), false).unwrap();
        assert_eq!(pki.ca_cert, out.join("ca.cert.pem"));
        assert_eq!(pki.parties, vec![party_files(&out, "KR"), party_files(&out, "ID")]);
        assert_eq!(pki.parties[0].signing_cert, out.join("KR/signing.cert.pem"));

        let ca = read_cert(&pki.ca_cert);
        let ca_key = read_key(&pki.ca_key);
        assert!(ca.public_key().unwrap().public_eq(&ca_key));
        assert_eq!(mode(&pki.ca_key), 0o600);
        assert_eq!(mode(&pki.ca_cert) & !0o644, 0);
        assert!(verifies(&ca, &ca), "self-signed CA verifies");
        assert_eq!(ca.key_usage(), Some(X509KeyUsage::KEY_CERT_SIGN | X509KeyUsage::CRL_SIGN));
        assert!(ca.subject_key_id().is_some());
        let ca_text = String::from_utf8(ca.to_text().unwrap()).unwrap();
        assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
        assert!(ca_text.contains("X509v3 Basic Constraints: critical"), "{ca_text}");
        assert!(ca_text.contains("coconnect development CA"));
        assert_eq!(ca.serial_number().to_bn().unwrap().num_bits(), 128);

        let mut all_keys: Vec<PKey<Private>> = vec![ca_key];
        for pf in &pki.parties {
            for (key_path, cert_path, usage, critical) in [
                (
                    &pf.signing_key,
                    &pf.signing_cert,
                    X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION,
                    true,
                ),
                (
                    &pf.encryption_key,
                    &pf.encryption_cert,
                    X509KeyUsage::KEY_ENCIPHERMENT | X509KeyUsage::DATA_ENCIPHERMENT,
                    true,
                ),
                (&pf.tls_key, &pf.tls_cert, X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::KEY_ENCIPHERMENT, false),
            ] {
                let cert = read_cert(cert_path);
                let key = read_key(key_path);
                assert!(verifies(&ca, &cert), "{} verifies against the CA", cert_path.display());
                assert!(cert.public_key().unwrap().public_eq(&key), "{}", key_path.display());
                assert_eq!(key.bits(), 2048);
                assert_eq!(cert.key_usage(), Some(usage), "{}", cert_path.display());
                assert_eq!(mode(key_path), 0o600, "{}", key_path.display());
                // 0644 unless a stricter umask removed bits; never wider.
                assert_eq!(mode(cert_path) & !0o644, 0, "{}", cert_path.display());
                assert_eq!(cert.authority_key_id().unwrap().as_slice(), ca.subject_key_id().unwrap().as_slice());
                assert!(cert.subject_key_id().is_some());
                let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
                assert!(text.contains("CA:FALSE"), "{text}");
                assert!(text.contains("sha256WithRSAEncryption"), "{text}");
                assert_eq!(text.contains("X509v3 Key Usage: critical"), critical, "{}", cert_path.display());
                assert_eq!(country(&cert).as_deref(), Some(pf.party.as_str()));
                assert!(
                    cert.not_after() <= Asn1Time::days_from_now(731).unwrap()
                        && cert.not_after() >= Asn1Time::days_from_now(729).unwrap()
                );
                assert!(all_keys.iter().all(|k| !k.public_eq(&key)), "distinct keys");
                all_keys.push(key);
            }
            let tls = read_cert(&pf.tls_cert);
            assert_eq!(
                tls.extended_key_usage(),
                Some(X509ExtendedKeyUsage::SSL_SERVER | X509ExtendedKeyUsage::SSL_CLIENT)
            );
            let sans: Vec<String> = tls
                .subject_alt_names()
                .unwrap()
                .iter()
                .map(|n| match (n.dnsname(), n.ipaddress()) {
                    (Some(d), _) => format!("DNS:{d}"),
                    (_, Some(ip)) => format!("IP:{}", hex(ip)),
                    _ => "?".into(),
                })
                .collect();
            assert_eq!(sans, ["DNS:localhost", "IP:7f000001", "IP:00000000000000000000000000000001"]);
            assert!(read_cert(&pf.signing_cert).extended_key_usage().is_none());
            let cn = read_cert(&pf.signing_cert)
                .subject_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .next()
                .unwrap()
                .data()
                .to_string()
                .unwrap();
            assert_eq!(cn, format!("{} signing", pf.party));
        }

        // Second call without force: refused, nothing changed.
        let before = fs::read(&pki.parties[0].signing_key).unwrap();
        let err = init_dev_pki(&out, &parties(&["KR"]), false).unwrap_err();
        assert!(matches!(err, PkiError::PartyExists { ref party, .. } if party == "KR"), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(fs::read(&pki.parties[0].signing_key).unwrap(), before);

        // With force: replaced, CA unchanged, modes still right.
        let ca_bytes = fs::read(&pki.ca_cert).unwrap();
        let again = init_dev_pki(&out, &parties(&["KR"]), true).unwrap();
        assert_ne!(fs::read(&again.parties[0].signing_key).unwrap(), before);
        assert_eq!(fs::read(&again.ca_cert).unwrap(), ca_bytes);
        assert_eq!(mode(&again.parties[0].signing_key), 0o600);
        assert!(verifies(&ca, &read_cert(&again.parties[0].signing_cert)));

        // A third party reuses the CA; ID is untouched.
        let id_cert = fs::read(&pki.parties[1].signing_cert).unwrap();
        let third = init_dev_pki(&out, &parties(&["EU27"]), false).unwrap();
        assert_eq!(fs::read(&third.ca_cert).unwrap(), ca_bytes);
        assert_eq!(fs::read(&pki.parties[1].signing_cert).unwrap(), id_cert);
        let eu = read_cert(&third.parties[0].signing_cert);
        assert!(verifies(&ca, &eu));
        assert_eq!(country(&eu), None, "no C= for a code that is not 2 letters");

        // No temporary files left behind.
        for d in [out.clone(), out.join("KR"), out.join("ID"), out.join("EU27")] {
            for e in fs::read_dir(&d).unwrap() {
                let name = e.unwrap().file_name();
                assert!(!name.to_string_lossy().starts_with('.'), "{name:?}");
            }
        }

        // The openssl command line tool agrees (if installed).
        let kr = &pki.parties[0];
        let runs: [(&[&str], Vec<&Path>); 3] = [
            (&[], vec![&kr.signing_cert, &kr.encryption_cert, &pki.parties[1].signing_cert]),
            (&["-purpose", "sslserver"], vec![&kr.tls_cert]),
            (&["-purpose", "sslclient"], vec![&kr.tls_cert]),
        ];
        for (extra, certs) in runs {
            let mut cmd = std::process::Command::new("openssl");
            cmd.arg("verify").args(extra).arg("-CAfile").arg(&pki.ca_cert).args(certs);
            match cmd.output() {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    eprintln!("openssl binary not found; skipping CLI verification");
                    break;
                }
                Err(e) => panic!("running openssl: {e}"),
                Ok(o) => assert!(
                    o.status.success(),
                    "openssl verify {extra:?} failed: {}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            }
        }
    }

    #[test]
    fn ec_signing_keys_are_p256_issued_by_the_same_ca_and_the_rest_stays_rsa() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("dev");
        let pki = init_dev_pki_with(&out, &parties(&["KR"]), false, SigningKeyKind::EcP256).unwrap();
        let ca = read_cert(&pki.ca_cert);
        let f = &pki.parties[0];
        let signing = read_key(&f.signing_key);
        let ec = signing.ec_key().expect("an EC signing key");
        assert_eq!(ec.group().curve_name(), Some(Nid::X9_62_PRIME256V1));
        let cert = read_cert(&f.signing_cert);
        assert!(cert.public_key().unwrap().public_eq(&signing));
        assert!(verifies(&ca, &cert));
        for key in [&f.encryption_key, &f.tls_key] {
            assert_eq!(read_key(key).rsa().expect("RSA").size() * 8, RSA_BITS, "{}", key.display());
        }
    }

    #[test]
    fn incomplete_or_foreign_ca_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        init_dev_pki(out, &[], false).unwrap();
        let key = fs::read(out.join("ca.key.pem")).unwrap();

        fs::remove_file(out.join("ca.key.pem")).unwrap();
        let err = init_dev_pki(out, &parties(&["KR"]), false).unwrap_err();
        assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err}");
        assert!(!out.join("KR").exists());

        // A key that does not belong to the certificate.
        let other = generate_key(out, None).unwrap().private_key_to_pem_pkcs8().unwrap();
        fs::write(out.join("ca.key.pem"), other).unwrap();
        let err = init_dev_pki(out, &parties(&["KR"]), false).unwrap_err();
        assert!(matches!(err, PkiError::CaKeyMismatch { .. }), "{err}");

        fs::write(out.join("ca.key.pem"), key).unwrap();
        init_dev_pki(out, &parties(&["KR"]), false).unwrap();
    }

    #[test]
    fn a_file_error_says_its_cause_once() {
        let dir = tempfile::tempdir().unwrap();
        // The output folder would be inside a regular file.
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        let err = init_dev_pki(&file.join("dev"), &parties(&["KR"]), false).unwrap_err();
        assert!(matches!(err, PkiError::Io { .. }), "{err}");
        let chained = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(chained.matches("os error").count(), 1, "{chained}");
        // OpenSSL's errors likewise: in the message, not again as the source.
        let crypto = crypto("signing", &file, None)(ErrorStack::get());
        assert!(std::error::Error::source(&crypto).is_none(), "{crypto}");
    }

    fn country(cert: &X509) -> Option<String> {
        cert.subject_name().entries_by_nid(openssl::nid::Nid::COUNTRYNAME).next().map(|e| e.data().to_string().unwrap())
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
