//! Opening the database: SQLite through sqlx in WAL mode, the migrations
//! embedded in the binary and applied at open.

use crate::LedgerError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::time::Duration;

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "spareband.db";
/// Wait this long for a locked database before failing a query.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite page cache per connection, in KiB (negative: a size, not pages).
const CACHE_SIZE: &str = "-65536";
/// Most of the database file mapped into memory for reads.
const MMAP_SIZE: &str = "1073741824";
/// WAL pages before SQLite checkpoints in the committing connection (its
/// default is 1000). Only a backstop: the ledger writer checkpoints in the
/// background well before this.
const WAL_AUTOCHECKPOINT: &str = "16384";

/// A handle to the database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

impl Db {
    /// Opens (creating if needed) `spareband.db` in `data_dir` and applies
    /// migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, LedgerError> {
        let opts = SqliteConnectOptions::new()
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // The ledger writer touches index pages all over the file; a
            // larger page cache and memory-mapped reads keep it from asking
            // the kernel for the same pages again (measured in
            // docs/BENCHMARKS.md, ledger scenario).
            .pragma("cache_size", CACHE_SIZE)
            .pragma("mmap_size", MMAP_SIZE)
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Db { pool })
    }

    /// The pool, for the modules of this crate that own the tables.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool (on shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
