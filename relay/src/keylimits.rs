//! Per-key limits, checked before a job reaches any node: a request rate (a
//! token bucket), a number of jobs in flight, and a monthly byte quota.
//!
//! The rate and concurrency are held in memory (per relay process). The
//! quota is read from the ledger's per-customer aggregates and refreshed
//! every [`QUOTA_REFRESH`], so a key can overrun it by at most what it
//! delivers in that interval.

use spareband_ledger::clock::{month_start, now_ms};
use spareband_ledger::{CustomerId, Db, LedgerError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a key's monthly usage is read again from the ledger.
pub const QUOTA_REFRESH: Duration = Duration::from_secs(5);

/// The limits every key gets (a key's own quota overrides the default).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests per second, sustained.
    pub rate_per_sec: u32,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    /// Jobs in flight at once.
    pub max_concurrent: u32,
    /// Delivered bytes per calendar month (UTC); 0 is unlimited.
    pub monthly_quota_bytes: u64,
}

/// Why a key's job was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Too many requests per second: retry after this long.
    Rate(Duration),
    /// Too many jobs in flight.
    Concurrency(u32),
    /// The month's bytes are used up (used, quota).
    Quota(u64, u64),
}

#[derive(Debug)]
struct KeyState {
    tokens: f64,
    refilled: Instant,
    inflight: u32,
    quota: Option<QuotaState>,
}

impl KeyState {
    /// A key first seen now: a full bucket, nothing in flight.
    fn fresh(burst: u32) -> Self {
        KeyState {
            tokens: f64::from(burst.max(1)),
            refilled: Instant::now(),
            inflight: 0,
            quota: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct QuotaState {
    month_start_ms: i64,
    quota: u64,
    used: u64,
    read_at: Instant,
}

/// The limits in force, per key.
pub struct KeyLimits {
    limits: Limits,
    keys: Mutex<HashMap<CustomerId, KeyState>>,
}

/// A job's place in its key's concurrency; released when dropped.
pub struct Permit {
    owner: Arc<KeyLimits>,
    customer: CustomerId,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut keys = self.owner.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = keys.get_mut(&self.customer) {
            k.inflight = k.inflight.saturating_sub(1);
        }
    }
}

impl KeyLimits {
    /// Limits for every key.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(KeyLimits {
            limits,
            keys: Mutex::new(HashMap::new()),
        })
    }

    /// Admits one job of `customer`, or says why not.
    pub async fn admit(self: &Arc<Self>, db: &Db, customer: CustomerId) -> Result<Permit, Refusal> {
        self.check_quota(db, customer).await?;
        let l = self.limits;
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() > 100_000 {
            keys.retain(|_, k| k.inflight > 0);
        }
        let k = keys
            .entry(customer)
            .or_insert_with(|| KeyState::fresh(l.burst));
        let cap = f64::from(l.burst.max(1));
        let rate = f64::from(l.rate_per_sec.max(1));
        k.tokens = (k.tokens + now.duration_since(k.refilled).as_secs_f64() * rate).min(cap);
        k.refilled = now;
        if k.inflight >= l.max_concurrent {
            return Err(Refusal::Concurrency(l.max_concurrent));
        }
        if k.tokens < 1.0 {
            return Err(Refusal::Rate(Duration::from_secs_f64(
                (1.0 - k.tokens) / rate,
            )));
        }
        k.tokens -= 1.0;
        k.inflight += 1;
        Ok(Permit {
            owner: self.clone(),
            customer,
        })
    }

    async fn check_quota(&self, db: &Db, customer: CustomerId) -> Result<(), Refusal> {
        let now = now_ms();
        let month = month_start(now);
        let cached = {
            let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.get(&customer).and_then(|k| k.quota)
        };
        let q = match cached {
            Some(q) if q.month_start_ms == month && q.read_at.elapsed() < QUOTA_REFRESH => q,
            _ => {
                let q = match self.read_quota(db, customer, month).await {
                    Ok(q) => q,
                    Err(e) => {
                        // The ledger is unreadable: do not refuse work for it.
                        tracing::warn!(error = %e, "could not read a key's quota");
                        return Ok(());
                    }
                };
                let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
                keys.entry(customer)
                    .or_insert_with(|| KeyState::fresh(self.limits.burst))
                    .quota = Some(q);
                q
            }
        };
        if q.quota > 0 && q.used >= q.quota {
            return Err(Refusal::Quota(q.used, q.quota));
        }
        Ok(())
    }

    async fn read_quota(
        &self,
        db: &Db,
        customer: CustomerId,
        month_start_ms: i64,
    ) -> Result<QuotaState, LedgerError> {
        let quota = db
            .monthly_quota(customer)
            .await?
            .unwrap_or(self.limits.monthly_quota_bytes);
        let used = if quota == 0 {
            0
        } else {
            db.bytes_since(customer, month_start_ms).await?
        };
        Ok(QuotaState {
            month_start_ms,
            quota,
            used,
            read_at: Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rate_and_concurrency_are_bounded_per_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let limits = KeyLimits::new(Limits {
            rate_per_sec: 1,
            burst: 3,
            max_concurrent: 2,
            monthly_quota_bytes: 0,
        });
        let a = limits.admit(&db, 1).await.unwrap();
        let _b = limits.admit(&db, 1).await.unwrap();
        assert_eq!(
            limits.admit(&db, 1).await.err(),
            Some(Refusal::Concurrency(2))
        );
        // Another key is not affected.
        let _c = limits.admit(&db, 2).await.unwrap();
        drop(a);
        let _d = limits.admit(&db, 1).await.unwrap();
        // The burst of 3 is spent: the next waits for the rate.
        drop(_d);
        match limits.admit(&db, 1).await.err() {
            Some(Refusal::Rate(wait)) => assert!(wait <= Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
    }
}
