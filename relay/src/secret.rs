//! Secrets that never print: the operator's tokens, kept only as hashes.
//! Customer API keys and the database URL (its password) live with their
//! storage, in the ledger crate ([`ApiKey`], [`DatabaseUrl`]), and print
//! masked.

use sha2::{Digest, Sha256};
pub use spareband_ledger::customers::{ApiKey, API_KEY_PREFIX};
pub use spareband_ledger::DatabaseUrl;
use std::fmt;

/// Shortest token (admin, metrics) accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token the operator sets (the admin token, the metrics token),
/// kept only as its SHA-256 hash from the moment it is read: the clear text
/// is dropped with the config string it came in.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken([u8; 32]);

/// The admin dashboard's token.
pub type AdminToken = SecretToken;
/// The token `/metrics` asks scrapers for (`metrics_token`).
pub type MetricsToken = SecretToken;

/// Whether `presented` hashes to `hash`, compared in constant time.
fn same_hash(presented: &str, hash: &[u8; 32]) -> bool {
    let h: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
    h.iter()
        .zip(hash.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// A token that is too weak to use.
#[derive(Debug, thiserror::Error)]
#[error("a token must be at least {MIN_TOKEN_LEN} characters")]
pub struct WeakToken;

impl SecretToken {
    /// Hashes a token given in clear.
    pub fn from_clear(token: &str) -> Result<Self, WeakToken> {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(WeakToken);
        }
        Ok(SecretToken(Sha256::digest(token.as_bytes()).into()))
    }

    /// Whether `presented` is the token. Compares hashes in constant time, so
    /// the answer's timing says nothing about how much of it was right.
    pub fn matches(&self, presented: &str) -> bool {
        same_hash(presented, &self.0)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(****)")
    }
}

impl<'de> serde::Deserialize<'de> for SecretToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let clear = String::deserialize(d)?;
        SecretToken::from_clear(&clear).map_err(serde::de::Error::custom)
    }
}

/// Shortest cluster secret accepted: 32 characters, so it is not guessed
/// by a relay's neighbours on the network.
pub const MIN_CLUSTER_SECRET_LEN: usize = 32;

/// The secret the relays of a cluster prove themselves to each other with
/// (`cluster_secret`, or `SPAREBAND_CLUSTER_SECRET`), the same on every
/// relay. Unlike the admin token it is kept in clear, as this relay sends it
/// to its peers; it never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    /// The secret, if long enough.
    pub fn new(clear: &str) -> Result<Self, WeakToken> {
        let clear = clear.trim();
        if clear.chars().count() < MIN_CLUSTER_SECRET_LEN {
            return Err(WeakToken);
        }
        Ok(ClusterSecret(clear.to_string()))
    }

    /// The secret to send to a peer.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether a peer presented this secret: compared as hashes in
    /// constant time, so timing tells nothing of how much was right.
    pub fn matches(&self, presented: &str) -> bool {
        let a: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        let b: [u8; 32] = Sha256::digest(self.0.as_bytes()).into();
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(****)")
    }
}

impl<'de> serde::Deserialize<'de> for ClusterSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let clear = String::deserialize(d)?;
        ClusterSecret::new(&clear).map_err(|_| {
            serde::de::Error::custom(format!(
                "cluster_secret must be at least {MIN_CLUSTER_SECRET_LEN} characters"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print_and_hash_stably() {
        let k = ApiKey::generate();
        assert!(k.reveal().starts_with(API_KEY_PREFIX));
        assert!(!format!("{k:?} {k}").contains(&k.reveal()[3..]));
        assert_eq!(k.hash(), ApiKey::from_presented(k.reveal()).hash());
        assert_ne!(k.hash(), ApiKey::generate().hash());
    }

    #[test]
    fn the_admin_token_is_only_a_hash_and_compares_whole() {
        let t = AdminToken::from_clear("correct horse battery staple").unwrap();
        assert!(t.matches("correct horse battery staple"));
        assert!(!t.matches("correct horse battery stapl"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "SecretToken(****)");
        assert!(AdminToken::from_clear("short").is_err());
        #[derive(serde::Deserialize)]
        struct C {
            #[allow(dead_code)]
            admin_token: AdminToken,
        }
        assert!(toml::from_str::<C>("admin_token = \"tooshort\"").is_err());
        assert!(toml::from_str::<C>("admin_token = \"0123456789abcdef\"").is_ok());
    }

    #[test]
    fn the_cluster_secret_never_prints_and_compares_whole() {
        let clear = "0123456789abcdef0123456789abcdef";
        let s = ClusterSecret::new(clear).unwrap();
        assert!(s.matches(clear));
        assert!(!s.matches(&clear[1..]));
        assert_eq!(format!("{s:?}"), "ClusterSecret(****)");
        assert!(ClusterSecret::new("0123456789abcdef").is_err());
    }
}
