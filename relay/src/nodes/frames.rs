//! One frame from an authenticated node, applied: stream frames to their
//! job, availability and block lists to the node's handle, pings answered.
//! A frame that breaks the protocol is a [`Violation`], which ends the
//! connection.

use super::events::StreamEvent;
use super::handle::{NodeHandle, StreamSlot};
use bytes::Bytes;
use spareband_protocol::limits::STREAM_WINDOW;
use spareband_protocol::{NodeMessage, RelayMessage, ResponseHead, StreamId};
use std::sync::atomic::Ordering;

/// How a node broke the protocol after its handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// Hello or Auth again.
    #[error("{0} after the handshake")]
    HandshakeAgain(&'static str),
    /// A frame for a stream id the relay never opened.
    #[error("frame for stream {0}, which was never opened")]
    NeverOpened(StreamId),
    /// A second response head.
    #[error("second response head on stream {0}")]
    SecondHead(StreamId),
    /// Body bytes before the head.
    #[error("body before head on stream {0}")]
    BodyBeforeHead(StreamId),
    /// The end before the head.
    #[error("end before head on stream {0}")]
    EndBeforeHead(StreamId),
    /// More body than the stream's credit allowed.
    #[error(
        "stream {stream} sent past its flow-control window ({sent} bytes sent, {allowed} allowed)"
    )]
    PastWindow {
        /// The stream.
        stream: StreamId,
        /// Bytes sent.
        sent: u64,
        /// Bytes allowed.
        allowed: u64,
    },
}

/// Applies one frame from an authenticated node. An error is a protocol
/// violation that ends the connection.
pub(crate) fn apply(
    metrics: &crate::metrics::Metrics,
    handle: &NodeHandle,
    msg: NodeMessage,
) -> Result<(), Violation> {
    let stream_id = match &msg {
        NodeMessage::ResponseHead(h) | NodeMessage::Response { head: h, .. } => h.stream,
        NodeMessage::ResponseBody { stream, .. }
        | NodeMessage::ResponseEnd { stream }
        | NodeMessage::Credit { stream, .. }
        | NodeMessage::Fail { stream, .. } => *stream,
        NodeMessage::Ping { nonce } => {
            handle.send(&RelayMessage::Pong { nonce: *nonce });
            return Ok(());
        }
        NodeMessage::Pong { .. } => return Ok(()),
        NodeMessage::Availability {
            accepting,
            max_concurrency,
            ..
        } => {
            handle.set_availability(*accepting, *max_concurrency);
            return Ok(());
        }
        NodeMessage::Hello { .. } | NodeMessage::Auth { .. } => {
            return Err(Violation::HandshakeAgain(msg.name()))
        }
        // Handled by the reader, which can reach the database.
        NodeMessage::SetPayout { .. } => return Ok(()),
        NodeMessage::BlockList { domains } => {
            handle.set_blocked(domains.clone());
            return Ok(());
        }
    };
    let mut streams = handle.lock_streams();
    let Some(slot) = streams.get_mut(&stream_id) else {
        // Frames for a stream the relay already closed (cancel raced with the
        // node's answer) are dropped; frames for a stream never opened are a
        // violation.
        return if handle.was_opened(stream_id) {
            Ok(())
        } else {
            Err(Violation::NeverOpened(stream_id))
        };
    };
    match msg {
        NodeMessage::ResponseHead(head) => head_arrived(slot, head)?,
        NodeMessage::ResponseBody { data, .. } => body_arrived(metrics, slot, stream_id, data)?,
        NodeMessage::ResponseEnd { .. } => {
            end_arrived(slot, stream_id)?;
            streams.remove(&stream_id);
        }
        // The three above in one frame, under the same rules.
        NodeMessage::Response { head, body } => {
            head_arrived(slot, head)?;
            if !body.is_empty() {
                body_arrived(metrics, slot, stream_id, body)?;
            }
            end_arrived(slot, stream_id)?;
            streams.remove(&stream_id);
        }
        NodeMessage::Fail {
            reason, message, ..
        } => {
            let _ = slot.events.send(StreamEvent::Failed(reason, message));
            streams.remove(&stream_id);
        }
        NodeMessage::Credit { bytes, .. } => slot.credit.grant(bytes),
        _ => {}
    }
    Ok(())
}

fn head_arrived(slot: &mut StreamSlot, head: ResponseHead) -> Result<(), Violation> {
    if slot.got_head {
        return Err(Violation::SecondHead(head.stream));
    }
    slot.got_head = true;
    let _ = slot.events.send(StreamEvent::Head(head));
    Ok(())
}

/// Body bytes, within the stream's window plus the credit returned.
fn body_arrived(
    metrics: &crate::metrics::Metrics,
    slot: &mut StreamSlot,
    stream: StreamId,
    data: Bytes,
) -> Result<(), Violation> {
    if !slot.got_head {
        return Err(Violation::BodyBeforeHead(stream));
    }
    slot.received += data.len() as u64;
    let allowed = STREAM_WINDOW as u64 + slot.credited.load(Ordering::Acquire);
    if slot.received > allowed {
        return Err(Violation::PastWindow {
            stream,
            sent: slot.received,
            allowed,
        });
    }
    let held = slot.buffered.fetch_add(data.len(), Ordering::AcqRel) + data.len();
    metrics.stream_buffered(held);
    let _ = slot.events.send(StreamEvent::Body(data));
    Ok(())
}

fn end_arrived(slot: &mut StreamSlot, stream: StreamId) -> Result<(), Violation> {
    if !slot.got_head {
        return Err(Violation::EndBeforeHead(stream));
    }
    let _ = slot.events.send(StreamEvent::End);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::nodes::registry::{NewNode, Pick, PickResult, Registry};
    use crate::nodes::OpenStream;
    use bytes::Bytes;
    use spareband_protocol::{ClientKind, NodeId, ResponseHead};
    use std::sync::Arc;
    use tokio::sync::mpsc;

    /// A registry with one node, and that node with a slot reserved.
    fn one_node(
        metrics: &Arc<Metrics>,
    ) -> (Registry, mpsc::UnboundedReceiver<Bytes>, Arc<NodeHandle>) {
        let registry = Registry::new(metrics.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        registry.insert(
            NewNode {
                id: NodeId([1; 16]),
                public_key: [0; 32],
                kind: ClientKind::Native,
                ip: "127.0.0.1".parse().unwrap(),
                country: None,
                area: Default::default(),
                max_concurrency: 4,
            },
            tx,
        );
        let PickResult::Reserved(node) = registry.pick(&Pick::default()) else {
            panic!("no node")
        };
        (registry, rx, node)
    }

    fn body(stream: u32) -> NodeMessage {
        NodeMessage::ResponseBody {
            stream,
            data: Bytes::from(vec![0u8; 64 * 1024]),
        }
    }

    #[tokio::test]
    async fn a_node_may_send_the_window_plus_returned_credit_and_no_more() {
        let metrics = Arc::new(Metrics::default());
        let (_registry, mut rx, node) = one_node(&metrics);
        let mut stream = OpenStream::open(&node);
        let id = stream.id();
        let head = NodeMessage::ResponseHead(ResponseHead {
            stream: id,
            status: 200,
            headers: vec![],
        });
        apply(&metrics, &node, head).unwrap();
        // Four chunks fill the 256 KiB window exactly.
        for _ in 0..4 {
            apply(&metrics, &node, body(id)).unwrap();
        }
        // The customer takes one chunk: one chunk of credit goes back, and one
        // more chunk is allowed.
        stream.consumed(64 * 1024);
        let credit = RelayMessage::decode(&rx.recv().await.unwrap()).unwrap();
        assert_eq!(
            credit,
            RelayMessage::Credit {
                stream: id,
                bytes: 64 * 1024
            }
        );
        apply(&metrics, &node, body(id)).unwrap();
        let err = apply(&metrics, &node, body(id)).unwrap_err().to_string();
        assert!(err.contains("flow-control window"), "{err}");
        assert_eq!(metrics.stream_buffer_peak(), STREAM_WINDOW as usize);
    }

    #[tokio::test]
    async fn a_whole_response_is_head_body_and_end_under_the_same_rules() {
        let metrics = Arc::new(Metrics::default());
        let (_registry, _rx, node) = one_node(&metrics);
        let whole = |stream| NodeMessage::Response {
            head: ResponseHead {
                stream,
                status: 200,
                headers: vec![],
            },
            body: Bytes::from_static(b"hello"),
        };
        let mut stream = OpenStream::open(&node);
        let id = stream.id();
        apply(&metrics, &node, whole(id)).unwrap();
        let mut got = Vec::new();
        while let Ok(e) = stream.events.try_recv() {
            got.push(match e {
                StreamEvent::Head(h) => format!("head {}", h.status),
                StreamEvent::Body(b) => format!("body {}", b.len()),
                StreamEvent::End => "end".into(),
                _ => "other".into(),
            });
        }
        assert_eq!(got, ["head 200", "body 5", "end"]);
        // The stream is closed: the same frame again is late, not a violation.
        assert!(apply(&metrics, &node, whole(id)).is_ok());
        // After a head, a whole response is a second head.
        let second = OpenStream::open(&node);
        let head = NodeMessage::ResponseHead(ResponseHead {
            stream: second.id(),
            status: 200,
            headers: vec![],
        });
        apply(&metrics, &node, head).unwrap();
        assert_eq!(
            apply(&metrics, &node, whole(second.id())),
            Err(Violation::SecondHead(second.id()))
        );
    }

    #[tokio::test]
    async fn frames_for_streams_never_opened_are_violations_but_late_ones_are_not() {
        let metrics = Arc::new(Metrics::default());
        let (_registry, _rx, node) = one_node(&metrics);
        assert!(apply(&metrics, &node, body(9)).is_err());
        let stream = OpenStream::open(&node);
        let id = stream.id();
        drop(stream); // the customer went away: the stream is closed
        assert!(apply(&metrics, &node, body(id)).is_ok());
        assert_eq!(node.active(), 0);
    }
}
