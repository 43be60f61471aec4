//! One task per connection: open, wait for the load to start, then run the
//! phases with the pacer of each, matching echo replies FIFO, and close.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use tokio::io::Interest;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{sleep_until, timeout_at};

use super::pacing::Pacer;
use super::{LoadStart, Payload, Shared};
use crate::metrics::{ErrorKind, StageData};
use crate::scenario::{LatencyMetric, TemplateVars};
use crate::ws::codec::{Event, opcode};
use crate::ws::{Decoder, client_handshake, encode_frame};

/// Most bytes queued for writing before sends wait for the socket; the
/// schedule keeps running meanwhile, so a blocked socket shows as lag.
const WRITE_QUEUE_LIMIT: usize = 256 * 1024;
/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 64 << 20;
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
/// How long a close handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

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
    let Some((stream, initial)) = opened else {
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
        decoder: Decoder::new(MAX_MESSAGE, initial),
        wbuf: Vec::new(),
        wpos: 0,
        scratch: Vec::new(),
        inflight: VecDeque::new(),
        rng: fastrand::Rng::with_seed(shared.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        id,
        seq: 0,
        close_sent: false,
        close_received: false,
    };
    let mut start_rx = shared.start.clone();
    let start = tokio::select! {
        _ = shared.cancel.cancelled() => None,
        s = start_rx.wait_for(|s| s.is_some()) => s.ok().and_then(|s| *s),
    };
    let end = match start {
        Some(start) => conn.load(start, index).await,
        None => End::Cancelled,
    };
    if !matches!(end, End::Lost) {
        conn.close().await;
    } else {
        gauges.closed_by_server.fetch_add(1, SeqCst);
    }
    gauges.closed();
}

/// TCP connect and upgrade within the scenario's timeout; records `connect`
/// and `handshake`, or counts the error.
async fn open(shared: &Shared, id: u64) -> Option<(TcpStream, Vec<u8>)> {
    let t0 = Instant::now();
    let deadline = t0 + shared.connect_timeout;
    let stream = match timeout_at(deadline.into(), connect(shared, id)).await {
        Ok(Ok(s)) => s,
        failed => {
            shared
                .recorder
                .with(|s| s.stages[0].error(ErrorKind::Connect));
            shared.recorder.gauges().note_error(|| match failed {
                Ok(Err(e)) => format!("connect: {e}"),
                _ => format!("connect: no answer within {:?}", shared.connect_timeout),
            });
            return None;
        }
    };
    let t1 = Instant::now();
    let _ = stream.set_nodelay(true);
    let mut stream = stream;
    let mut rng = fastrand::Rng::with_seed(shared.seed.wrapping_add(id));
    let hs = client_handshake(&mut stream, &shared.host_header, &shared.path, &mut rng);
    let result = timeout_at(deadline.into(), hs).await;
    let t2 = Instant::now();
    shared.recorder.with(|s| {
        let st = &mut s.stages[0];
        st.record(LatencyMetric::Connect, (t1 - t0).as_nanos() as u64);
        match &result {
            Ok(Ok(_)) => st.record(LatencyMetric::Handshake, (t2 - t1).as_nanos() as u64),
            _ => st.error(ErrorKind::Handshake),
        }
    });
    match result {
        Ok(Ok(initial)) => Some((stream, initial)),
        Ok(Err(e)) => {
            shared
                .recorder
                .gauges()
                .note_error(|| format!("handshake: {e}"));
            None
        }
        Err(_) => {
            shared
                .recorder
                .gauges()
                .note_error(|| format!("handshake: no answer within {:?}", shared.connect_timeout));
            None
        }
    }
}

/// Reads what the socket has into the decoder without waiting. A short read
/// means the socket is drained, so it also clears tokio's readiness (as
/// tokio's own `poll_read` does), saving the extra `read` that would only
/// return `WouldBlock` before the next wait.
fn read_available(stream: &TcpStream, decoder: &mut Decoder) -> io::Result<usize> {
    let buf = decoder.buffer_mut();
    let spare = buf.capacity() - buf.len();
    let mut got = 0;
    let r = stream.try_io(Interest::READABLE, || {
        got = stream.try_read_buf(buf)?;
        if got > 0 && got < spare {
            // Returning WouldBlock makes try_io clear the readiness it saw;
            // an event that arrived meanwhile is kept.
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(got)
        }
    });
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        other => other,
    }
}

/// TCP connect, from the connection's source address when `source_ips` is set.
async fn connect(shared: &Shared, id: u64) -> io::Result<TcpStream> {
    if shared.source_ips.is_empty() {
        return TcpStream::connect(shared.addr).await;
    }
    let ip = shared.source_ips[(id % shared.source_ips.len() as u64) as usize];
    let socket = if shared.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.bind(std::net::SocketAddr::new(ip, 0))?;
    socket.connect(shared.addr).await
}

struct Conn<'a> {
    shared: &'a Shared,
    stream: TcpStream,
    decoder: Decoder,
    wbuf: Vec<u8>,
    wpos: usize,
    scratch: Vec<u8>,
    inflight: VecDeque<InFlight>,
    rng: fastrand::Rng,
    id: u64,
    seq: u64,
    close_sent: bool,
    close_received: bool,
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
            let want_write = self.wpos < self.wbuf.len();
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
        encode_frame(&mut self.wbuf, op, payload, self.rng.u32(..).to_ne_bytes());
        self.seq += 1;
        let scheduled = if open { due.min(now) } else { now };
        self.inflight.push_back(InFlight {
            scheduled,
            sent: now,
            stage,
        });
        st.sent += 1;
        st.bytes_sent += len;
        if open {
            let lag = now.saturating_duration_since(due);
            st.record(LatencyMetric::SendLag, lag.as_nanos() as u64);
        }
    }

    /// Writes as much of the queue as the socket takes without waiting.
    fn flush(&mut self) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match self.stream.try_write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        Ok(())
    }

    /// Reads what is available and handles every complete frame. Returns the
    /// error kind when the connection is lost.
    fn read_ready(&mut self, stage: usize) -> Result<(), ErrorKind> {
        let gauges = self.shared.recorder.gauges();
        match read_available(&self.stream, &mut self.decoder) {
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
            inflight,
            wbuf,
            rng,
            close_received,
            ..
        } = self;
        shared.recorder.with(|s| {
            loop {
                match decoder.next_event() {
                    Ok(None) => return Ok(()),
                    Ok(Some(Event::Message { payload, .. })) => {
                        let len = payload.len() as u64;
                        match inflight.pop_front() {
                            Some(m) => {
                                let st = &mut s.stages[m.stage];
                                st.received += 1;
                                st.bytes_received += len;
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
                            }
                        }
                    }
                    Ok(Some(Event::Ping(p))) => {
                        encode_frame(wbuf, opcode::PONG, p, rng.u32(..).to_ne_bytes());
                    }
                    Ok(Some(Event::Pong(_))) => {}
                    Ok(Some(Event::Close { code })) => {
                        gauges.close_code(code);
                        gauges.note_error(|| format!("closed: the server sent close code {code}"));
                        // Answer the server's close before dropping the socket.
                        *close_received = true;
                        encode_frame(
                            wbuf,
                            opcode::CLOSE,
                            &1000u16.to_be_bytes(),
                            rng.u32(..).to_ne_bytes(),
                        );
                        return Err(ErrorKind::Closed);
                    }
                    Err(e) => {
                        gauges.note_error(|| format!("protocol: {e}"));
                        let code = e.close_code().to_be_bytes();
                        encode_frame(wbuf, opcode::CLOSE, &code, rng.u32(..).to_ne_bytes());
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

    /// Sends a close frame (1000) and waits briefly for the server's close.
    async fn close(&mut self) {
        if !self.close_sent {
            let mask = self.rng.u32(..).to_ne_bytes();
            encode_frame(&mut self.wbuf, opcode::CLOSE, &1000u16.to_be_bytes(), mask);
            self.close_sent = true;
        }
        let deadline = Instant::now() + CLOSE_WAIT;
        while !self.close_received && Instant::now() < deadline {
            if self.flush().is_err() {
                return;
            }
            let want_write = self.wpos < self.wbuf.len();
            tokio::select! {
                r = self.stream.readable() => {
                    if r.is_err() { return; }
                    match read_available(&self.stream, &mut self.decoder) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(_) => return,
                    }
                    // Late replies and pings are ignored now; only the close matters.
                    loop {
                        match self.decoder.next_event() {
                            Ok(Some(Event::Close { .. })) => { self.close_received = true; break; }
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => break,
                        }
                    }
                }
                r = self.stream.writable(), if want_write => { if r.is_err() { return; } }
                _ = sleep_until(deadline.into()) => return,
            }
        }
    }
}
