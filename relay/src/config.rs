//! Relay configuration: a TOML file that rejects unknown keys, overridden by
//! command-line flags and `SPAREBAND_*` environment variables, then validated
//! once before anything starts.

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default listen address: loopback, so a first run exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
/// Default data directory (database, generated certificate).
pub const DEFAULT_DATA_DIR: &str = "./data";
/// How long a customer's `session` stays pinned to one node after its last use.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(600);
/// Longest session lifetime a request may ask for: a day, as residential
/// proxy networks allow.
pub const DEFAULT_MAX_SESSION_TTL: Duration = Duration::from_secs(86_400);
/// How long in-flight work may take to finish after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How many times a GET or HEAD is retried on another node when its node fails
/// before answering.
pub const MAX_RETRIES: usize = 2;
/// Largest response body `/v1/fetch` returns (it is base64 in JSON, in memory).
pub const MAX_JSON_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Time allowed to read a request's headers (slow clients are cut off).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default reward: one token (10^18 base units) per GiB delivered.
pub const DEFAULT_REWARD_PER_GIB: u128 = 1_000_000_000_000_000_000;
/// Default epoch length.
pub const DEFAULT_EPOCH: Duration = Duration::from_secs(24 * 3600);
/// Requests per second a key may send, sustained.
pub const DEFAULT_KEY_RATE: u32 = 1000;
/// Requests a key may send at once above its rate.
pub const DEFAULT_KEY_BURST: u32 = 2000;
/// Jobs a key may have in flight at once.
pub const DEFAULT_KEY_CONCURRENCY: u32 = 512;
/// Requests one node may send to one site per minute.
pub const DEFAULT_NODE_SITE_PER_MINUTE: u32 = 60;
/// Time allowed for a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once, all peers together. A node holds one for as
/// long as it shares (about 22 KiB each, docs/BENCHMARKS.md): 50,000 is
/// about 1.1 GiB of node connections.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 50_000;
/// Connections open at once from one address (IPv6: one /64). Room for a
/// busy customer's pool and many nodes behind one NAT, not for one peer to
/// take the relay's share.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 1_024;
/// Seconds a new connection may stay silent before its first byte.
pub const DEFAULT_FIRST_BYTE_TIMEOUT_SECS: u64 = 10;
/// Seconds a connection may receive nothing before it is closed. Nodes
/// answer the relay's ping every 20 s, so they never come near it.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 120;
/// HTTP/2 keep-alive: a ping after this much silence...
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// ...must be answered within this, or the connection is closed.
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything the relay can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address of the HTTP proxy port (`curl -x`), if any. It speaks plain
    /// HTTP, so the key (the proxy password) crosses the network in clear:
    /// keep it on loopback or a private network.
    pub proxy_listen: Option<SocketAddr>,
    /// Address of the SOCKS5 port (`curl --socks5-hostname`), if any. Like
    /// the proxy port, it takes the key in clear.
    pub socks_listen: Option<SocketAddr>,
    /// Directory for `spareband.db` and the generated certificate.
    pub data_dir: PathBuf,
    /// Where the ledger lives: `sqlite://PATH` or
    /// `postgres://USER:PASSWORD@HOST:PORT/NAME` (or
    /// `SPAREBAND_DATABASE_URL`). Without it, `spareband.db` in `data_dir`.
    /// Its password never prints.
    pub database_url: Option<crate::secret::DatabaseUrl>,
    /// Serve plain HTTP (only allowed on a loopback address).
    pub insecure_http: bool,
    /// PEM certificate chain; with `tls_key`. Without both, a self-signed
    /// certificate is generated once into the data dir.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The URL nodes use to reach this relay, when it differs from what the
    /// relay sees in their `Host` header (for example behind a TLS proxy).
    pub public_url: Option<String>,
    /// MaxMind country database for `country` routing.
    pub geoip_db: Option<PathBuf>,
    /// MaxMind City database (GeoLite2-City format), for `city` and
    /// `region` targeting.
    pub geoip_city_db: Option<PathBuf>,
    /// MaxMind ASN database (GeoLite2-ASN format), for `asn` targeting.
    pub geoip_asn_db: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` is believed (IPs or CIDRs): the client
    /// address that lockouts, per-address rules, GeoIP and logs use. A
    /// reverse proxy on the relay's own machine belongs here (127.0.0.1).
    pub trusted_proxies: Vec<String>,
    /// The bearer token `GET /metrics` requires (or `SPAREBAND_METRICS_TOKEN`);
    /// hashed as it is read. Without one, `/metrics` answers only requests
    /// made straight from the relay's machine (see [`crate::api`]).
    pub metrics_token: Option<crate::secret::MetricsToken>,
    /// Seconds a `session` stays pinned after its last use, unless the
    /// request asks for another lifetime.
    pub session_ttl_secs: u64,
    /// Longest lifetime a request may ask for its session (`session_ttl_secs`
    /// in the API, `sesstime` in the proxy username).
    pub max_session_ttl_secs: u64,
    /// Seconds in-flight work may take after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// `host:port` targets that pass the target policy although they are not
    /// public (for tests and local development only).
    pub allow_targets: Vec<String>,
    /// Reward per GiB of delivered bytes, in token base units (18 decimals),
    /// written as a decimal integer string (TOML integers stop at 2^63).
    pub reward_per_gib: TokenAmount,
    /// Epoch length in seconds; epochs align to multiples of it in Unix time.
    pub epoch_secs: u64,
    /// The admin dashboard's token (or `SPAREBAND_ADMIN_TOKEN`); hashed as it
    /// is read. Without one, `/admin` is switched off.
    pub admin_token: Option<crate::secret::AdminToken>,
    /// Domains whose jobs are refused (one per line; each covers its
    /// subdomains too).
    pub deny_list: Option<PathBuf>,
    /// Names the relay resolves from this file (`address name…` lines)
    /// before asking the system resolver.
    pub hosts_file: Option<PathBuf>,
    /// Requests per second one key may send, sustained.
    pub key_rate_per_sec: u32,
    /// Requests one key may send at once above that rate.
    pub key_burst: u32,
    /// Jobs one key may have in flight.
    pub key_max_concurrent: u32,
    /// Delivered bytes per key per calendar month (UTC) unless the key has
    /// its own quota; 0 is unlimited.
    pub monthly_quota_bytes: u64,
    /// Requests one node may send to one site per minute (0: no cap).
    pub node_site_per_minute: u32,
    /// Nodes per IP address whose jobs earn (0: any number). Others may
    /// serve, unpaid, and are told so.
    pub earning_nodes_per_ip: u32,
    /// Target ports this relay accepts: some of 80, 443, 8080 and 8443 (the
    /// ports nodes fetch); empty means all four.
    pub allowed_ports: Vec<u16>,
    /// Connections open at once, all peers together; more are closed at
    /// accept.
    pub max_connections: u32,
    /// Connections open at once from one address (IPv6: one /64); 0: no
    /// per-address cap.
    pub max_connections_per_ip: u32,
    /// Seconds a new connection may stay silent before its first byte
    /// (before TLS and HTTP protocol detection).
    pub first_byte_timeout_secs: u64,
    /// Seconds a connection may receive nothing before it is closed.
    pub idle_timeout_secs: u64,
    /// `nats://host:port` (several separated by commas): makes this relay a
    /// member of a cluster of relays: they share one PostgreSQL database
    /// and run each other's customers' jobs on their nodes. Unset: a relay
    /// on its own.
    pub cluster_url: Option<crate::cluster::ClusterUrl>,
    /// The secret relays of one cluster prove themselves to each other
    /// with, at least 32 characters, the same on every relay; required with
    /// `cluster_url`. Also `SPAREBAND_CLUSTER_SECRET`.
    pub cluster_secret: Option<crate::secret::ClusterSecret>,
    /// Usage records held in memory while the database cannot take them;
    /// at this many the relay refuses new jobs (503 `ledger_unavailable`)
    /// rather than lose records.
    pub ledger_queue_max: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("constant address"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            insecure_http: false,
            proxy_listen: None,
            socks_listen: None,
            tls_cert: None,
            tls_key: None,
            public_url: None,
            geoip_db: None,
            geoip_city_db: None,
            geoip_asn_db: None,
            trusted_proxies: Vec::new(),
            metrics_token: None,
            session_ttl_secs: DEFAULT_SESSION_TTL.as_secs(),
            max_session_ttl_secs: DEFAULT_MAX_SESSION_TTL.as_secs(),
            shutdown_grace_secs: DEFAULT_SHUTDOWN_GRACE.as_secs(),
            allow_targets: Vec::new(),
            reward_per_gib: TokenAmount(DEFAULT_REWARD_PER_GIB),
            epoch_secs: DEFAULT_EPOCH.as_secs(),
            admin_token: None,
            deny_list: None,
            hosts_file: None,
            key_rate_per_sec: DEFAULT_KEY_RATE,
            key_burst: DEFAULT_KEY_BURST,
            key_max_concurrent: DEFAULT_KEY_CONCURRENCY,
            monthly_quota_bytes: 0,
            node_site_per_minute: DEFAULT_NODE_SITE_PER_MINUTE,
            earning_nodes_per_ip: 1,
            allowed_ports: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            first_byte_timeout_secs: DEFAULT_FIRST_BYTE_TIMEOUT_SECS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
            cluster_url: None,
            cluster_secret: None,
            ledger_queue_max: spareband_ledger::usage::DEFAULT_MAX_QUEUED_RECORDS,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown keys included).
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, with the offending line; a URL's password in it masked
        /// (the line may be `database_url = "postgres://…"`).
        message: String,
    },
    /// A value is not allowed.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Reads the text of a TOML file; the error is shown with any URL
    /// password in it masked.
    fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text)
            .map_err(|e| spareband_ledger::database_url::mask_passwords(&e.to_string()))
    }

    /// Checks the combination of values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.insecure_http && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "insecure_http is only allowed on a loopback address, not {}",
                self.listen
            )));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key must be given together".into(),
            ));
        }
        for p in &self.trusted_proxies {
            parse_cidr(p).ok_or_else(|| {
                ConfigError::Invalid(format!("trusted_proxies entry '{p}' is not an IP or CIDR"))
            })?;
        }
        self.policy()?;
        if self.key_rate_per_sec == 0 || self.key_burst == 0 || self.key_max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "key_rate_per_sec, key_burst and key_max_concurrent must be at least 1".into(),
            ));
        }
        if self.epoch_secs == 0 {
            return Err(ConfigError::Invalid("epoch_secs must be at least 1".into()));
        }
        if self.max_connections == 0 || self.first_byte_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "max_connections and first_byte_timeout_secs must be at least 1".into(),
            ));
        }
        // Nodes prove they are alive once a ping interval; an idle timeout
        // shorter than two of them would cut off healthy idle nodes.
        let min_idle = 2 * spareband_protocol::limits::PING_INTERVAL.as_secs();
        if self.cluster_url.is_some() && self.cluster_secret.is_none() {
            return Err(ConfigError::Invalid(format!(
                "cluster_url needs cluster_secret (or SPAREBAND_CLUSTER_SECRET): at least {} characters, the same on every relay of the cluster",
                crate::secret::MIN_CLUSTER_SECRET_LEN
            )));
        }
        if self.ledger_queue_max == 0 {
            return Err(ConfigError::Invalid(
                "ledger_queue_max must be at least 1".into(),
            ));
        }
        if self.idle_timeout_secs < min_idle {
            return Err(ConfigError::Invalid(format!(
                "idle_timeout_secs must be at least {min_idle} (two node ping intervals)"
            )));
        }
        if let Some(url) = &self.public_url {
            spareband_protocol::identity::canonical_origin(url)
                .map_err(|e| ConfigError::Invalid(format!("public_url: {e}")))?;
        }
        Ok(())
    }

    /// The target policy: the allow list and the port list.
    pub fn policy(&self) -> Result<spareband_protocol::TargetPolicy, ConfigError> {
        spareband_protocol::TargetPolicy::with_allow_list(&self.allow_targets)
            .and_then(|p| p.with_ports(&self.allowed_ports))
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// The ledger's database: `database_url`, or `spareband.db` in the data
    /// dir.
    pub fn database(&self) -> crate::secret::DatabaseUrl {
        self.database_url
            .clone()
            .unwrap_or_else(|| crate::secret::DatabaseUrl::sqlite_in(&self.data_dir))
    }

    /// Epoch length.
    pub fn epoch(&self) -> Duration {
        Duration::from_secs(self.epoch_secs)
    }

    /// Session pin lifetime.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }

    /// Shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

impl Config {
    /// The per-key limits.
    pub fn key_limits(&self) -> crate::keylimits::Limits {
        crate::keylimits::Limits {
            rate_per_sec: self.key_rate_per_sec,
            burst: self.key_burst,
            max_concurrent: self.key_max_concurrent,
            monthly_quota_bytes: self.monthly_quota_bytes,
        }
    }
}

/// An IP network: address and prefix length.
pub type Cidr = (IpAddr, u8);

/// Parses `1.2.3.4`, `10.0.0.0/8` or `::1/128`.
pub fn parse_cidr(s: &str) -> Option<Cidr> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (
            a.trim().parse::<IpAddr>().ok()?,
            Some(l.trim().parse::<u8>().ok()?),
        ),
        None => (s.trim().parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}

/// Whether `ip` is inside `net`.
pub fn cidr_contains(net: &Cidr, ip: IpAddr) -> bool {
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u32::MAX << (32 - net.1)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u128::MAX << (128 - net.1)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nlisten_port = 3\n");
        assert!(err.unwrap_err().to_string().contains("listen_port"));
    }

    #[test]
    fn the_reward_rate_is_a_whole_number_read_once() {
        let c = toml::from_str::<Config>(
            "reward_per_gib = \"340282366920938463463374607431768211455\"\n",
        );
        assert_eq!(c.unwrap().reward_per_gib, TokenAmount(u128::MAX));
        for bad in ["\"1.5\"", "\"-1\"", "\"\"", "7"] {
            let e = toml::from_str::<Config>(&format!("reward_per_gib = {bad}\n")).unwrap_err();
            assert!(e.to_string().contains("reward_per_gib"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_database_defaults_to_the_data_dir_and_its_password_never_prints() {
        let c = toml::from_str::<Config>("data_dir = \"/srv/sb\"\n").unwrap();
        assert_eq!(c.database().to_string(), "sqlite:///srv/sb/spareband.db");
        let c = toml::from_str::<Config>(
            "database_url = \"postgres://sb:pa55word-x@db.internal:5432/spareband\"\n",
        )
        .unwrap();
        assert_eq!(c.database().backend(), spareband_ledger::Backend::Postgres);
        assert!(!format!("{c:?}").contains("pa55word-x"));
        for bad in [
            "database_url = \"mysql://sb:pa55word-x@h/x\"\n",
            "database_url = \"postgres://sb:pa55word-x@[h/x\"\n",
            "database_url = \"postgres://sb@h/x?password=pa55word-x\"\nnope = 1\n",
        ] {
            let e = Config::parse(bad).unwrap_err();
            assert!(e.contains("database_url") || e.contains("nope"), "{e}");
            assert!(!e.contains("pa55word-x"), "{e}");
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let mut c = Config {
            insecure_http: true,
            ..Config::default()
        };
        assert!(c.validate().is_ok());
        c.listen = "0.0.0.0:80".parse().unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn allowed_ports_may_only_narrow_what_nodes_fetch() {
        let mut c = Config {
            allowed_ports: vec![443],
            ..Config::default()
        };
        assert!(c.validate().is_ok());
        assert!(c.policy().unwrap().check("http://example.com/").is_err());
        c.allowed_ports = vec![443, 22];
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("port 22 cannot be allowed"), "{e}");
    }

    #[test]
    fn cidrs() {
        let n = parse_cidr("10.0.0.0/8").unwrap();
        assert!(cidr_contains(&n, "10.2.3.4".parse().unwrap()));
        assert!(!cidr_contains(&n, "11.0.0.1".parse().unwrap()));
        assert!(cidr_contains(
            &parse_cidr("::1").unwrap(),
            "::1".parse().unwrap()
        ));
        assert!(parse_cidr("10.0.0.0/33").is_none());
        assert!(parse_cidr("nope").is_none());
    }
}

/// An amount of token base units: integers only, no floating point anywhere
/// in money. Read from a decimal string, so a bad value is refused when the
/// config is read and every later use has the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenAmount(pub u128);

impl<'de> Deserialize<'de> for TokenAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.trim().parse().map(TokenAmount).map_err(|_| {
            serde::de::Error::custom(format!(
                "'{text}' must be a whole number of base units, as a decimal string"
            ))
        })
    }
}
