//! Receipts: the relay signs each delivered job's usage; the node checks the
//! signature against the relay key it pinned on first use, compares the
//! bytes with its own count, and keeps verified totals.

pub use spareband_protocol::receipts::{Check, ReceiptBook};
use spareband_protocol::JobId;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::{info, warn};

/// Verified totals, readable while the node runs.
#[derive(Debug, Default)]
pub struct ReceiptStats {
    /// Receipts whose signature and bytes checked out.
    pub verified: AtomicU64,
    /// Verified bytes up.
    pub verified_up: AtomicU64,
    /// Verified bytes down.
    pub verified_down: AtomicU64,
    /// Receipts with a bad signature (or from a relay whose key changed).
    pub bad_signature: AtomicU64,
    /// Receipts whose bytes differ from the node's own count.
    pub mismatched: AtomicU64,
}

/// Relay keys pinned on first use, one `origin hexkey` line per relay, in a
/// file beside the node key.
pub fn pin_file(key_file: &Path) -> PathBuf {
    let mut p = key_file.as_os_str().to_owned();
    p.push(".relays");
    PathBuf::from(p)
}

/// The key to trust for `origin`: the pinned one, or `offered` (pinned now)
/// on first use. A changed key is reported loudly and not trusted.
pub fn pin(path: &Path, origin: &str, offered: [u8; 32]) -> [u8; 32] {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        if let Some((o, k)) = line.split_once(' ') {
            let mut key = [0u8; 32];
            if o == origin && hex::decode_to_slice(k.trim(), &mut key).is_ok() {
                if key != offered {
                    warn!(%origin, "the relay's receipt key differs from the one pinned on first use: its receipts will not verify");
                }
                return key;
            }
        }
    }
    let line = format!("{origin} {}\n", hex::encode(offered));
    if let Err(e) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
    {
        warn!(error = %e, file = %path.display(), "could not pin the relay key");
    }
    info!(%origin, "pinned the relay's receipt key");
    offered
}

/// Counts what a receipt check amounted to, and says so when it matters.
pub fn record(stats: &ReceiptStats, job: &JobId, check: Check) {
    match check {
        Check::Verified { up, down, .. } => {
            stats.verified.fetch_add(1, Ordering::Relaxed);
            stats.verified_up.fetch_add(up, Ordering::Relaxed);
            stats.verified_down.fetch_add(down, Ordering::Relaxed);
        }
        Check::Mismatch { relay, own } => {
            stats.mismatched.fetch_add(1, Ordering::Relaxed);
            warn!(%job, ?relay, ?own, "the relay's receipt disagrees with this node's own count");
        }
        Check::BadSignature => {
            stats.bad_signature.fetch_add(1, Ordering::Relaxed);
            warn!(%job, "a receipt's signature does not verify with the pinned relay key");
        }
        Check::Pending => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_counted() {
        let stats = ReceiptStats::default();
        let job = JobId([1; 16]);
        record(
            &stats,
            &job,
            Check::Verified {
                up: 3,
                down: 4,
                epoch: 1,
            },
        );
        record(
            &stats,
            &job,
            Check::Mismatch {
                relay: (1, 1),
                own: (1, 2),
            },
        );
        record(&stats, &job, Check::BadSignature);
        record(&stats, &job, Check::Pending);
        assert_eq!(stats.verified.load(Ordering::Relaxed), 1);
        assert_eq!(stats.verified_up.load(Ordering::Relaxed), 3);
        assert_eq!(stats.mismatched.load(Ordering::Relaxed), 1);
        assert_eq!(stats.bad_signature.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_first_key_is_pinned_and_a_changed_one_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("node.key.relays");
        assert_eq!(pin(&f, "wss://a:443", [1; 32]), [1; 32]);
        assert_eq!(pin(&f, "wss://a:443", [2; 32]), [1; 32]);
        assert_eq!(pin(&f, "wss://b:443", [3; 32]), [3; 32]);
    }
}
