//! Denial-of-service controls of the partner-facing endpoint (framework SP6): concurrent
//! requests, a request rate per partner, and a growing delay for sources that keep failing
//! authentication. Header size and read timeouts are set on the HTTP connection itself.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
