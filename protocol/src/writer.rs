//! The one WebSocket writer loop of a connection, used by the relay for each
//! node and by the native node for its relay (feature `writer`; the browser
//! core writes through the browser's own WebSocket).
//!
//! Frames are queued as encoded bytes. The loop feeds up to [`WRITE_BATCH`]
//! queued frames before it flushes, so a burst goes out in few syscalls (and
//! few TLS records) while no frame waits long, and sends a ping every
//! `ping_every`. It ends when the queue closes or `stop` completes.

use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Frames fed before one flush.
pub const WRITE_BATCH: usize = 32;

/// How a connection's frames are written.
pub struct Writer<Wrap, Ping, Taken> {
    /// Makes a transport message of an encoded frame.
    pub wrap: Wrap,
    /// The encoded ping with this nonce.
    pub ping: Ping,
    /// Told the length of every frame taken off the queue (for a bounded
    /// queue's accounting).
    pub taken: Taken,
    /// Time between pings.
    pub ping_every: Duration,
}

/// Why [`Writer::run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended<T> {
    /// Every sender of the queue is gone.
    QueueClosed,
    /// `stop` completed with this.
    Stopped(T),
}

impl<M, Wrap, Ping, Taken> Writer<Wrap, Ping, Taken>
where
    Wrap: Fn(Bytes) -> M,
    Ping: Fn(u64) -> Bytes,
    Taken: Fn(usize),
{
    /// Writes queued frames and pings until the queue closes or `stop`
    /// completes (checked first, so a stop is never starved by traffic).
    pub async fn run<S, T>(
        &self,
        sink: &mut S,
        rx: &mut UnboundedReceiver<Bytes>,
        stop: impl Future<Output = T>,
    ) -> Result<Ended<T>, S::Error>
    where
        S: Sink<M> + Unpin,
    {
        let mut ping = tokio::time::interval(self.ping_every);
        ping.tick().await;
        let mut nonce = 0u64;
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                why = &mut stop => return Ok(Ended::Stopped(why)),
                frame = rx.recv() => {
                    let Some(frame) = frame else { return Ok(Ended::QueueClosed) };
                    self.feed(sink, frame).await?;
                    for _ in 1..WRITE_BATCH {
                        match rx.try_recv() {
                            Ok(f) => self.feed(sink, f).await?,
                            Err(_) => break,
                        }
                    }
                    sink.flush().await?;
                }
                _ = ping.tick() => {
                    nonce += 1;
                    sink.send((self.wrap)((self.ping)(nonce))).await?;
                }
            }
        }
    }

    /// Feeds what is already queued, without waiting for more (before a
    /// close, so a refusal or the last receipts still go out).
    pub async fn drain<S>(
        &self,
        sink: &mut S,
        rx: &mut UnboundedReceiver<Bytes>,
    ) -> Result<(), S::Error>
    where
        S: Sink<M> + Unpin,
    {
        while let Ok(frame) = rx.try_recv() {
            self.feed(sink, frame).await?;
        }
        Ok(())
    }

    async fn feed<S>(&self, sink: &mut S, frame: Bytes) -> Result<(), S::Error>
    where
        S: Sink<M> + Unpin,
    {
        (self.taken)(frame.len());
        sink.feed((self.wrap)(frame)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc as fmpsc;
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn writer(
        taken: &AtomicUsize,
    ) -> Writer<impl Fn(Bytes) -> Bytes, impl Fn(u64) -> Bytes, impl Fn(usize) + '_> {
        Writer {
            wrap: |b: Bytes| b,
            ping: |n: u64| Bytes::from(format!("ping {n}")),
            taken: move |n| {
                taken.fetch_add(n, Ordering::Relaxed);
            },
            ping_every: Duration::from_secs(20),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn frames_go_in_order_pings_keep_time_and_a_stop_ends_it() {
        let taken = AtomicUsize::new(0);
        let w = writer(&taken);
        let (mut sink, mut out) = fmpsc::unbounded::<Bytes>();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..100u8 {
            tx.send(Bytes::from(vec![i])).unwrap();
        }
        let stop = tokio::time::sleep(Duration::from_secs(45));
        let ended = w.run(&mut sink, &mut rx, stop).await.unwrap();
        assert_eq!(ended, Ended::Stopped(()));
        drop(sink);
        let got: Vec<Bytes> = out.by_ref().collect().await;
        let frames: Vec<&Bytes> = got.iter().filter(|b| b.len() == 1).collect();
        assert_eq!(frames.len(), 100);
        assert!(frames.iter().enumerate().all(|(i, b)| b[0] == i as u8));
        let pings: Vec<&Bytes> = got.iter().filter(|b| b.len() > 1).collect();
        assert_eq!(pings, [&Bytes::from("ping 1"), &Bytes::from("ping 2")]);
        assert_eq!(taken.load(Ordering::Relaxed), 100);
    }

    #[tokio::test]
    async fn a_closed_queue_ends_it_and_drain_sends_what_is_left() {
        let taken = AtomicUsize::new(0);
        let w = writer(&taken);
        let (mut sink, out) = fmpsc::unbounded::<Bytes>();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        tx.send(Bytes::from_static(b"a")).unwrap();
        tx.send(Bytes::from_static(b"b")).unwrap();
        w.drain(&mut sink, &mut rx).await.unwrap();
        drop(tx);
        let ended = w
            .run(&mut sink, &mut rx, std::future::pending::<()>())
            .await
            .unwrap();
        assert_eq!(ended, Ended::QueueClosed);
        drop(sink);
        assert_eq!(out.collect::<Vec<_>>().await.len(), 2);
    }
}
