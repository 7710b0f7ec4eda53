//! The whole CO lifecycle across two gateways (issue 4): amendment accepted and re-issued,
//! amendment declined because treatment was already granted, the officer's decision, feedback,
//! declarations of origin with the approved-exporter list, the GetCO look-up, and role refusals.

use serde_json::{json, Value};

use crate::common::*;

const REFERENCE: &str = "KRIDCEPA-2025-PUS-000417";

/// The importer's copy of KR's certificate `reference` (waits until it is received).
async fn received(id: &Gateway, reference: &str) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (_, found) = id.api("GET", &format!("/api/v1/certificates?issuer=KR&reference={reference}"), "").await;
        if let Some(c) = found.as_array().and_then(|l| l.iter().find(|c| c["direction"] == "inbound")) {
            return c.clone();
        }
        assert!(std::time::Instant::now() < deadline, "ID never received {reference}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// KR pushes the example CO and ID acknowledges it: (KR's id, ID's id).
async fn exchanged(p: &Pair) -> (String, String) {
    let kr_cert = p.kr.submit("ID", EXAMPLE_CO).await;
    p.kr.wait_state(&kr_cert, "acknowledged").await;
    let id_cert = received(&p.id, REFERENCE).await["id"].as_str().expect("id").to_owned();
    (kr_cert, id_cert)
}

fn amendment(reason: &str, replacement_reference: &str) -> String {
    json!({"reason": reason, "replacement": co_with_reference(replacement_reference)}).to_string()
}

async fn show(gw: &Gateway, id: &str) -> Value {
    gw.api("GET", &format!("/api/v1/certificates/{id}"), "").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amendment_accepted_cancels_on_both_sides_and_the_replacement_arrives_linked() {
    amendment_accepted_cancels_on_both_sides_and_the_replacement_arrives_linked_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amendment_accepted_cancels_on_both_sides_and_the_replacement_arrives_linked_postgres() {
    if coconnect::store::testdb::postgres_or_skip(
        "amendment_accepted_cancels_on_both_sides_and_the_replacement_arrives_linked_postgres",
        true,
    )
    .is_none()
    {
        return;
    }
    amendment_accepted_cancels_on_both_sides_and_the_replacement_arrives_linked_on(Db::Postgres).await;
}

async fn amendment_accepted_cancels_on_both_sides_and_the_replacement_arrives_linked_on(db: Db) {
    let p = pair("sign-encrypt", db).await;
    let (kr_cert, id_cert) = exchanged(&p).await;

    let (status, queued) = p
        .kr
        .api("POST", &format!("/api/v1/certificates/{kr_cert}/amendments"), &amendment("consignee corrected", "R-2"))
        .await;
    assert_eq!(status, 202, "{queued}");

    // (The whole round trip may be over before a first look: the passage through
    // cancellation_requested is checked in the history.)
    let original = p.kr.wait_state(&kr_cert, "cancelled").await;
    let path: Vec<&str> =
        original["history"].as_array().into_iter().flatten().filter_map(|h| h["to"].as_str()).collect();
    assert!(path.ends_with(&["cancellation_requested", "cancelled"]), "{path:?}");
    assert_eq!(original["amendments"][0]["state"], "accepted", "{original}");
    let replacement_id = original["replaced_by"].as_str().expect("replacement").to_owned();
    let replacement = p.kr.wait_state(&replacement_id, "acknowledged").await;
    assert_eq!(replacement["replaces"], kr_cert.as_str());
    assert_eq!(replacement["reference"], "R-2");
    assert!(replacement["reference_code"].as_str().is_some_and(|c| c.len() == 14), "{replacement}");

    assert_eq!(p.id.wait_state(&id_cert, "cancelled").await["amendments"][0]["decided_by"], "gateway (automatic)");
    let arrived = received(&p.id, "R-2").await;
    assert_eq!(arrived["replaces"], id_cert.as_str(), "the replacement is linked on the importing side: {arrived}");
    assert_eq!(arrived["state"], "received");

    // A cancelled CO can be neither amended nor decided on again: refused, nothing changes.
    let (status, refused) =
        p.kr.api("POST", &format!("/api/v1/certificates/{kr_cert}/amendments"), &amendment("again", "R-3")).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("LC-STATE")), "{refused}");
    let treatment = json!({"decision": "Granted"}).to_string();
    let (status, refused) = p.id.api("POST", &format!("/api/v1/certificates/{id_cert}/treatment"), &treatment).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("LC-STATE")), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amendment_is_declined_once_treatment_was_granted_and_the_feedback_reaches_the_exporter() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let (kr_cert, id_cert) = exchanged(&p).await;

    // Stored and sent as checked: trimmed, an empty text absent.
    let treatment = json!({"decision": "Granted", "declaration_reference": " 40101-25-123456M ", "reason_codes": ["PREF-OK"], "remarks": ""});
    let (status, body) =
        p.id.api("POST", &format!("/api/v1/certificates/{id_cert}/treatment"), &treatment.to_string()).await;
    assert_eq!(status, 202, "{body}");
    let recorded = show(&p.id, &id_cert).await["treatment_decisions"][0].clone();
    assert_eq!(
        (recorded["declaration_reference"].as_str(), &recorded["remarks"]),
        (Some("40101-25-123456M"), &Value::Null)
    );
    // The exporter stores the feedback on its certificate.
    let feedback = p
        .kr
        .wait_for(&kr_cert, "got the feedback", |c| c["treatment_decisions"].as_array().is_some_and(|d| !d.is_empty()))
        .await["treatment_decisions"][0]
        .clone();
    assert_eq!(feedback["decision"], "Granted");
    assert_eq!(feedback["declaration_reference"], "40101-25-123456M");
    assert_eq!(feedback["recorded_by"], "ID");

    let (status, _) =
        p.kr.api("POST", &format!("/api/v1/certificates/{kr_cert}/amendments"), &amendment("late change", "R-9")).await;
    assert_eq!(status, 202);
    let declined =
        p.kr.wait_for(&kr_cert, "saw its amendment declined", |c| c["amendments"][0]["state"] == "declined").await;
    assert_eq!(declined["state"], "acknowledged", "the original stays valid");
    assert!(declined["replaced_by"].is_null(), "no replacement is pushed: {declined}");
    let reason = declined["amendments"][0]["decision_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("treatment"), "the reason is visible to the exporter: {reason}");
    assert_eq!(show(&p.id, &id_cert).await["state"], "received");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_decides_when_configured_and_only_the_importer_may() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.reconfigure(
        "[[partners]]\nparty = \"KR\"",
        "[[partners]]\nparty = \"KR\"\ncancellation_decision = \"officer\"",
    );
    p.kr.start().await;
    p.id.start().await;
    let (kr_cert, id_cert) = exchanged(&p).await;
    let (status, _) =
        p.kr.api("POST", &format!("/api/v1/certificates/{kr_cert}/amendments"), &amendment("typo", "R-5")).await;
    assert_eq!(status, 202);
    p.id.wait_state(&id_cert, "cancellation_pending").await;

    // The exporter's side cannot answer its own cancellation; a decline needs a reason.
    let accept = json!({"decision": "accept"}).to_string();
    let (status, refused) =
        p.kr.api("POST", &format!("/api/v1/certificates/{kr_cert}/cancellation-decision"), &accept).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("LC-NOT-AUTHORISED")), "{refused}");
    let (status, invalid) =
        p.id.api("POST", &format!("/api/v1/certificates/{id_cert}/cancellation-decision"), r#"{"decision":"decline"}"#)
            .await;
    assert_eq!(status, 422, "{invalid}");

    let decline = json!({"decision": "decline", "reason": "goods already released under preference"}).to_string();
    let (status, body) =
        p.id.api("POST", &format!("/api/v1/certificates/{id_cert}/cancellation-decision"), &decline).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(show(&p.id, &id_cert).await["state"], "received");
    let c = p.kr.wait_for(&kr_cert, "saw its amendment declined", |c| c["amendments"][0]["state"] == "declined").await;
    assert_eq!(c["state"], "acknowledged");
    assert_eq!(c["amendments"][0]["decision_reason"], "goods already released under preference");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_acting_outside_its_role_gets_a_coded_rejection_and_nothing_changes() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let (_kr_cert, id_cert) = exchanged(&p).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let send = |op: coconnect::message::Operation, payload: String| {
        let header = coconnect::message::MessageHeader::new("KR", "ID", uuid::Uuid::new_v4(), now());
        c.secure(&coconnect::soap::messages::request_xml(op, &header, &payload), true, now())
    };
    let doc =
        format!("<cc:IssuerPartyID>KR</cc:IssuerPartyID><cc:DocumentReference>{REFERENCE}</cc:DocumentReference>");
    let before = show(&p.id, &id_cert).await;
    let outbox_before = p.id.api("GET", "/api/v1/outbox", "").await.1;
    let cases = [
        // KR issued this CO: it cannot send origin-treatment feedback on it ...
        (coconnect::message::Operation::SendFeedback, format!("<cc:Feedback>{doc}<cc:Decision>Granted</cc:Decision></cc:Feedback>"), "LC-NOT-AUTHORISED"),
        // ... nor answer a cancellation of it ...
        (coconnect::message::Operation::SendCancellationStatus, format!("<cc:CancellationStatus>{doc}<cc:CancellationMessageID>{}</cc:CancellationMessageID><cc:Status>Accepted</cc:Status></cc:CancellationStatus>", uuid::Uuid::new_v4()), "LC-NOT-AUTHORISED"),
        // ... nor cancel a CO it never sent.
        (coconnect::message::Operation::SendCancellation, "<cc:Cancellation><cc:IssuerPartyID>KR</cc:IssuerPartyID><cc:DocumentReference>NOPE-1</cc:DocumentReference><cc:Reason>x</cc:Reason></cc:Cancellation>".to_owned(), "LC-UNKNOWN"),
    ];
    for (op, payload, code) in cases {
        let (status, ack) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, send(op, payload)).await;
        assert_eq!(status, 200, "{ack}");
        assert!(ack.contains("<cc:Status>Rejected</cc:Status>"), "{ack}");
        assert_eq!(first_code(&ack), code, "{op:?}: {ack}");
    }
    let after = show(&p.id, &id_cert).await;
    assert_eq!(after["state"], before["state"]);
    assert_eq!(after["history"], before["history"], "nothing changed");
    assert_eq!(after["treatment_decisions"], json!([]));
    assert_eq!(after["amendments"], json!([]));
    assert_eq!(p.id.api("GET", "/api/v1/outbox", "").await.1, outbox_before, "nothing was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarations_of_origin_travel_like_cos_and_unlisted_exporters_are_flagged() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let do_xml = std::fs::read_to_string(repo_root().join("examples/do.xml")).expect("examples/do.xml");
    let listed = coconnect::payload::parse_do(&do_xml).expect("valid DO");
    let authorisation = listed.approved_exporter_authorisation_id.clone().expect("authorisation");
    let list = json!([{"authorisation_id": authorisation, "name": "listed exporter"}]).to_string();
    let (status, body) = p.id.api("PUT", "/api/v1/partners/KR/approved-exporters", &list).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = p.kr.api("POST", "/api/v1/declarations?partner=ID", &do_xml).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["kind"], "DO");
    let kr_do = body["id"].as_str().expect("id").to_owned();
    p.kr.wait_state(&kr_do, "acknowledged").await;
    let reference = listed.reference().to_owned();
    let got = received(&p.id, &reference).await;
    assert_eq!(got["kind"], "DO");
    assert!(got["verification_flag"].is_null(), "{got}");

    // Another DO by an exporter that is not on ID's list: accepted, flagged, alerted.
    let unlisted = do_xml.replacen(&authorisation, "KR-AE-UNLISTED-9", 1).replacen(&reference, "DO-UNLISTED-1", 1);
    let (status, body) = p.kr.api("POST", "/api/v1/declarations?partner=ID", &unlisted).await;
    assert_eq!(status, 202, "{body}");
    let got = received(&p.id, "DO-UNLISTED-1").await;
    assert!(got["verification_flag"].as_str().is_some_and(|f| f.contains("KR-AE-UNLISTED-9")), "{got}");
    let (_, alerts) = p.id.api("GET", "/api/v1/alerts?unacknowledged=true", "").await;
    assert!(alerts.as_array().expect("alerts").iter().any(|a| a["name"] == "do.unlisted_exporter"), "{alerts}");

    // A CO sent as a DO is refused with the document type error.
    let (status, body) = p.kr.api("POST", "/api/v1/declarations?partner=ID", EXAMPLE_CO).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_co_returns_the_co_for_the_right_code_and_the_same_not_found_otherwise() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let (status, body) = p.kr.api("POST", "/api/v1/certificates?partner=ID", EXAMPLE_CO).await;
    assert_eq!(status, 202, "{body}");
    let code = body["reference_code"].as_str().expect("reference code").to_owned();

    let path = |reference: &str, code: &str| format!("/api/v1/lookup?partner=KR&reference={reference}&code={code}");
    let (status, found) = p.id.api("GET", &path(REFERENCE, &code.to_lowercase().replace('-', "")), "").await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["status"], "Valid");
    let co = coconnect::payload::parse_co(found["co_xml"].as_str().expect("co")).expect("a valid CO");
    assert_eq!(co.reference(), REFERENCE);

    let (wrong_code, a) = p.id.api("GET", &path(REFERENCE, "AAAA-BBBB-CCCC"), "").await;
    let (unknown, b) = p.id.api("GET", &path("NO-SUCH-CO", &code), "").await;
    assert_eq!((wrong_code, unknown), (404, 404));
    assert_eq!(a, b, "a wrong code and an unknown reference get the same answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_names_its_notification_and_a_late_acceptance_still_cancels() {
    an_answer_names_its_notification_and_a_late_acceptance_still_cancels_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_names_its_notification_and_a_late_acceptance_still_cancels_postgres() {
    if coconnect::store::testdb::postgres_or_skip(
        "an_answer_names_its_notification_and_a_late_acceptance_still_cancels_postgres",
        true,
    )
    .is_none()
    {
        return;
    }
    an_answer_names_its_notification_and_a_late_acceptance_still_cancels_on(Db::Postgres).await;
}

async fn an_answer_names_its_notification_and_a_late_acceptance_still_cancels_on(db: Db) {
    let mut p = pair("sign-encrypt", db).await;
    let (kr_cert, _) = exchanged(&p).await;
    p.id.stop().await;

    let (status, queued) =
        p.kr.api("POST", &format!("/api/v1/certificates/{kr_cert}/amendments"), &amendment("late", "R-LATE")).await;
    assert_eq!(status, 202, "{queued}");
    let notification = queued["message_id"].as_str().expect("message id").to_owned();
    // The open amendment reserves its replacement's reference.
    let (status, taken) = p.kr.api("POST", "/api/v1/certificates?partner=ID", &co_with_reference("R-LATE")).await;
    assert_eq!((status, taken["code"].as_str()), (409, Some("CO-DUPLICATE")), "{taken}");
    let (status, taken) =
        p.kr.api("POST", &format!("/api/v1/certificates/{kr_cert}/amendments"), &amendment("again", "R-LATE")).await;
    assert_eq!(status, 409, "a second amendment while one is open: {taken}");

    // ID is down; the operator gives the notification up (between two attempts).
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = p.kr.api("POST", &format!("/api/v1/outbox/{notification}/cancel"), "").await;
        if status == 200 {
            assert_eq!(body["certificate_state"], "acknowledged", "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "could not withdraw: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(show(&p.kr, &kr_cert).await["amendments"][0]["state"], "undelivered");

    // It had reached ID after all, which accepted it: its answer still applies, to that
    // notification only.
    let c = Crafter::new(&p.dir.path().join("pki"), "ID", "KR");
    let answer = |answered: &str| {
        let header = coconnect::message::MessageHeader::new("ID", "KR", uuid::Uuid::new_v4(), now());
        let payload = format!("<cc:CancellationStatus><cc:IssuerPartyID>KR</cc:IssuerPartyID><cc:DocumentReference>{REFERENCE}</cc:DocumentReference><cc:CancellationMessageID>{answered}</cc:CancellationMessageID><cc:Status>Accepted</cc:Status></cc:CancellationStatus>");
        let body = coconnect::soap::messages::request_xml(
            coconnect::message::Operation::SendCancellationStatus,
            &header,
            &payload,
        );
        c.secure(&body, true, now())
    };
    let (status, ack) =
        post_soap(&p.kr.soap_url(), "ID", &p.kr.files.inbound_password, answer(&uuid::Uuid::new_v4().to_string()))
            .await;
    assert_eq!((status, first_code(&ack).as_str()), (200, "LC-UNKNOWN"), "an answer to no notification of ours: {ack}");
    assert_eq!(show(&p.kr, &kr_cert).await["state"], "acknowledged");

    let (status, ack) = post_soap(&p.kr.soap_url(), "ID", &p.kr.files.inbound_password, answer(&notification)).await;
    assert_eq!(status, 200, "{ack}");
    assert!(ack.contains("<cc:Status>Accepted</cc:Status>"), "{ack}");
    let cancelled = show(&p.kr, &kr_cert).await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["amendments"][0]["state"], "accepted");
    assert!(cancelled["replaced_by"].is_string(), "the replacement is re-issued: {cancelled}");

    let (status, ack) = post_soap(&p.kr.soap_url(), "ID", &p.kr.files.inbound_password, answer(&notification)).await;
    assert_eq!((status, first_code(&ack).as_str()), (200, "LC-STATE"), "answered twice: {ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_one_message_at_once_are_stored_once_and_both_get_its_acknowledgement() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    // The same message (same ID and body), secured twice as a sender's retry would be: the
    // replay cache lets both through, idempotency must decide.
    let body = send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO);
    let (first, second) = (c.secure(&body, true, now()), c.secure(&body, true, now()));
    let url = p.id.soap_url();
    let password = p.id.files.inbound_password.clone();
    let (a, b) = tokio::join!(post_soap(&url, "KR", &password, first), post_soap(&url, "KR", &password, second));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert!(a.1.contains("<cc:Status>Accepted</cc:Status>"), "{}", a.1);
    assert_eq!(a.1, b.1, "the second copy gets the stored acknowledgement itself");
    assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_messages_with_one_id_at_once_one_is_accepted_and_the_other_refused() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let url = p.id.soap_url();
    let password = p.id.files.inbound_password.clone();
    for round in 1..=4 {
        // Same message ID, two different COs, posted together: whether the second is caught
        // before its check or only when its receipt is written, it is refused, never told
        // "Accepted" with the other's acknowledgement.
        let id = uuid::Uuid::new_v4();
        let first = c.secure(&send_co_body(id, &co_with_reference(&format!("RACE-{round}-A"))), true, now());
        let second = c.secure(&send_co_body(id, &co_with_reference(&format!("RACE-{round}-B"))), true, now());
        let (a, b) = tokio::join!(post_soap(&url, "KR", &password, first), post_soap(&url, "KR", &password, second));
        assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
        let accepted = [&a.1, &b.1].iter().filter(|ack| ack.contains("<cc:Status>Accepted</cc:Status>")).count();
        let reused = [&a.1, &b.1].iter().filter(|ack| all_codes(ack).contains(&"MSG-ID-REUSED".to_owned())).count();
        assert_eq!((accepted, reused), (1, 1), "round {round}: {a:?} {b:?}");
        assert_eq!(coconnect::store::certificates::count(p.id.store()).await.expect("count"), i64::from(round));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lifecycle_requests_get_coded_errors_and_change_nothing() {
    let p = pair("sign-encrypt", Db::Sqlite).await;
    let (kr_cert, id_cert) = exchanged(&p).await;
    let kr_before = show(&p.kr, &kr_cert).await;
    let id_before = show(&p.id, &id_cert).await;
    let outboxes =
        || async { (p.kr.api("GET", "/api/v1/outbox", "").await.1, p.id.api("GET", "/api/v1/outbox", "").await.1) };
    let outbox_before = outboxes().await;
    let amend = format!("/api/v1/certificates/{kr_cert}/amendments");

    let same = json!({"reason": "r", "replacement": EXAMPLE_CO}).to_string();
    let (status, body) = p.kr.api("POST", &amend, &same).await;
    assert_eq!((status, body["errors"][0]["code"].as_str()), (422, Some("AMEND-SAME-REFERENCE")), "{body}");

    let broken = co_with_reference("R-BAD").replacen("<TypeCode>861</TypeCode>", "", 1);
    let (status, body) = p.kr.api("POST", &amend, &json!({"reason": "r", "replacement": broken}).to_string()).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"].as_array().expect("errors").iter().any(|e| e["path"] == "replacement/LPCO/TypeCode"),
        "{body}"
    );

    let (status, body) =
        p.kr.api("POST", &amend, &json!({"reason": " ", "replacement": co_with_reference("R-OK")}).to_string()).await;
    assert_eq!((status, body["errors"][0]["code"].as_str()), (422, Some("API-FIELD")), "a reason is mandatory: {body}");
    let (status, body) = p.kr.api("POST", &amend, "{not json").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("API-JSON")), "{body}");
    let (status, body) = p.kr.api("POST", "/api/v1/certificates/no-such-id/amendments", &same).await;
    assert_eq!((status, body["code"].as_str(), body["path"].as_str()), (404, Some("LC-UNKNOWN"), Some("id")), "{body}");

    let treatment = |decision: &str| json!({"decision": decision}).to_string();
    let path = format!("/api/v1/certificates/{id_cert}/treatment");
    let (status, body) = p.id.api("POST", &path, &treatment("Maybe")).await;
    assert_eq!((status, body["errors"][0]["code"].as_str()), (422, Some("API-FIELD")), "{body}");
    // A control character would make the queued SendFeedback unparsable when it is signed:
    // refused with the field, in free texts and in codes alike; line breaks in remarks are fine.
    for (field, value, path_of_error) in [
        ("remarks", json!("see\u{b}annex"), "remarks"),
        ("declaration_reference", json!("40101\u{0}"), "declaration_reference"),
        ("reason_codes", json!(["OK", "R\u{c}1"]), "reason_codes[1]"),
    ] {
        let mut request = json!({"decision": "Rejected"});
        request[field] = value;
        let (status, body) = p.id.api("POST", &path, &request.to_string()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            (body["errors"][0]["code"].as_str(), body["errors"][0]["path"].as_str()),
            (Some("API-FIELD"), Some(path_of_error)),
            "{body}"
        );
    }
    let too_many: Vec<String> = (0..100).map(|i| format!("R{i}")).collect();
    let (status, body) =
        p.id.api("POST", &path, &json!({"decision": "Rejected", "reason_codes": too_many}).to_string()).await;
    assert_eq!((status, body["errors"][0]["path"].as_str()), (422, Some("reason_codes")), "{body}");
    // Treatment is the importer's: the exporter's own certificate refuses it.
    let (status, body) =
        p.kr.api("POST", &format!("/api/v1/certificates/{kr_cert}/treatment"), &treatment("Granted")).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("LC-NOT-AUTHORISED")), "{body}");

    let (status, body) = p.id.api("GET", "/api/v1/lookup?partner=XX&reference=A&code=B", "").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("API-PARTNER")), "{body}");
    let long = "R".repeat(36);
    for (query, field) in [
        (format!("reference={long}&code=B"), "reference"),
        ("reference=A%0B1&code=B".to_owned(), "reference"),
        ("reference=A&code=%20B".to_owned(), "code"),
    ] {
        let (status, body) = p.id.api("GET", &format!("/api/v1/lookup?partner=KR&{query}"), "").await;
        assert_eq!(
            (status, body["code"].as_str(), body["path"].as_str()),
            (400, Some("API-QUERY"), Some(field)),
            "{body}"
        );
    }

    // A GetCO without its reference code: a Sender fault naming the element, nothing stored.
    let c = Crafter::new(&p.dir.path().join("pki"), "ID", "KR");
    let header = coconnect::message::MessageHeader::new("ID", "KR", uuid::Uuid::new_v4(), now());
    let payload = format!("<cc:Lookup><cc:IssuerPartyID>KR</cc:IssuerPartyID><cc:DocumentReference>{REFERENCE}</cc:DocumentReference></cc:Lookup>");
    let body = coconnect::soap::messages::request_xml(coconnect::message::Operation::GetCo, &header, &payload);
    let (status, fault) =
        post_soap(&p.kr.soap_url(), "ID", &p.kr.files.inbound_password, c.secure(&body, true, now())).await;
    assert_eq!(status, 500, "{fault}");
    assert!(fault.contains("MSG-MISSING") && fault.contains("/GetCORequest/Lookup/ReferenceCode"), "{fault}");

    assert_eq!(show(&p.kr, &kr_cert).await, kr_before, "the exporter's certificate is unchanged");
    assert_eq!(show(&p.id, &id_cert).await, id_before, "the importer's certificate is unchanged");
    assert_eq!(outboxes().await, outbox_before, "nothing was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_kept_while_our_copy_of_the_acknowledgement_is_still_missing() {
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    // KR's workers are off: its CO stays `sent`, as after a crash between sending and storing
    // ID's acknowledgement.
    let clock = coconnect::clock::ManualClock::new(now());
    p.kr.start_with(std::sync::Arc::new(clock.clone()), false).await;
    p.id.start().await;
    let kr_cert = p.kr.submit("ID", EXAMPLE_CO).await;
    let claimed =
        coconnect::store::outbox::claim_due(p.kr.store(), "w", clock.now_for_test(), chrono::Duration::seconds(60))
            .await
            .expect("claim")
            .expect("due");
    coconnect::store::outbox::begin_attempt(
        p.kr.store(),
        &claimed,
        b"<sent/>",
        clock.now_for_test(),
        chrono::Duration::seconds(30),
    )
    .await
    .expect("attempt");
    assert_eq!(show(&p.kr, &kr_cert).await["state"], "sent");
    // The CO did reach ID (here straight from the test, signed with KR's key).
    let c = Crafter::new(&p.dir.path().join("pki"), "KR", "ID");
    let request = c.secure(&send_co_body(uuid::Uuid::new_v4(), EXAMPLE_CO), true, now());
    let (status, ack) = post_soap(&p.id.soap_url(), "KR", &p.id.files.inbound_password, request).await;
    assert!(status == 200 && ack.contains("Accepted"), "{ack}");
    let id_cert = received(&p.id, REFERENCE).await["id"].as_str().expect("id").to_owned();

    let treatment = json!({"decision": "Granted", "declaration_reference": "40101-25-000777M"}).to_string();
    let (status, body) = p.id.api("POST", &format!("/api/v1/certificates/{id_cert}/treatment"), &treatment).await;
    assert_eq!(status, 202, "{body}");
    let kept = p
        .kr
        .wait_for(&kr_cert, "kept the feedback", |c| c["treatment_decisions"].as_array().is_some_and(|d| !d.is_empty()))
        .await;
    assert_eq!(kept["state"], "sent", "{kept}");
    assert_eq!(kept["treatment_decisions"][0]["declaration_reference"], "40101-25-000777M");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reference_claimed_at_once_by_two_amendments_and_a_submission_goes_to_one() {
    one_reference_claimed_at_once_goes_to_one_on(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reference_claimed_at_once_by_two_amendments_and_a_submission_goes_to_one_postgres() {
    if coconnect::store::testdb::postgres_or_skip(
        "one_reference_claimed_at_once_by_two_amendments_and_a_submission_goes_to_one_postgres",
        true,
    )
    .is_none()
    {
        return;
    }
    one_reference_claimed_at_once_goes_to_one_on(Db::Postgres).await;
}

async fn one_reference_claimed_at_once_goes_to_one_on(db: Db) {
    let mut p = pair_stopped("sign-encrypt", db).await;
    // ID's officer decides, so every amendment stays open and keeps its reservation.
    p.id.reconfigure(
        "[[partners]]\nparty = \"KR\"",
        "[[partners]]\nparty = \"KR\"\ncancellation_decision = \"officer\"",
    );
    p.kr.start().await;
    p.id.start().await;
    for round in 1..=3 {
        let (a, b) = (format!("CLAIM-{round}-A"), format!("CLAIM-{round}-B"));
        let (a, b) = (p.kr.submit("ID", &co_with_reference(&a)).await, p.kr.submit("ID", &co_with_reference(&b)).await);
        p.kr.wait_state(&a, "acknowledged").await;
        p.kr.wait_state(&b, "acknowledged").await;
        let shared = format!("SHARED-{round}");
        let (amend_a, amend_b) = (amendment("first", &shared), amendment("second", &shared));
        let (path_a, path_b) =
            (format!("/api/v1/certificates/{a}/amendments"), format!("/api/v1/certificates/{b}/amendments"));
        let replacement = co_with_reference(&shared);
        let (ra, rb, rs) = tokio::join!(
            p.kr.api("POST", &path_a, &amend_a),
            p.kr.api("POST", &path_b, &amend_b),
            p.kr.api("POST", "/api/v1/certificates?partner=ID", &replacement),
        );
        let won = [ra.0, rb.0, rs.0].iter().filter(|s| **s == 202).count();
        assert_eq!(won, 1, "round {round}: exactly one may take {shared}: {ra:?} {rb:?} {rs:?}");
        for (status, body) in [&ra, &rb] {
            if *status != 202 {
                assert_eq!((*status, body["errors"][0]["code"].as_str()), (422, Some("CO-DUPLICATE")), "{body}");
            }
        }
        if rs.0 != 202 {
            assert_eq!((rs.0, rs.1["code"].as_str()), (409, Some("CO-DUPLICATE")), "{}", rs.1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_of_a_partner_that_is_down_says_so_without_our_internals() {
    let mut p = pair("sign-encrypt", Db::Sqlite).await;
    p.kr.stop().await;
    let (status, body) =
        p.id.api("GET", &format!("/api/v1/lookup?partner=KR&reference={REFERENCE}&code=AAAA-BBBB-CCCC"), "").await;
    assert_eq!((status, body["code"].as_str()), (502, Some("LOOKUP-UNAVAILABLE")), "{body}");
    assert_eq!(body["error"], "the partner's gateway could not be reached", "a fixed sentence: {body}");
}
