//! What customers and node owners read: a key's usage per UTC day, the closed
//! epochs with their totals and roots, and one address's payout with its
//! Merkle proof.

use crate::clock::{now_ms, utc_day, DAY_MS};
use crate::db::on_pool;
use crate::rewards::address::Address;
use crate::{CustomerId, Db, LedgerError};
use serde::Serialize;

/// One UTC day of a customer's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Delivered jobs.
    pub requests: i64,
    /// Bytes up of delivered jobs.
    pub bytes_up: i64,
    /// Bytes down of delivered jobs.
    pub bytes_down: i64,
    /// Attempts that delivered nothing (cost nothing).
    pub failed: i64,
}

/// A customer's usage over the last `days` UTC days (today included): the
/// first day, and the days with any attempt, oldest first.
pub async fn usage_by_day(
    db: &Db,
    customer: CustomerId,
    days: u32,
) -> Result<(String, Vec<UsageDay>), LedgerError> {
    let since = utc_day(now_ms() - (i64::from(days) - 1) * DAY_MS);
    let rows: Vec<(String, i64, i64, i64, i64)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT day,
                CAST(SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN outcome = 'ok' THEN bytes_up ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN outcome = 'ok' THEN bytes_down ELSE 0 END) AS BIGINT),
                CAST(SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS BIGINT)
         FROM usage_records WHERE customer_id = $1 AND day >= $2
         GROUP BY day ORDER BY day",
    )
    .bind(customer)
    .bind(&since)
    .fetch_all(p)
    .await)?;
    let days = rows
        .into_iter()
        .map(|(day, requests, bytes_up, bytes_down, failed)| UsageDay {
            day,
            requests,
            bytes_up,
            bytes_down,
            failed,
        })
        .collect();
    Ok((since, days))
}

/// A closed epoch as the public rewards API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochSummary {
    /// Its number (the aligned index).
    pub epoch: i64,
    /// Start, Unix ms (inclusive).
    pub start_ms: i64,
    /// End, Unix ms (exclusive).
    pub end_ms: i64,
    /// Base units per GiB it paid.
    pub reward_per_gib: String,
    /// Delivered bytes of nodes with a payout address.
    pub total_bytes: i64,
    /// Delivered bytes not paid (no address, or not earning).
    pub unassigned_bytes: i64,
    /// Sum of its payouts, base units.
    pub total_amount: String,
    /// Merkle root, when anything was paid.
    pub merkle_root: Option<String>,
    /// When it was closed, Unix ms.
    pub closed_at: i64,
    /// Addresses paid.
    pub payouts: i64,
}

/// Closed epochs with totals and roots, newest first.
pub async fn closed_epochs(db: &Db) -> Result<Vec<EpochSummary>, LedgerError> {
    type EpochRow = (
        i64,
        i64,
        i64,
        String,
        i64,
        i64,
        String,
        Option<String>,
        i64,
        i64,
    );
    let rows: Vec<EpochRow> = on_pool!(db, |p| {
        sqlx::query_as(
        "SELECT e.epoch, e.start_ms, e.end_ms, e.reward_per_gib, e.total_bytes, e.unassigned_bytes,
                e.total_amount, e.merkle_root, e.closed_at,
                (SELECT COUNT(*) FROM epoch_payouts p WHERE p.epoch = e.epoch)
         FROM epochs e ORDER BY e.epoch DESC",
    )
    .fetch_all(p)
    .await
    })?;
    Ok(rows
        .into_iter()
        .map(|r| EpochSummary {
            epoch: r.0,
            start_ms: r.1,
            end_ms: r.2,
            reward_per_gib: r.3,
            total_bytes: r.4,
            unassigned_bytes: r.5,
            total_amount: r.6,
            merkle_root: r.7,
            closed_at: r.8,
            payouts: r.9,
        })
        .collect())
}

/// One address's payout in a closed epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    /// Delivered bytes of its nodes.
    pub bytes: i64,
    /// Amount, base units.
    pub amount: String,
    /// Merkle proof, `0x`-hex hashes from the leaf up.
    pub proof: Vec<String>,
    /// The epoch's root.
    pub merkle_root: Option<String>,
}

/// What `address` was paid in `epoch`, if anything.
pub async fn payout(db: &Db, epoch: i64, address: &Address) -> Result<Option<Payout>, LedgerError> {
    let row: Option<(i64, String, String, Option<String>)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT p.bytes, p.amount, p.proof, e.merkle_root FROM epoch_payouts p
         JOIN epochs e ON e.epoch = p.epoch WHERE p.epoch = $1 AND p.address = $2",
    )
    .bind(epoch)
    .bind(address.to_checksum())
    .fetch_optional(p)
    .await)?;
    let Some((bytes, amount, proof, merkle_root)) = row else {
        return Ok(None);
    };
    Ok(Some(Payout {
        bytes,
        amount,
        proof: serde_json::from_str(&proof)
            .map_err(|_| LedgerError::Corrupt(format!("proof of epoch {epoch}")))?,
        merkle_root,
    }))
}
