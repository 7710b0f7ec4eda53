//! End-to-end exchange, idempotent receipt, business rejections, the domestic API and the WSDL.

use base64::Engine;

use crate::common::*;

async fn end_to_end(db: Db) {
    let mut p = pair("sign-encrypt", db).await;
    let id = p.kr.submit("ID", EXAMPLE_CO).await;
    let cert = p.kr.wait_state(&id, "acknowledged").await;
    let states: Vec<_> = cert["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["to"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(states, ["queued", "sent", "acknowledged"]);
    assert!(cert["history"].as_array().expect("h").iter().all(|h| h["message_id"].is_string()));
    let (status, found) =
        p.id.api("GET", "/api/v1/certificates?issuer=KR&reference=KRIDCEPA-2025-PUS-000417", "").await;
    assert_eq!(status, 200);
    assert_eq!(found[0]["state"], "received");
    assert_eq!(found[0]["direction"], "inbound");
    // Exact wire bytes on both sides: KR's request out and ack in, ID's request in and ack out.
    assert_eq!(stored(p.kr.store()).await, (1, 2));
    assert_eq!(stored(p.id.store()).await, (1, 2));
    p.kr.stop().await;
    p.id.stop().await;
}

#[tokio::test]
async fn co_travels_signed_and_encrypted_and_is_acknowledged_sqlite() {
    end_to_end(Db::Sqlite).await;
}

#[tokio::test]
async fn co_travels_signed_and_encrypted_and_is_acknowledged_postgres() {
    if coconnect::store::testdb::postgres_or_skip("co_travels_signed_and_encrypted_and_is_acknowledged_postgres", true)
        .is_none()
    {
        return;
    }
    end_to_end(Db::Postgres).await;
}

#[tokio::test]
async fn with_ec_keys_both_gateways_sign_with_ecdsa_and_the_co_is_acknowledged() {
    let mut p = pair_signing("sign-encrypt", Db::Sqlite, SigningKeyKind::EcP256).await;
    let id = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&id, "acknowledged").await;
    // KR's request out and ID's acknowledgement in, each signed with ECDSA-SHA256 only.
    for (kind, direction) in [("request", "out"), ("acknowledgement", "in")] {
        let wires: Vec<Vec<u8>> = sqlx::query_scalar("SELECT wire FROM message_log WHERE direction = $1")
            .bind(direction)
            .fetch_all(p.kr.store().pool())
            .await
            .expect("message log");
        assert_eq!(wires.len(), 1, "{kind}");
        let wire = String::from_utf8_lossy(&wires[0]);
        assert!(wire.contains("xmldsig-more#ecdsa-sha256"), "{kind}: {wire}");
        assert!(!wire.contains("rsa-sha256"), "{kind}");
    }
    p.kr.stop().await;
    p.id.stop().await;
}

#[tokio::test]
async fn a_retry_gets_the_original_acknowledgement_and_stores_nothing_new() {
    retry_and_reuse(Db::Sqlite).await;
}

#[tokio::test]
async fn a_retry_gets_the_original_acknowledgement_and_stores_nothing_new_postgres() {
    if coconnect::store::testdb::postgres_or_skip(
        "a_retry_gets_the_original_acknowledgement_and_stores_nothing_new_postgres",
        true,
    )
    .is_none()
    {
        return;
    }
    retry_and_reuse(Db::Postgres).await;
}

/// A new CO is stored without looking at the store first. A request the store already knows is
/// caught by the receipt's write, which then writes nothing, and answered the usual way after a
/// look (`looks` counts them: the in-process gateway runs on this thread).
async fn retry_and_reuse(db: Db) {
    use coconnect::store::inbound::looks_on_this_thread as looks;
    let p = pair("sign-encrypt", db).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let message_id = uuid::Uuid::new_v4();
    let body = send_co_body(message_id, EXAMPLE_CO);
    let pw = &p.id.files.inbound_password;
    let looked = looks();
    let first = c.secure(&body, true, now());
    let (s1, ack1) = post_soap(&p.id.soap_url(), "KR", pw, first.clone()).await;
    assert_eq!(s1, 200, "{ack1}");
    assert!(ack1.contains("<cc:Status>Accepted</cc:Status>"), "{ack1}");
    assert_eq!(looks() - looked, 0, "a new CO is stored without a look");
    let before = stored(p.id.store()).await;
    assert_eq!(before, (1, 2), "one certificate; the request and its acknowledgement logged");
    // A retry is a new message on the wire (fresh timestamp and signature), same message ID.
    let looked = looks();
    let (s2, ack2) = post_soap(&p.id.soap_url(), "KR", pw, c.secure(&body, true, now())).await;
    assert_eq!(s2, 200);
    assert_eq!(ack1, ack2, "the original acknowledgement, byte for byte");
    assert_eq!(looks() - looked, 1, "the receipt already held: answered after a look");
    assert_eq!(stored(p.id.store()).await, before);
    // The first message's own bytes again: its signature is remembered, a replay.
    let (status, fault) = post_soap(&p.id.soap_url(), "KR", pw, first).await;
    assert_eq!((status, first_code(&fault).as_str()), (500, "WSS-REPLAY"), "{fault}");
    assert_eq!(stored(p.id.store()).await, before);

    // The same message ID with different content is refused with its own code.
    let other = send_co_body(message_id, &co_with_reference("KR-OTHER-1"));
    let looked = looks();
    let (_, ack3) = post_soap(&p.id.soap_url(), "KR", pw, c.secure(&other, true, now())).await;
    assert!(ack3.contains("Rejected") && first_code(&ack3) == "MSG-ID-REUSED", "{ack3}");
    assert_eq!(looks() - looked, 1, "the message ID already received: decided after a look");
    assert_eq!(stored(p.id.store()).await, before);

    // The same CO (issuer + reference) with different content in a new message: CO-CONFLICT.
    let changed = EXAMPLE_CO.replace("KRPUS", "KRINC");
    assert_ne!(changed, EXAMPLE_CO);
    let looked = looks();
    let (_, ack4) =
        post_soap(&p.id.soap_url(), "KR", pw, c.secure(&send_co_body(uuid::Uuid::new_v4(), &changed), true, now()))
            .await;
    assert_eq!(first_code(&ack4), "CO-CONFLICT", "{ack4}");
    assert_eq!(looks() - looked, 1, "the certificate already held: decided after a look");
    assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), 1);

    // The same CO with the same content in a new message: accepted, and still held once.
    let (_, ack5) =
        post_soap(&p.id.soap_url(), "KR", pw, c.secure(&send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO), true, now()))
            .await;
    assert!(ack5.contains("<cc:Status>Accepted</cc:Status>"), "{ack5}");
    assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), 1);
    // Receipts of the first, the conflicting and the last message; one certificate, one event.
    let pool = p.id.store().pool();
    let receipts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inbound_messages").fetch_one(pool).await.expect("n");
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE kind = 'document.received'")
        .fetch_one(pool)
        .await
        .expect("n");
    assert_eq!((receipts, events), (3, 1));
}

/// A store whose replay cache cannot be read or written (the new CO's receipt statement fails
/// first, then the look): the message is refused as our failure (HTTP 500, GW-INTERNAL, no
/// internals shown) and nothing is stored.
#[tokio::test]
async fn a_store_that_cannot_be_read_refuses_as_our_failure_and_stores_nothing() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    sqlx::query("ALTER TABLE replay_cache RENAME TO replay_cache_gone")
        .execute(p.id.store().pool())
        .await
        .expect("take the replay cache away");
    let body = send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO);
    let (status, fault) =
        post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, c.secure(&body, true, now())).await;
    assert_eq!(status, 500, "{fault}");
    assert_eq!(first_code(&fault), "GW-INTERNAL", "{fault}");
    assert!(!fault.contains("replay_cache"), "no internals in the fault: {fault}");
    assert_eq!(stored(p.id.store()).await, (0, 0), "nothing stored");
}

#[tokio::test]
async fn an_invalid_co_gets_a_signed_rejection_listing_every_error() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let bad = EXAMPLE_CO
        .replacen("<TypeCode>861</TypeCode>", "<TypeCode>862</TypeCode>", 1)
        .replace("<CountryCode>ID</CountryCode>", "<CountryCode>XX</CountryCode>");
    assert_ne!(bad, EXAMPLE_CO);
    let (status, ack) = post_soap(
        &p.id.soap_url(),
        "KR",
        &p.id.files.inbound_password,
        c.secure(&send_co_body(uuid::Uuid::new_v4(), &bad), true, now()),
    )
    .await;
    assert_eq!(status, 200);
    assert!(ack.contains("<cc:Status>Rejected</cc:Status>") && ack.contains("ds:Signature"), "{ack}");
    let codes = all_codes(&ack);
    assert!(codes.contains(&"CO-DOCTYPE".to_owned()) && codes.contains(&"CO-COUNTRY".to_owned()), "{codes:?}");
    assert!(ack.contains("<cc:Path>/LPCO/TypeCode</cc:Path>"), "{ack}");
    assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), 0);
}

#[tokio::test]
async fn domestic_api_validates_authenticates_and_refuses_duplicates() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let bad = EXAMPLE_CO.replace("<CountryCode>KR</CountryCode>", "<CountryCode>QQ</CountryCode>").replacen(
        "<SequenceNumeric>2</SequenceNumeric>",
        "<SequenceNumeric>5</SequenceNumeric>",
        1,
    );
    let (status, body) = p.kr.api("POST", "/api/v1/certificates?partner=ID", &bad).await;
    assert_eq!(status, 422, "{body}");
    let codes: Vec<_> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(codes.contains(&"CO-COUNTRY".into()) && codes.contains(&"CO-SEQUENCE".into()), "{codes:?}");
    assert!(
        body["errors"]
            .as_array()
            .expect("e")
            .iter()
            .all(|e| e["path"].as_str().is_some_and(|p| p.starts_with("/LPCO"))),
        "{body}"
    );
    assert_eq!(coconnect::store::certificates::count(p.kr.store()).await.expect("count"), 0);

    let (status, _) = p.kr.api("POST", "/api/v1/certificates?partner=XX", EXAMPLE_CO).await;
    assert_eq!(status, 400);
    let id = p.kr.submit("ID", EXAMPLE_CO).await;
    let (status, body) = p.kr.api("POST", "/api/v1/certificates?partner=ID", EXAMPLE_CO).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("CO-DUPLICATE")));
    let (status, body) = p.kr.api("GET", "/api/v1/certificates?issuer=KR&reference=KRIDCEPA-2025-PUS-000417", "").await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["id"], id.as_str());

    let req = hyper::Request::get(format!("http://{}/api/v1/certificates/{id}", p.kr.files.api_addr))
        .header("Authorization", "Bearer wrong-token-wrong-token")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("req");
    assert_eq!(client().request(req).await.expect("call").status(), 401);
}

#[tokio::test]
async fn wsdl_is_served_with_the_public_address_and_feedback_on_an_unknown_co_is_refused() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let req = hyper::Request::get(format!("{}?wsdl", p.id.soap_url()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("req");
    let resp = client().request(req).await.expect("wsdl");
    assert_eq!(resp.status(), 200);
    let wsdl =
        String::from_utf8(http_body_util::BodyExt::collect(resp.into_body()).await.expect("b").to_bytes().to_vec())
            .expect("utf8");
    assert!(wsdl.contains(&format!("location=\"{}\"", p.id.soap_url())), "soap:address must be the public URL");
    for op in ["SendCO", "SendCancellation", "SendCancellationStatus", "SendFeedback", "SendDO", "GetCO"] {
        assert!(wsdl.contains(&format!("name=\"{op}\"")), "{op}");
    }

    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let header = coconnect::message::MessageHeader::new("KR", "ID", uuid::Uuid::new_v4(), now());
    let body = coconnect::soap::messages::request_xml(coconnect::message::Operation::SendFeedback, &header, "<cc:Feedback><cc:IssuerPartyID>ID</cc:IssuerPartyID><cc:DocumentReference>X</cc:DocumentReference><cc:Decision>Granted</cc:Decision></cc:Feedback>");
    let (status, fault) =
        post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, c.secure(&body, true, now())).await;
    // Feedback about a CO never exchanged with KR: a signed rejection, and nothing changes.
    assert_eq!(status, 200);
    assert!(fault.contains("<cc:Status>Rejected</cc:Status>") && first_code(&fault) == "LC-UNKNOWN", "{fault}");
}

/// `?wsdl&partner=XX` serves that partner's profile as WS-SecurityPolicy, to that partner
/// only; `?wsdl` the default, to anyone the listener admits.
#[tokio::test]
async fn each_partner_gets_its_profile_as_ws_security_policy() {
    let p = preset_pair(coconnect::wssec::profile::Preset::WcfBasic256, true).await;
    let get = |query: &str, credentials: Option<(&str, &str)>| {
        let url = format!("{}?{query}", p.id.soap_url());
        let auth = credentials
            .map(|(u, pw)| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{pw}"))));
        async move {
            let mut req = hyper::Request::get(url);
            if let Some(auth) = auth {
                req = req.header("Authorization", auth);
            }
            let resp = client()
                .request(req.body(http_body_util::Full::new(bytes::Bytes::new())).expect("req"))
                .await
                .expect("get");
            let status = resp.status().as_u16();
            let challenge = resp.headers().contains_key("www-authenticate");
            let body = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned(), challenge)
        }
    };
    let (status, default, _) = get("wsdl", None).await;
    assert_eq!(status, 200);
    assert!(
        default.contains("<sp:Basic256Sha256/>") && default.contains("Security profile strict"),
        "the default profile"
    );
    let kr_credentials = Some(("KR", p.id.files.inbound_password.as_str()));
    let (status, kr, _) = get("wsdl&partner=KR", kr_credentials).await;
    assert_eq!(status, 200);
    assert!(
        kr.contains("<sp:Basic256/>")
            && kr.contains("<sp:EncryptSignature/>")
            && kr.contains("Security profile wcf-basic256"),
        "{kr}"
    );
    assert!(kr.contains("http://www.w3.org/2000/09/xmldsig#rsa-sha1"), "what the partner's profile accepts");
    // Without KR's credentials, or for another name, the same refusal: nothing is disclosed.
    let anonymous = get("wsdl&partner=KR", None).await;
    let wrong = get("wsdl&partner=KR", Some(("KR", "not-the-password"))).await;
    let other = get("wsdl&partner=XX", kr_credentials).await;
    for (status, body, challenge) in [&anonymous, &wrong, &other] {
        assert_eq!((*status, *challenge), (401, true), "{body}");
        assert!(!body.contains("Basic256"), "{body}");
    }
    assert_eq!(anonymous.1, other.1, "an unknown partner is not told apart");
    assert_eq!(get("wsdl&other=1", None).await.0, 404, "not a WSDL query");
}
