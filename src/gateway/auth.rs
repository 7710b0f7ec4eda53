//! HTTP Basic authentication of partners (framework 4.3.2), checked before the body is read:
//! the user name selects the partner, the password is checked against its Argon2 hash.
//! Verified credentials are remembered (as a SHA-256 of user and password) so the Argon2 cost
//! is paid once per partner, not per message.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;

use crate::config::{Partner, Settings};
use crate::http::scheme_credentials;

pub struct CredentialCache {
    verified: Mutex<HashSet<[u8; 32]>>,
    /// Argon2 costs ~19 MiB and tens of milliseconds: a few at a time, whoever asks.
    hashing: tokio::sync::Semaphore,
    /// Verified against when the user is unknown, so unknown and known users take as long.
    dummy_hash: String,
}

impl Default for CredentialCache {
    fn default() -> Self {
        CredentialCache {
            verified: Mutex::default(),
            // One at a time: an Argon2 verification holds 19 MiB, and the allocator keeps what a
            // thread used (eight partner connections opened at once took the gateway to
            // 165 MB of RSS); a request waiting here finds its credentials verified by the one
            // before it, if they were the same.
            hashing: tokio::sync::Semaphore::new(1),
            dummy_hash: crate::config::hash_password("coconnect-unknown-user").unwrap_or_default(),
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Malformed,
    UnknownUser,
    WrongPassword,
    /// The partner may not call from this address.
    SourceAddress,
}

/// The `(user, password)` of a Basic `Authorization` header.
pub fn basic_credentials(headers: &HeaderMap) -> Result<(String, String), AuthFailure> {
    let value = headers.get(AUTHORIZATION).ok_or(AuthFailure::Missing)?.to_str().map_err(|_| AuthFailure::Malformed)?;
    let encoded = scheme_credentials(value, "Basic").ok_or(AuthFailure::Malformed)?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| AuthFailure::Malformed)?;
    let text = String::from_utf8(decoded).map_err(|_| AuthFailure::Malformed)?;
    let (user, password) = text.split_once(':').ok_or(AuthFailure::Malformed)?;
    Ok((user.to_owned(), password.to_owned()))
}

impl CredentialCache {
    /// Authenticates the request's partner: the user name selects it, its allow-list is checked
    /// against `source` before any password work, then the password. Argon2 runs on a blocking
    /// thread, a few at a time.
    pub async fn authenticate(
        &self,
        settings: &Settings,
        headers: &HeaderMap,
        source: IpAddr,
    ) -> Result<Arc<Partner>, AuthFailure> {
        // A source no partner may call from learns nothing, not even whether a user exists.
        if !settings.partners.values().any(|p| p.allows(source)) {
            return Err(AuthFailure::SourceAddress);
        }
        let (user, password) = basic_credentials(headers)?;
        let Some(partner) = settings.partner_by_username(&user).cloned() else {
            let _ = self.verify_hash(self.dummy_hash.clone(), password, None).await;
            return Err(AuthFailure::UnknownUser);
        };
        if !partner.allows(source) {
            return Err(AuthFailure::SourceAddress);
        }
        let mut key_input = partner.inbound_password_hash.as_bytes().to_vec();
        key_input.push(0);
        key_input.extend_from_slice(password.as_bytes());
        let key = openssl::sha::sha256(&key_input);
        if self.is_verified(&key) {
            return Ok(partner);
        }
        if !self.verify_hash(partner.inbound_password_hash.clone(), password, Some(key)).await {
            return Err(AuthFailure::WrongPassword);
        }
        if let Ok(mut v) = self.verified.lock() {
            if v.len() > 1024 {
                v.clear();
            }
            v.insert(key);
        }
        Ok(partner)
    }

    fn is_verified(&self, key: &[u8; 32]) -> bool {
        self.verified.lock().map(|v| v.contains(key)).unwrap_or(false)
    }

    /// Checks `password` against `hash`; `cached` (the cache key of these credentials) is
    /// looked up again once it is this request's turn to hash.
    async fn verify_hash(&self, hash: String, password: String, cached: Option<[u8; 32]>) -> bool {
        let Ok(_permit) = self.hashing.acquire().await else { return false };
        if cached.is_some_and(|key| self.is_verified(&key)) {
            return true;
        }
        tokio::task::spawn_blocking(move || {
            use argon2::PasswordVerifier;
            argon2::PasswordHash::new(&hash)
                .is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn the_basic_scheme_is_matched_case_insensitively() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("KR:secret");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            let got = basic_credentials(&with_authorization(&format!("{scheme} {encoded}")));
            assert_eq!(got, Ok(("KR".to_owned(), "secret".to_owned())), "{scheme}");
        }
        assert_eq!(basic_credentials(&with_authorization(&format!("Basic   {encoded}"))).map(|c| c.0), Ok("KR".into()));
        assert_eq!(basic_credentials(&with_authorization(&format!("Bearer {encoded}"))), Err(AuthFailure::Malformed));
        assert_eq!(basic_credentials(&with_authorization(&format!("Basic{encoded}"))), Err(AuthFailure::Malformed));
        assert_eq!(basic_credentials(&HeaderMap::new()), Err(AuthFailure::Missing));
    }
}
