//! Fuzzes the wire codec: `NodeMessage::decode` and `RelayMessage::decode`
//! on arbitrary bytes.
//!
//! Both decoders read frames straight off a node's WebSocket, so they must
//! refuse every malformed frame with a `DecodeError` and never panic or
//! over-allocate. When a frame does decode, the message must survive a round
//! trip: `decode(encode(msg)) == msg`. The encoding is also expected to be
//! canonical (every field has exactly one byte form), so `encode(msg)` must
//! give back the very bytes that were decoded; a difference would mean the
//! encoder and the decoder disagree about some field.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use spareband_protocol::limits::MAX_FRAME_BYTES;
use spareband_protocol::{NodeMessage, RelayMessage};

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);

    if let Ok(msg) = NodeMessage::decode(&frame) {
        let again = msg.encode();
        assert!(
            again.len() <= MAX_FRAME_BYTES,
            "re-encoded node frame too large"
        );
        assert_eq!(
            NodeMessage::decode(&again),
            Ok(msg),
            "node message round trip"
        );
        assert_eq!(&again[..], data, "node frame is not canonical");
    }

    if let Ok(msg) = RelayMessage::decode(&frame) {
        let again = msg.encode();
        assert!(
            again.len() <= MAX_FRAME_BYTES,
            "re-encoded relay frame too large"
        );
        assert_eq!(
            RelayMessage::decode(&again),
            Ok(msg),
            "relay message round trip"
        );
        assert_eq!(&again[..], data, "relay frame is not canonical");
    }
});
