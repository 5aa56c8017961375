//! The relay database: SQLite through sqlx, migrations embedded in the
//! binary. Queries use `$n` placeholders and standard SQL so that they also
//! run on PostgreSQL.

use crate::secret::ApiKey;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A query or connection failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A customer id.
pub type CustomerId = i64;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A handle to the database.
#[derive(Clone, Debug)]
pub struct Db {
    pool: SqlitePool,
}

/// What the relay records about a node when it connects.
#[derive(Debug, Clone)]
pub struct NodeRecord<'a> {
    /// Node id (hex).
    pub node_id: &'a str,
    /// Public key (hex).
    pub public_key: &'a str,
    /// `native` or `extension`.
    pub client_kind: &'a str,
    /// Software agent string.
    pub agent: &'a str,
    /// Address the node connected from.
    pub ip: &'a str,
    /// GeoIP country, if known.
    pub country: Option<&'a str>,
}

impl Db {
    /// Opens (creating if needed) `spareband.db` in `data_dir` and applies
    /// migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, DbError> {
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

    /// The pool, for modules that own their own tables.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates a customer with a fresh key; returns the key (to show once).
    pub async fn create_customer(&self, name: &str) -> Result<(CustomerId, ApiKey), DbError> {
        let key = ApiKey::generate();
        let row = sqlx::query(
            "INSERT INTO customers (name, key_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(key.hash())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, key))
    }

    /// The customer holding this key, if any and not disabled.
    pub async fn customer_by_key(&self, key: &ApiKey) -> Result<Option<CustomerId>, DbError> {
        let row = sqlx::query("SELECT id FROM customers WHERE key_hash = $1 AND disabled = 0")
            .bind(key.hash())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Disables a customer: its key is refused from now on. A running relay
    /// notices within [`crate::api::KEY_CACHE_TTL`], at once when told
    /// through [`crate::AppState::disable_customer`].
    pub async fn disable_customer(&self, id: CustomerId) -> Result<(), DbError> {
        sqlx::query("UPDATE customers SET disabled = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The customers named `name` (names need not be unique).
    pub async fn customers_named(&self, name: &str) -> Result<Vec<CustomerId>, DbError> {
        let rows = sqlx::query("SELECT id FROM customers WHERE name = $1 AND disabled = 0")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Sets a customer's own monthly byte quota (`None`: the relay default).
    pub async fn set_monthly_quota(
        &self,
        id: CustomerId,
        bytes: Option<u64>,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE customers SET monthly_quota_bytes = $1 WHERE id = $2")
            .bind(bytes.map(|b| b.min(i64::MAX as u64) as i64))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Number of customers.
    pub async fn customer_count(&self) -> Result<i64, DbError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM customers")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Records a node connection (first sight or a return).
    pub async fn upsert_node(&self, n: &NodeRecord<'_>) -> Result<(), DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO nodes (node_id, public_key, client_kind, agent, first_seen, last_seen, last_ip, country, online)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 1)
             ON CONFLICT (node_id) DO UPDATE SET client_kind = excluded.client_kind, online = 1,
                 agent = excluded.agent, last_seen = excluded.last_seen,
                 last_ip = excluded.last_ip, country = excluded.country",
        )
        .bind(n.node_id)
        .bind(n.public_key)
        .bind(n.client_kind)
        .bind(n.agent)
        .bind(now)
        .bind(n.ip)
        .bind(n.country)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a node as last seen now (on disconnect); `online` is whether
    /// another connection of the same node is still up.
    pub async fn touch_node(&self, node_id: &str, online: bool) -> Result<(), DbError> {
        sqlx::query("UPDATE nodes SET last_seen = $1, online = $2 WHERE node_id = $3")
            .bind(now_ms())
            .bind(i64::from(online))
            .bind(node_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks every node offline: at start, no node is connected yet, whatever
    /// a crash left behind.
    pub async fn mark_all_offline(&self) -> Result<(), DbError> {
        sqlx::query("UPDATE nodes SET online = 0 WHERE online <> 0")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Closes the pool (on shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_stored_hashed_and_found_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let (id, key) = db.create_customer("acme").await.unwrap();
        assert_eq!(db.customer_by_key(&key).await.unwrap(), Some(id));
        assert_eq!(
            db.customer_by_key(&ApiKey::from_presented("sb_nope"))
                .await
                .unwrap(),
            None
        );
        let raw = std::fs::read(dir.path().join(DB_FILE)).unwrap();
        let wal = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))).unwrap_or_default();
        let needle = key.reveal().as_bytes();
        for bytes in [raw, wal] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
        // Reopening applies no migration twice.
        drop(db);
        let db = Db::open(dir.path()).await.unwrap();
        assert_eq!(db.customer_count().await.unwrap(), 1);
    }
}
