//! Node identity: an ed25519 key pair held by the node, a node id derived from
//! the public key, and the challenge-response that proves possession.
//!
//! The node signs the relay's fresh challenge together with the relay origin it
//! believes it is talking to and the protocol version. Binding the origin means
//! a signature captured by one relay cannot be replayed to another; binding the
//! version means a downgrade changes what is signed.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// Domain-separation prefix of every signed auth message.
pub const AUTH_CONTEXT: &[u8] = b"spareband-node-auth-v1\0";

/// A node's network-wide id: the first 16 bytes of SHA-256 of its public key,
/// shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; 16]);

impl NodeId {
    /// The id of the node holding `public_key`.
    pub fn from_public_key(public_key: &[u8; 32]) -> Self {
        Self::from_sha256(&Sha256::digest(public_key).into())
    }

    /// The id of the node whose public key has this SHA-256 digest (for the
    /// browser core, which hashes with the browser's Web Crypto).
    pub fn from_sha256(digest: &[u8; 32]) -> Self {
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        NodeId(id)
    }

    /// Parses the 32-hex-digit form.
    pub fn parse(s: &str) -> Option<Self> {
        let mut id = [0u8; 16];
        hex::decode_to_slice(s, &mut id).ok()?;
        Some(NodeId(id))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Why a relay origin could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Not a URL at all.
    #[error("relay URL is not a valid URL")]
    Unparsable,
    /// A scheme other than ws, wss, http or https.
    #[error("relay URL must start with wss://, ws://, https:// or http://")]
    Scheme,
    /// No host in the URL.
    #[error("relay URL has no host")]
    NoHost,
}

/// The canonical origin of a relay, as signed in the auth message:
/// `ws://host:port` or `wss://host:port`, host lower case, port always written.
/// `http` counts as `ws` and `https` as `wss`, because the node gateway lives at
/// the same place as the API.
#[cfg(feature = "url")]
pub fn canonical_origin(relay_url: &str) -> Result<String, OriginError> {
    canonical_origin_in::<url::Url>(relay_url)
}

/// [`canonical_origin`], parsed by `U`.
pub fn canonical_origin_in<U: crate::weburl::WebUrl>(
    relay_url: &str,
) -> Result<String, OriginError> {
    let url = U::parse(relay_url).map_err(|_| OriginError::Unparsable)?;
    let scheme = crate::weburl::websocket_scheme(url.scheme()).ok_or(OriginError::Scheme)?;
    let host = url.host_str().ok_or(OriginError::NoHost)?;
    let port = crate::weburl::port_or_default(&url).ok_or(OriginError::Scheme)?;
    Ok(format!("{scheme}://{}:{port}", host.to_ascii_lowercase()))
}

/// The origin a `Host` header names, for a relay serving TLS or not. A relay
/// must not verify a node's signature against it: `Host` is whatever the
/// peer writes, so a relay passing a node's challenge on could name its own
/// origin there. The relay checks against origins fixed at start instead.
#[cfg(feature = "url")]
pub fn origin_from_host(tls: bool, host_header: &str) -> Result<String, OriginError> {
    let scheme = if tls { "wss" } else { "ws" };
    canonical_origin(&format!("{scheme}://{host_header}/"))
}

/// The bytes a node signs: context, protocol version, origin, challenge.
pub fn auth_message(challenge: &[u8; 32], origin: &str, version: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_CONTEXT.len() + 2 + 4 + origin.len() + 32);
    m.extend_from_slice(AUTH_CONTEXT);
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(&(origin.len() as u32).to_be_bytes());
    m.extend_from_slice(origin.as_bytes());
    m.extend_from_slice(challenge);
    m
}

/// Domain-separation prefix of a payout registration.
pub const PAYOUT_CONTEXT: &[u8] = b"spareband-payout-v1\0";

/// The bytes a node signs to name its payout address.
pub fn payout_message(address: &str) -> Vec<u8> {
    [PAYOUT_CONTEXT, address.as_bytes()].concat()
}

/// Signs a payout registration.
pub fn sign_payout(key: &SigningKey, address: &str) -> [u8; 64] {
    key.sign(&payout_message(address)).to_bytes()
}

/// Checks a payout registration against the node's public key.
pub fn verify_payout(public_key: &[u8; 32], address: &str, signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(public_key)
        .and_then(|vk| {
            vk.verify_strict(&payout_message(address), &Signature::from_bytes(signature))
        })
        .is_ok()
}

/// Domain-separation prefix of a batch of job receipts.
pub const RECEIPTS_CONTEXT: &[u8] = b"spareband-receipts-v2\0";

/// The bytes a relay signs for a batch of receipts: context, the node it is
/// for, the number of receipts (u32), then each receipt's fields in order.
pub fn receipts_message(node: &NodeId, receipts: &[crate::Receipt]) -> Vec<u8> {
    let mut m = Vec::with_capacity(RECEIPTS_CONTEXT.len() + 20 + receipts.len() * 48);
    m.extend_from_slice(RECEIPTS_CONTEXT);
    m.extend_from_slice(&node.0);
    m.extend_from_slice(&(receipts.len() as u32).to_be_bytes());
    for r in receipts {
        m.extend_from_slice(&r.job.0);
        for v in [r.bytes_up, r.bytes_down, r.epoch, r.time_ms] {
            m.extend_from_slice(&v.to_be_bytes());
        }
    }
    m
}

/// Signs a batch of receipts for `node`.
pub fn sign_receipts(
    relay_key: &SigningKey,
    node: &NodeId,
    receipts: Vec<crate::Receipt>,
) -> crate::ReceiptBatch {
    let signature = relay_key
        .sign(&receipts_message(node, &receipts))
        .to_bytes();
    crate::ReceiptBatch {
        receipts,
        signature,
    }
}

/// Whether a batch was signed by `relay_key` for `node`.
pub fn verify_receipts(relay_key: &[u8; 32], node: &NodeId, b: &crate::ReceiptBatch) -> bool {
    VerifyingKey::from_bytes(relay_key)
        .and_then(|vk| {
            vk.verify_strict(
                &receipts_message(node, &b.receipts),
                &Signature::from_bytes(&b.signature),
            )
        })
        .is_ok()
}

/// Signs the auth message with the node's key.
pub fn sign_challenge(
    key: &SigningKey,
    challenge: &[u8; 32],
    origin: &str,
    version: u16,
) -> [u8; 64] {
    key.sign(&auth_message(challenge, origin, version))
        .to_bytes()
}

/// Checks a node's auth signature; on success returns the node's id.
pub fn verify_challenge(
    public_key: &[u8; 32],
    signature: &[u8; 64],
    challenge: &[u8; 32],
    origin: &str,
    version: u16,
) -> Option<NodeId> {
    let vk = VerifyingKey::from_bytes(public_key).ok()?;
    let sig = Signature::from_bytes(signature);
    vk.verify_strict(&auth_message(challenge, origin, version), &sig)
        .ok()?;
    Some(NodeId::from_public_key(public_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signed_challenge_verifies_and_names_the_node() {
        let k = key(7);
        let pk = k.verifying_key().to_bytes();
        let ch = [3u8; 32];
        let sig = sign_challenge(&k, &ch, "wss://relay.example:443", 1);
        assert_eq!(
            verify_challenge(&pk, &sig, &ch, "wss://relay.example:443", 1),
            Some(NodeId::from_public_key(&pk))
        );
    }

    #[test]
    fn a_signature_for_another_origin_version_or_challenge_fails() {
        let k = key(7);
        let pk = k.verifying_key().to_bytes();
        let ch = [3u8; 32];
        let sig = sign_challenge(&k, &ch, "wss://a.example:443", 1);
        assert!(verify_challenge(&pk, &sig, &ch, "wss://b.example:443", 1).is_none());
        assert!(verify_challenge(&pk, &sig, &ch, "wss://a.example:443", 2).is_none());
        assert!(verify_challenge(&pk, &sig, &[4u8; 32], "wss://a.example:443", 1).is_none());
        let other = key(8).verifying_key().to_bytes();
        assert!(verify_challenge(&other, &sig, &ch, "wss://a.example:443", 1).is_none());
    }

    #[test]
    fn origins_agree_between_node_url_and_relay_host_header() {
        assert_eq!(
            canonical_origin("https://Relay.Example/").unwrap(),
            "wss://relay.example:443"
        );
        assert_eq!(
            canonical_origin("wss://relay.example/v1/node").unwrap(),
            origin_from_host(true, "relay.example").unwrap()
        );
        assert_eq!(
            canonical_origin("ws://127.0.0.1:8080/v1/node").unwrap(),
            origin_from_host(false, "127.0.0.1:8080").unwrap()
        );
        assert_eq!(
            canonical_origin("http://[::1]:9/").unwrap(),
            origin_from_host(false, "[::1]:9").unwrap()
        );
        assert_eq!(canonical_origin("ftp://x/"), Err(OriginError::Scheme));
    }

    #[test]
    fn payout_registrations_verify_only_for_their_address_and_key() {
        let k = key(5);
        let pk = k.verifying_key().to_bytes();
        let a = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let sig = sign_payout(&k, a);
        assert!(verify_payout(&pk, a, &sig));
        assert!(!verify_payout(
            &pk,
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            &sig
        ));
        assert!(!verify_payout(&key(6).verifying_key().to_bytes(), a, &sig));
    }

    #[test]
    fn receipts_verify_only_unaltered_complete_and_for_their_node() {
        let relay = key(9);
        let pk = relay.verifying_key().to_bytes();
        let node = NodeId([3; 16]);
        let r = |job: u8| crate::Receipt {
            job: crate::JobId([job; 16]),
            bytes_up: 10,
            bytes_down: 20,
            epoch: 5,
            time_ms: 6,
        };
        let b = sign_receipts(&relay, &node, vec![r(1), r(2)]);
        assert!(verify_receipts(&pk, &node, &b));
        assert!(!verify_receipts(&pk, &NodeId([4; 16]), &b));
        let mut more = b.clone();
        more.receipts[1].bytes_down += 1;
        assert!(!verify_receipts(&pk, &node, &more));
        let mut fewer = b.clone();
        fewer.receipts.pop();
        assert!(!verify_receipts(&pk, &node, &fewer));
        let mut swapped = b.clone();
        swapped.receipts.reverse();
        assert!(!verify_receipts(&pk, &node, &swapped));
        assert!(!verify_receipts(
            &key(8).verifying_key().to_bytes(),
            &node,
            &b
        ));
    }

    #[test]
    fn node_id_round_trips_through_text() {
        let id = NodeId::from_public_key(&key(1).verifying_key().to_bytes());
        assert_eq!(NodeId::parse(&id.to_string()), Some(id));
        assert_eq!(NodeId::parse("xyz"), None);
    }
}
