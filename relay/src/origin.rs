//! The relay origins nodes may sign their challenge for, fixed when the relay
//! starts and never taken from a request.
//!
//! A node signs the origin it dialled, so that a relay it connects to cannot
//! pass its challenge on to another relay and be that node there. That only
//! holds if each relay checks the signature against its *own* origin: taken
//! from the `Host` header, the origin is whatever the forwarding relay writes
//! there. So the origins are `public_url` when it is set; otherwise the
//! relay's scheme and bound port with the names it can be reached by: its
//! certificate's DNS names, its listen address, and the loopback names when
//! it listens on loopback or on every address.

use crate::config::Config;
use spareband_protocol::identity::canonical_origin;
use std::net::{IpAddr, SocketAddr};

/// Most origins derived from the certificate and listen address: each costs
/// one signature check per handshake that fails. A certificate with more
/// names than this needs `public_url`.
pub const MAX_DERIVED_ORIGINS: usize = 16;

/// The origins could not be fixed.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// Too many names to check each handshake against.
    #[error(
        "the relay could be reached by {0} origins (more than {MAX_DERIVED_ORIGINS}): set public_url to the one nodes use"
    )]
    TooMany(usize),
}

/// The origins nodes may sign for, in canonical form (`wss://host:port`).
pub fn node_origins(
    config: &Config,
    bound: SocketAddr,
    cert_names: &[String],
) -> Result<Vec<String>, OriginError> {
    if let Some(o) = config
        .public_url
        .as_deref()
        .and_then(|u| canonical_origin(u).ok())
    {
        return Ok(vec![o]);
    }
    let scheme = if config.insecure_http { "ws" } else { "wss" };
    let mut hosts: Vec<String> = cert_names
        .iter()
        // A wildcard name stands for names that cannot be listed.
        .filter(|n| !n.starts_with('*'))
        .cloned()
        .collect();
    let ip = bound.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        hosts.extend(["localhost".into(), "127.0.0.1".into(), "[::1]".into()]);
    }
    if !ip.is_unspecified() {
        hosts.push(match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        });
    }
    let mut origins: Vec<String> = hosts
        .iter()
        .filter_map(|h| canonical_origin(&format!("{scheme}://{h}:{}/", bound.port())).ok())
        .collect();
    origins.sort();
    origins.dedup();
    if origins.len() > MAX_DERIVED_ORIGINS {
        return Err(OriginError::TooMany(origins.len()));
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_alone_or_the_names_the_relay_answers_to() {
        let mut c = Config {
            public_url: Some("https://Relay.Example".into()),
            ..Config::default()
        };
        let bound: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        assert_eq!(
            node_origins(&c, bound, &["x.example".into()]).unwrap(),
            vec!["wss://relay.example:443"]
        );
        c.public_url = None;
        let o = node_origins(&c, bound, &["relay.example".into(), "*.example".into()]).unwrap();
        assert_eq!(
            o,
            vec![
                "wss://127.0.0.1:8443",
                "wss://[::1]:8443",
                "wss://localhost:8443",
                "wss://relay.example:8443"
            ]
        );
        let o = node_origins(&c, "192.0.2.5:443".parse().unwrap(), &[]).unwrap();
        assert_eq!(o, vec!["wss://192.0.2.5:443"]);
        let many: Vec<String> = (0..20).map(|i| format!("n{i}.example")).collect();
        assert!(node_origins(&c, bound, &many).is_err());
    }
}
