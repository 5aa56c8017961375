//! The batching writer task.

use super::{aggregates, utc_day, LedgerError, UsageRecord, FLUSH_INTERVAL, MAX_BATCH};
use crate::db::Db;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Wait after a failed write before trying the batch again.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// SQLite allows 32766 bound parameters per statement; 10 per row.
const ROWS_PER_STATEMENT: usize = 1000;

pub(super) async fn run(
    db: Db,
    epoch_ms: i64,
    mut rx: mpsc::UnboundedReceiver<UsageRecord>,
    depth: Arc<AtomicU64>,
) {
    let mut batch: Vec<UsageRecord> = Vec::with_capacity(MAX_BATCH);
    loop {
        // Wait for the first record of a batch, then collect more until the
        // batch is full or the flush interval since that first record is up.
        let Some(first) = rx.recv().await else { break };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        let mut open = true;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        write_with_retry(&db, epoch_ms, &mut batch, &depth).await;
        if !open {
            break;
        }
    }
    // Closed: whatever is still queued goes out too.
    while let Ok(r) = rx.try_recv() {
        batch.push(r);
        if batch.len() == MAX_BATCH {
            write_with_retry(&db, epoch_ms, &mut batch, &depth).await;
        }
    }
    write_with_retry(&db, epoch_ms, &mut batch, &depth).await;
}

async fn write_with_retry(db: &Db, epoch_ms: i64, batch: &mut Vec<UsageRecord>, depth: &AtomicU64) {
    if batch.is_empty() {
        return;
    }
    for attempt in 0.. {
        match write(db, epoch_ms, batch).await {
            Ok(()) => break,
            Err(e) if attempt < 20 => {
                tracing::warn!(error = %e, records = batch.len(), "ledger write failed; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "ledger write failed for good; records lost");
                break;
            }
        }
    }
    depth.fetch_sub(batch.len() as u64, Ordering::Relaxed);
    batch.clear();
}

/// One transaction; a record whose job id is already stored is skipped, and
/// the aggregates grow by exactly the records inserted.
pub(super) async fn write(
    db: &Db,
    epoch_ms: i64,
    batch: &[UsageRecord],
) -> Result<(), LedgerError> {
    let mut tx = db.pool().begin().await?;
    let mut inserted: HashSet<String> = HashSet::with_capacity(batch.len());
    for rows in batch.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO usage_records (job_id, node_id, customer_id, bytes_up, bytes_down, outcome, started_at, finished_at, day, earning) VALUES ",
        );
        for i in 0..rows.len() {
            let b = i * 10;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${},${},${},${},${},${},${},${},${},${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10
            ));
        }
        sql.push_str(" ON CONFLICT (job_id) DO NOTHING RETURNING job_id");
        let mut q = sqlx::query(&sql);
        for r in rows {
            q = q
                .bind(r.job.to_string())
                .bind(r.node.to_string())
                .bind(r.customer)
                .bind(r.bytes_up as i64)
                .bind(r.bytes_down as i64)
                .bind(r.outcome.as_str())
                .bind(r.started_at)
                .bind(r.finished_at)
                .bind(utc_day(r.finished_at))
                .bind(i64::from(r.earning));
        }
        for row in q.fetch_all(&mut *tx).await? {
            inserted.insert(sqlx::Row::try_get(&row, 0)?);
        }
    }
    // `remove`, so a job id twice in one batch is added once.
    let fresh: Vec<&UsageRecord> = batch
        .iter()
        .filter(|r| inserted.remove(&r.job.to_string()))
        .collect();
    aggregates::apply(&mut tx, epoch_ms, &fresh).await?;
    tx.commit().await?;
    Ok(())
}
