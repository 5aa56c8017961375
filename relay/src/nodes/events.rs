//! What reaches a job from its stream: the node's frames for it, or a
//! failure on the relay's side of the request.

use bytes::Bytes;
use spareband_protocol::{FailReason, ResponseHead};

/// What a node said about a stream (or what went wrong locally).
#[derive(Debug)]
pub enum StreamEvent {
    /// Status and headers.
    Head(ResponseHead),
    /// A body chunk.
    Body(Bytes),
    /// Body complete.
    End,
    /// The node gave up.
    Failed(FailReason, String),
    /// The node's connection ended.
    NodeGone,
    /// The relay gave up on the request side.
    LocalError(LocalFailure),
}

/// Why the relay gave up on a stream's request side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFailure {
    /// The customer's body passed [`MAX_REQUEST_BODY_BYTES`].
    RequestTooLarge,
    /// The customer's body could not be read.
    RequestUnreadable,
}
