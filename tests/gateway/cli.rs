//! The `coconnect` binary as an operator runs it: `check-config`'s summary and errors, output
//! to a pipe whose reader went away, `hash-password`, and out-of-range arguments.

use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::common::{pair, pair_files, Db};

fn coconnect() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coconnect"));
    c.env("NO_COLOR", "1").kill_on_drop(true);
    c
}

/// A standard output whose reader is already gone: every write gets EPIPE.
fn closed_stdout() -> Stdio {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    writer.into()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `coconnect ARGS` with `stdin` as its standard input.
async fn run_with_input(args: &[&str], stdin: &str) -> Output {
    let mut child = coconnect()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).await.expect("write stdin");
    drop(input);
    child.wait_with_output().await.expect("wait")
}

#[tokio::test]
async fn check_config_prints_a_summary_not_a_dump() {
    let (_dir, [kr, _]) = pair_files("sign-encrypt", Db::Sqlite).await;
    let out = coconnect().arg("check-config").arg("--config").arg(&kr.config).output().await.expect("run");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.starts_with(&format!("{}: loaded and checked\n", kr.config.display())), "{stdout}");
    for line in [
        "party           KR\n",
        &format!("SOAP listener   {} (plain HTTP)\n", kr.soap_addr),
        "partner ID\n",
        "  profile         sign-encrypt",
        "  inbound auth    Basic user ID (Argon2 hash)\n",
        "  retry marks     2, 4, 6, 8, 10, 20, 40, 80, 160, 320 s after the first attempt\n",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
    assert!(!stdout.contains("Settings {") && !stdout.contains(&kr.api_token), "{stdout}");
}

#[tokio::test]
async fn check_config_names_an_out_of_range_key() {
    let (_dir, [kr, _]) = pair_files("sign-encrypt", Db::Sqlite).await;
    let mut text_ = std::fs::read_to_string(&kr.config).expect("config");
    text_.push_str("\n[security]\nclock_skew_seconds = 99999999999\n");
    std::fs::write(&kr.config, text_).expect("write");
    let out = coconnect().arg("check-config").arg("--config").arg(&kr.config).output().await.expect("run");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stderr).trim_end(),
        "error: security.clock_skew_seconds: 99999999999 is out of range (0..=86400)"
    );
}

#[tokio::test]
async fn check_config_into_a_closed_pipe_ends_quietly() {
    let (_dir, [kr, _]) = pair_files("sign-encrypt", Db::Sqlite).await;
    let out = coconnect()
        .arg("check-config")
        .arg("--config")
        .arg(&kr.config)
        .stdout(closed_stdout())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0), "no panic (101): {}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_into_a_closed_pipe_ends_quietly() {
    let mut p = pair("sign-encrypt", Db::Sqlite).await;
    let api = format!("http://{}", p.kr.files.api_addr);
    let ops = |stdout: Stdio| {
        let mut c = coconnect();
        c.args(["ops", "--api", &api, "partners"])
            .env("COCONNECT_API_TOKEN", &p.kr.files.api_token)
            .stdout(stdout)
            .stderr(Stdio::piped());
        c
    };
    let out = ops(Stdio::piped()).output().await.expect("run");
    assert!(out.status.success() && text(&out.stdout).contains("\"ID\""), "{out:?}");
    let out = ops(closed_stdout()).output().await.expect("run");
    assert_eq!(out.status.code(), Some(0), "no panic (101): {}", text(&out.stderr));
    p.kr.stop().await;
    p.id.stop().await;
}

#[tokio::test]
async fn hash_password_refuses_an_empty_password_and_hashes_one_line() {
    let out = run_with_input(&["hash-password"], "\n").await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(text(&out.stderr).trim_end(), "error: password: is empty");
    assert!(out.stdout.is_empty(), "no hash of an empty password");

    let out = run_with_input(&["hash-password"], "s3cret-pass\r\nsecond line\n").await;
    assert!(out.status.success(), "{out:?}");
    let hash = text(&out.stdout).trim_end().to_owned();
    let parsed = argon2::PasswordHash::new(&hash).expect("a PHC string");
    use argon2::PasswordVerifier;
    argon2::Argon2::default().verify_password(b"s3cret-pass", &parsed).expect("the first line, without its line end");
}

#[tokio::test]
async fn purge_refuses_a_day_count_out_of_range() {
    let (_dir, [kr, _]) = pair_files("sign-encrypt", Db::Sqlite).await;
    for days in ["99999999999", "-1"] {
        let out = coconnect()
            .arg("purge")
            .arg("--config")
            .arg(&kr.config)
            .arg(format!("--older-than-days={days}"))
            .output()
            .await
            .expect("run");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "a usage error, not a panic: {stderr}");
        assert!(stderr.contains("--older-than-days") && stderr.contains("0..=36500"), "{stderr}");
    }
}

#[tokio::test]
async fn a_taken_port_is_reported_with_its_os_error_once() {
    let (_dir, [kr, _]) = pair_files("sign-encrypt", Db::Sqlite).await;
    let _taken = std::net::TcpListener::bind(kr.soap_addr).expect("take the SOAP port");
    // As the library returns it, rendered as main renders errors (the whole chain).
    let settings = coconnect::config::load(&kr.config).expect("config");
    let e = match coconnect::app::App::start(settings).await {
        Ok(_) => panic!("started on a taken port"),
        Err(e) => e,
    };
    let chained = format!("{:#}", anyhow::Error::from(e));
    assert!(chained.starts_with(&format!("cannot bind {}: ", kr.soap_addr)), "{chained}");
    assert_eq!(chained.matches("os error").count(), 1, "{chained}");
    // As the operator sees it.
    let out = coconnect().arg("serve").arg("--config").arg(&kr.config).output().await.expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(last, format!("error: {chained}"), "{stderr}");
}

/// `coconnect probe` against a running gateway: with the profile the gateway has for us the
/// exchange works (exit 0); with another it names what did not match (exit 1); nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_passes_with_the_agreed_profile_and_names_the_mismatch_otherwise() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let probe = |extra: &[&str]| {
        let mut c = coconnect();
        c.arg("probe").arg("--config").arg(&p.kr.files.config).args(["--partner", "ID"]).args(extra);
        c.output()
    };
    let out = probe(&[]).await.expect("run");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("policy names the algorithm suite Basic256Sha256"), "{stdout}");
    assert!(stdout.contains("the exchange works"), "{stdout}");
    // KR tries WSS4J's defaults (rsa-sha1, issuer-serial, aes128-cbc) on ID, which expects strict.
    let out = probe(&["--preset", "wss4j-defaults"]).await.expect("run");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  3. the partner refused the look-up"), "{stdout}");
    assert!(stdout.contains("WSS-ALGORITHM") && stdout.contains("rsa-sha1"), "{stdout}");
    // A preset name that does not exist is the operator's error.
    let out = probe(&["--preset", "wcf"]).await.expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is not one of strict"), "{}", text(&out.stderr));
    let stored = crate::common::stored(p.id.store()).await;
    assert_eq!(stored.0, 0, "a probe stores no certificate");
}
