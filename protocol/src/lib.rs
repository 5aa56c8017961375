//! The Spareband wire protocol, shared by the relay, the native node and the
//! browser node (compiled to wasm32).
//!
//! This crate is pure: types, a binary codec over bytes, limits, node identity
//! and the target policy. It does no I/O and depends on no runtime, so the same
//! code decides the same things in every component.
//!
//! One WebSocket connection carries everything between a node and its relay.
//! Each WebSocket binary message is one frame: a [`NodeMessage`] (node → relay)
//! or a [`RelayMessage`] (relay → node). Jobs are multiplexed on that one
//! connection by [`StreamId`]; bodies travel as raw bytes in chunks of at most
//! [`limits::MAX_CHUNK_BYTES`] under per-stream credit ([`limits::STREAM_WINDOW`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
pub mod backoff;
pub mod calendar;
mod codec;
pub mod controls;
pub mod flow;
pub mod gateway;
pub mod identity;
pub mod limits;
mod message;
pub mod metering;
pub mod policy;
pub mod receipts;
pub mod rules;
pub mod weburl;
#[cfg(feature = "writer")]
pub mod writer;

pub use codec::{
    is_hop_by_hop, is_valid_header_name, is_valid_header_value, DecodeError, HOP_BY_HOP,
};
pub use identity::{NodeId, AUTH_CONTEXT};
pub use message::*;
#[cfg(feature = "url")]
pub use policy::Target;
pub use policy::{Checked, PolicyError, TargetPolicy};

/// The protocol version this build speaks. Sent in [`NodeMessage::Hello`].
/// Version 4 added [`NodeMessage::Response`], a whole small answer in one
/// frame.
pub const PROTOCOL_VERSION: u16 = 4;

/// The oldest node protocol version a relay of this build still accepts.
/// Version 2 replaced per-job receipts with signed batches; version 3 sends
/// the node the rules every redirect hop must pass
/// ([`RelayMessage::Rules`]), which an older node would not apply. A version
/// 3 node is still served: it only never sends the whole-answer frame.
pub const MIN_PROTOCOL_VERSION: u16 = 3;

/// The first version whose relays take [`NodeMessage::Response`].
pub const WHOLE_RESPONSE_VERSION: u16 = 4;

/// The path of the node gateway on a relay.
pub const NODE_GATEWAY_PATH: &str = "/v1/node";
