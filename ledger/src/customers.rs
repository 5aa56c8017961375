//! Customers: their keys (stored only as a hash), names, whether they are
//! disabled, and their own monthly quota with what they used of it.

use crate::clock::{now_ms, HOUR_MS};
use crate::db::on_pool;
use crate::{CustomerId, Db, LedgerError};
use rand::RngCore;
use sha2::{Digest, Sha256};
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
        let id: CustomerId = on_pool!(self, |p| {
            sqlx::query_scalar(
            "INSERT INTO customers (name, key_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(key.hash())
        .bind(now_ms())
        .fetch_one(p)
        .await
        })?;
        Ok((id, key))
    }

    /// The customer holding this key, if any and not disabled.
    pub async fn customer_by_key(&self, key: &ApiKey) -> Result<Option<CustomerId>, LedgerError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT id FROM customers WHERE key_hash = $1 AND disabled = 0"
        )
        .bind(key.hash())
        .fetch_optional(p)
        .await)?)
    }

    /// Disables a customer: its key is refused from now on (a relay that
    /// caches keys notices when its cache entry expires).
    pub async fn disable_customer(&self, id: CustomerId) -> Result<(), LedgerError> {
        on_pool!(self, |p| sqlx::query(
            "UPDATE customers SET disabled = 1 WHERE id = $1"
        )
        .bind(id)
        .execute(p)
        .await
        .map(drop))?;
        Ok(())
    }

    /// The customers named `name` (names need not be unique).
    pub async fn customers_named(&self, name: &str) -> Result<Vec<CustomerId>, LedgerError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT id FROM customers WHERE name = $1 AND disabled = 0"
        )
        .bind(name)
        .fetch_all(p)
        .await)?)
    }

    /// Sets a customer's own monthly byte quota (`None`: the relay default).
    pub async fn set_monthly_quota(
        &self,
        id: CustomerId,
        bytes: Option<u64>,
    ) -> Result<(), LedgerError> {
        let bytes = bytes.map(|b| b.min(i64::MAX as u64) as i64);
        on_pool!(self, |p| sqlx::query(
            "UPDATE customers SET monthly_quota_bytes = $1 WHERE id = $2"
        )
        .bind(bytes)
        .bind(id)
        .execute(p)
        .await
        .map(drop))?;
        Ok(())
    }

    /// Number of customers.
    pub async fn customer_count(&self) -> Result<i64, LedgerError> {
        Ok(on_pool!(self, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM customers"
        )
        .fetch_one(p)
        .await)?)
    }

    /// A customer's own monthly byte quota, if one is set (`None`: the
    /// relay's default applies), or `Err` when the customer does not exist.
    pub async fn monthly_quota(&self, id: CustomerId) -> Result<Option<u64>, LedgerError> {
        let quota: Option<Option<i64>> = on_pool!(self, |p| sqlx::query_scalar(
            "SELECT monthly_quota_bytes FROM customers WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(p)
        .await)?;
        Ok(quota.flatten().map(|q| q.max(0) as u64))
    }

    /// Bytes a customer's delivered jobs moved since `since_ms` (rounded down
    /// to its hour), from the hourly aggregates.
    pub async fn bytes_since(&self, id: CustomerId, since_ms: i64) -> Result<u64, LedgerError> {
        let used: i64 = on_pool!(self, |p| {
            sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) FROM customer_hours WHERE customer_id = $1 AND hour >= $2",
        )
        .bind(id)
        .bind(since_ms.div_euclid(HOUR_MS))
        .fetch_one(p)
        .await
        })?;
        Ok(used.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::{on_both_backends, TestDb};

    on_both_backends!(keys_are_stored_hashed_and_found_by_hash);

    async fn keys_are_stored_hashed_and_found_by_hash(t: &TestDb) {
        let db = &t.db;
        let (id, key) = db.create_customer("acme").await.unwrap();
        assert_eq!(db.customer_by_key(&key).await.unwrap(), Some(id));
        assert_eq!(
            db.customer_by_key(&ApiKey::from_presented("sb_nope"))
                .await
                .unwrap(),
            None
        );
        // No column holds the key in clear.
        let clear: i64 = on_pool!(db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM customers WHERE key_hash = $1 OR name = $1"
        )
        .bind(key.reveal())
        .fetch_one(p)
        .await)
        .unwrap();
        assert_eq!(clear, 0);
        // Nor any byte of a SQLite file.
        if let Some(file) = t.url.sqlite_file() {
            let raw = std::fs::read(file).unwrap();
            let wal = std::fs::read(file.with_extension("db-wal")).unwrap_or_default();
            let needle = key.reveal().as_bytes();
            for bytes in [raw, wal] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle));
            }
        }
        // Reopening applies no migration twice.
        let again = Db::connect(&t.url).await.unwrap();
        assert_eq!(again.customer_count().await.unwrap(), 1);
        again.close().await;
    }
}
