//! Bounds on accepted connections, so that no peer can hold the relay's
//! sockets and tasks: a global and a per-address cap checked at accept
//! (before TLS), and a deadline on every socket: the first byte within
//! `first_byte_timeout_secs` (covering the TLS handshake's start and HTTP/1
//! or HTTP/2 detection), then `idle_timeout_secs` with no byte moving either
//! way closes it (a customer downloading a long answer sends nothing but is
//! not idle).

use crate::config::Config;
use crate::metrics::Metrics;
use crate::peer::AddrGroup;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The caps and deadlines, from the configuration.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    /// 0: no per-address cap.
    max_per_ip: usize,
    /// Open connections: in total, and per address group.
    open: Mutex<(usize, HashMap<AddrGroup, usize>)>,
    /// Deadline for the first byte.
    pub first_byte: Duration,
    /// Longest silence after it.
    pub idle: Duration,
    metrics: Arc<Metrics>,
}

/// Why a connection was closed at accept (defined with the metric that
/// counts it).
pub use crate::metrics::ConnRefused as Refused;

/// One admitted connection; its place is given back on drop.
#[derive(Debug)]
pub struct ConnSlot {
    limits: Arc<ConnLimits>,
    group: AddrGroup,
}

impl ConnLimits {
    /// The limits a configuration sets.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(ConnLimits {
            max_total: config.max_connections as usize,
            max_per_ip: config.max_connections_per_ip as usize,
            open: Mutex::new((0, HashMap::new())),
            first_byte: Duration::from_secs(config.first_byte_timeout_secs),
            idle: Duration::from_secs(config.idle_timeout_secs),
            metrics,
        })
    }

    /// Takes a place for a connection from `peer`, or says why not.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnSlot, Refused> {
        let group = AddrGroup::of(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 >= self.max_total {
            return Err(Refused::Total);
        }
        let here = open.1.entry(group).or_insert(0);
        if self.max_per_ip > 0 && *here >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        *here += 1;
        open.0 += 1;
        self.metrics.conns_open.set(open.0 as u64);
        Ok(ConnSlot {
            limits: self.clone(),
            group,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).0
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 -= 1;
        let total = open.0 as u64;
        self.limits.metrics.conns_open.set(total);
        if let Some(n) = open.1.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.group);
            }
        }
    }
}

/// A socket whose reads fail with `TimedOut` when nothing moves in time:
/// the first byte within `first_byte`, then a byte read or written within
/// `idle` of the last. The timer is re-armed only when it fires (from the
/// time of the last byte), not on every read: the small-request path stays
/// as it was.
pub struct Deadlined<T> {
    inner: T,
    sleep: Pin<Box<Sleep>>,
    last_active: Option<Instant>,
    first_byte: Duration,
    idle: Duration,
}

impl<T> Deadlined<T> {
    /// Wraps `inner` with the deadlines of `limits`.
    pub fn new(inner: T, limits: &ConnLimits) -> Self {
        Deadlined {
            inner,
            sleep: Box::pin(tokio::time::sleep(limits.first_byte)),
            last_active: None,
            first_byte: limits.first_byte,
            idle: limits.idle,
        }
    }
}

impl<T> Deadlined<T> {
    /// Starts the first-byte deadline again (after a TLS handshake).
    pub fn expect_first_byte(&mut self) {
        self.last_active = None;
        self.sleep.as_mut().reset(Instant::now() + self.first_byte);
    }

    fn wrote(&mut self, r: &Poll<io::Result<usize>>) {
        // Only once the peer has spoken: writing never stands in for the
        // first byte.
        if matches!(r, Poll::Ready(Ok(n)) if *n > 0) && self.last_active.is_some() {
            self.last_active = Some(Instant::now());
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Deadlined<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last_active = Some(Instant::now());
                }
                Poll::Ready(r)
            }
            Poll::Pending => loop {
                if this.sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                match this.last_active {
                    Some(at) if at + this.idle > Instant::now() => {
                        this.sleep.as_mut().reset(at + this.idle);
                    }
                    _ => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the peer sent nothing in time",
                        )))
                    }
                }
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Deadlined<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: u32, per_ip: u32) -> Arc<ConnLimits> {
        ConnLimits::new(
            &Config {
                max_connections: total,
                max_connections_per_ip: per_ip,
                ..Config::default()
            },
            Arc::default(),
        )
    }

    #[test]
    fn caps_count_ipv6_by_64_and_give_places_back() {
        let l = limits(3, 2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff".parse().unwrap();
        let s1 = l.admit(a).unwrap();
        let _s2 = l.admit(b).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), Refused::PerIp);
        let _s3 = l.admit("81.2.69.142".parse().unwrap()).unwrap();
        assert_eq!(
            l.admit("81.2.69.143".parse().unwrap()).unwrap_err(),
            Refused::Total
        );
        drop(s1);
        assert_eq!(l.open(), 2);
        assert!(l.admit(a).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_socket_times_out_and_a_talking_one_does_not() {
        let l = limits(10, 10);
        let (client, server) = tokio::io::duplex(64);
        let mut server = Deadlined::new(server, &l);
        let mut client = client;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = [0u8; 8];
        // Bytes every 9 s keep it open past the 10 s first-byte deadline...
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(9)).await;
            client.write_all(b"x").await.unwrap();
            assert_eq!(server.read(&mut buf).await.unwrap(), 1);
        }
        // ...then silence longer than the idle timeout closes it. (An hour
        // of paused time stands for "never": without the deadline, these
        // reads would wait for ever; checked once.)
        let never = Duration::from_secs(3600);
        let e = tokio::time::timeout(never, server.read(&mut buf))
            .await
            .expect("the idle deadline fires")
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let (_c, s) = tokio::io::duplex(64);
        let mut silent = Deadlined::new(s, &l);
        let started = Instant::now();
        let r = tokio::time::timeout(never, silent.read(&mut buf))
            .await
            .expect("the first-byte deadline fires");
        assert!(r.is_err());
        assert_eq!(started.elapsed(), l.first_byte);
    }
}
