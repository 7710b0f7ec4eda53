//! Which signing certificates we accept from a partner: pinned certificates (exact match) or a
//! chain to the partner's configured trust anchors. Only the configured anchors are used: never
//! the system CA bundle, never libxmlsec1's X509 store.

use chrono::{DateTime, Utc};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509StoreContext, X509};

use super::material::Certificate;
use super::SecurityError;

/// Trust settings for one partner's signing certificates.
pub struct PartnerTrust {
    pinned: Vec<Certificate>,
    anchors: Option<X509Store>,
    /// With anchors, the subject (RFC 2253) a chained certificate must carry, so that a
    /// certificate the same CA issued to another partner is not accepted for this one.
    subject: Option<String>,
}

impl std::fmt::Debug for PartnerTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartnerTrust")
            .field("pinned", &self.pinned.iter().map(|c| &c.subject).collect::<Vec<_>>())
            .field("anchors", &self.anchors.is_some())
            .finish()
    }
}

impl PartnerTrust {
    /// `pinned`: certificates accepted as they are; `anchors`: CA certificates a partner's
    /// certificate may chain to. At least one of the two must be non-empty.
    /// `subject` is required with `anchors`: a CA usually certifies every partner, and one
    /// partner must not be able to sign as another.
    pub fn new(
        pinned: Vec<Certificate>,
        anchors: &[Certificate],
        subject: Option<String>,
    ) -> Result<Self, SecurityError> {
        if pinned.is_empty() && anchors.is_empty() {
            return Err(SecurityError::KeyMaterial("a partner needs pinned certificates or trust anchors".into()));
        }
        if !anchors.is_empty() && subject.is_none() {
            return Err(SecurityError::KeyMaterial(
                "trust by CA chain needs the partner's expected signing certificate subject".into(),
            ));
        }
        let anchors = if anchors.is_empty() {
            None
        } else {
            let mut builder = X509StoreBuilder::new().map_err(|e| SecurityError::KeyMaterial(e.to_string()))?;
            for a in anchors {
                builder.add_cert(a.x509()).map_err(|e| SecurityError::KeyMaterial(e.to_string()))?;
            }
            Some(builder.build())
        };
        Ok(PartnerTrust { pinned, anchors, subject })
    }

    /// The pinned certificate `names` picks (a reference that carries no certificate: issuer
    /// and serial, SKI, thumbprint). Only pinned certificates can be found so: never a key the
    /// message brings.
    pub fn pinned(&self, names: impl Fn(&Certificate) -> bool) -> Option<&Certificate> {
        self.pinned.iter().find(|c| names(c))
    }

    /// Whether any certificate is pinned (a profile that accepts references without a
    /// certificate needs them).
    pub fn has_pinned(&self) -> bool {
        !self.pinned.is_empty()
    }

    /// Accepts `cert` if it is pinned and currently valid, or chains to an anchor at `now`.
    pub fn check(&self, cert: &Certificate, now: DateTime<Utc>) -> Result<(), SecurityError> {
        self.check_with_chain(cert, &[], now)
    }

    /// [`Self::check`], with intermediate certificates the message brought (an `X509PKIPathv1`
    /// token) offered for the chain to an anchor; they are never trusted themselves.
    pub fn check_with_chain(
        &self,
        cert: &Certificate,
        intermediates: &[Certificate],
        now: DateTime<Utc>,
    ) -> Result<(), SecurityError> {
        let x = cert.x509();
        check_validity(&x, now)?;
        if self.pinned.iter().any(|p| p.der == cert.der) {
            return Ok(());
        }
        let (Some(store), Some(subject)) = (&self.anchors, &self.subject) else {
            return Err(SecurityError::UntrustedCertificate(format!(
                "{} is not a pinned certificate of this partner",
                cert.subject
            )));
        };
        // A certificate the CA issued for TLS or encryption must not sign.
        if let Some(usage) = x.key_usage() {
            use openssl::x509::X509KeyUsage as Ku;
            if !usage.intersects(Ku::DIGITAL_SIGNATURE | Ku::NON_REPUDIATION) {
                return Err(SecurityError::UntrustedCertificate(format!(
                    "{} is not a signing certificate (key usage)",
                    cert.subject
                )));
            }
        }
        let mut chain = Stack::new().map_err(|e| SecurityError::KeyMaterial(e.to_string()))?;
        for i in intermediates {
            chain.push(i.x509()).map_err(|e| SecurityError::KeyMaterial(e.to_string()))?;
        }
        let mut ctx = X509StoreContext::new().map_err(|e| SecurityError::KeyMaterial(e.to_string()))?;
        let (ok, reason) = ctx
            .init(store, &x, &chain, |c| {
                let ok = c.verify_cert()?;
                Ok((ok, c.error().error_string().to_owned()))
            })
            .map_err(|e| SecurityError::UntrustedCertificate(e.to_string()))?;
        if ok && &cert.subject != subject {
            Err(SecurityError::UntrustedCertificate(format!(
                "{} is not this partner's subject {subject}",
                cert.subject
            )))
        } else if ok {
            Ok(())
        } else {
            Err(SecurityError::UntrustedCertificate(format!("{}: {reason}", cert.subject)))
        }
    }
}

fn check_validity(x: &X509, now: DateTime<Utc>) -> Result<(), SecurityError> {
    let now_asn1 =
        openssl::asn1::Asn1Time::from_unix(now.timestamp()).map_err(|e| SecurityError::KeyMaterial(e.to_string()))?;
    if x.not_before() > now_asn1 {
        return Err(SecurityError::UntrustedCertificate("certificate not yet valid".into()));
    }
    if x.not_after() < now_asn1 {
        return Err(SecurityError::UntrustedCertificate("certificate expired".into()));
    }
    Ok(())
}
