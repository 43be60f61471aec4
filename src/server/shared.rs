//! What every connection of one server shares (options, counters, rooms,
//! the shutdown signal), and the count of connections shutdown waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::rooms::Rooms;
use super::{Options, ServerStats};

/// What every connection of one server shares, across worker threads.
pub(super) struct Shared {
    pub(super) opts: Options,
    pub(super) stats: Arc<ServerStats>,
    pub(super) rooms: Arc<Rooms>,
    pub(super) cancel: CancellationToken,
    /// Connections on barrage's codec still running.
    open: AtomicUsize,
    /// Signalled when one of them ends.
    ended: Notify,
}

/// Counts a codec connection as open while it lives.
pub(super) struct OpenConn(Arc<Shared>);

impl OpenConn {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        shared.open.fetch_add(1, Relaxed);
        OpenConn(shared)
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
        self.0.ended.notify_waiters();
    }
}

/// How long shutdown waits for connections to send their close frames.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Shared {
    pub(super) fn new(opts: Options) -> Arc<Shared> {
        Arc::new(Shared {
            opts,
            stats: Arc::default(),
            rooms: Arc::default(),
            cancel: CancellationToken::new(),
            open: AtomicUsize::new(0),
            ended: Notify::new(),
        })
    }

    /// Waits (up to [`DRAIN_LIMIT`]) until no codec connection is open.
    pub(super) async fn drain(&self) {
        let all_ended = async {
            loop {
                let ended = self.ended.notified();
                tokio::pin!(ended);
                // Registered before the check, so an end in between is seen.
                ended.as_mut().enable();
                if self.open.load(Relaxed) == 0 {
                    return;
                }
                ended.await;
            }
        };
        let _ = tokio::time::timeout(DRAIN_LIMIT, all_ended).await;
    }
}
