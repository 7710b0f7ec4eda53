//! Build steps that need the machine's C libraries and data:
//! - thin bindgen bindings for the libxmlsec1 headers the `xmlsec` crate does not bind
//!   (XML Encryption context, error callback, base64), re-using that crate's types;
//! - the ISO 3166-1 alpha-2 country list, read from Debian's maintained `iso-codes` package.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const ISO_3166_JSON: &str = "/usr/share/iso-codes/json/iso_3166-1.json";

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    generate_xmlsec_ext_bindings(&out);
    generate_country_codes(&out);
}

fn xmlsec_cflags() -> Vec<String> {
    let output = Command::new("xmlsec1-config")
        .arg("--cflags")
        .output()
        .expect("xmlsec1-config not found: install libxmlsec1-dev (see README)");
    String::from_utf8(output.stdout)
        .expect("xmlsec1-config printed non-UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn generate_xmlsec_ext_bindings(out: &Path) {
    println!("cargo:rerun-if-changed=src/wssec/ffi_ext.h");
    println!("cargo:rustc-link-lib=xmlsec1-openssl");
    println!("cargo:rustc-link-lib=xmlsec1");
    println!("cargo:rustc-link-lib=xml2");
    let bindings = bindgen::Builder::default()
        .header("src/wssec/ffi_ext.h")
        .clang_args(xmlsec_cflags())
        // Only what the crate lacks; every other type comes from `xmlsec::bindings`.
        .allowlist_recursively(false)
        .allowlist_type("_xmlSecEncCtx")
        .allowlist_type("xmlSecEncCtx")
        .allowlist_type("xmlSecEncCtxPtr")
        .allowlist_type("xmlEncCtxMode")
        .allowlist_var("xmlEncCtxMode_.*")
        .allowlist_type("xmlSecErrorsCallback")
        .allowlist_function("xmlSecEncCtx.*")
        .allowlist_function("xmlSecErrorsSetCallback")
        .allowlist_function("xmlSecErrorsDefaultCallback")
        .allowlist_type("xmlSecBase64Ctx")
        .allowlist_type("_xmlSecBase64Ctx")
        .allowlist_type("xmlSecBase64CtxPtr")
        .allowlist_function("xmlSecBase64.*")
        .allowlist_function("xmlSecParserSetDefaultOptions")
        .allowlist_function("xmlC14NDocDumpMemory")
        .allowlist_type("xmlC14NMode")
        .allowlist_var("xmlC14NMode_.*")
        .allowlist_function("xmlSecOpenSSLAppKeyLoadMemory")
        .allowlist_function("xmlSecOpenSSLAppKeyCertLoadMemory")
        .allowlist_function("xmlSecOpenSSLAppKeysMngrCertLoadMemory")
        .allowlist_function("xmlSecOpenSSLKeyDataAesGetKlass")
        .allowlist_function("xmlSecOpenSSLKeyDataX509GetKlass")
        .allowlist_function("xmlSecOpenSSLX509StoreGetKlass")
        .allowlist_function("xmlSecOpenSSLKeysMngrInit")
        .allowlist_function("xmlSecOpenSSLTransform.*GetKlass")
        .allowlist_function("xmlSecOpenSSLAppDefaultKeysMngr.*")
        .allowlist_function("xmlSecOpenSSLKeyDataX509.*")
        .raw_line("#[allow(unused_imports)] use xmlsec::bindings::*;")
        .layout_tests(false)
        .generate()
        .expect("bindgen failed on src/wssec/ffi_ext.h (is libclang-dev installed?)");
    bindings.write_to_file(out.join("xmlsec_ext.rs")).expect("could not write xmlsec_ext.rs");
}

fn generate_country_codes(out: &Path) {
    println!("cargo:rerun-if-changed={ISO_3166_JSON}");
    let text = fs::read_to_string(ISO_3166_JSON)
        .unwrap_or_else(|e| panic!("{ISO_3166_JSON}: {e}; install Debian's iso-codes package"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("iso_3166-1.json is not JSON");
    let mut codes: Vec<String> = json["3166-1"]
        .as_array()
        .expect("iso_3166-1.json has no 3166-1 array")
        .iter()
        .filter_map(|c| c["alpha_2"].as_str().map(str::to_owned))
        .collect();
    codes.sort();
    codes.dedup();
    assert!(codes.len() > 200, "iso_3166-1.json lists too few countries");
    let body = codes.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    fs::write(
        out.join("iso3166_alpha2.rs"),
        format!("/// ISO 3166-1 alpha-2 codes from Debian iso-codes, sorted.\npub static ISO3166_ALPHA2: &[&str] = &[{body}];\n"),
    )
    .expect("could not write iso3166_alpha2.rs");
}
