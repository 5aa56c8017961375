//! A tunnel job, for `CONNECT` (`mode-tunnel`) and SOCKS5: a native node of
//! this relay opens a TCP connection to the host (its own policy on the
//! name and on every address it resolves to) and bytes go both ways under
//! the protocol's credit, metered each way like any job's, for at most
//! [`MAX_JOB_TIMEOUT`] and [`spareband_protocol::limits`]' response limit.
//! Browser nodes never get these jobs: a browser cannot open a socket.

use crate::error::ApiError;
use crate::jobs::{self, JobBody, JobRequest, ResponseBody};
use crate::AppState;
use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use spareband_ledger::CustomerId;
use spareband_protocol::limits::MAX_JOB_TIMEOUT;
use spareband_protocol::NodeId;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::username::Targeting;

/// Bytes read from the customer at a time.
const READ_BYTES: usize = 64 * 1024;
/// Chunks from the customer waiting for the node's credit, per tunnel.
const QUEUE: usize = 4;

/// A tunnel the node has opened, its bytes not yet flowing.
pub struct Open {
    /// The node holding it.
    pub node: NodeId,
    to_node: mpsc::Sender<Bytes>,
    from_node: ResponseBody,
}

/// Asks a native node for a tunnel to `target`'s host and port, with the
/// customer's targeting; returns once the node has the connection open.
pub async fn open(
    state: &Arc<AppState>,
    customer: CustomerId,
    targeting: &Targeting,
    target: spareband_protocol::Target,
) -> Result<Open, ApiError> {
    // What the customer sends goes to the node as the job's body, once it
    // flows (after the customer is told the tunnel is open).
    let (to_node, from_customer) = mpsc::channel::<Bytes>(QUEUE);
    let up = futures_util::stream::unfold(from_customer, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let job = JobRequest {
        customer,
        method: "CONNECT".into(),
        target,
        headers: Vec::new(),
        body: JobBody::Streaming {
            body: Body::from_stream(up),
            length: None,
        },
        country: targeting.country.clone(),
        area: targeting.area()?,
        session_ttl: targeting.session_ttl(),
        session: targeting.session.clone(),
        timeout: MAX_JOB_TIMEOUT,
        permit: None,
        only: None,
        from_peer: false,
    };
    let res = jobs::run(state, job).await?;
    Ok(Open {
        node: res.node,
        to_node,
        from_node: res.body,
    })
}

impl Open {
    /// Copies bytes both ways between the customer's connection and the
    /// node until the target's side ends (or the customer goes: the job is
    /// then cancelled at the node).
    pub async fn pipe<IO: AsyncRead + AsyncWrite + Send + 'static>(self, io: IO) {
        let Open {
            to_node,
            mut from_node,
            ..
        } = self;
        let (mut reader, mut writer) = tokio::io::split(io);
        let upward = tokio::spawn(async move {
            let mut buf = vec![0u8; READ_BYTES];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let chunk = Bytes::copy_from_slice(&buf[..n]);
                        if to_node.send(chunk).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        while let Some(frame) = from_node.frame().await {
            let Ok(frame) = frame else { break };
            if let Ok(data) = frame.into_data() {
                if writer.write_all(&data).await.is_err() {
                    break;
                }
            }
        }
        let _ = writer.shutdown().await;
        upward.abort();
    }
}
