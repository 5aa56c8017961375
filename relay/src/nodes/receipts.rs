//! Receipt batching: a node's delivered jobs are signed and sent in batches,
//! at most [`RECEIPT_DELAY`] after the first one or at once when a batch is
//! full. Signing one batch instead of every receipt keeps the relay's and
//! the node's signature work off the per-job path.

use ed25519_dalek::SigningKey;
use spareband_protocol::limits::MAX_RECEIPTS_PER_BATCH;
use spareband_protocol::{NodeId, Receipt, RelayMessage};
use std::sync::Mutex;
use std::time::Duration;

/// Longest a delivered job's receipt waits to be signed with others.
pub const RECEIPT_DELAY: Duration = Duration::from_millis(100);

/// What to do after a receipt is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// The batch is full: sign and send it now.
    Full,
    /// The first of a batch: send it [`RECEIPT_DELAY`] from now.
    First,
    /// A batch is already waiting.
    Waiting,
}

/// Receipts waiting to be signed and sent as one batch.
#[derive(Default)]
pub struct ReceiptBatcher {
    queue: Mutex<Vec<Receipt>>,
}

impl ReceiptBatcher {
    /// Queues a receipt.
    pub fn push(&self, r: Receipt) -> Queued {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.push(r);
        if q.len() >= MAX_RECEIPTS_PER_BATCH {
            Queued::Full
        } else if q.len() == 1 {
            Queued::First
        } else {
            Queued::Waiting
        }
    }

    /// The queued receipts signed as one message for `node`, if any.
    pub fn take_signed(&self, key: &SigningKey, node: &NodeId) -> Option<RelayMessage> {
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        (!batch.is_empty()).then(|| {
            RelayMessage::Receipts(spareband_protocol::identity::sign_receipts(
                key, node, batch,
            ))
        })
    }
}
