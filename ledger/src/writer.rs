//! The batching writer task behind [`crate::UsageWriter`], and the one
//! transaction that inserts records and grows the aggregates.

use crate::clock::utc_day;
use crate::usage::{UsageRecord, FLUSH_INTERVAL, MAX_BATCH};
use crate::{aggregates, Db, LedgerError};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Wait after a failed write before trying the batch again.
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// SQLite allows 32766 bound parameters per statement; 10 per row.
const ROWS_PER_STATEMENT: usize = 1000;
/// Least time between two background WAL checkpoints.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Copies the WAL back into the database on another connection, so the
/// writer's commits never pay for it. SQLite's automatic checkpoint runs in
/// the committing connection and took over half the writer's time under a
/// steady load (docs/BENCHMARKS.md); a passive checkpoint runs beside the
/// writer instead. The automatic one stays on as a backstop, at a larger WAL.
struct Checkpointer {
    running: Arc<AtomicBool>,
    last: tokio::time::Instant,
}

impl Checkpointer {
    fn new() -> Self {
        Checkpointer {
            running: Arc::new(AtomicBool::new(false)),
            last: tokio::time::Instant::now(),
        }
    }

    fn after_commit(&mut self, db: &Db) {
        if self.last.elapsed() < CHECKPOINT_INTERVAL || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last = tokio::time::Instant::now();
        let running = self.running.clone();
        let pool = db.pool().clone();
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "background checkpoint failed");
            }
            running.store(false, Ordering::Release);
        });
    }
}

/// What the writer task keeps between batches.
struct Writer {
    db: Db,
    epoch_ms: i64,
    depth: Arc<AtomicU64>,
    checkpoints: Checkpointer,
    /// One connection kept for the writer: its page cache stays warm, where
    /// a pooled one would often have been invalidated by another's commit.
    conn: Option<PoolConnection<Sqlite>>,
}

pub(crate) async fn run(
    db: Db,
    epoch_ms: i64,
    mut rx: mpsc::UnboundedReceiver<UsageRecord>,
    depth: Arc<AtomicU64>,
) {
    let mut w = Writer {
        db,
        epoch_ms,
        depth,
        checkpoints: Checkpointer::new(),
        conn: None,
    };
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
        w.write_with_retry(&mut batch).await;
        if !open {
            break;
        }
    }
    // Closed: whatever is still queued goes out too.
    while let Ok(r) = rx.try_recv() {
        batch.push(r);
        if batch.len() == MAX_BATCH {
            w.write_with_retry(&mut batch).await;
        }
    }
    w.write_with_retry(&mut batch).await;
}

impl Writer {
    async fn write_with_retry(&mut self, batch: &mut Vec<UsageRecord>) {
        if batch.is_empty() {
            return;
        }
        for attempt in 0.. {
            let result = match self.conn.as_mut() {
                Some(c) => write_on(c, self.epoch_ms, batch).await,
                None => match self.db.pool().acquire().await {
                    Ok(c) => write_on(self.conn.insert(c), self.epoch_ms, batch).await,
                    Err(e) => Err(e.into()),
                },
            };
            if result.is_err() {
                // A fresh connection for the retry, in case this one is the trouble.
                self.conn = None;
            }
            match result {
                Ok(()) => {
                    self.checkpoints.after_commit(&self.db);
                    break;
                }
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
        self.depth.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }
}

/// One transaction; a record whose job id is already stored is skipped, and
/// the aggregates grow by exactly the records inserted.
pub(crate) async fn write(
    db: &Db,
    epoch_ms: i64,
    batch: &[UsageRecord],
) -> Result<(), LedgerError> {
    write_on(&mut *db.pool().acquire().await?, epoch_ms, batch).await
}

async fn write_on(
    conn: &mut SqliteConnection,
    epoch_ms: i64,
    batch: &[UsageRecord],
) -> Result<(), LedgerError> {
    let mut tx = conn.begin().await?;
    // Rows this transaction inserts get rowids above the largest before it
    // (only this task inserts), which tells them apart from replays without
    // sending every id back (RETURNING cost more than the insert itself).
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM usage_records")
        .fetch_one(&mut *tx)
        .await?;
    let mut all_fresh = true;
    for rows in batch.chunks(ROWS_PER_STATEMENT) {
        let mut sql = String::from(
            "INSERT INTO usage_records (job_id, node_id, customer_id, bytes_up, bytes_down, outcome, started_at, finished_at, day, earning) VALUES ",
        );
        // Anonymous `?` placeholders: with numbered ones, binding looks each
        // name up in a list as long as the statement (quadratic in rows).
        for i in 0..rows.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?,?,?,?,?,?,?,?,?,?)");
        }
        sql.push_str(" ON CONFLICT (job_id) DO NOTHING");
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
        let added = q.execute(&mut *tx).await?.rows_affected();
        all_fresh &= added == rows.len() as u64;
    }
    let fresh: Vec<&UsageRecord> = if all_fresh {
        batch.iter().collect()
    } else {
        let mut inserted: HashSet<String> =
            sqlx::query_scalar("SELECT job_id FROM usage_records WHERE rowid > ?")
                .bind(before)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        // `remove`, so a job id twice in one batch is added once.
        batch
            .iter()
            .filter(|r| inserted.remove(&r.job.to_string()))
            .collect()
    };
    aggregates::apply(&mut tx, epoch_ms, &fresh).await?;
    tx.commit().await?;
    Ok(())
}
