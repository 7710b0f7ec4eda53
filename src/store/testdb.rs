//! Fresh databases for tests: a temporary SQLite file always, and a new PostgreSQL database on
//! the server named by `DATABASE_URL` when it is set (CI provides one).

use super::{Store, StoreError};

/// URLs of fresh, empty databases to run the same test against.
pub async fn fresh_database_urls(dir: &std::path::Path) -> Result<Vec<String>, StoreError> {
    let mut urls = vec![format!("sqlite:{}", dir.join(format!("{}.db", uuid::Uuid::new_v4().simple())).display())];
    if let Ok(base) = std::env::var("DATABASE_URL") {
        if base.starts_with("postgres") {
            urls.push(fresh_postgres(&base).await?);
        }
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
