//! What a contributed byte is. Every component counts with these functions, so
//! the relay's count, the node's count and the ledger agree to the byte.
//!
//! * **Up** (customer → target, carried by the node): the bytes of the request
//!   URL, plus each request header's name and value, plus every request body
//!   byte.
//! * **Down** (target → customer): each response header's name and value, plus
//!   every response body byte.
//!
//! Framing, credit, pings and TLS overhead are not counted: both ends see the
//! same messages, so both ends can compute exactly the same numbers.

use crate::message::{Header, RequestHead, ResponseHead};

/// Header bytes as metered: names plus values.
pub fn header_bytes(headers: &[Header]) -> u64 {
    headers
        .iter()
        .map(|(n, v)| (n.len() + v.len()) as u64)
        .sum()
}

/// Metered bytes of a request head (URL and headers; the body is counted
/// chunk by chunk).
pub fn request_head_bytes(head: &RequestHead) -> u64 {
    head.url.len() as u64 + header_bytes(&head.headers)
}

/// Metered bytes of a response head (headers; the body is counted chunk by
/// chunk).
pub fn response_head_bytes(head: &ResponseHead) -> u64 {
    header_bytes(&head.headers)
}

/// Running byte counts for one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteCount {
    /// Customer → target bytes.
    pub up: u64,
    /// Target → customer bytes.
    pub down: u64,
}
