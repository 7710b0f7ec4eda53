//! The code registry (`src/codes.rs`) against the code and the docs: every stable code the
//! code can give is registered and documented, and the docs name no code that does not exist.

use std::collections::BTreeSet;

const FAMILIES: &[&str] = &["AMEND", "API", "AUTH", "CLAIM", "CO", "DO", "GW", "LC", "LOOKUP", "MSG", "WSS"];

/// Code-shaped tokens (`FAMILY-WORD[-WORD...]`) standing between two `quote`s in `text`. Each
/// candidate is found by its family and checked for the quote on both sides, so an unpaired
/// quote elsewhere (a `'"'` char literal) cannot hide the codes after it.
fn tokens(text: &str, quote: char) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for family in FAMILIES {
        let opening = format!("{quote}{family}-");
        for (start, _) in text.match_indices(&opening) {
            let body = &text[start + 1..];
            let Some(end) = body.find(quote) else { continue };
            let candidate = &body[..end];
            let rest = &candidate[family.len() + 1..];
            let shaped = rest.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && rest.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
                && !rest.ends_with('-');
            if shaped {
                found.insert(candidate.to_owned());
            }
        }
    }
    found
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// String literals of the non-test code of `src/` (a file's test module closes it).
fn source_codes() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                // The registry itself lists every code: it must not count as using them.
                && path.file_name().is_some_and(|n| n != "tests.rs" && n != "codes.rs")
            {
                let text = read(&path);
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: String =
                    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
                out.extend(tokens(&code, '"'));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&crate::common::repo_root().join("src"), &mut out);
    out
}

fn documented_codes() -> BTreeSet<String> {
    let root = crate::common::repo_root();
    let mut docs = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs.iter().flat_map(|d| tokens(&read(d), '`')).collect()
}

#[test]
fn every_code_is_registered_documented_and_used_and_there_are_no_others() {
    let registry: BTreeSet<String> = coconnect::codes::ALL.iter().map(|c| c.to_string()).collect();
    assert_eq!(registry.len(), coconnect::codes::ALL.len(), "a code is registered twice");
    let used = source_codes();
    let documented = documented_codes();
    let unregistered: Vec<_> = used.difference(&registry).collect();
    assert!(unregistered.is_empty(), "codes in src/ missing from src/codes.rs: {unregistered:?}");
    let unused: Vec<_> = registry.difference(&used).collect();
    assert!(unused.is_empty(), "registered codes no code gives: {unused:?}");
    let undocumented: Vec<_> = registry.difference(&documented).collect();
    assert!(undocumented.is_empty(), "registered codes the README and docs/ do not describe: {undocumented:?}");
    let phantom: Vec<_> = documented.difference(&registry).collect();
    assert!(phantom.is_empty(), "codes the docs name that do not exist: {phantom:?}");
}

#[test]
fn the_token_reader_finds_codes_and_nothing_else() {
    let text = r#"x("WSS-REPLAY") "CO-1" let q = '"'; "MSG-ID-REUSED" "GW-" "XX-Y" "API-read" "AUTH-X-""#;
    let found: Vec<String> = tokens(text, '"').into_iter().collect();
    assert_eq!(found, ["MSG-ID-REUSED", "WSS-REPLAY"]);
}
