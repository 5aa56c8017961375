//! What customers and node owners read: a key's usage per UTC day, the closed
//! epochs with their totals and roots, and one address's payout with its
//! Merkle proof.

use crate::clock::{now_ms, utc_day, DAY_MS};
use crate::rewards::address::Address;
use crate::{CustomerId, Db, LedgerError};
use serde::Serialize;
use sqlx::Row;

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
    let rows = sqlx::query(
        "SELECT day,
                SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END),
                SUM(CASE WHEN outcome = 'ok' THEN bytes_up ELSE 0 END),
                SUM(CASE WHEN outcome = 'ok' THEN bytes_down ELSE 0 END),
                SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END)
         FROM usage_records WHERE customer_id = $1 AND day >= $2
         GROUP BY day ORDER BY day",
    )
    .bind(customer)
    .bind(&since)
    .fetch_all(db.pool())
    .await?;
    let days = rows
        .iter()
        .map(|r| UsageDay {
            day: r.get(0),
            requests: r.get(1),
            bytes_up: r.get(2),
            bytes_down: r.get(3),
            failed: r.get(4),
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
    let rows = sqlx::query(
        "SELECT e.epoch, e.start_ms, e.end_ms, e.reward_per_gib, e.total_bytes, e.unassigned_bytes,
                e.total_amount, e.merkle_root, e.closed_at,
                (SELECT COUNT(*) FROM epoch_payouts p WHERE p.epoch = e.epoch)
         FROM epochs e ORDER BY e.epoch DESC",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .iter()
        .map(|r| EpochSummary {
            epoch: r.get(0),
            start_ms: r.get(1),
            end_ms: r.get(2),
            reward_per_gib: r.get(3),
            total_bytes: r.get(4),
            unassigned_bytes: r.get(5),
            total_amount: r.get(6),
            merkle_root: r.get(7),
            closed_at: r.get(8),
            payouts: r.get(9),
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
    let Some(r) = sqlx::query(
        "SELECT p.bytes, p.amount, p.proof, e.merkle_root FROM epoch_payouts p
         JOIN epochs e ON e.epoch = p.epoch WHERE p.epoch = $1 AND p.address = $2",
    )
    .bind(epoch)
    .bind(address.to_checksum())
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let proof: String = r.get(2);
    Ok(Some(Payout {
        bytes: r.get(0),
        amount: r.get(1),
        proof: serde_json::from_str(&proof)
            .map_err(|_| LedgerError::Corrupt(format!("proof of epoch {epoch}")))?,
        merkle_root: r.get(3),
    }))
}
