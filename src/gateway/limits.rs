//! Denial-of-service controls of the listeners (framework SP6): concurrent requests, a request
//! rate per partner, a growing delay for sources that keep failing authentication, connections
//! per source address, a deadline for a client that stops reading our responses, and the check
//! of the connection limit against the process's file descriptor limit. Header size and read
//! timeouts are set on the HTTP connection itself.
//!
//! Must never: block, or touch the store (these run on every connection and request, before
//! the caller is known).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failed authentications from one source within this window count towards its delay.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Failures tolerated before answers to that source are delayed.
const FREE_FAILURES: u32 = 3;
const MAX_DELAY: Duration = Duration::from_secs(8);

pub struct RequestGate {
    concurrency: std::sync::Arc<Semaphore>,
    buckets: Mutex<HashMap<String, Bucket>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RequestGate {
    pub fn new(max_concurrent: usize) -> Self {
        RequestGate {
            concurrency: std::sync::Arc::new(Semaphore::new(max_concurrent.max(1))),
            buckets: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// A slot for one request, or `None` when the gateway is at its concurrency limit.
    pub fn enter(&self) -> Option<OwnedSemaphorePermit> {
        self.concurrency.clone().try_acquire_owned().ok()
    }

    /// Takes one token from `partner`'s bucket (`per_second` refill, burst of one second's
    /// worth). False when the partner is over its rate.
    pub fn allow(&self, partner: &str, per_second: f64) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else { return true };
        let now = Instant::now();
        let burst = per_second.max(1.0);
        let bucket = buckets.entry(partner.to_owned()).or_insert(Bucket { tokens: burst, updated: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long to hold the answer to `source`, given its recent authentication failures.
    pub fn penalty(&self, source: IpAddr) -> Duration {
        let Ok(mut failures) = self.failures.lock() else { return Duration::ZERO };
        match failures.get(&source) {
            Some((_, since)) if since.elapsed() > FAILURE_WINDOW => {
                failures.remove(&source);
                Duration::ZERO
            }
            Some((n, _)) if *n > FREE_FAILURES => {
                Duration::from_millis(250u64.saturating_mul(1 << (n - FREE_FAILURES).min(6))).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn record_failure(&self, source: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() > 100_000 {
                failures.clear();
            }
            let entry = failures.entry(source).or_insert((0, Instant::now()));
            entry.0 = entry.0.saturating_add(1);
        }
    }

    pub fn record_success(&self, source: IpAddr) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&source);
        }
    }
}

/// Open connections per source address on one listener.
#[derive(Default)]
pub struct ConnectionsPerSource {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounted when dropped (however the connection ends).
pub struct SourceSlot {
    sources: Arc<ConnectionsPerSource>,
    ip: IpAddr,
}

impl ConnectionsPerSource {
    /// A slot for one more connection from `ip`, or `None` when `ip` already has `max` open.
    pub fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        // `::ffff:192.0.2.1` and `192.0.2.1` are one source.
        let ip = ip.to_canonical();
        let mut open = self.open.lock().ok()?;
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot { sources: self.clone(), ip })
    }

    /// Connections counted for `ip` now.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.open.lock().map(|open| open.get(&ip.to_canonical()).copied().unwrap_or(0)).unwrap_or(0)
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.sources.open.lock() {
            if let Some(n) = open.get_mut(&self.ip) {
                *n -= 1;
                // The map holds the sources with open connections only.
                if *n == 0 {
                    open.remove(&self.ip);
                }
            }
        }
    }
}

/// A stream whose writes fail with `TimedOut` once the peer has taken nothing for `limit`.
///
/// hyper (and TLS above it) waits on a full socket buffer as long as it takes: a client that
/// sends requests and never reads the answers would keep its connection, and its slot, forever.
/// Sits directly on the socket, under TLS, so that it sees the bytes actually sent.
pub struct WriteStallTimeout<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first finds the socket full; cleared by any progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteStallTimeout<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        WriteStallTimeout { inner, limit, stalled: None }
    }

    /// `poll` of the inner stream's write side, with the stall deadline.
    fn poll_progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
        progressed: impl FnOnce(&io::Result<T>) -> bool,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        if let Poll::Ready(done) = poll(Pin::new(&mut self.inner), cx) {
            // Only bytes the peer took (or an error) end a stall: a flush or shutdown that
            // returns at once on TCP proves nothing about the reader.
            if progressed(&done) {
                self.stalled = None;
            }
            return Poll::Ready(done);
        }
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(stalled.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client took none of the response for {} s", limit.as_secs()),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteStallTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// A write that moved bytes, or failed: either ends a stall.
fn wrote(result: &io::Result<usize>) -> bool {
    result.as_ref().map_or(true, |n| *n > 0)
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteStallTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_progress(cx, |inner, cx| inner.poll_write(cx, buf), wrote)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_progress(cx, |inner, cx| inner.poll_write_vectored(cx, bufs), wrote)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_progress(cx, |inner, cx| inner.poll_flush(cx), |r| r.is_err())
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_progress(cx, |inner, cx| inner.poll_shutdown(cx), |r| r.is_err())
    }
}

/// File descriptors the listeners may need at once: a socket per connection on each of the two
/// listeners, and room for the database, the delivery workers' calls, logs and key files.
pub fn descriptors_needed(max_connections: usize) -> u64 {
    (max_connections as u64).saturating_mul(2).saturating_add(256)
}

/// The soft limit of open files in the text of `/proc/self/limits` (`Max open files  1024
/// 524288  files`); `None` if the line is missing or the limit is `unlimited`.
pub fn soft_open_files(proc_limits: &str) -> Option<u64> {
    let line = proc_limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Warns at start when `[limits] max_connections` could run the process out of file
/// descriptors: `accept` would then fail (EMFILE) while the database and the delivery workers
/// cannot open anything either. Only a warning: the limit may be raised while the gateway runs
/// (`prlimit`), and few deployments fill every slot.
pub fn warn_if_descriptors_short(max_connections: usize) {
    let Ok(text) = std::fs::read_to_string("/proc/self/limits") else { return };
    let Some(soft) = soft_open_files(&text) else { return };
    let needed = descriptors_needed(max_connections);
    if needed > soft {
        tracing::warn!(
            event = "fd_limit_low",
            max_connections,
            needed,
            soft_limit = soft,
            "the open files limit (RLIMIT_NOFILE) is below what [limits] max_connections needs: \
             raise it (systemd: LimitNOFILE=) or lower max_connections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_files_limit_is_read_from_proc_self_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n\
                    Max locked memory         8388608              8388608              bytes     \n";
        assert_eq!(soft_open_files(text), Some(1024));
        assert_eq!(soft_open_files(&text.replace("1024  ", "unlimited")), None);
        assert_eq!(soft_open_files("Max processes 10 10 processes\n"), None);
        assert_eq!(soft_open_files(""), None);
        assert_eq!(descriptors_needed(1024), 2304);
        assert!(descriptors_needed(1024) > 1024, "the default needs more than a common soft limit");
        assert_eq!(descriptors_needed(usize::MAX), u64::MAX);
        // The real file, on Linux: a number (or unlimited), never a misread line.
        if let Ok(real) = std::fs::read_to_string("/proc/self/limits") {
            let line = real.lines().find(|l| l.starts_with("Max open files")).expect("line");
            assert!(soft_open_files(&real).is_some() || line.contains("unlimited"), "{line}");
        }
    }

    #[test]
    fn connections_are_counted_per_source_until_dropped() {
        let sources = Arc::new(ConnectionsPerSource::default());
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let first = sources.enter(a, 2).expect("first");
        let second = sources.enter(mapped, 2).expect("second, the same source");
        assert!(sources.enter(a, 2).is_none(), "a third from the same source");
        assert!(sources.enter(b, 2).is_some(), "another source");
        drop(first);
        let third = sources.enter(a, 2).expect("a slot freed");
        drop((second, third));
        assert_eq!(sources.open(a), 0);
        assert!(sources.open.lock().expect("lock").is_empty(), "no entry kept for closed sources");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_fails_after_the_limit_and_progress_resets_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A pipe that holds 16 bytes: the peer "reads" by draining the other end.
        let (near, mut far) = tokio::io::duplex(16);
        let mut stream = WriteStallTimeout::new(near, Duration::from_secs(5));
        stream.write_all(&[1; 16]).await.expect("fits");
        // The peer takes 8 bytes after 4 s: progress, so the deadline starts again.
        let drain = async {
            tokio::time::sleep(Duration::from_secs(4)).await;
            far.read_exact(&mut [0; 8]).await.expect("read");
            far
        };
        let started = tokio::time::Instant::now();
        let (written, _far) = tokio::join!(stream.write_all(&[2; 8]), drain);
        written.expect("written once the peer took some");
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        // Nothing taken any more: the next write fails 5 s after it found the pipe full.
        let started = tokio::time::Instant::now();
        let e = stream.write_all(&[3; 1]).await.expect_err("stalled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn rate_and_penalty() {
        let gate = RequestGate::new(1);
        let permit = gate.enter();
        assert!(permit.is_some() && gate.enter().is_none());
        drop(permit);
        assert!(gate.enter().is_some());
        assert!(gate.allow("KR", 2.0) && gate.allow("KR", 2.0));
        assert!(!gate.allow("KR", 2.0), "burst of two used up");
        assert!(gate.allow("ID", 2.0), "buckets are per partner");
        let ip: IpAddr = "192.0.2.7".parse().expect("ip");
        for _ in 0..3 {
            gate.record_failure(ip);
        }
        assert_eq!(gate.penalty(ip), Duration::ZERO);
        gate.record_failure(ip);
        gate.record_failure(ip);
        assert!(gate.penalty(ip) >= Duration::from_millis(500));
        gate.record_success(ip);
        assert_eq!(gate.penalty(ip), Duration::ZERO);
    }
}
