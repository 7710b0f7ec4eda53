//! Persistence with sqlx: SQLite (embedded default, a file created and migrated on first start)
//! or PostgreSQL (production), through one `Any` pool and the same queries on both.
//!
//! Owns: the schema (migrations/{sqlite,postgres}), transactions, and the repositories
//! ([`certificates`], [`outbox`], [`inbound`], [`messages`], the back-end [`events`] and their
//! [`subscribers`], ...).
//! Must never: know about hyper, SOAP envelopes or keys; decide transitions (that is
//! `crate::lifecycle`, which [`certificates::apply`] consults).

pub mod alerts;
pub mod amendments;
pub mod approved_exporters;
pub mod audit;
pub mod certificates;
pub mod claims;
pub mod events;
mod group;
pub mod inbound;
pub mod messages;
pub mod operator;
pub mod outbox;
pub mod partners;
pub mod retention;
pub mod subscribers;
#[cfg(any(test, feature = "test-support"))]
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
    /// A `sqlite:` URL sqlx does not accept (such a URL holds no password).
    #[error("invalid SQLite URL {url:?}: {reason}")]
    SqliteUrl { url: String, reason: String },
    #[error("cannot create the SQLite database {}: {reason}", path.display())]
    Create { path: std::path::PathBuf, reason: std::io::Error },
    /// The cause is in the message, not also a `source`: a chain printed with `{:#}` (as `main`
    /// prints errors) would say it twice.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
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
    /// A transaction of [`Store::write`] failed to begin or commit, or its job panicked: its
    /// writes were rolled back, or (a commit whose answer was lost) may have been committed.
    #[error("the write could not be committed: {0}")]
    Commit(String),
    #[error("another coconnect instance already uses the SQLite database {0} (SQLite allows one instance; use PostgreSQL to run several)")]
    SqliteInUse(String),
    #[error("cannot lock the SQLite database {}: {reason}", path.display())]
    Lock { path: std::path::PathBuf, reason: std::io::Error },
}

// By hand, not `#[from]`, which would make the error also the `source` (see `Database`).
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
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
    /// Reads outside a transaction on the hot paths. SQLite: connections of their own, so that
    /// a read does not wait behind the one writer connection (which waits for each commit's
    /// fsync); in WAL mode they see every committed transaction. PostgreSQL: the same pool.
    readers: AnyPool,
    backend: Backend,
    /// When the replay cache was last pruned (ms since the epoch): once a minute is enough.
    replay_pruned_at: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// SQLite: the task that gives concurrent writes one commit ([`Store::write`]).
    group: group::GroupCommit,
    /// SQLite: the exclusive lock on `<database>.lock`, held while any clone of the store lives.
    _instance_lock: Option<std::sync::Arc<std::fs::File>>,
    /// Delivery steps written in one round trip (tests: proof that the fused way was taken,
    /// since it writes what the usual way writes).
    #[cfg(any(test, feature = "test-support"))]
    fused_steps: std::sync::Arc<std::sync::atomic::AtomicU64>,
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
        if url.starts_with("sqlite:") {
            if let SqliteTarget::File { path, .. } = sqlite_target(url)? {
                if !path.exists() {
                    return Err(StoreError::NotFound(format!("SQLite database {}", path.display())));
                }
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
            Backend::Sqlite => {
                // A read-only or in-memory database creates no file and cannot race another
                // instance for the outbox: no lock.
                match sqlite_target(&url)? {
                    SqliteTarget::File { path, read_only: false } => {
                        let lock = take_instance_lock.then(|| lock_sqlite(&path)).transpose()?;
                        create_sqlite_file(&path)?;
                        lock.map(std::sync::Arc::new)
                    }
                    SqliteTarget::File { read_only: true, .. } | SqliteTarget::Memory => None,
                }
            }
            Backend::Postgres => None,
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let file_backed =
            backend == Backend::Sqlite && matches!(sqlite_target(&url)?, SqliteTarget::File { read_only: false, .. });
        let pool = match backend {
            // One connection: SQLite serialises writers anyway, and a single connection avoids
            // lock-upgrade failures between concurrent deferred transactions.
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(1)
                    // No ping before each use: a connection to a local file cannot have been
                    // dropped by a server, and the ping is one more hand-over to sqlx's
                    // connection thread and back for every transaction and every statement run
                    // on the pool (two gateways on SQLite: 268 against 253 COs/s, five
                    // interleaved runs each).
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Every connection, also one that replaces an expired one: these are
                            // per connection in SQLite.
                            sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
                            sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                            // The savepoints of the receipt and delivery scripts keep each
                            // page's former content in a sub-journal while a script runs. Past
                            // 64 KiB SQLite spilled it to a temporary file it created and
                            // deleted (3 % of the receiving gateway's CPU, most of it in the
                            // kernel). It only serves a rollback to a savepoint: durability is
                            // the WAL's. Sorts on this connection are then kept in memory too:
                            // the migrations (an index built over a large table) run without.
                            sqlx::query("PRAGMA temp_store = MEMORY").execute(&mut *conn).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                probe_postgres(&url, &options).await?;
                // The ping before each use stays: it replaces a connection the server or a
                // fail-over closed before a step fails on it (without it, two gateways on
                // PostgreSQL were no faster: 193 and 170 against 192 and 195 COs/s).
                AnyPoolOptions::new()
                    .max_connections(16)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Wire forms, acknowledgements and documents are TOASTed: pglz
                            // compressing them took a tenth of PostgreSQL's CPU in the load
                            // bench (encrypted bodies do not compress, but pglz tries the
                            // whole value). lz4 does the same job several times faster. A
                            // server built without lz4 refuses the setting: it keeps pglz. Any
                            // other failure (the connection itself) is the connection's error.
                            match sqlx::query("SET default_toast_compression = 'lz4'").execute(&mut *conn).await {
                                Err(sqlx::Error::Database(e)) => {
                                    tracing::debug!(error = %e, "PostgreSQL without lz4: values are compressed with pglz");
                                    Ok(())
                                }
                                other => other.map(|_| ()),
                            }
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        match backend {
            Backend::Sqlite => {
                sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
                // A migration may sort a whole table (an index built over the message log):
                // on disk, as SQLite's default, not in memory as the writer's own statements.
                sqlx::query("PRAGMA temp_store = DEFAULT").execute(&pool).await?;
                MIGRATE_SQLITE.run(&pool).await?;
                sqlx::query("PRAGMA temp_store = MEMORY").execute(&pool).await?;
            }
            Backend::Postgres => MIGRATE_POSTGRES.run(&pool).await?,
        }
        let readers = if file_backed {
            // After the migrations: a reader must never see a half-made schema. query_only: a
            // write by mistake through this pool fails instead of racing the writer.
            AnyPoolOptions::new()
                .max_connections(SQLITE_READERS)
                // As the writer's: nothing a ping could find, one hand-over saved per read.
                .test_before_acquire(false)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::query("PRAGMA query_only = ON").execute(&mut *conn).await?;
                        Ok(())
                    })
                })
                .connect_with(AnyConnectOptions::from_str(&url)?)
                .await?
        } else {
            // PostgreSQL, or an in-memory SQLite database that a second connection would not see.
            pool.clone()
        };
        Ok(Store {
            pool,
            readers,
            backend,
            replay_pruned_at: Default::default(),
            group: Default::default(),
            _instance_lock: instance_lock,
            #[cfg(any(test, feature = "test-support"))]
            fused_steps: Default::default(),
        })
    }

    /// Counts a delivery step written in one round trip (see `fused_steps`).
    pub(crate) fn note_fused_step(&self) {
        #[cfg(any(test, feature = "test-support"))]
        self.fused_steps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many delivery steps were written in one round trip (a statement on PostgreSQL, a
    /// script on SQLite) rather than statement by statement.
    #[cfg(any(test, feature = "test-support"))]
    pub fn fused_steps(&self) -> u64 {
        self.fused_steps.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For a read outside any transaction that must not wait behind writes (see `readers`).
    pub(crate) fn readers(&self) -> &AnyPool {
        &self.readers
    }

    /// True at most once a minute per store (shared by its clones): time to prune the replay
    /// cache.
    pub(crate) fn replay_prune_due(&self, now_millis: i64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.replay_pruned_at.load(Ordering::Relaxed);
        now_millis - last >= 60_000
            && self.replay_pruned_at.compare_exchange(last, now_millis, Ordering::Relaxed, Ordering::Relaxed).is_ok()
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

/// Read connections of a SQLite store (beside its one writer).
const SQLITE_READERS: u32 = 4;

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

/// Where a `sqlite:` URL's database is, as sqlx reads the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// `sqlite::memory:`, `sqlite://:memory:`, `?mode=memory`, or an empty path: no file.
    Memory,
    /// The file, percent-decoded as sqlx decodes it; `read_only` for `?mode=ro`.
    File { path: std::path::PathBuf, read_only: bool },
}

/// The database of a `sqlite:` URL. The path is sqlx's own reading (`get_filename`: the scheme
/// stripped, percent-decoded), so that the file made private and locked here is the one the
/// driver opens; an option sqlx refuses is refused here.
pub fn sqlite_target(url: &str) -> Result<SqliteTarget, StoreError> {
    let invalid = |reason: String| StoreError::SqliteUrl { url: url.to_owned(), reason };
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(|e| invalid(e.to_string()))?;
    // sqlx keeps the mode to itself: read it as sqlx does (the last `mode` wins).
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let mode = url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == "mode").last().map(|(_, v)| v);
    let database = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let database = database.split('?').next().unwrap_or_default();
    let path = options.get_filename();
    if database == ":memory:" || mode.as_deref() == Some("memory") || path.as_os_str().is_empty() {
        return Ok(SqliteTarget::Memory);
    }
    Ok(SqliteTarget::File { path: path.to_owned(), read_only: mode.as_deref() == Some("ro") })
}

/// The database holds personal data: its file is created here mode 0600, before the driver
/// would create it with the umask's permissions (usually 0644), and set to exactly 0600 (the
/// umask cannot change it). SQLite gives the `-wal` and `-shm` files the permissions of the
/// database file.
fn create_sqlite_file(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    match created {
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|reason| StoreError::Create { path: path.to_owned(), reason }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(
                    path = %path.display(),
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
fn lock_sqlite(path: &std::path::Path) -> Result<std::fs::File, StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let lock_error = |reason| StoreError::Lock { path: lock_path.clone(), reason };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(lock_error)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::SqliteInUse(path.display().to_string())),
        Err(std::fs::TryLockError::Error(reason)) => Err(lock_error(reason)),
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
mod backend_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod connect_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    /// The permission bits of `file`, which must exist.
    fn mode(file: &str) -> u32 {
        std::fs::metadata(file).unwrap_or_else(|e| panic!("{file}: {e}")).permissions().mode() & 0o7777
    }

    #[tokio::test]
    async fn a_new_sqlite_database_and_its_journal_files_are_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("co.db");
        let store = Store::connect(&format!("sqlite:{}", path.display())).await.expect("connect");
        // Writes, with the checkpoint held off, so that the WAL and the shared-memory file exist
        // and hold pages while they are looked at.
        sqlx::query("PRAGMA wal_autocheckpoint = 0").execute(store.pool()).await.expect("pragma");
        sqlx::query("CREATE TABLE probe (x INTEGER)").execute(store.pool()).await.expect("write");
        sqlx::query("INSERT INTO probe VALUES (1)").execute(store.pool()).await.expect("write");
        // Exactly 0600 whatever the process umask (which can only take bits away): the modes
        // are set, not left to the umask.
        for suffix in ["", "-wal", "-shm", ".lock"] {
            let file = format!("{}{suffix}", path.display());
            assert_eq!(mode(&file), 0o600, "{file}: {:o}", mode(&file));
        }
        assert!(std::fs::metadata(format!("{}-wal", path.display())).expect("wal").len() > 0, "the WAL was written");
    }

    #[tokio::test]
    async fn a_sqlite_path_is_read_as_sqlx_reads_it() {
        let dir = tempfile::tempdir().expect("tmp");
        // Percent-decoded: the file made private and locked is the one the driver opens.
        let url = format!("sqlite:{}/my%20co.db", dir.path().display());
        let store = Store::connect(&url).await.expect("connect");
        sqlx::query("CREATE TABLE probe (x INTEGER)").execute(store.pool()).await.expect("write");
        let decoded = format!("{}/my co.db", dir.path().display());
        assert_eq!(mode(&decoded), 0o600);
        assert_eq!(mode(&format!("{decoded}.lock")), 0o600);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("%20")), "a file of the undecoded name: {names:?}");
        drop(store);
        // Inspection finds the same file.
        Store::connect_for_inspection(&url).await.expect("the decoded file exists");

        assert_eq!(
            sqlite_target(&format!("sqlite://{}/a%3Fb.db?mode=ro", dir.path().display())).expect("url"),
            SqliteTarget::File { path: dir.path().join("a?b.db"), read_only: true }
        );
        for memory in ["sqlite::memory:", "sqlite://:memory:", "sqlite:x.db?mode=memory", "sqlite:"] {
            assert_eq!(sqlite_target(memory).expect("url"), SqliteTarget::Memory, "{memory}");
        }
        let e = sqlite_target("sqlite:x.db?mode=bogus").expect_err("sqlx refuses it").to_string();
        assert!(e.starts_with("invalid SQLite URL \"sqlite:x.db?mode=bogus\": "), "{e}");
    }

    #[tokio::test]
    async fn a_read_only_sqlite_url_creates_no_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("absent.db");
        let url = format!("sqlite:{}?mode=ro", path.display());
        assert!(Store::connect(&url).await.is_err(), "nothing to open read-only");
        assert!(Store::connect_for_inspection(&url).await.is_err());
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
        assert!(left.is_empty(), "created: {left:?}");
    }

    #[tokio::test]
    async fn store_errors_say_their_cause_once() {
        let dir = tempfile::tempdir().expect("tmp");
        // The lock file's folder does not exist.
        let missing = dir.path().join("missing").join("co.db");
        let e = Store::connect(&format!("sqlite:{}", missing.display())).await.expect_err("no folder");
        assert!(matches!(e, StoreError::Lock { .. }), "{e}");
        let chained = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chained.matches("os error").count(), 1, "{chained}");

        let store = Store::connect(&format!("sqlite:{}", dir.path().join("co.db").display())).await.expect("connect");
        let e: StoreError =
            sqlx::query("SELECT x FROM nowhere").execute(store.pool()).await.expect_err("no such table").into();
        let chained = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chained.matches("no such table").count(), 1, "{chained}");
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
