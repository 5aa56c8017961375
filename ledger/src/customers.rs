//! Customers: their keys (stored only as a hash), names, whether they are
//! disabled, and their own monthly quota with what they used of it.

use crate::clock::{now_ms, HOUR_MS};
use crate::{CustomerId, Db, LedgerError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::fmt;

/// Prefix of every customer API key, so a leaked key is recognisable.
pub const API_KEY_PREFIX: &str = "sb_";

/// A customer API key in clear. `Debug` and `Display` mask it. Keys carry
/// 192 random bits, so a fast hash is enough to store them (there is
/// nothing to brute-force), and a lookup is one index probe.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        ApiKey(format!("{API_KEY_PREFIX}{}", hex::encode(raw)))
    }

    /// Wraps a key presented by a customer.
    pub fn from_presented(s: &str) -> Self {
        ApiKey(s.to_string())
    }

    /// The key in clear, to show the customer once.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The hash stored in the database.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Db {
    /// Creates a customer with a fresh key; returns the key (to show once).
    pub async fn create_customer(&self, name: &str) -> Result<(CustomerId, ApiKey), LedgerError> {
        let key = ApiKey::generate();
        let row = sqlx::query(
            "INSERT INTO customers (name, key_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(key.hash())
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get(0)?, key))
    }

    /// The customer holding this key, if any and not disabled.
    pub async fn customer_by_key(&self, key: &ApiKey) -> Result<Option<CustomerId>, LedgerError> {
        let row = sqlx::query("SELECT id FROM customers WHERE key_hash = $1 AND disabled = 0")
            .bind(key.hash())
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// Disables a customer: its key is refused from now on (a relay that
    /// caches keys notices when its cache entry expires).
    pub async fn disable_customer(&self, id: CustomerId) -> Result<(), LedgerError> {
        sqlx::query("UPDATE customers SET disabled = 1 WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The customers named `name` (names need not be unique).
    pub async fn customers_named(&self, name: &str) -> Result<Vec<CustomerId>, LedgerError> {
        let rows = sqlx::query("SELECT id FROM customers WHERE name = $1 AND disabled = 0")
            .bind(name)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Sets a customer's own monthly byte quota (`None`: the relay default).
    pub async fn set_monthly_quota(
        &self,
        id: CustomerId,
        bytes: Option<u64>,
    ) -> Result<(), LedgerError> {
        sqlx::query("UPDATE customers SET monthly_quota_bytes = $1 WHERE id = $2")
            .bind(bytes.map(|b| b.min(i64::MAX as u64) as i64))
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Number of customers.
    pub async fn customer_count(&self) -> Result<i64, LedgerError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM customers")
            .fetch_one(self.pool())
            .await?
            .try_get(0)?)
    }

    /// A customer's own monthly byte quota, if one is set (`None`: the
    /// relay's default applies), or `Err` when the customer does not exist.
    pub async fn monthly_quota(&self, id: CustomerId) -> Result<Option<u64>, LedgerError> {
        Ok(
            sqlx::query("SELECT monthly_quota_bytes FROM customers WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .and_then(|r| r.get::<Option<i64>, _>(0))
                .map(|q| q.max(0) as u64),
        )
    }

    /// Bytes a customer's delivered jobs moved since `since_ms` (rounded down
    /// to its hour), from the hourly aggregates.
    pub async fn bytes_since(&self, id: CustomerId, since_ms: i64) -> Result<u64, LedgerError> {
        let used: i64 = sqlx::query(
            "SELECT COALESCE(SUM(bytes), 0) FROM customer_hours WHERE customer_id = $1 AND hour >= $2",
        )
        .bind(id)
        .bind(since_ms.div_euclid(HOUR_MS))
        .fetch_one(self.pool())
        .await?
        .try_get(0)?;
        Ok(used.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DB_FILE;

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
