//! The browser node's one error type. Every error the core throws to the
//! extension, and every reason it shows for not reaching the relay, is a
//! [`NodeError`]: it knows which side failed and whether trying again can
//! help, and becomes a JS `Error` (with `code`, `side` and `retryable`) in
//! one place, at the boundary.

use spareband_protocol::RefuseCode;

/// Which side an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The owner's input (settings, the relay address).
    Owner,
    /// The relay refused the node or broke the protocol.
    Relay,
    /// The connection to the relay failed or went silent.
    Network,
    /// The browser refused something the node needs.
    Browser,
    /// This build of the extension is broken.
    Build,
}

impl Side {
    /// The name JS sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Owner => "owner",
            Side::Relay => "relay",
            Side::Network => "network",
            Side::Browser => "browser",
            Side::Build => "build",
        }
    }
}

/// Why the node refused a request of the extension, or cannot reach its
/// relay. The text is shown to the owner as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// A settings change was refused; the words say which field and why.
    #[error("{0}")]
    Settings(String),
    /// The relay address cannot be dialled.
    #[error("the relay address is unusable: {0}")]
    RelayAddress(#[from] spareband_protocol::gateway::GatewayUrlError),
    /// The relay refused the node, in its own words.
    #[error("{message}")]
    Refused {
        /// The relay's reason.
        code: RefuseCode,
        /// The relay's words.
        message: String,
    },
    /// The relay closed the connection, giving this reason.
    #[error("{0}")]
    RelayClosed(String),
    /// The relay sent a frame this node cannot read.
    #[error("the relay sent a malformed frame ({0})")]
    MalformedFrame(String),
    /// The connection closed before the relay said anything.
    #[error("connection failed")]
    ConnectionFailed,
    /// Nothing came from the relay for the dead-peer timeout.
    #[error("the relay stopped answering")]
    Silent,
    /// The browser refused an API the node needs (its words).
    #[error("{0}")]
    Browser(String),
    /// This build's target allow list does not parse.
    #[error("{0}")]
    Build(spareband_protocol::PolicyError),
}

impl NodeError {
    /// Which side failed.
    pub fn side(&self) -> Side {
        match self {
            NodeError::Settings(_) | NodeError::RelayAddress(_) => Side::Owner,
            NodeError::Refused { .. }
            | NodeError::RelayClosed(_)
            | NodeError::MalformedFrame(_) => Side::Relay,
            NodeError::ConnectionFailed | NodeError::Silent => Side::Network,
            NodeError::Browser(_) => Side::Browser,
            NodeError::Build(_) => Side::Build,
        }
    }

    /// Whether the same thing, tried again later, may work.
    pub fn retryable(&self) -> bool {
        match self {
            NodeError::Settings(_) | NodeError::RelayAddress(_) | NodeError::Build(_) => false,
            NodeError::Refused { code, .. } => matches!(
                code,
                RefuseCode::ShuttingDown | RefuseCode::HandshakeTimeout
            ),
            NodeError::RelayClosed(_)
            | NodeError::MalformedFrame(_)
            | NodeError::ConnectionFailed
            | NodeError::Silent
            | NodeError::Browser(_) => true,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Settings(_) => "invalid_settings",
            NodeError::RelayAddress(_) => "bad_relay_address",
            NodeError::Refused { .. } => "relay_refused",
            NodeError::RelayClosed(_) => "relay_closed",
            NodeError::MalformedFrame(_) => "relay_protocol",
            NodeError::ConnectionFailed => "connection_failed",
            NodeError::Silent => "relay_silent",
            NodeError::Browser(_) => "browser",
            NodeError::Build(_) => "build",
        }
    }
}

impl From<crate::patch::PatchError> for NodeError {
    fn from(e: crate::patch::PatchError) -> Self {
        NodeError::Settings(e.0)
    }
}

/// The one conversion to JS: an `Error` whose `message` is the owner's
/// words, with `code`, `side` and `retryable` beside it.
#[cfg(target_arch = "wasm32")]
impl From<NodeError> for wasm_bindgen::JsValue {
    fn from(e: NodeError) -> Self {
        use wasm_bindgen::JsValue;
        let js = js_sys::Error::new(&e.to_string());
        let set = |k: &str, v: JsValue| {
            let _ = js_sys::Reflect::set(&js, &JsValue::from_str(k), &v);
        };
        set("code", JsValue::from_str(e.code()));
        set("side", JsValue::from_str(e.side().as_str()));
        set("retryable", JsValue::from_bool(e.retryable()));
        js.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_errors_are_not_retried_and_network_ones_are() {
        let e = NodeError::Settings("Payout address: bad.".into());
        assert_eq!(
            (e.side(), e.retryable(), e.code()),
            (Side::Owner, false, "invalid_settings")
        );
        assert_eq!(e.to_string(), "Payout address: bad.");
        assert!(NodeError::ConnectionFailed.retryable());
        assert_eq!(NodeError::Silent.side(), Side::Network);
        let refused = |code| NodeError::Refused {
            code,
            message: "no".into(),
        };
        assert!(!refused(RefuseCode::IncompatibleVersion).retryable());
        assert!(refused(RefuseCode::ShuttingDown).retryable());
        assert_eq!(refused(RefuseCode::BadSignature).to_string(), "no");
    }

    #[test]
    fn texts_stay_as_the_owner_saw_them() {
        assert_eq!(
            NodeError::MalformedFrame("x".into()).to_string(),
            "the relay sent a malformed frame (x)"
        );
        assert_eq!(NodeError::ConnectionFailed.to_string(), "connection failed");
        assert_eq!(NodeError::Silent.to_string(), "the relay stopped answering");
    }
}
