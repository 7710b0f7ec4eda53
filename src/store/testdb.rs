//! Fresh databases for tests: a temporary SQLite file always, and a new PostgreSQL database on
//! the server named by `DATABASE_URL` when it is set (CI provides one).

use super::{Store, StoreError};

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

/// Creates a new database on the server of `base` and returns its URL.
pub async fn fresh_postgres(base: &str) -> Result<String, StoreError> {
    sqlx::any::install_default_drivers();
    let name = format!("coconnect_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    let (prefix, _) = base.rsplit_once('/').ok_or_else(|| StoreError::Url(base.to_owned()))?;
    Ok(format!("{prefix}/{name}"))
}

/// Connects to every fresh database.
pub async fn fresh_stores(dir: &std::path::Path) -> Result<Vec<Store>, StoreError> {
    let mut stores = Vec::new();
    for url in fresh_database_urls(dir).await? {
        stores.push(Store::connect(&url).await?);
    }
    Ok(stores)
}
