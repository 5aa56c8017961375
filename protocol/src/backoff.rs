//! Reconnect delays shared by the native and the browser node: exponential
//! ceilings with full jitter (AWS Architecture Blog, "Exponential Backoff And
//! Jitter"), so a relay restart does not bring every node back in the same
//! millisecond. The random draw is an argument, so this crate stays pure: the
//! native node draws with `rand`, the browser node with `Math.random()`.

use std::time::Duration;

/// The shortest delay ever returned. Full jitter may draw 0; a relay that
/// closes every connection at once would then be redialled in a tight loop.
pub const RECONNECT_FLOOR: Duration = Duration::from_millis(100);

/// Most doublings of the base delay; beyond it the ceiling is the maximum
/// anyway, and the shift cannot overflow.
const MAX_DOUBLINGS: u32 = 16;

/// Backoff state: how many attempts failed since the last good session.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff whose ceiling starts at `base` and doubles per attempt up to
    /// `max`.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The current attempt's ceiling.
    pub fn ceiling(&self) -> Duration {
        self.base
            .saturating_mul(1u32 << self.attempt.min(MAX_DOUBLINGS))
            .min(self.max)
            .max(RECONNECT_FLOOR)
    }

    /// The delay before the next attempt: uniform in
    /// `[RECONNECT_FLOOR, ceiling]`, placed by `draw`, a uniform random
    /// number in `[0, 1)` (anything outside is clamped into it).
    pub fn next_delay(&mut self, draw: f64) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        // NaN clamps to 0 too.
        let draw = if draw.is_nan() {
            0.0
        } else {
            draw.clamp(0.0, 1.0)
        };
        ceiling.mul_f64(draw).max(RECONNECT_FLOOR)
    }

    /// Starts again from the base delay (after a good session).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn delays_stay_within_the_floor_and_the_ceiling() {
        let mut b = Backoff::new(BASE, MAX);
        assert_eq!(b.next_delay(0.0), RECONNECT_FLOOR);
        assert!(b.next_delay(0.999_999) <= BASE * 2);
        for _ in 0..40 {
            let d = b.next_delay(0.999_999);
            assert!(d <= MAX && d >= RECONNECT_FLOOR);
        }
        assert!(b.next_delay(0.999_999) > MAX - Duration::from_millis(1));
        assert_eq!(b.next_delay(0.5), MAX / 2);
    }

    #[test]
    fn full_jitter_reaches_down_to_the_floor() {
        let mut b = Backoff::new(BASE, MAX);
        for _ in 0..10 {
            b.next_delay(0.5);
        }
        assert_eq!(b.ceiling(), MAX);
        assert_eq!(b.next_delay(0.0), RECONNECT_FLOOR);
        assert_eq!(b.next_delay(0.001), RECONNECT_FLOOR);
        assert_eq!(b.next_delay(0.01), MAX.mul_f64(0.01));
    }

    #[test]
    fn the_ceiling_doubles_then_resets() {
        let mut b = Backoff::new(BASE, MAX);
        assert_eq!(b.ceiling(), BASE);
        b.next_delay(0.3);
        assert_eq!(b.ceiling(), BASE * 2);
        b.next_delay(0.3);
        assert_eq!(b.ceiling(), BASE * 4);
        b.reset();
        assert_eq!(b.ceiling(), BASE);
        assert!(b.next_delay(0.999) <= BASE);
    }

    #[test]
    fn odd_draws_are_clamped() {
        let mut b = Backoff::new(BASE, MAX);
        assert_eq!(b.next_delay(f64::NAN), RECONNECT_FLOOR);
        assert_eq!(b.next_delay(-3.0), RECONNECT_FLOOR);
        assert_eq!(b.next_delay(7.0), BASE * 4);
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut b = Backoff::new(BASE, MAX);
        for _ in 0..10_000 {
            assert!(b.next_delay(0.99) <= MAX);
        }
    }
}
