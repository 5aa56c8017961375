//! One attempt of a job on one node, and the one place its end is
//! recorded: counters, the usage record in the ledger, and for delivered
//! work a receipt for the node (signed in batches, see
//! [`crate::nodes::NodeHandle::add_receipt`]).

use crate::AppState;
use rand::RngCore;
use spareband_ledger::clock::{now_ms, Epoch};
use spareband_ledger::{CustomerId, JobOutcome, UsageRecord};
use spareband_protocol::{JobId, NodeId, Receipt};
use tokio::time::Instant;

/// A fresh job id: the time in milliseconds (48 bits, big-endian) and 80
/// random bits. Ids that grow with time are appended at the end of the
/// ledger's primary-key index instead of at random places in it, which kept
/// the ledger writer's rate from falling as the table grew
/// (docs/BENCHMARKS.md); 80 random bits keep them unguessable and unique.
pub fn new_job_id(now_ms: i64) -> JobId {
    let mut job = JobId::default();
    job.0[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
    rand::thread_rng().fill_bytes(&mut job.0[6..]);
    job
}

/// One attempt of a job on one node: what its usage record is keyed by.
/// Ended exactly once, by [`Attempt::finish`], which takes it.
#[derive(Debug)]
pub(super) struct Attempt {
    pub(super) job: JobId,
    pub(super) node: NodeId,
    customer: CustomerId,
    started_at: i64,
    /// The same moment, for the latency histograms.
    pub(super) dispatched: Instant,
    /// Whether the node earned when the job was dispatched.
    earning: bool,
}

impl Attempt {
    /// An attempt dispatched now.
    pub(super) fn start(node: NodeId, customer: CustomerId, earning: bool) -> Self {
        let now = now_ms();
        Attempt {
            job: new_job_id(now),
            node,
            customer,
            started_at: now,
            dispatched: Instant::now(),
            earning,
        }
    }

    /// Ends the attempt with `outcome` and the metered bytes.
    pub(super) fn finish(self, state: &AppState, outcome: JobOutcome, up: u64, down: u64) {
        state.metrics.job(outcome, up, down);
        state
            .metrics
            .job_duration
            .observe(self.dispatched.elapsed());
        let finished_at = now_ms();
        if outcome == JobOutcome::Ok {
            if let Some(node) = state.registry.get(&self.node) {
                let receipt = Receipt {
                    job: self.job,
                    bytes_up: up,
                    bytes_down: down,
                    epoch: Epoch::at(finished_at, state.config.epoch()).index as u64,
                    time_ms: finished_at as u64,
                };
                node.add_receipt(receipt, &state.relay_key.0);
            }
        }
        state.ledger.record(UsageRecord {
            job: self.job,
            node: self.node,
            customer: self.customer,
            bytes_up: up,
            bytes_down: down,
            outcome,
            started_at: self.started_at,
            finished_at,
            earning: self.earning,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::new_job_id;

    #[test]
    fn job_ids_sort_by_time_and_differ_within_a_millisecond() {
        let a = new_job_id(1_700_000_000_000);
        let b = new_job_id(1_700_000_000_000);
        let c = new_job_id(1_700_000_000_001);
        assert_ne!(a, b, "80 random bits");
        assert_eq!(a.0[..6], b.0[..6]);
        // As stored (hex text), later ids sort after earlier ones.
        assert!(a.to_string() < c.to_string() && b.to_string() < c.to_string());
        assert!(new_job_id(0).to_string() < new_job_id(i64::from(u32::MAX)).to_string());
    }
}
