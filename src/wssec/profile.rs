//! What we accept from and send to one partner, as data: a [`Profile`] with an inbound side
//! (the algorithms, key-reference styles and forms we accept, what must be signed, the
//! Timestamp rule, whether and how the Body must be encrypted) and an outbound side (the one
//! choice of each that we send). [`inbound`](super::inbound) checks a message against the
//! inbound side, [`outbound`](super::outbound) builds one to the outbound side, and
//! [`ffi`](super::ffi) is told the algorithms instead of choosing them.
//!
//! [`Preset`]s set the whole profile at once for the stacks partners use (their own default
//! settings, found by testing each against a real peer: docs/interop.md). [`Preset::Strict`]
//! is the default and accepts exactly what coconnect sends. A preset or option weaker than the
//! strict profile ([`Profile::weaknesses`]: SHA-1, AES-CBC) is refused at load unless the
//! partner's configuration opts in to it by name.
//!
//! Must never: allow an algorithm that has no variant here (rsa-1_5 has none, on purpose), or
//! make a choice from a message: a profile comes from the partner's configuration only.

use super::{ns, SoapVersion};

/// `ds:SignatureMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    RsaSha256,
    EcdsaSha256,
    /// Weak: only with the partner's opt-in (`sha1`).
    RsaSha1,
}

/// `ds:DigestMethod` of each Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Sha256,
    /// Weak: only with the partner's opt-in (`sha1`).
    Sha1,
}

/// `ds:CanonicalizationMethod`, and the canonicalisation Transform of each Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonicalization {
    /// Exclusive XML Canonicalization 1.0 (the WS-Security norm).
    ExclusiveC14n,
    /// Canonical XML 1.1 (inclusive; signxml's default).
    C14n11,
    /// Canonical XML 1.0 (inclusive).
    C14n10,
}

/// The Transforms of each Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceTransforms {
    /// One canonicalisation transform (the signature's canonicalisation method).
    C14n,
    /// `enveloped-signature`, then the canonicalisation (xml-crypto's default): the enveloped
    /// transform removes nothing from a Body or Timestamp, which hold no signature.
    EnvelopedThenC14n,
}

/// How the signature's `ds:KeyInfo` names the signing certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKeyReference {
    /// `wsse:SecurityTokenReference/wsse:Reference` to an X.509 v3 BinarySecurityToken in the
    /// same Security header.
    BinarySecurityToken,
    /// `wsse:SecurityTokenReference/wsse:Reference` to an `X509PKIPathv1` BinarySecurityToken
    /// (the signer's certificate first... as the PKIPath orders it: the signer last).
    PkiPath,
    /// `wsse:SecurityTokenReference/wsse:KeyIdentifier` of ValueType `X509v3`: the certificate
    /// itself, base64 DER.
    X509KeyIdentifier,
    /// `wsse:SecurityTokenReference/ds:X509Data/ds:X509IssuerSerial`: names a certificate the
    /// partner's configuration pins.
    IssuerSerial,
    /// `wsse:KeyIdentifier` of ValueType `X509SubjectKeyIdentifier`: names a pinned certificate.
    SubjectKeyIdentifier,
    /// `wsse:KeyIdentifier` of ValueType `ThumbprintSHA1`: names a pinned certificate.
    Thumbprint,
}

/// How the EncryptedKey names the recipient's (our) certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedKeyReference {
    /// `wsse:SecurityTokenReference/ds:X509Data/ds:X509IssuerSerial`.
    IssuerSerial,
    /// `wsse:SecurityTokenReference/wsse:KeyIdentifier` of ValueType `X509SubjectKeyIdentifier`.
    SubjectKeyIdentifier,
    /// `wsse:SecurityTokenReference/wsse:KeyIdentifier` of ValueType `ThumbprintSHA1`.
    Thumbprint,
    /// `wsse:SecurityTokenReference/wsse:KeyIdentifier` of ValueType `X509v3` (the certificate).
    X509KeyIdentifier,
    /// `wsse:SecurityTokenReference/wsse:Reference` to a BinarySecurityToken holding the
    /// recipient's certificate, in the same Security header.
    BinarySecurityToken,
    /// A bare `ds:X509Data/ds:X509Certificate` in the EncryptedKey's KeyInfo (xml-encryption,
    /// python-xmlsec templates).
    X509Certificate,
}

/// `xenc:EncryptionMethod` of the EncryptedData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataEncryption {
    Aes256Gcm,
    Aes128Gcm,
    /// Weak: only with the partner's opt-in (`cbc`), and under the CBC countermeasures.
    Aes256Cbc,
    /// Weak: only with the partner's opt-in (`cbc`), and under the CBC countermeasures.
    Aes128Cbc,
}

/// `xenc:EncryptionMethod` of the EncryptedKey: RSA-OAEP with MGF1 and SHA-1 (the
/// `xmlenc#rsa-oaep-mgf1p` URI). The XML Encryption 1.1 `xmlenc11#rsa-oaep` (other digests and
/// MGFs) is not offered: libxmlsec1 1.2 does not implement it. RSA PKCS#1 v1.5 (`rsa-1_5`) is
/// never offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTransport {
    RsaOaepMgf1p,
}

/// What the Body's EncryptedData replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptedPart {
    /// The Body's content (`xenc#Content`).
    BodyContent,
    /// The Body's one child element (`xenc#Element`).
    BodyElement,
}

/// The Timestamp rule for what we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampRule {
    /// Exactly one `wsu:Timestamp`, within its lifetime; the replay cache keeps a message until
    /// it expires.
    Required,
    /// At most one; when there is none, the replay cache keeps the signature for
    /// `[security] replay_retention_seconds`, and a repeat of a message ID is answered with its
    /// first acknowledgement (message-ID idempotency).
    Optional,
}

/// The signature of what we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signing {
    pub method: SignatureAlgorithm,
    pub digest: DigestAlgorithm,
    pub c14n: Canonicalization,
    pub transforms: ReferenceTransforms,
    pub key_reference: SignatureKeyReference,
    /// Also sign the WS-Addressing headers we send (with `Outbound::addressing`).
    pub sign_addressing: bool,
}

/// The signatures we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureAccept {
    pub methods: Vec<SignatureAlgorithm>,
    pub digests: Vec<DigestAlgorithm>,
    pub c14n: Vec<Canonicalization>,
    pub transforms: Vec<ReferenceTransforms>,
    pub key_references: Vec<SignatureKeyReference>,
    /// The Timestamp, when there is one, must be signed (the Body always must).
    pub timestamp_signed: bool,
    /// WS-Addressing headers, when there are any, must be signed.
    pub addressing_signed: bool,
    /// The BinarySecurityToken the signature references must itself be signed.
    pub token_signed: bool,
}

/// How we encrypt what we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encrypting {
    pub data: DataEncryption,
    pub key_transport: KeyTransport,
    pub key_reference: EncryptedKeyReference,
    pub part: EncryptedPart,
    /// Also encrypt the `ds:Signature` (WCF's `SignBeforeEncryptAndEncryptSignature`).
    pub encrypt_signature: bool,
    /// Give each EncryptedData a `ds:KeyInfo` naming the EncryptedKey (a token reference and a
    /// `ds:RetrievalMethod`), for tools that decrypt one EncryptedData at a time (xmlsec1,
    /// xml-encryption). WCF writes none and is not given one.
    pub data_key_info: bool,
}

/// The encryption we accept (the Body must be encrypted when the partner's profile has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionAccept {
    pub data: Vec<DataEncryption>,
    pub key_transport: Vec<KeyTransport>,
    pub key_references: Vec<EncryptedKeyReference>,
    pub parts: Vec<EncryptedPart>,
    /// An encrypted `ds:Signature` in the header is accepted (and decrypted before it is
    /// verified).
    pub encrypted_signature: bool,
    /// The EncryptedKey may sit inside the Body's EncryptedData (its `ds:KeyInfo`), without a
    /// ReferenceList, instead of in the Security header (xml-encryption, python-xmlsec).
    pub embedded_key: bool,
}

/// What we accept from the partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub signature: SignatureAccept,
    pub timestamp: TimestampRule,
    /// `None`: the Body must not be encrypted (nothing is decrypted for a partner that has no
    /// business encrypting to us); `Some`: it must be, in one of these forms.
    pub encryption: Option<EncryptionAccept>,
}

/// What we send to the partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outbound {
    pub signature: Signing,
    /// Send a signed `wsu:Timestamp`.
    pub timestamp: bool,
    /// `None`: signed only.
    pub encryption: Option<Encrypting>,
    /// The SOAP version of the requests we send (answers follow the request's version).
    pub soap_version: SoapVersion,
    /// Send WS-Addressing headers (`wsa:Action`, `MessageID`, `To`; on answers `RelatesTo`).
    pub addressing: bool,
}

/// Everything one partner's WS-Security agrees on, both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The preset it was built from (options may have been changed after).
    pub preset: Preset,
    pub inbound: Inbound,
    pub outbound: Outbound,
}

/// The named profiles: each stack's defaults as its partners' gateways send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// What coconnect sends: exclusive C14N, rsa-sha256, sha256, a BinarySecurityToken
    /// reference, Body and Timestamp signed, a Timestamp required; AES-256-GCM Body content
    /// under RSA-OAEP to our certificate named by issuer and serial.
    Strict,
    /// Apache WSS4J 1.6 (and CXF on it) with its defaults: rsa-sha1 and sha1, the signer named by
    /// issuer and serial, the Body signed (a Timestamp optional), AES-128-CBC Body content, the
    /// EncryptedKey naming our certificate by issuer and serial.
    Wss4jDefaults,
    /// Apache CXF's usual configuration (`Timestamp Signature Encrypt` actions with SHA-256):
    /// rsa-sha256, the signer by issuer and serial or by token, a signed Timestamp, AES-128/256
    /// CBC or GCM.
    Cxf,
    /// .NET Framework WCF, mutual certificates, algorithm suite Basic256Sha256, default
    /// protection order (sign, then encrypt Body and signature): rsa-sha256, sha256,
    /// thumbprint and SKI references, AES-256-CBC, signed WS-Addressing headers.
    WcfBasic256Sha256,
    /// The same with algorithm suite Basic256: rsa-sha1 and sha1.
    WcfBasic256,
    /// python zeep 4 (`Signature` and `BinarySignature`): rsa-sha1 and sha1, the signer by
    /// issuer and serial or by token, the Body (and a Timestamp if any) signed; no encryption.
    Zeep,
    /// node `soap` (`WSSecurityCert` with xml-crypto; `xml-encryption`): rsa-sha256, sha256,
    /// `[enveloped-signature, exc-c14n]` transforms, a token reference, Body and Timestamp
    /// signed; AES-256-CBC Body element, the EncryptedKey carrying our certificate.
    NodeSoap,
}

impl Preset {
    pub const ALL: [Preset; 7] = [
        Preset::Strict,
        Preset::Wss4jDefaults,
        Preset::Cxf,
        Preset::WcfBasic256Sha256,
        Preset::WcfBasic256,
        Preset::Zeep,
        Preset::NodeSoap,
    ];

    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Strict => "strict",
            Preset::Wss4jDefaults => "wss4j-defaults",
            Preset::Cxf => "cxf",
            Preset::WcfBasic256Sha256 => "wcf-basic256sha256",
            Preset::WcfBasic256 => "wcf-basic256",
            Preset::Zeep => "zeep",
            Preset::NodeSoap => "node-soap",
        }
    }

    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The preset's profile; `encrypt` says whether the Body is encrypted (both directions).
    pub fn profile(self, encrypt: bool) -> Profile {
        use Canonicalization::ExclusiveC14n as Exc;
        use DataEncryption as D;
        use DigestAlgorithm as H;
        use EncryptedKeyReference as EK;
        use SignatureAlgorithm as S;
        use SignatureKeyReference as K;
        let strict = Profile::strict(encrypt);
        let accept = |methods: Vec<S>, digests: Vec<H>, keys: Vec<K>, timestamp_signed: bool| SignatureAccept {
            methods,
            digests,
            c14n: vec![Exc],
            transforms: vec![ReferenceTransforms::C14n],
            key_references: keys,
            timestamp_signed,
            addressing_signed: false,
            token_signed: false,
        };
        let enc_accept = |data: Vec<D>, keys: Vec<EK>, parts: Vec<EncryptedPart>, signature: bool| EncryptionAccept {
            data,
            key_transport: vec![KeyTransport::RsaOaepMgf1p],
            key_references: keys,
            parts,
            encrypted_signature: signature,
            embedded_key: false,
        };
        let sending = |method, digest, key_reference| Signing {
            method,
            digest,
            c14n: Exc,
            transforms: ReferenceTransforms::C14n,
            key_reference,
            sign_addressing: false,
        };
        let encrypting = |data, key_reference, part, encrypt_signature| Encrypting {
            data,
            key_transport: KeyTransport::RsaOaepMgf1p,
            key_reference,
            part,
            encrypt_signature,
            data_key_info: true,
        };
        let with = |inbound: Inbound, outbound: Outbound| Profile { preset: self, inbound, outbound };
        let content = EncryptedPart::BodyContent;
        match self {
            Preset::Strict => strict,
            Preset::Wss4jDefaults => with(
                Inbound {
                    signature: accept(
                        vec![S::RsaSha1, S::RsaSha256],
                        vec![H::Sha1, H::Sha256],
                        vec![
                            K::IssuerSerial,
                            K::BinarySecurityToken,
                            K::SubjectKeyIdentifier,
                            K::Thumbprint,
                            K::X509KeyIdentifier,
                        ],
                        false,
                    ),
                    timestamp: TimestampRule::Optional,
                    encryption: encrypt.then(|| {
                        enc_accept(
                            vec![D::Aes128Cbc, D::Aes256Cbc, D::Aes128Gcm, D::Aes256Gcm],
                            vec![
                                EK::IssuerSerial,
                                EK::SubjectKeyIdentifier,
                                EK::Thumbprint,
                                EK::X509KeyIdentifier,
                                EK::BinarySecurityToken,
                            ],
                            vec![content],
                            false,
                        )
                    }),
                },
                Outbound {
                    signature: sending(S::RsaSha1, H::Sha1, K::IssuerSerial),
                    timestamp: true,
                    encryption: encrypt.then(|| encrypting(D::Aes128Cbc, EK::IssuerSerial, content, false)),
                    soap_version: SoapVersion::V11,
                    addressing: false,
                },
            ),
            Preset::Cxf => with(
                Inbound {
                    signature: accept(
                        vec![S::RsaSha256],
                        vec![H::Sha256],
                        vec![
                            K::IssuerSerial,
                            K::BinarySecurityToken,
                            K::SubjectKeyIdentifier,
                            K::Thumbprint,
                            K::X509KeyIdentifier,
                        ],
                        false,
                    ),
                    timestamp: TimestampRule::Optional,
                    encryption: encrypt.then(|| {
                        enc_accept(
                            vec![D::Aes128Cbc, D::Aes256Cbc, D::Aes128Gcm, D::Aes256Gcm],
                            vec![
                                EK::IssuerSerial,
                                EK::SubjectKeyIdentifier,
                                EK::Thumbprint,
                                EK::X509KeyIdentifier,
                                EK::BinarySecurityToken,
                            ],
                            vec![content],
                            false,
                        )
                    }),
                },
                Outbound {
                    signature: sending(S::RsaSha256, H::Sha256, K::BinarySecurityToken),
                    timestamp: true,
                    encryption: encrypt.then(|| encrypting(D::Aes256Gcm, EK::IssuerSerial, content, false)),
                    soap_version: SoapVersion::V11,
                    addressing: false,
                },
            ),
            Preset::WcfBasic256Sha256 | Preset::WcfBasic256 => {
                // BasicHttpBinding, Message security, certificates: asymmetric WS-Security 1.0,
                // sign then encrypt Body and signature, exactly the suite's algorithms; SOAP 1.1
                // without WS-Addressing (addressing headers, when a binding adds them, must be
                // signed).
                let (method, digest) =
                    if self == Preset::WcfBasic256 { (S::RsaSha1, H::Sha1) } else { (S::RsaSha256, H::Sha256) };
                let mut signature = accept(
                    vec![method],
                    vec![digest],
                    vec![K::BinarySecurityToken, K::SubjectKeyIdentifier, K::Thumbprint, K::IssuerSerial],
                    true,
                );
                signature.addressing_signed = true;
                with(
                    Inbound {
                        signature,
                        timestamp: TimestampRule::Required,
                        encryption: encrypt.then(|| {
                            enc_accept(
                                vec![D::Aes256Cbc],
                                vec![EK::SubjectKeyIdentifier, EK::Thumbprint, EK::IssuerSerial],
                                vec![content],
                                true,
                            )
                        }),
                    },
                    Outbound {
                        signature: sending(method, digest, K::BinarySecurityToken),
                        timestamp: true,
                        encryption: encrypt.then(|| Encrypting {
                            data_key_info: false,
                            ..encrypting(D::Aes256Cbc, EK::SubjectKeyIdentifier, content, true)
                        }),
                        soap_version: SoapVersion::V11,
                        addressing: false,
                    },
                )
            }
            Preset::Zeep => with(
                Inbound {
                    signature: accept(
                        vec![S::RsaSha1, S::RsaSha256],
                        vec![H::Sha1, H::Sha256],
                        vec![K::IssuerSerial, K::BinarySecurityToken],
                        true,
                    ),
                    timestamp: TimestampRule::Optional,
                    encryption: None,
                },
                Outbound {
                    signature: sending(S::RsaSha1, H::Sha1, K::BinarySecurityToken),
                    timestamp: true,
                    encryption: None,
                    soap_version: SoapVersion::V11,
                    addressing: false,
                },
            ),
            Preset::NodeSoap => {
                let mut signature = accept(vec![S::RsaSha256], vec![H::Sha256], vec![K::BinarySecurityToken], true);
                signature.transforms = vec![ReferenceTransforms::EnvelopedThenC14n, ReferenceTransforms::C14n];
                with(
                    Inbound {
                        signature,
                        timestamp: TimestampRule::Optional,
                        encryption: encrypt.then(|| {
                            let mut e = enc_accept(
                                vec![D::Aes256Gcm, D::Aes128Gcm],
                                vec![EK::X509Certificate, EK::IssuerSerial, EK::BinarySecurityToken],
                                vec![EncryptedPart::BodyElement, EncryptedPart::BodyContent],
                                false,
                            );
                            // xml-encryption writes the EncryptedKey into the EncryptedData.
                            e.embedded_key = true;
                            e
                        }),
                    },
                    Outbound {
                        signature: Signing {
                            transforms: ReferenceTransforms::EnvelopedThenC14n,
                            ..sending(S::RsaSha256, H::Sha256, K::BinarySecurityToken)
                        },
                        timestamp: true,
                        encryption: encrypt
                            .then(|| encrypting(D::Aes256Gcm, EK::X509Certificate, EncryptedPart::BodyElement, false)),
                        soap_version: SoapVersion::V11,
                        addressing: false,
                    },
                )
            }
        }
    }
}

impl Profile {
    /// Today's profile: exclusive C14N, rsa-sha256, sha256 digests, a BinarySecurityToken
    /// reference, Body and Timestamp signed, a Timestamp required; with `encrypt`, the Body's
    /// content AES-256-GCM under an RSA-OAEP (mgf1p) key named by issuer and serial.
    pub fn strict(encrypt: bool) -> Self {
        Profile {
            preset: Preset::Strict,
            inbound: Inbound {
                signature: SignatureAccept {
                    methods: vec![SignatureAlgorithm::RsaSha256],
                    digests: vec![DigestAlgorithm::Sha256],
                    c14n: vec![Canonicalization::ExclusiveC14n],
                    transforms: vec![ReferenceTransforms::C14n],
                    key_references: vec![SignatureKeyReference::BinarySecurityToken],
                    timestamp_signed: true,
                    addressing_signed: false,
                    token_signed: false,
                },
                timestamp: TimestampRule::Required,
                encryption: encrypt.then(|| EncryptionAccept {
                    data: vec![DataEncryption::Aes256Gcm],
                    key_transport: vec![KeyTransport::RsaOaepMgf1p],
                    key_references: vec![EncryptedKeyReference::IssuerSerial],
                    parts: vec![EncryptedPart::BodyContent],
                    encrypted_signature: false,
                    embedded_key: false,
                }),
            },
            outbound: Outbound {
                signature: Signing {
                    method: SignatureAlgorithm::RsaSha256,
                    digest: DigestAlgorithm::Sha256,
                    c14n: Canonicalization::ExclusiveC14n,
                    transforms: ReferenceTransforms::C14n,
                    key_reference: SignatureKeyReference::BinarySecurityToken,
                    sign_addressing: false,
                },
                timestamp: true,
                encryption: encrypt.then_some(Encrypting {
                    data: DataEncryption::Aes256Gcm,
                    key_transport: KeyTransport::RsaOaepMgf1p,
                    key_reference: EncryptedKeyReference::IssuerSerial,
                    part: EncryptedPart::BodyContent,
                    encrypt_signature: false,
                    data_key_info: true,
                }),
                soap_version: SoapVersion::V11,
                addressing: false,
            },
        }
    }

    /// The same profile for messages that are signed only (acknowledgements, framework 4.4.3).
    pub fn signed_only(&self) -> Self {
        let mut p = self.clone();
        p.inbound.encryption = None;
        p.outbound.encryption = None;
        p
    }

    /// Whether the partner's Body is encrypted (both directions agree).
    pub fn encrypts(&self) -> bool {
        self.outbound.encryption.is_some()
    }

    /// The opt-ins this profile needs, by name: `sha1` (rsa-sha1 or sha1 digests accepted or
    /// sent), `cbc` (AES-CBC accepted or sent). Empty for anything as strong as the default.
    pub fn weaknesses(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let sig = &self.inbound.signature;
        let out_sig = &self.outbound.signature;
        let sha1 = sig.methods.contains(&SignatureAlgorithm::RsaSha1)
            || sig.digests.contains(&DigestAlgorithm::Sha1)
            || out_sig.method == SignatureAlgorithm::RsaSha1
            || out_sig.digest == DigestAlgorithm::Sha1;
        if sha1 {
            out.push("sha1");
        }
        let cbc = self.inbound.encryption.as_ref().is_some_and(|e| e.data.iter().any(|d| d.is_cbc()))
            || self.outbound.encryption.is_some_and(|e| e.data.is_cbc());
        if cbc {
            out.push("cbc");
        }
        out
    }

    /// Whether a CBC message may arrive: then decryption and signature failures are answered
    /// alike (the CBC countermeasures).
    pub fn accepts_cbc(&self) -> bool {
        self.inbound.encryption.as_ref().is_some_and(|e| e.data.iter().any(|d| d.is_cbc()))
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::strict(false)
    }
}

impl SignatureAlgorithm {
    pub const ALL: [SignatureAlgorithm; 3] =
        [SignatureAlgorithm::RsaSha256, SignatureAlgorithm::EcdsaSha256, SignatureAlgorithm::RsaSha1];

    pub fn uri(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha256 => ns::RSA_SHA256,
            SignatureAlgorithm::EcdsaSha256 => ns::ECDSA_SHA256,
            SignatureAlgorithm::RsaSha1 => ns::RSA_SHA1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha256 => "rsa-sha256",
            SignatureAlgorithm::EcdsaSha256 => "ecdsa-sha256",
            SignatureAlgorithm::RsaSha1 => "rsa-sha1",
        }
    }
}

impl DigestAlgorithm {
    pub const ALL: [DigestAlgorithm; 2] = [DigestAlgorithm::Sha256, DigestAlgorithm::Sha1];

    pub fn uri(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => ns::SHA256,
            DigestAlgorithm::Sha1 => ns::SHA1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha1 => "sha1",
        }
    }
}

impl Canonicalization {
    pub const ALL: [Canonicalization; 3] =
        [Canonicalization::ExclusiveC14n, Canonicalization::C14n11, Canonicalization::C14n10];

    pub fn uri(self) -> &'static str {
        match self {
            Canonicalization::ExclusiveC14n => ns::EXC_C14N,
            Canonicalization::C14n11 => ns::C14N11,
            Canonicalization::C14n10 => ns::C14N10,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Canonicalization::ExclusiveC14n => "exc-c14n",
            Canonicalization::C14n11 => "c14n11",
            Canonicalization::C14n10 => "c14n",
        }
    }
}

impl ReferenceTransforms {
    pub const ALL: [ReferenceTransforms; 2] = [ReferenceTransforms::C14n, ReferenceTransforms::EnvelopedThenC14n];

    pub fn name(self) -> &'static str {
        match self {
            ReferenceTransforms::C14n => "c14n",
            ReferenceTransforms::EnvelopedThenC14n => "enveloped-signature+c14n",
        }
    }
}

impl SignatureKeyReference {
    pub const ALL: [SignatureKeyReference; 6] = [
        SignatureKeyReference::BinarySecurityToken,
        SignatureKeyReference::PkiPath,
        SignatureKeyReference::X509KeyIdentifier,
        SignatureKeyReference::IssuerSerial,
        SignatureKeyReference::SubjectKeyIdentifier,
        SignatureKeyReference::Thumbprint,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SignatureKeyReference::BinarySecurityToken => "bst",
            SignatureKeyReference::PkiPath => "pkipath",
            SignatureKeyReference::X509KeyIdentifier => "x509-key-identifier",
            SignatureKeyReference::IssuerSerial => "issuer-serial",
            SignatureKeyReference::SubjectKeyIdentifier => "ski",
            SignatureKeyReference::Thumbprint => "thumbprint",
        }
    }

    /// The reference names a certificate without carrying it: it resolves only against the
    /// partner's pinned certificates, never a key from the message.
    pub fn carries_no_certificate(self) -> bool {
        matches!(
            self,
            SignatureKeyReference::IssuerSerial
                | SignatureKeyReference::SubjectKeyIdentifier
                | SignatureKeyReference::Thumbprint
        )
    }
}

impl EncryptedKeyReference {
    pub const ALL: [EncryptedKeyReference; 6] = [
        EncryptedKeyReference::IssuerSerial,
        EncryptedKeyReference::SubjectKeyIdentifier,
        EncryptedKeyReference::Thumbprint,
        EncryptedKeyReference::X509KeyIdentifier,
        EncryptedKeyReference::BinarySecurityToken,
        EncryptedKeyReference::X509Certificate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EncryptedKeyReference::IssuerSerial => "issuer-serial",
            EncryptedKeyReference::SubjectKeyIdentifier => "ski",
            EncryptedKeyReference::Thumbprint => "thumbprint",
            EncryptedKeyReference::X509KeyIdentifier => "x509-key-identifier",
            EncryptedKeyReference::BinarySecurityToken => "bst",
            EncryptedKeyReference::X509Certificate => "x509-certificate",
        }
    }
}

impl DataEncryption {
    pub const ALL: [DataEncryption; 4] =
        [DataEncryption::Aes256Gcm, DataEncryption::Aes128Gcm, DataEncryption::Aes256Cbc, DataEncryption::Aes128Cbc];

    pub fn uri(self) -> &'static str {
        match self {
            DataEncryption::Aes256Gcm => ns::AES256_GCM,
            DataEncryption::Aes128Gcm => ns::AES128_GCM,
            DataEncryption::Aes256Cbc => ns::AES256_CBC,
            DataEncryption::Aes128Cbc => ns::AES128_CBC,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DataEncryption::Aes256Gcm => "aes256-gcm",
            DataEncryption::Aes128Gcm => "aes128-gcm",
            DataEncryption::Aes256Cbc => "aes256-cbc",
            DataEncryption::Aes128Cbc => "aes128-cbc",
        }
    }

    /// Length of the session key in bytes.
    pub fn key_bytes(self) -> usize {
        match self {
            DataEncryption::Aes256Gcm | DataEncryption::Aes256Cbc => 32,
            DataEncryption::Aes128Gcm | DataEncryption::Aes128Cbc => 16,
        }
    }

    pub fn is_cbc(self) -> bool {
        matches!(self, DataEncryption::Aes256Cbc | DataEncryption::Aes128Cbc)
    }
}

impl KeyTransport {
    pub const ALL: [KeyTransport; 1] = [KeyTransport::RsaOaepMgf1p];

    pub fn uri(self) -> &'static str {
        match self {
            KeyTransport::RsaOaepMgf1p => ns::RSA_OAEP_MGF1P,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyTransport::RsaOaepMgf1p => "rsa-oaep-mgf1p",
        }
    }

    /// The OAEP digest (`ds:DigestMethod` inside the EncryptionMethod; SHA-1 is the URI's
    /// default and what every stack sends).
    pub fn oaep_digest_uri(self) -> &'static str {
        match self {
            KeyTransport::RsaOaepMgf1p => ns::SHA1,
        }
    }
}

impl EncryptedPart {
    pub const ALL: [EncryptedPart; 2] = [EncryptedPart::BodyContent, EncryptedPart::BodyElement];

    /// The EncryptedData `Type`.
    pub fn type_uri(self) -> &'static str {
        match self {
            EncryptedPart::BodyContent => ns::ENC_CONTENT,
            EncryptedPart::BodyElement => ns::ENC_ELEMENT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EncryptedPart::BodyContent => "content",
            EncryptedPart::BodyElement => "element",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strict_profile_is_todays_and_acknowledgements_are_signed_only() {
        let p = Profile::strict(true);
        assert_eq!(p.outbound.signature.method.uri(), ns::RSA_SHA256);
        assert_eq!(p.outbound.signature.digest.uri(), ns::SHA256);
        assert_eq!(p.outbound.signature.c14n.uri(), ns::EXC_C14N);
        let e = p.outbound.encryption.expect("encrypts");
        assert_eq!((e.data.uri(), e.data.key_bytes()), (ns::AES256_GCM, 32));
        assert_eq!((e.key_transport.uri(), e.key_transport.oaep_digest_uri()), (ns::RSA_OAEP_MGF1P, ns::SHA1));
        assert_eq!(e.part.type_uri(), ns::ENC_CONTENT);
        assert_eq!(p.signed_only(), Profile::strict(false));
        assert_eq!(Profile::default(), Profile::strict(false));
        assert_eq!(Preset::Strict.profile(true), p);
        assert!(p.weaknesses().is_empty());
    }

    #[test]
    fn every_preset_has_a_name_and_the_weak_ones_say_so() {
        for preset in Preset::ALL {
            assert_eq!(Preset::from_name(preset.name()), Some(preset));
            for encrypt in [false, true] {
                let p = preset.profile(encrypt);
                assert_eq!(p.preset, preset);
                // zeep has no XML Encryption: its preset never encrypts (the configuration
                // refuses it with sign-encrypt).
                let encrypts = encrypt && preset != Preset::Zeep;
                assert_eq!(p.encrypts(), encrypts, "{preset:?}");
                assert_eq!(p.inbound.encryption.is_some(), encrypts, "{preset:?}");
                // What we send is always something we would accept ourselves under the preset.
                let (s, a) = (&p.outbound.signature, &p.inbound.signature);
                assert!(a.methods.contains(&s.method) && a.digests.contains(&s.digest), "{preset:?}");
                assert!(a.c14n.contains(&s.c14n) && a.transforms.contains(&s.transforms), "{preset:?}");
            }
        }
        assert_eq!(Preset::Wss4jDefaults.profile(true).weaknesses(), ["sha1", "cbc"]);
        assert_eq!(Preset::Zeep.profile(false).weaknesses(), ["sha1"]);
        assert_eq!(Preset::WcfBasic256Sha256.profile(true).weaknesses(), ["cbc"]);
        assert!(Preset::Cxf.profile(false).weaknesses().is_empty());
        assert_eq!(Preset::Cxf.profile(true).weaknesses(), ["cbc"]);
    }
}
