//! Crash safety of the sending gateway: the process is killed (abort) between committing a
//! delivery attempt and sending it, and again after the partner stored and acknowledged it but
//! before the acknowledgement was stored. After a restart the CO is delivered exactly once.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn spawn_gateway(config: &std::path::Path, fault: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coconnect"));
    // stderr goes to a file next to the config (never an inherited pipe) so a failed start explains itself.
    let log = std::fs::File::create(config.with_extension("stderr.log")).expect("log file");
    cmd.arg("serve").arg("--config").arg(config).stdout(Stdio::null()).stderr(log).env("RUST_LOG", "warn");
    match fault {
        Some(point) => cmd.env("COCONNECT_FAULT_INJECTION", point),
        None => cmd.env_remove("COCONNECT_FAULT_INJECTION"),
    };
    cmd.spawn().expect("spawn coconnect serve")
}

async fn wait_ready(gw: &Gateway, child: &mut Child) {
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(gw.files.api_addr).await.is_err() {
        let log = || std::fs::read_to_string(gw.files.config.with_extension("stderr.log")).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            panic!("gateway exited at start ({status}): {}", log());
        }
        assert!(Instant::now() < deadline, "gateway did not start: {}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "gateway did not crash at the injected point");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn crash_then_recover(point: &str, partner_holds_it_after_crash: i64) {
    let (dir, [kr, id]) = pair_files("sign-encrypt", Db::Sqlite).await;
    // Short leases so the restarted process takes the crashed claim over quickly.
    let text = std::fs::read_to_string(&kr.config).expect("config").replace(
        "poll_interval_millis = 100",
        "poll_interval_millis = 100\nlease_seconds = 3\nrequest_timeout_seconds = 2",
    );
    std::fs::write(&kr.config, text).expect("write config");
    let mut id = Gateway { files: id, app: None };
    id.start().await;
    let kr = Gateway { files: kr, app: None };

    let mut child = spawn_gateway(&kr.files.config, Some(point));
    wait_ready(&kr, &mut child).await;
    let cert = kr.submit("ID", EXAMPLE_CO).await;
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child)).await.expect("join");
    assert!(!status.success(), "the gateway must have been killed at {point}");
    assert_eq!(coconnect::store::certificates::count(id.store()).await.expect("count"), partner_holds_it_after_crash);

    let mut child = spawn_gateway(&kr.files.config, None);
    wait_ready(&kr, &mut child).await;
    let done = kr.wait_state(&cert, "acknowledged").await;
    let _ = child.kill();
    let _ = child.wait();
    let transmissions = done["history"].as_array().expect("history").iter().filter(|h| h["to"] == "sent").count();
    assert!(transmissions >= 2, "the message was sent again after the crash: {done}");
    let (_, found) = id.api("GET", "/api/v1/certificates?issuer=KR&reference=KRIDCEPA-2025-PUS-000417", "").await;
    assert_eq!(found.as_array().expect("list").len(), 1, "delivered exactly once: {found}");
    assert_eq!(coconnect::store::certificates::count(id.store()).await.expect("count"), 1);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_delivery_the_co_is_delivered_once_after_restart() {
    crash_then_recover("before-send", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_delivery_before_the_ack_is_stored_the_co_is_delivered_once_after_restart() {
    crash_then_recover("after-send", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_a_restart_finishes_the_work_once() {
    let (dir, [kr, id]) = pair_files("sign-encrypt", Db::Sqlite).await;
    let mut id = Gateway { files: id, app: None };
    id.start().await;
    let kr = Gateway { files: kr, app: None };
    let mut child = spawn_gateway(&kr.files.config, None);
    wait_ready(&kr, &mut child).await;
    for n in 0..40 {
        kr.submit("ID", &co_with_reference(&format!("TERM-{n:03}"))).await;
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child)).await.expect("join");
    assert!(status.success(), "SIGTERM must end the gateway cleanly: {status:?}");
    let mut child = spawn_gateway(&kr.files.config, None);
    wait_ready(&kr, &mut child).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, delivered) = kr.api("GET", "/api/v1/outbox?state=delivered", "").await;
        if delivered.as_array().map(Vec::len) == Some(40) {
            break;
        }
        assert!(Instant::now() < deadline, "not all delivered after restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(coconnect::store::certificates::count(id.store()).await.expect("count"), 40);
    drop(dir);
}
