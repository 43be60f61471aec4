//! One task per connection: open, wait for the load to start, then run the
//! phases with the pacer of each, matching echo replies FIFO, and close.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use tokio::time::sleep_until;

use super::pacing::Pacer;
use super::setup::{Opened, open};
use super::{LoadStart, Payload, Shared};
use crate::metrics::{ErrorKind, StageData};
use crate::scenario::{LatencyMetric, TemplateVars};
use crate::ws::codec::{Event, opcode};
use crate::ws::{Decoder, Encoder, Stream};

/// Most bytes queued for writing before sends wait for the socket; the
/// schedule keeps running meanwhile, so a blocked socket shows as lag.
const WRITE_QUEUE_LIMIT: usize = 256 * 1024;
/// How long after the last phase replies are still awaited.
pub const DRAIN: Duration = Duration::from_secs(2);
/// How early a message may go out: tokio's timers fire on whole
/// milliseconds, rounded up (and the driver parks in whole milliseconds), so
/// a connection asks to wake this much before a message is due and sends it
/// then. A message sent early counts its latency
/// from the actual send (it was not late); one sent late counts from its
/// scheduled time.
const SEND_EARLY: Duration = Duration::from_millis(2);
/// A connection with nothing due for longer than this frees its buffers.
const IDLE_AFTER: Duration = Duration::from_millis(250);
/// How often a paused closed-model connection looks whether it may resume.
const PAUSE_POLL: Duration = Duration::from_millis(50);
/// How long a close handshake may take before it counts as `close_timeout`.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A message waiting for its reply.
struct InFlight {
    scheduled: Instant,
    sent: Instant,
    stage: usize,
}

/// Why the load loop ended.
enum End {
    /// All phases done and replies drained (or their deadline passed).
    Done,
    /// The run was cancelled (Ctrl-C).
    Cancelled,
    /// The server closed or reset the connection, or broke the protocol.
    Lost,
}

/// Runs connection `id` from connect to close. Never panics on network input.
pub(super) async fn run(shared: Arc<Shared>, id: u64) {
    let gauges = shared.recorder.gauges();
    gauges.attempted.fetch_add(1, SeqCst);
    // Ctrl-C must not wait for attempts still connecting (up to the timeout).
    let opened = tokio::select! {
        _ = shared.cancel.cancelled() => {
            shared.setup_resolved();
            return;
        }
        o = open(&shared, id) => o,
    };
    // Count the outcome before reporting it resolved: the engine reads the
    // opened count as soon as every attempt has resolved.
    let Some(Opened {
        stream,
        decoder,
        encoder,
    }) = opened
    else {
        gauges.failed.fetch_add(1, SeqCst);
        shared.setup_resolved();
        return;
    };
    gauges.opened();
    shared.setup_resolved();
    let index = shared.open_index.fetch_add(1, SeqCst);
    let mut conn = Conn {
        shared: &shared,
        stream,
        decoder,
        encoder,
        wbuf: Vec::new(),
        wpos: 0,
        scratch: Vec::new(),
        inflight: VecDeque::new(),
        rng: fastrand::Rng::with_seed(shared.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        id,
        seq: 0,
        close_sent: false,
        close_received: false,
        ping_sent: None,
        pings: 0,
    };
    let mut start_rx = shared.start.clone();
    let start = tokio::select! {
        _ = shared.cancel.cancelled() => None,
        s = start_rx.wait_for(|s| s.is_some()) => s.ok().and_then(|s| *s),
    };
    let (end, stage) = match start {
        Some(start) => (conn.load(start, index).await, shared.phases.len()),
        None => (End::Cancelled, 0),
    };
    if !matches!(end, End::Lost) {
        if !conn.close().await {
            shared
                .recorder
                .with(|s| s.stages[stage].error(ErrorKind::CloseTimeout));
            gauges
                .note_error(|| format!("close_timeout: no close frame back within {CLOSE_WAIT:?}"));
        }
    } else {
        gauges.closed_by_server.fetch_add(1, SeqCst);
    }
    gauges.closed();
}

struct Conn<'a> {
    shared: &'a Shared,
    stream: Stream,
    decoder: Decoder,
    encoder: Encoder,
    wbuf: Vec<u8>,
    wpos: usize,
    scratch: Vec<u8>,
    inflight: VecDeque<InFlight>,
    rng: fastrand::Rng,
    id: u64,
    seq: u64,
    close_sent: bool,
    close_received: bool,
    /// The ping waiting for its pong: its number and when it went out.
    ping_sent: Option<(u64, Instant)>,
    /// Pings sent so far (the payload of the next one).
    pings: u64,
}

impl Conn<'_> {
    /// Runs every phase, then drains outstanding replies.
    async fn load(&mut self, start: LoadStart, index: u64) -> End {
        let shared = self.shared;
        let phases = &shared.phases;
        let load_end = start.at + shared.phase_offsets[phases.len()];
        let drain_until = load_end + DRAIN;
        let timer = sleep_until(start.at.into());
        tokio::pin!(timer);
        // Registered once: a fresh `cancelled()` per turn would take the
        // token's lock every message.
        let cancelled = shared.cancel.cancelled();
        tokio::pin!(cancelled);
        let n = phases.len();
        let mut phase = 0usize;
        let control = &*shared.control;
        let mut seen_epoch = control.epoch();
        let mut pacer = Pacer::for_phase(&phases[0], start.at, index, start.open, control.factor());
        let mut phase_end = start.at + shared.phase_offsets[1];
        let ping_every = shared.protocol.ping;
        // Spread over the interval, so pings of many connections do not all
        // go out in the same millisecond.
        let mut next_ping = ping_every
            .map(|every| start.at + every + every.mul_f64((index % 1000) as f64 / 1000.0));
        // Frames that came with the handshake response (a greeting, a close).
        if let Err(kind) = self.handle_events(1) {
            return self.lost(1, kind);
        }
        loop {
            let now = Instant::now();
            let mut next_wake = drain_until;
            let mut full = false;
            // A rate change from the UI: continue this phase at the new rate from now.
            let epoch = control.epoch();
            if epoch != seen_epoch {
                seen_epoch = epoch;
                if phase < n && now >= start.at {
                    let from = now.max(start.at + shared.phase_offsets[phase]);
                    pacer =
                        Pacer::for_phase(&phases[phase], from, index, start.open, control.factor());
                }
            }
            let paused = control.paused();
            // Queue what the current phase has due by now (messages due
            // before its end go out even when we wake after it), then move on
            // to the next phase if this one is over.
            while phase < n {
                if now < start.at {
                    next_wake = start.at;
                    break;
                }
                let stage = phase + 1;
                next_wake = phase_end;
                let (wake, is_full) = self.queue_due(&mut pacer, now, phase_end, stage, paused);
                full = is_full;
                if let Some(wake) = wake {
                    next_wake = next_wake.min(wake);
                }
                if now < phase_end {
                    break;
                }
                // Messages of this phase the tester had no time to send:
                // counted, so a saturated tester shows instead of hiding.
                let unsent = pacer.unsent_before(phase_end);
                if unsent > 0 {
                    shared.recorder.with(|s| s.stages[stage].not_sent += unsent);
                }
                phase += 1;
                if phase < n {
                    let phase_start = start.at + shared.phase_offsets[phase];
                    pacer = Pacer::for_phase(
                        &phases[phase],
                        phase_start,
                        index,
                        start.open,
                        control.factor(),
                    );
                    phase_end = start.at + shared.phase_offsets[phase + 1];
                } else {
                    next_wake = drain_until;
                }
            }
            if phase == n && (self.inflight.is_empty() || now >= drain_until) {
                let _ = self.flush();
                self.expire_inflight();
                return End::Done;
            }
            // Stage of errors found now: the current phase, or the last one
            // while draining.
            let stage = (phase + 1).min(n);
            if let (Some(at), Some(every)) = (next_ping, ping_every) {
                if phase < n && now >= at {
                    self.send_ping(now);
                    next_ping = Some(at + every);
                }
                if phase < n {
                    next_wake = next_wake.min(next_ping.unwrap_or(next_wake));
                }
            }
            if self.flush().is_err() {
                return self.lost(stage, ErrorKind::Closed);
            }
            if full && self.wpos == self.wbuf.len() {
                // The socket took the whole queue: queue the rest now.
                continue;
            }
            self.shrink_if_idle(now, next_wake);
            if timer.deadline() != next_wake.into() {
                timer.as_mut().reset(next_wake.into());
            }
            let want_write = self.wpos < self.wbuf.len() || self.stream.pending();
            tokio::select! {
                biased;
                _ = &mut cancelled => return End::Cancelled,
                r = self.stream.readable() => {
                    if r.is_err() {
                        return self.lost(stage, ErrorKind::Closed);
                    }
                    if let Err(kind) = self.read_ready(stage) {
                        return self.lost(stage, kind);
                    }
                }
                r = self.stream.writable(), if want_write => {
                    if r.is_err() {
                        return self.lost(stage, ErrorKind::Closed);
                    }
                }
                _ = &mut timer => {}
            }
        }
    }

    /// Queues every message of the current phase that is due by `now` (up
    /// to the write queue limit), recording them in one go; returns when to
    /// wake for the next one (`None` when only a reply or the phase end can
    /// make one due) and whether the queue is full with more possibly due.
    fn queue_due(
        &mut self,
        pacer: &mut Pacer,
        now: Instant,
        phase_end: Instant,
        stage: usize,
        paused: bool,
    ) -> (Option<Instant>, bool) {
        let open = pacer.is_open();
        let shared = self.shared;
        let wake = shared.recorder.with(|shard| {
            let st = &mut shard.stages[stage];
            while self.wbuf.len() < WRITE_QUEUE_LIMIT {
                match pacer.next_due(self.inflight.len(), now) {
                    Some(due) if due <= now + SEND_EARLY && due < phase_end => {
                        if !paused {
                            self.queue_message(due, now, stage, open, st);
                        } else if !open {
                            return Some(now + PAUSE_POLL);
                        }
                        // Paused open model: the schedule runs on without
                        // sending, so resuming does not burst.
                        pacer.advance();
                    }
                    Some(due) if due < phase_end => return Some(due - SEND_EARLY),
                    _ => return None,
                }
            }
            None
        });
        (wake, self.wbuf.len() >= WRITE_QUEUE_LIMIT)
    }

    /// Renders the next message, appends its frame to the write queue and
    /// counts it in `st`.
    fn queue_message(
        &mut self,
        due: Instant,
        now: Instant,
        stage: usize,
        open: bool,
        st: &mut StageData,
    ) {
        let shared = self.shared;
        let (op, payload): (u8, &[u8]) = match &shared.payload {
            Payload::Text(t) => {
                self.scratch.clear();
                let vars = TemplateVars {
                    conn: self.id,
                    seq: self.seq,
                    now_ns: shared.unix_ns(now),
                };
                t.render(&vars, &mut self.rng, &mut self.scratch);
                (opcode::TEXT, &self.scratch)
            }
            Payload::Binary(b) => (opcode::BINARY, b),
        };
        let len = payload.len() as u64;
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        let wire = match self
            .encoder
            .message(&mut self.wbuf, op, payload, &mut self.rng)
        {
            Ok(n) => n,
            Err(e) => {
                // Not expected from zlib; counted rather than hidden.
                shared
                    .recorder
                    .gauges()
                    .note_error(|| format!("protocol: cannot compress a message: {e}"));
                st.error(ErrorKind::Protocol);
                return;
            }
        };
        self.seq += 1;
        let scheduled = if open { due.min(now) } else { now };
        self.inflight.push_back(InFlight {
            scheduled,
            sent: now,
            stage,
        });
        st.sent += 1;
        st.bytes_sent += len;
        st.wire_sent += wire as u64;
        if open {
            let lag = now.saturating_duration_since(due);
            st.record(LatencyMetric::SendLag, lag.as_nanos() as u64);
        }
    }

    /// Writes as much of the queue as the stream takes without waiting.
    fn flush(&mut self) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write_some(&self.wbuf[self.wpos..])? {
                0 => return Ok(()),
                n => self.wpos += n,
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        self.stream.flush_pending()
    }

    /// Queues a ping carrying its number; its pong is timed as `ping`.
    fn send_ping(&mut self, now: Instant) {
        self.pings += 1;
        let payload = self.pings.to_be_bytes();
        self.encoder
            .control(&mut self.wbuf, opcode::PING, &payload, &mut self.rng);
        self.ping_sent = Some((self.pings, now));
    }

    /// Reads what is available and handles every complete frame. Returns the
    /// error kind when the connection is lost.
    fn read_ready(&mut self, stage: usize) -> Result<(), ErrorKind> {
        let gauges = self.shared.recorder.gauges();
        match self.stream.read_into(&mut self.decoder) {
            Ok(0) => {
                gauges.note_error(|| {
                    "closed: the server closed the connection without a close frame".into()
                });
                return Err(ErrorKind::Closed);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => {
                gauges.note_error(|| format!("closed: {e}"));
                return Err(ErrorKind::Closed);
            }
        }
        self.handle_events(stage)
    }

    /// Handles every complete frame in the decoder: replies matched and
    /// timed, pings answered, a close or a violation ends the connection.
    fn handle_events(&mut self, stage: usize) -> Result<(), ErrorKind> {
        let gauges = self.shared.recorder.gauges();
        let now = Instant::now();
        let Conn {
            shared,
            decoder,
            encoder,
            inflight,
            wbuf,
            rng,
            close_received,
            ping_sent,
            ..
        } = self;
        shared.recorder.with(|s| {
            loop {
                match decoder.next_event() {
                    Ok(None) => return Ok(()),
                    Ok(Some(Event::Message { payload, wire, .. })) => {
                        let len = payload.len() as u64;
                        match inflight.pop_front() {
                            Some(m) => {
                                let st = &mut s.stages[m.stage];
                                st.received += 1;
                                st.bytes_received += len;
                                st.wire_received += wire as u64;
                                st.record(
                                    LatencyMetric::Rtt,
                                    (now - m.scheduled).as_nanos() as u64,
                                );
                                st.record(LatencyMetric::Service, (now - m.sent).as_nanos() as u64);
                            }
                            None => {
                                let st = &mut s.stages[stage];
                                st.unmatched += 1;
                                st.bytes_received += len;
                                st.wire_received += wire as u64;
                            }
                        }
                    }
                    Ok(Some(Event::Ping(p))) => {
                        encoder.control(wbuf, opcode::PONG, p, rng);
                    }
                    Ok(Some(Event::Pong(p))) => {
                        // Only the pong of the ping in flight is timed;
                        // unsolicited pongs are allowed and ignored (§5.5.3).
                        if let Some((n, at)) = *ping_sent
                            && p == n.to_be_bytes()
                        {
                            let rtt = now.saturating_duration_since(at);
                            s.stages[stage].record(LatencyMetric::Ping, rtt.as_nanos() as u64);
                            *ping_sent = None;
                        }
                    }
                    Ok(Some(Event::Close { code })) => {
                        gauges.close_code(code);
                        gauges.note_error(|| format!("closed: the server sent close code {code}"));
                        // Answer the server's close before dropping the socket.
                        *close_received = true;
                        encoder.control(wbuf, opcode::CLOSE, &1000u16.to_be_bytes(), rng);
                        return Err(ErrorKind::Closed);
                    }
                    Err(e) => {
                        gauges.note_error(|| format!("protocol: {e}"));
                        let code = e.close_code().to_be_bytes();
                        encoder.control(wbuf, opcode::CLOSE, &code, rng);
                        s.stages[stage].error(ErrorKind::Protocol);
                        return Err(ErrorKind::Protocol);
                    }
                }
            }
        })
    }

    /// Gives buffer memory back while the connection has nothing to do
    /// until `next_wake`, so idle connections stay small; busy ones keep
    /// their buffers and allocate nothing per message.
    fn shrink_if_idle(&mut self, now: Instant, next_wake: Instant) {
        if self.inflight.is_empty() && self.wpos == self.wbuf.len() && next_wake > now + IDLE_AFTER
        {
            self.decoder.shrink();
            self.encoder.shrink();
            self.wbuf = Vec::new();
            self.wpos = 0;
            self.scratch = Vec::new();
            self.inflight = VecDeque::new();
        }
    }

    /// Counts the loss of the connection (protocol errors were counted where
    /// they were found) and ends the load loop.
    fn lost(&mut self, stage: usize, kind: ErrorKind) -> End {
        if kind != ErrorKind::Protocol {
            self.shared.recorder.with(|s| s.stages[stage].error(kind));
        }
        // Messages in flight will never get their reply.
        self.expire_inflight();
        // Best effort: answer a server close or report our protocol error.
        let _ = self.flush();
        End::Lost
    }

    /// Messages still unanswered (at the drain deadline, or when their
    /// connection is lost) count as timeouts.
    fn expire_inflight(&mut self) {
        if self.inflight.is_empty() {
            return;
        }
        let n = self.inflight.len();
        self.shared.recorder.gauges().note_error(|| {
            "timeout: messages without a reply at the end of the run or of their connection"
                .to_string()
        });
        let inflight = &mut self.inflight;
        self.shared.recorder.with(|s| {
            for m in inflight.drain(..) {
                s.stages[m.stage].error(ErrorKind::Timeout);
            }
        });
        debug_assert!(n > 0);
    }

    /// Sends the scenario's close frame and waits up to [`CLOSE_WAIT`]
    /// for the server's; returns false when none came in time.
    async fn close(&mut self) -> bool {
        if !self.close_sent {
            let close = &self.shared.protocol.close;
            let mut payload = Vec::with_capacity(2 + close.reason.len());
            payload.extend_from_slice(&close.code.to_be_bytes());
            payload.extend_from_slice(close.reason.as_bytes());
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
