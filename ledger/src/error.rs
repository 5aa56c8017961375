//! The ledger's one error type.

/// A ledger failure. The database is the failing side in every case; only
/// [`LedgerError::Unavailable`] may go away on a retry.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The database cannot be reached, or a query failed (refused, locked,
    /// closed, I/O). Retrying may help.
    #[error("database {}unavailable: {source}", database.as_deref().map(|d| format!("{d} ")).unwrap_or_default())]
    Unavailable {
        /// Which database, its password masked: known when opening it
        /// failed, not for a query that failed later.
        database: Option<String>,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed at start: the database is newer than this build,
    /// or damaged. Retrying does not help.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// An amount does not fit (beyond any real epoch: 2^128 base units).
    #[error("reward arithmetic overflowed")]
    Overflow,
    /// A stored value is not what the schema promises (should never happen:
    /// values are checked on entry).
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for LedgerError {
    fn from(source: sqlx::Error) -> Self {
        LedgerError::Unavailable {
            database: None,
            source,
        }
    }
}

impl LedgerError {
    /// Whether the same call may succeed later.
    pub fn retryable(&self) -> bool {
        matches!(self, LedgerError::Unavailable { .. })
    }
}
