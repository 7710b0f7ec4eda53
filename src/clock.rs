//! Time, as every scheduling decision sees it. Production uses the system clock; tests use a
//! `ManualClock` (feature `test-support`) to run the 16-hour retry schedule in milliseconds,
//! without sleeping.

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(any(test, feature = "test-support"))]
pub use manual::ManualClock;

#[cfg(any(test, feature = "test-support"))]
mod manual {
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, Duration, Utc};

    use super::Clock;

    /// A clock that moves only when told to (tests and benchmarks: feature `test-support`).
    #[derive(Clone)]
    pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

    impl ManualClock {
        pub fn new(start: DateTime<Utc>) -> Self {
            ManualClock(Arc::new(Mutex::new(start)))
        }

        pub fn advance(&self, by: Duration) {
            if let Ok(mut t) = self.0.lock() {
                *t += by;
            }
        }

        /// The current reading (also through [`Clock::now`]).
        pub fn now_for_test(&self) -> DateTime<Utc> {
            self.now()
        }

        pub fn set(&self, to: DateTime<Utc>) {
            if let Ok(mut t) = self.0.lock() {
                *t = to;
            }
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            self.0.lock().map(|t| *t).unwrap_or_else(|p| *p.into_inner())
        }
    }
}
