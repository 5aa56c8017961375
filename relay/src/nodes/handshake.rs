//! A node's handshake: its Hello, the relay's challenge, and its signed
//! Auth. Every way it can fail is a [`HandshakeError`], which says what the
//! node is told (its [`RefuseCode`] and words) and whether trying again can
//! help.

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use rand::RngCore;
use spareband_protocol::identity::verify_challenge;
use spareband_protocol::{
    ClientKind, DecodeError, NodeId, NodeMessage, RefuseCode, RelayMessage, MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
};

/// What the handshake learned.
pub(super) struct Authenticated {
    pub public_key: [u8; 32],
    pub id: NodeId,
    pub kind: ClientKind,
    pub agent: String,
    pub max_concurrency: u16,
}

/// Why a handshake failed. The node is at fault in every case but
/// [`HandshakeError::Connection`].
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// A frame did not decode.
    #[error("malformed frame: {0}")]
    Malformed(DecodeError),
    /// A text or other non-binary frame.
    #[error("expected a binary frame")]
    NotBinary,
    /// The connection closed or failed mid-handshake.
    #[error("{0}")]
    Connection(String),
    /// The first frame was not Hello.
    #[error("the first frame must be Hello, not {0}")]
    NotHello(&'static str),
    /// The node speaks a protocol version outside this relay's range.
    #[error("this relay speaks protocol versions {MIN_PROTOCOL_VERSION} and later, the node speaks {0}: update the node")]
    Version(u16),
    /// The second frame was not Auth.
    #[error("the second frame must be Auth")]
    NotAuth,
    /// The signature is not over one of this relay's origins.
    #[error("the challenge signature does not verify for this relay's origins ({}): dial the relay by one of them", .0.join(", "))]
    BadSignature(Vec<String>),
}

impl HandshakeError {
    /// The code the node is refused with.
    pub fn code(&self) -> RefuseCode {
        match self {
            HandshakeError::Version(_) => RefuseCode::IncompatibleVersion,
            HandshakeError::BadSignature(_) => RefuseCode::BadSignature,
            _ => RefuseCode::ProtocolViolation,
        }
    }

    /// Whether the same node connecting again may pass: only when the
    /// connection itself failed.
    pub fn retryable(&self) -> bool {
        matches!(self, HandshakeError::Connection(_))
    }
}

async fn next_message(socket: &mut WebSocket) -> Result<NodeMessage, HandshakeError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Binary(b))) => {
                return NodeMessage::decode(&b).map_err(HandshakeError::Malformed)
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(_)) => return Err(HandshakeError::NotBinary),
            Some(Err(e)) => return Err(HandshakeError::Connection(e.to_string())),
            None => return Err(HandshakeError::Connection("closed".into())),
        }
    }
}

/// The node's Hello and signed Auth. The signature must be over one of this
/// relay's own origins (fixed at start, never taken from the request), so a
/// relay that passes a node's challenge on cannot be that node elsewhere.
pub(super) async fn handshake(
    socket: &mut WebSocket,
    origins: &[String],
) -> Result<Authenticated, HandshakeError> {
    let (version, kind, agent) = match next_message(socket).await? {
        NodeMessage::Hello {
            version,
            client,
            agent,
        } => (version, client, agent),
        other => return Err(HandshakeError::NotHello(other.name())),
    };
    // A newer node is served at this relay's version, which the Challenge
    // tells it (each version only adds what a node may send or must do), so
    // relays and nodes can be upgraded in either order. An older one lacks
    // what this relay relies on.
    if version < MIN_PROTOCOL_VERSION {
        return Err(HandshakeError::Version(version));
    }
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    let challenge = RelayMessage::Challenge {
        version: version.min(PROTOCOL_VERSION),
        nonce,
    };
    socket
        .send(Message::Binary(challenge.encode()))
        .await
        .map_err(|e| HandshakeError::Connection(e.to_string()))?;
    let NodeMessage::Auth {
        public_key,
        signature,
        max_concurrency,
    } = next_message(socket).await?
    else {
        return Err(HandshakeError::NotAuth);
    };
    let id = origins
        .iter()
        .find_map(|origin| verify_challenge(&public_key, &signature, &nonce, origin, version))
        .ok_or_else(|| HandshakeError::BadSignature(origins.to_vec()))?;
    Ok(Authenticated {
        public_key,
        id,
        kind,
        agent,
        max_concurrency,
    })
}
