//! A parsed URL as the target policy and the relay-address rules read it,
//! whichever WHATWG URL parser the build has.
//!
//! The relay and the native node parse with the `url` crate (feature `url`).
//! The browser node parses with the browser's own `URL`, the very parser its
//! `fetch` uses, and so leaves the `url` crate and its Unicode tables out of
//! the extension's core (issue 16). Both parsers implement the same standard;
//! the rules that decide on the parts live once, in this crate, and the
//! hostile-URL matrix (`policy/hostile-urls.json`) is run through both: by
//! `cargo test` here and by the browser suite in Chromium and Firefox.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What a WHATWG URL parser gives back, as far as the rules need it.
pub trait WebUrl: Sized {
    /// Parses `input` as an absolute URL; the error is the parser's words.
    fn parse(input: &str) -> Result<Self, String>;
    /// The whole URL, serialized (what is fetched).
    fn href(&self) -> &str;
    /// The scheme, lower case, without its `:`.
    fn scheme(&self) -> &str;
    /// Whether the URL carries a user name or a password.
    fn has_credentials(&self) -> bool;
    /// The host as serialized: names lower case and in punycode, IPv4 in
    /// dotted decimal, IPv6 in brackets; `None` when there is none.
    fn host_str(&self) -> Option<&str>;
    /// The port when written and not the scheme's default.
    fn port(&self) -> Option<u16>;
    /// The path, starting with `/` for http(s) and ws(s).
    fn path(&self) -> &str;
}

/// A host, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind<'a> {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address.
    V6(Ipv6Addr),
    /// A DNS name, as serialized.
    Domain(&'a str),
}

/// The type of a serialized host. A WHATWG parser reads any host of a
/// special scheme whose last label is a number as IPv4 and writes it back in
/// dotted decimal, so a host that reads as dotted decimal is an address,
/// never a name.
pub fn host_kind(host: &str) -> HostKind<'_> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if let Ok(v6) = inner.parse() {
            return HostKind::V6(v6);
        }
    }
    match host.parse() {
        Ok(v4) => HostKind::V4(v4),
        Err(_) => HostKind::Domain(host),
    }
}

/// The port a scheme uses when none is written.
pub fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// The WebSocket scheme a relay address's scheme stands for: the node
/// gateway lives where the API does, so `https` means `wss` and `http`
/// means `ws` (each with the same default port).
pub fn websocket_scheme(scheme: &str) -> Option<&'static str> {
    match scheme {
        "https" | "wss" => Some("wss"),
        "http" | "ws" => Some("ws"),
        _ => None,
    }
}

/// The port a URL connects to: the written one or its scheme's default.
pub fn port_or_default(url: &impl WebUrl) -> Option<u16> {
    url.port().or_else(|| default_port(url.scheme()))
}

/// The `url` crate's parser (the relay and the native node).
#[cfg(feature = "url")]
impl WebUrl for url::Url {
    fn parse(input: &str) -> Result<Self, String> {
        url::Url::parse(input).map_err(|e| e.to_string())
    }
    fn href(&self) -> &str {
        self.as_str()
    }
    fn scheme(&self) -> &str {
        url::Url::scheme(self)
    }
    fn has_credentials(&self) -> bool {
        !self.username().is_empty() || self.password().is_some()
    }
    fn host_str(&self) -> Option<&str> {
        url::Url::host_str(self)
    }
    fn port(&self) -> Option<u16> {
        url::Url::port(self)
    }
    fn path(&self) -> &str {
        url::Url::path(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_typed_by_their_serialized_form() {
        assert_eq!(host_kind("127.0.0.1"), HostKind::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(host_kind("[::1]"), HostKind::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(host_kind("example.com"), HostKind::Domain("example.com"));
        // Not what a parser writes for an address, so a name here; the
        // policy types the host without its trailing dot, and refuses a
        // name that ends in a number (policy::tests).
        assert_eq!(host_kind("127.0.0.1."), HostKind::Domain("127.0.0.1."));
        assert_eq!(host_kind("[zz]"), HostKind::Domain("[zz]"));
    }
}
