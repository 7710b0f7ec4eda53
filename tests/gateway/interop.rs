//! Interoperability with independent WS-Security stacks (xmlsec1 CLI, WSS4J, zeep).

use crate::common::*;
use coconnect::store::messages::{wires, Kind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_dump_scratch() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let (status, body) = p.kr.api("POST", "/api/v1/certificates?partner=ID", EXAMPLE_CO).await;
    assert_eq!(status, 202);
    let id = body["id"].as_str().unwrap().to_owned();
    let mid = body["message_id"].as_str().unwrap().to_owned();
    p.kr.wait_state(&id, "acknowledged").await;
    let req = wires(p.kr.store(), &mid, false, Kind::Request).await.unwrap();
    let ack = wires(p.kr.store(), &mid, true, Kind::Acknowledgement).await.unwrap();
    std::fs::write("/tmp/iop/req.xml", &req[0]).unwrap();
    std::fs::write("/tmp/iop/ack.xml", &ack[0]).unwrap();
    let _ = std::process::Command::new("cp").arg("-r").arg(p.dir.path().join("pki")).arg("/tmp/iop/").status();
}
