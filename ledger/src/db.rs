//! Opening the database, on either backend, and the seam every query goes
//! through.
//!
//! SQLite (the default, embedded: WAL mode, the pragmas below) or PostgreSQL
//! (a server named by `postgres://`); the schema is the same on both, from
//! `migrations/sqlite` and `migrations/postgres`, embedded in the binary and
//! applied at open.
//!
//! Design: an enum of the two sqlx pools ([`Pool`]) rather than `sqlx::Any`.
//! Each query is still written once: [`on_pool!`] and [`on_tx!`] expand one
//! block of sqlx calls into one arm per backend, so the same SQL text is
//! compiled against each driver and returns the same Rust types. `Any` would
//! have given one copy too, but it cannot reach what the batch writer needs
//! on each side (PostgreSQL arrays for its multi-row insert, SQLite's own
//! connect options and pragmas), and it converts every value through its own
//! representation on the hottest path. Only the SQL that differs is written
//! per backend: the pragmas here, and where the batch writer's multi-row
//! statements take their rows from (`writer`, `aggregates`): `VALUES` with
//! `?` placeholders on SQLite, arrays through `UNNEST` on PostgreSQL.
//!
//! The shared SQL keeps to what both engines read the same way: `$n`
//! placeholders, `ON CONFLICT`, every integer a BIGINT read as `i64`
//! (`CAST(SUM(..) AS BIGINT)`, since PostgreSQL sums BIGINTs into NUMERIC),
//! text compared byte by byte (`COLLATE "C"` columns on PostgreSQL), no
//! output alias inside an `ORDER BY` expression.

use crate::database_url::{Backend, DatabaseUrl};
use crate::LedgerError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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
/// SQLite connections: one file, one writer at a time.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// PostgreSQL connections per relay: the usage writer keeps one, the rest
/// serve key lookups, node updates, the dashboard and epoch closes.
const PG_MAX_CONNECTIONS: u32 = 8;
/// How long the first connection to PostgreSQL may take at start before
/// the relay gives up and says which database it could not reach.
const PG_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a query waits for a free pooled connection (PostgreSQL), or for
/// a reconnect while the server is away.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Shown in `pg_stat_activity`.
const PG_APPLICATION_NAME: &str = "spareband";

/// The pool of whichever backend the database is on. Use it through
/// [`on_pool!`], so that one query text serves both.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either backend (use it through [`on_tx!`]).
pub(crate) enum Tx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

/// A connection held out of the pool (the usage writer keeps one).
pub(crate) enum Conn {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// Runs `$body` with `$p` bound to the pool, once per backend: the query
/// text inside is written once and compiled against each driver. The body
/// must give the same type in both arms (decode rows inside it).
macro_rules! on_pool {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
        }
    };
}

/// As [`on_pool!`], inside a transaction: `$c` is its connection.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

pub(crate) use {on_pool, on_tx};

/// A handle to the database.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// The URL as it may be shown (password masked), for errors.
    name: Arc<str>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Db({})", self.name)
    }
}

impl Db {
    /// Opens (creating if needed) `spareband.db` in `data_dir` and applies
    /// migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, LedgerError> {
        Self::connect(&DatabaseUrl::sqlite_in(data_dir)).await
    }

    /// Opens the database `url` names (creating a SQLite file if needed)
    /// and applies migrations. A database that cannot be reached is
    /// [`LedgerError::Unavailable`], naming it without its password.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, LedgerError> {
        let name: Arc<str> = url.to_string().into();
        let unavailable = |source| LedgerError::Unavailable {
            database: Some(name.to_string()),
            source,
        };
        let pool = match url.backend() {
            Backend::Sqlite => {
                let opts = match url.sqlite_file() {
                    Some(path) => SqliteConnectOptions::new().filename(path),
                    None => SqliteConnectOptions::from_str(&url.reveal()).map_err(unavailable)?,
                };
                let opts = opts
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
                    .max_connections(SQLITE_MAX_CONNECTIONS)
                    .connect_with(opts)
                    .await
                    .map_err(unavailable)?;
                sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
                Pool::Sqlite(pool)
            }
            Backend::Postgres => {
                let opts = PgConnectOptions::from_str(&url.reveal())
                    .map_err(unavailable)?
                    .application_name(PG_APPLICATION_NAME)
                    // The server's notices ("relation _sqlx_migrations
                    // already exists, skipping" at every start) are not the
                    // operator's business; its warnings and errors are.
                    .options([("client_min_messages", "warning")]);
                // One plain connection first: the pool would retry a refused
                // connection until its timeout and then report only that it
                // timed out; this says why. It also runs the migrations.
                let mut first = tokio::time::timeout(
                    PG_CONNECT_TIMEOUT,
                    sqlx::PgConnection::connect_with(&opts),
                )
                .await
                .map_err(|_| unavailable(sqlx::Error::PoolTimedOut))?
                .map_err(unavailable)?;
                sqlx::migrate!("./migrations/postgres")
                    .run(&mut first)
                    .await?;
                let _ = first.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(PG_MAX_CONNECTIONS)
                    .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                    .connect_with(opts)
                    .await
                    .map_err(unavailable)?;
                Pool::Postgres(pool)
            }
        };
        Ok(Db { pool, name })
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The pool, for the modules of this crate that own the tables.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A transaction that is the only one of its kind until it ends, for
    /// work several relays on one database may start at once (closing an
    /// epoch). On PostgreSQL it takes the transaction-scoped advisory lock
    /// `lock` first; on SQLite it takes the write lock at `BEGIN`
    /// (`IMMEDIATE`). Either way a second caller waits (SQLite: up to the
    /// busy timeout) and then sees what the first committed.
    pub(crate) async fn begin_exclusive(&self, lock: i64) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => {
                let mut t = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock)
                    .execute(&mut *t)
                    .await?;
                Tx::Postgres(t)
            }
        })
    }

    /// A transaction on a pooled connection.
    pub(crate) async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// A connection out of the pool, kept by its holder.
    pub(crate) async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Conn::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => Conn::Postgres(p.acquire().await?),
        })
    }

    /// Closes the pool (on shutdown).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

impl Conn {
    /// A transaction on this connection.
    pub(crate) async fn begin(&mut self) -> Result<Tx<'_>, sqlx::Error> {
        Ok(match self {
            Conn::Sqlite(c) => Tx::Sqlite(c.begin().await?),
            Conn::Postgres(c) => Tx::Postgres(c.begin().await?),
        })
    }
}

impl Tx<'_> {
    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn postgresql_down_at_start_is_unavailable_naming_the_database_not_its_password() {
        // A loopback port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = DatabaseUrl::parse(&format!("postgres://sb:s3cretpass@127.0.0.1:{port}/ledger"))
            .unwrap();
        let started = std::time::Instant::now();
        let e = Db::connect(&url).await.unwrap_err();
        assert!(
            started.elapsed() < PG_CONNECT_TIMEOUT,
            "a refused connection is reported at once"
        );
        assert!(e.retryable(), "{e}");
        let LedgerError::Unavailable {
            database: Some(name),
            ..
        } = &e
        else {
            panic!("not Unavailable with the database named: {e:?}");
        };
        assert_eq!(name, &format!("postgres://sb:****@127.0.0.1:{port}/ledger"));
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(
                shown.contains(&format!("127.0.0.1:{port}/ledger")),
                "{shown}"
            );
            assert!(!shown.contains("s3cretpass"), "{shown}");
        }
    }
}
