//! The domestic API for a partner's list of approved exporters (Annex IV), through a running
//! gateway: import, read back, refusals, and the operator record.

use chrono::Utc;
use coconnect::store::approved_exporters;
use serde_json::json;
use sqlx::Row;

use crate::common::{pair_stopped, Db};

#[tokio::test]
async fn a_partners_approved_exporters_are_imported_replaced_and_read_back() {
    // Only the importing side (ID) holds KR's list; KR need not run.
    let mut p = pair_stopped("sign-encrypt", Db::Sqlite).await;
    p.id.start().await;
    let gw = &p.id;
    let path = "/api/v1/partners/KR/approved-exporters";

    let (status, body) = gw.api("GET", path, "").await;
    assert_eq!((status, body), (200, json!([])));

    let list = r#"[{"authorisation_id": "KR-AE-130-2023-000417", "name": "Hanbit Industrial Co., Ltd."},
                   {"authorisation_id": "KR-AE-130-2019-000012", "valid_until": "2020-01-01T00:00:00Z"}]"#;
    let (status, body) = gw.api("PUT", path, list).await;
    assert_eq!((status, body), (200, json!({"partner": "KR", "count": 2})));
    let (status, body) = gw.api("GET", path, "").await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["authorisation_id"], "KR-AE-130-2019-000012", "ordered by code: {body}");
    assert_eq!(body[1]["name"], "Hanbit Industrial Co., Ltd.");
    let store = gw.store();
    assert!(approved_exporters::is_approved(store, "KR", "KR-AE-130-2023-000417", Utc::now()).await.expect("lookup"));
    assert!(!approved_exporters::is_approved(store, "KR", "KR-AE-130-2019-000012", Utc::now()).await.expect("expired"));

    // A bad entry refuses the whole list, naming the entry; the stored list stays.
    let bad = r#"[{"authorisation_id": "KR-AE-1"}, {"authorisation_id": "KR-AE-1"}]"#;
    let (status, body) = gw.api("PUT", path, bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!((&body["code"], &body["index"]), (&json!("API-APPROVED-EXPORTERS"), &json!(1)), "{body}");
    assert_eq!(gw.api("GET", path, "").await.1.as_array().map(Vec::len), Some(2));

    // Only configured partners; only GET and PUT.
    let (status, body) = gw.api("PUT", "/api/v1/partners/CN/approved-exporters", "[]").await;
    assert_eq!((status, &body["code"]), (404, &json!("API-PARTNER")), "{body}");
    let (status, body) = gw.api("DELETE", path, "").await;
    assert_eq!((status, &body["code"]), (405, &json!("API-METHOD")), "{body}");

    // A new list replaces the old one whole, and each import is on the operator record.
    let (status, body) = gw.api("PUT", path, r#"[{"authorisation_id": "KR-AE-9"}]"#).await;
    assert_eq!((status, body), (200, json!({"partner": "KR", "count": 1})));
    assert_eq!(
        gw.api("GET", path, "").await.1,
        json!([{"authorisation_id": "KR-AE-9", "name": null, "valid_until": null}])
    );
    let rows = sqlx::query("SELECT actor, action, target FROM operator_actions ORDER BY id")
        .fetch_all(store.pool())
        .await
        .expect("operator actions");
    let recorded: Vec<(String, String, String)> =
        rows.iter().map(|r| (r.get("actor"), r.get("action"), r.get("target"))).collect();
    let expected = ("replace-approved-exporters".to_owned(), "KR".to_owned());
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(
        recorded
            .iter()
            .all(|(actor, action, target)| actor.starts_with("api:") && (action, target) == (&expected.0, &expected.1)),
        "{recorded:?}"
    );
    p.id.stop().await;
}
