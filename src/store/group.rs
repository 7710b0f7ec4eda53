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
//! before it: grouping changes when the data reaches the disk, not what is written.
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
    /// back; Err with the failed commit's cause.
    done: oneshot::Sender<Result<(), String>>,
}

/// The most jobs one transaction takes: a batch holds the writer for all of them.
const MAX_BATCH: usize = 64;

/// The sending side of a SQLite store's group-commit task. The task runs as long as a clone of
/// the store lives (it holds the pool, not the store) and starts with the first write.
#[derive(Clone, Default)]
pub(super) struct GroupCommit {
    sender: Arc<std::sync::OnceLock<mpsc::UnboundedSender<Job>>>,
    #[cfg(any(test, feature = "test-support"))]
    pub(super) commits: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("started", &self.sender.get().is_some()).finish()
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
                let sender = self.group.sender.get_or_init(|| self.start_group_commit());
                if let Err(refused) = sender.send(job) {
                    // The task ended (its runtime is shutting down): the job runs here.
                    run_alone(&self.pool, refused.0).await;
                }
            }
        }
        let committed = finished
            .await
            .map_err(|_| E::from(StoreError::Commit("the group-commit task ended before the job's outcome".into())))?;
        committed.map_err(|cause| E::from(StoreError::Commit(cause)))?;
        let result = outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        result.unwrap_or_else(|| Err(E::from(StoreError::Commit("the job did not run".into()))))
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

/// All of `jobs` in one transaction; if any fails (or the commit does), each again alone.
async fn run_batch(pool: &AnyPool, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        for job in jobs {
            run_alone(pool, job).await;
        }
        return;
    }
    match all_in_one(pool, &jobs).await {
        Ok(()) => {
            for job in jobs {
                let _ = job.done.send(Ok(()));
            }
        }
        Err(e) => {
            tracing::debug!(jobs = jobs.len(), cause = %e, "a grouped transaction failed: its jobs run one by one");
            for job in jobs {
                run_alone(pool, job).await;
            }
        }
    }
}

async fn all_in_one(pool: &AnyPool, jobs: &[Job]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for job in jobs {
        if !(job.work)(&mut tx).await {
            tx.rollback().await?;
            return Err(StoreError::Commit("a job of the group failed".into()));
        }
    }
    tx.commit().await?;
    Ok(())
}

/// One job in its own transaction; its outcome is final when this returns.
async fn run_alone(pool: &AnyPool, job: Job) {
    let outcome = async {
        let mut tx = pool.begin().await?;
        if (job.work)(&mut tx).await {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok::<_, StoreError>(())
    }
    .await;
    let _ = job.done.send(outcome.map_err(|e| e.to_string()));
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
            if store.backend() == Backend::Sqlite {
                let commits = store.group_commits();
                assert!(commits < 40, "40 concurrent writes took {commits} group transactions: none shared");
            }
        }
    }
}
