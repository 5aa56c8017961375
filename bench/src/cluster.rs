//! Scenario 8, the cluster's hop: two relay processes on one PostgreSQL
//! database and one NATS server, native nodes on relay B only. The same 1
//! KiB requests go to relay B (its own nodes) and to relay A (which has none,
//! so every job hops to B over HTTP/2), in the same run, at 64 customers for
//! throughput and at one customer for latency. Goals (issue 14): the hop
//! costs at most 25 % of the local requests/s and adds at most 1 ms at p50.
//!
//! On this machine's two cores every process shares the same CPUs, so the
//! hop's cost shows as the CPU relay A spends, taken from everything else.

use crate::load;
use crate::procs::Relay;
use crate::report::{ms, Row};
use crate::scenarios::{Plan, CUSTOMERS};
use anyhow::Context;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Nodes on relay B.
const NODES: usize = 2;
/// The secret both relays share (a benchmark's, never a deployment's).
const SECRET: &str = "spareband-bench-cluster-secret-0123456789";
/// Lowest share of the local requests/s a hop may keep.
const HOP_RATE_GOAL: f64 = 0.75;
/// Most the hop may add at p50, microseconds.
const HOP_P50_GOAL_US: u64 = 1000;

/// The scenario.
pub async fn run(plan: &Plan, target: SocketAddr) -> anyhow::Result<Vec<Row>> {
    let pg = spareband_test_postgres::PgServer::start_with(&[])?;
    let db = pg.fresh_database().await?;
    let nats = spareband_tests::nats::Nats::start();
    let extra = format!(
        "database_url = \"{db}\"\ncluster_url = \"{}\"\n",
        nats.url()
    );
    let env = [("SPAREBAND_CLUSTER_SECRET", SECRET)];
    let a = Relay::start_configured(&[target], false, &extra, &env).await?;
    let b = Relay::start_configured(&[target], false, &extra, &env).await?;
    let _nodes = b.start_nodes(NODES, target)?;
    b.wait_nodes(NODES as u64, Duration::from_secs(30)).await?;
    // Relay A learns B's free slots from B's heartbeat (every 2 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h: serde_json::Value = serde_json::from_str(&a.get("/healthz").await?)?;
        if h["cluster"]["relays"] == 2 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "relay A never saw relay B: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Both relays take relay A's key: they share the database.
    let spec = load::Spec {
        auth: Some(format!("Bearer {}", a.key)),
        ..b.raw(target, 1024)
    };
    let run = |relay: &Relay, conns: usize| {
        let endpoint = relay.endpoint();
        let spec = spec.clone();
        async move { load::run(&endpoint, &spec, conns, plan.warmup, plan.load).await }
    };
    let local = run(&b, CUSTOMERS).await.context("local")?;
    let hop = run(&a, CUSTOMERS).await.context("hop")?;
    let local_one = run(&b, 1).await.context("local, one customer")?;
    let hop_one = run(&a, 1).await.context("hop, one customer")?;
    for (r, what) in [
        (&local, "local"),
        (&hop, "hop"),
        (&local_one, "local, one"),
        (&hop_one, "hop, one"),
    ] {
        r.explain(what);
    }
    let s = "8 cluster hop";
    let ratio = hop.rps / local.rps.max(1.0);
    let added = hop_one.p50_us.saturating_sub(local_one.p50_us);
    Ok(vec![
        Row::goal(
            s,
            &format!("requests/s through another relay (1 KiB, {CUSTOMERS} customers, {NODES} nodes, no TLS)"),
            format!("{:.0} ({ratio:.2}x)", hop.rps),
            format!("{:.0} on the nodes' relay", local.rps),
            &format!(">= {HOP_RATE_GOAL}x"),
            ratio >= HOP_RATE_GOAL,
        ),
        Row::goal(
            s,
            "p50 at one customer, through another relay",
            format!("{} (+{})", ms(hop_one.p50_us), ms(added)),
            ms(local_one.p50_us),
            "+1 ms at most",
            added <= HOP_P50_GOAL_US,
        ),
        Row::goal(
            s,
            "failed requests",
            (hop.errors + hop_one.errors).to_string(),
            (local.errors + local_one.errors).to_string(),
            "0",
            hop.errors + hop_one.errors == 0,
        ),
    ])
}
