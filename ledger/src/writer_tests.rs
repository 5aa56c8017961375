//! The usage writer: idempotent on the job id, aggregates equal to the
//! records, nothing queued lost at close; on both backends.

use crate::clock::utc_day;
use crate::db::on_pool;
use crate::test_db::{on_both_backends, TestDb};
use crate::usage::TEST_EPOCH_MS;
use crate::{writer, Db, JobOutcome, UsageRecord, UsageWriter};
use spareband_protocol::{JobId, NodeId};
use std::time::Duration;

on_both_backends!(
    a_replayed_record_does_not_count_twice,
    close_writes_everything_queued,
    records_are_committed_without_waiting_for_shutdown,
    aggregates_equal_the_ledger_through_replays_and_out_of_order_batches,
    byte_counts_beyond_32_bits_are_exact,
    property_any_batches_and_replays_keep_the_aggregates_exact,
);

fn rec(i: u8, outcome: JobOutcome) -> UsageRecord {
    UsageRecord {
        job: JobId([i; 16]),
        node: NodeId([7; 16]),
        customer: 1,
        bytes_up: 100 + i as u64,
        bytes_down: 1000 + i as u64,
        outcome,
        started_at: 1_700_000_000_000,
        finished_at: 1_700_000_000_500,
        earning: true,
    }
}

async fn totals(db: &Db) -> (i64, i64, i64) {
    on_pool!(db, |p| sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(bytes_up), 0) AS BIGINT),
                CAST(COALESCE(SUM(bytes_down), 0) AS BIGINT) FROM usage_records",
    )
    .fetch_one(p)
    .await)
    .unwrap()
}

async fn a_replayed_record_does_not_count_twice(t: &TestDb) {
    let db = t.db.clone();
    writer::write(
        &db,
        TEST_EPOCH_MS,
        &[rec(1, JobOutcome::Ok), rec(2, JobOutcome::NodeFailed)],
    )
    .await
    .unwrap();
    let once = totals(&db).await;
    assert_eq!(once, (2, 203, 2003));
    // The same records again, alone and in a batch with a new one.
    writer::write(&db, TEST_EPOCH_MS, &[rec(1, JobOutcome::Ok)])
        .await
        .unwrap();
    writer::write(
        &db,
        TEST_EPOCH_MS,
        &[rec(2, JobOutcome::NodeFailed), rec(3, JobOutcome::Ok)],
    )
    .await
    .unwrap();
    assert_eq!(totals(&db).await, (3, 306, 3006));
}

async fn close_writes_everything_queued(t: &TestDb) {
    let db = t.db.clone();
    let ledger = UsageWriter::start(db.clone(), Duration::from_millis(TEST_EPOCH_MS as u64));
    for i in 0..5000u32 {
        let mut r = rec(0, JobOutcome::Ok);
        r.job.0[..4].copy_from_slice(&i.to_be_bytes());
        ledger.record(r);
    }
    ledger.close().await;
    assert_eq!(totals(&db).await.0, 5000);
    assert_eq!(ledger.queue_depth(), 0);
}

async fn records_are_committed_without_waiting_for_shutdown(t: &TestDb) {
    let db = t.db.clone();
    let ledger = UsageWriter::start(db.clone(), Duration::from_millis(TEST_EPOCH_MS as u64));
    ledger.record(rec(9, JobOutcome::Ok));
    // Committed by the flush interval, long before this bound.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while totals(&db).await.0 == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record was never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let day: String = on_pool!(db, |p| sqlx::query_scalar("SELECT day FROM usage_records")
        .fetch_one(p)
        .await)
    .unwrap();
    assert_eq!(day, "2023-11-14");
    ledger.close().await;
}

#[test]
fn utc_days() {
    assert_eq!(utc_day(0), "1970-01-01");
    assert_eq!(utc_day(951_782_400_000), "2000-02-29");
    assert_eq!(utc_day(1_795_305_600_000 - 1), "2026-11-21");
    assert_eq!(utc_day(1_795_305_600_000), "2026-11-22");
}

/// A node's totals: id, bytes up and down, jobs ok, failed and other, epoch
/// index and its bytes.
type Totals = (String, i64, i64, i64, i64, i64, i64, i64);

/// The aggregates, read back.
async fn node_totals(db: &Db) -> Vec<Totals> {
    on_pool!(db, |p| sqlx::query_as(
        "SELECT node_id, bytes_up, bytes_down, jobs_ok, jobs_failed, jobs_other, epoch_index, epoch_bytes
         FROM node_totals ORDER BY node_id",
    )
    .fetch_all(p)
    .await)
    .unwrap()
}

/// The same figures computed from the ledger itself.
async fn node_totals_from_ledger(db: &Db, epoch_ms: i64) -> Vec<Totals> {
    on_pool!(db, |p| sqlx::query_as(
        "SELECT node_id,
            CAST(SUM(CASE WHEN outcome = 'ok' THEN bytes_up ELSE 0 END) AS BIGINT),
            CAST(SUM(CASE WHEN outcome = 'ok' THEN bytes_down ELSE 0 END) AS BIGINT),
            CAST(SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS BIGINT),
            CAST(SUM(CASE WHEN outcome IN ('node_failed', 'timeout') THEN 1 ELSE 0 END) AS BIGINT),
            CAST(SUM(CASE WHEN outcome IN ('cancelled', 'refused') THEN 1 ELSE 0 END) AS BIGINT),
            MAX(finished_at / $1),
            CAST(SUM(CASE WHEN outcome = 'ok' AND finished_at / $1 =
                    (SELECT MAX(v.finished_at / $1) FROM usage_records v WHERE v.node_id = u.node_id)
                THEN bytes_up + bytes_down ELSE 0 END) AS BIGINT)
         FROM usage_records u GROUP BY node_id ORDER BY node_id",
    )
    .bind(epoch_ms)
    .fetch_all(p)
    .await)
    .unwrap()
}

async fn aggregates_equal_the_ledger_through_replays_and_out_of_order_batches(t: &TestDb) {
    let db = t.db.clone();
    let epoch_ms = 60_000;
    let outcomes = [
        JobOutcome::Ok,
        JobOutcome::Ok,
        JobOutcome::Ok,
        JobOutcome::NodeFailed,
        JobOutcome::Timeout,
        JobOutcome::Cancelled,
        JobOutcome::Refused,
    ];
    // A small xorshift: the same records on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut all = Vec::new();
    for i in 0..3000u32 {
        let mut r = rec(0, outcomes[(next() % 7) as usize]);
        r.job.0[..4].copy_from_slice(&i.to_be_bytes());
        r.node = NodeId([(next() % 40) as u8; 16]);
        r.customer = (next() % 5) as i64;
        r.bytes_up = next() % 5000;
        r.bytes_down = next() % 1_000_000;
        // Three epochs and several hours, in no particular order.
        r.finished_at = 1_800_000_000_000 + (next() % (3 * epoch_ms as u64)) as i64 * 100;
        all.push(r);
    }
    // Batches of random sizes, each followed by a replay of a random slice
    // of everything written so far (a restart re-sending its queue).
    let mut at = 0;
    while at < all.len() {
        let n = 1 + (next() % 400) as usize;
        let end = (at + n).min(all.len());
        let mut batch = all[at..end].to_vec();
        let from = (next() as usize) % end;
        batch.extend_from_slice(&all[from..(from + 50).min(end)]);
        writer::write(&db, epoch_ms, &batch).await.unwrap();
        at = end;
    }
    let expected = node_totals_from_ledger(&db, epoch_ms).await;
    assert_eq!(expected.len(), 40);
    assert_eq!(node_totals(&db).await, expected);
    // Hourly and per-customer figures add up to the same bytes and jobs.
    let sums = |sql: &'static str| {
        let db = db.clone();
        async move {
            let r: (i64, i64) = on_pool!(db, |p| sqlx::query_as(sql).fetch_one(p).await).unwrap();
            r
        }
    };
    let ledger = sums("SELECT CAST(SUM(CASE WHEN outcome = 'ok' THEN bytes_up + bytes_down ELSE 0 END) AS BIGINT), COUNT(*) FROM usage_records").await;
    assert_eq!(
        sums("SELECT CAST(SUM(bytes) AS BIGINT), CAST(SUM(jobs_ok + jobs_failed + jobs_other) AS BIGINT) FROM hour_totals").await,
        ledger
    );
    assert_eq!(
        sums(
            "SELECT CAST(SUM(bytes) AS BIGINT), CAST(SUM(requests) AS BIGINT) FROM customer_hours"
        )
        .await,
        ledger
    );
    let node_hours =
        sums("SELECT CAST(SUM(bytes) AS BIGINT), CAST(SUM(jobs_ok) AS BIGINT) FROM node_hours")
            .await;
    assert_eq!(node_hours.0, ledger.0);
}

/// Byte counts are u64 in Rust and signed BIGINT in both databases: counts
/// past 2^32 (a 5 GiB job) and their sums stay exact.
async fn byte_counts_beyond_32_bits_are_exact(t: &TestDb) {
    let big = 5u64 << 30;
    let mut a = rec(1, JobOutcome::Ok);
    a.bytes_down = big;
    let mut b = rec(2, JobOutcome::Ok);
    b.bytes_down = big + 7;
    writer::write(&t.db, TEST_EPOCH_MS, &[a, b]).await.unwrap();
    assert_eq!(
        totals(&t.db).await,
        (2, 203, (2 * big + 7) as i64),
        "sums of the ledger"
    );
    let stored = crate::inspect::usage_records(&t.db).await.unwrap();
    assert_eq!(stored[1].bytes_down, big + 7);
    let node = &node_totals(&t.db).await[0];
    assert_eq!(node.2, (2 * big + 7) as i64, "the aggregates");
}

/// Random cases of the property above, with proptest's generators: any
/// records (byte counts past 2^32 included), cut into any batches, each
/// followed by a replay of any slice of what came before. After every
/// case the aggregates equal the ledger, cumulatively over all cases.
async fn property_any_batches_and_replays_keep_the_aggregates_exact(t: &TestDb) {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    /// Cases per backend: each is a handful of transactions.
    const CASES: u32 = 24;
    let epoch_ms = 60_000;
    let outcomes = [
        JobOutcome::Ok,
        JobOutcome::NodeFailed,
        JobOutcome::Timeout,
        JobOutcome::Cancelled,
        JobOutcome::Refused,
    ];
    let record = (
        0u8..8,
        0i64..4,
        0usize..5,
        0u64..(1 << 40),
        0u64..(1 << 40),
        0i64..1800,
    );
    let case = (
        proptest::collection::vec(record, 1..120),
        proptest::collection::vec(1usize..40, 1..8),
        proptest::collection::vec((any::<usize>(), 0usize..30), 1..8),
    );
    let mut runner = TestRunner::deterministic();
    for n in 0..CASES {
        let (specs, cuts, replays) = case.new_tree(&mut runner).unwrap().current();
        let all: Vec<UsageRecord> = specs
            .iter()
            .enumerate()
            .map(|(i, &(node, customer, outcome, up, down, at))| {
                let mut r = rec(0, outcomes[outcome]);
                r.job.0[..4].copy_from_slice(&n.to_be_bytes());
                r.job.0[4..8].copy_from_slice(&(i as u32).to_be_bytes());
                r.node = NodeId([node; 16]);
                r.customer = customer;
                r.bytes_up = up;
                r.bytes_down = down;
                // Three epochs and several hours, in no particular order.
                r.finished_at = 1_800_000_000_000 + at * 100;
                r
            })
            .collect();
        let mut at = 0;
        for (k, cut) in cuts.iter().cycle().enumerate() {
            if at == all.len() {
                break;
            }
            let end = (at + cut).min(all.len());
            let mut batch = all[at..end].to_vec();
            let (from, len) = replays[k % replays.len()];
            let from = from % end;
            batch.extend_from_slice(&all[from..(from + len).min(end)]);
            writer::write(&t.db, epoch_ms, &batch).await.unwrap();
            at = end;
        }
        assert_eq!(
            node_totals(&t.db).await,
            node_totals_from_ledger(&t.db, epoch_ms).await,
            "case {n}: {specs:?} cut {cuts:?} replays {replays:?}"
        );
    }
}
