//! TLS for the relay: certificates from PEM files, or a self-signed one that is
//! generated on first start and kept in the data dir so nodes that pinned it
//! keep working across restarts.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File names of the generated certificate and key in the data dir.
pub const SELF_SIGNED_CERT: &str = "relay-cert.pem";
/// See [`SELF_SIGNED_CERT`].
pub const SELF_SIGNED_KEY: &str = "relay-key.pem";

/// A TLS setup failure.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the certificate and key.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// Certificate generation failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        path: path.into(),
        source,
    })
}

/// The relay's TLS: the rustls config, and the DNS names its certificate is
/// for (names nodes may dial the relay by; see [`crate::origin`]).
pub struct TlsSetup {
    /// What the accept loop hands connections to.
    pub config: Arc<rustls::ServerConfig>,
    /// The leaf certificate's DNS subject alternative names, lower case.
    pub names: Vec<String>,
}

/// Loads the configured PEM pair, or the generated one (creating it if
/// needed), into a rustls server config speaking h2 and http/1.1.
pub fn server_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
) -> Result<TlsSetup, TlsError> {
    let (cert_path, key_path) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf()),
        _ => ensure_self_signed(data_dir)?,
    };
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut read(&cert_path)?.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem(format!("{}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!(
            "{}: no certificate found",
            cert_path.display()
        )));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut read(&key_path)?.as_slice())
        .map_err(|e| TlsError::Pem(format!("{}: {e}", key_path.display())))?
        .ok_or_else(|| TlsError::Pem(format!("{}: no private key found", key_path.display())))?;
    let names = webpki::EndEntityCert::try_from(&certs[0])
        .map_err(|e| TlsError::Pem(format!("{}: {e:?}", cert_path.display())))?
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsSetup {
        config: Arc::new(config),
        names,
    })
}

/// Paths of the generated pair, creating it on first use.
pub fn ensure_self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = data_dir.join(SELF_SIGNED_CERT);
    let key_path = data_dir.join(SELF_SIGNED_KEY);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let write = |path: &Path, text: String, private: bool| -> Result<(), TlsError> {
        let io = |source| TlsError::Io {
            path: path.into(),
            source,
        };
        std::fs::write(path, text).map_err(io)?;
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        }
        let _ = private;
        Ok(())
    };
    write(&key_path, certified.key_pair.serialize_pem(), true)?;
    write(&cert_path, certified.cert.pem(), false)?;
    Ok((cert_path, key_path))
}
