//! `spareband-relay`: serve the relay, or manage customer keys.

// mimalloc instead of the system allocator: the job path allocates per
// request, and glibc's malloc was a tenth of the process's time at one node
// under load (docs/BENCHMARKS.md, "Under load: issue 13's goals").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spareband_ledger::{clock, rewards, DatabaseUrl, Db};
use spareband_relay::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "spareband-relay", version, about = "The Spareband relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay until SIGTERM or Ctrl-C.
    Serve {
        /// TOML config file (unknown keys are an error).
        #[arg(long, env = "SPAREBAND_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:8443).
        #[arg(long, env = "SPAREBAND_LISTEN")]
        listen: Option<SocketAddr>,
        /// Directory for the database and generated certificate (default ./data).
        #[arg(long, env = "SPAREBAND_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The ledger's database: sqlite://PATH or postgres://USER:PASSWORD@HOST/NAME
        /// (default: spareband.db in the data dir).
        #[arg(long, env = "SPAREBAND_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Serve plain HTTP; only allowed on a loopback address.
        #[arg(long, env = "SPAREBAND_INSECURE_HTTP")]
        insecure_http: bool,
        /// Also serve an HTTP proxy here (curl -x): the password is the API
        /// key, the username carries the targeting (user-country-us-session-s1).
        /// Plain HTTP: keep it on loopback or a private network.
        #[arg(long, env = "SPAREBAND_PROXY_LISTEN")]
        proxy_listen: Option<SocketAddr>,
        /// Also serve SOCKS5 here (CONNECT through native nodes; the same
        /// username and key as the proxy). Plain too: keep it private.
        #[arg(long, env = "SPAREBAND_SOCKS_LISTEN")]
        socks_listen: Option<SocketAddr>,
        /// MaxMind country database for country routing.
        #[arg(long, env = "SPAREBAND_GEOIP_DB")]
        geoip_db: Option<PathBuf>,
        /// MaxMind City database, for city and region targeting.
        #[arg(long, env = "SPAREBAND_GEOIP_CITY_DB")]
        geoip_city_db: Option<PathBuf>,
        /// MaxMind ASN database, for targeting by AS number.
        #[arg(long, env = "SPAREBAND_GEOIP_ASN_DB")]
        geoip_asn_db: Option<PathBuf>,
        /// A non-public host:port that jobs may reach (tests and development only).
        #[arg(
            long = "allow-target",
            env = "SPAREBAND_ALLOW_TARGETS",
            value_delimiter = ','
        )]
        allow_targets: Vec<String>,
        /// Requests one node may send to one site per minute (0: no cap;
        /// default 60).
        #[arg(long, env = "SPAREBAND_NODE_SITE_PER_MINUTE")]
        node_site_per_minute: Option<u32>,
        /// Nodes per IP address whose jobs earn (0: any number; default 1).
        #[arg(long, env = "SPAREBAND_EARNING_NODES_PER_IP")]
        earning_nodes_per_ip: Option<u32>,
        /// Join a cluster of relays: nats://host:port (several separated by
        /// commas). The relays share one PostgreSQL database (--database-url)
        /// and run jobs on each other's nodes; SPAREBAND_CLUSTER_SECRET (at
        /// least 32 characters, the same on every relay) must be set too.
        #[arg(long, env = "SPAREBAND_CLUSTER_URL", hide_env_values = true)]
        cluster_url: Option<String>,
    },
    /// Manage customer API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Reward epochs.
    Epochs {
        #[command(subcommand)]
        command: EpochsCommand,
    },
}

#[derive(Subcommand)]
enum EpochsCommand {
    /// Close the current epoch now (up to a moment ago, so every record of it
    /// is written) and print its payouts and Merkle root.
    Close {
        #[command(flatten)]
        store: Store,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a customer and print its new API key (shown only this once).
    Create {
        /// A name for the customer.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: Store,
        /// This key's own monthly quota of delivered bytes (0: unlimited);
        /// without it, the relay's `monthly_quota_bytes` applies.
        #[arg(long)]
        monthly_quota: Option<u64>,
    },
    /// Disable the keys of every customer with this name; a running relay
    /// refuses them within 5 seconds.
    Disable {
        /// The customer's name, as given to `keys create`.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        store: Store,
    },
}

fn load(config: Option<&PathBuf>) -> anyhow::Result<Config> {
    Ok(match config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    })
}

/// Where the offline commands find the database: a config file, and the data
/// dir that overrides it.
#[derive(clap::Args)]
struct Store {
    /// Data directory holding spareband.db (default ./data).
    #[arg(long, env = "SPAREBAND_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The ledger's database, when not spareband.db in the data dir:
    /// sqlite://PATH or postgres://USER:PASSWORD@HOST/NAME.
    #[arg(long, env = "SPAREBAND_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Config file (for the data dir or database, and the reward rate when
    /// closing an epoch).
    #[arg(long, env = "SPAREBAND_CONFIG")]
    config: Option<PathBuf>,
}

impl Store {
    fn config(self) -> anyhow::Result<Config> {
        let mut c = load(self.config.as_ref())?;
        if let Some(d) = self.data_dir {
            c.data_dir = d;
        }
        set_database_url(&mut c, self.database_url.as_deref())?;
        Ok(c)
    }
}

/// Takes `--database-url` / `SPAREBAND_DATABASE_URL` into the config. Read
/// as plain text by clap and parsed here, so that no error can echo the
/// URL (it may hold a password).
fn set_database_url(c: &mut Config, url: Option<&str>) -> anyhow::Result<()> {
    if let Some(url) = url.filter(|u| !u.trim().is_empty()) {
        c.database_url = Some(DatabaseUrl::parse(url).context("--database-url")?);
    }
    Ok(())
}

/// Opens the ledger the config names; `create` makes the data dir a
/// SQLite file goes in first.
async fn open_db(c: &Config, create: bool) -> anyhow::Result<Db> {
    let database = c.database();
    if let Some(dir) = database.sqlite_file().and_then(|f| f.parent()) {
        if create && !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    Ok(Db::connect(&database).await?)
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
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            data_dir,
            database_url,
            insecure_http,
            proxy_listen,
            socks_listen,
            geoip_db,
            geoip_city_db,
            geoip_asn_db,
            allow_targets,
            node_site_per_minute,
            earning_nodes_per_ip,
            cluster_url,
        } => {
            let mut c = load(config.as_ref())?;
            if let Some(l) = listen {
                c.listen = l;
            }
            if let Some(d) = data_dir {
                c.data_dir = d;
            }
            set_database_url(&mut c, database_url.as_deref())?;
            if insecure_http {
                c.insecure_http = true;
            }
            if proxy_listen.is_some() {
                c.proxy_listen = proxy_listen;
            }
            if socks_listen.is_some() {
                c.socks_listen = socks_listen;
            }
            if geoip_db.is_some() {
                c.geoip_db = geoip_db;
            }
            if geoip_city_db.is_some() {
                c.geoip_city_db = geoip_city_db;
            }
            if geoip_asn_db.is_some() {
                c.geoip_asn_db = geoip_asn_db;
            }
            c.allow_targets.extend(allow_targets);
            if let Some(n) = node_site_per_minute {
                c.node_site_per_minute = n;
            }
            if let Some(n) = earning_nodes_per_ip {
                c.earning_nodes_per_ip = n;
            }
            if let Some(u) = cluster_url.filter(|u| !u.is_empty()) {
                c.cluster_url = Some(spareband_relay::cluster::ClusterUrl(u));
            }
            // Read here rather than through clap, so `--help` and errors can
            // never echo it; hashed at once.
            for (var, slot) in [
                ("SPAREBAND_ADMIN_TOKEN", &mut c.admin_token),
                ("SPAREBAND_METRICS_TOKEN", &mut c.metrics_token),
            ] {
                if let Ok(t) = std::env::var(var) {
                    if !t.is_empty() {
                        *slot = Some(
                            spareband_relay::secret::SecretToken::from_clear(&t).context(var)?,
                        );
                    }
                }
            }
            if let Ok(t) = std::env::var("SPAREBAND_CLUSTER_SECRET") {
                if !t.is_empty() {
                    c.cluster_secret = Some(
                        spareband_relay::secret::ClusterSecret::new(&t).map_err(|_| {
                            anyhow::anyhow!(
                                "SPAREBAND_CLUSTER_SECRET must be at least {} characters",
                                spareband_relay::secret::MIN_CLUSTER_SECRET_LEN
                            )
                        })?,
                    );
                }
            }
            let relay = spareband_relay::start(c)
                .await
                .context("starting the relay")?;
            let token = relay.shutdown_token();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: finishing in-flight work");
                token.cancel();
            });
            relay.wait().await;
            tracing::info!("relay stopped");
            Ok(())
        }
        Command::Epochs {
            command: EpochsCommand::Close { store },
        } => {
            let c = store.config()?;
            c.validate()?;
            let db = open_db(&c, false).await?;
            let end = clock::now_ms() - rewards::CLOSE_DELAY.as_millis() as i64;
            let closed = rewards::close_epoch(&db, end, c.epoch(), c.reward_per_gib.0).await?;
            db.close().await;
            match closed {
                None => println!(
                    "Nothing to close: epoch {} (in progress) is already closed, or no time has passed since the last close.",
                    rewards::number_of(end, c.epoch())
                ),
                Some(e) => {
                    println!(
                        "Closed epoch {} ({} to {}): {} bytes paid, {} bytes unassigned, {} base units in all, root {}",
                        e.epoch,
                        clock::utc_time(e.start_ms),
                        clock::utc_time(e.end_ms),
                        e.total_bytes,
                        e.unassigned_bytes,
                        e.total_amount,
                        e.root.as_deref().unwrap_or("(none: nothing to pay)")
                    );
                    for (a, bytes, amount) in &e.payouts {
                        println!("  {a} {bytes} bytes {amount}");
                    }
                }
            }
            Ok(())
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    name,
                    store,
                    monthly_quota,
                },
        } => {
            let c = store.config()?;
            let db = open_db(&c, true).await?;
            let (id, key) = db.create_customer(&name).await?;
            if let Some(q) = monthly_quota {
                db.set_monthly_quota(id, Some(q)).await?;
            }
            db.close().await;
            println!("{}", key.reveal());
            eprintln!("Created customer '{name}'. This key is shown only once: store it now.");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Disable { name, store },
        } => {
            let c = store.config()?;
            let db = open_db(&c, false).await?;
            let ids = db.customers_named(&name).await?;
            for id in &ids {
                db.disable_customer(*id).await?;
            }
            db.close().await;
            if ids.is_empty() {
                anyhow::bail!("no enabled customer is named '{name}'");
            }
            eprintln!(
                "Disabled {} key(s) of customer '{name}'. A running relay refuses them within {} seconds.",
                ids.len(),
                spareband_relay::api::KEY_CACHE_TTL.as_secs()
            );
            Ok(())
        }
    }
}
