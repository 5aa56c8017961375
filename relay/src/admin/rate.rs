//! The dashboard's requests-per-second figure: the jobs-finished counter
//! sampled every [`RATE_SAMPLE_INTERVAL`] over the last minute.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the requests-per-second figure is sampled.
pub const RATE_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// Samples kept: one minute's worth.
const RATE_SAMPLES: usize = 13;

/// The samples held.
pub struct RateSampler {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Default for RateSampler {
    fn default() -> Self {
        RateSampler {
            samples: Mutex::new(VecDeque::with_capacity(RATE_SAMPLES)),
        }
    }
}

impl RateSampler {
    /// Records the jobs-finished counter (every [`RATE_SAMPLE_INTERVAL`]).
    pub fn sample(&self, jobs_total: u64) {
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() == RATE_SAMPLES {
            s.pop_front();
        }
        s.push_back((Instant::now(), jobs_total));
    }

    /// Jobs per second over the samples held, now included.
    pub fn requests_per_second(&self, jobs_total: u64) -> f64 {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        match s.front() {
            Some((at, first)) if at.elapsed() >= Duration::from_secs(1) => {
                let rps = jobs_total.saturating_sub(*first) as f64 / at.elapsed().as_secs_f64();
                (rps * 10.0).round() / 10.0
            }
            _ => 0.0,
        }
    }
}
