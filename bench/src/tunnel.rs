//! The raw tunnel Spareband's small requests are compared with: two TCP
//! hops, each a `copy_bidirectional`, the shape of a reverse tunnel (the
//! customer's side, then the exit next to the target), with no parsing,
//! metering or routing. What Spareband adds to a tunnel is what the ratio
//! against this measures.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};

/// Starts one hop: every connection to the returned address is joined to a
/// new connection to `next`.
async fn hop(next: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(next).await else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    Ok(addr)
}

/// Starts the two hops in front of `target`; returns the customer's end.
pub async fn start(target: SocketAddr) -> anyhow::Result<SocketAddr> {
    let exit = hop(target).await?;
    hop(exit).await
}
