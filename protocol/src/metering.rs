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

use crate::limits::MAX_RESPONSE_BODY_BYTES;
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

/// A response's size as a node carries it, checked against
/// [`MAX_RESPONSE_BODY_BYTES`]. Both nodes count the same thing: the metered
/// head ([`response_head_bytes`]) plus every body byte, which
/// is also the job's metered "down" count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseSize {
    bytes: u64,
}

/// A response outgrew [`MAX_RESPONSE_BODY_BYTES`]: the target's answer is too
/// large for the network (retrying gets the same answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the response is larger than the {limit} bytes a node carries")]
pub struct ResponseTooLarge {
    /// The limit it passed.
    pub limit: u64,
}

impl ResponseSize {
    /// Starts counting with the response head.
    pub fn new(head: &ResponseHead) -> Self {
        ResponseSize {
            bytes: response_head_bytes(head),
        }
    }

    /// Counts a body chunk; an error when the response is now over the limit
    /// (the chunk must not be passed on).
    pub fn add(&mut self, chunk: usize) -> Result<(), ResponseTooLarge> {
        self.bytes = self.bytes.saturating_add(chunk as u64);
        if self.bytes > MAX_RESPONSE_BODY_BYTES {
            return Err(ResponseTooLarge {
                limit: MAX_RESPONSE_BODY_BYTES,
            });
        }
        Ok(())
    }

    /// Bytes counted so far (the metered "down" count).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn head(header_bytes: usize) -> crate::ResponseHead {
        crate::ResponseHead {
            stream: 1,
            status: 200,
            headers: vec![("x".into(), Bytes::from(vec![b'a'; header_bytes - 1]))],
        }
    }

    #[test]
    fn the_head_counts_towards_the_limit() {
        let mut size = ResponseSize::new(&head(100));
        assert_eq!(size.bytes(), 100);
        size.add(MAX_RESPONSE_BODY_BYTES as usize - 100).unwrap();
        assert_eq!(size.bytes(), MAX_RESPONSE_BODY_BYTES);
        assert_eq!(
            size.add(1),
            Err(ResponseTooLarge {
                limit: MAX_RESPONSE_BODY_BYTES
            })
        );
    }

    #[test]
    fn a_body_at_the_limit_fails_once_the_head_is_counted() {
        let mut size = ResponseSize::new(&head(10));
        assert!(size.add(MAX_RESPONSE_BODY_BYTES as usize).is_err());
    }
}
