//! Each partner's list of approved exporters (Annex IV, "management of ... the approved
//! exporters list"): the authorisation codes the partner's customs granted, which an importing
//! gateway checks the `ApprovedExporterAuthorisationID` of a received declaration of origin
//! against.
//!
//! Owns: the `approved_exporters` table (migrations 0006). A partner's list is only ever
//! replaced whole, in one transaction, so a reader sees the old list or the new one, never a mix.
//!
//! Must never: decide what an unlisted exporter means for a DO (the receive path accepts it and
//! flags it for verification), check the form of the codes (the domestic API does, before it
//! calls [`replace_list`]), or know about HTTP.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{from_millis, millis, Backend, Store, StoreError, Tx};

/// One entry of a partner's list: the authorisation code, the exporter's name if the partner
/// gave one, and the end of the authorisation if it has one (none: valid until withdrawn, i.e.
/// until a new list leaves it out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovedExporter {
    pub authorisation_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
}

/// Replaces `partner`'s whole list with `exporters`, in one transaction. Returns how many
/// entries the list now has.
///
/// # Errors
///
/// [`StoreError::Duplicate`] when an authorisation code occurs twice in `exporters` (nothing is
/// changed); database errors.
pub async fn replace_list(
    store: &Store,
    partner: &str,
    exporters: &[ApprovedExporter],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut tx = store.begin().await?;
    let count = replace_in(&mut tx, store, partner, exporters, now).await?;
    tx.commit().await?;
    Ok(count)
}

/// [`replace_list`], recorded as an operator action of `actor` in the same transaction: the
/// list changes if and only if the action is on record.
///
/// # Errors
///
/// As [`replace_list`].
pub async fn replace_list_as(
    store: &Store,
    partner: &str,
    exporters: &[ApprovedExporter],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut tx = store.begin().await?;
    let count = replace_in(&mut tx, store, partner, exporters, now).await?;
    let detail = format!("{count} on the list");
    super::operator::record(&mut tx, store, actor, "replace-approved-exporters", partner, &detail, now).await?;
    tx.commit().await?;
    Ok(count)
}

async fn replace_in(
    tx: &mut Tx<'_>,
    store: &Store,
    partner: &str,
    exporters: &[ApprovedExporter],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    if store.backend() == Backend::Postgres {
        // Two replacements of one list at once would each delete the rows they can see and
        // then collide on the rows the other inserted. This lock mode conflicts with itself, so
        // writers of the table queue up; readers are not blocked. SQLite already serialises
        // writers (one connection).
        sqlx::query("LOCK TABLE approved_exporters IN SHARE ROW EXCLUSIVE MODE").execute(&mut **tx).await?;
    }
    sqlx::query("DELETE FROM approved_exporters WHERE partner = $1").bind(partner).execute(&mut **tx).await?;
    for exporter in exporters {
        let inserted = sqlx::query(
            "INSERT INTO approved_exporters (partner, authorisation_id, name, valid_until, imported_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(partner)
        .bind(&exporter.authorisation_id)
        .bind(exporter.name.as_deref())
        .bind(exporter.valid_until.map(millis))
        .bind(millis(now))
        .execute(&mut **tx)
        .await;
        match inserted {
            Ok(_) => {}
            // The caller's transaction is dropped without commit: the old list stays.
            Err(e) if super::is_unique_violation(&e) => {
                return Err(StoreError::Duplicate(format!(
                    "approved exporter {} of partner {partner}",
                    exporter.authorisation_id
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(exporters.len())
}

/// `partner`'s list, ordered by authorisation code; empty when none was imported.
///
/// # Errors
///
/// Database errors.
pub async fn list(store: &Store, partner: &str) -> Result<Vec<ApprovedExporter>, StoreError> {
    let rows = sqlx::query(
        "SELECT authorisation_id, name, valid_until FROM approved_exporters WHERE partner = $1 ORDER BY authorisation_id",
    )
    .bind(partner)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ApprovedExporter {
                authorisation_id: r.try_get("authorisation_id")?,
                name: r.try_get("name")?,
                valid_until: r.try_get::<Option<i64>, _>("valid_until")?.map(from_millis),
            })
        })
        .collect()
}

/// Whether `authorisation_id` is on `partner`'s list and still valid at `now`: false when it is
/// absent or its `valid_until` is before `now`. The code is compared exactly, as the DO carries
/// it (`Lpco::approved_exporter`, already trimmed).
///
/// # Errors
///
/// Database errors (never "not approved": the caller must not flag a DO because the database
/// did not answer).
pub async fn is_approved(
    store: &Store,
    partner: &str,
    authorisation_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT valid_until FROM approved_exporters WHERE partner = $1 AND authorisation_id = $2")
        .bind(partner)
        .bind(authorisation_id)
        .fetch_optional(store.pool())
        .await?;
    let Some(row) = row else { return Ok(false) };
    let valid_until: Option<i64> = row.try_get("valid_until")?;
    Ok(valid_until.is_none_or(|until| until >= millis(now)))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::store::testdb::fresh_stores;

    fn exporter(id: &str, valid_until: Option<DateTime<Utc>>) -> ApprovedExporter {
        ApprovedExporter { authorisation_id: id.to_owned(), name: Some(format!("Exporter {id}")), valid_until }
    }

    async fn stores() -> (tempfile::TempDir, Vec<Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = fresh_stores(dir.path()).await.expect("stores");
        (dir, stores)
    }

    /// Stored times are milliseconds: compare with a time that has no finer part.
    fn now() -> DateTime<Utc> {
        from_millis(millis(Utc::now()))
    }

    #[tokio::test]
    async fn a_list_is_replaced_whole_and_per_partner() {
        let (_d, stores) = stores().await;
        for store in stores {
            let now = now();
            let first = [exporter("KR-AE-2", None), exporter("KR-AE-1", Some(now + Duration::days(30)))];
            assert_eq!(replace_list(&store, "KR", &first, now).await.expect("replace"), 2);
            replace_list(&store, "CN", &[exporter("CN-AE-1", None)], now).await.expect("replace");
            let listed = list(&store, "KR").await.expect("list");
            assert_eq!(listed, vec![first[1].clone(), first[0].clone()], "ordered by code");

            // The new list replaces the old one entirely; the other partner's stays.
            let second = [ApprovedExporter { authorisation_id: "KR-AE-3".to_owned(), name: None, valid_until: None }];
            assert_eq!(replace_list(&store, "KR", &second, now).await.expect("replace"), 1);
            assert_eq!(list(&store, "KR").await.expect("list"), second.to_vec());
            assert_eq!(list(&store, "CN").await.expect("list").len(), 1);

            // An empty list clears it.
            assert_eq!(replace_list(&store, "KR", &[], now).await.expect("replace"), 0);
            assert!(list(&store, "KR").await.expect("list").is_empty());
            assert!(list(&store, "XX").await.expect("list").is_empty());
        }
    }

    #[tokio::test]
    async fn a_list_with_a_duplicate_changes_nothing() {
        let (_d, stores) = stores().await;
        for store in stores {
            let now = now();
            let before = [exporter("KR-AE-1", None)];
            replace_list(&store, "KR", &before, now).await.expect("replace");
            let bad = [exporter("KR-AE-7", None), exporter("KR-AE-8", None), exporter("KR-AE-7", None)];
            let err = replace_list(&store, "KR", &bad, now).await.expect_err("duplicate");
            assert!(matches!(&err, StoreError::Duplicate(what) if what.contains("KR-AE-7")), "{err:?}");
            assert_eq!(list(&store, "KR").await.expect("list"), before.to_vec());
        }
    }

    #[tokio::test]
    async fn concurrent_replacements_leave_one_whole_list() {
        let (_d, stores) = stores().await;
        for store in stores {
            let now = now();
            replace_list(&store, "KR", &[exporter("KR-AE-0", None)], now).await.expect("replace");
            let a: Vec<_> = (0..50).map(|i| exporter(&format!("KR-AE-{i}"), None)).collect();
            let b: Vec<_> = (25..75).map(|i| exporter(&format!("KR-AE-{i}"), None)).collect();
            for _ in 0..5 {
                let (ra, rb) = tokio::join!(replace_list(&store, "KR", &a, now), replace_list(&store, "KR", &b, now));
                assert_eq!((ra.expect("a"), rb.expect("b")), (50, 50));
                let mut listed = list(&store, "KR").await.expect("list");
                listed.sort_by(|x, y| x.authorisation_id.cmp(&y.authorisation_id));
                let mut expect_a = a.clone();
                expect_a.sort_by(|x, y| x.authorisation_id.cmp(&y.authorisation_id));
                let mut expect_b = b.clone();
                expect_b.sort_by(|x, y| x.authorisation_id.cmp(&y.authorisation_id));
                assert!(listed == expect_a || listed == expect_b, "a mix of both lists: {}", listed.len());
            }
        }
    }

    #[tokio::test]
    async fn approval_needs_the_code_on_the_partners_list_and_in_force() {
        let (_d, stores) = stores().await;
        for store in stores {
            let now = now();
            let list = [
                exporter("KR-AE-OPEN", None),
                exporter("KR-AE-UNTIL-NOW", Some(now)),
                exporter("KR-AE-EXPIRED", Some(now - Duration::milliseconds(1))),
            ];
            replace_list(&store, "KR", &list, now).await.expect("replace");
            assert!(is_approved(&store, "KR", "KR-AE-OPEN", now).await.expect("lookup"));
            assert!(is_approved(&store, "KR", "KR-AE-OPEN", now + Duration::days(3650)).await.expect("lookup"));
            assert!(is_approved(&store, "KR", "KR-AE-UNTIL-NOW", now).await.expect("lookup"));
            assert!(!is_approved(&store, "KR", "KR-AE-UNTIL-NOW", now + Duration::seconds(1)).await.expect("lookup"));
            assert!(!is_approved(&store, "KR", "KR-AE-EXPIRED", now).await.expect("lookup"));
            assert!(!is_approved(&store, "KR", "KR-AE-MISSING", now).await.expect("lookup"));
            // Another partner's list does not count, and codes are compared exactly.
            assert!(!is_approved(&store, "CN", "KR-AE-OPEN", now).await.expect("lookup"));
            assert!(!is_approved(&store, "KR", "kr-ae-open", now).await.expect("lookup"));
        }
    }

    #[tokio::test]
    async fn a_replacement_by_an_operator_is_on_record() {
        let (_d, stores) = stores().await;
        for store in stores {
            let now = now();
            let count =
                replace_list_as(&store, "KR", &[exporter("KR-AE-1", None)], "api:ops", now).await.expect("replace");
            assert_eq!(count, 1);
            let row = sqlx::query("SELECT actor, action, target, detail FROM operator_actions")
                .fetch_one(store.pool())
                .await
                .expect("operator action");
            let recorded: (String, String, String, String) = (
                row.try_get("actor").expect("actor"),
                row.try_get("action").expect("action"),
                row.try_get("target").expect("target"),
                row.try_get("detail").expect("detail"),
            );
            assert_eq!(
                recorded,
                (
                    "api:ops".to_owned(),
                    "replace-approved-exporters".to_owned(),
                    "KR".to_owned(),
                    "1 on the list".to_owned()
                )
            );
        }
    }

    #[test]
    fn the_json_form_is_strict_about_field_names() {
        let parsed: ApprovedExporter =
            serde_json::from_str(r#"{"authorisation_id": "KR-AE-1", "valid_until": "2026-12-31T23:59:59Z"}"#)
                .expect("json");
        assert_eq!(parsed.name, None);
        assert_eq!(parsed.valid_until.map(|t| t.to_rfc3339()).as_deref(), Some("2026-12-31T23:59:59+00:00"));
        assert!(serde_json::from_str::<ApprovedExporter>(r#"{"authorisation_id": "A", "valid_util": null}"#).is_err());
        assert!(serde_json::from_str::<ApprovedExporter>(r#"{"name": "A"}"#).is_err());
    }
}
