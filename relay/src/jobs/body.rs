//! A job's response body, streamed from the node to the customer under the
//! stream's credit. It ends the job's attempt exactly once, when it is
//! dropped: delivered, failed (with the error it handed on) or cancelled.

use super::attempt::Attempt;
use super::error::{JobError, NodeFailure, TooLarge};
use crate::nodes::{LocalFailure, OpenStream, StreamEvent};
use crate::AppState;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use spareband_ledger::JobOutcome;
use spareband_protocol::CancelReason;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// A job's response body: from a node of this relay, or streamed on from
/// the relay of the cluster that ran the job (`cluster::hop`).
pub enum ResponseBody {
    /// From a node of this relay.
    Local(LocalBody),
    /// From another relay of the cluster.
    Remote(crate::cluster::hop::RemoteBody),
}

impl ResponseBody {
    /// Caps the body (JSON mode holds it in memory).
    pub fn set_limit(&mut self, limit: u64) {
        match self {
            ResponseBody::Local(b) => b.set_limit(limit),
            ResponseBody::Remote(b) => b.set_limit(limit),
        }
    }

    /// Metered bytes so far: (up, down).
    pub fn bytes(&self) -> (u64, u64) {
        match self {
            ResponseBody::Local(b) => b.bytes(),
            ResponseBody::Remote(b) => b.bytes(),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = JobError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, JobError>>> {
        match self.get_mut() {
            ResponseBody::Local(b) => Pin::new(b).poll_frame(cx),
            ResponseBody::Remote(b) => b.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Local(b) => b.is_end_stream(),
            ResponseBody::Remote(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Local(b) => b.size_hint(),
            ResponseBody::Remote(b) => b.size_hint(),
        }
    }
}

/// A job's response body from one of this relay's nodes. Each chunk handed
/// on returns credit to the node; dropping it early cancels the job.
pub struct LocalBody {
    pub(super) stream: OpenStream,
    /// Taken when the body is dropped.
    pub(super) attempt: Option<Attempt>,
    pub(super) state: Arc<AppState>,
    pub(super) sleep: Pin<Box<Sleep>>,
    pub(super) timeout: Duration,
    pub(super) received: u64,
    pub(super) limit: u64,
    pub(super) content_length: Option<u64>,
    /// How the job ended, once it has.
    pub(super) ended: Option<JobOutcome>,
    /// The key's concurrency slot, held until the body is done or dropped.
    pub(super) permit: Option<crate::keylimits::Permit>,
}

impl LocalBody {
    /// Caps the body (JSON mode holds it in memory).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Metered bytes so far: (up, down).
    pub fn bytes(&self) -> (u64, u64) {
        self.stream.bytes()
    }

    fn fail(
        &mut self,
        reason: CancelReason,
        e: JobError,
    ) -> Poll<Option<Result<Frame<Bytes>, JobError>>> {
        self.ended = Some(e.outcome());
        self.stream.set_cancel_reason(reason);
        Poll::Ready(Some(Err(e)))
    }
}

/// The error a local failure on the request side is to the customer.
pub(super) fn local(f: LocalFailure) -> JobError {
    match f {
        LocalFailure::RequestTooLarge => JobError::RequestTooLarge,
        LocalFailure::RequestUnreadable => JobError::RequestUnreadable,
    }
}

impl Body for LocalBody {
    type Data = Bytes;
    type Error = JobError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, JobError>>> {
        if self.ended.is_some() {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            let t = self.timeout;
            return self.fail(CancelReason::DeadlinePassed, JobError::Timeout(t));
        }
        let event = match self.stream.events.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(e) => e,
        };
        match event {
            Some(StreamEvent::Body(data)) => {
                let len = data.len();
                self.stream.consumed(len);
                self.received += len as u64;
                if self.received > self.limit {
                    let limit = self.limit;
                    return self.fail(
                        CancelReason::TooLarge,
                        JobError::ResponseTooLarge(TooLarge::Relay(limit)),
                    );
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(StreamEvent::End) => {
                self.stream.set_finished();
                // A target may answer before reading the whole request body:
                // stop sending it, so the receipt counts exactly what went.
                self.stream.stop_pump();
                if let Some(declared) = self.content_length {
                    if declared != self.received {
                        let sent = self.received;
                        return self.fail(
                            CancelReason::ProtocolViolation,
                            JobError::NodeFailed(NodeFailure::LengthMismatch { sent, declared }),
                        );
                    }
                }
                self.ended = Some(JobOutcome::Ok);
                Poll::Ready(None)
            }
            Some(StreamEvent::Failed(reason, message)) => {
                self.stream.set_finished();
                let e = JobError::mid_response(reason, message, self.timeout);
                self.fail(CancelReason::CustomerGone, e)
            }
            Some(StreamEvent::LocalError(f)) => self.fail(CancelReason::CustomerGone, local(f)),
            Some(StreamEvent::NodeGone) | None => {
                self.stream.set_finished();
                self.fail(
                    CancelReason::CustomerGone,
                    JobError::NodeFailed(NodeFailure::DisconnectedMidResponse),
                )
            }
            Some(StreamEvent::Head(_)) => self.fail(
                CancelReason::ProtocolViolation,
                JobError::NodeFailed(NodeFailure::SecondHead),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended.is_some()
    }

    fn size_hint(&self) -> SizeHint {
        match self.content_length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl Drop for LocalBody {
    fn drop(&mut self) {
        let outcome = self.ended.unwrap_or_else(|| {
            // With an exact Content-Length, hyper drops the body as soon as
            // the declared bytes are out, without waiting for the node's end
            // frame: that job was delivered.
            if self.content_length == Some(self.received) {
                self.stream.set_finished();
                JobOutcome::Ok
            } else {
                JobOutcome::Cancelled
            }
        });
        let (up, down) = self.bytes();
        if let Some(p) = &mut self.permit {
            p.spend(up + down);
        }
        if let Some(a) = self.attempt.take() {
            a.finish(&self.state, outcome, up, down);
        }
    }
}
