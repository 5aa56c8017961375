//! Reconnect delays: exponential with full jitter, so a relay restart does
//! not bring every node back in the same millisecond.

use rand::Rng;
use std::time::Duration;

/// First reconnect delay ceiling.
pub const RECONNECT_BASE: Duration = Duration::from_millis(500);
/// Largest reconnect delay.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Backoff state.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The delay before the next attempt: uniform in `[ceiling/2, ceiling]`
    /// where the ceiling doubles per attempt up to [`RECONNECT_MAX`].
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = RECONNECT_BASE
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(RECONNECT_MAX);
        self.attempt = self.attempt.saturating_add(1);
        let ms = ceiling.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
    }

    /// After a successful session.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let first = b.next_delay();
        assert!(first <= RECONNECT_BASE && first >= RECONNECT_BASE / 2);
        for _ in 0..20 {
            assert!(b.next_delay() <= RECONNECT_MAX);
        }
        assert!(b.next_delay() >= RECONNECT_MAX / 2);
        b.reset();
        assert!(b.next_delay() <= RECONNECT_BASE);
    }
}
