//! The XML security threads: a fixed set of threads, one a core, that run every piece of
//! libxml2 and libxmlsec1 work the async side hands off ([`super::on_xml_security_thread`]), in the
//! order it was handed off.
//!
//! Why not tokio's blocking pool: it starts a thread for each job that finds none idle, so eight
//! concurrent requests ran eight RSA operations at once on two cores. The kernel then switched
//! between them, each switch cooling the caches the next operation needed, and each of those
//! threads parsed and kept its own copy of the keys. Here at most one job a core runs; the others
//! wait in one queue, and the few threads keep their parsed keys for the life of the process.
//!
//! Owns: the threads and their queue.
//! Must never: run a job that waits (for I/O, for a lock held across work, for another job): it
//! would hold one of the few threads, and jobs queued behind it would wait with it; let a job's
//! panic end a thread (each job runs under `catch_unwind`, and its caller gets an error).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use super::SecurityError;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The jobs waiting for a thread, and how many threads wait for a job.
struct Waiting {
    jobs: VecDeque<Job>,
    idle_threads: usize,
}

struct Queue {
    waiting: Mutex<Waiting>,
    job_ready: Condvar,
}

impl Queue {
    /// A poisoned lock is used as it is: no job runs under it, and a push or pop is never left
    /// half done.
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job) {
        let mut waiting = self.lock();
        waiting.jobs.push_back(job);
        // Wakes a thread only when one sleeps: a busy thread takes the job when it is done,
        // without a system call on either side.
        let wake = waiting.idle_threads > 0;
        drop(waiting);
        if wake {
            self.job_ready.notify_one();
        }
    }

    /// One thread's loop: the next job in arrival order, forever.
    fn serve(&self) {
        let mut waiting = self.lock();
        loop {
            match waiting.jobs.pop_front() {
                Some(job) => {
                    drop(waiting);
                    job();
                    waiting = self.lock();
                }
                None => {
                    waiting.idle_threads += 1;
                    waiting = self.job_ready.wait(waiting).unwrap_or_else(PoisonError::into_inner);
                    waiting.idle_threads -= 1;
                }
            }
        }
    }
}

static QUEUE: Queue =
    Queue { waiting: Mutex::new(Waiting { jobs: VecDeque::new(), idle_threads: 0 }), job_ready: Condvar::new() };

/// Whether [`QUEUE`]'s threads run: `false` if none could be started (the jobs then go to
/// tokio's blocking pool, as before this module existed).
static STARTED: OnceLock<bool> = OnceLock::new();

/// How many threads run XML security work: one a core.
pub fn count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn start() -> bool {
    let mut started = 0;
    for i in 0..count() {
        match std::thread::Builder::new().name(format!("xml-security-{i}")).spawn(|| QUEUE.serve()) {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(error = %e, "an XML security thread could not be started"),
        }
    }
    started > 0
}

/// Runs `work` on an XML security thread and returns its result. A panic in `work` is our own
/// failure and comes back as [`SecurityError::Internal`].
pub async fn run<T, F>(work: F) -> Result<T, SecurityError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SecurityError> + Send + 'static,
{
    if !*STARTED.get_or_init(start) {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| SecurityError::Internal(format!("security task failed: {e}")))?;
    }
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // A caller that stopped waiting (its connection closed) drops the answer: nothing to do.
        let _ = answer.send(catch_unwind(AssertUnwindSafe(work)));
    });
    QUEUE.push(job);
    match answered.await {
        Ok(Ok(result)) => result,
        Ok(Err(_panic)) => Err(SecurityError::Internal("security task panicked".into())),
        Err(_) => Err(SecurityError::Internal("security task dropped without an answer".into())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Jobs handed off together run at most one a core at once, every one of them runs, and a
    /// job's panic comes back as an error without taking a thread with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn jobs_run_one_a_core_at_most_and_a_panic_is_an_error() {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let jobs = (0..4 * count()).map(|i| {
            run(move || {
                let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                MOST.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                RUNNING.fetch_sub(1, Ordering::SeqCst);
                Ok(i)
            })
        });
        let done = futures_util::future::join_all(jobs).await;
        assert_eq!(
            done.into_iter().map(|r| r.ok()).collect::<Vec<_>>(),
            (0..4 * count()).map(Some).collect::<Vec<_>>()
        );
        let most = MOST.load(Ordering::SeqCst);
        assert!(most <= count(), "{most} jobs ran at once on {} threads", count());

        let panicked = run(|| -> Result<(), SecurityError> { panic!("a job's own failure") }).await;
        assert!(matches!(panicked, Err(SecurityError::Internal(ref m)) if m.contains("panicked")), "{panicked:?}");
        let names = futures_util::future::join_all(
            (0..count()).map(|_| run(|| Ok(std::thread::current().name().map(str::to_owned)))),
        )
        .await;
        for name in names {
            let name = name.ok().flatten().unwrap_or_default();
            assert!(name.starts_with("xml-security-"), "a job ran on {name:?}");
        }
    }
}
