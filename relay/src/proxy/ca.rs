//! The relay's proxy CA, for `mode-fetch`: the relay ends a customer's TLS
//! inside `CONNECT` with a certificate for the host it mints from this CA,
//! so it can read each request and run it as an ordinary job (on any node
//! kind). Customers who want that trust the CA (`GET /v1/proxy-ca.pem`);
//! the relay then sees their traffic in clear, as it does on the JSON API.
//!
//! The CA's key and certificate are kept in the data dir
//! ([`CA_KEY_FILE`], readable by the relay's user only, and [`CA_CERT_FILE`])
//! and made on first use. Leaf certificates are cached per host, at most
//! [`MAX_LEAVES`].

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The CA certificate's file in the data dir.
pub const CA_CERT_FILE: &str = "proxy-ca.pem";
/// The CA key's file in the data dir (mode 0600).
pub const CA_KEY_FILE: &str = "proxy-ca-key.pem";
/// Hosts whose TLS settings are kept; past it the cache starts again (a
/// leaf costs a key pair and a signature, well under a millisecond).
pub const MAX_LEAVES: usize = 10_000;
/// The CA's name, the same on every load so that leaves minted after a
/// restart chain to the certificate customers already trust.
const CA_NAME: &str = "Spareband relay proxy CA";

/// Why the proxy CA is unusable.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Its files could not be read or written.
    #[error("proxy CA file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Making or reading a certificate or key failed.
    #[error("proxy CA: {0}")]
    Cert(#[from] rcgen::Error),
    /// TLS settings for a leaf could not be made.
    #[error("proxy CA: {0}")]
    Tls(#[from] rustls::Error),
}

impl CaError {
    /// Whether trying again unchanged may work: never, it is the data dir
    /// or the host name.
    pub fn retryable(&self) -> bool {
        false
    }
}

/// The proxy CA and its leaves.
pub struct ProxyCa {
    key: KeyPair,
    cert: rcgen::Certificate,
    pem: String,
    leaves: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl std::fmt::Debug for ProxyCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxyCa(key redacted)")
    }
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "Spareband");
    p.distinguished_name = name;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

impl ProxyCa {
    /// The CA in `data_dir`, made there on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<ProxyCa, CaError> {
        let cert_path = data_dir.join(CA_CERT_FILE);
        let key_path = data_dir.join(CA_KEY_FILE);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CaError::Io { path, source }
        };
        let (key, pem) = if cert_path.exists() && key_path.exists() {
            let key =
                KeyPair::from_pem(&std::fs::read_to_string(&key_path).map_err(io(&key_path))?)?;
            (
                key,
                std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?,
            )
        } else {
            let key = KeyPair::generate()?;
            let pem = ca_params()?.self_signed(&key)?.pem();
            write_private(&key_path, &key.serialize_pem()).map_err(io(&key_path))?;
            std::fs::write(&cert_path, &pem).map_err(io(&cert_path))?;
            (key, pem)
        };
        // The issuer leaves are signed under: the stored certificate's name
        // and key, so they chain to the file customers trust.
        let cert = ca_params()?.self_signed(&key)?;
        Ok(ProxyCa {
            key,
            cert,
            pem,
            leaves: Mutex::new(HashMap::new()),
        })
    }

    /// The CA certificate customers trust, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// TLS settings that present a certificate for `host` (a name or an IP
    /// address), minted on first use and cached.
    pub fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, CaError> {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if let Some(c) = self
            .leaves
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&host)
        {
            return Ok(c.clone());
        }
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![host.clone()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, host.clone());
        let leaf = params.signed_by(&key, &self.cert, &self.key)?;
        let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone(), self.cert.der().clone()];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)?;
        // Each request inside is read with HTTP/1.1.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let mut leaves = self.leaves.lock().unwrap_or_else(|e| e.into_inner());
        if leaves.len() >= MAX_LEAVES {
            leaves.clear();
        }
        leaves.insert(host, config.clone());
        Ok(config)
    }
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_kept_and_its_leaves_chain_to_it_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProxyCa::load_or_create(dir.path()).unwrap();
        let again = ProxyCa::load_or_create(dir.path()).unwrap();
        assert_eq!(first.pem(), again.pem(), "the same CA after a restart");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is the owner's only");
        }
        let a = again.server_config("Example.com").unwrap();
        let b = again.server_config("example.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b), "cached per host");
        assert!(again.server_config("127.0.0.1").is_ok());
        assert!(again.server_config("[::1]").is_ok());
        assert!(!format!("{again:?}").contains("PRIVATE"));
    }
}
