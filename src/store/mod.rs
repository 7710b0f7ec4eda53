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
    /// The URL's scheme only: the rest may hold a password.
    #[error("database URL scheme {0:?} is neither sqlite: nor postgres:")]
    Url(String),
    /// PostgreSQL did not answer: `target` is host:port (never the URL, which may hold a password).
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect { target: String, cause: String },
    #[error("cannot create the SQLite database {path}: {reason}")]
    Create { path: String, reason: std::io::Error },
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
            return Err(StoreError::Url(url.split(':').next().unwrap_or_default().to_owned()));
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
        if backend == Backend::Sqlite {
            create_sqlite_file(&url)?;
        }
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = match backend {
            // One connection: SQLite serialises writers anyway, and a single connection avoids
            // lock-upgrade failures between concurrent deferred transactions.
            Backend::Sqlite => AnyPoolOptions::new().max_connections(1).connect_with(options).await?,
            Backend::Postgres => {
                probe_postgres(&url, &options).await?;
                AnyPoolOptions::new().max_connections(16).connect_with(options).await?
            }
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

/// How long PostgreSQL has to accept a connection at start: an unreachable server must be
/// reported within seconds, not after the pool's retries.
const POSTGRES_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One connection before the pool is built, so that a failure says where and why (the pool
/// would only report a timeout, after retrying for 30 s).
async fn probe_postgres(url: &str, options: &AnyConnectOptions) -> Result<(), StoreError> {
    use sqlx::Connection;
    let target = match sqlx::postgres::PgConnectOptions::from_str(url) {
        Ok(pg) => format!("{}:{}", pg.get_host(), pg.get_port()),
        Err(_) => "(unparsable URL)".to_owned(),
    };
    match tokio::time::timeout(POSTGRES_CONNECT_TIMEOUT, sqlx::AnyConnection::connect_with(options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(StoreError::Connect { target, cause: e.to_string() }),
        Err(_) => Err(StoreError::Connect {
            target,
            cause: format!("no answer within {} s", POSTGRES_CONNECT_TIMEOUT.as_secs()),
        }),
    }
}

/// The file of a `sqlite:` URL; `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path.is_empty() || path == ":memory:" || query.split('&').any(|q| q == "mode=memory");
    (!memory).then_some(path)
}

/// The database holds personal data: its file is created here mode 0600, before the driver
/// would create it with the umask's permissions (usually 0644). SQLite gives the `-wal` and
/// `-shm` files the permissions of the database file.
fn create_sqlite_file(url: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let Some(path) = sqlite_path(url) else { return Ok(()) };
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(
                    path,
                    "the SQLite database is readable by group or others: chmod 600 it and its -wal and -shm files"
                );
            }
            Ok(())
        }
        Err(reason) => Err(StoreError::Create { path: path.to_owned(), reason }),
    }
}

/// SQLite is for one instance: a second process on the same file would race the first for the
/// outbox. An exclusive lock on `<file>.lock` (released by the OS if the process dies) refuses it.
fn lock_sqlite(url: &str) -> Result<std::fs::File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = sqlite_path(url) else {
        return std::fs::File::open("/dev/null").map_err(|source| StoreError::Lock { path: url.to_owned(), source });
    };
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
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

#[cfg(test)]
mod connect_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn a_new_sqlite_database_and_its_journal_files_are_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("co.db");
        let store = Store::connect(&format!("sqlite:{}", path.display())).await.expect("connect");
        // A write, so that the WAL and the shared-memory file exist.
        sqlx::query("CREATE TABLE probe (x INTEGER)").execute(store.pool()).await.expect("write");
        let mut checked = 0;
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let file = format!("{}{suffix}", path.display());
            if let Ok(meta) = std::fs::metadata(&file) {
                assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
                checked += 1;
            }
        }
        assert!(checked >= 3, "the database, its WAL and its lock file exist");
    }

    #[tokio::test]
    async fn an_unreachable_postgresql_is_named_with_its_cause_within_seconds() {
        let started = Instant::now();
        let e = Store::connect("postgres://postgres:hunter2@127.0.0.1:1/x").await.expect_err("nothing listens");
        let message = e.to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert!(message.starts_with("cannot connect to PostgreSQL at 127.0.0.1:1: "), "{message}");
        assert!(message.contains("refused"), "the cause: {message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[tokio::test]
    async fn a_postgresql_that_never_answers_is_given_up_after_the_timeout() {
        // Accepts TCP connections (the kernel does, from the backlog) but never speaks.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = silent.local_addr().expect("addr");
        let started = Instant::now();
        let e = Store::connect(&format!("postgres://postgres@{addr}/x")).await.expect_err("no answer");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert_eq!(e.to_string(), format!("cannot connect to PostgreSQL at {addr}: no answer within 5 s"));
    }

    #[tokio::test]
    async fn an_unsupported_url_does_not_echo_its_password() {
        let e = Store::connect("mysql://root:hunter2@db/x").await.expect_err("unsupported").to_string();
        assert!(!e.contains("hunter2") && e.contains("mysql"), "{e}");
    }
}
