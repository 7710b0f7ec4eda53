//! The core every part of a running gateway shares: validated settings, the store and the
//! clock. State that belongs to one surface lives with it (the SOAP listener's credential
//! cache and request gate in `gateway`, the delivery rate limiter in `delivery`).
//!
//! Must never: import a surface (`gateway`, `api`, `delivery`, `alerts`) or the wiring
//! (`app`): every layer receives this core from above.

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::store::Store;

/// Settings, store and clock of one gateway process.
pub struct Core {
    pub settings: Settings,
    pub store: Store,
    /// Every scheduling and timestamp decision reads this clock.
    pub clock: SharedClock,
    /// Wakes this process's idle delivery workers when work was committed, and when the
    /// process's watcher of the outbox (`delivery::watch_outbox`, every `[delivery]
    /// poll_interval_millis`) finds work no commit here announced.
    pub delivery_wakeup: tokio::sync::Notify,
}

impl Core {
    pub fn new(settings: Settings, store: Store, clock: SharedClock) -> Self {
        Core { settings, store, clock, delivery_wakeup: tokio::sync::Notify::new() }
    }

    /// Says that the outbox may hold new work (call after the commit that queued it). One
    /// idle worker looks, and a worker whose claim saw more due calls this again, so a batch
    /// fans out over the idle workers while a single message costs one look, not one per
    /// worker. A busy worker's wake-up is passed on to another when it drops it unused.
    pub fn outbox_changed(&self) {
        self.delivery_wakeup.notify_one();
    }
}
