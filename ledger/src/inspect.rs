//! Plain views of the stored rows, for tests, benchmarks and an operator's
//! tools: what the relay wrote, read back as typed values, and a way to seed
//! the node tables as a relay would have filled them. The relay itself never
//! calls these.

use crate::usage::JobOutcome;
use crate::{CustomerId, Db, LedgerError};
use sqlx::Row;

/// One stored usage record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Job id (hex).
    pub job_id: String,
    /// Node id (hex).
    pub node_id: String,
    /// Customer.
    pub customer: CustomerId,
    /// Metered bytes up.
    pub bytes_up: u64,
    /// Metered bytes down.
    pub bytes_down: u64,
    /// How it ended.
    pub outcome: JobOutcome,
    /// Whether its node was earning.
    pub earning: bool,
}

/// Every usage record, in the order the jobs finished.
pub async fn usage_records(db: &Db) -> Result<Vec<StoredRecord>, LedgerError> {
    let rows = sqlx::query(
        "SELECT job_id, node_id, customer_id, bytes_up, bytes_down, outcome, earning
         FROM usage_records ORDER BY finished_at, job_id",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let outcome: String = r.try_get(5)?;
            Ok(StoredRecord {
                job_id: r.try_get(0)?,
                node_id: r.try_get(1)?,
                customer: r.try_get(2)?,
                bytes_up: r.try_get::<i64, _>(3)?.max(0) as u64,
                bytes_down: r.try_get::<i64, _>(4)?.max(0) as u64,
                outcome: JobOutcome::parse(&outcome)
                    .ok_or_else(|| LedgerError::Corrupt(format!("outcome {outcome}")))?,
                earning: r.try_get::<i64, _>(6)? != 0,
            })
        })
        .collect()
}

/// Number of usage records.
pub async fn usage_record_count(db: &Db) -> Result<u64, LedgerError> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM usage_records")
        .fetch_one(db.pool())
        .await?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}

/// The stored record of one job, if written yet.
pub async fn usage_record(db: &Db, job_id: &str) -> Result<Option<StoredRecord>, LedgerError> {
    // Few records in a test: filtering them here keeps one query shape.
    Ok(usage_records(db)
        .await?
        .into_iter()
        .find(|r| r.job_id == job_id))
}

/// Whether a known node is recorded as earning (`None`: never seen).
pub async fn node_earning(db: &Db, node_id: &str) -> Result<Option<bool>, LedgerError> {
    Ok(sqlx::query("SELECT earning FROM nodes WHERE node_id = $1")
        .bind(node_id)
        .fetch_optional(db.pool())
        .await?
        .map(|r| r.get::<i64, _>(0) != 0))
}

/// A node and its all-time totals, to seed the tables with.
#[derive(Debug, Clone)]
pub struct SeedNode {
    /// Node id (hex).
    pub node_id: String,
    /// `native` or `extension`.
    pub client_kind: String,
    /// Last seen, Unix ms.
    pub last_seen: i64,
    /// GeoIP country.
    pub country: Option<String>,
    /// Connected.
    pub online: bool,
    /// Delivered bytes up.
    pub bytes_up: i64,
    /// Delivered bytes down.
    pub bytes_down: i64,
    /// Jobs delivered.
    pub jobs_ok: i64,
    /// Jobs failed.
    pub jobs_failed: i64,
}

/// Writes nodes with their totals in one transaction, as a relay that had
/// served them would have (tests of the dashboard at scale).
pub async fn seed_nodes(db: &Db, nodes: &[SeedNode]) -> Result<(), LedgerError> {
    let mut tx = db.pool().begin().await?;
    for n in nodes {
        sqlx::query(
            "INSERT INTO nodes (node_id, public_key, client_kind, agent, first_seen, last_seen, country, online)
             VALUES ($1, '', $2, 'seed', 0, $3, $4, $5)",
        )
        .bind(&n.node_id)
        .bind(&n.client_kind)
        .bind(n.last_seen)
        .bind(&n.country)
        .bind(i64::from(n.online))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO node_totals (node_id, bytes_up, bytes_down, jobs_ok, jobs_failed)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&n.node_id)
        .bind(n.bytes_up)
        .bind(n.bytes_down)
        .bind(n.jobs_ok)
        .bind(n.jobs_failed)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
