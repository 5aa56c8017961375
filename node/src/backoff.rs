//! The native node's reconnect bounds. The backoff itself (full jitter) is
//! [`spareband_protocol::backoff`], shared with the browser node.

use rand::Rng;
use spareband_protocol::backoff::Backoff;
use std::time::Duration;

/// First reconnect delay ceiling.
pub const RECONNECT_BASE: Duration = Duration::from_millis(500);
/// Largest reconnect delay.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// A backoff with the native node's bounds.
pub fn reconnect_backoff() -> Backoff {
    Backoff::new(RECONNECT_BASE, RECONNECT_MAX)
}

/// The delay before the next attempt, drawn with the thread's generator.
pub fn next_delay(backoff: &mut Backoff) -> Duration {
    backoff.next_delay(rand::thread_rng().gen::<f64>())
}
