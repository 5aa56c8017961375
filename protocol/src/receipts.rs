//! Matching the relay's signed receipts with the node's own count of each
//! delivered job. Shared by the native node and the browser node; it only
//! decides, callers count and report.

use crate::identity::verify_receipts;
use crate::{JobId, NodeId, Receipt, ReceiptBatch};
use std::collections::HashMap;

/// Most jobs remembered while their receipt (or their end) is awaited.
pub const MAX_OPEN: usize = 10_000;

/// What a receipt or a job's end amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Signature good and bytes equal to the node's own count.
    Verified {
        /// Bytes up.
        up: u64,
        /// Bytes down.
        down: u64,
        /// The aligned epoch the job finished in (finish time / epoch
        /// length), as the relay signed it.
        epoch: u64,
    },
    /// Signature good, bytes differ from the node's own count.
    Mismatch {
        /// The relay's (up, down).
        relay: (u64, u64),
        /// The node's (up, down).
        own: (u64, u64),
    },
    /// The signature does not verify with the pinned relay key.
    BadSignature,
    /// Waiting for the other half.
    Pending,
}

/// One session's open jobs and early receipts.
pub struct ReceiptBook {
    node: NodeId,
    relay_key: [u8; 32],
    own: HashMap<JobId, (u64, u64)>,
    early: HashMap<JobId, Receipt>,
}

impl ReceiptBook {
    /// A book for a session whose trusted relay key is `relay_key`.
    pub fn new(node: NodeId, relay_key: [u8; 32]) -> Self {
        ReceiptBook {
            node,
            relay_key,
            own: HashMap::new(),
            early: HashMap::new(),
        }
    }

    /// The relay key receipts must be signed with.
    pub fn relay_key(&self) -> &[u8; 32] {
        &self.relay_key
    }

    /// The node receipts must be for.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// A job this node delivered, with its own count.
    pub fn delivered(&mut self, job: JobId, up: u64, down: u64) -> Check {
        match self.early.remove(&job) {
            Some(r) => compare(&r, (up, down)),
            None => {
                if self.own.len() >= MAX_OPEN {
                    self.own.clear();
                }
                self.own.insert(job, (up, down));
                Check::Pending
            }
        }
    }

    /// Request-body bytes that reached the node after its job ended (the
    /// target answered first); they count until the receipt arrives.
    pub fn late_body(&mut self, job: JobId, bytes: u64) {
        if let Some(own) = self.own.get_mut(&job) {
            own.0 += bytes;
        }
    }

    /// A batch of receipts from the relay: one check per receipt, in order
    /// (all [`Check::BadSignature`] when the batch's signature fails).
    pub fn receipts(&mut self, b: ReceiptBatch) -> Vec<(JobId, Check)> {
        let signed = verify_receipts(&self.relay_key, &self.node, &b);
        self.checked(b, signed)
    }

    /// [`ReceiptBook::receipts`] for a batch whose signature the caller has
    /// checked against [`ReceiptBook::relay_key`] (the browser core verifies
    /// with Web Crypto, which answers later).
    pub fn checked(&mut self, b: ReceiptBatch, signed: bool) -> Vec<(JobId, Check)> {
        if !signed {
            return b
                .receipts
                .iter()
                .map(|r| (r.job, Check::BadSignature))
                .collect();
        }
        b.receipts
            .into_iter()
            .map(|r| (r.job, self.receipt(r)))
            .collect()
    }

    /// One receipt whose batch signature has been checked.
    fn receipt(&mut self, r: Receipt) -> Check {
        match self.own.remove(&r.job) {
            Some(own) => compare(&r, own),
            None => {
                if self.early.len() >= MAX_OPEN {
                    self.early.clear();
                }
                self.early.insert(r.job, r);
                Check::Pending
            }
        }
    }
}

fn compare(r: &Receipt, own: (u64, u64)) -> Check {
    if (r.bytes_up, r.bytes_down) == own {
        Check::Verified {
            up: own.0,
            down: own.1,
            epoch: r.epoch,
        }
    } else {
        Check::Mismatch {
            relay: (r.bytes_up, r.bytes_down),
            own,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::sign_receipts;
    use ed25519_dalek::SigningKey;

    fn r(job: u8, up: u64, down: u64) -> Receipt {
        Receipt {
            job: JobId([job; 16]),
            bytes_up: up,
            bytes_down: down,
            epoch: 1,
            time_ms: 2,
        }
    }

    /// A batch of one, for the per-receipt cases.
    fn receipt(relay: &SigningKey, node: &NodeId, job: u8, up: u64, down: u64) -> ReceiptBatch {
        sign_receipts(relay, node, vec![r(job, up, down)])
    }

    fn one(book: &mut ReceiptBook, b: ReceiptBatch) -> Check {
        let checks = book.receipts(b);
        assert_eq!(checks.len(), 1);
        checks[0].1
    }

    #[test]
    fn a_batch_is_checked_receipt_by_receipt_and_forged_batches_count_as_bad() {
        let relay = SigningKey::from_bytes(&[1; 32]);
        let node = NodeId([2; 16]);
        let mut book = ReceiptBook::new(node, relay.verifying_key().to_bytes());
        book.delivered(JobId([1; 16]), 10, 20);
        book.delivered(JobId([2; 16]), 3, 4);
        let checks = book.receipts(sign_receipts(
            &relay,
            &node,
            vec![r(1, 10, 20), r(2, 3, 5), r(3, 1, 1)],
        ));
        assert_eq!(
            checks,
            vec![
                (
                    JobId([1; 16]),
                    Check::Verified {
                        up: 10,
                        down: 20,
                        epoch: 1
                    }
                ),
                (
                    JobId([2; 16]),
                    Check::Mismatch {
                        relay: (3, 5),
                        own: (3, 4)
                    }
                ),
                (JobId([3; 16]), Check::Pending),
            ]
        );
        let mut forged = sign_receipts(&relay, &node, vec![r(4, 1, 1), r(5, 1, 1)]);
        forged.receipts[0].bytes_down = 9;
        assert_eq!(
            book.receipts(forged),
            vec![
                (JobId([4; 16]), Check::BadSignature),
                (JobId([5; 16]), Check::BadSignature)
            ]
        );
    }

    #[test]
    fn receipts_are_matched_in_either_order_and_disagreements_flagged() {
        let relay = SigningKey::from_bytes(&[1; 32]);
        let node = NodeId([2; 16]);
        let mut book = ReceiptBook::new(node, relay.verifying_key().to_bytes());
        assert_eq!(book.delivered(JobId([1; 16]), 10, 20), Check::Pending);
        assert_eq!(
            one(&mut book, receipt(&relay, &node, 1, 10, 20)),
            Check::Verified {
                up: 10,
                down: 20,
                epoch: 1
            }
        );
        assert_eq!(
            one(&mut book, receipt(&relay, &node, 2, 5, 6)),
            Check::Pending
        );
        assert_eq!(
            book.delivered(JobId([2; 16]), 5, 6),
            Check::Verified {
                up: 5,
                down: 6,
                epoch: 1
            }
        );
        book.delivered(JobId([3; 16]), 1, 1);
        assert_eq!(
            one(&mut book, receipt(&relay, &node, 3, 1, 2)),
            Check::Mismatch {
                relay: (1, 2),
                own: (1, 1)
            }
        );
        book.delivered(JobId([6; 16]), 10, 1);
        book.late_body(JobId([6; 16]), 5);
        assert_eq!(
            one(&mut book, receipt(&relay, &node, 6, 15, 1)),
            Check::Verified {
                up: 15,
                down: 1,
                epoch: 1
            }
        );
        let forged = receipt(&SigningKey::from_bytes(&[9; 32]), &node, 4, 1, 1);
        assert_eq!(one(&mut book, forged), Check::BadSignature);
        let other_node = receipt(&relay, &NodeId([7; 16]), 5, 1, 1);
        assert_eq!(one(&mut book, other_node), Check::BadSignature);
    }
}
