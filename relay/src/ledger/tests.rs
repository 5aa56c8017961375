use super::*;
use sqlx::Row;

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
        &[rec(1, JobOutcome::Ok), rec(2, JobOutcome::NodeFailed)],
    )
    .await
    .unwrap();
    let once = totals(&db).await;
    assert_eq!(once, (2, 203, 2003));
    // The same records again, alone and in a batch with a new one.
    writer::write(&db, &[rec(1, JobOutcome::Ok)]).await.unwrap();
    writer::write(
        &db,
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
    let ledger = Ledger::start(db.clone());
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
    let ledger = Ledger::start(db.clone());
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
