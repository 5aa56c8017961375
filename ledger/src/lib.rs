//! The Spareband ledger: everything the project stores, and every SQL
//! statement it runs.
//!
//! - [`Db`] opens the database a [`DatabaseUrl`] names, SQLite or
//!   PostgreSQL, and applies the migrations (`migrations/<backend>/`).
//! - [`customers`]: customers, their hashed keys and monthly quotas.
//! - [`nodes`]: what the relay knows of each node (first and last sight,
//!   kind, country, whether it earns).
//! - [`usage`]: one record per job attempt, written in batches by the
//!   [`UsageWriter`], with the aggregates the dashboard and quotas read.
//! - [`rewards`]: closing epochs into payouts and a Merkle tree.
//! - [`dashboard`] and [`reports`]: what the admin dashboard, the customer's
//!   usage and the public rewards API read.
//! - [`inspect`]: plain views of the stored rows for tests and tools.
//! - [`clock`]: Unix time, UTC calendar days and months, epoch arithmetic.
//!
//! Storage seam: callers see only the functions of these modules, with typed
//! arguments and results, and never which backend holds them; nothing
//! outside the crate names a table or a column. Each query is written once
//! for both backends (see `db`); only the batch writer has per-backend
//! code: SQLite's pragmas, WAL checkpoint, rowid shortcut and `?`
//! placeholders, PostgreSQL's inserts from arrays (`UNNEST`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aggregates;
pub mod clock;
pub mod customers;
pub mod dashboard;
pub mod database_url;
mod db;
mod error;
pub mod inspect;
pub mod nodes;
pub mod reports;
pub mod rewards;
pub mod usage;
mod writer;

pub use database_url::{Backend, BadDatabaseUrl, DatabaseUrl, DB_FILE};
pub use db::Db;
pub use error::LedgerError;
pub use usage::{JobOutcome, UsageRecord, UsageWriter, FLUSH_INTERVAL, MAX_BATCH};

/// A customer id.
pub type CustomerId = i64;

#[cfg(test)]
mod test_db;
#[cfg(test)]
mod writer_tests;
