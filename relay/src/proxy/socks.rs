//! The SOCKS5 port (`socks_listen`): RFC 1928 with RFC 1929
//! username/password, the password the API key and the username the same
//! targeting as the HTTP proxy's. `CONNECT` only, as a tunnel through a
//! native node ([`super::tunnel`]). A domain name goes to the node as it
//! is and the node resolves it (what `socks5h://` asks for): the relay never
//! resolves it for the connection.
//!
//! Connections are admitted against the relay's per-address and total caps,
//! and the negotiation must finish within [`NEGOTIATION_TIMEOUT`]; after it
//! the relay's idle timeout applies, as on its other ports.

use super::username;
use crate::api::{authenticate_key, request};
use crate::conns::{ConnLimits, Deadlined};
use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How long a client has to greet, sign in and ask.
pub const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);

const VERSION: u8 = 5;
/// RFC 1929's sub-negotiation version.
const AUTH_VERSION: u8 = 1;
const METHOD_PASSWORD: u8 = 2;
const NO_ACCEPTABLE_METHOD: u8 = 0xff;
const CMD_CONNECT: u8 = 1;

/// RFC 1928's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// Succeeded.
    Succeeded = 0,
    /// General failure (no node, limits, the relay itself).
    GeneralFailure = 1,
    /// Not allowed by the rules (the target policy).
    NotAllowed = 2,
    /// Host unreachable (the node could not reach it).
    HostUnreachable = 4,
    /// TTL expired (the job's deadline).
    TtlExpired = 6,
    /// Command not supported (anything but CONNECT).
    CommandNotSupported = 7,
    /// Address type not supported.
    AddressNotSupported = 8,
}

impl Reply {
    /// The reply for a job refused or failed with `e`.
    pub fn for_error(e: &ApiError) -> Reply {
        match e.code {
            ErrorCode::TargetForbidden | ErrorCode::InvalidRequest => Reply::NotAllowed,
            ErrorCode::NodeFailed => Reply::HostUnreachable,
            ErrorCode::Timeout => Reply::TtlExpired,
            _ => Reply::GeneralFailure,
        }
    }
}

/// Accepts SOCKS5 clients until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    limits: Arc<ConnLimits>,
    shutdown: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "SOCKS: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = match limits.admit(peer.ip()) {
            Ok(s) => s,
            Err(why) => {
                state.metrics.connection_refused(why);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let io = Deadlined::new(tcp, &limits);
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = client(&state, io).await {
                debug!(%peer, error = %e, "SOCKS: client refused");
            }
        });
    }
}

/// What went wrong with a client, for the log.
#[derive(Debug, thiserror::Error)]
enum SocksError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("negotiation took longer than {NEGOTIATION_TIMEOUT:?}")]
    Slow,
    #[error("{0}")]
    Protocol(&'static str),
    #[error("{0}")]
    Refused(String),
}

async fn client<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    state: &Arc<AppState>,
    mut io: IO,
) -> Result<(), SocksError> {
    let asked = tokio::time::timeout(NEGOTIATION_TIMEOUT, negotiate(state, &mut io))
        .await
        .map_err(|_| SocksError::Slow)??;
    let (customer, targeting, host, port) = asked;
    let target = match request::target(&state.policy, &format!("https://{host}:{port}/")) {
        Ok(t) => t,
        Err(e) => {
            reply(&mut io, Reply::for_error(&e)).await?;
            return Err(SocksError::Refused(e.message));
        }
    };
    match super::tunnel::open(state, customer, &targeting, target).await {
        Ok(open) => {
            reply(&mut io, Reply::Succeeded).await?;
            open.pipe(io).await;
            Ok(())
        }
        Err(e) => {
            reply(&mut io, Reply::for_error(&e)).await?;
            Err(SocksError::Refused(e.message))
        }
    }
}

/// Greeting, sign-in and request; the host is a name or an address in
/// text (IPv6 in brackets).
async fn negotiate<IO: AsyncRead + AsyncWrite + Unpin>(
    state: &AppState,
    io: &mut IO,
) -> Result<
    (
        spareband_ledger::CustomerId,
        username::Targeting,
        String,
        u16,
    ),
    SocksError,
> {
    let [version, n] = read_array(io).await?;
    if version != VERSION {
        return Err(SocksError::Protocol("not SOCKS5"));
    }
    let methods = read_vec(io, n as usize).await?;
    if !methods.contains(&METHOD_PASSWORD) {
        io.write_all(&[VERSION, NO_ACCEPTABLE_METHOD]).await?;
        return Err(SocksError::Protocol(
            "the client offered no username/password sign-in (the password is the API key)",
        ));
    }
    io.write_all(&[VERSION, METHOD_PASSWORD]).await?;
    let [auth_version, user_len] = read_array(io).await?;
    if auth_version != AUTH_VERSION {
        return Err(SocksError::Protocol("not RFC 1929 sign-in"));
    }
    let user = read_vec(io, user_len as usize).await?;
    let [pass_len] = read_array(io).await?;
    let pass = read_vec(io, pass_len as usize).await?;
    let signed_in = match (std::str::from_utf8(&user), std::str::from_utf8(&pass)) {
        (Ok(u), Ok(p)) if !p.is_empty() => match authenticate_key(state, p).await {
            Ok(c) => match username::parse(u) {
                // SOCKS5 carries bytes, not HTTP requests: there is nothing
                // the relay could run as jobs, so the parameter cannot apply.
                Ok(t) if t.mode == username::Mode::Fetch => Err(SocksError::Refused(
                    "mode-fetch is for the HTTP proxy port only; SOCKS5 always tunnels".into(),
                )),
                Ok(t) => Ok((c, t)),
                Err(e) => Err(SocksError::Refused(e.to_string())),
            },
            Err(e) => Err(SocksError::Refused(e.message)),
        },
        _ => Err(SocksError::Protocol("the username or key is not text")),
    };
    let (customer, targeting) = match signed_in {
        Ok(x) => x,
        Err(e) => {
            io.write_all(&[AUTH_VERSION, 1]).await?;
            return Err(e);
        }
    };
    io.write_all(&[AUTH_VERSION, 0]).await?;
    let [version, command, _reserved, kind] = read_array(io).await?;
    if version != VERSION {
        return Err(SocksError::Protocol("not SOCKS5"));
    }
    let host = match kind {
        1 => Ipv4Addr::from(read_array::<4, _>(io).await?).to_string(),
        3 => {
            let [len] = read_array(io).await?;
            String::from_utf8(read_vec(io, len as usize).await?)
                .map_err(|_| SocksError::Protocol("the host name is not text"))?
        }
        4 => format!("[{}]", Ipv6Addr::from(read_array::<16, _>(io).await?)),
        _ => {
            reply(io, Reply::AddressNotSupported).await?;
            return Err(SocksError::Protocol("unknown address type"));
        }
    };
    let port = u16::from_be_bytes(read_array(io).await?);
    if command != CMD_CONNECT {
        reply(io, Reply::CommandNotSupported).await?;
        return Err(SocksError::Protocol("only CONNECT is served"));
    }
    Ok((customer, targeting, host, port))
}

async fn reply<IO: AsyncWrite + Unpin>(io: &mut IO, r: Reply) -> std::io::Result<()> {
    // The bound address is not told: 0.0.0.0:0.
    io.write_all(&[VERSION, r as u8, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
}

async fn read_array<const N: usize, IO: AsyncRead + Unpin>(
    io: &mut IO,
) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    io.read_exact(&mut b).await?;
    Ok(b)
}

async fn read_vec<IO: AsyncRead + Unpin>(io: &mut IO, n: usize) -> std::io::Result<Vec<u8>> {
    // At most 255 bytes: every length here is one byte.
    let mut b = vec![0u8; n];
    io.read_exact(&mut b).await?;
    Ok(b)
}
