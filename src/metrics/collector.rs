//! Once a tick, the collector takes everything the threads recorded since
//! the last tick and turns it into a [`RunData`] delta: that interval's
//! cells, one [`Second`] of timeline, the events and control changes since
//! the last tick. Added together, the deltas are the run's data.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

use super::data::{StageData, encode_all};
use super::recorder::{Recorder, ThreadData};
use super::run_data::{ControlChange, RunData, Second};
use crate::control::Control;

/// Where the run is at a tick, as the engine knows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TickInfo {
    /// Phase running, if any.
    pub phase: Option<usize>,
    /// When the phases started, if they have.
    pub load_started: Option<Instant>,
}

/// Turns the recorder's data into per-tick deltas.
pub struct Collector {
    recorder: Recorder,
    control: Arc<Control>,
    roles: Vec<String>,
    started: Instant,
    started_at_ms: u64,
    last: Instant,
    interval: ThreadData,
    /// `record` flag of each phase.
    record: Vec<bool>,
    /// Control changes already handed over.
    changes_seen: usize,
}

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

impl Collector {
    /// A collector for `recorder`'s run, which started at `started` (Unix
    /// time `started_at_ms`); `record[i]` says whether phase `i` counts in
    /// the totals; `roles` names the recorder's roles.
    pub fn new(
        recorder: Recorder,
        control: Arc<Control>,
        roles: Vec<String>,
        record: Vec<bool>,
        started: Instant,
        started_at_ms: u64,
    ) -> Self {
        let (n_roles, phases) = recorder.shape();
        Collector {
            recorder,
            control,
            roles,
            started,
            started_at_ms,
            last: started,
            interval: ThreadData::new(n_roles, phases),
            record,
            changes_seen: 0,
        }
    }

    /// How long to wait before a last tick at `now`, so that it falls in
    /// another second than the tick before it: two deltas of one run in one
    /// second would be added as two shards' (their open counts summed).
    /// At most about 50 ms.
    pub fn wait_for_own_second(&self, now: Instant) -> std::time::Duration {
        let last = ms(self.last.saturating_duration_since(self.started));
        let t = ms(now.saturating_duration_since(self.started));
        if self.last == self.started || Second::bucket(t) != Second::bucket(last) {
            return std::time::Duration::ZERO;
        }
        // The first millisecond of the next bucket.
        let next = (Second::bucket(last) + 1) * 1000 - 949;
        std::time::Duration::from_millis(next.saturating_sub(t))
    }

    /// Everything since the last tick, as run data.
    pub fn tick(&mut self, now: Instant, at: TickInfo) -> RunData {
        self.recorder.collect_into(&mut self.interval);
        let gauges = self.recorder.gauges();
        let mut delta = RunData::new(&self.roles, self.record.len(), self.started_at_ms);
        let mut recorded = StageData::default();
        let mut unrecorded = StageData::default();
        for (r, role) in delta.roles.iter_mut().enumerate() {
            for (stage, (into, from)) in role
                .stages
                .iter_mut()
                .zip(self.interval.role(r))
                .enumerate()
            {
                if stage == 0 || self.record.get(stage - 1).copied().unwrap_or(false) {
                    recorded.add(from);
                } else {
                    unrecorded.add(from);
                }
                into.add(from);
            }
        }
        self.interval.reset();
        let t_ms = ms(now.saturating_duration_since(self.started));
        delta.facts.elapsed_ms = t_ms;
        delta.facts.load_started_ms = at
            .load_started
            .map(|l| ms(l.saturating_duration_since(self.started)));
        delta.timeline.push(Second {
            t_ms,
            interval_ms: ms(now.saturating_duration_since(self.last)),
            phase: at.phase,
            open: gauges.open.load(SeqCst),
            peak_open: gauges.take_peak(),
            recorded: recorded.counters,
            histograms: encode_all(&recorded.hist),
            unrecorded: unrecorded.counters,
            unrecorded_histograms: encode_all(&unrecorded.hist),
        });
        delta.events = gauges.take_events();
        let changes = self.control.changes();
        delta.control = changes[self.changes_seen.min(changes.len())..]
            .iter()
            .map(|c| ControlChange {
                at_ms: ms(c.at.saturating_duration_since(self.started)),
                factor: c.factor,
                paused: c.paused,
            })
            .collect();
        self.changes_seen = changes.len();
        self.last = now;
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A last tick right after a regular one waits for the next second, so
    /// a run's two deltas are never added as if they were two shards'.
    #[test]
    fn a_last_tick_gets_a_second_of_its_own() {
        let started = Instant::now();
        let mut c = Collector::new(
            Recorder::new(1, 1),
            Arc::default(),
            vec!["default".into()],
            vec![true],
            started,
            0,
        );
        let info = || TickInfo {
            phase: Some(0),
            load_started: Some(started),
        };
        let at = |ms| started + Duration::from_millis(ms);
        let first = c.tick(at(1_008), info());
        let wait = c.wait_for_own_second(at(1_020));
        assert_eq!(wait, Duration::from_millis(31));
        let last = c.tick(at(1_020) + wait, info());
        assert_ne!(
            Second::bucket(first.timeline[0].t_ms),
            Second::bucket(last.timeline[0].t_ms)
        );
        // Far enough from the last tick: no wait.
        assert_eq!(c.wait_for_own_second(at(2_100)), Duration::ZERO);
    }
}
