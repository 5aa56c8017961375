//! Connected nodes: the registry that routing picks from, the per-stream
//! state of jobs in flight, and the WebSocket gateway nodes connect to.

pub mod gateway;
pub mod registry;
mod state_log;
pub mod stream;

pub use registry::{NodeHandle, Pick, PickResult, Registry};
pub use stream::{BodySource, LocalFailure, OpenStream, StreamEvent};
