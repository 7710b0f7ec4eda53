//! Party codes: the identifier of a customs administration in configuration, key folders and
//! message headers (`[A-Z]{2}[A-Z0-9]{0,8}`, an ISO 3166 country code first).
//!
//! Owns: the rule for a valid party code, the one place both the configuration and the
//! development PKI check it. Must never: import another module of this crate (it is the bottom
//! layer, so that anything may use it).

/// True if `code` matches `[A-Z]{2}[A-Z0-9]{0,8}`. Such a code is also a safe
/// directory name.
pub fn is_valid_party_code(code: &str) -> bool {
    let b = code.as_bytes();
    (2..=10).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}
