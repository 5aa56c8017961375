//! `spareband-node`: run a headless Spareband node.

// mimalloc instead of the system allocator: the job path allocates per
// request, and glibc's malloc was a tenth of the process's time at one node
// under load (docs/BENCHMARKS.md, "Under load: issue 13's goals").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::Parser;
use spareband_node::owner::OwnerControls;
use spareband_node::{Node, NodeConfig, DEFAULT_MAX_CONCURRENCY};
use spareband_protocol::controls::{self, Schedule};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "spareband-node",
    version,
    about = "A headless Spareband node",
    after_help = "Metered connections: a native node cannot tell whether its connection is \
metered (cellular, or a plan that counts data); it shares on any connection. Keep it within a \
plan with --monthly-cap-gb and --cap-reset-day, or --schedule.\n\n\
Caps count the bytes of the jobs this node serves, both ways, by the computer's local \
calendar; the counts are kept beside the key file (<key file>.usage), so a restart does not \
reset them. When a cap or the schedule pauses the node, the relay sends it no jobs until the \
next day, billing month or scheduled hour."
)]
struct Cli {
    /// The relay, e.g. https://relay.example:8443 (wss:// works too).
    /// Repeat it (or separate with commas) to name several relays of one
    /// network: the node holds one connection at a time and moves to the
    /// next relay when a connection fails or ends.
    #[arg(
        long = "relay",
        env = "SPAREBAND_RELAY_URL",
        value_delimiter = ',',
        required = true
    )]
    relays: Vec<String>,
    /// The node key file; created on first run, keep it to keep your node id.
    #[arg(long, env = "SPAREBAND_KEY_FILE", default_value = "spareband-node.key")]
    key_file: PathBuf,
    /// Accept the relay's certificate without checking it (for a relay with a
    /// self-signed certificate).
    #[arg(long, env = "SPAREBAND_INSECURE_TLS")]
    insecure_tls: bool,
    /// A non-public host:port this node may fetch (development builds only,
    /// for demos and tests; repeatable).
    #[cfg_attr(not(feature = "dev"), arg(hide = true))]
    #[arg(
        long = "allow-target",
        env = "SPAREBAND_ALLOW_TARGETS",
        value_delimiter = ','
    )]
    allow_targets: Vec<String>,
    /// A PEM file of CA certificates to trust for targets, besides the
    /// public roots (development builds only, for an https test target).
    #[cfg_attr(not(feature = "dev"), arg(hide = true))]
    #[arg(long = "trust-target-ca", env = "SPAREBAND_TRUST_TARGET_CA")]
    trust_target_ca: Option<PathBuf>,
    /// The EVM address (0x…, EIP-55) your rewards are paid to.
    #[arg(long, env = "SPAREBAND_PAYOUT")]
    payout: Option<String>,
    /// A domain this node never fetches, with its subdomains (repeatable).
    #[arg(
        long = "block-domain",
        env = "SPAREBAND_BLOCK_DOMAINS",
        value_delimiter = ','
    )]
    block_domains: Vec<String>,
    /// Most jobs run at once.
    #[arg(long, env = "SPAREBAND_MAX_CONCURRENCY", default_value_t = DEFAULT_MAX_CONCURRENCY)]
    max_concurrency: u16,
    /// Speed limit in Mbit/s, each way, for everything the node's jobs
    /// carry (0: none). The node takes and returns bytes no faster, so the
    /// relay cannot send it more.
    #[arg(long, env = "SPAREBAND_MAX_MBPS", value_parser = mbps)]
    max_mbps: Option<Speed>,
    /// Download limit in Mbit/s (answers from sites, uploads from
    /// customers), instead of --max-mbps for that direction.
    #[arg(long, env = "SPAREBAND_MAX_MBPS_DOWN", value_parser = mbps)]
    max_mbps_down: Option<Speed>,
    /// Upload limit in Mbit/s (answers to the relay, uploads to sites),
    /// instead of --max-mbps for that direction.
    #[arg(long, env = "SPAREBAND_MAX_MBPS_UP", value_parser = mbps)]
    max_mbps_up: Option<Speed>,
    /// Most data shared per day, in MB (10^6 bytes; 0: no cap).
    #[arg(long, env = "SPAREBAND_DAILY_CAP_MB", default_value_t = 0)]
    daily_cap_mb: u64,
    /// Most data shared per billing month, in GB (10^9 bytes; 0: no cap).
    #[arg(long, env = "SPAREBAND_MONTHLY_CAP_GB", default_value_t = 0.0)]
    monthly_cap_gb: f64,
    /// The day of the month your internet plan resets (1 to 31; in a
    /// shorter month, its last day).
    #[arg(long, env = "SPAREBAND_CAP_RESET_DAY", default_value_t = 1, value_parser = reset_day)]
    cap_reset_day: u8,
    /// When sharing may run, in this computer's local time, e.g.
    /// "mon-fri 18:00-23:30; sat,sun 00:00-24:00" (default: always).
    #[arg(long, env = "SPAREBAND_SCHEDULE", value_parser = schedule)]
    schedule: Option<Schedule>,
}

/// A speed limit as typed: Mbit/s, or none (`0`).
#[derive(Debug, Clone, Copy)]
struct Speed(Option<f64>);

fn mbps(text: &str) -> Result<Speed, String> {
    controls::parse_mbps(text)
        .map(Speed)
        .map_err(|e| e.to_string())
}

fn reset_day(text: &str) -> Result<u8, String> {
    let day: u8 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a day of the month"))?;
    controls::Limits::check_reset_day(day).map_err(|e| e.to_string())
}

fn schedule(text: &str) -> Result<Schedule, String> {
    Schedule::parse(text).map_err(|e| e.to_string())
}

impl Cli {
    /// The owner's controls from the flags.
    fn controls(&self) -> anyhow::Result<OwnerControls> {
        anyhow::ensure!(
            self.monthly_cap_gb.is_finite() && self.monthly_cap_gb >= 0.0,
            "--monthly-cap-gb must be 0 or more"
        );
        let both = self.max_mbps.and_then(|s| s.0);
        let or_both = |one: Option<Speed>| one.map_or(both, |s| s.0);
        Ok(OwnerControls {
            down_mbps: or_both(self.max_mbps_down),
            up_mbps: or_both(self.max_mbps_up),
            limits: controls::Limits {
                daily_cap_bytes: (self.daily_cap_mb > 0).then(|| self.daily_cap_mb * 1_000_000),
                monthly_cap_bytes: (self.monthly_cap_gb > 0.0)
                    .then_some((self.monthly_cap_gb * 1e9) as u64),
                reset_day: self.cap_reset_day,
                schedule: self.schedule.clone().unwrap_or_default(),
                allow_metered: true,
            },
        })
    }
}

/// The allow list: what `--allow-target` says, in a development build.
#[cfg(feature = "dev")]
fn allow_targets(asked: Vec<String>) -> anyhow::Result<Vec<String>> {
    Ok(asked)
}

/// A release build has no allow list: the flag is parsed only to refuse it
/// in words (SECURITY.md: release builds cannot widen the target policy).
#[cfg(not(feature = "dev"))]
fn allow_targets(asked: Vec<String>) -> anyhow::Result<Vec<String>> {
    if !asked.is_empty() {
        anyhow::bail!(
            "--allow-target (SPAREBAND_ALLOW_TARGETS) works only in a development build \
             of the node (cargo build -p spareband-node --features dev); this build never \
             fetches a non-public address"
        );
    }
    Ok(Vec::new())
}

/// The extra target roots: what `--trust-target-ca` holds, in a
/// development build.
#[cfg(feature = "dev")]
fn target_roots(
    file: Option<PathBuf>,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let Some(file) = file else {
        return Ok(Vec::new());
    };
    let roots = rustls::pki_types::CertificateDer::pem_file_iter(&file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading --trust-target-ca {}", file.display()))?;
    anyhow::ensure!(
        !roots.is_empty(),
        "--trust-target-ca {} holds no certificate",
        file.display()
    );
    Ok(roots)
}

/// A release build trusts the public roots only.
#[cfg(not(feature = "dev"))]
fn target_roots(
    file: Option<PathBuf>,
) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    if file.is_some() {
        anyhow::bail!(
            "--trust-target-ca (SPAREBAND_TRUST_TARGET_CA) works only in a development build \
             of the node (cargo build -p spareband-node --features dev)"
        );
    }
    Ok(Vec::new())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let controls = cli.controls()?;
    let allow_targets = allow_targets(cli.allow_targets)?;
    let extra_target_roots = target_roots(cli.trust_target_ca)?;
    let node = Node::new(NodeConfig {
        relays: cli.relays,
        key_file: cli.key_file.clone(),
        insecure_tls: cli.insecure_tls,
        allow_targets,
        max_concurrency: cli.max_concurrency,
        payout: cli.payout,
        blocked_domains: cli.block_domains,
        bind: None,
        extra_target_roots,
        controls,
        clock: None,
    })
    .context("starting the node")?;
    tracing::info!(node = %node.id(), key_file = %cli.key_file.display(), "node ready");
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: letting running jobs finish");
        token.cancel();
    });
    // On a worker thread, not in `block_on`: the connection loop spawns
    // every job, and a spawn from a worker stays on that worker's queue,
    // where one from the main thread wakes a worker through the kernel.
    tokio::spawn(async move { node.run(stop).await })
        .await
        .context("the node's task panicked")??;
    tracing::info!("node stopped");
    Ok(())
}
