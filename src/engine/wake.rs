//! One signal to every connection of a run: the start, a stop, a re-pace
//! (the pools' sizes changed) and retired slots. Connections wait on it
//! next to their socket and timer; polling it takes no lock while nothing
//! happened, so a connection's turn (a message, in a closed loop) locks
//! nothing shared.

use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::task::{Context, Poll};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The signal: a token cancelled (and replaced) by [`Wake::all`], and its
/// generation, readable without the lock.
pub(super) struct Wake {
    current: Mutex<(CancellationToken, u64)>,
    /// The current token's generation; moved on before the old token is
    /// cancelled, so whoever is woken by that sees it moved.
    generation: AtomicU64,
}

impl Wake {
    pub fn new() -> Self {
        Wake {
            current: Mutex::new((CancellationToken::new(), 0)),
            generation: AtomicU64::new(0),
        }
    }

    /// Wakes every waiting connection; each looks again at what changed.
    pub fn all(&self) {
        let mut t = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = t.1 + 1;
        self.generation.store(next, SeqCst);
        t.0.cancel();
        *t = (CancellationToken::new(), next);
    }

    /// A waiter for the next [`Wake::all`] (or one already past, when its
    /// generation is old).
    pub fn waiter(&self) -> Waiter {
        let t = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Waiter {
            fut: t.0.clone().cancelled_owned(),
            held: t.1,
        }
    }
}

pin_project_lite::pin_project! {
    /// Waits for a [`Wake::all`]: the token's future, and `held`, the
    /// generation of the token waited on, with [`REGISTERED`] once a poll
    /// has left a waker with it.
    pub(super) struct Waiter {
        #[pin]
        fut: WaitForCancellationFutureOwned,
        held: u64,
    }
}

/// Set in [`Waiter::held`] once the token has our waker.
const REGISTERED: u64 = 1 << 63;

impl Waiter {
    /// Ready once the token it holds was cancelled. The token's own poll
    /// takes two locks (its state, its waiter list), shared by every
    /// connection: it is polled only to leave the waker the first time,
    /// and again once the generation moved on (a wake-up came).
    pub fn poll_wake(self: Pin<&mut Self>, wake: &Wake, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if *this.held & REGISTERED != 0 && wake.generation.load(SeqCst) == *this.held & !REGISTERED
        {
            return Poll::Pending;
        }
        match this.fut.poll(cx) {
            Poll::Ready(()) => Poll::Ready(()),
            Poll::Pending => {
                *this.held |= REGISTERED;
                Poll::Pending
            }
        }
    }
}
