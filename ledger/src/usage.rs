//! The usage ledger: one record per job attempt that reached a node, written
//! by a batching writer.
//!
//! Jobs hand their record to [`UsageWriter::record`], which never blocks. One task
//! writes records in batches: it commits as soon as [`MAX_BATCH`] records are
//! waiting or [`FLUSH_INTERVAL`] after the first unwritten record, whichever
//! comes first, in one transaction. So a crash (kill -9) loses at most the
//! records of the last [`FLUSH_INTERVAL`]; a graceful shutdown loses none
//! ([`UsageWriter::close`] drains the queue). Inserts are idempotent on the
//! job id.

use crate::{writer, CustomerId, Db};
use spareband_protocol::{JobId, NodeId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest time a finished job's record waits in memory before its batch is
/// committed: the most a crash can lose.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// Most records in one transaction.
pub const MAX_BATCH: usize = 10_000;

/// How a job attempt ended, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// The node delivered the whole response: the only outcome that earns.
    Ok,
    /// The node failed or disconnected: earns nothing, counts against the
    /// node's success rate.
    NodeFailed,
    /// The deadline passed: earns nothing, counts against the node.
    Timeout,
    /// The customer went away: earns nothing, not the node's fault.
    Cancelled,
    /// The node refused the request (forbidden target, bad request) or the
    /// customer's mode refused the answer: earns nothing, not the node's fault.
    Refused,
}

impl JobOutcome {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Ok => "ok",
            JobOutcome::NodeFailed => "node_failed",
            JobOutcome::Timeout => "timeout",
            JobOutcome::Cancelled => "cancelled",
            JobOutcome::Refused => "refused",
        }
    }

    /// The outcome a stored word names.
    pub fn parse(word: &str) -> Option<Self> {
        [
            JobOutcome::Ok,
            JobOutcome::NodeFailed,
            JobOutcome::Timeout,
            JobOutcome::Cancelled,
            JobOutcome::Refused,
        ]
        .into_iter()
        .find(|o| o.as_str() == word)
    }
}

/// One job attempt's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The job's id (unique per attempt).
    pub job: JobId,
    /// The node that carried it.
    pub node: NodeId,
    /// The customer who asked.
    pub customer: CustomerId,
    /// Metered bytes up (see `spareband_protocol::metering`).
    pub bytes_up: u64,
    /// Metered bytes down.
    pub bytes_down: u64,
    /// How it ended.
    pub outcome: JobOutcome,
    /// When it was dispatched, Unix ms.
    pub started_at: i64,
    /// When it ended, Unix ms.
    pub finished_at: i64,
    /// Whether its node was earning (one earning node per IP address).
    pub earning: bool,
}

/// Records a relay holds in memory while its database cannot take them
/// (about 100 bytes each: some 100 MB at this default). Past it the relay
/// refuses new jobs ([`UsageWriter::accepting`]) rather than lose records.
pub const DEFAULT_MAX_QUEUED_RECORDS: u64 = 1_000_000;

/// The handle jobs record through.
pub struct UsageWriter {
    tx: std::sync::Mutex<Option<mpsc::UnboundedSender<UsageRecord>>>,
    depth: Arc<AtomicU64>,
    max_queued: u64,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl UsageWriter {
    /// Starts the writer on `db`; `epoch` is the reward epoch length, which
    /// the per-node epoch aggregates are kept in.
    pub fn start(db: Db, epoch: Duration) -> Self {
        Self::start_bounded(db, epoch, DEFAULT_MAX_QUEUED_RECORDS)
    }

    /// [`UsageWriter::start`], holding at most `max_queued` records before
    /// [`UsageWriter::accepting`] says no.
    pub fn start_bounded(db: Db, epoch: Duration, max_queued: u64) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicU64::new(0));
        let epoch_ms = crate::clock::len_ms(epoch);
        let task = tokio::spawn(writer::run(db, epoch_ms, rx, depth.clone()));
        UsageWriter {
            tx: std::sync::Mutex::new(Some(tx)),
            depth,
            max_queued,
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// Queues a record; never blocks. After [`Ledger::close`] it is dropped
    /// (and logged): the relay is past accepting work by then.
    pub fn record(&self, rec: UsageRecord) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref() {
            Some(tx) if tx.send(rec).is_ok() => {
                self.depth.fetch_add(1, Ordering::Relaxed);
            }
            _ => tracing::warn!("usage record after the ledger closed; dropped"),
        }
    }

    /// Records waiting to be written.
    pub fn queue_depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Whether a new job's record has room: false while the database has
    /// been unable to take records for so long that the bound is reached.
    /// Jobs already running still record (the bound is soft by the jobs in
    /// flight), and nothing queued is ever dropped for want of room.
    pub fn accepting(&self) -> bool {
        self.queue_depth() < self.max_queued
    }

    /// Writes everything queued and stops the writer.
    pub async fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }

    /// [`UsageWriter::close`], giving up after `limit` (the database is
    /// away and the process must end): `Err` with the records left
    /// unwritten, which are lost.
    pub async fn close_within(&self, limit: Duration) -> Result<(), u64> {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let Some(mut task) = self.task.lock().await.take() else {
            return Ok(());
        };
        match tokio::time::timeout(limit, &mut task).await {
            Ok(_) => Ok(()),
            Err(_) => {
                task.abort();
                Err(self.queue_depth())
            }
        }
    }
}

/// The epoch length tests write with: one day.
#[cfg(test)]
pub(crate) const TEST_EPOCH_MS: i64 = 86_400_000;

/// Writes records directly, in one transaction, skipping the batching
/// queue (tests and tools; the relay records through [`UsageWriter`]).
pub async fn write_now(
    db: &Db,
    epoch: Duration,
    records: &[UsageRecord],
) -> Result<(), crate::LedgerError> {
    writer::write(db, crate::clock::len_ms(epoch), records).await
}

/// Writes records directly (tests of modules that read the ledger).
#[cfg(test)]
pub(crate) async fn write_for_tests(db: &Db, records: &[UsageRecord]) {
    writer::write(db, TEST_EPOCH_MS, records)
        .await
        .expect("ledger write");
}
