//! A micro-benchmark of the per-request bookkeeping: what `metrics` and
//! `keylimits` cost each job, alone and with two threads at once (issue 12
//! asked for this figure before swapping hand-written code for libraries).
//!
//! `cargo run --release -p spareband-relay --example hot_path`
//! prints nanoseconds per operation, the median of [`ROUNDS`] rounds.

use spareband_relay::db::Db;
use spareband_relay::keylimits::{KeyLimits, Limits};
use spareband_relay::ledger::JobOutcome;
use spareband_relay::metrics::Metrics;
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
    let m = Arc::new(Metrics::default());
    let one: Vec<_> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            record_jobs(&m, JOBS);
            t.elapsed()
        })
        .collect();
    println!("metrics, 1 thread:   {:7.1} ns/job", median_ns(one, JOBS));
    let two: Vec<_> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| record_jobs(&m, JOBS));
                }
            });
            t.elapsed()
        })
        .collect();
    println!("metrics, 2 threads:  {:7.1} ns/job", median_ns(two, JOBS));

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
    println!("keylimits, 1 task:   {:7.1} ns/admit", median_ns(one, ADMITS));
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
    println!("keylimits, 2 tasks:  {:7.1} ns/admit", median_ns(two, ADMITS));
}
