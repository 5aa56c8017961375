//! What the dashboard shows, read from the ledger's aggregates (see
//! `migrations/0004_aggregates.sql`): each view is a handful of indexed
//! queries whatever the number of nodes or records.

use crate::clock::{now_ms, Epoch, HOUR_MS};
use crate::db::on_pool;
use crate::rewards::math;
use crate::{Db, LedgerError};
use serde::Serialize;
use std::time::Duration;

/// Hours in the overview chart.
pub const OVERVIEW_HOURS: i64 = 24;
/// Hours in a node's chart.
pub const NODE_HOURS: i64 = 48;
/// Customers in the overview's top list.
pub const TOP_CUSTOMERS: i64 = 10;
/// Most rows on one page of the nodes table.
pub const MAX_PER_PAGE: u32 = 500;
/// Rows on a page unless asked otherwise.
pub const DEFAULT_PER_PAGE: u32 = 50;

/// The epoch in progress, and what its bytes earn.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentEpoch {
    /// Its number: start / length (what receipts carry, and what closed
    /// epochs are numbered by).
    pub index: i64,
    /// Start, Unix ms.
    pub start_ms: i64,
    /// End, Unix ms.
    pub end_ms: i64,
    /// Length in seconds.
    pub epoch_secs: u64,
    /// Reward per GiB in base units (a string: JSON numbers stop at 2^53).
    pub reward_per_gib: String,
    /// The same rate as a number, for the earnings columns.
    #[serde(skip)]
    rate: u128,
}

impl CurrentEpoch {
    /// The epoch in progress now, for epochs of `len` paying
    /// `reward_per_gib`.
    pub fn now(len: Duration, reward_per_gib: u128) -> Self {
        let e = Epoch::at(now_ms(), len);
        CurrentEpoch {
            index: e.index,
            start_ms: e.start_ms,
            end_ms: e.end_ms,
            epoch_secs: len.as_secs(),
            reward_per_gib: reward_per_gib.to_string(),
            rate: reward_per_gib,
        }
    }
}

/// One hour of traffic.
#[derive(Debug, Clone, Serialize)]
pub struct Hour {
    /// Start of the hour, Unix ms.
    pub start_ms: i64,
    /// Delivered bytes.
    pub bytes: i64,
    /// Jobs delivered.
    pub jobs_ok: i64,
    /// Jobs the node failed or timed out.
    pub jobs_failed: i64,
}

/// An hour as stored: hour number, bytes, jobs delivered, jobs failed.
type HourRow = (i64, i64, i64, i64);

impl From<HourRow> for Hour {
    fn from((hour, bytes, jobs_ok, jobs_failed): HourRow) -> Self {
        Hour {
            start_ms: hour * HOUR_MS,
            bytes,
            jobs_ok,
            jobs_failed,
        }
    }
}

/// Fills the hours in `[first, last]` that have no row with zeros.
fn fill_hours(first: i64, last: i64, rows: Vec<Hour>) -> Vec<Hour> {
    let mut rows = rows.into_iter().peekable();
    (first..=last)
        .map(|h| match rows.peek() {
            Some(r) if r.start_ms == h * HOUR_MS => rows.next().expect("peeked"),
            _ => Hour {
                start_ms: h * HOUR_MS,
                bytes: 0,
                jobs_ok: 0,
                jobs_failed: 0,
            },
        })
        .collect()
}

/// A customer's last 24 hours.
#[derive(Debug, Clone, Serialize)]
pub struct TopCustomer {
    /// Customer id.
    pub id: i64,
    /// Customer name.
    pub name: String,
    /// Requests (job attempts that reached a node).
    pub requests: i64,
    /// Delivered bytes.
    pub bytes: i64,
}

/// The overview page.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Nodes connected now.
    pub nodes_online: usize,
    /// Nodes ever seen.
    pub nodes_known: i64,
    /// Jobs finished per second over the last minute.
    pub requests_per_second: f64,
    /// Delivered bytes in the last 24 hours (the chart's hours).
    pub bytes_24h: i64,
    /// Jobs delivered in the last 24 hours.
    pub jobs_ok_24h: i64,
    /// Jobs the nodes failed in the last 24 hours.
    pub jobs_failed_24h: i64,
    /// `jobs_ok / (jobs_ok + jobs_failed)` over 24 hours; null without jobs.
    pub success_rate_24h: Option<f64>,
    /// Per hour, oldest first.
    pub hours: Vec<Hour>,
    /// By requests, last 24 hours.
    pub top_customers: Vec<TopCustomer>,
    /// The epoch in progress.
    pub epoch: CurrentEpoch,
    /// Usage records not yet written.
    pub ledger_queue: u64,
}

fn rate(ok: i64, failed: i64) -> Option<f64> {
    (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64)
}

/// What only the running relay knows, for the overview.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    /// Nodes connected now.
    pub nodes_online: usize,
    /// Jobs finished per second over the last minute.
    pub requests_per_second: f64,
    /// Usage records not yet written.
    pub ledger_queue: u64,
}

/// The overview.
pub async fn overview(db: &Db, live: Live, epoch: CurrentEpoch) -> Result<Overview, LedgerError> {
    let last = now_ms().div_euclid(HOUR_MS);
    let first = last - (OVERVIEW_HOURS - 1);
    let rows: Vec<HourRow> = on_pool!(db, |p| {
        sqlx::query_as(
        "SELECT hour, bytes, jobs_ok, jobs_failed FROM hour_totals WHERE hour >= $1 ORDER BY hour",
    )
    .bind(first)
    .fetch_all(p)
    .await
    })?;
    let hours = fill_hours(
        first,
        last,
        rows.into_iter()
            .filter(|r| r.0 <= last)
            .map(Hour::from)
            .collect(),
    );
    let top: Vec<(i64, String, i64, i64)> = on_pool!(db, |p| sqlx::query_as(
        "SELECT h.customer_id, COALESCE(c.name, ''), CAST(SUM(h.requests) AS BIGINT) AS r,
                CAST(SUM(h.bytes) AS BIGINT)
         FROM customer_hours h LEFT JOIN customers c ON c.id = h.customer_id
         WHERE h.hour >= $1 GROUP BY h.customer_id, c.name ORDER BY r DESC, h.customer_id LIMIT $2",
    )
    .bind(first)
    .bind(TOP_CUSTOMERS)
    .fetch_all(p)
    .await)?;
    let nodes_known: i64 = on_pool!(db, |p| sqlx::query_scalar("SELECT COUNT(*) FROM nodes")
        .fetch_one(p)
        .await)?;
    let (bytes, ok, failed) = hours.iter().fold((0, 0, 0), |a, h| {
        (a.0 + h.bytes, a.1 + h.jobs_ok, a.2 + h.jobs_failed)
    });
    Ok(Overview {
        nodes_online: live.nodes_online,
        nodes_known,
        requests_per_second: live.requests_per_second,
        bytes_24h: bytes,
        jobs_ok_24h: ok,
        jobs_failed_24h: failed,
        success_rate_24h: rate(ok, failed),
        hours,
        top_customers: top
            .into_iter()
            .map(|(id, name, requests, bytes)| TopCustomer {
                id,
                name,
                requests,
                bytes,
            })
            .collect(),
        epoch,
        ledger_queue: live.ledger_queue,
    })
}

/// A column the nodes table sorts by; the SQL for each is fixed here, never
/// taken from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Node id.
    NodeId,
    /// Payout address.
    Payout,
    /// Extension or native.
    Kind,
    /// Country.
    Country,
    /// Online first (descending), then last seen.
    LastSeen,
    /// Delivered bytes this epoch.
    BytesEpoch,
    /// Delivered bytes all time.
    BytesAll,
    /// Jobs delivered.
    JobsOk,
    /// Jobs failed.
    JobsFailed,
    /// Success rate.
    SuccessRate,
    /// Earnings this epoch (bytes this epoch of nodes with a payout address).
    EarningsEpoch,
    /// Earnings all time (closed epochs, then this epoch's bytes).
    EarningsAll,
}

impl SortKey {
    /// Every key with its name in the API.
    pub const ALL: &'static [(&'static str, SortKey)] = &[
        ("node_id", SortKey::NodeId),
        ("payout_address", SortKey::Payout),
        ("client_kind", SortKey::Kind),
        ("country", SortKey::Country),
        ("last_seen", SortKey::LastSeen),
        ("bytes_epoch", SortKey::BytesEpoch),
        ("bytes_all", SortKey::BytesAll),
        ("jobs_ok", SortKey::JobsOk),
        ("jobs_failed", SortKey::JobsFailed),
        ("success_rate", SortKey::SuccessRate),
        ("earnings_epoch", SortKey::EarningsEpoch),
        ("earnings_all", SortKey::EarningsAll),
    ];

    /// The key named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    /// The `ORDER BY` expressions; `cur_epoch` is the expression of this
    /// epoch's bytes ([`cur_epoch_bytes`]): PostgreSQL does not take an
    /// output column's alias inside an expression.
    fn sql(self, cur_epoch: &str) -> Vec<String> {
        let cols: &[&str] = match self {
            SortKey::NodeId => &["n.node_id"],
            SortKey::Payout => &["COALESCE(p.address, '')"],
            SortKey::Kind => &["n.client_kind"],
            SortKey::Country => &["COALESCE(n.country, '')"],
            SortKey::LastSeen => &["n.online", "n.last_seen"],
            SortKey::BytesEpoch => &["{cur_epoch}"],
            SortKey::BytesAll => &["COALESCE(t.bytes_up + t.bytes_down, 0)"],
            SortKey::JobsOk => &["COALESCE(t.jobs_ok, 0)"],
            SortKey::JobsFailed => &["COALESCE(t.jobs_failed, 0)"],
            SortKey::SuccessRate => &[
                "CASE WHEN COALESCE(t.jobs_ok + t.jobs_failed, 0) = 0 THEN -1
                 ELSE CAST(t.jobs_ok AS DOUBLE PRECISION) / (t.jobs_ok + t.jobs_failed) END",
            ],
            SortKey::EarningsEpoch => &["CASE WHEN p.address IS NULL THEN 0 ELSE {cur_epoch} END"],
            SortKey::EarningsAll => &[
                "COALESCE(t.earned, '')",
                "CASE WHEN p.address IS NULL OR n.earning = 0 THEN 0 ELSE {cur_epoch} END",
            ],
        };
        cols.iter()
            .map(|c| c.replace("{cur_epoch}", cur_epoch))
            .collect()
    }
}

/// What the nodes table asks for.
#[derive(Debug, Clone)]
pub struct NodeQuery {
    /// Sort column.
    pub sort: SortKey,
    /// Descending?
    pub desc: bool,
    /// Substring of node id, payout address or country.
    pub q: Option<String>,
    /// `extension` or `native`.
    pub kind: Option<String>,
    /// Only online (`Some(true)`) or offline nodes.
    pub online: Option<bool>,
    /// Page, from 1.
    pub page: u32,
    /// Rows per page.
    pub per_page: u32,
}

/// One node as the table shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    /// Node id.
    pub node_id: String,
    /// Where its rewards go.
    pub payout_address: Option<String>,
    /// `extension` or `native`.
    pub client_kind: String,
    /// Software agent.
    pub agent: String,
    /// GeoIP country.
    pub country: Option<String>,
    /// Connected now.
    pub online: bool,
    /// Connected, or disconnected, last; Unix ms.
    pub last_seen_ms: i64,
    /// First seen, Unix ms.
    pub first_seen_ms: i64,
    /// Delivered bytes up this epoch plus down.
    pub bytes_epoch: i64,
    /// Delivered bytes up, all time.
    pub bytes_up: i64,
    /// Delivered bytes down, all time.
    pub bytes_down: i64,
    /// Delivered bytes all time.
    pub bytes_all: i64,
    /// Jobs delivered.
    pub jobs_ok: i64,
    /// Jobs failed or timed out.
    pub jobs_failed: i64,
    /// `jobs_ok / (jobs_ok + jobs_failed)`; null without jobs.
    pub success_rate: Option<f64>,
    /// Whether its jobs earn now (false: another node on its IP address
    /// earns, and this one serves unpaid).
    pub earning: bool,
    /// This epoch's bytes at the current rate, rounded down; zero without a
    /// payout address or while not earning (such bytes are not paid). Base
    /// units.
    pub earnings_epoch: String,
    /// Closed epochs' earnings plus this epoch's. Base units.
    pub earnings_all: String,
}

/// A page of the nodes table.
#[derive(Debug, Clone, Serialize)]
pub struct NodePage {
    /// Rows matching the filter.
    pub total: i64,
    /// This page, from 1.
    pub page: u32,
    /// Rows per page.
    pub per_page: u32,
    /// The epoch the `_epoch` columns are for.
    pub epoch: CurrentEpoch,
    /// The rows.
    pub nodes: Vec<NodeRow>,
}

/// A node's bytes in the current epoch; the epoch index is a number the
/// relay computed, written into the SQL (it is never text from a request).
fn cur_epoch_bytes(epoch_index: i64) -> String {
    format!("CASE WHEN t.epoch_index = {epoch_index} THEN t.epoch_bytes ELSE 0 END")
}

/// The columns of a [`NodeRow`], read as a [`NodeColumns`].
fn node_columns(epoch_index: i64) -> String {
    format!(
        "n.node_id, p.address, n.client_kind, n.agent, n.country, n.online,
         n.last_seen, n.first_seen, {},
         COALESCE(t.bytes_up, 0), COALESCE(t.bytes_down, 0),
         COALESCE(t.jobs_ok, 0), COALESCE(t.jobs_failed, 0), t.earned, n.earning",
        cur_epoch_bytes(epoch_index)
    )
}

/// [`node_columns`] as read.
type NodeColumns = (
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    i64,
);

/// `nodes` with its totals and payout address.
const NODE_FROM: &str = "FROM nodes n
    LEFT JOIN node_totals t ON t.node_id = n.node_id
    LEFT JOIN payout_addresses p ON p.node_id = n.node_id";

fn node_row(r: NodeColumns, rate_per_gib: u128) -> NodeRow {
    let (node_id, payout, client_kind, agent, country, online, last_seen_ms, first_seen_ms) =
        (r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7);
    let (bytes_epoch, up, down, ok, failed) = (r.8, r.9, r.10, r.11, r.12);
    let earned: u128 = r.13.and_then(|s| s.parse().ok()).unwrap_or(0);
    let earning = r.14 != 0;
    let epoch_amount = if payout.is_some() && earning {
        math::reward(bytes_epoch.max(0) as u64, rate_per_gib).unwrap_or(0)
    } else {
        0
    };
    NodeRow {
        node_id,
        payout_address: payout,
        client_kind,
        agent,
        country,
        online: online != 0,
        last_seen_ms,
        first_seen_ms,
        bytes_epoch,
        bytes_up: up,
        bytes_down: down,
        bytes_all: up + down,
        jobs_ok: ok,
        jobs_failed: failed,
        success_rate: rate(ok, failed),
        earning,
        earnings_epoch: epoch_amount.to_string(),
        earnings_all: earned.saturating_add(epoch_amount).to_string(),
    }
}

/// The `WHERE` clause and its text arguments (from `$1` on).
fn filter(q: &NodeQuery) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        // Lower-cased on both sides: SQLite's LIKE ignores ASCII case,
        // PostgreSQL's does not.
        let like = format!(
            "%{}%",
            text.to_ascii_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        args.push(like);
        let n = args.len();
        clauses.push(format!(
            "(LOWER(n.node_id) LIKE ${n} ESCAPE '\\'
              OR LOWER(COALESCE(p.address, '')) LIKE ${n} ESCAPE '\\'
              OR LOWER(COALESCE(n.country, '')) LIKE ${n} ESCAPE '\\')"
        ));
    }
    if let Some(kind) = &q.kind {
        args.push(kind.clone());
        clauses.push(format!("n.client_kind = ${}", args.len()));
    }
    match q.online {
        Some(true) => clauses.push("n.online = 1".into()),
        Some(false) => clauses.push("n.online = 0".into()),
        None => {}
    }
    if clauses.is_empty() {
        (String::new(), args)
    } else {
        (format!(" WHERE {}", clauses.join(" AND ")), args)
    }
}

/// One page of the nodes table.
pub async fn nodes(db: &Db, q: &NodeQuery, epoch: CurrentEpoch) -> Result<NodePage, LedgerError> {
    let rate_per_gib = epoch.rate;
    let (clause, args) = filter(q);
    let sql = format!("SELECT COUNT(*) {NODE_FROM}{clause}");
    let total: i64 = on_pool!(db, |p| {
        let mut count = sqlx::query_scalar(&sql);
        for a in &args {
            count = count.bind(a.as_str());
        }
        count.fetch_one(p).await
    })?;
    let rows = node_rows(db, q, &clause, &args, epoch.index, true).await?;
    Ok(NodePage {
        total,
        page: q.page,
        per_page: q.per_page,
        epoch,
        nodes: rows
            .into_iter()
            .map(|r| node_row(r, rate_per_gib))
            .collect(),
    })
}

/// Every node matching the filter, in order (the CSV export).
pub async fn all_nodes(
    db: &Db,
    q: &NodeQuery,
    epoch: &CurrentEpoch,
) -> Result<Vec<NodeRow>, LedgerError> {
    let rate_per_gib = epoch.rate;
    let (clause, args) = filter(q);
    let rows = node_rows(db, q, &clause, &args, epoch.index, false).await?;
    Ok(rows
        .into_iter()
        .map(|r| node_row(r, rate_per_gib))
        .collect())
}

async fn node_rows(
    db: &Db,
    q: &NodeQuery,
    clause: &str,
    args: &[String],
    epoch_index: i64,
    paged: bool,
) -> Result<Vec<NodeColumns>, LedgerError> {
    let dir = if q.desc { "DESC" } else { "ASC" };
    let order: Vec<String> = q
        .sort
        .sql(&cur_epoch_bytes(epoch_index))
        .iter()
        .map(|c| format!("{c} {dir}"))
        .chain(std::iter::once("n.node_id ASC".to_string()))
        .collect();
    let mut sql = format!(
        "SELECT {} {NODE_FROM}{clause} ORDER BY {}",
        node_columns(epoch_index),
        order.join(", ")
    );
    if paged {
        let offset = u64::from(q.page.saturating_sub(1)) * u64::from(q.per_page);
        sql.push_str(&format!(" LIMIT {} OFFSET {offset}", q.per_page));
    }
    Ok(on_pool!(db, |p| {
        let mut query = sqlx::query_as(&sql);
        for a in args {
            query = query.bind(a.as_str());
        }
        query.fetch_all(p).await
    })?)
}

/// What one closed epoch paid a node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEpoch {
    /// Epoch number.
    pub epoch: i64,
    /// Paid bytes.
    pub bytes: i64,
    /// Amount, base units.
    pub amount: String,
    /// The address it went to.
    pub address: String,
}

/// A node's page.
#[derive(Debug, Clone, Serialize)]
pub struct NodeDetail {
    /// The table's row.
    #[serde(flatten)]
    pub row: NodeRow,
    /// Hourly traffic, oldest first.
    pub hours: Vec<Hour>,
    /// Closed epochs that paid it, newest first.
    pub epochs: Vec<NodeEpoch>,
    /// The epoch in progress.
    pub epoch: CurrentEpoch,
}

/// One node, or `None` if never seen.
pub async fn node(
    db: &Db,
    id: &str,
    epoch: CurrentEpoch,
) -> Result<Option<NodeDetail>, LedgerError> {
    let rate_per_gib = epoch.rate;
    let sql = format!(
        "SELECT {} {NODE_FROM} WHERE n.node_id = $1",
        node_columns(epoch.index)
    );
    let row: Option<NodeColumns> = on_pool!(db, |p| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(p)
        .await)?;
    let Some(r) = row else {
        return Ok(None);
    };
    let last = now_ms().div_euclid(HOUR_MS);
    let first = last - (NODE_HOURS - 1);
    let hours: Vec<HourRow> = on_pool!(db, |p| sqlx::query_as(
        "SELECT hour, bytes, jobs_ok, jobs_failed FROM node_hours
         WHERE node_id = $1 AND hour >= $2 AND hour <= $3 ORDER BY hour",
    )
    .bind(id)
    .bind(first)
    .bind(last)
    .fetch_all(p)
    .await)?;
    let hours = hours.into_iter().map(Hour::from).collect();
    let epochs: Vec<(i64, i64, String, String)> = on_pool!(db, |p| {
        sqlx::query_as(
        "SELECT epoch, bytes, amount, address FROM epoch_nodes WHERE node_id = $1 ORDER BY epoch DESC",
    )
    .bind(id)
    .fetch_all(p)
    .await
    })?;
    let epochs = epochs
        .into_iter()
        .map(|(epoch, bytes, amount, address)| NodeEpoch {
            epoch,
            bytes,
            amount,
            address,
        })
        .collect();
    Ok(Some(NodeDetail {
        row: node_row(r, rate_per_gib),
        hours: fill_hours(first, last, hours),
        epochs,
        epoch,
    }))
}

/// A closed epoch's per-node payouts (CSV export).
pub async fn epoch_nodes(db: &Db, epoch: i64) -> Result<Vec<NodeEpochRow>, LedgerError> {
    let rows: Vec<(String, String, i64, String)> = on_pool!(db, |p| {
        sqlx::query_as(
        "SELECT node_id, address, bytes, amount FROM epoch_nodes WHERE epoch = $1 ORDER BY node_id",
    )
    .bind(epoch)
    .fetch_all(p)
    .await
    })?;
    Ok(rows
        .into_iter()
        .map(|(node_id, address, bytes, amount)| NodeEpochRow {
            node_id,
            address,
            bytes,
            amount,
        })
        .collect())
}

/// One node's payout in a closed epoch.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEpochRow {
    /// Node id.
    pub node_id: String,
    /// Payout address.
    pub address: String,
    /// Paid bytes.
    pub bytes: i64,
    /// Amount, base units.
    pub amount: String,
}

/// Whether epoch `epoch` is closed.
pub async fn epoch_closed(db: &Db, epoch: i64) -> Result<bool, LedgerError> {
    let found: Option<i64> = on_pool!(db, |p| sqlx::query_scalar(
        "SELECT epoch FROM epochs WHERE epoch = $1"
    )
    .bind(epoch)
    .fetch_optional(p)
    .await)?;
    Ok(found.is_some())
}
