//! What a contributed byte is. Every component counts with these functions, so
//! the relay's count, the node's count and the ledger agree to the byte.
//!
//! * **Up** (customer → target, carried by the node): the bytes of the request
//!   URL, plus each request header's name and value, plus every request body
//!   byte.
//! * **Down** (target → customer): each response header's name and value, up
//!   to [`MAX_METERED_RESPONSE_HEADER_BYTES`] per response, plus every
//!   response body byte.
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

/// Response header bytes that count per response. The node writes the
/// response head, so without a cap it could pad every answer with up to
/// [`crate::limits::MAX_HEADER_BYTES`] (32 KiB) of junk headers and be paid
/// for them. Real answers stay far below: a typical response head is under
/// 1 KiB, and 8 KiB is the header buffer common servers accept by default
/// (nginx's `large_client_header_buffers`, Apache's `LimitRequestFieldSize`).
/// Headers beyond the cap are still delivered, just not counted.
pub const MAX_METERED_RESPONSE_HEADER_BYTES: u64 = 8 * 1024;

/// Metered bytes of a response head: its headers, at most
/// [`MAX_METERED_RESPONSE_HEADER_BYTES`] (the body is counted chunk by
/// chunk).
pub fn response_head_bytes(head: &ResponseHead) -> u64 {
    header_bytes(&head.headers).min(MAX_METERED_RESPONSE_HEADER_BYTES)
}

/// Running byte counts for one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteCount {
    /// Customer → target bytes.
    pub up: u64,
    /// Target → customer bytes.
    pub down: u64,
}
