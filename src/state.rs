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
}
