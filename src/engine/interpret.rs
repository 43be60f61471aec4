//! Stepping a connection through its flow, and what each received message
//! does: satisfy an `expect` (and capture), answer a correlated send (timed
//! as `rtt` and `service`), carry a timestamp (timed as `delivery`), or
//! count as unmatched.

use std::time::{Duration, Instant};

use super::connection::{Conn, End, WRITE_QUEUE_LIMIT, extras};
use super::correlate::{InFlight, echo_signature, json_value};
use super::pacing::Pacer;
use super::program::{Body, Corr, Op};
use crate::metrics::{ErrorKind, StageData, ThreadData};
use crate::scenario::{LatencyMetric, OnTimeout, TemplateVars};
use crate::ws::codec::{Event, opcode};

/// How early a message may go out: tokio's timers fire on whole
/// milliseconds, rounded up (and the driver parks in whole milliseconds), so
/// a connection asks to wake this much before a message is due and sends it
/// then. A message sent early counts its latency from the actual send (it
/// was not late); one sent late counts from its scheduled time.
const SEND_EARLY: Duration = Duration::from_millis(2);
/// How often a paused closed-model connection looks whether it may resume.
const PAUSE_POLL: Duration = Duration::from_millis(50);

/// What the flow waits for.
#[derive(Debug, Clone, Copy, Default)]
pub(super) enum Wait {
    /// Nothing: the next op may run.
    #[default]
    Ready,
    /// A pause until then.
    Until(Instant),
    /// `expects[idx]`: `left` more matches by `deadline`.
    Expect {
        idx: usize,
        left: u32,
        deadline: Instant,
    },
}

/// Where a connection is in its flow.
#[derive(Debug, Default)]
pub(super) struct Cursor {
    /// The next op.
    pub pc: usize,
    /// Iterations left of the counted loops we are in, innermost last.
    pub loops: Vec<u64>,
    pub wait: Wait,
    /// The scheduled time of the paced iteration running now.
    pub due: Option<Instant>,
    /// A paced iteration started and its first send is still to come (that
    /// send counts as `paced`).
    pub paced_send: bool,
    /// The flow ran off its end.
    pub finished: bool,
}

/// What [`Conn::step_flow`] asks of the I/O loop.
pub(super) enum Next {
    /// Wake by then (or on a message / the phase end).
    Wake(Option<Instant>),
    /// The write queue is full: flush and step again.
    Full,
    /// The flow ended the connection.
    End(End),
    /// Close and open the connection, then step again.
    Reconnect,
}

/// Applies `f` to the cell of `role` in `stage`.
#[inline]
fn both(s: &mut ThreadData, stage: usize, role: usize, f: impl FnOnce(&mut StageData)) {
    f(s.cell(role, stage));
}

impl Conn<'_> {
    /// Runs ops until one waits. `pacing` is the current phase's pacer and
    /// end while the phases run (`None` after: paced loops then exit).
    /// Everything sent is recorded in one go.
    pub(super) fn step_flow(
        &mut self,
        now: Instant,
        mut pacing: Option<(&mut Pacer, Instant)>,
        stage: usize,
        paused: bool,
    ) -> Next {
        let shared = self.shared;
        let program = self.program;
        let role = self.role;
        shared.recorder.with(|shard| {
            loop {
                match self.cursor.wait {
                    Wait::Ready => {}
                    Wait::Until(t) if now < t => return Next::Wake(Some(t)),
                    Wait::Until(_) => self.cursor.wait = Wait::Ready,
                    Wait::Expect { deadline, .. } if now < deadline => {
                        return Next::Wake(Some(deadline));
                    }
                    Wait::Expect { idx, .. } => {
                        both(shard, stage, role, |d| d.error(ErrorKind::Timeout));
                        shared.recorder.gauges().note_error(|| {
                            "timeout: an expect step got no matching message in time".to_string()
                        });
                        self.cursor.wait = Wait::Ready;
                        if program.expects[idx].on_timeout == OnTimeout::Close {
                            self.cursor.finished = true;
                            return Next::End(End::Done);
                        }
                    }
                }
                let Some(op) = program.ops.get(self.cursor.pc) else {
                    self.cursor.finished = true;
                    return Next::Wake(None);
                };
                match *op {
                    Op::Paced { end } => {
                        let Some((pacer, phase_end)) = pacing.as_mut() else {
                            // The phases are over: leave the loop.
                            self.cursor.pc = end;
                            self.cursor.due = None;
                            continue;
                        };
                        let open = pacer.is_open();
                        match pacer.next_due(self.pending.len(), now) {
                            Some(due) if due <= now + SEND_EARLY && due < *phase_end => {
                                pacer.advance();
                                if paused {
                                    if !open {
                                        return Next::Wake(Some(now + PAUSE_POLL));
                                    }
                                    // Paused open model: the schedule runs on
                                    // without sending, so resuming does not burst.
                                    continue;
                                }
                                // The closed model has no schedule: latency
                                // counts from the actual send, no send lag.
                                self.cursor.due = open.then_some(due);
                                self.cursor.paced_send = true;
                                self.cursor.pc += 1;
                            }
                            Some(due) if due < *phase_end => {
                                return Next::Wake(Some(due - SEND_EARLY));
                            }
                            _ => return Next::Wake(None),
                        }
                    }
                    Op::EndLoop { start } => match program.ops[start] {
                        Op::Paced { .. } => {
                            self.cursor.pc = start;
                            self.cursor.due = None;
                        }
                        _ => {
                            let left = self.cursor.loops.last_mut().expect("inside a loop");
                            *left -= 1;
                            if *left > 0 {
                                self.cursor.pc = start + 1;
                            } else {
                                self.cursor.loops.pop();
                                self.cursor.pc += 1;
                            }
                        }
                    },
                    Op::Repeat { count, .. } => {
                        self.cursor.loops.push(count);
                        self.cursor.pc += 1;
                    }
                    Op::Send(i) => {
                        if self.wbuf.len() >= WRITE_QUEUE_LIMIT {
                            return Next::Full;
                        }
                        self.send(i, now, stage, role, shard);
                        self.cursor.pc += 1;
                    }
                    Op::Expect(idx) => {
                        shard.cell(role, stage).counters.expects += 1;
                        let e = &program.expects[idx];
                        // Messages that came before the flow waited.
                        let left = self.claim_early(idx, e.count, shard);
                        self.cursor.wait = if left == 0 {
                            Wait::Ready
                        } else {
                            Wait::Expect {
                                idx,
                                left,
                                deadline: now + e.timeout,
                            }
                        };
                        self.cursor.pc += 1;
                    }
                    Op::Sleep(d) => {
                        self.cursor.wait = Wait::Until(now + d);
                        self.cursor.pc += 1;
                    }
                    Op::Think(a, b) => {
                        let span = (b - a).as_nanos() as u64;
                        let extra = if span == 0 { 0 } else { self.rng.u64(0..=span) };
                        self.cursor.wait = Wait::Until(now + a + Duration::from_nanos(extra));
                        self.cursor.pc += 1;
                    }
                    Op::Ping => {
                        if self.wbuf.len() >= WRITE_QUEUE_LIMIT {
                            return Next::Full;
                        }
                        self.send_ping(now);
                        self.cursor.pc += 1;
                    }
                    Op::Close(i) => {
                        self.cursor.finished = true;
                        return Next::End(End::Close(i));
                    }
                    Op::Reconnect => {
                        self.cursor.pc += 1;
                        return Next::Reconnect;
                    }
                }
            }
        })
    }

    /// Renders and queues `sends[i]`, registers it for its replies and
    /// counts it.
    fn send(&mut self, i: usize, now: Instant, stage: usize, role: usize, shard: &mut ThreadData) {
        let shared = self.shared;
        let s = &self.program.sends[i];
        let (op, payload): (u8, &[u8]) = match &s.body {
            Body::Text(t) => {
                self.scratch.clear();
                let vars = TemplateVars {
                    conn: self.id,
                    seq: self.seq,
                    now_ns: shared.unix_ns(now),
                    shard: u64::from(shared.shard.index),
                    role: &shared.roles.roles[self.role].name,
                    slots: &self.slots,
                };
                t.render(&vars, &mut self.rng, &mut self.scratch);
                (opcode::TEXT, &self.scratch)
            }
            Body::Binary(b) => (opcode::BINARY, b),
        };
        let len = payload.len() as u64;
        let echo = if matches!(s.corr, Corr::Echo) {
            echo_signature(op, payload)
        } else {
            0
        };
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        let wire = match self
            .encoder
            .message(&mut self.wbuf, op, payload, &mut self.rng)
        {
            Ok(n) => n as u64,
            Err(e) => {
                // Not expected from zlib; counted rather than hidden.
                shared
                    .recorder
                    .gauges()
                    .note_error(|| format!("protocol: cannot compress a message: {e}"));
                both(shard, stage, role, |d| d.error(ErrorKind::Protocol));
                return;
            }
        };
        self.seq += 1;
        let due = self.cursor.due;
        let scheduled = due.map_or(now, |d| d.min(now));
        let flight = InFlight {
            scheduled,
            sent: now,
            stage,
            replies: s.replies,
            deadline: s.timeout.map(|t| now + t),
            echo,
        };
        let awaited = if matches!(s.corr, Corr::None) {
            0
        } else {
            u64::from(s.replies)
        };
        let mut replaced = 0u64;
        match s.corr {
            Corr::None => {}
            Corr::Echo => self.pending.fifo.push_back(flight),
            Corr::Keyed(rule) => {
                let key = self.program.rules[rule].key(payload);
                match key {
                    Some(k) => {
                        if let Some(old) = self.pending.insert_keyed(k, flight) {
                            // An id still waiting was reused: the older one
                            // can no longer be told apart.
                            replaced = u64::from(old.replies);
                            both(shard, old.stage, role, |d| d.error(ErrorKind::Timeout));
                        }
                    }
                    None => shared.recorder.gauges().note_error(|| {
                        "timeout: a correlated message had no id to match replies by".into()
                    }),
                }
            }
        }
        let lag = due.map(|d| now.saturating_duration_since(d).as_nanos() as u64);
        let paced = std::mem::take(&mut self.cursor.paced_send);
        // Each paced send should reach the other members of the room.
        let fanout = match &self.member {
            Some(m) if paced => m.others(),
            _ => 0,
        };
        both(shard, stage, role, |d| {
            let c = &mut d.counters;
            c.sent += 1;
            c.paced += u64::from(paced);
            c.fanout_expected += fanout;
            c.awaited += awaited;
            c.unanswered += replaced;
            c.bytes_sent += len;
            c.wire_sent += wire;
            if let Some(lag) = lag {
                d.record(LatencyMetric::SendLag, lag);
            }
        });
    }

    /// Claims up to `count` kept messages that `expects[idx]` matches,
    /// oldest first, counting each as received in the stage it came in;
    /// returns how many the expect still waits for.
    fn claim_early(&mut self, idx: usize, count: u32, shard: &mut ThreadData) -> u32 {
        let mut left = count;
        let expect = &self.program.expects[idx];
        let Some(x) = self.extras.as_mut() else {
            return left;
        };
        let backlog = &mut x.backlog;
        let mut i = 0;
        while left > 0 && i < backlog.len() {
            if expect.matches(&backlog[i].1) {
                let (at, m) = backlog.remove(i).expect("in range");
                expect.capture(&m, &mut self.slots);
                let c = &mut shard.cell(self.role, at).counters;
                c.received += 1;
                c.bytes_received += m.len() as u64;
                left -= 1;
            } else {
                i += 1;
            }
        }
        left
    }

    /// Handles every complete frame in the decoder: messages matched and
    /// timed, pings answered, a close or a violation ends the connection.
    pub(super) fn handle_events(&mut self, stage: usize) -> Result<(), ErrorKind> {
        let shared = self.shared;
        let program = self.program;
        let gauges = shared.recorder.gauges();
        let now = Instant::now();
        let role = self.role;
        // Before the phases (stage 0) and after them (past the last),
        // messages are read so nothing piles up, and replies owed to sends
        // are timed, but nothing else is counted.
        let live = stage > 0 && stage <= shared.phases.len();
        shared.recorder.with(|s| {
            loop {
                match self.decoder.next_event() {
                    Ok(None) => return Ok(()),
                    Ok(Some(Event::Message {
                        opcode: op,
                        payload,
                        wire,
                    })) => {
                        let (len, wire) = (payload.len() as u64, wire as u64);
                        if self.awaiting_first {
                            self.awaiting_first = false;
                            if stage <= shared.phases.len() {
                                let first = now.saturating_duration_since(self.opened_at);
                                both(s, stage, role, |d| {
                                    d.record(LatencyMetric::FirstMessage, first.as_nanos() as u64)
                                });
                            }
                        }
                        // A reply to a message sent by id is timed even when
                        // it also satisfies a waiting expect.
                        let keyed = self.pending.match_keyed(&self.program.rules, payload);
                        let mut expected = false;
                        if let Wait::Expect {
                            idx,
                            left,
                            deadline,
                        } = self.cursor.wait
                            && live
                            && program.expects[idx].matches(payload)
                        {
                            program.expects[idx].capture(payload, &mut self.slots);
                            self.cursor.wait = if left > 1 {
                                Wait::Expect {
                                    idx,
                                    left: left - 1,
                                    deadline,
                                }
                            } else {
                                Wait::Ready
                            };
                            expected = true;
                        }
                        // FIFO echo: the oldest message awaiting its echo,
                        // when this message can be that echo.
                        let reply = if keyed.is_some() || expected {
                            keyed
                        } else if self
                            .pending
                            .fifo
                            .front()
                            .is_some_and(|m| m.echo == echo_signature(op, payload))
                        {
                            self.pending.fifo.pop_front()
                        } else {
                            None
                        };
                        let mut matched = expected;
                        if let Some(m) = reply {
                            let (rtt, service) = (
                                (now - m.scheduled).as_nanos() as u64,
                                (now - m.sent).as_nanos() as u64,
                            );
                            both(s, m.stage, role, |d| {
                                let c = &mut d.counters;
                                c.received += 1;
                                c.replies += 1;
                                c.bytes_received += len;
                                c.wire_received += wire;
                                d.record(LatencyMetric::Rtt, rtt);
                                d.record(LatencyMetric::Service, service);
                            });
                            matched = true;
                        } else if expected {
                            both(s, stage, role, |d| {
                                let c = &mut d.counters;
                                c.received += 1;
                                c.bytes_received += len;
                                c.wire_received += wire;
                            });
                        }
                        let mut delivered = false;
                        if let Some((path, unit)) = &shared.delivery
                            && let Some(ts) = json_value(payload, path)
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .and_then(|v| v.parse::<u64>().ok())
                        {
                            let sent_ns = ts.saturating_mul(*unit);
                            // Counted in the phase it was sent in (as a
                            // reply is), so a delivery still on its way
                            // when the phases end counts where it is due.
                            if let Some(at) =
                                shared.stage_at_unix(sent_ns).or(live.then_some(stage))
                            {
                                let lat = shared.unix_ns(now).saturating_sub(sent_ns);
                                both(s, at, role, |d| {
                                    d.record(LatencyMetric::Delivery, lat);
                                    if !matched {
                                        let c = &mut d.counters;
                                        c.delivered += 1;
                                        c.bytes_received += len;
                                        c.wire_received += wire;
                                    }
                                });
                                delivered = true;
                            }
                        }
                        if !live {
                            continue;
                        }
                        if let Some((field, key)) = &shared.sequence
                            && let Some(seq) = json_value(payload, field)
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .and_then(|v| v.parse::<u64>().ok())
                        {
                            let stream = key
                                .as_ref()
                                .and_then(|k| json_value(payload, k))
                                .map_or(0, super::sequence::Streams::key);
                            let seen = extras(&mut self.extras).streams.observe(stream, seq);
                            both(s, stage, role, |d| {
                                let c = &mut d.counters;
                                c.sequenced += 1;
                                c.lost += seen.lost;
                                c.duplicate += u64::from(seen.duplicate);
                                c.reordered += u64::from(seen.reordered);
                            });
                        }
                        if !matched && !delivered {
                            // Kept for a later `expect`; counted as
                            // unmatched when it leaves unclaimed (pushed
                            // out by a newer one, or at the end).
                            let mut kept = None;
                            if shared.backlog > 0 {
                                let mut buf = Vec::new();
                                let backlog = &mut extras(&mut self.extras).backlog;
                                if backlog.len() >= shared.backlog
                                    && let Some((at, old)) = backlog.pop_front()
                                {
                                    let n = old.len() as u64;
                                    both(s, at, role, |d| {
                                        d.counters.unmatched += 1;
                                        d.counters.bytes_received += n;
                                    });
                                    buf = old;
                                }
                                buf.clear();
                                buf.extend_from_slice(payload);
                                kept = Some(buf);
                            }
                            let unclaimed = kept.is_none();
                            both(s, stage, role, |d| {
                                let c = &mut d.counters;
                                c.wire_received += wire;
                                if unclaimed {
                                    c.unmatched += 1;
                                    c.bytes_received += len;
                                }
                            });
                            if let Some(b) = kept {
                                extras(&mut self.extras).backlog.push_back((stage, b));
                            }
                        }
                    }
                    Ok(Some(Event::Ping(p))) => {
                        if live {
                            both(s, stage, role, |d| {
                                d.counters.wire_received += p.len() as u64 + 2;
                            });
                        }
                        // Pongs obey the write-queue bound as data does: a
                        // server that pings and never reads gets an answer
                        // to its latest ping once the queue drains.
                        if self.wbuf.len() >= WRITE_QUEUE_LIMIT {
                            // Overwritten in place: a ping flood against
                            // a full queue allocates nothing per ping.
                            let x = extras(&mut self.extras);
                            match &mut x.pong_owed {
                                Some(owed) => {
                                    owed.clear();
                                    owed.extend_from_slice(p);
                                }
                                None => x.pong_owed = Some(p.to_vec()),
                            }
                        } else {
                            self.encoder
                                .control(&mut self.wbuf, opcode::PONG, p, &mut self.rng);
                        }
                    }
                    Ok(Some(Event::Pong(p))) => {
                        // Only the pong of the ping in flight is timed;
                        // unsolicited pongs are allowed and ignored (§5.5.3).
                        if let Some(at) = self.ping_sent
                            && live
                            && p == self.pings.to_be_bytes()
                        {
                            let rtt = now.saturating_duration_since(at).as_nanos() as u64;
                            both(s, stage, role, |d| d.record(LatencyMetric::Ping, rtt));
                            self.ping_sent = None;
                        }
                    }
                    Ok(Some(Event::Close { code })) => {
                        gauges.close_code(code);
                        self.fault(|| format!("closed: the server sent close code {code}"));
                        // Answer the server's close before dropping the socket.
                        self.close_received = true;
                        self.encoder.control(
                            &mut self.wbuf,
                            opcode::CLOSE,
                            &1000u16.to_be_bytes(),
                            &mut self.rng,
                        );
                        return Err(ErrorKind::Closed);
                    }
                    Err(e) => {
                        self.fault(|| format!("protocol: {e}"));
                        let code = e.close_code().to_be_bytes();
                        self.encoder
                            .control(&mut self.wbuf, opcode::CLOSE, &code, &mut self.rng);
                        both(s, stage, role, |d| d.error(ErrorKind::Protocol));
                        return Err(ErrorKind::Protocol);
                    }
                }
            }
        })
    }

    /// Messages whose own timeout passed count as `timeout` errors; returns
    /// when the next one is due.
    pub(super) fn expire(&mut self, now: Instant) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        let mut lost = Vec::new();
        let next = self
            .pending
            .expire(now, &mut |m| lost.push((m.stage, m.replies)));
        if !lost.is_empty() {
            self.count_lost(&lost);
        }
        next
    }

    /// Every message still unanswered (at the drain deadline, or when the
    /// connection is lost) counts as a `timeout` error.
    pub(super) fn expire_all(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut lost = Vec::new();
        self.pending.drain(&mut |m| lost.push((m.stage, m.replies)));
        self.count_lost(&lost);
    }

    /// Counts each message (its stage, replies still owed) as one
    /// `timeout` and its owed replies as unanswered.
    fn count_lost(&self, lost: &[(usize, u32)]) {
        self.shared.recorder.gauges().note_error(|| {
            "timeout: messages without a reply by their timeout, the end of the run or of their connection"
                .to_string()
        });
        let role = self.role;
        self.shared.recorder.with(|s| {
            for (st, owed) in lost {
                both(s, *st, role, |d| {
                    d.error(ErrorKind::Timeout);
                    d.counters.unanswered += u64::from(*owed);
                });
            }
        });
    }
}
