//! Scenario 5, the ledger: usage records per second through the batching
//! writer, with its aggregates, on SQLite and on PostgreSQL in the same run,
//! and none lost on a graceful close.
//!
//! PostgreSQL is a private server the scenario starts with the default
//! settings (durable commits: fsync on, `synchronous_commit` on), or the
//! database `--database-url` names.

use crate::report::Row;
use crate::scenarios::Plan;
use spareband_ledger::clock::now_ms;
use spareband_ledger::{Db, JobOutcome, UsageRecord, UsageWriter, MAX_BATCH};
use spareband_protocol::NodeId;
use std::time::{Duration, Instant};

/// Records waiting in the writer's queue: full but bounded, so the rate
/// measured is what the writer sustains, not how fast a channel takes
/// records.
const QUEUE: u64 = 4 * MAX_BATCH as u64;
/// Distinct nodes and customers the records spread over.
const NODES: u64 = 1000;
const CUSTOMERS: u64 = 64;
/// Goals, records committed per second: SQLite's from the first ledger
/// benchmark, PostgreSQL's from issue 14.
const SQLITE_GOAL: f64 = 50_000.0;
const POSTGRES_GOAL: f64 = 100_000.0;

/// The scenario: SQLite in a temp dir, then PostgreSQL.
pub async fn run(plan: &Plan, database_url: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let mut rows = measure(plan, Db::open(dir.path()).await?, "SQLite", SQLITE_GOAL).await?;
    // Held until the PostgreSQL run is over: dropping it stops the server.
    let mut _server = None;
    let url = match database_url {
        Some(u) => u.to_string(),
        None => {
            let server = spareband_test_postgres::PgServer::start_with(&[])?;
            let url = server.fresh_database().await?;
            _server = Some(server);
            url
        }
    };
    let url = spareband_ledger::DatabaseUrl::parse(&url)?;
    anyhow::ensure!(
        url.backend() == spareband_ledger::Backend::Postgres,
        "--database-url is for the PostgreSQL figure: give a postgres:// URL"
    );
    let db = Db::connect(&url).await?;
    rows.extend(measure(plan, db, "PostgreSQL", POSTGRES_GOAL).await?);
    Ok(rows)
}

/// Feeds the writer on `db` for the plan's time; its rate and what a
/// graceful close kept.
async fn measure(plan: &Plan, db: Db, engine: &str, goal: f64) -> anyhow::Result<Vec<Row>> {
    let ledger = UsageWriter::start(db.clone(), Duration::from_secs(24 * 3600));
    let now = now_ms();
    let mut sent: u64 = 0;
    let t0 = Instant::now();
    while t0.elapsed() < plan.ledger {
        while ledger.queue_depth() < QUEUE {
            let job = spareband_relay::jobs::new_job_id(now_ms());
            let mut node = [0u8; 16];
            node[..2].copy_from_slice(&((sent % NODES) as u16).to_le_bytes());
            ledger.record(UsageRecord {
                job,
                node: NodeId(node),
                customer: 1 + (sent % CUSTOMERS) as i64,
                bytes_up: 300,
                bytes_down: 1024 + sent % 4096,
                outcome: if sent.is_multiple_of(50) {
                    JobOutcome::NodeFailed
                } else {
                    JobOutcome::Ok
                },
                started_at: now,
                finished_at: now + (sent % 1000) as i64,
                earning: true,
            });
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let window = t0.elapsed();
    let committed = sent - ledger.queue_depth();
    let t1 = Instant::now();
    ledger.close().await;
    let drain = t1.elapsed();
    let rows = spareband_ledger::inspect::usage_record_count(&db).await?;
    db.close().await;
    let rate = committed as f64 / window.as_secs_f64();
    let s = "5 ledger";
    Ok(vec![
        Row::goal(
            s,
            &format!("usage records/s committed ({engine}, batching writer, aggregates)"),
            format!("{rate:.0}"),
            String::new(),
            &format!(">= {goal:.0}"),
            rate >= goal,
        ),
        Row::goal(
            s,
            &format!("{engine}: records after graceful close (drain took {drain:.1?})"),
            format!("{rows} of {sent}"),
            String::new(),
            "all",
            rows == sent,
        ),
    ])
}
