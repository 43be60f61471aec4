//! Closing a connection and opening it again, in place: churn
//! (`connections.lifetime`: replies on their way still read and timed, the
//! configured close frame, a replacement at once), the flow's `reconnect`
//! step, and the `reconnect:` policy for connections the server dropped.

use std::io;
use std::time::Instant;

use tokio::time::sleep_until;

use super::connection::{CLOSE_WAIT, Conn, End, STOP_DRAIN};
use super::interpret::Cursor;
use super::setup::{Opened, open as open_conn};
use crate::metrics::ErrorKind;
use crate::scenario::CloseSettings;
use crate::ws::codec::{Event, opcode};

impl Conn<'_> {
    /// Closes this connection (counted as `closed`, not an error) and opens
    /// its replacement in place; `Err` with how the load loop ends when the
    /// old one was lost meanwhile or the new one could not open.
    pub(super) async fn churn(&mut self, stage: usize) -> Result<(), End> {
        let shared = self.shared;
        if let End::Lost = self.collect_in_flight(stage).await {
            return Err(End::Lost);
        }
        let settings = shared.protocol.close.clone();
        let closed = tokio::select! {
            _ = shared.cancel.cancelled() => true,
            c = self.close(&settings) => c,
        };
        if !closed {
            self.count_error(stage, ErrorKind::CloseTimeout);
        }
        shared.setup_count(self.id, stage, |c| c.closed += 1);
        shared.recorder.gauges().closed();
        if self.reopen().await {
            Ok(())
        } else {
            Err(End::Gone)
        }
    }

    /// After the server dropped the connection (`end` is `Lost`), opens it
    /// again as the scenario's `reconnect:` policy says, as long as the
    /// phases run, and runs the flow again from its start; returns how the
    /// last connection ended.
    pub(super) async fn reconnect_dropped(&mut self, mut end: End) -> End {
        let shared = self.shared;
        let Some(policy) = &shared.reconnect else {
            return end;
        };
        let load_end = self.shared.phases_at() + shared.phase_offsets[shared.phases.len()];
        let gauges = shared.recorder.gauges();
        let mut open = true;
        let mut tries = 0;
        while matches!(end, End::Lost) || (!open && matches!(end, End::Gone)) {
            if tries >= policy.max || shared.cancel.is_cancelled() {
                break;
            }
            if open {
                shared.setup_count(self.id, shared.stage_now(), |c| c.closed_by_server += 1);
                gauges.closed();
                open = false;
            }
            tries += 1;
            let wake = Instant::now() + policy.backoff(tries, &mut self.rng);
            if wake >= load_end {
                break;
            }
            tokio::select! {
                _ = shared.cancel.cancelled() => break,
                _ = sleep_until(wake.into()) => {}
            }
            if !self.reopen().await {
                end = End::Gone;
                continue;
            }
            open = true;
            self.cursor = Cursor::default();
            end = self.load().await;
        }
        if open { end } else { End::Gone }
    }

    /// Swaps in a newly opened connection.
    fn replace(&mut self, opened: Opened) {
        // The connection closed leaves its own backlog and gaps.
        self.settle(self.shared.stage_now().min(self.shared.phases.len()));
        self.awaiting_first = true;
        self.member = self.shared.rooms.as_ref().map(|r| r.join(&self.slots));
        self.stream = opened.stream;
        self.decoder = opened.decoder;
        self.encoder = opened.encoder;
        self.wbuf.clear();
        self.wpos = 0;
        self.close_sent = false;
        self.close_received = false;
        self.ping_sent = None;
        if let Some(x) = self.extras.as_mut() {
            x.pong_owed = None;
        }
        self.opened_at = Instant::now();
    }

    /// Closes the connection and opens it again (the flow's `reconnect`);
    /// false when the new one could not open (counted by kind).
    pub(super) async fn reconnect(&mut self, stage: usize) -> bool {
        let _ = self.flush();
        self.expire_all();
        let settings = self.shared.protocol.close.clone();
        let shared = self.shared;
        let closed = tokio::select! {
            _ = shared.cancel.cancelled() => true,
            c = self.close(&settings) => c,
        };
        if !closed {
            self.count_error(stage, ErrorKind::CloseTimeout);
        }
        shared.recorder.gauges().closed();
        self.reopen().await
    }

    /// Opens the connection again after a close (a reconnect, churn, a
    /// dropped connection), counted in the stage where the attempt began;
    /// false when it could not open (counted by kind) or the run stopped.
    pub(super) async fn reopen(&mut self) -> bool {
        let shared = self.shared;
        if shared.cancel.is_cancelled() {
            return false;
        }
        let stage = shared.stage_now();
        shared.setup_count(self.id, stage, |c| c.attempted += 1);
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => None,
            o = Box::pin(open_conn(shared, self.id, stage)) => o,
        };
        let Some(opened) = opened else {
            shared.setup_count(self.id, stage, |c| c.failed += 1);
            return false;
        };
        shared.setup_count(self.id, stage, |c| c.opened += 1);
        shared.recorder.gauges().opened();
        self.replace(opened);
        true
    }

    /// After a stop: sends nothing more, but reads and times the replies
    /// already on their way (up to [`STOP_DRAIN`]), so a message in flight
    /// at Ctrl-C is neither lost from the counts nor taken for a timeout;
    /// the ones still missing then count as `timeout`.
    pub(super) async fn collect_in_flight(&mut self, stage: usize) -> End {
        let deadline = Instant::now() + STOP_DRAIN;
        while !self.pending.is_empty() {
            if self.flush().is_err() {
                return self.lost(stage, ErrorKind::Closed);
            }
            tokio::select! {
                r = self.stream.readable() => {
                    if r.is_err() {
                        return self.lost(stage, ErrorKind::Closed);
                    }
                    if let Err(kind) = self.read_ready(stage) {
                        return self.lost(stage, kind);
                    }
                }
                _ = sleep_until(deadline.into()) => break,
            }
        }
        self.expire_all();
        End::Cancelled
    }

    /// Sends `settings`' close frame and waits up to [`CLOSE_WAIT`] for the
    /// server's; returns false when none came in time. Logged: a normal
    /// close at debug (`-vv`), a close that timed out at warn (`-v`).
    pub(super) async fn close(&mut self, settings: &CloseSettings) -> bool {
        let answered = self.close_handshake(settings).await;
        if answered {
            tracing::debug!(conn = self.id, code = settings.code, "connection closed");
        } else {
            tracing::warn!(
                conn = self.id,
                kind = ErrorKind::CloseTimeout.name(),
                reason = %format_args!("close_timeout: no close frame back within {CLOSE_WAIT:?}"),
                "connection close timed out"
            );
        }
        answered
    }

    async fn close_handshake(&mut self, settings: &CloseSettings) -> bool {
        if !self.close_sent {
            let mut payload = Vec::with_capacity(2 + settings.reason.len());
            payload.extend_from_slice(&settings.code.to_be_bytes());
            payload.extend_from_slice(settings.reason.as_bytes());
            self.encoder
                .control(&mut self.wbuf, opcode::CLOSE, &payload, &mut self.rng);
            self.close_sent = true;
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        while !self.close_received {
            if Instant::now() >= deadline {
                return false;
            }
            if self.flush().is_err() {
                return true;
            }
            let want_write = self.wpos < self.wbuf.len() || self.stream.pending();
            tokio::select! {
                r = self.stream.readable() => {
                    if r.is_err() { return true; }
                    match self.stream.read_into(&mut self.decoder) {
                        // The server dropped the connection: nothing to wait for.
                        Ok(0) => return true,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(_) => return true,
                    }
                    // Late replies and pings are ignored now; only the close matters.
                    loop {
                        match self.decoder.next_event() {
                            Ok(Some(Event::Close { code })) => {
                                // The server's answer to our close, counted by code.
                                self.shared.recorder.gauges().close_code(code);
                                self.close_received = true;
                                break;
                            }
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                r = self.stream.writable(), if want_write => { if r.is_err() { return true; } }
                _ = sleep_until(deadline.into()) => return false,
            }
        }
        self.stream.close_notify();
        let _ = self.flush();
        true
    }
}
