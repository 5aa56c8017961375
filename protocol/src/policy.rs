//! The target policy: which URLs a node may fetch. One function, used by the
//! relay before dispatch, by the native node before every request and every
//! redirect hop, and by the browser node before every `fetch`.
//!
//! A node lends its owner's network position, so the policy refuses anything
//! that could reach the owner's machine or LAN: loopback, private, link-local,
//! CGNAT, unspecified, multicast, reserved and documentation addresses (IPv4
//! and IPv6, including IPv4 embedded in IPv6), and names that only resolve
//! locally. The only way past it is an explicit allow list of `host:port`
//! entries, which tests use for targets on loopback.
//!
//! URLs are parsed by a WHATWG URL parser ([`WebUrl`]): the `url` crate in
//! the relay and the native node, the browser's own `URL` in the browser
//! node, the same parser its `fetch` uses. So odd IPv4 spellings such as
//! `127.1`, `0x7f.0.0.1` or `2130706433` are seen as the address a browser
//! would connect to, not as names. The rules below decide on the parsed
//! parts, once for both parsers.

use crate::limits::MAX_URL_BYTES;
use crate::weburl::{host_kind, port_or_default, HostKind, WebUrl};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ports a target may use unless it is allow-listed.
pub const DEFAULT_ALLOWED_PORTS: &[u16] = &[80, 443, 8080, 8443];

/// Name suffixes that only ever resolve inside a home or company network.
const LOCAL_SUFFIXES: &[&str] = &[
    "localhost",
    "local",
    "internal",
    "home.arpa",
    "lan",
    "localdomain",
    "intranet",
    "corp",
    "home",
];

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The URL does not parse.
    #[error("the URL is not valid: {0}")]
    Unparsable(String),
    /// The URL is longer than [`MAX_URL_BYTES`].
    #[error("the URL is longer than {MAX_URL_BYTES} bytes")]
    TooLong,
    /// Only http and https are fetched.
    #[error("scheme '{0}' is not allowed; only http and https are")]
    Scheme(String),
    /// No host in the URL.
    #[error("the URL has no host")]
    NoHost,
    /// `user:password@` in the URL.
    #[error("credentials in the URL are not allowed")]
    Userinfo,
    /// The address is not a public one.
    #[error("{0} is not a public address")]
    Address(IpAddr),
    /// The name only resolves locally (localhost, .local, single label…).
    #[error("'{0}' is a local name, not a public host")]
    LocalName(String),
    /// The port is not on the allowed list.
    #[error("port {0} is not allowed (allowed: {1})")]
    Port(u16, String),
    /// A port list that widens what nodes fetch.
    #[error("port {0} cannot be allowed: nodes fetch only ports 80, 443, 8080 and 8443")]
    PortNotAllowed(u16),
    /// An allow-list entry is not `host:port`.
    #[error("allow-list entry '{0}' is not host:port")]
    BadAllowEntry(String),
    /// Browser nodes fetch only `https` on port 443 (see
    /// [`Target::fits_browser`]).
    #[error("browser nodes fetch only https on port 443, not {0}")]
    BrowserNeedsHttps(String),
}

impl PolicyError {
    /// A short name for the kind of refusal, the same whichever parser read
    /// the URL (the hostile-URL matrix compares parsers by it).
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Unparsable(_) => "unparsable",
            PolicyError::TooLong => "too-long",
            PolicyError::Scheme(_) => "scheme",
            PolicyError::NoHost => "no-host",
            PolicyError::Userinfo => "credentials",
            PolicyError::Address(_) => "address",
            PolicyError::LocalName(_) => "local-name",
            PolicyError::Port(..) => "port",
            PolicyError::PortNotAllowed(_) => "port-not-allowed",
            PolicyError::BadAllowEntry(_) => "allow-entry",
            PolicyError::BrowserNeedsHttps(_) => "browser-needs-https",
        }
    }
}

/// A URL that passed the policy, parsed by `U`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<U> {
    /// The parsed, normalised URL. Send exactly this, so the request goes
    /// where the check looked.
    pub url: U,
    /// Host part as checked.
    pub host: TargetHost,
    /// Port, explicit or the scheme's default.
    pub port: u16,
    /// Whether the allow list let it through (then resolved addresses are not
    /// checked either).
    pub allow_listed: bool,
}

/// A target parsed by the `url` crate (the relay and the native node).
#[cfg(feature = "url")]
pub type Target = Checked<url::Url>;

impl<U: WebUrl> Checked<U> {
    /// Whether a browser node may take this target: `https` on port 443, or
    /// an allow-listed test target. A browser extension cannot see the
    /// address a name resolves to before it connects (Chromium's
    /// declarativeNetRequest sees URLs only), but a TLS certificate check
    /// defeats split-horizon and rebinding names: a device in the owner's
    /// home cannot show a valid certificate for the customer's name. Port 443
    /// only, so that no other service of the home is ever spoken to.
    pub fn fits_browser(&self) -> bool {
        self.allow_listed || (self.url.scheme() == "https" && self.port == 443)
    }
}

/// The host of a checked target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    /// An IP literal, already known to be public (or allow-listed).
    Ip(IpAddr),
    /// A DNS name: its addresses must pass [`TargetPolicy::check_resolved`].
    Domain(String),
}

/// The policy: the fixed rules plus an allow list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allow: Vec<(String, u16)>,
    /// A narrower port list than [`DEFAULT_ALLOWED_PORTS`] (a relay may
    /// choose one); empty means the default.
    ports: Vec<u16>,
    /// Only targets that [`Target::fits_browser`] (the browser node's policy).
    browser: bool,
}

impl TargetPolicy {
    /// The policy with no allow list: public hosts only. This is the only
    /// policy a release build of a node may use.
    pub fn public_only() -> Self {
        TargetPolicy::default()
    }

    /// A policy that also lets the given `host:port` entries through (for
    /// targets on loopback in tests and development builds).
    #[cfg(feature = "url")]
    pub fn with_allow_list<S: AsRef<str>>(entries: &[S]) -> Result<Self, PolicyError> {
        Self::with_allow_list_in::<url::Url, S>(entries)
    }

    /// [`TargetPolicy::with_allow_list`], read by the parser `U`.
    pub fn with_allow_list_in<U: WebUrl, S: AsRef<str>>(
        entries: &[S],
    ) -> Result<Self, PolicyError> {
        let mut allow = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            let bad = || PolicyError::BadAllowEntry(entry.to_string());
            if entry.contains('/') || entry.contains('@') {
                return Err(bad());
            }
            // An explicit port is required; a parser hides a default one (80).
            let explicit = entry
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !explicit {
                return Err(bad());
            }
            let url = U::parse(&format!("http://{entry}/")).map_err(|_| bad())?;
            let port = port_or_default(&url).ok_or_else(bad)?;
            let host = normalized_host(&url).ok_or_else(bad)?;
            allow.push((host, port));
        }
        Ok(TargetPolicy {
            allow,
            ports: Vec::new(),
            browser: false,
        })
    }

    /// The same policy allowing only `ports`, which must be among
    /// [`DEFAULT_ALLOWED_PORTS`]: a relay may narrow what it sends to nodes,
    /// never widen it (nodes refuse other ports anyway).
    pub fn with_ports(mut self, ports: &[u16]) -> Result<Self, PolicyError> {
        if let Some(p) = ports.iter().find(|p| !DEFAULT_ALLOWED_PORTS.contains(p)) {
            return Err(PolicyError::PortNotAllowed(*p));
        }
        self.ports = ports.to_vec();
        Ok(self)
    }

    /// The same policy for a browser node: only targets that
    /// [`Target::fits_browser`].
    pub fn for_browser(mut self) -> Self {
        self.browser = true;
        self
    }

    /// The ports targets may use.
    pub fn ports(&self) -> &[u16] {
        if self.ports.is_empty() {
            DEFAULT_ALLOWED_PORTS
        } else {
            &self.ports
        }
    }

    /// Whether a host name appears in the allow list (on any port). A node's
    /// resolver uses this: the port was already checked with the URL.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allow.iter().any(|(h, _)| *h == host)
    }

    /// The allow-list entries, as `host:port`.
    pub fn allow_list(&self) -> Vec<String> {
        self.allow.iter().map(|(h, p)| format!("{h}:{p}")).collect()
    }

    /// Checks a URL string. On success the returned [`Target`] holds the
    /// parsed URL to use.
    #[cfg(feature = "url")]
    pub fn check(&self, url: &str) -> Result<Target, PolicyError> {
        self.check_in(url)
    }

    /// Checks a parsed URL (for example a redirect's `Location` resolved
    /// against the previous URL).
    #[cfg(feature = "url")]
    pub fn check_url(&self, url: url::Url) -> Result<Target, PolicyError> {
        self.check_parsed(url)
    }

    /// [`TargetPolicy::check`], parsed by `U`.
    pub fn check_in<U: WebUrl>(&self, url: &str) -> Result<Checked<U>, PolicyError> {
        if url.len() > MAX_URL_BYTES {
            return Err(PolicyError::TooLong);
        }
        self.check_parsed(U::parse(url).map_err(PolicyError::Unparsable)?)
    }

    /// [`TargetPolicy::check_url`] for a URL parsed by `U`: every rule of
    /// the policy, in one place for every parser.
    pub fn check_parsed<U: WebUrl>(&self, url: U) -> Result<Checked<U>, PolicyError> {
        if url.href().len() > MAX_URL_BYTES {
            return Err(PolicyError::TooLong);
        }
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(PolicyError::Scheme(other.to_string())),
        }
        if url.has_credentials() {
            return Err(PolicyError::Userinfo);
        }
        let port = port_or_default(&url).ok_or(PolicyError::NoHost)?;
        // A name with an empty label ("127.0.0.1..", "a..b") is no DNS name,
        // and the URL parser would not read it as the address it resembles.
        // Nor is one with other characters: Chromium's parser writes a space
        // in a host as "%20" where the url crate refuses the URL, and both
        // must come to the same verdict (the browser suite compares them).
        let host_key = normalized_host(&url).ok_or_else(|| {
            PolicyError::Unparsable(
                "the host is not a DNS name (letters, digits, '-' and '_' between dots)".into(),
            )
        })?;
        let allow_listed = self.allow.iter().any(|(h, p)| *h == host_key && *p == port);
        // Typed from the normalised host, and what only an address may look
        // like is refused unless it is one: the verdict must not rest on how
        // closely a browser's parser follows the URL standard (a parser that
        // left "127.0.0.1." as a name must not make it a public one).
        let host = match host_kind(&host_key) {
            HostKind::V4(ip) => TargetHost::Ip(IpAddr::V4(ip)),
            HostKind::V6(ip) => TargetHost::Ip(IpAddr::V6(ip)),
            HostKind::Domain(name) if name.starts_with('[') || ends_in_a_number(name) => {
                return Err(PolicyError::Unparsable(format!(
                    "'{name}' has the form of an address but is not a valid one"
                )))
            }
            HostKind::Domain(_) => TargetHost::Domain(host_key.clone()),
        };
        if !allow_listed {
            match &host {
                TargetHost::Ip(ip) => {
                    if !is_public_ip(*ip) {
                        return Err(PolicyError::Address(*ip));
                    }
                }
                TargetHost::Domain(name) => {
                    if is_local_name(name) {
                        return Err(PolicyError::LocalName(name.clone()));
                    }
                }
            }
            if !self.ports().contains(&port) {
                let list: Vec<String> = self.ports().iter().map(u16::to_string).collect();
                return Err(PolicyError::Port(port, list.join(", ")));
            }
        }
        let target = Checked {
            url,
            host,
            port,
            allow_listed,
        };
        if self.browser && !target.fits_browser() {
            return Err(PolicyError::BrowserNeedsHttps(format!(
                "{}://…:{}",
                target.url.scheme(),
                target.port
            )));
        }
        Ok(target)
    }

    /// Checks one address a target's name resolved to. A node must connect
    /// only to addresses that pass, and a relay refuses the target when any
    /// answer fails.
    pub fn check_resolved<U>(&self, target: &Checked<U>, addr: IpAddr) -> Result<(), PolicyError> {
        if target.allow_listed || is_public_ip(addr) {
            Ok(())
        } else {
            Err(PolicyError::Address(addr))
        }
    }
}

/// The host as the allow list compares it: lower case, without its one
/// optional trailing dot, IPv6 in brackets. `None` when a name has an empty
/// label (two trailing dots, or two dots in a row) or a character other
/// than a letter, digit, `-` or `_` (names arrive in punycode).
fn normalized_host(url: &impl WebUrl) -> Option<String> {
    let host = url.host_str()?;
    let host = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() || (!host.starts_with('[') && !host.split('.').all(label_ok)) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// The URL standard's test for a host that must be an IPv4 address: its last
/// label is a number, in decimal or `0x` hex.
fn ends_in_a_number(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last.strip_prefix("0x");
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        || hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A domain as block and deny lists hold it: lower case, no trailing dot,
/// no leading `*.` or `.`; `None` unless it is a plain DNS name.
pub fn normalize_domain(entry: &str) -> Option<String> {
    let d = entry
        .trim()
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= crate::limits::MAX_DOMAIN_BYTES
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(d)
}

/// The entry of `list` (normalised domains) that covers `host`: the domain
/// itself or any name under it.
pub fn covering_domain<'a>(list: &'a [String], host: &str) -> Option<&'a str> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.iter()
        .find(|d| {
            host == **d
                || (host.len() > d.len()
                    && host.ends_with(d.as_str())
                    && host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
        .map(String::as_str)
}

/// Whether a DNS name can only mean something inside a local network.
pub fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || !name.contains('.') {
        // Single-label names resolve through the local search domain.
        return true;
    }
    LOCAL_SUFFIXES
        .iter()
        .any(|s| name == *s || name.ends_with(&format!(".{s}")))
}

/// Whether an address is a public unicast address that a stranger may reach
/// through a node.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_ipv4(v4),
        IpAddr::V6(v6) => is_public_ipv6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

/// Public IPv4: not in any special-purpose range of the IANA registry that is
/// not globally reachable.
pub fn is_public_ipv4(ip: Ipv4Addr) -> bool {
    const BLOCKED: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network", unspecified
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // CGNAT shared space
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local (and cloud metadata)
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation
        ([203, 0, 113, 0], 24),  // documentation
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved and broadcast
    ];
    !BLOCKED.iter().any(|(net, p)| in_v4(ip, *net, *p))
}

/// Public IPv6: global unicast (2000::/3) outside special ranges, and never an
/// address that embeds IPv4 (mapped, compatible, NAT64, 6to4, Teredo), whose
/// IPv4 part could name a private host.
pub fn is_public_ipv6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Only global unicast 2000::/3 is public at all; this excludes ::, ::1,
    // IPv4-mapped and -compatible, 64:ff9b::/96, fc00::/7, fe80::/10, ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    let blocked = [
        (s[0] == 0x2001 && s[1] == 0x0db8), // documentation
        (s[0] == 0x2001 && s[1] < 0x0200),  // IETF protocol assignments, incl. Teredo 2001::/32
        (s[0] == 0x2002),                   // 6to4: embeds an IPv4 address
        (s[0] == 0x3fff && s[1] < 0x1000),  // documentation (3fff::/20)
    ];
    !blocked.iter().any(|b| *b)
}

#[cfg(test)]
mod tests;
