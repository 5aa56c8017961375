//! Credit-based flow control, runtime-free (std only) so the relay, the
//! native node and the wasm node share it.
//!
//! A sender holds a [`CreditGate`] per stream, starting with
//! [`crate::limits::STREAM_WINDOW`]. It takes credit before sending each body
//! chunk and waits when there is none; the receiver's `Credit` frames grant it
//! back. One task sends on a stream, so the gate keeps a single waker.

use std::future::poll_fn;
use std::sync::Mutex;
use std::task::{Poll, Waker};

/// Send credit for one stream.
#[derive(Debug)]
pub struct CreditGate {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    available: u64,
    closed: bool,
    waker: Option<Waker>,
}

impl CreditGate {
    /// A gate holding `initial` bytes of credit.
    pub fn new(initial: u32) -> Self {
        CreditGate {
            inner: Mutex::new(Inner {
                available: initial as u64,
                closed: false,
                waker: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds credit granted by the receiver.
    pub fn grant(&self, bytes: u32) {
        let mut i = self.lock();
        i.available = i.available.saturating_add(bytes as u64);
        if let Some(w) = i.waker.take() {
            w.wake();
        }
    }

    /// Wakes the sender for good: the stream is over. [`CreditGate::take`]
    /// then returns `None`.
    pub fn close(&self) {
        let mut i = self.lock();
        i.closed = true;
        if let Some(w) = i.waker.take() {
            w.wake();
        }
    }

    /// Waits for credit and takes up to `want` bytes of it (at least 1 when
    /// `want` is at least 1). `None` once the gate is closed.
    pub async fn take(&self, want: usize) -> Option<usize> {
        poll_fn(|cx| {
            let mut i = self.lock();
            if i.closed {
                return Poll::Ready(None);
            }
            if i.available > 0 {
                let n = i.available.min(want as u64);
                i.available -= n;
                return Poll::Ready(Some(n as usize));
            }
            i.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Wake};

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn take_waits_for_credit_and_wakes_on_grant() {
        let gate = CreditGate::new(10);
        let flag = Arc::new(Flag(false.into()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut f = Box::pin(gate.take(8));
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Some(8)));
        let mut f = Box::pin(gate.take(8));
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Some(2)));
        let mut f = Box::pin(gate.take(8));
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        gate.grant(5);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(Some(5)));
        let mut f = Box::pin(gate.take(1));
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Pending);
        gate.close();
        assert_eq!(f.as_mut().poll(&mut cx), Poll::Ready(None));
    }
}
