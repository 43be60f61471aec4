//! One task per connection: open, wait for the load to start, then step
//! through its role's flow (see [`super::interpret`]) while reading every
//! message, until the phases end and replies drain; then close.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::wake::Waiter;
use tokio::time::{Sleep, sleep_until};

use super::correlate::Pending;
use super::interpret::{Cursor, Next};
use super::pacing::Pacer;
use super::program::Program;
use super::setup::{Opened, open as open_conn};
use super::{Shared, Slot};
use crate::metrics::ErrorKind;
use crate::ws::codec::opcode;
use crate::ws::{Decoder, Encoder, Stream};

/// Most bytes queued for writing before sends wait for the socket; the
/// schedule keeps running meanwhile, so a blocked socket shows as lag.
pub(super) const WRITE_QUEUE_LIMIT: usize = 256 * 1024;
/// How long after the last phase replies are still awaited.
pub const DRAIN: Duration = Duration::from_secs(2);
/// A connection with nothing due for longer than this frees its buffers.
const IDLE_AFTER: Duration = Duration::from_millis(250);
/// After a stop (Ctrl-C), how long replies already on their way are still
/// read and timed before the close.
pub(super) const STOP_DRAIN: Duration = Duration::from_millis(500);
/// How long a close handshake may take before it counts as `close_timeout`.
pub(super) const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A connection's state that only some flows use (see [`Conn::extras`]).
#[derive(Default)]
pub(super) struct Extras {
    /// The latest server ping not answered yet because the write queue was
    /// full (RFC 6455 §5.5.3 allows answering only the latest).
    pub pong_owed: Option<Vec<u8>>,
    /// The streams it receives (`sequence:`).
    pub streams: super::sequence::Streams,
    /// Messages no step claimed yet, with the stage they came in, oldest
    /// first (`backlog:`); their buffers are reused.
    pub backlog: std::collections::VecDeque<(usize, Vec<u8>)>,
    /// Why the connection is being lost, for the line [`Conn::lost`] logs
    /// (kept only when faults are logged).
    pub fault: Option<String>,
}

/// Whether connection faults are logged (`-v`, `RUST_LOG`): asked once per
/// run, with this module's target, where [`Conn::lost`] logs them.
pub(super) fn faults_logged() -> bool {
    tracing::enabled!(tracing::Level::WARN)
}

/// The connection's [`Extras`], allocated on first use (a field borrow, so
/// it can be taken while a message borrowed from the decoder is in hand).
pub(super) fn extras(x: &mut Option<Box<Extras>>) -> &mut Extras {
    x.get_or_insert_with(Default::default)
}

/// What woke a waiting load loop.
enum Woke {
    /// The wake token: a stop, a retirement or a re-pace.
    Signal,
    Read(io::Result<()>),
    Write(io::Result<()>),
    Timer,
}

/// Waits for the first of: `wake` firing, the stream readable, writable
/// (when `want_write`), `timer`. Polled in place rather than through
/// `select!`, whose readiness futures would sit in every waiting
/// connection's task.
fn wait_ready<'w>(
    conn: &'w Conn<'_>,
    mut wake: Pin<&'w mut Waiter>,
    want_write: bool,
    mut timer: Option<Pin<&'w mut Sleep>>,
) -> impl Future<Output = Woke> + 'w {
    std::future::poll_fn(move |cx| {
        let stream = &conn.stream;
        if wake.as_mut().poll_wake(&conn.shared.wake, cx).is_ready() {
            return Poll::Ready(Woke::Signal);
        }
        if let Poll::Ready(r) = stream.poll_read_ready(cx) {
            return Poll::Ready(Woke::Read(r));
        }
        if want_write && let Poll::Ready(r) = stream.poll_write_ready(cx) {
            return Poll::Ready(Woke::Write(r));
        }
        match timer.as_mut().map(|t| t.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Woke::Timer),
            _ => Poll::Pending,
        }
    })
}

/// Why the load loop ended.
pub(super) enum End {
    /// All phases done and replies drained (or their deadline passed).
    Done,
    /// The run was cancelled (Ctrl-C).
    Cancelled,
    /// The server closed or reset the connection, or broke the protocol.
    Lost,
    /// The flow closed the connection with these settings.
    Close(usize),
    /// A reconnect could not open again: already closed and counted.
    Gone,
    /// A phase lowered the connection count and this one is among the
    /// newest: close it (not an error).
    Retired,
}

/// Runs connection `id` from connect to close; cancelling `retire` closes
/// it early (a phase lowering the count). Never panics on network input.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice"
)]
pub(super) fn run(
    shared: Arc<Shared>,
    id: u64,
    slot: Slot,
) -> impl Future<Output = ()> + Send + 'static {
    // An async block rather than an async fn: its captures are not copied
    // again into locals, which every held connection's task would carry.
    async move {
        // A stop that came first (Ctrl-C during --start-at) makes no attempt.
        if shared.cancel.is_cancelled() || shared.retired(slot) {
            shared.setup_resolved();
            return;
        }
        // Boxed: the handshake's state is large and over once open, so it must
        // not stay in every held connection's task.
        let Some(mut conn) = Box::pin(Conn::open(&shared, id, slot)).await else {
            return;
        };
        let started = match conn.wait_for_start().await {
            Ok(started) => started,
            Err(()) => {
                shared.setup_count(id, shared.stage_now(), |c| c.closed_by_server += 1);
                shared.recorder.gauges().closed();
                return;
            }
        };
        let (end, stage) = match started {
            true => {
                let end = conn.load().await;
                let end = Box::pin(conn.reconnect_dropped(end)).await;
                let stage = match end {
                    End::Retired => shared.stage_now(),
                    _ => shared.phases.len() + 1,
                };
                (end, stage)
            }
            false => (End::Cancelled, 0),
        };
        if matches!(end, End::Gone) {
            return;
        }
        let retired = matches!(end, End::Retired);
        if retired && let Some(p) = shared.roles.roles[conn.role].pool {
            shared.roles.pools[p].fetch_sub(1, SeqCst);
        }
        let end = match end {
            // Boxed, as the close below: cold, and larger than a waiting
            // connection's state.
            End::Cancelled | End::Retired => Box::pin(conn.collect_in_flight(stage)).await,
            end => end,
        };
        // Gaps found at the end count in the last phase, where the messages
        // were due, not after the phases.
        conn.settle(stage.min(shared.phases.len()));
        let close = match end {
            End::Lost | End::Gone => None,
            End::Close(i) => Some(conn.program.closes[i].clone()),
            End::Done | End::Cancelled | End::Retired => Some(shared.protocol.close.clone()),
        };
        match close {
            None => {
                shared.setup_count(id, shared.stage_now(), |c| c.closed_by_server += 1);
            }
            Some(settings) => {
                if !Box::pin(conn.close(&settings)).await {
                    conn.count_error(stage, ErrorKind::CloseTimeout);
                    shared.recorder.gauges().note_error(|| {
                        format!("close_timeout: no close frame back within {CLOSE_WAIT:?}")
                    });
                }
                if retired {
                    shared.setup_count(id, stage, |c| c.closed += 1);
                }
            }
        }
        shared.recorder.gauges().closed();
    }
}

/// A connection's state between the I/O loop and the flow.
pub(super) struct Conn<'a> {
    pub shared: &'a Shared,
    pub program: &'a Program,
    /// Role index; `role_data` says whether it is recorded apart.
    pub role: usize,
    pub stream: Stream,
    pub decoder: Decoder,
    pub encoder: Encoder,
    pub wbuf: Vec<u8>,
    pub wpos: usize,
    /// Where templated messages are rendered.
    pub scratch: Vec<u8>,
    pub pending: Pending,
    pub rng: fastrand::Rng,
    pub id: u64,
    /// Its connection slot: retired when a phase lowers the count past it.
    pub slot: Slot,
    /// Its place in its role's pacing pool (0 without a pool): the rate is
    /// spread over the pool.
    pub pool_index: u64,
    pub seq: u64,
    pub close_sent: bool,
    pub close_received: bool,
    /// Pings sent so far (the last one's number).
    pub pings: u64,
    /// When the last ping went out, while its pong is awaited.
    pub ping_sent: Option<Instant>,
    /// A pong owed, sequence streams and the backlog: allocated the first
    /// time the connection needs one, so a connection that uses none holds
    /// a pointer instead.
    pub extras: Option<Box<Extras>>,
    /// Where the flow is.
    pub cursor: Cursor,
    /// Feeder columns, then captured values.
    pub slots: Vec<Vec<u8>>,
    /// When the current connection opened (a churned or reopened one: its
    /// replacement).
    pub opened_at: Instant,
    /// No message has come on the current connection yet (`first_message`
    /// is timed at the first).
    pub awaiting_first: bool,
    /// Its place in its room while it is open (`fanout:`).
    pub member: Option<super::sequence::Member>,
}

impl<'a> Conn<'a> {
    /// Opens connection `id` (counted in the stage where the attempt
    /// began); `None` when it failed (counted by kind) or the run stopped
    /// first. It takes the next place in its role's pacing pool.
    async fn open(shared: &'a Shared, id: u64, slot: Slot) -> Option<Self> {
        let stage = shared.stage_now();
        shared.setup_count(id, stage, |c| c.attempted += 1);
        // Ctrl-C must not wait for attempts still connecting (up to the timeout).
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => {
                shared.setup_resolved();
                return None;
            }
            o = open_conn(shared, id, stage) => o,
        };
        // Count the outcome before reporting it resolved: the engine reads
        // the opened count as soon as every attempt has resolved.
        let Some(opened) = opened else {
            shared.setup_count(id, stage, |c| c.failed += 1);
            shared.setup_resolved();
            return None;
        };
        shared.setup_count(id, stage, |c| c.opened += 1);
        shared.recorder.gauges().opened();
        let role = shared.roles.of(id);
        let pool_index = shared.roles.roles[role]
            .pool
            .map(|p| shared.roles.pools[p].fetch_add(1, SeqCst));
        shared.setup_resolved();
        let mut conn = Conn::new(shared, id, slot, role, opened);
        conn.pool_index = pool_index.unwrap_or(0);
        Some(conn)
    }

    fn new(shared: &'a Shared, id: u64, slot: Slot, role: usize, opened: Opened) -> Self {
        let program = &shared.roles.roles[role].program;
        let mut rng =
            fastrand::Rng::with_seed(shared.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut slots = vec![Vec::new(); program.slots];
        if let Some(f) = &shared.feeder
            && let Some(row) = f.row_for(id, &mut rng)
        {
            for (slot, v) in slots.iter_mut().zip(row) {
                slot.extend_from_slice(v.as_bytes());
            }
        }
        let now = Instant::now();
        let slots_for_room = &slots;
        let member = shared.rooms.as_ref().map(|r| r.join(slots_for_room));
        Conn {
            shared,
            program,
            role,
            stream: opened.stream,
            decoder: opened.decoder,
            encoder: opened.encoder,
            wbuf: Vec::new(),
            wpos: 0,
            scratch: Vec::new(),
            pending: Pending::default(),
            rng,
            id,
            slot,
            seq: 0,
            close_sent: false,
            close_received: false,
            pings: 0,
            ping_sent: None,
            extras: None,
            cursor: Cursor::default(),
            slots,
            opened_at: now,
            pool_index: 0,
            awaiting_first: true,
            member,
        }
    }

    /// Settles what the current connection leaves behind when it ends:
    /// messages still unclaimed count as unmatched (in the stage they came
    /// in), sequence numbers still missing as lost (in `stage`).
    pub fn settle(&mut self, stage: usize) {
        // Closed: no longer in its room.
        self.member = None;
        let role = self.role;
        let Some(x) = self.extras.as_mut() else {
            return;
        };
        let lost = x.streams.finish();
        let backlog = std::mem::take(&mut x.backlog);
        if lost == 0 && backlog.is_empty() {
            return;
        }
        self.shared.recorder.with(|s| {
            s.cell(role, stage).counters.lost += lost;
            for (at, m) in &backlog {
                let c = &mut s.cell(role, *at).counters;
                c.unmatched += 1;
                c.bytes_received += m.len() as u64;
            }
        });
    }

    /// Counts one error of `kind` in `stage` (after the phases: the last).
    pub fn count_error(&self, stage: usize, kind: ErrorKind) {
        let role = self.role;
        self.shared
            .recorder
            .with(|s| s.cell(role, stage).error(kind));
    }

    /// Waits for the phases to start (`false` when stopped first), reading
    /// what the server sends meanwhile (a greeting, pushes), so it neither
    /// piles up unread nor counts later with a stale timestamp; pings are
    /// answered. `Err` when the server closed the connection meanwhile.
    async fn wait_for_start(&mut self) -> Result<bool, ()> {
        let shared = self.shared;
        // Fired by the start, and by a stop.
        let mut wake = std::pin::pin!(shared.wake.waiter());
        loop {
            if shared.cancel.is_cancelled() {
                return Ok(false);
            }
            if let Some(start) = *shared.start.borrow() {
                debug_assert_eq!(start.at, shared.phases_at());
                return Ok(true);
            }
            // Given up without a start (no connection opened).
            if shared.start.has_changed().is_err() {
                return Ok(false);
            }
            if self.flush().is_err() {
                self.lost(0, ErrorKind::Closed);
                return Err(());
            }
            let want_write = self.wpos < self.wbuf.len() || self.stream.pending();
            if !want_write {
                // The handshake's buffer goes now, not when the phases
                // start: freed late, the buffers of thousands of opening
                // connections leave holes the heap keeps.
                self.release_buffers();
            }
            match wait_ready(self, wake.as_mut(), want_write, None).await {
                Woke::Signal => wake.set(shared.wake.waiter()),
                Woke::Read(r) => {
                    // One fault, one error: a protocol error was counted
                    // as such where it was found.
                    if let Err(kind) = r
                        .map_err(|_| ErrorKind::Closed)
                        .and_then(|()| self.read_ready(0))
                    {
                        self.lost(0, kind);
                        return Err(());
                    }
                }
                Woke::Write(r) => {
                    if r.is_err() {
                        self.lost(0, ErrorKind::Closed);
                        return Err(());
                    }
                }
                Woke::Timer => {}
            }
        }
    }

    /// Runs the phases (started at [`Shared::phases_at`]) and the flow to their end
    /// and drains replies. A paced flow's rate is spread over its pool
    /// (`pool_index` of the published size, read again when it changes);
    /// a connection opened after the phases started picks up the schedule
    /// from when it opened (nothing due before is sent). With
    /// `connections.lifetime`, the connection is closed and replaced when
    /// its lifetime is up (churn); a retired slot closes it for good.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep `self` twice"
    )]
    pub(super) fn load(&mut self) -> impl Future<Output = End> + '_ {
        // An async block rather than an async fn: `self` is not copied
        // again into a local that every waiting connection would carry.
        async move {
            // Only what changes lives across the waits below; what can be
            // derived again (phase ends, the drain and close times, the
            // pacer's inputs) is, so a waiting connection's task stays small.
            let timer = sleep_until(self.shared.phases_at().into());
            tokio::pin!(timer);
            // One waiter for a stop, this slot's retirement and the pools'
            // sizes changing: taken again only when it fires; polling it
            // takes no lock while nothing happened (engine/wake.rs).
            let mut wake = std::pin::pin!(self.shared.wake.waiter());
            if self.shared.retired(self.slot) {
                return End::Retired;
            }
            let mut open = self.pool_size();
            let mut retire_at = self
                .shared
                .lifetime
                .map(|l| self.opened_at.max(self.shared.phases_at()) + l.draw(&mut self.rng));
            let mut seen_epoch = self.shared.control.epoch();
            let n = self.phase_count();
            let (mut phase, mut pacer) = {
                let from = self.opened_at.max(self.shared.phases_at());
                let mut phase = 0usize;
                while phase < n
                    && from >= self.shared.phases_at() + self.shared.phase_offsets[phase + 1]
                {
                    phase += 1;
                }
                if phase == n {
                    return End::Done;
                }
                (phase, self.pacer_for(phase, from, open))
            };
            let mut next_ping = self.shared.protocol.ping.map(|every| {
                self.shared.phases_at() + every + every.mul_f64((self.id % 1000) as f64 / 1000.0)
            });
            // Frames that came with the handshake response (a greeting, a close).
            if let Err(kind) = self.handle_events(phase + 1) {
                return self.lost(phase + 1, kind);
            }
            'turns: loop {
                // Scoped: what a turn computes (the clock reading, the phase
                // count) must not be kept across the wait below.
                let (want_write, stage) = {
                    let now = Instant::now();
                    let n = self.phase_count();
                    let mut next_wake = self.drain_until();
                    let mut full = false;
                    // A rate change from the UI: continue this phase at the new rate from now.
                    let epoch = self.shared.control.epoch();
                    if epoch != seen_epoch {
                        seen_epoch = epoch;
                        if phase < n && now >= self.shared.phases_at() {
                            pacer = self.pacer_for(phase, now, open);
                        }
                    }
                    // Connections opened or closed by a phase: the rate is spread
                    // over the new count from now.
                    let now_open = self.pool_size();
                    if now_open != open {
                        open = now_open;
                        if phase < n {
                            pacer = self.pacer_for(phase, now, open);
                        }
                    }
                    // Churn: this connection's lifetime is up; a replacement runs
                    // the flow from its first step.
                    if let Some(t) = retire_at
                        && phase < n
                        && now >= t
                    {
                        // Rare paths boxed (churn, reconnect): their state would
                        // otherwise sit in every connection's task while it waits.
                        if let Err(end) = Box::pin(self.churn(phase + 1)).await {
                            return end;
                        }
                        let now = Instant::now();
                        retire_at = self.shared.lifetime.map(|l| now + l.draw(&mut self.rng));
                        self.cursor = Cursor::default();
                        pacer = self.pacer_for(phase, now, open);
                        continue 'turns;
                    }
                    let paused = self.shared.control.paused();
                    // Step the flow in the current phase (what was due before its
                    // end goes out even when we wake after it), then move on to the
                    // next phase if this one is over.
                    if now < self.shared.phases_at() {
                        next_wake = self.shared.phases_at();
                    } else {
                        // The flow runs while the phases do; after them only the
                        // replies owed to sent messages are awaited.
                        while phase < n {
                            let stage = phase + 1;
                            let phase_end =
                                self.shared.phases_at() + self.shared.phase_offsets[phase + 1];
                            let pacing = Some((&mut pacer, phase_end));
                            match self.step_flow(now, pacing, stage, paused) {
                                Next::Wake(w) => {
                                    if let Some(w) = w {
                                        next_wake = next_wake.min(w);
                                    }
                                }
                                Next::Full => full = true,
                                Next::End(end) => return end,
                                Next::Reconnect => {
                                    if !Box::pin(self.reconnect(stage)).await {
                                        return End::Gone;
                                    }
                                    // Time has passed: read the clock, the phase
                                    // and the cancellation again.
                                    continue 'turns;
                                }
                            }
                            if phase < n && now >= phase_end {
                                // Messages of this phase the tester had no time to
                                // send: counted, so a saturated tester shows.
                                if self.program.paced {
                                    let unsent = pacer.unsent_before(phase_end);
                                    if unsent > 0 {
                                        let role = self.role;
                                        self.shared.recorder.with(|s| {
                                            s.cell(role, stage).counters.not_sent += unsent
                                        });
                                    }
                                }
                                phase += 1;
                                if phase < n {
                                    let from =
                                        self.shared.phases_at() + self.shared.phase_offsets[phase];
                                    pacer = self.pacer_for(phase, from, open);
                                }
                                continue;
                            }
                            break;
                        }
                        if phase < n {
                            next_wake = next_wake.min(
                                self.shared.phases_at() + self.shared.phase_offsets[phase + 1],
                            );
                            if let Some(t) = retire_at {
                                next_wake = next_wake.min(t);
                            }
                        }
                    }
                    // After the phases, stage n + 1: replies are still timed in
                    // their send's stage, but nothing new is recorded.
                    let stage = if phase < n { phase + 1 } else { n + 1 };
                    if let (Some(due), Some(every)) = (next_ping, self.shared.protocol.ping)
                        && phase < n
                        && now >= self.shared.phases_at()
                    {
                        if now >= due {
                            self.send_ping(now);
                            // After a stall (a reconnect), go on from now rather
                            // than sending the missed pings back to back.
                            let next = due + every;
                            next_ping = Some(if next <= now { now + every } else { next });
                        }
                        next_wake = next_wake.min(next_ping.unwrap_or(next_wake));
                    }
                    if let Some(d) = self.expire(now) {
                        next_wake = next_wake.min(d);
                    }
                    if phase == n && (self.pending.is_empty() || now >= self.drain_until()) {
                        self.expire_all();
                        let close_at = self.close_at();
                        if now >= close_at {
                            let _ = self.flush();
                            return End::Done;
                        }
                        next_wake = close_at;
                    }
                    if self.flush().is_err() {
                        return self.lost(stage, ErrorKind::Closed);
                    }
                    if full && self.wpos == self.wbuf.len() {
                        // The socket took the whole queue: queue the rest now, after
                        // letting the other tasks of this worker run.
                        tokio::task::yield_now().await;
                        continue;
                    }
                    self.shrink_if_idle(now, next_wake);
                    if timer.deadline() != next_wake.into() {
                        timer.as_mut().reset(next_wake.into());
                    }
                    let want_write = self.wpos < self.wbuf.len() || self.stream.pending();
                    (want_write, stage)
                };
                let woke = wait_ready(self, wake.as_mut(), want_write, Some(timer.as_mut())).await;
                match woke {
                    Woke::Signal => {
                        if self.shared.cancel.is_cancelled() {
                            return End::Cancelled;
                        }
                        // Taken before the slot is read: a retirement after
                        // this fires the new token.
                        wake.set(self.shared.wake.waiter());
                        if self.shared.retired(self.slot) {
                            return End::Retired;
                        }
                        // The pools' sizes are read again at the top.
                    }
                    Woke::Read(r) => {
                        if r.is_err() {
                            return self.lost(stage, ErrorKind::Closed);
                        }
                        if let Err(kind) = self.read_ready(stage) {
                            return self.lost(stage, kind);
                        }
                    }
                    Woke::Write(r) => {
                        if r.is_err() {
                            return self.lost(stage, ErrorKind::Closed);
                        }
                    }
                    Woke::Timer => {}
                }
            }
        }
    }

    /// How many phases this connection's role runs.
    fn phase_count(&self) -> usize {
        self.shared.roles.roles[self.role].phases.len()
    }

    /// Until when replies are awaited after the phases.
    fn drain_until(&self) -> Instant {
        self.shared.phases_at() + self.shared.phase_offsets[self.phase_count()] + DRAIN
    }

    /// When this connection closes after the phases: in
    /// the order and at the rate the connections opened, so that 100,000
    /// connections do not close in one storm that no server answers within
    /// CLOSE_WAIT; until then it keeps reading. With rooms (`fanout:`),
    /// first the deliveries of the last sends arrive: they count in the
    /// phase they were sent in.
    fn close_at(&self) -> Instant {
        let shared = self.shared;
        let settle = if shared.rooms.is_some() {
            STOP_DRAIN
        } else {
            Duration::ZERO
        };
        self.shared.phases_at()
            + shared.phase_offsets[self.phase_count()]
            + settle
            + shared.close_delay(self.id)
    }

    /// Connections in this one's pacing pool, as last published (1
    /// without a pool).
    fn pool_size(&self) -> u64 {
        let roles = &self.shared.roles;
        roles.roles[self.role]
            .pool
            .map_or(1, |p| roles.published[p].load(SeqCst))
    }

    /// The pacer of `phase` from `from` on, with `open` connections in
    /// this one's pool.
    fn pacer_for(&self, phase: usize, from: Instant, open: u64) -> Pacer {
        let index = self.pool_index;
        // Opened since the sizes were last published: not counted in them
        // yet, so wait for the next re-pace rather than send another
        // connection's share.
        if index >= open {
            return Pacer::Closed { inflight: 0 };
        }
        let shared = self.shared;
        let control = &*shared.control;
        let phase_start = self.shared.phases_at() + shared.phase_offsets[phase];
        // A rate set while the run goes (a search step) replaces the
        // scenario's.
        let set;
        let mut p = &shared.roles.roles[self.role].phases[phase];
        if let Some(r) = control.phase_rate(phase) {
            set = crate::scenario::Phase {
                rate: crate::scenario::PhaseRate::PerSecond(crate::scenario::Rate {
                    per_second: r,
                }),
                ..p.clone()
            };
            p = &set;
        }
        Pacer::for_phase(
            p,
            phase_start,
            from.max(phase_start),
            index,
            open,
            control.factor(),
        )
    }

    /// Writes as much of the queue as the stream takes without waiting.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write_some(&self.wbuf[self.wpos..])? {
                0 => return Ok(()),
                n => self.wpos += n,
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        if let Some(p) = self.extras.as_mut().and_then(|x| x.pong_owed.take()) {
            self.encoder
                .control(&mut self.wbuf, opcode::PONG, &p, &mut self.rng);
            return self.flush();
        }
        self.stream.flush_pending()
    }

    /// Queues a ping carrying its number; its pong is timed as `ping`.
    pub fn send_ping(&mut self, now: Instant) {
        self.pings += 1;
        self.ping_sent = Some(now);
        let payload = self.pings.to_be_bytes();
        self.encoder
            .control(&mut self.wbuf, opcode::PING, &payload, &mut self.rng);
    }

    /// Reads what is available and handles every complete frame. Returns the
    /// error kind when the connection is lost.
    pub(super) fn read_ready(&mut self, stage: usize) -> Result<(), ErrorKind> {
        match self.stream.read_into(&mut self.decoder) {
            Ok(0) => {
                self.fault(|| {
                    "closed: the server closed the connection without a close frame".into()
                });
                return Err(ErrorKind::Closed);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => {
                self.fault(|| format!("closed: {e}"));
                return Err(ErrorKind::Closed);
            }
        }
        self.handle_events(stage)
    }

    /// Notes why the connection is being lost: among the run's latest
    /// distinct errors, and, when faults are logged, for [`Conn::lost`]'s
    /// line. No log call here: this runs inside the read loop.
    #[cold]
    pub(super) fn fault(&mut self, reason: impl FnOnce() -> String) {
        let gauges = self.shared.recorder.gauges();
        if self.shared.log_faults {
            let reason = reason();
            gauges.note_error(|| reason.clone());
            extras(&mut self.extras).fault = Some(reason);
        } else {
            gauges.note_error(reason);
        }
    }

    /// Gives buffer memory back while the connection has nothing to do
    /// until `next_wake`, so idle connections stay small; busy ones keep
    /// their buffers and allocate nothing per message.
    fn shrink_if_idle(&mut self, now: Instant, next_wake: Instant) {
        if self.pending.is_empty() && self.wpos == self.wbuf.len() && next_wake > now + IDLE_AFTER {
            self.release_buffers();
        }
    }

    /// Frees the buffers that hold nothing now (a partly read frame stays).
    fn release_buffers(&mut self) {
        self.decoder.shrink();
        self.encoder.shrink();
        self.wbuf = Vec::new();
        self.wpos = 0;
        self.scratch = Vec::new();
        self.pending.shrink();
    }

    /// Counts the loss of the connection (protocol errors were counted where
    /// they were found) and ends the load loop.
    pub(super) fn lost(&mut self, stage: usize, kind: ErrorKind) -> End {
        if kind != ErrorKind::Protocol {
            self.count_error(stage, kind);
        }
        // Once per connection lost, outside the read and send loop (`-v`).
        let fault = self.extras.as_mut().and_then(|x| x.fault.take());
        tracing::warn!(
            conn = self.id,
            kind = kind.name(),
            reason = %fault.as_deref().unwrap_or("closed: reading or writing the socket failed"),
            "connection lost"
        );
        // Messages in flight will never get their reply.
        self.expire_all();
        // Best effort: answer a server close or report our protocol error.
        let _ = self.flush();
        End::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without running it.
    fn future_size<F, Fut>(_: &F) -> usize
    where
        F: Fn(Arc<Shared>, u64, Slot) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// Every held connection is one task of this size plus tokio's 104
    /// bytes, allocated in 128-byte steps: most of the memory an idle
    /// connection costs (bench/ANALYSIS.md). States that are not live
    /// while a connection waits (the handshake, churn, reconnects, the
    /// close) are boxed, and the load loop keeps only what changes. At
    /// most 920 bytes keeps the task at 1,024; it was 4,304 before issue 18.
    #[test]
    fn a_connection_task_stays_small() {
        let size = future_size(&run);
        let conn = std::mem::size_of::<Conn<'static>>();
        assert!(size <= 920, "connection task future: {size} bytes");
        assert!(conn <= 512, "Conn: {conn} bytes");
    }
}
