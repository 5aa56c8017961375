//! Rewards: delivered bytes become token amounts per payout address at the
//! end of each epoch, with a Merkle tree a standard distributor contract can
//! pay out from.
//!
//! Epochs are aligned to multiples of their length in Unix time and carry
//! one number, `start / length` ([`crate::clock::Epoch`]): the number
//! receipts carry and every page shows. An epoch covers `[start, end)` of job
//! finish times; only `ok` records count. The first epoch a relay closes
//! also takes any older record (its start is then the oldest record's finish
//! time, stored as such). An epoch is closed [`CLOSE_DELAY`] after its end,
//! so every record of it has been committed by the ledger writer first.
//! Bytes of nodes with no payout address, and of nodes that were not earning
//! (one earning node per IP address), are reported as unassigned and not
//! paid. Rounding: see [`math`].

/// Payout addresses (shared with the nodes).
pub use spareband_protocol::address;
pub mod math;
pub mod merkle;

use crate::aggregates::pad_amount;
use crate::clock::{len_ms, now_ms, Epoch};
use crate::db::{on_pool, on_tx, Tx};
use crate::{Db, LedgerError};
use address::Address;
use merkle::{hex32, leaf_hash, MerkleTree};
use std::time::Duration;

/// How long after an epoch's end it is closed: many ledger flush intervals,
/// so no record of the epoch is still in memory.
pub const CLOSE_DELAY: Duration = Duration::from_secs(2);
/// How often the relay checks whether an epoch is due.
pub const CLOSE_CHECK_INTERVAL: Duration = Duration::from_secs(15);

/// What closing an epoch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedEpoch {
    /// Epoch number (`end / length - 1`, the aligned index).
    pub epoch: i64,
    /// Start, Unix ms (inclusive).
    pub start_ms: i64,
    /// End, Unix ms (exclusive).
    pub end_ms: i64,
    /// Delivered bytes of nodes with a payout address.
    pub total_bytes: u64,
    /// Delivered bytes of nodes without one.
    pub unassigned_bytes: u64,
    /// Sum of all payouts, base units.
    pub total_amount: u128,
    /// Merkle root, when anything is paid.
    pub root: Option<String>,
    /// `(address, bytes, amount)` in address order.
    pub payouts: Vec<(Address, u64, u128)>,
}

/// Records a node's payout address (already verified against its key).
pub async fn set_payout(
    db: &Db,
    node_id: &str,
    address: &Address,
    signature: &str,
) -> Result<(), LedgerError> {
    on_pool!(db, |p| {
        sqlx::query(
        "INSERT INTO payout_addresses (node_id, address, signature, registered_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (node_id) DO UPDATE SET address = excluded.address, signature = excluded.signature,
             registered_at = excluded.registered_at",
    )
    .bind(node_id)
    .bind(address.to_checksum())
    .bind(signature)
    .bind(now_ms())
    .execute(p)
    .await
    .map(drop)
    })?;
    Ok(())
}

/// The end of the last closed epoch, if any.
pub async fn last_end(db: &Db) -> Result<Option<i64>, LedgerError> {
    Ok(on_pool!(db, |p| sqlx::query_scalar(
        "SELECT MAX(end_ms) FROM epochs"
    )
    .fetch_one(p)
    .await)?)
}

/// Closes the epoch that ends at `end_ms`: normally a multiple of
/// `epoch_len`; earlier when an operator closes the epoch in progress now
/// (`spareband-relay epochs close`). Its number is the aligned index of the
/// epoch its last instant falls in ([`number_of`]). It starts where the last
/// one ended; the first one at its aligned start, or at the oldest record
/// before that. `None` when there is nothing to close: `end_ms` is not after
/// the last end, or an epoch of that number is already closed (an early
/// close; the rest of that epoch's time goes to the next one).
pub async fn close_epoch(
    db: &Db,
    end_ms: i64,
    epoch_len: Duration,
    reward_per_gib: u128,
) -> Result<Option<ClosedEpoch>, LedgerError> {
    let len = len_ms(epoch_len);
    let epoch = number_of(end_ms, epoch_len);
    // Relays sharing a database close epochs one at a time: the second finds
    // the epoch closed and returns `None` instead of racing the first.
    let mut tx = db.begin_exclusive(EPOCH_CLOSE_LOCK).await?;
    let (last_epoch, last_end): (Option<i64>, Option<i64>) = on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT MAX(epoch), MAX(end_ms) FROM epochs"
    )
    .fetch_one(c)
    .await)?;
    if last_epoch.is_some_and(|l| epoch <= l) {
        return Ok(None);
    }
    let start_ms = match last_end {
        Some(end) => end,
        None => {
            let oldest: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "SELECT MIN(finished_at) FROM usage_records WHERE finished_at < $1"
            )
            .bind(end_ms)
            .fetch_one(c)
            .await)?;
            let aligned = epoch.saturating_mul(len);
            oldest.map_or(aligned, |o| o.min(aligned))
        }
    };
    if end_ms <= start_ms {
        return Ok(None);
    }
    let rows: Vec<(String, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT p.address, CAST(SUM(u.bytes_up + u.bytes_down) AS BIGINT)
         FROM usage_records u JOIN payout_addresses p ON p.node_id = u.node_id
         WHERE u.outcome = 'ok' AND u.earning = 1 AND u.finished_at >= $1 AND u.finished_at < $2
         GROUP BY p.address ORDER BY p.address",
    )
    .bind(start_ms)
    .bind(end_ms)
    .fetch_all(c)
    .await)?;
    let unassigned: i64 = on_tx!(&mut tx, |c| {
        sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(u.bytes_up + u.bytes_down), 0) AS BIGINT) FROM usage_records u
         WHERE u.outcome = 'ok' AND u.finished_at >= $1 AND u.finished_at < $2
           AND (u.earning = 0
                OR NOT EXISTS (SELECT 1 FROM payout_addresses p WHERE p.node_id = u.node_id))",
    )
    .bind(start_ms)
    .bind(end_ms)
    .fetch_one(c)
    .await
    })?;
    let mut payouts = Vec::new();
    for (text, bytes) in rows {
        let address = Address::parse(&text)
            .map_err(|_| LedgerError::Corrupt(format!("payout address {text}")))?;
        let bytes = bytes as u64;
        let amount = math::reward(bytes, reward_per_gib).ok_or(LedgerError::Overflow)?;
        payouts.push((address, bytes, amount));
    }
    let paid: Vec<(Address, u128)> = payouts
        .iter()
        .filter(|p| p.2 > 0)
        .map(|p| (p.0, p.2))
        .collect();
    let tree = MerkleTree::build(&paid);
    let root = tree.as_ref().map(|t| hex32(&t.root()));
    let total_bytes: u64 = payouts.iter().map(|p| p.1).sum();
    let total_amount = payouts
        .iter()
        .try_fold(0u128, |acc, p| acc.checked_add(p.2))
        .ok_or(LedgerError::Overflow)?;
    on_tx!(&mut tx, |c| {
        sqlx::query(
        "INSERT INTO epochs (epoch, start_ms, end_ms, reward_per_gib, total_bytes, unassigned_bytes, total_amount, merkle_root, closed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(epoch)
    .bind(start_ms)
    .bind(end_ms)
    .bind(reward_per_gib.to_string())
    .bind(total_bytes as i64)
    .bind(unassigned)
    .bind(total_amount.to_string())
    .bind(&root)
    .bind(now_ms())
    .execute(c)
    .await
    .map(drop)
    })?;
    for (address, bytes, amount) in &payouts {
        let proof = match (&tree, paid.iter().position(|(a, _)| a == address)) {
            (Some(t), Some(i)) => t.proof(i).iter().map(hex32).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        let proof = serde_json::to_string(&proof).unwrap_or_default();
        on_tx!(&mut tx, |c| {
            sqlx::query(
            "INSERT INTO epoch_payouts (epoch, address, bytes, amount, proof) VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(epoch)
        .bind(address.to_checksum())
        .bind(*bytes as i64)
        .bind(amount.to_string())
        .bind(&proof)
        .execute(c)
        .await
        .map(drop)
        })?;
    }
    credit_nodes(&mut tx, epoch, start_ms, end_ms, reward_per_gib).await?;
    tx.commit().await?;
    debug_assert!(tree.as_ref().is_none_or(|t| paid
        .iter()
        .enumerate()
        .all(|(i, (a, v))| merkle::verify(&t.root(), &leaf_hash(a, *v), &t.proof(i)))));
    Ok(Some(ClosedEpoch {
        epoch,
        start_ms,
        end_ms,
        total_bytes,
        unassigned_bytes: unassigned as u64,
        total_amount,
        root,
        payouts,
    }))
}

/// The reward terms for one node: the current rate, and what its payout
/// address can claim from the last closed epoch.
pub async fn terms_for(
    db: &Db,
    node_id: &str,
    epoch_len: Duration,
    reward_per_gib: u128,
) -> Result<spareband_protocol::RewardTerms, LedgerError> {
    let row: Option<(i64, Option<String>)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT e.epoch, (SELECT ep.amount FROM epoch_payouts ep
                JOIN payout_addresses p ON p.address = ep.address
                WHERE ep.epoch = e.epoch AND p.node_id = $1)
         FROM epochs e ORDER BY e.epoch DESC LIMIT 1",
    )
    .bind(node_id)
    .fetch_optional(p)
    .await)?;
    let (last_closed_epoch, claimable) = match row {
        Some((epoch, amount)) => (
            epoch.max(0) as u64,
            amount.and_then(|a| a.parse().ok()).unwrap_or(0),
        ),
        None => (0, 0),
    };
    Ok(spareband_protocol::RewardTerms {
        epoch_ms: len_ms(epoch_len) as u64,
        reward_per_gib,
        last_closed_epoch,
        claimable,
        earning: true,
    })
}

/// What the epoch paid each node, for the dashboard and its export: each
/// node's own bytes at the epoch's rate, rounded down. An address shared by
/// several nodes is paid the rounded-down sum of their bytes, so it can get
/// up to one base unit per node more than the sum of the nodes' figures.
async fn credit_nodes(
    tx: &mut Tx<'_>,
    epoch: i64,
    start_ms: i64,
    end_ms: i64,
    reward_per_gib: u128,
) -> Result<(), LedgerError> {
    let rows: Vec<(String, String, i64, Option<String>)> = on_tx!(&mut *tx, |c| sqlx::query_as(
        "SELECT u.node_id, p.address, CAST(SUM(u.bytes_up + u.bytes_down) AS BIGINT), t.earned
         FROM usage_records u JOIN payout_addresses p ON p.node_id = u.node_id
         LEFT JOIN node_totals t ON t.node_id = u.node_id
         WHERE u.outcome = 'ok' AND u.earning = 1 AND u.finished_at >= $1 AND u.finished_at < $2
         GROUP BY u.node_id, p.address, t.earned",
    )
    .bind(start_ms)
    .bind(end_ms)
    .fetch_all(c)
    .await)?;
    for (node, address, bytes, before) in rows {
        let bytes = bytes as u64;
        let amount = math::reward(bytes, reward_per_gib).ok_or(LedgerError::Overflow)?;
        let before: u128 = before.and_then(|s| s.parse().ok()).unwrap_or(0);
        let earned = before.checked_add(amount).ok_or(LedgerError::Overflow)?;
        on_tx!(&mut *tx, |c| {
            sqlx::query(
                "INSERT INTO epoch_nodes (epoch, node_id, address, bytes, amount) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(epoch)
            .bind(&node)
            .bind(&address)
            .bind(bytes as i64)
            .bind(amount.to_string())
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO node_totals (node_id, earned) VALUES ($1, $2)
                 ON CONFLICT (node_id) DO UPDATE SET earned = excluded.earned",
            )
            .bind(&node)
            .bind(pad_amount(earned))
            .execute(&mut *c)
            .await?;
        });
    }
    Ok(())
}

/// The number of the epoch that ends at `end_ms` (exclusive): the aligned
/// index of its last instant. For an epoch that ends on a boundary this is
/// `end / length - 1`, its start's index.
pub fn number_of(end_ms: i64, epoch_len: Duration) -> i64 {
    (end_ms - 1).div_euclid(len_ms(epoch_len))
}

/// The advisory lock key epoch closing holds on PostgreSQL ("sbepoch" in
/// ASCII, so no other lock in the database is likely to share it).
const EPOCH_CLOSE_LOCK: i64 = 0x0073_6265_706f_6368;

/// Closes every epoch that is due: epochs are aligned to multiples of
/// `epoch_len` in Unix time, and closed [`CLOSE_DELAY`] after they end.
pub async fn close_due(
    db: &Db,
    epoch_len: Duration,
    reward_per_gib: u128,
) -> Result<Vec<ClosedEpoch>, LedgerError> {
    let len = len_ms(epoch_len);
    let due_before = now_ms() - CLOSE_DELAY.as_millis() as i64;
    let mut closed = Vec::new();
    loop {
        let end = match last_end(db).await? {
            // The end of the epoch after the last one closed (after an early
            // close, the rest of that epoch's time goes to the next one).
            Some(last) => (number_of(last, epoch_len) + 2) * len,
            // The first epoch takes everything before the latest boundary.
            None => Epoch::at(due_before, epoch_len).start_ms,
        };
        if end > due_before {
            break;
        }
        match close_epoch(db, end, epoch_len, reward_per_gib).await? {
            Some(c) => closed.push(c),
            None => break,
        }
    }
    Ok(closed)
}

#[cfg(test)]
mod tests;
