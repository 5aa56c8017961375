//! `spareband-bench`: starts its own target, relay and nodes on loopback,
//! measures each scenario beside a baseline from the same run, and prints
//! one table. `npm run bench` builds the release binaries and runs it with
//! `--quick`; `npm run bench -- --full` runs the longer version.

mod cluster;
mod ledger;
mod load;
mod procs;
mod proxy;
mod report;
mod scenarios;
mod target;
mod tunnel;

use anyhow::Context;
use clap::Parser;
use scenarios::Plan;

#[derive(Parser)]
#[command(name = "spareband-bench", about = "Spareband's benchmark suite")]
struct Cli {
    /// Shorter runs (a few minutes in all); the default is the full run.
    #[arg(long)]
    quick: bool,
    /// Only these scenarios (comma-separated): small, one, large, slow,
    /// idle, ledger, cluster, browser.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Native nodes in the small-request scenario.
    #[arg(long, default_value_t = scenarios::SMALL_NODES)]
    nodes: usize,
    /// Idle node connections in the fan-in scenario.
    #[arg(long)]
    idle_nodes: Option<usize>,
    /// The PostgreSQL database the ledger scenario writes to (default: a
    /// private server it starts; needs Debian's postgresql package).
    #[arg(long, env = "SPAREBAND_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Also write the table as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

const ALL: [&str; 9] = [
    "small", "one", "large", "slow", "idle", "ledger", "cluster", "proxy", "browser",
];

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    for s in &cli.only {
        anyhow::ensure!(
            ALL.contains(&s.as_str()),
            "unknown scenario '{s}': use {ALL:?}"
        );
    }
    let mut plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    if let Some(n) = cli.idle_nodes {
        plan.idle_nodes = n.max(2);
    }
    let wanted = |s: &str| cli.only.is_empty() || cli.only.iter().any(|o| o == s);
    let root = std::env::current_dir()?;
    let target = target::start()?;
    // The load generator and the in-process nodes get the machine's two
    // cores, as wrk would with two threads.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rows = rt.block_on(async {
        let mut rows = Vec::new();
        let step = |name: &str| {
            eprintln!("== {name}");
        };
        if wanted("small") {
            step("small requests");
            rows.extend(
                scenarios::small(&plan, target, cli.nodes)
                    .await
                    .context("small")?,
            );
        }
        if wanted("one") {
            step("one node against a raw tunnel");
            rows.extend(scenarios::one_node(&plan, target).await.context("one")?);
        }
        if wanted("large") {
            step("large stream");
            rows.extend(scenarios::large(&plan, target).await.context("large")?);
        }
        if wanted("slow") {
            step("slow customer");
            rows.extend(scenarios::slow(&plan, target).await.context("slow")?);
        }
        if wanted("idle") {
            step("idle fan-in");
            rows.extend(scenarios::idle(&plan, target).await.context("idle")?);
        }
        if wanted("ledger") {
            step("ledger");
            rows.extend(
                ledger::run(&plan, cli.database_url.as_deref())
                    .await
                    .context("ledger")?,
            );
        }
        if wanted("cluster") {
            step("cluster hop");
            rows.extend(cluster::run(&plan, target).await.context("cluster")?);
        }
        if wanted("proxy") {
            step("proxy port");
            rows.extend(proxy::run(&plan, target).await.context("proxy")?);
        }
        if wanted("browser") {
            step("browser node");
            rows.extend(scenarios::browser(&plan, &root).await.context("browser")?);
        }
        anyhow::Ok(rows)
    })?;
    println!(
        "\nSpareband benchmarks ({} run, {} cores)\n",
        if cli.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print!("{}", report::table(&rows));
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report::json(&rows))?)?;
    }
    Ok(())
}
