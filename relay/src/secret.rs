//! Secrets that never print: API keys are shown once at creation and stored
//! only as a SHA-256 hash. Keys carry 192 random bits, so a fast hash is
//! enough (there is nothing to brute-force), and a lookup is one index probe.

use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// Prefix of every customer API key, so a leaked key is recognisable.
pub const API_KEY_PREFIX: &str = "sb_";

/// A customer API key in clear. `Debug` and `Display` mask it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        ApiKey(format!("{API_KEY_PREFIX}{}", hex::encode(raw)))
    }

    /// Wraps a key presented by a customer.
    pub fn from_presented(s: &str) -> Self {
        ApiKey(s.to_string())
    }

    /// The key in clear, to show the customer once.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The hash stored in the database.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
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
}
