//! The messages, named by direction: [`NodeMessage`] goes from a node to its
//! relay, [`RelayMessage`] from the relay to a node.

use bytes::Bytes;
use std::fmt;

/// Identifies one job on one node connection. Chosen by the relay, never
/// reused on the same connection.
pub type StreamId = u32;

/// One HTTP header: a lowercase-insensitive name and a value of raw bytes
/// (values are not always UTF-8 on the web).
pub type Header = (String, Bytes);

/// A job's identity across the whole network: 16 random bytes chosen by the
/// relay. It keys the usage record and the receipt for the job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct JobId(pub [u8; 16]);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobId({self})")
    }
}

/// What kind of software a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// The headless native node (`spareband-node`).
    Native,
    /// The browser extension.
    Extension,
}

impl ClientKind {
    /// Stable lowercase name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Native => "native",
            ClientKind::Extension => "extension",
        }
    }
}

/// Why a node gave up on a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The target could not be reached: DNS, connect or TLS failed, or it
    /// closed the connection early.
    TargetUnreachable,
    /// The target policy refused the URL or a redirect hop.
    TargetForbidden,
    /// The job's deadline passed at the node.
    Timeout,
    /// The node is already running as many jobs as it announced.
    Busy,
    /// The node is paused and takes no jobs.
    Paused,
    /// The response broke a size limit (headers or body).
    TooLarge,
    /// The request itself cannot be sent (bad method, header or body).
    BadRequest,
    /// Anything else that went wrong inside the node.
    Internal,
    /// A redirect hop would break the node's per-site cap
    /// ([`crate::rules::NodeRules::site_per_minute`]).
    SiteCapped,
}

/// Why the relay cancelled a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The customer went away.
    CustomerGone,
    /// The job's deadline passed at the relay.
    DeadlinePassed,
    /// The relay is shutting down.
    Shutdown,
    /// The response grew past what the customer's mode accepts.
    TooLarge,
    /// The node broke the protocol on this stream.
    ProtocolViolation,
}

/// Why a node does not take jobs right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PauseReason {
    /// The owner switched sharing off.
    User,
    /// Today's data cap is reached.
    DailyCap,
    /// The owner allows sharing only while the computer is idle, and it is not.
    NotIdle,
    /// Any other reason the node chose.
    Other,
    /// This billing month's data cap is reached.
    MonthlyCap,
    /// The owner's schedule does not allow sharing now.
    Schedule,
    /// The connection is metered (cellular or save-data) and the owner does
    /// not share on one.
    Metered,
}

/// Why the relay refused a node connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefuseCode {
    /// The node's protocol version is not one this relay speaks.
    IncompatibleVersion,
    /// The challenge signature did not verify.
    BadSignature,
    /// The node broke the protocol (malformed, oversized or unexpected frame).
    ProtocolViolation,
    /// The relay is shutting down; reconnect later.
    ShuttingDown,
    /// The handshake took too long.
    HandshakeTimeout,
}

/// Whether a request has a body, and how long it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No body.
    Empty,
    /// A body of exactly this many bytes: the node sends `Content-Length`.
    Sized(u64),
    /// A body of unknown length: the node sends it chunked.
    Streamed,
}

impl BodyKind {
    /// Whether body frames follow.
    pub fn has_body(self) -> bool {
        !matches!(self, BodyKind::Empty)
    }
}

/// The relay's statement of one delivered job (signed as part of a
/// [`ReceiptBatch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The job.
    pub job: JobId,
    /// Metered bytes up.
    pub bytes_up: u64,
    /// Metered bytes down.
    pub bytes_down: u64,
    /// The reward epoch index: `time_ms / epoch length`.
    pub epoch: u64,
    /// When the job ended, Unix ms.
    pub time_ms: u64,
}

/// Receipts for one node, signed together: one signature per batch rather
/// than per job, because signing (relay) and verifying (node) each cost more
/// CPU than carrying a small job (docs/BENCHMARKS.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptBatch {
    /// At least one, at most [`crate::limits::MAX_RECEIPTS_PER_BATCH`].
    pub receipts: Vec<Receipt>,
    /// Ed25519 signature by the relay key over
    /// [`crate::identity::receipts_message`].
    pub signature: [u8; 64],
}

/// The reward terms a relay pays on, sent to a node after `Welcome`, after
/// it registers a payout address and after each epoch closes, so a node can
/// turn its receipt-verified bytes into token amounts without asking anyone
/// else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewardTerms {
    /// Epoch length in ms; a receipt's `epoch` is its time divided by this.
    pub epoch_ms: u64,
    /// Base units (18 decimals) per GiB delivered in the current epoch.
    pub reward_per_gib: u128,
    /// The last closed epoch's number (0: none closed yet).
    pub last_closed_epoch: u64,
    /// What the node's payout address can claim from that epoch, base units
    /// (0 when it earned nothing there or has no address).
    pub claimable: u128,
    /// Whether this node's jobs earn now. False when another node on the
    /// same IP address already earns (one earning node per address): it may
    /// still serve, but its bytes are not paid.
    pub earning: bool,
}

/// A job as the relay hands it to a node: the request line and headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The stream this job runs on.
    pub stream: StreamId,
    /// The job's network-wide id.
    pub job: JobId,
    /// HTTP method, upper case.
    pub method: String,
    /// Absolute http or https URL. The node checks it against the target
    /// policy before any connection.
    pub url: String,
    /// Request headers to send (the relay has already removed hop-by-hop and
    /// forbidden ones).
    pub headers: Vec<Header>,
    /// Whether a body follows in `RequestBody` frames (ended by
    /// `RequestEnd`), and its length when the relay knows it.
    pub body: BodyKind,
    /// Milliseconds the node may spend on the whole job.
    pub deadline_ms: u32,
}

/// A target's response status and headers, as the node received them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The stream this answers.
    pub stream: StreamId,
    /// HTTP status code.
    pub status: u16,
    /// Response headers (hop-by-hop ones removed by the node).
    pub headers: Vec<Header>,
}

/// Node → relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeMessage {
    /// First frame on a connection: which protocol and software the node runs.
    Hello {
        /// The node's [`crate::PROTOCOL_VERSION`].
        version: u16,
        /// Native node or browser extension.
        client: ClientKind,
        /// Software name and version, for logs and the dashboard.
        agent: String,
    },
    /// Answer to the relay's challenge: proves the node holds its key.
    Auth {
        /// The node's ed25519 public key.
        public_key: [u8; 32],
        /// Signature over [`crate::identity::auth_message`].
        signature: [u8; 64],
        /// Most jobs the node will run at once.
        max_concurrency: u16,
    },
    /// The node starts or stops taking jobs (sharing switched off, cap reached…).
    Availability {
        /// Whether the node takes new jobs.
        accepting: bool,
        /// Why not, when `accepting` is false.
        reason: PauseReason,
        /// Most jobs the node will run at once from now on.
        max_concurrency: u16,
    },
    /// The EVM address the node's rewards go to, signed with the node key
    /// over [`crate::identity::payout_message`].
    SetPayout {
        /// `0x` and 40 hex digits (EIP-55 checked by the relay).
        address: String,
        /// The node's signature.
        signature: [u8; 64],
    },
    /// Domains the node's owner does not share with, each covering its
    /// subdomains (normalised by [`crate::policy::normalize_domain`]). The
    /// relay routes around them; the node refuses them anyway. Replaces any
    /// earlier list.
    BlockList {
        /// At most [`crate::limits::MAX_BLOCKED_SITES`] domains.
        domains: Vec<String>,
    },
    /// Status and headers of a job's response.
    ResponseHead(ResponseHead),
    /// A piece of a job's response body (at most [`crate::limits::MAX_CHUNK_BYTES`]).
    ResponseBody {
        /// The job's stream.
        stream: StreamId,
        /// Raw body bytes.
        data: Bytes,
    },
    /// The job's response body is complete.
    ResponseEnd {
        /// The job's stream.
        stream: StreamId,
    },
    /// A whole small answer in one frame: head, body (at most
    /// [`crate::limits::MAX_WHOLE_RESPONSE_BYTES`], counted against the
    /// stream's window like `ResponseBody`) and end. Since protocol version
    /// 4; a node sends it only to a relay that speaks 4.
    Response {
        /// Status and headers.
        head: ResponseHead,
        /// The whole body (may be empty).
        body: Bytes,
    },
    /// The node has handed `bytes` more request-body bytes to the target.
    Credit {
        /// The job's stream.
        stream: StreamId,
        /// Bytes of window returned.
        bytes: u32,
    },
    /// The node gave up on a job; nothing more comes on that stream.
    Fail {
        /// The job's stream.
        stream: StreamId,
        /// Why.
        reason: FailReason,
        /// Human-readable detail, for the customer and logs.
        message: String,
    },
    /// Keep-alive; the relay answers with `Pong`.
    Ping {
        /// Echoed back in the pong.
        nonce: u64,
    },
    /// Answer to a relay `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
}

/// Relay → node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayMessage {
    /// Answer to `Hello`: the bytes the node must sign.
    Challenge {
        /// The protocol version the relay will speak on this connection.
        version: u16,
        /// Fresh random bytes, never reused.
        nonce: [u8; 32],
    },
    /// The node is authenticated and may receive jobs.
    Welcome {
        /// The node id the relay derived from the key.
        node_id: crate::NodeId,
        /// The relay's receipt-signing public key (nodes pin it on first use).
        relay_key: [u8; 32],
    },
    /// Delivered jobs' usage, signed by the relay: what the node will be
    /// paid for. See [`crate::identity::receipts_message`].
    Receipts(ReceiptBatch),
    /// The reward terms and the node's claimable amount.
    Rewards(RewardTerms),
    /// What every hop of this node's jobs must also pass (the operator's deny
    /// list, the per-site cap, the node's own address): sent right after
    /// `Welcome`, before any job.
    Rules(crate::rules::NodeRules),
    /// The relay refuses the node; the connection closes after this frame.
    Refused {
        /// Machine-readable reason.
        code: RefuseCode,
        /// What happened and what to do.
        message: String,
    },
    /// A new job.
    Request(RequestHead),
    /// A piece of a job's request body.
    RequestBody {
        /// The job's stream.
        stream: StreamId,
        /// Raw body bytes.
        data: Bytes,
    },
    /// The job's request body is complete.
    RequestEnd {
        /// The job's stream.
        stream: StreamId,
    },
    /// The relay has handed `bytes` more response-body bytes to the customer.
    Credit {
        /// The job's stream.
        stream: StreamId,
        /// Bytes of window returned.
        bytes: u32,
    },
    /// Stop working on a job; nothing more is accepted on that stream.
    Cancel {
        /// The job's stream.
        stream: StreamId,
        /// Why.
        reason: CancelReason,
    },
    /// Keep-alive; the node answers with `Pong`.
    Ping {
        /// Echoed back in the pong.
        nonce: u64,
    },
    /// Answer to a node `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
}

impl NodeMessage {
    /// The message's name, for logs and protocol errors.
    pub fn name(&self) -> &'static str {
        match self {
            NodeMessage::Hello { .. } => "Hello",
            NodeMessage::Auth { .. } => "Auth",
            NodeMessage::Availability { .. } => "Availability",
            NodeMessage::SetPayout { .. } => "SetPayout",
            NodeMessage::BlockList { .. } => "BlockList",
            NodeMessage::ResponseHead(_) => "ResponseHead",
            NodeMessage::ResponseBody { .. } => "ResponseBody",
            NodeMessage::ResponseEnd { .. } => "ResponseEnd",
            NodeMessage::Response { .. } => "Response",
            NodeMessage::Credit { .. } => "Credit",
            NodeMessage::Fail { .. } => "Fail",
            NodeMessage::Ping { .. } => "Ping",
            NodeMessage::Pong { .. } => "Pong",
        }
    }
}
