//! Group commit: on SQLite, write transactions submitted at the same time share one commit.
//!
//! SQLite has one writer connection, and each commit waits for its fsync. Under load, the
//! messages received at the same time queued for that connection one transaction at a time: a
//! receipt waited about 22 ms for it under 8 concurrent partners' requests, and held it about
//! 3.5 ms, a third of which was the commit. Here one task owns the writes submitted through
//! [`Store::write`]: it takes every job waiting, runs them in order in one transaction and
//! commits once. If any of them fails, that transaction is rolled back and the jobs run again
//! one by one, each in a transaction of its own, so that one job's failure never takes another
//! job's write with it, and each job sees exactly what it would have seen alone after those
//! before it: grouping changes when the data reaches the disk, not what is written. A job that
//! panics fails alone; a transaction that cannot begin fails the whole group at once (alone,
//! each job would wait for the connection in turn).
//! PostgreSQL runs each job in its own transaction at once (it already shares one WAL flush
//! among the commits of concurrent connections).
//!
//! Owns: the group-commit task of a SQLite store and the order of its jobs.
//! Must never: report a job's write as done before the commit that holds it succeeded; let a
//! failed job's statements reach the disk; take the writer connection from inside a job (a job
//! writes through the transaction it is given).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{Backend, Store, StoreError, Tx};

/// A job's work on the transaction it is given; true if it succeeded (its writes may be
/// committed), false if they must be rolled back. It may run twice (see the module doc).
type Work = Box<dyn for<'c> Fn(&'c mut Tx<'static>) -> Pin<Box<dyn Future<Output = bool> + Send + 'c>> + Send + Sync>;

struct Job {
    work: Work,
    /// Ok once the job's outcome is final: its writes committed, or (when it failed) rolled
    /// back; Err with the cause of a transaction that failed to begin or commit.
    done: oneshot::Sender<Result<(), String>>,
}

/// The most jobs one transaction takes: a batch holds the writer for all of them.
const MAX_BATCH: usize = 64;

/// The sending side of a SQLite store's group-commit task. The task starts with the first write
/// and runs until no clone of the store is left (it holds the pool, not the store) or its
/// runtime ends; a write that finds it gone starts another.
#[derive(Clone, Default)]
pub(super) struct GroupCommit {
    sender: Arc<Mutex<Option<mpsc::UnboundedSender<Job>>>>,
    #[cfg(any(test, feature = "test-support"))]
    pub(super) commits: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let started = self.sender.lock().map(|s| s.is_some()).unwrap_or(false);
        f.debug_struct("GroupCommit").field("started", &started).finish()
    }
}

impl Store {
    /// Runs `work` in a write transaction and commits it; returns what `work` returned. On
    /// SQLite the transaction may also hold other jobs submitted at the same time (one commit
    /// for all of them). An `Err` from `work` rolls its writes back and is returned as it is;
    /// a failed commit is returned as a [`StoreError`].
    ///
    /// `work` may run more than once (after another job of its group failed), each time on a
    /// transaction without its earlier writes: it must not have effects outside the
    /// transaction other than logging.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'c> Fn(&'c mut Tx<'static>) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send
            + Sync
            + 'static,
    {
        let outcome: Arc<Mutex<Option<Result<T, E>>>> = Arc::new(Mutex::new(None));
        let slot = outcome.clone();
        let work: Work = Box::new(move |tx| {
            let slot = slot.clone();
            let run = work(tx);
            Box::pin(async move {
                let result = run.await;
                let ok = result.is_ok();
                *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
                ok
            })
        });
        let (done, finished) = oneshot::channel();
        let job = Job { work, done };
        match self.backend {
            Backend::Postgres => run_alone(&self.pool, job).await,
            Backend::Sqlite => {
                if let Some(refused) = self.queue(job) {
                    // Not even a new task takes it (its runtime is shutting down): it runs here.
                    run_alone(&self.pool, refused).await;
                }
            }
        }
        let committed = finished
            .await
            .map_err(|_| E::from(StoreError::Commit("the group-commit task ended before the job's outcome".into())))?;
        committed.map_err(|cause| E::from(StoreError::Commit(cause)))?;
        let result = outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        result
            .unwrap_or_else(|| Err(E::from(StoreError::Commit("the job panicked; its writes were rolled back".into()))))
    }

    /// Hands `job` to the group-commit task, starting one if there is none or the last one
    /// ended with its runtime; gives the job back if no task takes it.
    fn queue(&self, job: Job) -> Option<Job> {
        let mut sender = self.group.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let job = match sender.as_ref() {
            Some(task) => match task.send(job) {
                Ok(()) => return None,
                Err(refused) => refused.0,
            },
            None => job,
        };
        let started = self.start_group_commit();
        match started.send(job) {
            Ok(()) => {
                *sender = Some(started);
                None
            }
            Err(refused) => Some(refused.0),
        }
    }

    fn start_group_commit(&self) -> mpsc::UnboundedSender<Job> {
        let (sender, mut queue) = mpsc::unbounded_channel::<Job>();
        let pool = self.pool.clone();
        #[cfg(any(test, feature = "test-support"))]
        let commits = self.group.commits.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
                #[cfg(any(test, feature = "test-support"))]
                commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                run_batch(&pool, std::mem::take(&mut batch)).await;
            }
        });
        sender
    }

    /// How many transactions the group-commit task committed or tried (tests: proof that
    /// concurrent jobs shared them).
    #[cfg(any(test, feature = "test-support"))]
    pub fn group_commits(&self) -> u64 {
        self.group.commits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// All of `jobs` in one transaction; if a job or the commit fails, each again alone. A
/// transaction that cannot even begin fails them all at once: alone, each would wait for the
/// connection in turn.
async fn run_batch(pool: &AnyPool, mut jobs: Vec<Job>) {
    if jobs.len() == 1 {
        if let Some(job) = jobs.pop() {
            run_alone(pool, job).await;
        }
        return;
    }
    match all_in_one(pool, &jobs).await {
        Grouped::Committed => {
            for job in jobs {
                let _ = job.done.send(Ok(()));
            }
        }
        Grouped::NotBegun(e) => {
            let cause = e.to_string();
            for job in jobs {
                let _ = job.done.send(Err(cause.clone()));
            }
        }
        Grouped::Failed(e) => {
            tracing::debug!(jobs = jobs.len(), cause = %e, "a grouped transaction failed: its jobs run one by one");
            for job in jobs {
                run_alone(pool, job).await;
            }
        }
    }
}

/// What became of a group's transaction.
enum Grouped {
    Committed,
    /// The transaction could not begin: nothing ran.
    NotBegun(StoreError),
    /// A job or the commit failed: everything was rolled back.
    Failed(StoreError),
}

async fn all_in_one(pool: &AnyPool, jobs: &[Job]) -> Grouped {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => return Grouped::NotBegun(e.into()),
    };
    for job in jobs {
        if !run_job(job, &mut tx).await {
            // Dropped, the transaction rolls back (also if the explicit rollback fails).
            let _ = tx.rollback().await;
            return Grouped::Failed(StoreError::Commit("a job of the group failed".into()));
        }
    }
    match tx.commit().await {
        Ok(()) => Grouped::Committed,
        Err(e) => Grouped::Failed(e.into()),
    }
}

/// One job in its own transaction; its outcome is final when this returns.
async fn run_alone(pool: &AnyPool, job: Job) {
    let outcome = async {
        let mut tx = pool.begin().await?;
        if run_job(&job, &mut tx).await {
            tx.commit().await?;
        } else if let Err(e) = tx.rollback().await {
            // The job's own error is its answer; the connection is discarded by sqlx.
            tracing::warn!(error = %e, "rolling back a failed write failed");
        }
        Ok::<_, StoreError>(())
    }
    .await;
    let _ = job.done.send(outcome.map_err(|e| e.to_string()));
}

/// Runs a job's work; a panic in it counts as a failure of that job alone (its caller learns of
/// it), not of the task that runs every job.
async fn run_job(job: &Job, tx: &mut Tx<'static>) -> bool {
    let started = catching(move || (job.work)(tx));
    let finished = match started {
        Ok(run) => CatchUnwind(run).await.ok(),
        Err(_) => None,
    };
    finished.unwrap_or_else(|| {
        tracing::error!("a write job panicked; its writes are rolled back");
        false
    })
}

/// `f`'s result, or its panic.
fn catching<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

/// A future whose panic is caught (the future is not used again after one).
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = &mut self.0;
        match catching(|| Pin::new(inner).poll(cx)) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdb::fresh_stores;
    use super::*;

    /// A job that remembers `key`; it fails after its insert when `fail` is set.
    async fn remember(store: &Store, key: String, fail: bool) -> Result<String, StoreError> {
        store
            .write(move |tx| {
                let key = key.clone();
                Box::pin(async move {
                    sqlx::query("INSERT INTO replay_cache (signature_key, expires_at) VALUES ($1, 0)")
                        .bind(&key)
                        .execute(&mut **tx)
                        .await?;
                    if fail {
                        return Err(StoreError::Corrupt(format!("{key} fails on purpose")));
                    }
                    Ok(key)
                })
            })
            .await
    }

    async fn remembered(store: &Store) -> Vec<String> {
        let mut keys: Vec<String> =
            sqlx::query_scalar("SELECT signature_key FROM replay_cache").fetch_all(store.pool()).await.expect("keys");
        keys.sort();
        keys
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes_share_commits_and_a_failed_one_takes_no_other_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        for store in fresh_stores(dir.path()).await.expect("stores") {
            let jobs: Vec<_> = (0..40)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move { remember(&store, format!("k{i:02}"), i % 10 == 7).await })
                })
                .collect();
            let mut expected = Vec::new();
            for (i, job) in jobs.into_iter().enumerate() {
                match job.await.expect("job") {
                    Ok(key) => {
                        assert_ne!(i % 10, 7, "a failing job reported success");
                        assert_eq!(key, format!("k{i:02}"), "each job gets its own result");
                        expected.push(key);
                    }
                    Err(StoreError::Corrupt(why)) => assert_eq!(why, format!("k{i:02} fails on purpose")),
                    Err(e) => panic!("job {i}: {e}"),
                }
            }
            assert_eq!(expected.len(), 36);
            assert_eq!(remembered(&store).await, expected, "every successful job committed, no failed one");
            // A job that finds an earlier job's row fails (a unique violation) and is rolled
            // back alone; the store keeps working.
            assert!(remember(&store, "k00".into(), false).await.expect_err("duplicate").is_unique_violation());
            assert_eq!(remember(&store, "later".into(), false).await.expect("later"), "later");
            // A job that panics fails alone, with an error for its caller, and the next write
            // still goes through (on SQLite, through the same task).
            let (panicking, panics) = (store.clone(), true);
            let panicked = tokio::spawn(async move {
                panicking
                    .write(move |tx| {
                        Box::pin(async move {
                            sqlx::query("INSERT INTO replay_cache (signature_key, expires_at) VALUES ('panic', 0)")
                                .execute(&mut **tx)
                                .await?;
                            if !panics {
                                return Ok::<(), StoreError>(());
                            }
                            panic!("a job panics on purpose")
                        })
                    })
                    .await
            });
            let beside = remember(&store, "beside the panic".into(), false);
            let (panicked, beside) = tokio::join!(panicked, beside);
            assert!(matches!(panicked.expect("the caller does not panic"), Err(StoreError::Commit(_))));
            assert_eq!(beside.expect("beside"), "beside the panic");
            assert_eq!(remember(&store, "after the panic".into(), false).await.expect("after"), "after the panic");
            assert!(
                !remembered(&store).await.contains(&"panic".to_owned()),
                "the panicking job's insert is rolled back"
            );
            if store.backend() == Backend::Sqlite {
                let commits = store.group_commits();
                assert!(commits < 40, "40 concurrent writes took {commits} group transactions: none shared");
            }
        }
    }
}
