//! Counters the relay keeps about itself, served as Prometheus text at
//! `GET /metrics`. Plain atomics: cheap enough to stay on under load.

use spareband_ledger::JobOutcome;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds: from half a
/// millisecond (a small answer over loopback) to a minute (a long download).
const BUCKETS_US: [u64; 16] = [
    500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 125_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 15_000_000, 60_000_000,
];

/// A Prometheus histogram of durations: one relaxed atomic add per bucket
/// crossed is all an observation costs, so it stays on under full load.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when
    /// rendered).
    buckets: [AtomicU64; BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, s: &mut String, name: &str, help: &str) {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut total = 0;
        for (b, c) in BUCKETS_US.iter().zip(&self.buckets) {
            total += c.load(Ordering::Relaxed);
            let le = *b as f64 / 1e6;
            let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {total}");
        }
        let count = self.count();
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "{name}_sum {sum}\n{name}_count {count}");
    }
}

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
    conns_refused_total: AtomicU64,
    conns_refused_per_ip: AtomicU64,
    nodes_dropped_slow: AtomicU64,
    /// Connections open now (kept by [`crate::conns::ConnLimits`]).
    pub(crate) conns_open: AtomicU64,
    /// Usage records waiting for the ledger writer (set at render time).
    pub(crate) ledger_depth: AtomicU64,
    /// From dispatch to a node until the response head arrived.
    pub first_byte: Histogram,
    /// From dispatch to a node until the attempt ended, whatever its outcome.
    pub job_duration: Histogram,
    /// From the customer's request arriving until the answer's head is sent
    /// (screening, queueing for a node, retries and the node's first byte).
    pub request_head: Histogram,
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

    /// Counts a connection closed at accept.
    pub fn connection_refused(&self, why: crate::conns::Refused) {
        match why {
            crate::conns::Refused::Total => &self.conns_refused_total,
            crate::conns::Refused::PerIp => &self.conns_refused_per_ip,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a node dropped because it did not read what the relay sent.
    pub fn node_dropped_slow(&self) {
        self.nodes_dropped_slow.fetch_add(1, Ordering::Relaxed);
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
        let _ = writeln!(s, "# HELP spareband_connections_open Connections open now.\n# TYPE spareband_connections_open gauge\nspareband_connections_open {}", g(&self.conns_open));
        let _ = writeln!(s, "# HELP spareband_connections_refused_total Connections closed at accept, by the cap that was full.\n# TYPE spareband_connections_refused_total counter\nspareband_connections_refused_total{{cap=\"total\"}} {}\nspareband_connections_refused_total{{cap=\"per_ip\"}} {}", g(&self.conns_refused_total), g(&self.conns_refused_per_ip));
        let _ = writeln!(s, "# HELP spareband_nodes_dropped_slow_total Nodes dropped because they did not read what the relay sent.\n# TYPE spareband_nodes_dropped_slow_total counter\nspareband_nodes_dropped_slow_total {}", g(&self.nodes_dropped_slow));
        let _ = writeln!(s, "# HELP spareband_ledger_queue_depth Usage records not yet committed.\n# TYPE spareband_ledger_queue_depth gauge\nspareband_ledger_queue_depth {}", g(&self.ledger_depth));
        self.first_byte.render(
            &mut s,
            "spareband_job_first_byte_seconds",
            "From dispatch to a node until the response head arrived.",
        );
        self.job_duration.render(
            &mut s,
            "spareband_job_duration_seconds",
            "From dispatch to a node until the attempt ended, any outcome.",
        );
        self.request_head.render(
            &mut s,
            "spareband_request_head_seconds",
            "From a customer's request until its answer's head, retries included.",
        );
        let _ = writeln!(s, "# HELP spareband_stream_buffer_peak_bytes Most response bytes one stream has had buffered in the relay.\n# TYPE spareband_stream_buffer_peak_bytes gauge\nspareband_stream_buffer_peak_bytes {}", self.stream_buffer_peak());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, line_start: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start))
            .unwrap_or_else(|| panic!("no line {line_start} in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let m = Metrics::default();
        for ms in [0, 3, 3, 70, 90_000] {
            m.job_duration.observe(Duration::from_millis(ms));
        }
        let t = m.render();
        let name = "spareband_job_duration_seconds";
        assert_eq!(value(&t, &format!("{name}_bucket{{le=\"0.0005\"}}")), 1.0);
        assert_eq!(value(&t, &format!("{name}_bucket{{le=\"0.004\"}}")), 3.0);
        assert_eq!(value(&t, &format!("{name}_bucket{{le=\"0.125\"}}")), 4.0);
        // 90 s is past the last bound: only +Inf and the count hold it.
        assert_eq!(value(&t, &format!("{name}_bucket{{le=\"60\"}}")), 4.0);
        assert_eq!(value(&t, &format!("{name}_bucket{{le=\"+Inf\"}}")), 5.0);
        assert_eq!(value(&t, &format!("{name}_count ")), 5.0);
        assert!((value(&t, &format!("{name}_sum ")) - 90.076).abs() < 1e-9);
        assert!(t.contains(&format!("# TYPE {name} histogram")));
        // The others are there, empty.
        assert_eq!(value(&t, "spareband_job_first_byte_seconds_count "), 0.0);
        assert_eq!(value(&t, "spareband_request_head_seconds_count "), 0.0);
    }
}
