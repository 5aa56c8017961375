//! A private PostgreSQL server for tests and benchmarks: `initdb` into a
//! temporary folder, `postgres` on a free loopback port, trust
//! authentication (it listens on 127.0.0.1 only, for this machine's tests),
//! and a fresh database per test (`CREATE DATABASE` with a unique name), so
//! tests sharing one server stay parallel and independent.
//!
//! [`PgServer::shared`] starts one server per process on first use (about a
//! second: initdb, then start-up). A process cannot run code at exit, so a
//! small watchdog shell started with the server stops it and removes its
//! folder once this process is gone, whatever way it ended; a server from
//! [`PgServer::start`] is also stopped, and its folder removed, on drop.
//!
//! Binaries come from `SPAREBAND_PG_BIN`, else Debian's
//! `/usr/lib/postgresql/<version>/bin` (scripts/setup.sh installs the
//! `postgresql` package), else `PATH`. As root, `initdb` and `postgres`
//! run as the `postgres` OS user (they refuse root), in a folder it owns.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where Debian puts each PostgreSQL version's binaries.
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// The OS user PostgreSQL runs as when this process is root.
const PG_OS_USER: &str = "postgres";
/// The database superuser `initdb` creates (trust authentication).
pub const SUPERUSER: &str = "postgres";
/// Longest wait for a started server to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a stopped server to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting on a free port (another process may take the port
/// between our check and the server's bind).
const START_ATTEMPTS: usize = 3;
/// Connections the server accepts: every relay of a parallel test run keeps
/// a pool of its own.
const MAX_CONNECTIONS: &str = "300";

/// The watchdog: starts the server, then waits while both it and the
/// process that asked for it live; then stops it (fast shutdown) and
/// removes its folder. Arguments: the folder, the parent's pid, then the
/// server's command line.
const WATCHDOG: &str = r#"dir=$1; parent=$2; shift 2
"$@" >"$dir/log" 2>&1 &
pg=$!
while kill -0 "$pg" 2>/dev/null && [ -d "/proc/$parent" ]; do sleep 0.5; done
kill -INT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$dir"
"#;

/// Why a server could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No `initdb`/`postgres` binaries.
    #[error("PostgreSQL is not installed (no initdb under {DEBIAN_PG_ROOT}/*/bin or on PATH, and SPAREBAND_PG_BIN is not set): run scripts/setup.sh")]
    NotInstalled,
    /// A command could not be run.
    #[error("running {what}: {source}")]
    Spawn {
        /// The command.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{what} failed: {output}")]
    Failed {
        /// The command.
        what: String,
        /// What it printed.
        output: String,
    },
    /// The server did not come up.
    #[error("PostgreSQL did not start: {0}")]
    NotStarted(String),
    /// Creating a database failed.
    #[error("creating a test database: {0}")]
    Create(#[from] sqlx::Error),
}

/// A running private server.
pub struct PgServer {
    port: u16,
    dir: PathBuf,
    watchdog: Option<Child>,
    next_db: AtomicU64,
}

impl PgServer {
    /// The one server of this process, started on first use.
    ///
    /// # Panics
    /// When no server can be started (the message says why: usually
    /// PostgreSQL is not installed).
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
        match SHARED.get_or_init(|| PgServer::start().map_err(|e| e.to_string())) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts a server of its own, with durability settings off (tests
    /// lose nothing they need when the machine crashes).
    pub fn start() -> Result<PgServer, PgError> {
        Self::start_with(&[
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
        ])
    }

    /// Starts a server with these `-c name=value` settings (none: the
    /// defaults, durable commits included; what a benchmark measures).
    pub fn start_with(settings: &[(&str, &str)]) -> Result<PgServer, PgError> {
        let bin = bin_dir()?;
        let as_root = is_root();
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let mut server = Self::spawn(&bin, as_root, settings)?;
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                // Dropped: stopped, and its folder removed.
                Err(e) => last = e,
            }
        }
        Err(PgError::NotStarted(last))
    }

    /// A new cluster in a new folder, and its server starting on a free port.
    fn spawn(bin: &Path, as_root: bool, settings: &[(&str, &str)]) -> Result<PgServer, PgError> {
        let dir = tempfile::Builder::new()
            .prefix("spareband-pg-")
            .tempdir()
            .map_err(|source| PgError::Spawn {
                what: "making a temp dir".into(),
                source,
            })?
            .keep();
        if as_root {
            run(Command::new("chown").args([&format!("{PG_OS_USER}:"), path_str(&dir)]))?;
        }
        let data = dir.join("data");
        run(as_user(as_root, &bin.join("initdb")).args([
            "-D",
            path_str(&data),
            "--auth=trust",
            "--username",
            SUPERUSER,
            "--encoding=UTF8",
            "--no-locale",
            // No fsync of the new cluster: a test server lives a few minutes.
            "--no-sync",
        ]))?;
        let port = free_port().map_err(|source| PgError::Spawn {
            what: "finding a free port".into(),
            source,
        })?;
        let mut cmd = as_user(as_root, Path::new("sh"));
        cmd.args(["-c", WATCHDOG, "watchdog", path_str(&dir)])
            .arg(std::process::id().to_string())
            .arg(bin.join("postgres"))
            .args(["-D", path_str(&data), "-h", "127.0.0.1", "-p"])
            .arg(port.to_string())
            // The socket folder: the server's own, not /var/run.
            .args(["-k", path_str(&dir)])
            .args(["-c", &format!("max_connections={MAX_CONNECTIONS}")]);
        for (name, value) in settings {
            cmd.args(["-c", &format!("{name}={value}")]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| PgError::Spawn {
                what: "postgres".into(),
                source,
            })?;
        Ok(PgServer {
            port,
            dir,
            watchdog: Some(child),
            next_db: AtomicU64::new(0),
        })
    }

    /// Waits until the server accepts connections, or says why not.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            // The server writes its pid file's last line ("ready") once it
            // accepts connections; a TCP connect alone can come during
            // start-up, when it still refuses sessions.
            let pid_file =
                std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap_or_default();
            if pid_file.lines().nth(7).is_some_and(|l| l.trim() == "ready")
                && TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
            {
                return Ok(());
            }
            let exited = matches!(
                self.watchdog.as_mut().map(|c| c.try_wait()),
                Some(Ok(Some(_))) | None
            );
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                return Err(format!("port {}: {}", self.port, log.trim()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub async fn fresh_database(&self) -> Result<String, PgError> {
        use sqlx::{Connection, Executor};
        let name = format!(
            "sb_{}_{}",
            std::process::id(),
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
        let _ = admin.close().await;
        Ok(self.url(&name))
    }

    /// Stops the server (fast shutdown) and waits for its watchdog, which
    /// removes the folder.
    fn stop(&mut self) {
        let Some(mut child) = self.watchdog.take() else {
            return;
        };
        let pid_file =
            std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap_or_default();
        if let Some(pid) = pid_file.lines().next().filter(|p| !p.is_empty()) {
            let _ = Command::new("kill")
                .args(["-INT", pid.trim()])
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The folder holding `initdb` and `postgres`.
pub fn bin_dir() -> Result<PathBuf, PgError> {
    if let Some(dir) = std::env::var_os("SPAREBAND_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    // The newest version Debian installed.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .find(|d| d.join("initdb").exists() && d.join("postgres").exists())
        })
        .ok_or(PgError::NotInstalled)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` as the PostgreSQL OS user when we are root.
fn as_user(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", PG_OS_USER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), PgError> {
    let what = format!("{:?}", cmd.get_program());
    let out = cmd.output().map_err(|source| PgError::Spawn {
        what: what.clone(),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(PgError::Failed {
        what,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_private_server_gives_fresh_databases_and_goes_away_on_drop() {
        let server = PgServer::start().unwrap();
        let (a, b) = (
            server.fresh_database().await.unwrap(),
            server.fresh_database().await.unwrap(),
        );
        assert_ne!(a, b);
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&a).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(one, 1);
        c.close().await.unwrap();
        let dir = server.dir.clone();
        let port = server.port();
        drop(server);
        assert!(!dir.exists(), "the folder is removed");
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server is stopped"
        );
    }
}
