//! Binary encoding of [`NodeMessage`] and [`RelayMessage`].
//!
//! A frame is one tag byte followed by the variant's fields in order.
//! Integers are big-endian and fixed-width; strings and byte strings are a
//! `u32` length followed by the bytes. Bodies are raw bytes and, when decoding
//! from a [`Bytes`], are sliced without copying.
//!
//! Node→relay tags are below 0x80 and relay→node tags at or above it, so a
//! frame sent the wrong way is refused as an unknown tag.
//!
//! The decoder checks every length against the remaining input and every
//! limit in [`crate::limits`] before it allocates, and never panics on any
//! input (property-tested).

use crate::limits::*;
use crate::message::*;
use crate::NodeId;
use bytes::{BufMut, Bytes};

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame was empty.
    #[error("empty frame")]
    Empty,
    /// The frame ended before a field did.
    #[error("frame truncated while reading {0}")]
    Truncated(&'static str),
    /// The frame kept going after the last field.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
    /// The tag byte names no message of this direction.
    #[error("unknown message tag 0x{0:02x}")]
    UnknownTag(u8),
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    FrameTooLarge(usize),
    /// A field is larger than its limit.
    #[error("{0} is over its size limit")]
    TooLarge(&'static str),
    /// A field holds a value that is not allowed.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

// ---- tags ----
const N_HELLO: u8 = 0x01;
const N_AUTH: u8 = 0x02;
const N_AVAILABILITY: u8 = 0x03;
const N_SET_PAYOUT: u8 = 0x04;
const N_BLOCK_LIST: u8 = 0x05;
const N_RESPONSE_HEAD: u8 = 0x10;
const N_RESPONSE_BODY: u8 = 0x11;
const N_RESPONSE_END: u8 = 0x12;
const N_RESPONSE: u8 = 0x15;
const N_CREDIT: u8 = 0x13;
const N_FAIL: u8 = 0x14;
const N_PING: u8 = 0x20;
const N_PONG: u8 = 0x21;

const R_CHALLENGE: u8 = 0x81;
const R_WELCOME: u8 = 0x82;
const R_REFUSED: u8 = 0x83;
const R_REQUEST: u8 = 0x90;
const R_REQUEST_BODY: u8 = 0x91;
const R_REQUEST_END: u8 = 0x92;
const R_CREDIT: u8 = 0x93;
const R_CANCEL: u8 = 0x94;
const R_PING: u8 = 0xa0;
const R_PONG: u8 = 0xa1;
// 0xb0 was a single signed receipt (protocol version 1); never reused.
const R_RECEIPTS: u8 = 0xb2;
const R_REWARDS: u8 = 0xb1;
const R_RULES: u8 = 0x84;

// ---- small enums as bytes ----
macro_rules! byte_enum {
    ($ty:ident, $what:literal, $($variant:ident = $val:literal),+ $(,)?) => {
        impl $ty {
            fn to_byte(self) -> u8 {
                match self { $($ty::$variant => $val),+ }
            }
            fn from_byte(b: u8) -> Result<Self, DecodeError> {
                match b { $($val => Ok($ty::$variant),)+ _ => Err(DecodeError::Invalid($what)) }
            }
        }
    };
}

byte_enum!(ClientKind, "client kind", Native = 1, Extension = 2);
byte_enum!(
    FailReason,
    "fail reason",
    TargetUnreachable = 1,
    TargetForbidden = 2,
    Timeout = 3,
    Busy = 4,
    Paused = 5,
    TooLarge = 6,
    BadRequest = 7,
    Internal = 8,
    SiteCapped = 9,
);
byte_enum!(
    CancelReason,
    "cancel reason",
    CustomerGone = 1,
    DeadlinePassed = 2,
    Shutdown = 3,
    TooLarge = 4,
    ProtocolViolation = 5,
);
byte_enum!(
    PauseReason,
    "pause reason",
    User = 1,
    DailyCap = 2,
    NotIdle = 3,
    Other = 4,
    MonthlyCap = 5,
    Schedule = 6,
    Metered = 7,
);
byte_enum!(
    RefuseCode,
    "refuse code",
    IncompatibleVersion = 1,
    BadSignature = 2,
    ProtocolViolation = 3,
    ShuttingDown = 4,
    HandshakeTimeout = 5,
);

// ---- writer ----
struct Writer(Vec<u8>);

impl Writer {
    fn with_tag(tag: u8, capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity + 1);
        v.push(tag);
        Writer(v)
    }
    fn u8(&mut self, v: u8) {
        self.0.put_u8(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.put_u16(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.put_u32(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.put_u64(v);
    }
    fn raw(&mut self, v: &[u8]) {
        self.0.put_slice(v);
    }
    fn bytes(&mut self, v: &[u8]) {
        // Lengths are bounded by the limits, far below u32::MAX.
        self.u32(v.len() as u32);
        self.0.put_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    /// Human-readable text is clipped (at a character boundary) to the limit
    /// the decoder enforces, so a long error never makes a frame unreadable.
    fn message(&mut self, v: &str) {
        let mut end = v.len().min(MAX_MESSAGE_BYTES);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        self.str(&v[..end]);
    }
    fn headers(&mut self, headers: &[Header]) {
        self.u16(headers.len() as u16);
        for (name, value) in headers {
            self.str(name);
            self.bytes(value);
        }
    }
    fn finish(self) -> Bytes {
        Bytes::from(self.0)
    }
}

fn headers_len(headers: &[Header]) -> usize {
    headers
        .iter()
        .map(|(n, v)| 8 + n.len() + v.len())
        .sum::<usize>()
        + 2
}

// ---- reader ----
struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(DecodeError::Truncated(what));
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let b = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b);
        Ok(out)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }
    fn bytes(&mut self, max: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(DecodeError::TooLarge(what));
        }
        self.take(len, what)
    }
    fn string(&mut self, max: usize, what: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(max, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid(what))
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid(what)),
        }
    }
    fn headers(&mut self) -> Result<Vec<Header>, DecodeError> {
        let count = self.u16("header count")? as usize;
        if count > MAX_HEADER_COUNT {
            return Err(DecodeError::TooLarge("header count"));
        }
        let mut headers = Vec::with_capacity(count);
        let mut total = 0usize;
        for _ in 0..count {
            let name = self.string(MAX_HEADER_BYTES, "header name")?;
            let value = self.bytes(MAX_HEADER_BYTES, "header value")?;
            total += name.len() + value.len();
            if total > MAX_HEADER_BYTES {
                return Err(DecodeError::TooLarge("headers"));
            }
            if !is_valid_header_name(&name) {
                return Err(DecodeError::Invalid("header name"));
            }
            if !is_valid_header_value(&value) {
                return Err(DecodeError::Invalid("header value"));
            }
            headers.push((name, value));
        }
        Ok(headers)
    }
    fn response_head(&mut self) -> Result<ResponseHead, DecodeError> {
        Ok(ResponseHead {
            stream: self.u32("stream")?,
            status: {
                let s = self.u16("status")?;
                if !(100..=999).contains(&s) {
                    return Err(DecodeError::Invalid("status"));
                }
                s
            },
            headers: self.headers()?,
        })
    }
    fn chunk(&mut self) -> Result<Bytes, DecodeError> {
        let data = self.bytes(MAX_CHUNK_BYTES, "body chunk")?;
        if data.is_empty() {
            return Err(DecodeError::Invalid("empty body chunk"));
        }
        Ok(data)
    }
    fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

/// An HTTP field name: a non-empty RFC 9110 token.
pub fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP field value: no CR, LF or NUL (which would let a value smuggle a
/// header or a request), other control bytes only as horizontal tab.
pub fn is_valid_header_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Headers that describe one HTTP connection rather than the message (RFC
/// 9110 §7.6.1), lower case.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Whether a header is hop-by-hop ([`HOP_BY_HOP`]), so it is never passed
/// from one hop to the next.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

fn start(frame: &Bytes) -> Result<(u8, Reader), DecodeError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(DecodeError::FrameTooLarge(frame.len()));
    }
    let Some(&tag) = frame.first() else {
        return Err(DecodeError::Empty);
    };
    Ok((
        tag,
        Reader {
            buf: frame.clone(),
            pos: 1,
        },
    ))
}

fn read_method(r: &mut Reader) -> Result<String, DecodeError> {
    let method = r.string(16, "method")?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(DecodeError::Invalid("method"));
    }
    Ok(method)
}

impl NodeMessage {
    /// Encodes the message as one frame.
    pub fn encode(&self) -> Bytes {
        match self {
            NodeMessage::Hello {
                version,
                client,
                agent,
            } => {
                let mut w = Writer::with_tag(N_HELLO, 8 + agent.len());
                w.u16(*version);
                w.u8(client.to_byte());
                w.str(agent);
                w.finish()
            }
            NodeMessage::Auth {
                public_key,
                signature,
                max_concurrency,
            } => {
                let mut w = Writer::with_tag(N_AUTH, 98);
                w.raw(public_key);
                w.raw(signature);
                w.u16(*max_concurrency);
                w.finish()
            }
            NodeMessage::Availability {
                accepting,
                reason,
                max_concurrency,
            } => {
                let mut w = Writer::with_tag(N_AVAILABILITY, 4);
                w.u8(*accepting as u8);
                w.u8(reason.to_byte());
                w.u16(*max_concurrency);
                w.finish()
            }
            NodeMessage::SetPayout { address, signature } => {
                let mut w = Writer::with_tag(N_SET_PAYOUT, 70 + address.len());
                w.str(address);
                w.raw(signature);
                w.finish()
            }
            NodeMessage::BlockList { domains } => {
                let len = domains.iter().map(|d| 4 + d.len()).sum::<usize>();
                let mut w = Writer::with_tag(N_BLOCK_LIST, 2 + len);
                w.u16(domains.len().min(u16::MAX as usize) as u16);
                for d in domains {
                    w.str(d);
                }
                w.finish()
            }
            NodeMessage::ResponseHead(head) => {
                let mut w = Writer::with_tag(N_RESPONSE_HEAD, 6 + headers_len(&head.headers));
                w.u32(head.stream);
                w.u16(head.status);
                w.headers(&head.headers);
                w.finish()
            }
            NodeMessage::ResponseBody { stream, data } => {
                let mut w = Writer::with_tag(N_RESPONSE_BODY, 8 + data.len());
                w.u32(*stream);
                w.bytes(data);
                w.finish()
            }
            NodeMessage::ResponseEnd { stream } => {
                let mut w = Writer::with_tag(N_RESPONSE_END, 4);
                w.u32(*stream);
                w.finish()
            }
            NodeMessage::Response { head, body } => {
                let mut w =
                    Writer::with_tag(N_RESPONSE, 10 + headers_len(&head.headers) + body.len());
                w.u32(head.stream);
                w.u16(head.status);
                w.headers(&head.headers);
                w.bytes(body);
                w.finish()
            }
            NodeMessage::Credit { stream, bytes } => {
                let mut w = Writer::with_tag(N_CREDIT, 8);
                w.u32(*stream);
                w.u32(*bytes);
                w.finish()
            }
            NodeMessage::Fail {
                stream,
                reason,
                message,
            } => {
                let mut w = Writer::with_tag(N_FAIL, 9 + message.len());
                w.u32(*stream);
                w.u8(reason.to_byte());
                w.message(message);
                w.finish()
            }
            NodeMessage::Ping { nonce } => {
                let mut w = Writer::with_tag(N_PING, 8);
                w.u64(*nonce);
                w.finish()
            }
            NodeMessage::Pong { nonce } => {
                let mut w = Writer::with_tag(N_PONG, 8);
                w.u64(*nonce);
                w.finish()
            }
        }
    }

    /// Decodes one frame, enforcing every limit.
    pub fn decode(frame: &Bytes) -> Result<Self, DecodeError> {
        let (tag, mut r) = start(frame)?;
        let msg = match tag {
            N_HELLO => NodeMessage::Hello {
                version: r.u16("version")?,
                client: ClientKind::from_byte(r.u8("client kind")?)?,
                agent: r.string(MAX_AGENT_BYTES, "agent")?,
            },
            N_AUTH => NodeMessage::Auth {
                public_key: r.array("public key")?,
                signature: r.array("signature")?,
                max_concurrency: r.u16("max concurrency")?,
            },
            N_AVAILABILITY => NodeMessage::Availability {
                accepting: r.bool("accepting")?,
                reason: PauseReason::from_byte(r.u8("pause reason")?)?,
                max_concurrency: r.u16("max concurrency")?,
            },
            N_SET_PAYOUT => NodeMessage::SetPayout {
                address: r.string(64, "payout address")?,
                signature: r.array("signature")?,
            },
            N_BLOCK_LIST => NodeMessage::BlockList {
                domains: read_domains(&mut r, MAX_BLOCKED_SITES, "block list")?,
            },
            N_RESPONSE_HEAD => NodeMessage::ResponseHead(r.response_head()?),
            N_RESPONSE => NodeMessage::Response {
                head: r.response_head()?,
                body: r.bytes(MAX_WHOLE_RESPONSE_BYTES, "whole response body")?,
            },
            N_RESPONSE_BODY => NodeMessage::ResponseBody {
                stream: r.u32("stream")?,
                data: r.chunk()?,
            },
            N_RESPONSE_END => NodeMessage::ResponseEnd {
                stream: r.u32("stream")?,
            },
            N_CREDIT => NodeMessage::Credit {
                stream: r.u32("stream")?,
                bytes: r.u32("credit")?,
            },
            N_FAIL => NodeMessage::Fail {
                stream: r.u32("stream")?,
                reason: FailReason::from_byte(r.u8("fail reason")?)?,
                message: r.string(MAX_MESSAGE_BYTES, "message")?,
            },
            N_PING => NodeMessage::Ping {
                nonce: r.u64("nonce")?,
            },
            N_PONG => NodeMessage::Pong {
                nonce: r.u64("nonce")?,
            },
            other => return Err(DecodeError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// A count, then that many normalised domain names (a block or deny list).
fn read_domains(
    r: &mut Reader,
    max: usize,
    what: &'static str,
) -> Result<Vec<String>, DecodeError> {
    let n = r.u16(what)? as usize;
    if n > max {
        return Err(DecodeError::TooLarge(what));
    }
    let mut domains = Vec::with_capacity(n);
    for _ in 0..n {
        let d = r.string(MAX_DOMAIN_BYTES, what)?;
        if crate::policy::normalize_domain(&d).as_deref() != Some(d.as_str()) {
            return Err(DecodeError::Invalid(what));
        }
        domains.push(d);
    }
    Ok(domains)
}

impl RelayMessage {
    /// Encodes the message as one frame.
    pub fn encode(&self) -> Bytes {
        match self {
            RelayMessage::Challenge { version, nonce } => {
                let mut w = Writer::with_tag(R_CHALLENGE, 34);
                w.u16(*version);
                w.raw(nonce);
                w.finish()
            }
            RelayMessage::Welcome { node_id, relay_key } => {
                let mut w = Writer::with_tag(R_WELCOME, 48);
                w.raw(&node_id.0);
                w.raw(relay_key);
                w.finish()
            }
            RelayMessage::Receipts(b) => {
                let mut w = Writer::with_tag(R_RECEIPTS, 66 + 48 * b.receipts.len());
                w.u16(b.receipts.len() as u16);
                for r in &b.receipts {
                    w.raw(&r.job.0);
                    w.u64(r.bytes_up);
                    w.u64(r.bytes_down);
                    w.u64(r.epoch);
                    w.u64(r.time_ms);
                }
                w.raw(&b.signature);
                w.finish()
            }
            RelayMessage::Rewards(t) => {
                let mut w = Writer::with_tag(R_REWARDS, 49);
                w.u64(t.epoch_ms);
                w.raw(&t.reward_per_gib.to_be_bytes());
                w.u64(t.last_closed_epoch);
                w.raw(&t.claimable.to_be_bytes());
                w.u8(u8::from(t.earning));
                w.finish()
            }
            RelayMessage::Rules(rules) => {
                let len = rules.deny.iter().map(|d| 4 + d.len()).sum::<usize>();
                let mut w = Writer::with_tag(R_RULES, 2 + len + 4 + 17);
                w.u16(rules.deny.len().min(u16::MAX as usize) as u16);
                for d in &rules.deny {
                    w.str(d);
                }
                w.u32(rules.site_per_minute);
                match rules.public_ip {
                    None => w.u8(0),
                    Some(std::net::IpAddr::V4(ip)) => {
                        w.u8(4);
                        w.raw(&ip.octets());
                    }
                    Some(std::net::IpAddr::V6(ip)) => {
                        w.u8(6);
                        w.raw(&ip.octets());
                    }
                }
                w.finish()
            }
            RelayMessage::Refused { code, message } => {
                let mut w = Writer::with_tag(R_REFUSED, 5 + message.len());
                w.u8(code.to_byte());
                w.message(message);
                w.finish()
            }
            RelayMessage::Request(head) => {
                let mut w = Writer::with_tag(
                    R_REQUEST,
                    40 + head.method.len() + head.url.len() + headers_len(&head.headers),
                );
                w.u32(head.stream);
                w.raw(&head.job.0);
                w.str(&head.method);
                w.str(&head.url);
                w.headers(&head.headers);
                match head.body {
                    BodyKind::Empty => w.u8(0),
                    BodyKind::Sized(n) => {
                        w.u8(1);
                        w.u64(n);
                    }
                    BodyKind::Streamed => w.u8(2),
                }
                w.u32(head.deadline_ms);
                w.finish()
            }
            RelayMessage::RequestBody { stream, data } => {
                let mut w = Writer::with_tag(R_REQUEST_BODY, 8 + data.len());
                w.u32(*stream);
                w.bytes(data);
                w.finish()
            }
            RelayMessage::RequestEnd { stream } => {
                let mut w = Writer::with_tag(R_REQUEST_END, 4);
                w.u32(*stream);
                w.finish()
            }
            RelayMessage::Credit { stream, bytes } => {
                let mut w = Writer::with_tag(R_CREDIT, 8);
                w.u32(*stream);
                w.u32(*bytes);
                w.finish()
            }
            RelayMessage::Cancel { stream, reason } => {
                let mut w = Writer::with_tag(R_CANCEL, 5);
                w.u32(*stream);
                w.u8(reason.to_byte());
                w.finish()
            }
            RelayMessage::Ping { nonce } => {
                let mut w = Writer::with_tag(R_PING, 8);
                w.u64(*nonce);
                w.finish()
            }
            RelayMessage::Pong { nonce } => {
                let mut w = Writer::with_tag(R_PONG, 8);
                w.u64(*nonce);
                w.finish()
            }
        }
    }

    /// Decodes one frame, enforcing every limit.
    pub fn decode(frame: &Bytes) -> Result<Self, DecodeError> {
        let (tag, mut r) = start(frame)?;
        let msg = match tag {
            R_CHALLENGE => RelayMessage::Challenge {
                version: r.u16("version")?,
                nonce: r.array("nonce")?,
            },
            R_WELCOME => RelayMessage::Welcome {
                node_id: NodeId(r.array("node id")?),
                relay_key: r.array("relay key")?,
            },
            R_RECEIPTS => {
                let n = r.u16("receipt count")? as usize;
                if n == 0 {
                    return Err(DecodeError::Invalid("receipt count"));
                }
                if n > MAX_RECEIPTS_PER_BATCH {
                    return Err(DecodeError::TooLarge("receipt count"));
                }
                let mut receipts = Vec::with_capacity(n);
                for _ in 0..n {
                    receipts.push(Receipt {
                        job: JobId(r.array("job id")?),
                        bytes_up: r.u64("bytes up")?,
                        bytes_down: r.u64("bytes down")?,
                        epoch: r.u64("epoch")?,
                        time_ms: r.u64("time")?,
                    });
                }
                RelayMessage::Receipts(ReceiptBatch {
                    receipts,
                    signature: r.array("signature")?,
                })
            }
            R_REWARDS => RelayMessage::Rewards(RewardTerms {
                epoch_ms: match r.u64("epoch length")? {
                    0 => return Err(DecodeError::Invalid("epoch length")),
                    n => n,
                },
                reward_per_gib: u128::from_be_bytes(r.array("reward rate")?),
                last_closed_epoch: r.u64("epoch")?,
                claimable: u128::from_be_bytes(r.array("claimable")?),
                earning: match r.u8("earning")? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::Invalid("earning")),
                },
            }),
            R_RULES => {
                let deny = read_domains(&mut r, MAX_DENIED_SITES, "deny list")?;
                let site_per_minute = r.u32("site cap")?;
                let public_ip = match r.u8("address kind")? {
                    0 => None,
                    4 => Some(std::net::IpAddr::from(r.array::<4>("address")?)),
                    6 => Some(std::net::IpAddr::from(r.array::<16>("address")?)),
                    _ => return Err(DecodeError::Invalid("address kind")),
                };
                RelayMessage::Rules(crate::rules::NodeRules {
                    deny,
                    site_per_minute,
                    public_ip,
                })
            }
            R_REFUSED => RelayMessage::Refused {
                code: RefuseCode::from_byte(r.u8("refuse code")?)?,
                message: r.string(MAX_MESSAGE_BYTES, "message")?,
            },
            R_REQUEST => RelayMessage::Request(RequestHead {
                stream: r.u32("stream")?,
                job: JobId(r.array("job id")?),
                method: read_method(&mut r)?,
                url: r.string(MAX_URL_BYTES, "url")?,
                headers: r.headers()?,
                body: match r.u8("body kind")? {
                    0 => BodyKind::Empty,
                    1 => match r.u64("body length")? {
                        n if n <= MAX_REQUEST_BODY_BYTES => BodyKind::Sized(n),
                        _ => return Err(DecodeError::TooLarge("body length")),
                    },
                    2 => BodyKind::Streamed,
                    _ => return Err(DecodeError::Invalid("body kind")),
                },
                deadline_ms: r.u32("deadline")?,
            }),
            R_REQUEST_BODY => RelayMessage::RequestBody {
                stream: r.u32("stream")?,
                data: r.chunk()?,
            },
            R_REQUEST_END => RelayMessage::RequestEnd {
                stream: r.u32("stream")?,
            },
            R_CREDIT => RelayMessage::Credit {
                stream: r.u32("stream")?,
                bytes: r.u32("credit")?,
            },
            R_CANCEL => RelayMessage::Cancel {
                stream: r.u32("stream")?,
                reason: CancelReason::from_byte(r.u8("cancel reason")?)?,
            },
            R_PING => RelayMessage::Ping {
                nonce: r.u64("nonce")?,
            },
            R_PONG => RelayMessage::Pong {
                nonce: r.u64("nonce")?,
            },
            other => return Err(DecodeError::UnknownTag(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests;
