//! A tunnel job (`CONNECT`): a TCP connection to the target, opened through
//! the same policy resolver as every HTTP job (the name, and every address
//! it resolves to, must pass the node's target policy and the owner's own
//! networks), then bytes copied both ways: the relay's request-body chunks
//! to the target, credit returned as they go; the target's bytes back as
//! response-body chunks under the relay's credit, counted against the one
//! response limit every job has. The relay sends these jobs to native
//! nodes only; a browser cannot open a socket.

use crate::http::{describe, forbidden_cause, Connector};
use crate::outbox::Outbox;
use bytes::{Bytes, BytesMut};
use spareband_protocol::flow::CreditGate;
use spareband_protocol::limits::{CREDIT_BATCH, MAX_CHUNK_BYTES};
use spareband_protocol::metering::ResponseSize;
use spareband_protocol::{NodeMessage, ResponseHead, StreamId};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Why a tunnel failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TunnelError {
    /// The host, or an address it resolves to, is not one this node may reach.
    #[error("{0}")]
    Forbidden(String),
    /// The target could not be reached, or the connection failed.
    #[error("{0}")]
    Unreachable(String),
    /// More bytes came back than a job may carry.
    #[error("{0}")]
    TooLarge(String),
    /// The relay cancelled the job.
    #[error("cancelled")]
    Cancelled,
}

/// Opens the connection to `host:port`, through the policy resolver.
pub(crate) async fn connect(
    connector: &Connector,
    host: &str,
    port: u16,
) -> Result<TcpStream, TunnelError> {
    let uri: http::Uri = format!("http://{host}:{port}/")
        .parse()
        .map_err(|e| TunnelError::Unreachable(format!("the tunnel's host cannot be used: {e}")))?;
    let mut c = connector.clone();
    match tower_service::Service::call(&mut c, uri).await {
        Ok(io) => Ok(io.into_inner()),
        Err(e) => Err(match forbidden_cause(&e) {
            Some(why) => TunnelError::Forbidden(why),
            None => TunnelError::Unreachable(format!(
                "the target could not be reached: {}",
                describe(&e)
            )),
        }),
    }
}

/// Tells the relay the tunnel is open, then copies bytes both ways until
/// the target closes its side. Returns the bytes metered down (head and
/// body); the caller sends the end.
pub(crate) async fn pipe(
    tcp: TcpStream,
    up: Option<mpsc::UnboundedReceiver<Bytes>>,
    out: &Outbox,
    credit: &CreditGate,
    stream: StreamId,
    owner: &Arc<crate::owner::Owner>,
) -> Result<u64, TunnelError> {
    let head = ResponseHead {
        stream,
        status: 200,
        headers: Vec::new(),
    };
    let mut down = ResponseSize::new(&head);
    out.send(&NodeMessage::ResponseHead(head));
    let (mut from_target, mut to_target) = tcp.into_split();
    let up_out = out.clone();
    let up_owner = owner.clone();
    let upward = async move {
        let Some(mut rx) = up else {
            let _ = to_target.shutdown().await;
            return;
        };
        let mut unreturned = 0u32;
        while let Some(chunk) = rx.recv().await {
            up_owner.pace(chunk.len()).await;
            unreturned += chunk.len() as u32;
            if to_target.write_all(&chunk).await.is_err() {
                return;
            }
            if unreturned >= CREDIT_BATCH {
                up_out.send(&NodeMessage::Credit {
                    stream,
                    bytes: std::mem::take(&mut unreturned),
                });
            }
        }
        // The customer finished sending: the target reads the end.
        let _ = to_target.shutdown().await;
    };
    let downward = async {
        let mut buf = BytesMut::with_capacity(MAX_CHUNK_BYTES);
        loop {
            buf.reserve(MAX_CHUNK_BYTES);
            let n = from_target.read_buf(&mut buf).await.map_err(|e| {
                TunnelError::Unreachable(format!("the target's connection broke off: {e}"))
            })?;
            if n == 0 {
                return Ok::<_, TunnelError>(down.bytes());
            }
            down.add(buf.len())
                .map_err(|e| TunnelError::TooLarge(e.to_string()))?;
            let mut data = buf.split().freeze();
            while !data.is_empty() {
                let Some(n) = credit.take(data.len().min(MAX_CHUNK_BYTES)).await else {
                    return Err(TunnelError::Cancelled);
                };
                owner.pace(n).await;
                out.send(&NodeMessage::ResponseBody {
                    stream,
                    data: data.split_to(n),
                });
            }
        }
    };
    // The upward half runs beside; the tunnel ends with the target's side.
    let up_task = tokio::spawn(upward);
    let result = downward.await;
    up_task.abort();
    result
}
