//! A micro-benchmark of the per-request bookkeeping: what `metrics` and
//! `keylimits` cost each job, alone and with two threads at once (issue 12
//! asked for this figure before swapping hand-written code for libraries).
//!
//! `cargo run --release -p spareband-relay --example hot_path`
//! prints nanoseconds per operation, the median of [`ROUNDS`] rounds.

use spareband_ledger::Db;
use spareband_ledger::JobOutcome;
use spareband_relay::keylimits::{KeyLimits, Limits};
use spareband_relay::metrics::{Histogram, Metrics};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Jobs recorded per round and thread.
const JOBS: u32 = 2_000_000;
/// Admissions per round and thread (each one locks the key map twice).
const ADMITS: u32 = 1_000_000;
/// Rounds per figure: the median is printed, so one noisy round (the
/// machine is shared) does not move it.
const ROUNDS: usize = 7;

/// What one job costs in `metrics`: its outcome and bytes, three latencies
/// and the stream's buffer peak.
fn record_jobs(m: &Metrics, n: u32) {
    for i in 0..n {
        let d = Duration::from_micros(u64::from(i % 4096) * 16);
        m.job(JobOutcome::Ok, 300, 1_000);
        m.first_byte.observe(d);
        m.job_duration.observe(d);
        m.request_head.observe(d);
        m.stream_buffered((i % 65_536) as usize);
    }
}

/// The latency bounds of `metrics`, in seconds, for the library's histogram.
const BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.125, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0,
    60.0,
];

/// A job's three latencies into `metrics::Histogram`.
fn observe_ours(h: &[Histogram; 3], n: u32) {
    for i in 0..n {
        let d = Duration::from_micros(u64::from(i % 4096) * 16);
        h.iter().for_each(|h| h.observe(d));
    }
}

/// The same into `prometheus-client`'s own histogram (a mutex each).
fn observe_library(h: &[prometheus_client::metrics::histogram::Histogram; 3], n: u32) {
    for i in 0..n {
        let d = Duration::from_micros(u64::from(i % 4096) * 16);
        h.iter().for_each(|h| h.observe(d.as_secs_f64()));
    }
}

/// The median of [`ROUNDS`] runs of `work` on `threads` threads at once,
/// in nanoseconds per operation.
fn per_op(threads: usize, ops: u32, work: impl Fn() + Sync) -> f64 {
    median_ns(
        (0..ROUNDS)
            .map(|_| {
                let t = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(&work);
                    }
                });
                t.elapsed()
            })
            .collect(),
        ops,
    )
}

async fn admit_jobs(limits: &Arc<KeyLimits>, db: &Db, key: i64, n: u32) {
    for _ in 0..n {
        let permit = limits.admit(db, key).await.expect("never limited here");
        drop(permit);
    }
}

fn median_ns(mut rounds: Vec<Duration>, ops: u32) -> f64 {
    rounds.sort();
    rounds[rounds.len() / 2].as_nanos() as f64 / f64::from(ops)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let m = Metrics::default();
    for threads in [1, 2] {
        let ns = per_op(threads, JOBS, || record_jobs(&m, JOBS));
        println!("metrics, {threads} thread(s):          {ns:7.1} ns/job");
    }
    let ours: [Histogram; 3] = Default::default();
    let library = [(); 3].map(|_| prometheus_client::metrics::histogram::Histogram::new(BOUNDS));
    for threads in [1, 2] {
        let a = per_op(threads, JOBS, || observe_ours(&ours, JOBS));
        let b = per_op(threads, JOBS, || observe_library(&library, JOBS));
        println!(
            "3 latencies, {threads} thread(s): ours {a:7.1}, prometheus-client {b:7.1} ns/job"
        );
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let db = Db::open(dir.path()).await.expect("database");
    // High enough that no admission is refused: this times the accepted path.
    let limits = KeyLimits::new(Limits {
        rate_per_sec: 1_000_000_000,
        burst: 1_000_000,
        max_concurrent: 1_000,
        monthly_quota_bytes: 0,
    });
    let mut one = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        admit_jobs(&limits, &db, 1, ADMITS).await;
        one.push(t.elapsed());
    }
    println!(
        "keylimits, 1 task:   {:7.1} ns/admit",
        median_ns(one, ADMITS)
    );
    let mut two = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let tasks: Vec<_> = (0..2)
            .map(|key| {
                let (limits, db) = (limits.clone(), db.clone());
                tokio::spawn(async move { admit_jobs(&limits, &db, key, ADMITS).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        two.push(t.elapsed());
    }
    println!(
        "keylimits, 2 tasks:  {:7.1} ns/admit",
        median_ns(two, ADMITS)
    );
}
