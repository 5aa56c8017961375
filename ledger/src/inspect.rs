//! Plain views of the stored rows, for tests, benchmarks and an operator's
//! tools: what the relay wrote, read back as typed values, and a way to seed
//! the node tables as a relay would have filled them. The relay itself never
//! calls these.

use crate::db::{on_pool, on_tx};
use crate::usage::JobOutcome;
use crate::{CustomerId, Db, LedgerError};

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

/// A stored record's columns, as read.
type RecordRow = (String, String, i64, i64, i64, String, i64);

/// Every usage record, in the order the jobs finished.
pub async fn usage_records(db: &Db) -> Result<Vec<StoredRecord>, LedgerError> {
    let rows: Vec<RecordRow> = on_pool!(db, |p| sqlx::query_as(
        "SELECT job_id, node_id, customer_id, bytes_up, bytes_down, outcome, earning
         FROM usage_records ORDER BY finished_at, job_id",
    )
    .fetch_all(p)
    .await)?;
    rows.into_iter()
        .map(|(job_id, node_id, customer, up, down, outcome, earning)| {
            Ok(StoredRecord {
                job_id,
                node_id,
                customer,
                bytes_up: up.max(0) as u64,
                bytes_down: down.max(0) as u64,
                outcome: JobOutcome::parse(&outcome)
                    .ok_or_else(|| LedgerError::Corrupt(format!("outcome {outcome}")))?,
                earning: earning != 0,
            })
        })
        .collect()
}

/// Number of usage records.
pub async fn usage_record_count(db: &Db) -> Result<u64, LedgerError> {
    let n: i64 = on_pool!(db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM usage_records"
    )
    .fetch_one(p)
    .await)?;
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
    let earning: Option<i64> = on_pool!(db, |p| sqlx::query_scalar(
        "SELECT earning FROM nodes WHERE node_id = $1"
    )
    .bind(node_id)
    .fetch_optional(p)
    .await)?;
    Ok(earning.map(|e| e != 0))
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
    let mut tx = db.begin().await?;
    for n in nodes {
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO nodes (node_id, public_key, client_kind, agent, first_seen, last_seen, country, online)
                 VALUES ($1, '', $2, 'seed', 0, $3, $4, $5)",
            )
            .bind(&n.node_id)
            .bind(&n.client_kind)
            .bind(n.last_seen)
            .bind(&n.country)
            .bind(i64::from(n.online))
            .execute(&mut *c)
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
            .execute(&mut *c)
            .await?;
        });
    }
    tx.commit().await?;
    Ok(())
}
