//! The usage writer: idempotent on the job id, aggregates equal to the
//! records, nothing queued lost at close.

use crate::clock::utc_day;
use crate::usage::TEST_EPOCH_MS;
use crate::{writer, Db, JobOutcome, UsageRecord, UsageWriter};
use spareband_protocol::{JobId, NodeId};
use sqlx::Row;
use std::time::Duration;

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
    let row = sqlx::query(
        "SELECT COUNT(*), COALESCE(SUM(bytes_up), 0), COALESCE(SUM(bytes_down), 0) FROM usage_records",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn a_replayed_record_does_not_count_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).await.unwrap();
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

#[tokio::test]
async fn close_writes_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).await.unwrap();
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

#[tokio::test]
async fn records_are_committed_without_waiting_for_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).await.unwrap();
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
    let day: String = sqlx::query("SELECT day FROM usage_records")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get(0);
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

/// The aggregates, read back.
async fn node_totals(db: &Db) -> Vec<(String, i64, i64, i64, i64, i64, i64, i64)> {
    sqlx::query(
        "SELECT node_id, bytes_up, bytes_down, jobs_ok, jobs_failed, jobs_other, epoch_index, epoch_bytes
         FROM node_totals ORDER BY node_id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7)))
    .collect()
}

/// The same figures computed from the ledger itself.
async fn node_totals_from_ledger(
    db: &Db,
    epoch_ms: i64,
) -> Vec<(String, i64, i64, i64, i64, i64, i64, i64)> {
    sqlx::query(
        "SELECT node_id,
            SUM(CASE WHEN outcome = 'ok' THEN bytes_up ELSE 0 END),
            SUM(CASE WHEN outcome = 'ok' THEN bytes_down ELSE 0 END),
            SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END),
            SUM(CASE WHEN outcome IN ('node_failed', 'timeout') THEN 1 ELSE 0 END),
            SUM(CASE WHEN outcome IN ('cancelled', 'refused') THEN 1 ELSE 0 END),
            MAX(finished_at / $1),
            SUM(CASE WHEN outcome = 'ok' AND finished_at / $1 =
                    (SELECT MAX(v.finished_at / $1) FROM usage_records v WHERE v.node_id = u.node_id)
                THEN bytes_up + bytes_down ELSE 0 END)
         FROM usage_records u GROUP BY node_id ORDER BY node_id",
    )
    .bind(epoch_ms)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6), r.get(7)))
    .collect()
}

#[tokio::test]
async fn aggregates_equal_the_ledger_through_replays_and_out_of_order_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path()).await.unwrap();
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
            let r = sqlx::query(sql).fetch_one(db.pool()).await.unwrap();
            (r.get::<i64, _>(0), r.get::<i64, _>(1))
        }
    };
    let ledger = sums("SELECT SUM(CASE WHEN outcome = 'ok' THEN bytes_up + bytes_down ELSE 0 END), COUNT(*) FROM usage_records").await;
    assert_eq!(
        sums("SELECT SUM(bytes), SUM(jobs_ok + jobs_failed + jobs_other) FROM hour_totals").await,
        ledger
    );
    assert_eq!(
        sums("SELECT SUM(bytes), SUM(requests) FROM customer_hours").await,
        ledger
    );
    let node_hours = sums("SELECT SUM(bytes), SUM(jobs_ok) FROM node_hours").await;
    assert_eq!(node_hours.0, ledger.0);
}
