//! The batching writer task behind [`crate::UsageWriter`], and the one
//! transaction that inserts records and grows the aggregates.
//!
//! The insert is the one place written per backend: on SQLite, multi-row
//! `VALUES` with anonymous `?` placeholders under its bound-parameter limit,
//! fresh rows told apart by rowid, and a WAL checkpoint beside the writer;
//! on PostgreSQL, one multi-row insert from arrays (`UNNEST`: one prepared
//! statement whatever the batch size, no parameter limit), fresh rows told
//! apart by their inserting transaction (`xmin`). Both skip a job id already
//! stored, and feed exactly the rows they inserted to the aggregates.

use crate::clock::utc_day;
use crate::db::{Conn, Pool, Tx};
use crate::usage::{UsageRecord, FLUSH_INTERVAL, MAX_BATCH};
use crate::{aggregates, Db, LedgerError};
use sqlx::{PgConnection, SqliteConnection};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Wait after a failed write before trying the batch again; doubled after
/// each failure up to [`MAX_RETRY_DELAY`].
const RETRY_DELAY: Duration = Duration::from_millis(200);
/// Longest wait between two attempts while the database is away.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Log a failing write on its first attempt and then once in this many.
const LOG_EVERY_ATTEMPTS: u32 = 10;
/// SQLite allows 32766 bound parameters per statement; [`RECORD_WIDTH`] per row.
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
        // PostgreSQL checkpoints on its own, in its own processes.
        let Pool::Sqlite(pool) = db.pool() else {
            return;
        };
        if self.last.elapsed() < CHECKPOINT_INTERVAL || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last = tokio::time::Instant::now();
        let running = self.running.clone();
        let pool = pool.clone();
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
    /// One connection kept for the writer: its page cache stays warm (SQLite),
    /// where a pooled one would often have been invalidated by another's
    /// commit, and its prepared insert stays ready (PostgreSQL).
    conn: Option<Conn>,
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
                None => match self.db.acquire().await {
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
                    if attempt > 0 {
                        tracing::info!(
                            records = batch.len(),
                            attempts = attempt + 1,
                            "ledger write succeeded again"
                        );
                    }
                    self.checkpoints.after_commit(&self.db);
                    break;
                }
                // The database is away (down, unreachable, locked): the batch
                // waits, however long, and records queue behind it up to the
                // relay's bound (`UsageWriter::accepting`). Nothing is dropped.
                Err(e) if e.retryable() => {
                    if attempt % LOG_EVERY_ATTEMPTS == 0 {
                        tracing::warn!(error = %e, records = batch.len(), queued = self.depth.load(Ordering::Relaxed), attempt, "ledger write failed; holding the records and retrying");
                    }
                    let delay = RETRY_DELAY
                        .saturating_mul(1 << attempt.min(4))
                        .min(MAX_RETRY_DELAY);
                    tokio::time::sleep(delay).await;
                }
                // The records themselves are refused (a broken invariant):
                // retrying cannot help.
                Err(e) => {
                    tracing::error!(error = %e, records = batch.len(), "ledger write refused; records lost");
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
    write_on(&mut db.acquire().await?, epoch_ms, batch).await
}

async fn write_on(
    conn: &mut Conn,
    epoch_ms: i64,
    batch: &[UsageRecord],
) -> Result<(), LedgerError> {
    let mut tx = conn.begin().await?;
    let inserted = match &mut tx {
        Tx::Sqlite(t) => insert_sqlite(t, batch).await?,
        Tx::Postgres(t) => insert_postgres(t, batch).await?,
    };
    let fresh: Vec<&UsageRecord> = match inserted {
        Inserted::All => batch.iter().collect(),
        // `remove`, so a job id twice in one batch is added once.
        Inserted::Only(mut ids) => batch
            .iter()
            .filter(|r| ids.remove(&r.job.to_string()))
            .collect(),
    };
    aggregates::apply(&mut tx, epoch_ms, &fresh).await?;
    tx.commit().await?;
    Ok(())
}

/// Which records of a batch an insert stored (the others were there).
enum Inserted {
    /// Every one: the common case, known from the row count alone.
    All,
    /// These job ids.
    Only(HashSet<String>),
}

/// The columns of a usage record, in the order both inserts write them.
const RECORD_COLUMNS: &str = "job_id, node_id, customer_id, bytes_up, bytes_down, outcome, started_at, finished_at, day, earning";
/// How many: the values bound per record.
const RECORD_WIDTH: usize = 10;

async fn insert_sqlite(
    conn: &mut SqliteConnection,
    batch: &[UsageRecord],
) -> Result<Inserted, sqlx::Error> {
    // Rows this transaction inserts get rowids above the largest before it
    // (only this task inserts), which tells them apart from replays without
    // sending every id back (RETURNING cost more than the insert itself).
    let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM usage_records")
        .fetch_one(&mut *conn)
        .await?;
    let mut all_fresh = true;
    for rows in batch.chunks(ROWS_PER_STATEMENT) {
        let mut sql = format!("INSERT INTO usage_records ({RECORD_COLUMNS}) VALUES ");
        aggregates::push_values(&mut sql, rows.len(), RECORD_WIDTH);
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
        let added = q.execute(&mut *conn).await?.rows_affected();
        all_fresh &= added == rows.len() as u64;
    }
    if all_fresh {
        return Ok(Inserted::All);
    }
    Ok(Inserted::Only(
        sqlx::query_scalar("SELECT job_id FROM usage_records WHERE rowid > ?")
            .bind(before)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect(),
    ))
}

async fn insert_postgres(
    conn: &mut PgConnection,
    batch: &[UsageRecord],
) -> Result<Inserted, sqlx::Error> {
    let job_ids: Vec<String> = batch.iter().map(|r| r.job.to_string()).collect();
    let added = sqlx::query(&format!(
        "INSERT INTO usage_records ({RECORD_COLUMNS})
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[],
                              $6::text[], $7::int8[], $8::int8[], $9::text[], $10::int8[])
         ON CONFLICT (job_id) DO NOTHING"
    ))
    .bind(&job_ids)
    .bind(batch.iter().map(|r| r.node.to_string()).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.customer).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.bytes_up as i64).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|r| r.bytes_down as i64)
            .collect::<Vec<_>>(),
    )
    .bind(batch.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.started_at).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.finished_at).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|r| utc_day(r.finished_at))
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|r| i64::from(r.earning))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if added == batch.len() as u64 {
        return Ok(Inserted::All);
    }
    // A replay: the rows this transaction wrote carry its id as `xmin`;
    // the ones already there, an older one.
    Ok(Inserted::Only(
        sqlx::query_scalar(
            "SELECT job_id FROM usage_records
             WHERE job_id = ANY($1) AND xmin = pg_current_xact_id()::xid",
        )
        .bind(&job_ids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect(),
    ))
}
