//! Every bound that faces the network, named once. The relay, the native node
//! and the browser node all enforce these; the decoder refuses frames that
//! break them.

use std::time::Duration;

/// Largest body chunk in one [`crate::NodeMessage::ResponseBody`] or
/// [`crate::RelayMessage::RequestBody`] frame.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// Largest encoded frame (one WebSocket message). A chunk plus its few bytes of
/// framing, or a request head at its largest (URL plus headers), fit under it.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

/// Longest target URL, in bytes.
pub const MAX_URL_BYTES: usize = 8 * 1024;

/// Most headers in one request or response head.
pub const MAX_HEADER_COUNT: usize = 100;

/// Most bytes of header names plus values in one request or response head.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Most concurrent jobs (streams) the relay will open on one node, whatever
/// the node announces.
pub const MAX_STREAMS_PER_NODE: u16 = 256;

/// Largest request body a customer may send through a node.
pub const MAX_REQUEST_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Largest response body a node will carry for one job (raw mode streams it;
/// JSON mode has its own smaller cap at the relay). The relay counts the body
/// against it; a node counts head plus body
/// ([`crate::metering::ResponseSize`]), so a node
/// stops at or before the point where the relay would.
pub const MAX_RESPONSE_BODY_BYTES: u64 = 1024 * 1024 * 1024;

/// Per-stream flow-control window, in bytes, in each direction.
///
/// A sender may have at most this many body bytes of one stream that the
/// receiver has not yet handed on (to the customer, or to the target). The
/// receiver returns credit with `Credit` frames as it hands bytes on. So a slow
/// customer never makes the relay hold more than this per stream, and one
/// large download can never fill the connection ahead of other streams by
/// more than this. 256 KiB keeps loopback and LAN throughput high (four
/// chunks in flight) while a thousand stalled streams still cost at most
/// 256 MiB.
pub const STREAM_WINDOW: u32 = 256 * 1024;

/// A receiver returns credit once it has handed on at least this many bytes,
/// so credit frames stay few on a fast stream.
pub const CREDIT_BATCH: u32 = STREAM_WINDOW / 4;

/// Longest error or refusal message text carried in a frame.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Longest software agent string in a hello.
pub const MAX_AGENT_BYTES: usize = 128;

/// Each side sends a ping this often. Browser service workers are stopped
/// after 30 s without events; WebSocket traffic every 20 s keeps them alive
/// (Chrome 116+).
pub const PING_INTERVAL: Duration = Duration::from_secs(20);

/// A peer from which nothing at all has arrived for this long is dead: the
/// connection is closed and its jobs fail.
pub const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// From the WebSocket upgrade to a verified `Auth`, at most this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Job deadline when the customer names none. Below the 30 s after which a
/// browser may stop a service worker that is waiting on a `fetch`.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(25);

/// Longest job deadline a customer may ask for.
pub const MAX_JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// Most redirects a node follows for one job before it returns the redirect
/// response itself.
pub const MAX_REDIRECTS: u8 = 10;

/// Bytes of frames a WebSocket writer gathers before it writes them out;
/// the writers flush after each burst, so nothing waits on this. With 0,
/// every frame was its own TLS record and `writev` (a third of the relay's
/// CPU on small requests, docs/BENCHMARKS.md). A frame larger than this goes
/// out at once, so a connection's buffer grows by at most this much.
pub const WS_WRITE_BUFFER: usize = 16 * 1024;

/// Most receipts in one signed batch (48 bytes each on the wire).
pub const MAX_RECEIPTS_PER_BATCH: usize = 256;

/// Most sites a node owner may block (each entry covers its subdomains).
pub const MAX_BLOCKED_SITES: usize = 256;

/// Most entries of a relay operator's deny list: the list travels to every
/// node in one frame (at most 257 bytes an entry, well under
/// [`MAX_FRAME_BYTES`]).
pub const MAX_DENIED_SITES: usize = 400;

/// Longest domain name.
pub const MAX_DOMAIN_BYTES: usize = 253;

/// Most relays a node is given (`--relay` repeated, or the extension's relay
/// setting): a network's relays, or a few behind one name. A node holds one
/// connection at a time, so the list only needs to reach a relay that is up.
pub const MAX_RELAYS: usize = 16;

/// Largest body a node sends as one `Response` frame with its head and end
/// (protocol version 4). A small answer then costs one frame, one encode
/// and one wake-up on each side instead of three; 16 KiB covers most API
/// and page answers and stays far inside the stream window.
pub const MAX_WHOLE_RESPONSE_BYTES: usize = 16 * 1024;
