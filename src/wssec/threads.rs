//! The XML security threads: a fixed set of threads, one a core, that run every piece of
//! libxml2 and libxmlsec1 work the async side hands off ([`super::on_xml_security_thread`]):
//! the work of exchanges already under way first ([`Precedence::InProgress`]: signing the answer
//! to a request already read, checking a partner's answer), then new work ([`Precedence::New`]:
//! reading a request, securing a message to send), each in the order it was handed off.
//!
//! Why not tokio's blocking pool: it starts a thread for each job that finds none idle, so eight
//! concurrent requests ran eight RSA operations at once on two cores. The kernel then switched
//! between them, each switch cooling the caches the next operation needed, and each of those
//! threads parsed and kept its own copy of the keys. Here at most one job a core runs; the others
//! wait their turn, and the few threads keep their parsed keys for the life of the process.
//!
//! Unlike a `spawn_blocking` task, a job here does not stop a paused tokio clock from advancing
//! (`start_paused` tests): a test on the paused clock that waits for XML security work under a
//! timeout would see the timeout fire.
//!
//! Why two queues: in a burst, a request's second job (signing its acknowledgement) would
//! otherwise wait behind the first jobs of every request that arrived meanwhile, and each of
//! those behind the others' first jobs too: every request of the burst would be answered late.
//! Work in progress first finishes the requests already begun before it begins the next, which
//! leaves the rate as it is and shortens the wait of all but the last. New work cannot starve:
//! each job in progress follows a new job of its own exchange that already ran (at most two
//! follow one), and new jobs are taken in arrival order.
//!
//! The queues have no bound of their own: what can wait in them is bounded by the gateway's
//! connection limits and by the delivery workers, each of which waits for its job's answer.
//!
//! Owns: the threads, their queues, and the order in which jobs are taken.
//! Must never: run a job that waits (for I/O, for a lock held across work, for another job): it
//! would hold one of the few threads, and jobs queued behind it would wait with it; let a job's
//! panic end a thread (each job runs under `catch_unwind`, and its caller gets an error).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use super::SecurityError;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Which jobs a thread takes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precedence {
    /// Work that begins an exchange: reading a partner's request, securing a message to send.
    /// Runs in the order it was handed off, after all work in progress.
    New,
    /// Work for an exchange whose earlier work already ran: signing the answer to a request
    /// read, checking the answer to a message sent. Runs before any new work.
    InProgress,
}

/// The jobs waiting for a thread, and how many threads wait for a job.
struct Waiting {
    in_progress: VecDeque<Job>,
    new: VecDeque<Job>,
    idle_threads: usize,
}

impl Waiting {
    fn next(&mut self) -> Option<Job> {
        self.in_progress.pop_front().or_else(|| self.new.pop_front())
    }
}

struct Queue {
    waiting: Mutex<Waiting>,
    job_ready: Condvar,
}

impl Queue {
    const fn new() -> Self {
        Queue {
            waiting: Mutex::new(Waiting { in_progress: VecDeque::new(), new: VecDeque::new(), idle_threads: 0 }),
            job_ready: Condvar::new(),
        }
    }

    /// A poisoned lock is used as it is: no job runs under it, and a push or pop is never left
    /// half done.
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job, precedence: Precedence) {
        let mut waiting = self.lock();
        match precedence {
            Precedence::New => waiting.new.push_back(job),
            Precedence::InProgress => waiting.in_progress.push_back(job),
        }
        // Wakes a thread only when one sleeps: a busy thread takes the job when it is done,
        // without a system call on either side.
        let wake = waiting.idle_threads > 0;
        drop(waiting);
        if wake {
            self.job_ready.notify_one();
        }
    }

    /// One thread's loop: the next job (work in progress first, each kind in arrival order),
    /// forever.
    fn serve(&self) {
        let mut waiting = self.lock();
        loop {
            match waiting.next() {
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

static QUEUE: Queue = Queue::new();

/// Whether [`QUEUE`]'s threads run: `false` if none could be started (the jobs then go to
/// tokio's blocking pool, as before this module existed, where no precedence applies).
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

/// Runs `work` on an XML security thread, in its turn by `precedence`, and returns its result.
/// A panic in `work` is our own failure and comes back as [`SecurityError::Internal`].
pub async fn run<T, F>(precedence: Precedence, work: F) -> Result<T, SecurityError>
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
        // A caller that stopped waiting (its connection closed, its deadline passed) wants no
        // answer: its job would only hold a thread that a waiting caller's job could use.
        if answer.is_closed() {
            return;
        }
        let _ = answer.send(catch_unwind(AssertUnwindSafe(work)));
    });
    QUEUE.push(job, precedence);
    match answered.await {
        Ok(Ok(result)) => result,
        Ok(Err(_panic)) => Err(SecurityError::Internal("security task panicked".into())),
        Err(_) => Err(SecurityError::Internal("security task dropped without an answer".into())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// `what`, or a failure after 30 s: a lost wake-up fails the test instead of hanging it.
    async fn within<T>(what: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), what).await.expect("no job left waiting")
    }

    /// Jobs handed off together all run, at most one a core at once, on every one of the
    /// threads; a job's panic comes back as an error without taking a thread with it; and a job
    /// whose caller stopped waiting is not run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn jobs_run_one_a_core_at_most_and_a_panic_is_an_error() {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static MOST: AtomicUsize = AtomicUsize::new(0);
        let jobs = (0..4 * count()).map(|i| {
            run(Precedence::New, move || {
                let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                MOST.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                RUNNING.fetch_sub(1, Ordering::SeqCst);
                Ok((i, std::thread::current().name().map(str::to_owned).unwrap_or_default()))
            })
        });
        let done: Vec<_> = within(futures_util::future::join_all(jobs)).await.into_iter().flatten().collect();
        assert_eq!(done.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..4 * count()).collect::<Vec<_>>());
        let most = MOST.load(Ordering::SeqCst);
        assert!(most <= count(), "{most} jobs ran at once on {} threads", count());
        let threads: HashSet<&str> = done.iter().map(|(_, name)| name.as_str()).collect();
        assert!(threads.iter().all(|name| name.starts_with("xml-security-")), "{threads:?}");
        assert_eq!(threads.len(), count(), "every thread takes jobs: {threads:?}");

        let panicked =
            within(run(Precedence::New, || -> Result<(), SecurityError> { panic!("a job's own failure") })).await;
        assert!(matches!(panicked, Err(SecurityError::Internal(ref m)) if m.contains("panicked")), "{panicked:?}");

        // Every thread busy, then a job whose caller gives up before a thread is free.
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let busy: Vec<_> = (0..count())
            .map(|_| {
                tokio::spawn(run(Precedence::New, || {
                    std::thread::sleep(Duration::from_millis(200));
                    Ok(())
                }))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let given_up = tokio::time::timeout(
            Duration::from_millis(10),
            run(Precedence::New, || Ok(RAN.fetch_add(1, Ordering::SeqCst))),
        );
        assert!(given_up.await.is_err(), "every thread was busy");
        for b in busy {
            within(b).await.expect("task").expect("busy job");
        }
        within(run(Precedence::New, || Ok(()))).await.expect("a later job");
        assert_eq!(RAN.load(Ordering::SeqCst), 0, "the job of a caller that stopped waiting ran");
    }

    /// A thread takes work in progress before new work, each in the order it was handed off:
    /// the jobs wait in a queue of their own until one thread serves it.
    #[test]
    fn work_in_progress_goes_before_new_work() {
        // Leaked: the thread that serves it never returns.
        let queue: &'static Queue = Box::leak(Box::new(Queue::new()));
        let (done, order) = std::sync::mpsc::channel();
        for (name, precedence) in [
            ("new 1", Precedence::New),
            ("new 2", Precedence::New),
            ("in progress 1", Precedence::InProgress),
            ("new 3", Precedence::New),
            ("in progress 2", Precedence::InProgress),
        ] {
            let done = done.clone();
            queue.push(Box::new(move || done.send(name).expect("the test waits")), precedence);
        }
        std::thread::spawn(|| queue.serve());
        let taken: Vec<&str> =
            (0..5).map(|_| order.recv_timeout(Duration::from_secs(30)).expect("every job runs")).collect();
        assert_eq!(taken, ["in progress 1", "in progress 2", "new 1", "new 2", "new 3"]);
    }
}
