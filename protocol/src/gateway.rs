//! The WebSocket URL of a relay's node gateway, from what an owner may type
//! (`https://relay.example`, `wss://relay.example/v1/node`, or the `http`/`ws`
//! forms for a relay on loopback). Both nodes dial the URL this builds.

use crate::weburl::WebUrl;
use crate::NODE_GATEWAY_PATH;

/// Why a relay address cannot be turned into a gateway URL (the owner's
/// input is wrong; retrying does not help).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayUrlError {
    /// Not a URL at all.
    #[error("{input}: {reason}")]
    Unparsable {
        /// What was given.
        input: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A scheme other than http, https, ws and wss.
    #[error("scheme '{0}' is not supported; use https:// or wss://")]
    Scheme(String),
}

/// The relays in what an owner typed: addresses separated by commas, spaces
/// or new lines, blanks dropped, each at most once, in the order given.
/// Checking each is [`gateway_url`]'s job; the count against
/// [`crate::limits::MAX_RELAYS`] is the caller's, which knows how to say it.
pub fn relay_list(typed: &str) -> Vec<&str> {
    let mut list: Vec<&str> = Vec::new();
    for r in typed.split(|c: char| c == ',' || c.is_whitespace()) {
        if !r.is_empty() && !list.contains(&r) {
            list.push(r);
        }
    }
    list
}

/// `http(s)://host[:port][/path]` or `ws(s)://…` to the gateway's WebSocket
/// URL: `https`/`wss` become `wss`, `http`/`ws` become `ws`, and an address
/// without a path gets [`NODE_GATEWAY_PATH`]. A given path is kept (a relay
/// behind a proxy may serve the gateway elsewhere).
#[cfg(feature = "url")]
pub fn gateway_url(relay: &str) -> Result<String, GatewayUrlError> {
    gateway_url_in::<url::Url>(relay)
}

/// [`gateway_url`], parsed by `U`.
pub fn gateway_url_in<U: WebUrl>(relay: &str) -> Result<String, GatewayUrlError> {
    let relay = relay.trim();
    let url = U::parse(relay).map_err(|reason| GatewayUrlError::Unparsable {
        input: relay.to_string(),
        reason,
    })?;
    let scheme = crate::weburl::websocket_scheme(url.scheme())
        .ok_or_else(|| GatewayUrlError::Scheme(url.scheme().to_string()))?;
    // The four schemes are special alike: after the scheme a URL is written
    // the same way, so only the scheme changes.
    let mut out = format!("{scheme}{}", &url.href()[url.scheme().len()..]);
    if url.path().is_empty() || url.path() == "/" {
        // The path starts at the first '/' after "://": a serialized
        // authority has none (a '/' in user info is percent-encoded).
        let authority = scheme.len() + "://".len();
        let path = out[authority..]
            .find('/')
            .map_or(out.len(), |i| authority + i);
        let end = (path + 1).min(out.len());
        out.replace_range(path..end, NODE_GATEWAY_PATH);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_list_splits_on_commas_spaces_and_lines_and_drops_repeats() {
        assert_eq!(
            relay_list(" https://a.example, https://b.example\nhttps://a.example ,,"),
            ["https://a.example", "https://b.example"]
        );
        assert!(relay_list(" , \n").is_empty());
    }

    #[test]
    fn http_schemes_become_websocket_schemes() {
        assert_eq!(
            gateway_url("https://relay.example").unwrap(),
            "wss://relay.example/v1/node"
        );
        assert_eq!(
            gateway_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/v1/node"
        );
        assert_eq!(
            gateway_url("wss://relay.example:8443").unwrap(),
            "wss://relay.example:8443/v1/node"
        );
        assert_eq!(
            gateway_url("ws://localhost").unwrap(),
            "ws://localhost/v1/node"
        );
    }

    #[test]
    fn a_trailing_slash_is_no_path() {
        assert_eq!(
            gateway_url("https://relay.example/").unwrap(),
            "wss://relay.example/v1/node"
        );
        assert_eq!(
            gateway_url("  http://127.0.0.1:9/ \n").unwrap(),
            "ws://127.0.0.1:9/v1/node"
        );
    }

    #[test]
    fn a_given_path_is_kept() {
        assert_eq!(
            gateway_url("wss://relay.example/v1/node").unwrap(),
            "wss://relay.example/v1/node"
        );
        assert_eq!(
            gateway_url("https://proxy.example/spareband/gw").unwrap(),
            "wss://proxy.example/spareband/gw"
        );
        assert_eq!(
            gateway_url("https://proxy.example/spareband/").unwrap(),
            "wss://proxy.example/spareband/"
        );
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(matches!(
            gateway_url("relay.example"),
            Err(GatewayUrlError::Unparsable { .. })
        ));
        assert!(matches!(
            gateway_url(""),
            Err(GatewayUrlError::Unparsable { .. })
        ));
        assert_eq!(
            gateway_url("ftp://relay.example"),
            Err(GatewayUrlError::Scheme("ftp".into()))
        );
        assert_eq!(
            gateway_url("ftp://x").unwrap_err().to_string(),
            "scheme 'ftp' is not supported; use https:// or wss://"
        );
        assert!(gateway_url("https://").is_err());
    }
}
