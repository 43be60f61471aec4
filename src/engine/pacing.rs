//! When a connection sends: one [`Pacer`] value per connection and phase,
//! chosen from the phase's rate. The connection's work loop is the same for
//! every model; only the pacer differs.

use std::time::{Duration, Instant};

use crate::scenario::{Phase, PhaseRate};

/// Decides the scheduled time of each message of one connection in one phase.
#[derive(Debug, Clone)]
pub enum Pacer {
    /// Open model: the phase's total rate is split evenly over the open
    /// connections, staggered so the sends of different connections do not
    /// bunch up. The k-th message is due at `first + k * interval` whether or
    /// not earlier replies came back, so a slow server shows up in `rtt`.
    Open {
        /// Due time of the first message.
        first: Instant,
        /// Time between this connection's messages, in seconds.
        interval_s: f64,
        /// Messages already scheduled.
        k: u64,
    },
    /// Closed model (`rate: max`): send as soon as fewer than `inflight`
    /// messages are waiting for a reply.
    Closed {
        /// Messages allowed in flight at once.
        inflight: usize,
    },
}

impl Pacer {
    /// The pacer for connection `index` of `open` open connections in
    /// `phase` from `start` (the phase start, or the moment the rate was
    /// changed), with the phase's rate multiplied by `factor`.
    pub fn for_phase(phase: &Phase, start: Instant, index: u64, open: u64, factor: f64) -> Pacer {
        match phase.rate {
            PhaseRate::Max => Pacer::Closed {
                inflight: phase.inflight.max(1) as usize,
            },
            // Nothing paced: never due.
            PhaseRate::None => Pacer::Closed { inflight: 0 },
            PhaseRate::PerSecond(rate) => {
                let total = rate.per_second * factor;
                let open = open.max(1) as f64;
                Pacer::Open {
                    first: start + Duration::from_secs_f64(index as f64 / total),
                    interval_s: open / total,
                    k: 0,
                }
            }
        }
    }

    /// The scheduled time of the next message given `outstanding` replies
    /// awaited and the current time; `None` means wait for a reply first.
    #[inline]
    pub fn next_due(&self, outstanding: usize, now: Instant) -> Option<Instant> {
        match *self {
            Pacer::Open {
                first,
                interval_s,
                k,
            } => Some(first + Duration::from_secs_f64(k as f64 * interval_s)),
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
                first,
                interval_s,
                k,
            } => {
                let span = end.saturating_duration_since(first).as_secs_f64();
                let due = if end > first {
                    (span / interval_s).ceil() as u64
                } else {
                    0
                };
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
        }
    }

    #[test]
    fn open_model_spreads_rate_over_connections_without_bursts() {
        let start = Instant::now();
        let p = phase(PhaseRate::PerSecond(Rate { per_second: 1000.0 }), 1);
        // 10 connections at 1000/s total: each sends every 10 ms, offset 1 ms apart.
        let mut dues = Vec::new();
        for idx in 0..10 {
            let mut pacer = Pacer::for_phase(&p, start, idx, 10, 1.0);
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
        let pacer = Pacer::for_phase(&p, start, 0, 1, 1.0);
        assert!(pacer.next_due(1_000, start).is_some());
    }

    #[test]
    fn factor_scales_the_total_rate() {
        let start = Instant::now();
        let p = phase(PhaseRate::PerSecond(Rate { per_second: 100.0 }), 1);
        let mut pacer = Pacer::for_phase(&p, start, 0, 1, 2.0);
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
        let mut pacer = Pacer::for_phase(&p, start, 0, 1, 1.0);
        // 10 ms apart: due at 0, 10, ..., 90 ms before a 100 ms end.
        assert_eq!(pacer.unsent_before(start + Duration::from_millis(100)), 10);
        for _ in 0..4 {
            pacer.advance();
        }
        assert_eq!(pacer.unsent_before(start + Duration::from_millis(100)), 6);
    }

    #[test]
    fn closed_model_waits_for_replies() {
        let now = Instant::now();
        let p = phase(PhaseRate::Max, 4);
        let pacer = Pacer::for_phase(&p, now, 0, 1, 1.0);
        assert_eq!(pacer.next_due(3, now), Some(now));
        assert_eq!(pacer.next_due(4, now), None);
    }
}
