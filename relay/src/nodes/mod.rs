//! Connected nodes, lowest layer first:
//!
//! - [`events`]: what reaches a job from its stream;
//! - [`receipts`]: receipts signed in batches;
//! - [`caps`]: per-node, per-site request caps;
//! - [`earning`]: which nodes of one address earn, over the cluster;
//! - [`handle`]: one connected node (queue, slots, streams, receipts);
//! - [`stream`]: one job's stream on a node (credit, metering, body pump);
//! - [`registry`]: all connected nodes, and picking one for a job;
//! - [`handshake`]: a node's Hello, challenge and Auth;
//! - [`frames`]: one frame from a node, applied;
//! - [`payouts`]: a node's payout address and reward terms;
//! - [`gateway`]: the WebSocket nodes connect to, reading and writing frames.

pub mod caps;
pub mod earning;
pub mod events;
pub mod frames;
pub mod gateway;
pub mod handle;
pub mod handshake;
pub mod payouts;
pub mod receipts;
pub mod registry;
mod state_log;
pub mod stream;

pub use events::{LocalFailure, StreamEvent};
pub use handle::NodeHandle;
pub use registry::{Pick, PickResult, Registry};
pub use stream::{BodySource, OpenStream};
