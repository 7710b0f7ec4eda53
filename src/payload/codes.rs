//! Code lists the CO payload is checked against.
//!
//! - ISO 3166-1 alpha-2 country codes: the full list, generated at build time by `build.rs` from
//!   Debian's `iso-codes` package (never hand-typed here).
//! - UN/EDIFACT 1001 document name codes: only the two this gateway deals with.
//! - UN/ECE Recommendation 21 package type codes and Recommendation 20 unit codes: no list is
//!   shipped, so only their form is checked (see [`is_package_type_code`], [`is_unit_code`]).
//!   Checking membership would need the published code list as a build input, as for ISO 3166.

// Defines `pub static ISO3166_ALPHA2: &[&str]`, sorted and deduplicated.
include!(concat!(env!("OUT_DIR"), "/iso3166_alpha2.rs"));

/// UN/EDIFACT 1001 "Certificate of origin": the only `LPCO/TypeCode` this payload accepts.
pub const CERTIFICATE_OF_ORIGIN: &str = "861";

/// UN/EDIFACT 1001 "Declaration of origin" (Annex IV push model); not a CO.
pub const DECLARATION_OF_ORIGIN: &str = "862";

/// Whether `s` is an ISO 3166-1 alpha-2 country code (exact, upper case).
pub fn is_country_code(s: &str) -> bool {
    ISO3166_ALPHA2.binary_search(&s).is_ok()
}

/// Whether `s` has the form of a UN/ECE Rec 21 package type code: two upper-case letters or
/// digits. Form only: the Rec 21 list itself is not shipped with the gateway.
pub fn is_package_type_code(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether `s` has the form of a UN/ECE Rec 20 unit code (KGM, TNE, C62 ...): two or three
/// upper-case letters or digits. Form only, like [`is_package_type_code`].
pub fn is_unit_code(s: &str) -> bool {
    (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether `s` has the form of an ISO 4217 alphabetic currency code (three upper-case letters).
pub fn is_currency_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// Whether `s` has the form of a UN/LOCODE: an alpha-2 country code and three letters or
/// digits 2-9 (KRPUS, IDJKT). The country part is not looked up: UN/LOCODE also uses codes
/// outside ISO 3166-1 (XZ, international waters).
pub fn is_locode(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..].iter().all(|&c| c.is_ascii_uppercase() || (b'2'..=b'9').contains(&c))
}

/// Whether `s` is a Harmonized System code as the CO carries it: 6 to 10 digits.
pub fn is_hs_code(s: &str) -> bool {
    (6..=10).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_list_is_sorted_and_complete_enough() {
        assert!(ISO3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        for c in ["KR", "ID", "AD", "ZW"] {
            assert!(is_country_code(c), "{c}");
        }
        for c in ["XX", "kr", "KOR", "", "K"] {
            assert!(!is_country_code(c), "{c}");
        }
    }

    #[test]
    fn code_forms() {
        assert!(is_package_type_code("CT") && is_package_type_code("4H"));
        assert!(!is_package_type_code("ct") && !is_package_type_code("CTN"));
        assert!(is_unit_code("KGM") && is_unit_code("C62") && !is_unit_code("kg"));
        assert!(is_currency_code("USD") && !is_currency_code("US1"));
        assert!(is_locode("KRPUS") && is_locode("IDJKT") && is_locode("USNY2"));
        assert!(!is_locode("KRPU1") && !is_locode("krpus") && !is_locode("KRPUSA"));
        assert!(is_hs_code("390761") && is_hs_code("8708299000"));
        assert!(!is_hs_code("12AB") && !is_hs_code("39076") && !is_hs_code("87082990001"));
    }
}
