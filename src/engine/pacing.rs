//! When a connection sends: one [`Pacer`] value per connection and phase,
//! chosen from the phase's rate. The connection's work loop is the same for
//! every model; only the pacer differs.

use std::time::{Duration, Instant};

use crate::scenario::{Phase, PhaseRate};

/// Decides the scheduled time of each message of one connection in one phase.
#[derive(Debug, Clone)]
pub enum Pacer {
    /// Open model: the phase's total rate (constant or a linear ramp) is
    /// split evenly over the `open` connections that pace together, and
    /// staggered so their sends do not bunch up: the connection's k-th
    /// message is the phase's message `k * open + index`, due when the
    /// phase's cumulative schedule reaches it, whether or not earlier
    /// replies came back, so a slow server shows up in `rtt`. Each due time
    /// comes from a closed form in the message number, so a long ramp does
    /// not drift.
    Open {
        /// Start of the phase: time 0 of the schedule.
        origin: Instant,
        /// Rate at `origin`, messages per second.
        from: f64,
        /// Change of the rate per second (0 for a constant rate).
        slope: f64,
        /// This connection's place among those pacing together (u32, as
        /// connection counts are: every held connection carries a pacer).
        index: u32,
        /// How many connections pace together.
        open: u32,
        /// This connection's messages scheduled so far (from the start of
        /// the phase, including those skipped by a later start).
        k: u64,
    },
    /// Closed model (`rate: max`): send as soon as fewer than `inflight`
    /// messages are waiting for a reply.
    Closed {
        /// Messages allowed in flight at once.
        inflight: usize,
    },
}

/// A due time far enough away to mean "not in this phase".
const NEVER: Duration = Duration::from_secs(365 * 86_400);

/// Seconds from the phase start at which the phase's message `m` is due
/// under a rate of `from + slope * t` per second: the root of
/// `from * t + slope * t² / 2 = m`, in the form that stays exact for a
/// constant rate (`m / from`) and accurate for any slope. `None` when the
/// schedule never reaches `m`.
#[inline]
fn due_s(m: f64, from: f64, slope: f64) -> Option<f64> {
    if m == 0.0 {
        return Some(0.0);
    }
    let t = 2.0 * m / (from + (from * from + 2.0 * slope * m).sqrt());
    (t.is_finite() && t >= 0.0).then_some(t)
}

/// Messages of the phase due in its first `t` seconds.
#[inline]
fn due_by(t: f64, from: f64, slope: f64) -> f64 {
    from * t + slope * t * t / 2.0
}

impl Pacer {
    /// The pacer for connection `index` of `open` connections pacing
    /// together in `phase`, which started at `phase_start`, with the rate
    /// multiplied by `factor`; its first message is the first due at or
    /// after `from` (the phase start, the moment the rate or the open
    /// count changed, or a reconnect).
    pub fn for_phase(
        phase: &Phase,
        phase_start: Instant,
        from: Instant,
        index: u64,
        open: u64,
        factor: f64,
    ) -> Pacer {
        let Some((a, b)) = phase.rate.ends() else {
            return match phase.rate {
                PhaseRate::Max => Pacer::Closed {
                    inflight: phase.inflight.max(1) as usize,
                },
                // Nothing paced: never due.
                _ => Pacer::Closed { inflight: 0 },
            };
        };
        let (a, b) = (a * factor, b * factor);
        let slope = (b - a) / phase.duration.as_secs_f64();
        let open = open.max(1);
        let skipped = from.saturating_duration_since(phase_start).as_secs_f64();
        let before = due_by(skipped, a, slope);
        let k = ((before - index as f64) / open as f64).ceil().max(0.0) as u64;
        Pacer::Open {
            origin: phase_start,
            from: a,
            slope,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            open: u32::try_from(open).unwrap_or(u32::MAX),
            k,
        }
    }

    /// The scheduled time of the next message given `outstanding` replies
    /// awaited and the current time; `None` means wait for a reply first.
    #[inline]
    pub fn next_due(&self, outstanding: usize, now: Instant) -> Option<Instant> {
        match *self {
            Pacer::Open {
                origin,
                from,
                slope,
                index,
                open,
                k,
            } => {
                let m = (k * u64::from(open) + u64::from(index)) as f64;
                Some(match due_s(m, from, slope) {
                    Some(t) if t < NEVER.as_secs_f64() => origin + Duration::from_secs_f64(t),
                    _ => origin + NEVER,
                })
            }
            Pacer::Closed { inflight } => (outstanding < inflight).then_some(now),
        }
    }

    /// Marks the message returned by [`Pacer::next_due`] as sent.
    #[inline]
    pub fn advance(&mut self) {
        if let Pacer::Open { k, .. } = self {
            *k += 1;
        }
    }

    /// Messages scheduled before `end` that have not been sent (0 in the
    /// closed model, which has no schedule).
    pub fn unsent_before(&self, end: Instant) -> u64 {
        match *self {
            Pacer::Open {
                origin,
                from,
                slope,
                index,
                open,
                k,
            } => {
                if end <= origin {
                    return 0;
                }
                let t = (end - origin).as_secs_f64();
                let before = due_by(t, from, slope);
                // Messages m = j * open + index with m < before.
                let due = ((before - f64::from(index)) / f64::from(open))
                    .ceil()
                    .max(0.0) as u64;
                due.saturating_sub(k)
            }
            Pacer::Closed { .. } => 0,
        }
    }

    /// Whether latencies count from a schedule (open model) rather than from
    /// the actual write.
    pub fn is_open(&self) -> bool {
        matches!(self, Pacer::Open { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Rate;

    fn phase(rate: PhaseRate, inflight: u32) -> Phase {
        Phase {
            name: "p".into(),
            duration: Duration::from_secs(1),
            rate,
            record: true,
            inflight,
            connections: None,
        }
    }

    #[test]
    fn open_model_spreads_rate_over_connections_without_bursts() {
        let start = Instant::now();
        let p = phase(PhaseRate::PerSecond(Rate { per_second: 1000.0 }), 1);
        // 10 connections at 1000/s total: each sends every 10 ms, offset 1 ms apart.
        let mut dues = Vec::new();
        for idx in 0..10 {
            let mut pacer = Pacer::for_phase(&p, start, start, idx, 10, 1.0);
            for _ in 0..3 {
                dues.push(pacer.next_due(0, start).unwrap() - start);
                pacer.advance();
            }
        }
        dues.sort();
        for (i, d) in dues.iter().enumerate() {
            let want = Duration::from_millis(i as u64);
            let diff = d.abs_diff(want);
            assert!(diff < Duration::from_micros(1), "send {i} due at {d:?}");
        }
    }

    #[test]
    fn open_model_keeps_schedule_regardless_of_outstanding() {
        let start = Instant::now();
        let p = phase(PhaseRate::PerSecond(Rate { per_second: 100.0 }), 1);
        let pacer = Pacer::for_phase(&p, start, start, 0, 1, 1.0);
        assert!(pacer.next_due(1_000, start).is_some());
    }

    #[test]
    fn factor_scales_the_total_rate() {
        let start = Instant::now();
        let p = phase(PhaseRate::PerSecond(Rate { per_second: 100.0 }), 1);
        let mut pacer = Pacer::for_phase(&p, start, start, 0, 1, 2.0);
        pacer.advance();
        assert_eq!(
            pacer.next_due(0, start).unwrap() - start,
            Duration::from_millis(5)
        );
    }

    #[test]
    fn unsent_messages_are_counted_to_the_phase_end() {
        let start = Instant::now();
        let p = phase(PhaseRate::PerSecond(Rate { per_second: 100.0 }), 1);
        let mut pacer = Pacer::for_phase(&p, start, start, 0, 1, 1.0);
        // 10 ms apart: due at 0, 10, ..., 90 ms before a 100 ms end.
        assert_eq!(pacer.unsent_before(start + Duration::from_millis(100)), 10);
        for _ in 0..4 {
            pacer.advance();
        }
        assert_eq!(pacer.unsent_before(start + Duration::from_millis(100)), 6);
    }

    /// Every connection's schedule of `p`, as offsets from the phase start
    /// in seconds, all connections together, sorted.
    fn schedule(p: &Phase, open: u64) -> Vec<f64> {
        let start = Instant::now();
        let end = start + p.duration;
        let mut all = Vec::new();
        for idx in 0..open {
            let mut pacer = Pacer::for_phase(p, start, start, idx, open, 1.0);
            loop {
                let due = pacer.next_due(0, start).unwrap();
                if due >= end {
                    break;
                }
                all.push((due - start).as_secs_f64());
                pacer.advance();
            }
            assert_eq!(pacer.unsent_before(end), 0);
        }
        all.sort_by(f64::total_cmp);
        all
    }

    #[test]
    fn a_ramp_follows_its_line_second_by_second() {
        let mut p = phase(
            PhaseRate::Ramp {
                from: 0.0,
                to: 4000.0,
            },
            1,
        );
        p.duration = Duration::from_secs(5);
        let all = schedule(&p, 7);
        // 0 → 4000/s over 5 s: the mean of each second, 400, 1200, … /s.
        assert_eq!(all.len(), 10_000);
        for s in 0..5 {
            let n = all
                .iter()
                .filter(|t| (s as f64..s as f64 + 1.0).contains(*t))
                .count();
            let want = 800.0 * s as f64 + 400.0;
            assert!(
                (n as f64 - want).abs() <= 1.0,
                "second {s}: {n}, want {want}"
            );
        }
        // A falling ramp is the mirror image.
        p.rate = PhaseRate::Ramp {
            from: 4000.0,
            to: 0.0,
        };
        let down = schedule(&p, 3);
        assert_eq!(down.len(), 10_000);
        let first = down.iter().filter(|t| **t < 1.0).count();
        assert!((first as f64 - 3600.0).abs() <= 1.0, "{first}");
    }

    /// An hour-long ramp, computed without sleeping: every message of the
    /// schedule is due where the line says, with no drift by the end.
    #[test]
    fn an_hour_long_ramp_does_not_drift() {
        let mut p = phase(
            PhaseRate::Ramp {
                from: 1000.0,
                to: 20_000.0,
            },
            1,
        );
        p.duration = Duration::from_secs(3600);
        let start = Instant::now();
        let end = start + p.duration;
        let (from, slope) = (1000.0, 19_000.0 / 3600.0);
        let open = 1000;
        let mut total = 0u64;
        for idx in [0, 1, 499, 999] {
            let mut pacer = Pacer::for_phase(&p, start, start, idx, open, 1.0);
            let due_all = pacer.unsent_before(end);
            let mut n = 0u64;
            loop {
                let due = pacer.next_due(0, start).unwrap();
                if due >= end {
                    break;
                }
                // The cumulative schedule at the due time is the message's number.
                let t = (due - start).as_secs_f64();
                let m = (n * open + idx) as f64;
                let at = from * t + slope * t * t / 2.0;
                assert!(
                    (at - m).abs() < 1e-3,
                    "message {m} due at {t}s where the line has {at}"
                );
                pacer.advance();
                n += 1;
            }
            assert_eq!(n, due_all);
            total += n;
        }
        // (1000 + 20000) / 2 × 3600 = 37.8 M messages over 1000 connections.
        assert_eq!(total, 4 * 37_800);
    }

    #[test]
    fn a_later_start_picks_up_the_schedule_where_it_is() {
        let mut p = phase(
            PhaseRate::Ramp {
                from: 0.0,
                to: 2000.0,
            },
            1,
        );
        p.duration = Duration::from_secs(2);
        let start = Instant::now();
        // At 1 s, 500 messages of the phase are behind: the connection
        // (alone) goes on with message 500, due at 1 s.
        let from = start + Duration::from_secs(1);
        let pacer = Pacer::for_phase(&p, start, from, 0, 1, 1.0);
        let due = pacer.next_due(0, start).unwrap() - start;
        assert!(
            due.abs_diff(Duration::from_secs(1)) < Duration::from_micros(1),
            "{due:?}"
        );
        assert_eq!(pacer.unsent_before(start + p.duration), 1500);
    }

    #[test]
    fn closed_model_waits_for_replies() {
        let now = Instant::now();
        let p = phase(PhaseRate::Max, 4);
        let pacer = Pacer::for_phase(&p, now, now, 0, 1, 1.0);
        assert_eq!(pacer.next_due(3, now), Some(now));
        assert_eq!(pacer.next_due(4, now), None);
    }
}
