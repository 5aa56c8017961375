//! Frames waiting for the connection's writer.

use bytes::Bytes;
use spareband_protocol::NodeMessage;
use tokio::sync::mpsc;

/// A handle for queuing frames to the relay. Cheap to clone. Body frames are
/// bounded by per-stream credit, so the queue cannot grow without bound.
#[derive(Clone, Debug)]
pub struct Outbox(pub(crate) mpsc::UnboundedSender<Bytes>);

impl Outbox {
    /// Queues a message; false when the connection is over.
    pub fn send(&self, msg: &NodeMessage) -> bool {
        self.0.send(msg.encode()).is_ok()
    }
}
