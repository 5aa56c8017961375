//! Counters the relay keeps about itself, served as Prometheus text at
//! `GET /metrics`. Plain atomics: cheap enough to stay on under load.

use crate::ledger::JobOutcome;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The relay's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    nodes_connected: AtomicUsize,
    jobs_ok: AtomicU64,
    jobs_node_failed: AtomicU64,
    jobs_timeout: AtomicU64,
    jobs_cancelled: AtomicU64,
    jobs_refused: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    stream_buffer_peak: AtomicUsize,
    retries: AtomicU64,
    /// Usage records waiting for the ledger writer (set at render time).
    pub(crate) ledger_depth: AtomicU64,
}

impl Metrics {
    pub(crate) fn set_nodes(&self, n: usize) {
        self.nodes_connected.store(n, Ordering::Relaxed);
    }

    /// Counts a finished job (and refusals before dispatch, as `Refused`).
    pub fn job(&self, outcome: JobOutcome, up: u64, down: u64) {
        let c = match outcome {
            JobOutcome::Ok => &self.jobs_ok,
            JobOutcome::NodeFailed => &self.jobs_node_failed,
            JobOutcome::Timeout => &self.jobs_timeout,
            JobOutcome::Cancelled => &self.jobs_cancelled,
            JobOutcome::Refused => &self.jobs_refused,
        };
        c.fetch_add(1, Ordering::Relaxed);
        self.bytes_up.fetch_add(up, Ordering::Relaxed);
        self.bytes_down.fetch_add(down, Ordering::Relaxed);
    }

    /// Jobs finished, whatever their outcome.
    pub fn jobs_total(&self) -> u64 {
        [
            &self.jobs_ok,
            &self.jobs_node_failed,
            &self.jobs_timeout,
            &self.jobs_cancelled,
            &self.jobs_refused,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    /// Counts a retry on another node.
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how many response bytes one stream had buffered.
    pub fn stream_buffered(&self, bytes: usize) {
        self.stream_buffer_peak.fetch_max(bytes, Ordering::Relaxed);
    }

    /// Most response bytes any one stream has had buffered in the relay.
    pub fn stream_buffer_peak(&self) -> usize {
        self.stream_buffer_peak.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let _ = writeln!(s, "# HELP spareband_nodes_connected Authenticated node connections.\n# TYPE spareband_nodes_connected gauge\nspareband_nodes_connected {}", self.nodes_connected.load(Ordering::Relaxed));
        let _ = writeln!(
            s,
            "# HELP spareband_jobs_total Jobs by outcome.\n# TYPE spareband_jobs_total counter"
        );
        for (name, v) in [
            ("ok", &self.jobs_ok),
            ("node_failed", &self.jobs_node_failed),
            ("timeout", &self.jobs_timeout),
            ("cancelled", &self.jobs_cancelled),
            ("refused", &self.jobs_refused),
        ] {
            let _ = writeln!(s, "spareband_jobs_total{{outcome=\"{name}\"}} {}", g(v));
        }
        let _ = writeln!(s, "# HELP spareband_bytes_total Metered bytes carried by nodes.\n# TYPE spareband_bytes_total counter\nspareband_bytes_total{{direction=\"up\"}} {}\nspareband_bytes_total{{direction=\"down\"}} {}", g(&self.bytes_up), g(&self.bytes_down));
        let _ = writeln!(s, "# HELP spareband_retries_total Jobs retried on another node.\n# TYPE spareband_retries_total counter\nspareband_retries_total {}", g(&self.retries));
        let _ = writeln!(s, "# HELP spareband_ledger_queue_depth Usage records not yet committed.\n# TYPE spareband_ledger_queue_depth gauge\nspareband_ledger_queue_depth {}", g(&self.ledger_depth));
        let _ = writeln!(s, "# HELP spareband_stream_buffer_peak_bytes Most response bytes one stream has had buffered in the relay.\n# TYPE spareband_stream_buffer_peak_bytes gauge\nspareband_stream_buffer_peak_bytes {}", self.stream_buffer_peak());
        s
    }
}
