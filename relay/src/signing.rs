//! The relay's receipt-signing key: ed25519, created on first start in the
//! data dir (mode 0600) and kept, because nodes pin its public key on first
//! use. It never prints.

use ed25519_dalek::SigningKey;
use rand::RngCore;
use std::fmt;
use std::path::{Path, PathBuf};

/// File name in the data dir.
pub const RELAY_KEY_FILE: &str = "relay-signing.key";

/// The relay's key. `Debug` shows only the public half.
pub struct RelayKey(pub SigningKey);

impl fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RelayKey(public {})",
            hex::encode(self.0.verifying_key().to_bytes())
        )
    }
}

/// A key file problem.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// Reading or writing failed.
    #[error("relay key {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file holds no key.
    #[error("relay key {0} is not 64 hex digits; restore it from a backup (nodes have pinned its public key)")]
    Invalid(PathBuf),
}

impl RelayKey {
    /// The relay's lasting name: its public key, hex. The same across
    /// restarts from one data dir; what the ledger's `nodes.relay` holds.
    pub fn holder(&self) -> String {
        hex::encode(self.0.verifying_key().to_bytes())
    }
}

/// Loads the key, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> Result<RelayKey, SigningKeyError> {
    let path = data_dir.join(RELAY_KEY_FILE);
    let io = |e| SigningKeyError::Io(path.clone(), e);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mut seed = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut seed)
                .map_err(|_| SigningKeyError::Invalid(path.clone()))?;
            Ok(RelayKey(SigningKey::from_bytes(&seed)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            std::fs::write(&path, format!("{}\n", hex::encode(seed))).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
            Ok(RelayKey(SigningKey::from_bytes(&seed)))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_survives_restarts_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.0.to_bytes(), b.0.to_bytes());
        let seed = hex::encode(a.0.to_bytes());
        assert!(!format!("{a:?}").contains(&seed));
    }
}
