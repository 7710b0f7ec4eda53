//! Fresh databases for tests: a temporary SQLite file always, and a new PostgreSQL database on
//! the server named by `DATABASE_URL` when it is set (CI provides one).
//!
//! A test cannot drop its PostgreSQL database when it ends (the pool is still open, and `Drop`
//! cannot wait), so each is named with its creation time, and the first database a process
//! creates first drops those earlier runs left, once they are [`STALE_AFTER`] old (and those
//! named before the time was recorded, whatever their age): without it, every run of the suite
//! and of the benchmarks left its databases on the server (52 databases and 6.9 GB after one
//! day's benchmarks). A database still connected to is never dropped; PostgreSQL waits up to
//! 5 s for it to be left before refusing.

use super::certificates::NewCertificate;
use super::{Store, StoreError};

/// An outbound CO from KR to ID under `reference`, as tests of the outbox submit it.
pub fn outbound_co(reference: &str) -> NewCertificate<'_> {
    NewCertificate {
        issuer: "KR",
        reference,
        direction: crate::lifecycle::Direction::Outbound,
        partner: "ID",
        kind: crate::payload::DocumentKind::Co,
        replaces: None,
        reference_code: None,
        verification_flag: None,
        content_sha256: "abc",
        co_xml: "<LPCO/>",
    }
}

/// The PostgreSQL server to test against (`DATABASE_URL`), or `None` after recording that
/// `test` (or its PostgreSQL half, `whole` false) did not run: a line in the file named by
/// `COCONNECT_SKIP_LOG` (which `scripts/test.sh` counts in its closing line) and on stderr.
/// Under CI (`CI` set) a missing server is a failure, never a skip.
pub fn postgres_or_skip(test: &str, whole: bool) -> Option<String> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) {
        return Some(url);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: CI must run the PostgreSQL variants, but DATABASE_URL is not a postgres:// URL"
    );
    let what = if whole { "skipped" } else { "postgres-half-skipped" };
    eprintln!("{test}: {what}: DATABASE_URL is not set");
    if let Some(log) = std::env::var_os("COCONNECT_SKIP_LOG") {
        use std::io::Write;
        // One write(2) per line on an O_APPEND file: concurrent tests do not interleave lines
        // (`writeln!` would write each formatted piece separately).
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let line = format!("{what}\t{test}\tDATABASE_URL is not set\n");
            let _ = f.write_all(line.as_bytes());
        }
    }
    None
}

/// URLs of fresh, empty databases to run the same test against: SQLite always, PostgreSQL
/// when `DATABASE_URL` names a server (otherwise recorded as a skipped half, see
/// [`postgres_or_skip`]).
pub async fn fresh_database_urls(dir: &std::path::Path) -> Result<Vec<String>, StoreError> {
    let mut urls = vec![format!("sqlite:{}", dir.join(format!("{}.db", uuid::Uuid::new_v4().simple())).display())];
    if let Some(base) = postgres_or_skip("store test", false) {
        urls.push(fresh_postgres(&base).await?);
    }
    Ok(urls)
}

/// The prefix of every database made here; nothing else on the server may use it.
const PREFIX: &str = "coconnect_test_";

/// The age from which a test database is taken to be left over: no test or benchmark run
/// lasts that long, so none still uses it.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::hours(1);

/// Creates a new database on the server of `base` and returns its URL. The first call in a
/// process drops the test databases left on that server (see the module doc).
pub async fn fresh_postgres(base: &str) -> Result<String, StoreError> {
    static CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base).await?;
    CLEANED
        .get_or_init(|| async {
            if let Err(e) = drop_stale_databases(&mut conn, PREFIX, chrono::Utc::now()).await {
                eprintln!("test databases left by earlier runs were not dropped: {e}");
            }
        })
        .await;
    let name = database_name(PREFIX, chrono::Utc::now());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    let (prefix, _) = base.rsplit_once('/').ok_or_else(|| StoreError::Url(base.to_owned()))?;
    Ok(format!("{prefix}/{name}"))
}

/// A new database name under `prefix`, made at `now`: the creation time in seconds, then a
/// random part.
fn database_name(prefix: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{prefix}{}_{}", now.timestamp(), uuid::Uuid::new_v4().simple())
}

/// When the database `name` under `prefix` was created, if its name says so (names without the
/// time, from before it was recorded, say nothing).
fn created_at(prefix: &str, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let (seconds, _) = name.strip_prefix(prefix)?.split_once('_')?;
    chrono::DateTime::from_timestamp(seconds.parse().ok()?, 0)
}

/// Only names made of lower-case letters, digits and underscores are ever put into a
/// statement (a database name cannot be a bound parameter).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Drops the databases under `prefix` on `conn`'s server made before `now - STALE_AFTER` (or
/// whose name has no time), and returns their names. One that is still connected to is left
/// (plain `DROP DATABASE` refuses it).
async fn drop_stale_databases(
    conn: &mut sqlx::AnyConnection,
    prefix: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
        .bind(prefix)
        .fetch_all(&mut *conn)
        .await?;
    let mut dropped = Vec::new();
    for name in names.into_iter().filter(|n| plain_name(n)) {
        let stale = created_at(prefix, &name).is_none_or(|at| at < now - STALE_AFTER);
        if stale && sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut *conn).await.is_ok() {
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// Drops the database of `url` (made by [`fresh_postgres`]), closing its connections: for a
/// benchmark that is done with its databases.
pub async fn drop_postgres(base: &str, url: &str) -> Result<(), StoreError> {
    let name = url.rsplit_once('/').map(|(_, n)| n);
    let name = name.filter(|n| plain_name(n) && created_at(PREFIX, n).is_some());
    let name = name.ok_or_else(|| StoreError::Url(url.to_owned()))?;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
    Ok(())
}

/// Connects to every fresh database.
pub async fn fresh_stores(dir: &std::path::Path) -> Result<Vec<Store>, StoreError> {
    let mut stores = Vec::new();
    for url in fresh_database_urls(dir).await? {
        stores.push(Store::connect(&url).await?);
    }
    Ok(stores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn exists(conn: &mut sqlx::AnyConnection, name: &str) -> bool {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(conn)
            .await
            .expect("catalogue")
            == 1
    }

    #[tokio::test]
    async fn left_over_test_databases_are_dropped_but_recent_or_connected_ones_kept() {
        let Some(base) = postgres_or_skip("left_over_test_databases_are_dropped", true) else { return };
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&base).await.expect("server");
        // A prefix of this test's own: the clean-up that other tests (and processes) run at
        // the same time does not touch its databases.
        let prefix = format!("coconnect_c{}_", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let now = chrono::Utc::now();
        let left_over = database_name(&prefix, now - STALE_AFTER - chrono::Duration::minutes(5));
        let recent = database_name(&prefix, now - STALE_AFTER + chrono::Duration::minutes(5));
        let left_over_in_use = database_name(&prefix, now - STALE_AFTER * 3);
        let unnamed_time = format!("{prefix}{}", uuid::Uuid::new_v4().simple());
        for name in [&left_over, &recent, &left_over_in_use, &unnamed_time] {
            assert!(name.len() <= 63, "PostgreSQL would truncate {name}");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create");
        }
        let (server, _) = base.rsplit_once('/').expect("URL with a database");
        let user = sqlx::AnyConnection::connect(&format!("{server}/{left_over_in_use}")).await.expect("connect");

        let dropped = drop_stale_databases(&mut conn, &prefix, now).await.expect("clean-up");

        assert!(dropped.contains(&left_over) && !exists(&mut conn, &left_over).await, "{dropped:?}");
        assert!(dropped.contains(&unnamed_time) && !exists(&mut conn, &unnamed_time).await, "{dropped:?}");
        assert!(!dropped.contains(&recent) && exists(&mut conn, &recent).await);
        assert!(!dropped.contains(&left_over_in_use) && exists(&mut conn, &left_over_in_use).await);
        user.close().await.expect("close");
        for name in [&recent, &left_over_in_use] {
            sqlx::query(&format!("DROP DATABASE {name}")).execute(&mut conn).await.expect("drop");
        }
    }

    #[tokio::test]
    async fn a_benchmark_drops_its_database_even_while_connected() {
        let Some(base) = postgres_or_skip("a_benchmark_drops_its_database", true) else { return };
        let url = fresh_postgres(&base).await.expect("fresh");
        let _still_open = sqlx::AnyConnection::connect(&url).await.expect("connect");
        drop_postgres(&base, &url).await.expect("drop");
        let mut conn = sqlx::AnyConnection::connect(&base).await.expect("server");
        let (_, name) = url.rsplit_once('/').expect("name");
        assert!(!exists(&mut conn, name).await);
        let (server, _) = base.rsplit_once('/').expect("URL with a database");
        for not_ours in ["postgres", "test", "coconnect_test_x\"; DROP", "coconnect_test_123"] {
            assert!(drop_postgres(&base, &format!("{server}/{not_ours}")).await.is_err(), "{not_ours}");
        }
    }

    #[test]
    fn a_database_name_records_when_it_was_made() {
        let at = chrono::DateTime::from_timestamp(1_796_000_000, 0).expect("time");
        let name = database_name(PREFIX, at);
        assert!(name.len() <= 63 && plain_name(&name), "PostgreSQL truncates longer names: {name}");
        assert_eq!(created_at(PREFIX, &name), Some(at));
        assert_eq!(created_at(PREFIX, "coconnect_test_0f82d32d7b5449f5b8ac3be9fb43daa0"), None);
        assert_eq!(created_at(PREFIX, "other_1796000000_x"), None);
        assert!(!plain_name("coconnect_test_1\" WITH (FORCE) --") && !plain_name(""));
    }
}
