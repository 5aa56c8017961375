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
#[derive(Debug, PartialEq, Eq)]
pub enum Queued {
    /// The batch is full and taken out of the queue: sign and send it now.
    /// Taken under the queue's lock, so no batch is ever over
    /// [`MAX_RECEIPTS_PER_BATCH`] (the node refuses a larger one and
    /// disconnects: the benchmark once saw that, when receipts queued
    /// between a full batch and its flush went out with it).
    Full(Vec<Receipt>),
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
            Queued::Full(std::mem::take(&mut *q))
        } else if q.len() == 1 {
            Queued::First
        } else {
            Queued::Waiting
        }
    }

    /// The queued receipts signed as one message for `node`, if any.
    pub fn take_signed(&self, key: &SigningKey, node: &NodeId) -> Option<RelayMessage> {
        let batch = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        (!batch.is_empty()).then(|| sign(key, node, batch))
    }
}

/// A batch signed as one message for `node`.
pub fn sign(key: &SigningKey, node: &NodeId, batch: Vec<Receipt>) -> RelayMessage {
    RelayMessage::Receipts(spareband_protocol::identity::sign_receipts(
        key, node, batch,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(i: u64) -> Receipt {
        let mut job = [0u8; 16];
        job[..8].copy_from_slice(&i.to_be_bytes());
        Receipt {
            job: spareband_protocol::JobId(job),
            bytes_up: 1,
            bytes_down: 2,
            epoch: 0,
            time_ms: 0,
        }
    }

    /// Checked once with the old batcher (a full batch flushed after the
    /// lock was let go): with two threads pushing, batches of up to 258
    /// receipts were taken.
    #[test]
    fn no_batch_is_ever_over_the_limit_with_many_threads_pushing() {
        let b = std::sync::Arc::new(ReceiptBatcher::default());
        let key = SigningKey::from_bytes(&[7; 32]);
        let node = NodeId([1; 16]);
        let biggest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (b, key, biggest) = (b.clone(), key.clone(), biggest.clone());
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        let n = match b.push(receipt(t * 1_000_000 + i)) {
                            Queued::Full(batch) => batch.len(),
                            _ if i % 1999 == 0 => match b.take_signed(&key, &node) {
                                Some(RelayMessage::Receipts(r)) => r.receipts.len(),
                                _ => 0,
                            },
                            _ => 0,
                        };
                        biggest.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let biggest = biggest.load(std::sync::atomic::Ordering::Relaxed);
        assert!(biggest <= MAX_RECEIPTS_PER_BATCH, "a batch of {biggest}");
        assert_eq!(biggest, MAX_RECEIPTS_PER_BATCH, "full batches were made");
    }
}
