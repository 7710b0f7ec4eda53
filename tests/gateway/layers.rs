//! The dependency rule of docs/architecture.md ("Layers"), checked against the code: every
//! `crate::` path in `src/` outside test code must point down the list of layers, and the few
//! edges the rule forbids outright stay absent. Fails on an import that breaks the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top to bottom: a module may use only modules below it. Keep in step with
/// docs/architecture.md.
const LAYERS: &[&str] = &[
    "dev",
    "app",
    "ops",
    "probe",
    "cli",
    "telemetry",
    "gateway",
    "api",
    "http",
    "receive",
    "alerts",
    "backend",
    "flows",
    "delivery",
    "state",
    "config",
    "store",
    "reconcile",
    "soap",
    "message",
    "refusal",
    "payload",
    "lifecycle",
    "clock",
    "codes",
    "wssec",
    "dev_pki",
    "party",
];

/// Edges the order would allow but the architecture forbids.
const FORBIDDEN: &[(&str, &str, &str)] = &[
    ("store", "soap", "the store knows neither envelopes nor SOAP"),
    ("store", "wssec", "the store knows no keys or WS-Security"),
    ("store", "http", "the store knows no HTTP"),
    ("api", "soap", "the domestic API speaks JSON; what a flow sends is given its form in flows"),
    ("api", "wssec", "the domestic API touches no keys"),
    ("flows", "gateway", "the flows know no listener"),
    ("receive", "http", "the receive pipeline is handed a body, it reads no HTTP"),
    ("backend", "soap", "the back-end is told events, never partner messages"),
    ("backend", "wssec", "the back-end channels use no WS-Security"),
];

/// Known breaches, each to be removed by the step named; no new entry without one.
const KNOWN: &[(&str, &str, &str)] = &[];

/// `text` without its test items: each item under `#[cfg(test)]` (or `#[cfg(any(test, ...))]`)
/// is left out, whether a one-line declaration (`mod tests;`) or a braced block, and the code
/// after it is kept.
fn non_test_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let code = line.trim_start();
        if !(code.starts_with("#[cfg(test)]") || code.starts_with("#[cfg(any(test")) {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // Further attributes of the same item.
        while lines.peek().is_some_and(|l| l.trim_start().starts_with("#[")) {
            lines.next();
        }
        let mut depth = 0i64;
        let mut opened = false;
        for item_line in lines.by_ref() {
            let code = item_line.split("//").next().unwrap_or("");
            depth += code.matches('{').count() as i64 - code.matches('}').count() as i64;
            opened |= code.contains('{');
            if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                break;
            }
        }
    }
    out
}

/// `crate::<module>` references of the non-test code of one file.
fn references(text: &str) -> BTreeSet<String> {
    references_in(&non_test_code(text))
}

/// `crate::<module>` references of `code`, test items included.
fn references_in(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for (i, _) in code.match_indices("crate::") {
            // `coconnect::` or `$crate::` are not ours; a preceding identifier character means
            // another path (e.g. `foo_crate::`).
            let before = code[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                for item in group.split([',', '}']) {
                    let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
                continue;
            }
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// module -> modules it uses (top-level names), from the non-test code in `src/`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    imports_of(false)
}

/// [`imports`], or with `tests` the imports of the test modules and test items too.
fn imports_of(tests: bool) -> BTreeMap<String, BTreeSet<String>> {
    let src = crate::common::repo_root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("component").as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_owned();
        // Files that are test modules (declared `#[cfg(test)] mod tests;` or `mod ..._tests;`).
        let test_file =
            relative.file_name().is_some_and(|n| n == "tests.rs" || n.to_string_lossy().ends_with("_tests.rs"));
        if module == "lib" || module == "main" || (test_file && !tests) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        let found = if tests { references_in(&text) } else { references(&text) };
        let used: Vec<String> = found.into_iter().filter(|m| *m != module).collect();
        graph.entry(module).or_default().extend(used);
    }
    graph
}

#[test]
fn every_import_points_down_the_layers() {
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut breaches = Vec::new();
    for (module, used) in imports() {
        let Some(from) = rank(&module) else {
            breaches.push(format!("{module}: not in the layer list (add it to LAYERS and docs/architecture.md)"));
            continue;
        };
        for target in used {
            let Some(to) = rank(&target) else {
                breaches.push(format!("{module} -> {target}: {target} is not in the layer list"));
                continue;
            };
            let known = KNOWN.iter().any(|(a, b, _)| *a == module && *b == target);
            if let Some((_, _, why)) = FORBIDDEN.iter().find(|(a, b, _)| *a == module && *b == target) {
                breaches.push(format!("{module} -> {target}: forbidden ({why})"));
            } else if to <= from && !known {
                breaches.push(format!("{module} -> {target}: points up (or sideways) the layers"));
            }
        }
    }
    assert!(breaches.is_empty(), "imports that break docs/architecture.md (Layers):\n{}", breaches.join("\n"));
}

#[test]
fn test_modules_point_down_the_layers_too() {
    // A unit test's fixture that imported a higher module (the demo, which starts whole
    // gateways) made the modules a circle: wssec's tests made their keys with `dev`, and
    // config's tests their files. Keys and files now come from `dev_pki` and `config::dev_pair`.
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut breaches = Vec::new();
    for (module, used) in imports_of(true) {
        for target in used {
            let (Some(from), Some(to)) = (rank(&module), rank(&target)) else {
                breaches.push(format!("{module} -> {target}: not in the layer list"));
                continue;
            };
            if to <= from && !KNOWN.iter().any(|(a, b, _)| *a == module && *b == target) {
                breaches.push(format!("{module} -> {target}: points up (or sideways) the layers, in test code"));
            }
        }
    }
    assert!(breaches.is_empty(), "test code that breaks docs/architecture.md (Layers):\n{}", breaches.join("\n"));
}

#[test]
fn known_breaches_still_exist_and_nothing_imports_the_wiring() {
    let graph = imports();
    for (from, to, why) in KNOWN {
        assert!(
            graph.get(*from).is_some_and(|used| used.contains(*to)),
            "{from} -> {to} is gone: remove it from KNOWN ({why})"
        );
    }
    for (module, used) in &graph {
        if used.contains("app") {
            assert_eq!(module, "dev", "{module} imports the wiring (app)");
        }
    }
}

#[test]
fn the_reader_finds_grouped_paths_and_skips_comments_and_tests() {
    let text = "use crate::store::Store;\nuse crate::{soap, wssec::ns};\n// crate::app is only mentioned\nlet x = coconnect::app::App;\nlet y = crate::flows::run();\n#[cfg(test)]\nuse crate::pki;\n";
    let found: Vec<String> = references(text).into_iter().collect();
    assert_eq!(found, ["flows", "soap", "store", "wssec"]);
    // Only the test item is left out: code after it is read.
    let text = "#[cfg(test)]\nfn helper() {\n    crate::dev::x();\n}\nuse crate::soap;\n#[cfg(test)]\nmod tests;\nuse crate::gateway;\n#[cfg(test)]\n#[allow(x)]\nmod more {\n    use crate::app;\n    fn f() { if x { y } }\n}\nuse crate::store;\n";
    let found: Vec<String> = references(text).into_iter().collect();
    assert_eq!(found, ["gateway", "soap", "store"]);
}

#[test]
fn the_store_parses_no_xml() {
    // The store keeps bytes and digests; a binding reads or cuts them (retention is handed
    // `soap::evidence::without_body_content`).
    let mut files = Vec::new();
    rust_files(&crate::common::repo_root().join("src/store"), &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        if file.file_name().is_some_and(|n| n == "tests.rs" || n.to_string_lossy().ends_with("_tests.rs")) {
            continue;
        }
        let code = non_test_code(&text);
        for parser in ["quick_xml", "libxml", "yaserde", "crate::wssec", "crate::soap"] {
            assert!(!code.contains(parser), "{} uses {parser}", file.display());
        }
    }
}
