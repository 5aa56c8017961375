//! Per-key limits, checked before a job reaches any node: a request rate (a
//! token bucket per key), a number of jobs in flight, and a monthly byte
//! quota.
//!
//! The rate and concurrency are held in memory. In a cluster each relay
//! tells the others, every [`crate::cluster::KEY_SYNC`], what it admitted and
//! holds in flight per key ([`KeyLimits::unshared`]); what the others
//! admitted is owed by this relay's bucket ([`KeyLimits::admitted_elsewhere`]),
//! so the key's rate holds over the cluster, ahead by at most what the
//! relays admit within one sync. The bucket is written here rather than
//! taken from `governor` (which the relay used before) because a GCRA
//! limiter cannot owe: a debit larger than its room is refused whole.
//!
//! The monthly quota is counted in memory: the ledger's per-customer
//! aggregates (shared by the relays of a cluster) read every
//! [`QUOTA_REFRESH`], plus the bytes of every job finished since, here and
//! (reported with the admissions) on the other relays. Each job reserves
//! the size of the key's largest job so far ([`FIRST_RESERVATION`] before
//! any) while it runs, and a relay admits a job only while its jobs'
//! reservations fit in its share of what is left (what is left after the
//! other relays' reservations, divided among the relays running the key's
//! jobs); past that, one job at a time per relay, until the quota is used
//! up. So a quota is exceeded by at most one job per relay, as long as no
//! job is larger than the key's largest before it (a larger one can exceed
//! it by its excess), and up to what the relays admit within one
//! [`crate::cluster::KEY_SYNC`] of each other's reports.

use spareband_ledger::clock::{month_start, now_ms};
use spareband_ledger::{CustomerId, Db, LedgerError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a key's monthly usage is read again from the ledger.
pub const QUOTA_REFRESH: Duration = Duration::from_secs(5);

/// What a job reserves of its key's quota before the key has finished any:
/// 1 MiB, above most web pages.
pub const FIRST_RESERVATION: u64 = 1 << 20;

/// Most keys held in memory. Past it, the keys with nothing in flight are
/// forgotten (they start again with a full burst), so a flood of distinct
/// keys cannot grow the map without bound.
pub const MAX_TRACKED_KEYS: usize = 100_000;

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
    /// So little of the month's quota is left that this relay runs the
    /// key's jobs one at a time (bytes left, jobs in flight here).
    QuotaNearlyUsed(u64, u32),
}

/// How long another relay's count of a key's jobs in flight stands without
/// a newer one: a relay that stops reporting (gone, or cut from NATS) stops
/// counting after this.
pub const REMOTE_INFLIGHT_TTL: Duration = Duration::from_secs(1);

/// A token bucket that can owe: requests other relays admitted take tokens
/// even below zero, and this relay admits again once the debt is paid.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Self {
        Bucket {
            tokens: burst,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, rate: f64, burst: f64) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(burst);
        self.at = now;
    }

    /// Takes one token, or says how long until there is one (rounded up,
    /// so waiting that long is always enough).
    fn take(&mut self, rate: f64, burst: f64) -> Result<(), Duration> {
        self.refill(rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_micros(
                ((1.0 - self.tokens) / rate * 1e6).ceil() as u64,
            ))
        }
    }

    /// Owes `n` tokens, at most one second of the rate beyond the burst (a
    /// bound on what a flood of reports can cost a key).
    fn owe(&mut self, n: f64, rate: f64, burst: f64) {
        self.refill(rate, burst);
        self.tokens = (self.tokens - n).max(-rate);
    }
}

#[derive(Debug)]
struct KeyState {
    /// The bucket beside the key's other state, so admitting a job takes
    /// one map lookup under one lock.
    bucket: Bucket,
    inflight: u32,
    /// Admitted here since the last report to the cluster.
    unshared: u32,
    /// Other relays' jobs of this key in flight, as last reported.
    elsewhere: Vec<Elsewhere>,
    quota: Option<QuotaState>,
    /// Bytes reserved by this relay's jobs in flight.
    reserved: u64,
    /// Bytes this relay's finished jobs delivered since the last report.
    spent_unshared: u64,
    /// The largest job of the key seen, here or reported, in bytes.
    largest: u64,
}

/// Another relay's jobs of a key, as last reported.
#[derive(Debug)]
struct Elsewhere {
    relay: String,
    inflight: u32,
    reserved: u64,
    at: Instant,
}

impl KeyState {
    /// A key first seen now: its whole burst available, nothing in flight.
    fn fresh(burst: f64) -> Self {
        KeyState {
            bucket: Bucket::full(burst),
            inflight: 0,
            unshared: 0,
            elsewhere: Vec::new(),
            quota: None,
            reserved: 0,
            spent_unshared: 0,
            largest: 0,
        }
    }

    /// Reports of other relays still standing.
    fn fresh_elsewhere(&self) -> impl Iterator<Item = &Elsewhere> {
        self.elsewhere
            .iter()
            .filter(|e| e.at.elapsed() < REMOTE_INFLIGHT_TTL)
    }

    /// What a job of this key reserves of its quota.
    fn reservation(&self) -> u64 {
        if self.largest == 0 {
            FIRST_RESERVATION
        } else {
            self.largest
        }
    }

    /// Whether one more job fits the key's quota on this relay, one of
    /// `relays` in its cluster; `Ok(reserve)` is what it reserves (0 with
    /// no quota).
    ///
    /// In a cluster, each relay may deliver, between two of its reports,
    /// its share of half of what was left when the others last reported
    /// (what their jobs in flight reserve left out); its own jobs in
    /// flight reserve from that share. Past it, it runs one job at a time, and
    /// only when it has reported everything it delivered, so a relay
    /// exceeds the quota by at most that one job.
    fn quota_room(&self, relays: u32) -> Result<u64, Refusal> {
        let Some(q) = self.quota.filter(|q| q.quota > 0) else {
            return Ok(0);
        };
        if q.used >= q.quota {
            return Err(Refusal::Quota(q.used, q.quota));
        }
        let reserve = self.reservation();
        let (reported, mine, relays) = if relays > 1 {
            // Half of what is left is shared out: the other half absorbs
            // what the others delivered since they last reported.
            let unreported = self.spent_unshared.min(q.used);
            (q.used - unreported, unreported, 2 * u64::from(relays))
        } else {
            (q.used, 0, 1)
        };
        let elsewhere: u64 = self.fresh_elsewhere().map(|e| e.reserved).sum();
        let share = (q.quota - reported).saturating_sub(elsewhere) / relays;
        if mine + self.reserved + reserve <= share || (self.inflight == 0 && mine == 0) {
            Ok(reserve)
        } else {
            Err(Refusal::QuotaNearlyUsed(q.quota - q.used, self.inflight))
        }
    }

    /// Jobs of this key in flight on other relays, by their latest reports.
    fn inflight_elsewhere(&self) -> u32 {
        self.fresh_elsewhere().map(|e| e.inflight).sum()
    }
}

/// What one relay reports of one key (short names: a note carries
/// [`crate::cluster`]'s many keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyReport {
    /// The key's customer.
    #[serde(rename = "c")]
    pub customer: CustomerId,
    /// Jobs admitted since the last report.
    #[serde(rename = "a")]
    pub admitted: u32,
    /// Jobs in flight now.
    #[serde(rename = "i")]
    pub inflight: u32,
    /// Bytes delivered by jobs finished since the last report.
    #[serde(rename = "s", default)]
    pub spent: u64,
    /// Bytes of quota reserved by the jobs in flight.
    #[serde(rename = "r", default)]
    pub reserved: u64,
    /// The largest job of the key seen, in bytes.
    #[serde(rename = "l", default)]
    pub largest: u64,
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
    /// `limits`' rate and burst, as the bucket takes them.
    rate: f64,
    burst: f64,
    keys: Mutex<HashMap<CustomerId, KeyState>>,
    /// Relays in the cluster, this one included (1 alone): each has its
    /// share of a key's quota.
    relays: std::sync::atomic::AtomicU32,
}

/// A job's place in its key's concurrency and its reservation of the key's
/// quota; released when dropped, with the bytes the job delivered counted.
pub struct Permit {
    owner: Arc<KeyLimits>,
    customer: CustomerId,
    reserved: u64,
    spent: u64,
}

impl Permit {
    /// Sets the bytes the job delivered (up and down), counted against the
    /// key's quota when the permit is dropped.
    pub fn spend(&mut self, bytes: u64) {
        self.spent = bytes;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut keys = self.owner.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = keys.get_mut(&self.customer) {
            k.inflight = k.inflight.saturating_sub(1);
            k.reserved = k.reserved.saturating_sub(self.reserved);
            k.largest = k.largest.max(self.spent);
            if self.owner.relays() > 1 {
                k.spent_unshared += self.spent;
            }
            if let Some(q) = &mut k.quota {
                q.used += self.spent;
            }
        }
    }
}

impl KeyLimits {
    /// Limits for every key.
    pub fn new(limits: Limits) -> Arc<Self> {
        // Config validation refuses zeros; a zero from elsewhere means 1,
        // as it always has.
        Arc::new(KeyLimits {
            limits,
            rate: f64::from(limits.rate_per_sec.max(1)),
            burst: f64::from(limits.burst.max(1)),
            keys: Mutex::new(HashMap::new()),
            relays: std::sync::atomic::AtomicU32::new(1),
        })
    }

    /// Sets how many relays the cluster has now (see `quota_room`).
    pub fn set_relays(&self, n: usize) {
        let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        self.relays.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn relays(&self) -> u32 {
        self.relays.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Admits one job of `customer`, or says why not.
    pub async fn admit(self: &Arc<Self>, db: &Db, customer: CustomerId) -> Result<Permit, Refusal> {
        self.refresh_quota(db, customer).await;
        let max_concurrent = self.limits.max_concurrent;
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() > MAX_TRACKED_KEYS {
            keys.retain(|_, k| k.inflight > 0 || k.unshared > 0 || k.spent_unshared > 0);
        }
        let k = keys
            .entry(customer)
            .or_insert_with(|| KeyState::fresh(self.burst));
        // A used-up quota first (it is final), then concurrency and the
        // quota's room: a job refused for them spends none of the rate.
        if let Some(q) = k.quota.filter(|q| q.quota > 0 && q.used >= q.quota) {
            return Err(Refusal::Quota(q.used, q.quota));
        }
        if k.inflight + k.inflight_elsewhere() >= max_concurrent {
            return Err(Refusal::Concurrency(max_concurrent));
        }
        let reserved = k.quota_room(self.relays())?;
        k.bucket
            .take(self.rate, self.burst)
            .map_err(Refusal::Rate)?;
        k.inflight += 1;
        k.unshared += 1;
        k.reserved += reserved;
        Ok(Permit {
            owner: self.clone(),
            customer,
            reserved,
            spent: 0,
        })
    }

    /// What this relay has to tell the cluster: per key, the jobs admitted
    /// and the bytes delivered since the last call, and those in flight now
    /// with their reservations (keys with none of these are left out).
    pub fn unshared(&self) -> Vec<KeyReport> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter_mut()
            .filter(|(_, k)| k.unshared > 0 || k.inflight > 0 || k.spent_unshared > 0)
            .map(|(c, k)| KeyReport {
                customer: *c,
                admitted: std::mem::take(&mut k.unshared),
                inflight: k.inflight,
                spent: std::mem::take(&mut k.spent_unshared),
                reserved: k.reserved,
                largest: k.largest,
            })
            .collect()
    }

    /// What relay `relay` reported: its admissions are owed by this
    /// relay's buckets, its jobs in flight count against each key's
    /// concurrency.
    pub fn admitted_elsewhere(&self, relay: &str, reports: &[KeyReport]) {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for r in reports {
            if keys.len() > MAX_TRACKED_KEYS && !keys.contains_key(&r.customer) {
                continue;
            }
            let k = keys
                .entry(r.customer)
                .or_insert_with(|| KeyState::fresh(self.burst));
            k.bucket.owe(f64::from(r.admitted), self.rate, self.burst);
            k.largest = k.largest.max(r.largest);
            if let Some(q) = &mut k.quota {
                q.used += r.spent;
            }
            match k.elsewhere.iter_mut().find(|e| e.relay == relay) {
                Some(e) => (e.inflight, e.reserved, e.at) = (r.inflight, r.reserved, now),
                None => k.elsewhere.push(Elsewhere {
                    relay: relay.to_string(),
                    inflight: r.inflight,
                    reserved: r.reserved,
                    at: now,
                }),
            }
            k.elsewhere.retain(|e| e.at.elapsed() < REMOTE_INFLIGHT_TTL);
        }
    }

    /// Reads the key's quota and month's usage again when they are older
    /// than [`QUOTA_REFRESH`] (or of another month).
    async fn refresh_quota(&self, db: &Db, customer: CustomerId) {
        let now = now_ms();
        let month = month_start(now);
        let cached = {
            let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
            keys.get(&customer).and_then(|k| k.quota)
        };
        match cached {
            Some(q) if q.month_start_ms == month && q.read_at.elapsed() < QUOTA_REFRESH => {}
            _ => {
                let q = match self.read_quota(db, customer, month).await {
                    Ok(q) => q,
                    Err(e) => {
                        // The ledger is unreadable: do not refuse work for it.
                        tracing::warn!(error = %e, "could not read a key's quota");
                        return;
                    }
                };
                let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
                let k = keys
                    .entry(customer)
                    .or_insert_with(|| KeyState::fresh(self.burst));
                // The ledger lags what was delivered (by its flush), and
                // the count here may miss a lost report: neither is above
                // the truth, so the larger is the closer.
                let counted = k.quota.filter(|old| old.month_start_ms == month);
                k.quota = Some(QuotaState {
                    used: q.used.max(counted.map_or(0, |c| c.used)),
                    ..q
                });
            }
        }
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

    fn report(customer: CustomerId, admitted: u32, inflight: u32) -> KeyReport {
        KeyReport {
            customer,
            admitted,
            inflight,
            ..KeyReport::default()
        }
    }

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

    /// The rate limiter itself: a burst, then the sustained rate, per key,
    /// and a Retry-After that is exactly long enough. Checked to fail with
    /// the limiter taken out of `admit` (every admission then succeeds).
    /// (Written for `governor`, kept unchanged for the bucket that
    /// replaced it.)
    #[tokio::test]
    async fn rate_allows_the_burst_then_waits_as_told() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let limits = KeyLimits::new(Limits {
            rate_per_sec: 1,
            burst: 3,
            max_concurrent: 100,
            monthly_quota_bytes: 0,
        });
        for _ in 0..3 {
            limits.admit(&db, 1).await.unwrap();
        }
        // One second per request at 1/s, less the moments since the burst.
        match limits.admit(&db, 1).await.err() {
            Some(Refusal::Rate(wait)) => assert!(
                wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
                "{wait:?}"
            ),
            other => panic!("the fourth request at once was not refused: {other:?}"),
        }
        // Another key has its own burst.
        limits.admit(&db, 2).await.unwrap();

        // A faster rate, to wait it out: the Retry-After is enough, and one
        // request (not a new burst) is allowed after it.
        let limits = KeyLimits::new(Limits {
            rate_per_sec: 50,
            burst: 1,
            max_concurrent: 100,
            monthly_quota_bytes: 0,
        });
        limits.admit(&db, 1).await.unwrap();
        let Some(Refusal::Rate(wait)) = limits.admit(&db, 1).await.err() else {
            panic!("the second request at once was not refused");
        };
        assert!(wait <= Duration::from_millis(20), "{wait:?}");
        tokio::time::sleep(wait).await;
        limits.admit(&db, 1).await.unwrap();
        assert!(matches!(
            limits.admit(&db, 1).await.err(),
            Some(Refusal::Rate(_))
        ));
    }

    /// What other relays admitted is owed: a key that spent its burst on
    /// another relay waits here too, and its jobs in flight there count
    /// against its concurrency until their report is older than
    /// [`REMOTE_INFLIGHT_TTL`]. Checked to fail with `admitted_elsewhere`
    /// emptied (the fresh key was admitted at once).
    #[tokio::test]
    async fn what_other_relays_admitted_is_owed_here() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let limits = KeyLimits::new(Limits {
            rate_per_sec: 10,
            burst: 5,
            max_concurrent: 3,
            monthly_quota_bytes: 0,
        });
        limits.admitted_elsewhere("r2", &[report(1, 5, 0)]);
        let Some(Refusal::Rate(wait)) = limits.admit(&db, 1).await.err() else {
            panic!("a key whose burst was spent elsewhere was admitted");
        };
        assert!(wait > Duration::from_millis(50), "{wait:?}");
        // Another key is not affected, and what this relay admitted is
        // reported once.
        let _p = limits.admit(&db, 2).await.unwrap();
        assert_eq!(limits.unshared(), vec![report(2, 1, 1)]);
        assert_eq!(limits.unshared(), vec![report(2, 0, 1)]);
        // Jobs in flight elsewhere fill the key's concurrency.
        limits.admitted_elsewhere("r3", &[report(2, 0, 2)]);
        assert_eq!(
            limits.admit(&db, 2).await.err(),
            Some(Refusal::Concurrency(3))
        );
    }

    /// Relays that admit greedily, one key hammered at each: every round,
    /// each relay takes every job it admits, the jobs deliver `job` bytes
    /// each, and every relay reports to the others (as `KEY_SYNC` would).
    /// Returns the bytes delivered in all.
    async fn hammer(relays: usize, quota: u64, job: u64) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).await.unwrap();
        let all: Vec<_> = (0..relays)
            .map(|_| {
                let l = KeyLimits::new(Limits {
                    rate_per_sec: 1_000_000,
                    burst: 1_000_000,
                    max_concurrent: 1000,
                    monthly_quota_bytes: quota,
                });
                l.set_relays(relays);
                l
            })
            .collect();
        let mut delivered = 0;
        for _round in 0..1000 {
            let mut permits = Vec::new();
            let mut refused_for_good = 0;
            for l in &all {
                // Each relay runs up to 16 jobs at once.
                for _ in 0..16 {
                    match l.admit(&db, 1).await {
                        Ok(p) => permits.push(p),
                        Err(Refusal::Quota(..)) => {
                            refused_for_good += 1;
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            if refused_for_good == relays {
                return delivered;
            }
            for mut p in permits {
                p.spend(job);
                delivered += job;
            }
            let reports: Vec<_> = all.iter().map(|l| l.unshared()).collect();
            for (i, l) in all.iter().enumerate() {
                for (j, r) in reports.iter().enumerate() {
                    if i != j {
                        l.admitted_elsewhere(&format!("r{j}"), r);
                    }
                }
            }
        }
        panic!("the quota was never reached: {delivered} bytes delivered");
    }

    /// A quota is exceeded by at most one job per relay. Checked to fail
    /// with the relays' shares taken out (each relay admitting whenever
    /// its reservations fit in all that was left): three relays delivered
    /// 5,400,000 bytes of a 3,000,000-byte quota, eight jobs past it.
    #[tokio::test]
    async fn a_quota_is_exceeded_by_at_most_one_job_per_relay() {
        const JOB: u64 = 300_000;
        for relays in [1, 3] {
            for quota in [10 * JOB, 10 * JOB + 1, 64 * JOB - 1, JOB / 2] {
                let delivered = hammer(relays, quota, JOB).await;
                assert!(
                    delivered >= quota,
                    "{relays} relays: {delivered} of {quota}"
                );
                assert!(
                    delivered <= quota + relays as u64 * JOB,
                    "{relays} relays: {delivered} delivered of a {quota}-byte quota"
                );
            }
        }
    }
}
