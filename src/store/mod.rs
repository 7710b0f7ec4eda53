//! Persistence with sqlx: SQLite (embedded default, a file created and migrated on first start)
//! or PostgreSQL (production), through one `Any` pool and the same queries on both.
//!
//! Owns: the schema (migrations/{sqlite,postgres}), transactions, and the repositories
//! [`certificates`], [`outbox`], [`inbound`] and [`messages`].
//! Must never: know about hyper, SOAP envelopes or keys; decide transitions (that is
//! `crate::lifecycle`, which [`certificates::apply`] consults).

pub mod alerts;
pub mod amendments;
pub mod approved_exporters;
pub mod audit;
pub mod certificates;
pub mod claims;
pub mod inbound;
pub mod messages;
pub mod operator;
pub mod outbox;
pub mod partners;
pub mod retention;
pub mod testdb;
pub mod treatments;

use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Transaction};

pub type Tx<'a> = Transaction<'a, Any>;

/// Which database is behind the pool; a few statements differ (row locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is neither sqlite: nor postgres:")]
    Url(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("already exists: {0}")]
    Duplicate(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Illegal(#[from] crate::lifecycle::Refusal),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// A worker's claim on an outbox message ended (it expired and another worker took the
    /// message, or an operator cancelled it): what the worker was about to record is dropped.
    #[error("the claim on outbox message {0} was lost")]
    LeaseLost(String),
    #[error("another coconnect instance already uses the SQLite database {0} (SQLite allows one instance; use PostgreSQL to run several)")]
    SqliteInUse(String),
    #[error("cannot lock the SQLite database {path}: {source}")]
    Lock { path: String, source: std::io::Error },
}

impl StoreError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(e) if is_unique_violation(e))
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| d.is_unique_violation())
}

/// The connection pool and its backend.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: the exclusive lock on `<database>.lock`, held while any clone of the store lives.
    _instance_lock: Option<std::sync::Arc<std::fs::File>>,
}

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects and migrates, as the one gateway instance of a SQLite file (see `lock_sqlite`).
    /// `sqlite:PATH` creates the file if needed.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, true).await
    }

    /// Connects for an inspection tool (`audit verify`) next to a running gateway: no
    /// instance lock. Tools must only read.
    pub async fn connect_for_inspection(url: &str) -> Result<Self, StoreError> {
        // An inspection must not create an empty database and call it intact.
        if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//").split('?').next().unwrap_or(path);
            if !std::path::Path::new(path).exists() {
                return Err(StoreError::NotFound(format!("SQLite database {path}")));
            }
        }
        Self::open(url, false).await
    }

    async fn open(url: &str, take_instance_lock: bool) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let instance_lock = match backend {
            Backend::Sqlite if take_instance_lock => Some(std::sync::Arc::new(lock_sqlite(&url)?)),
            Backend::Sqlite => None,
            Backend::Postgres => None,
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = match backend {
            // One connection: SQLite serialises writers anyway, and a single connection avoids
            // lock-upgrade failures between concurrent deferred transactions.
            Backend::Sqlite => AnyPoolOptions::new().max_connections(1).connect_with(options).await?,
            Backend::Postgres => AnyPoolOptions::new().max_connections(16).connect_with(options).await?,
        };
        match backend {
            Backend::Sqlite => {
                sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
                sqlx::query("PRAGMA synchronous = FULL").execute(&pool).await?;
                sqlx::query("PRAGMA foreign_keys = ON").execute(&pool).await?;
                MIGRATE_SQLITE.run(&pool).await?;
            }
            Backend::Postgres => MIGRATE_POSTGRES.run(&pool).await?,
        }
        Ok(Store { pool, backend, _instance_lock: instance_lock })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx<'static>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// A read-only transaction whose statements all see one committed state, for views that
    /// combine several tables (a certificate with its amendments must not show the amendment
    /// decided and the certificate not yet moved). SQLite in WAL mode keeps the snapshot of a
    /// read transaction's first statement; PostgreSQL needs REPEATABLE READ for that.
    pub async fn begin_snapshot(&self) -> Result<Tx<'static>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// ` FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances claim different rows.
    pub(crate) fn for_update_skip_locked(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        }
    }

    /// `FOR UPDATE` where the backend has row locks (SQLite locks the database on write).
    pub(crate) fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

/// SQLite is for one instance: a second process on the same file would race the first for the
/// outbox. An exclusive lock on `<file>.lock` (released by the OS if the process dies) refuses it.
fn lock_sqlite(url: &str) -> Result<std::fs::File, StoreError> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return std::fs::File::open("/dev/null").map_err(|source| StoreError::Lock { path: path.to_owned(), source });
    }
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::Lock { path: lock_path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::SqliteInUse(path.to_owned())),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Lock { path: lock_path, source }),
    }
}

/// Milliseconds since the Unix epoch: the stored time format on both backends.
pub fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests;
