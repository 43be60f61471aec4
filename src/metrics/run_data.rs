//! The run data: everything a run measured, as one serializable, addable
//! value. The recorders produce it (a delta every second, added into the
//! run's total), the JSON-lines wire carries it, report.json embeds it, and
//! `report::build` derives every number of a report from it. Shards of one
//! run, seconds of one run and runs merged by `barrage merge` are all added
//! with [`RunData::add`].

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::data::{Counters, EncodedHistograms, StageData, add_histogram, decode_all, encode_all};
use crate::scenario::ShardSpec;

/// How many distinct error messages are kept.
pub const RECENT_ERRORS: usize = 5;

/// Everything a run (or a second of it, or several shards of it) measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    /// When, how long, and how the run ended.
    pub facts: RunFacts,
    /// Each role's data per stage (stage 0: connection setup; stage `i + 1`:
    /// phase `i`), in scenario order (one `default` role without `roles:`).
    pub roles: Vec<RoleData>,
    /// Close codes, refused upgrades and the latest distinct errors.
    #[serde(default)]
    pub events: Events,
    /// One entry per second of the run.
    #[serde(default)]
    pub timeline: Vec<Second>,
    /// Live changes of the rate factor and pause, in order.
    #[serde(default)]
    pub control: Vec<ControlChange>,
}

/// The run's facts. Times are milliseconds since `started_at_ms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    /// Wall-clock start (Unix time, ms): the connection ramp began.
    pub started_at_ms: u64,
    /// Start to end: ramp, phases, drain and closing.
    pub elapsed_ms: u64,
    /// When the phases started; absent when they never did.
    #[serde(default)]
    pub load_started_ms: Option<u64>,
    /// When sending stopped early (Ctrl-C, SIGTERM, `q`, `abort_on_fail`).
    #[serde(default)]
    pub stopped_ms: Option<u64>,
    /// Stopped by the user before its end.
    #[serde(default)]
    pub interrupted: bool,
    /// The `abort_on_fail` threshold that stopped the run.
    #[serde(default)]
    pub aborted: Option<Aborted>,
    /// Why the run failed as a run (not as a threshold), e.g. shards that
    /// gave no report.
    #[serde(default)]
    pub failure: Option<String>,
    /// Which slices of the connections (`--shard I/N`) this data covers;
    /// empty for a whole run.
    #[serde(default)]
    pub shards: Vec<ShardSpec>,
    /// How many runs (or shards) were added into this data: 1 for a run,
    /// 0 for a second of one.
    #[serde(default)]
    pub runs: u32,
    /// Made by `barrage merge` (or `run --processes`) from reports.
    #[serde(default)]
    pub merged: bool,
}

/// The threshold that stopped a run early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aborted {
    /// The threshold expression.
    pub threshold: String,
    /// Milliseconds since the run started.
    pub at_ms: u64,
}

/// One role's data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleData {
    /// The role's name.
    pub name: String,
    /// Connections assigned to it (set once, at the end of a run).
    #[serde(default)]
    pub assigned: u64,
    /// Stage 0 is setup, stage `i + 1` phase `i`.
    pub stages: Vec<StageData>,
}

/// Close codes, refused upgrades and recent errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Events {
    /// Close frames received, by close code.
    #[serde(default)]
    pub close_codes: BTreeMap<u16, u64>,
    /// Upgrades refused, by HTTP status.
    #[serde(default)]
    pub http_statuses: BTreeMap<u16, u64>,
    /// The latest distinct error messages, oldest first.
    #[serde(default)]
    pub recent_errors: VecDeque<String>,
}

impl Events {
    /// Adds `o`: counts summed, recent errors merged (newest kept).
    pub fn add(&mut self, o: &Events) {
        for (k, v) in &o.close_codes {
            let e = self.close_codes.entry(*k).or_default();
            *e = e.saturating_add(*v);
        }
        for (k, v) in &o.http_statuses {
            let e = self.http_statuses.entry(*k).or_default();
            *e = e.saturating_add(*v);
        }
        for m in &o.recent_errors {
            self.note(m.clone());
        }
    }

    /// Keeps `m` among the latest distinct errors.
    pub fn note(&mut self, m: String) {
        self.recent_errors.retain(|x| *x != m);
        self.recent_errors.push_back(m);
        while self.recent_errors.len() > RECENT_ERRORS {
            self.recent_errors.pop_front();
        }
    }
}

/// One second of a run: what happened in it, split into what counts in the
/// totals (setup and the recorded phases) and what does not (phases with
/// `record: false`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// End of the interval, ms since the run started.
    pub t_ms: u64,
    /// Length of the interval, ms.
    pub interval_ms: u64,
    /// The phase running at its end, if any.
    #[serde(default)]
    pub phase: Option<usize>,
    /// Connections open at its end.
    pub open: u64,
    /// Most connections open at once during it.
    pub peak_open: u64,
    /// Counters of setup and recorded phases.
    pub recorded: Counters,
    /// Their latency histograms.
    #[serde(default)]
    pub histograms: EncodedHistograms,
    /// Counters of unrecorded phases (warm-up).
    #[serde(default)]
    pub unrecorded: Counters,
    /// Their latency histograms.
    #[serde(default)]
    pub unrecorded_histograms: EncodedHistograms,
}

impl Second {
    /// The second this entry falls in, counting from 1: an interval ending
    /// at 1.003 s is second 1, one ending at 6.3 s second 7.
    pub fn bucket(t_ms: u64) -> u64 {
        t_ms.saturating_add(949) / 1000
    }

    fn add(&mut self, o: &Second) {
        self.t_ms = self.t_ms.max(o.t_ms);
        self.interval_ms = self.interval_ms.max(o.interval_ms);
        self.phase = match (self.phase, o.phase) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.open = self.open.saturating_add(o.open);
        self.peak_open = self.peak_open.saturating_add(o.peak_open);
        self.recorded.add(&o.recorded);
        self.unrecorded.add(&o.unrecorded);
        add_encoded(&mut self.histograms, &o.histograms);
        add_encoded(&mut self.unrecorded_histograms, &o.unrecorded_histograms);
    }
}

/// Adds encoded histograms by metric (decoded, added, encoded again).
fn add_encoded(a: &mut EncodedHistograms, b: &EncodedHistograms) {
    if b.is_empty() {
        return;
    }
    if a.is_empty() {
        *a = b.clone();
        return;
    }
    match (decode_all(a), decode_all(b)) {
        (Ok(mut x), Ok(y)) => {
            for (h, g) in x.iter_mut().zip(y.iter()) {
                add_histogram(h, g);
            }
            *a = encode_all(&x);
        }
        // Checked when the data was loaded; keep what decodes.
        (Err(_), Ok(_)) => *a = b.clone(),
        _ => {}
    }
}

/// A live change of the sending rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlChange {
    /// Milliseconds since the run started.
    pub at_ms: u64,
    /// Multiplier of the scenario's rates from then on.
    pub factor: f64,
    /// Whether sending was paused from then on.
    pub paused: bool,
}

impl RunFacts {
    fn shifted(&self, by: u64) -> RunFacts {
        RunFacts {
            elapsed_ms: self.elapsed_ms.saturating_add(by),
            load_started_ms: self.load_started_ms.map(|t| t.saturating_add(by)),
            stopped_ms: self.stopped_ms.map(|t| t.saturating_add(by)),
            aborted: self.aborted.clone().map(|a| Aborted {
                at_ms: a.at_ms.saturating_add(by),
                ..a
            }),
            ..self.clone()
        }
    }
}

impl RunData {
    /// Empty data for the given roles and phase count, started at `started_at_ms`.
    pub fn new(roles: &[String], phases: usize, started_at_ms: u64) -> RunData {
        RunData {
            facts: RunFacts {
                started_at_ms,
                ..RunFacts::default()
            },
            roles: roles
                .iter()
                .map(|name| RoleData {
                    name: name.clone(),
                    assigned: 0,
                    stages: (0..=phases).map(|_| StageData::default()).collect(),
                })
                .collect(),
            ..RunData::default()
        }
    }

    /// Adds `other` into `self`: stages, events and counters summed,
    /// histograms added, the timelines aligned by wall-clock second, the
    /// control logs merged, facts combined (earliest start, latest end).
    pub fn add(&mut self, other: &RunData) {
        let (a, b) = (self.facts.started_at_ms, other.facts.started_at_ms);
        let start = if self.roles.is_empty() && self.timeline.is_empty() && a == 0 {
            b
        } else {
            a.min(b)
        };
        let (shift_self, shift_other) = (a.saturating_sub(start), b.saturating_sub(start));
        if shift_self > 0 {
            self.facts = self.facts.shifted(shift_self);
            // Shifted seconds may fall into other buckets: bucket again.
            for s in std::mem::take(&mut self.timeline) {
                self.insert_second(Second {
                    t_ms: s.t_ms.saturating_add(shift_self),
                    ..s
                });
            }
            for c in &mut self.control {
                c.at_ms = c.at_ms.saturating_add(shift_self);
            }
        }
        let o = other.facts.shifted(shift_other);
        let f = &mut self.facts;
        f.started_at_ms = start;
        f.elapsed_ms = f.elapsed_ms.max(o.elapsed_ms);
        f.load_started_ms = min_some(f.load_started_ms, o.load_started_ms);
        f.stopped_ms = min_some(f.stopped_ms, o.stopped_ms);
        f.interrupted |= o.interrupted;
        f.runs = f.runs.saturating_add(o.runs);
        f.merged |= o.merged;
        if f.aborted.is_none() {
            f.aborted = o.aborted;
        }
        if f.failure.is_none() {
            f.failure = o.failure;
        }
        for s in o.shards {
            if !f.shards.contains(&s) {
                f.shards.push(s);
            }
        }
        f.shards.sort_by_key(|s| (s.count, s.index));

        for r in &other.roles {
            let mine = match self.roles.iter().position(|m| m.name == r.name) {
                Some(i) => &mut self.roles[i],
                None => {
                    self.roles.push(RoleData {
                        name: r.name.clone(),
                        ..RoleData::default()
                    });
                    self.roles.last_mut().expect("just pushed")
                }
            };
            mine.assigned = mine.assigned.saturating_add(r.assigned);
            while mine.stages.len() < r.stages.len() {
                mine.stages.push(StageData::default());
            }
            for (x, y) in mine.stages.iter_mut().zip(&r.stages) {
                x.add(y);
            }
        }
        self.events.add(&other.events);

        for s in &other.timeline {
            self.insert_second(Second {
                t_ms: s.t_ms.saturating_add(shift_other),
                ..s.clone()
            });
        }

        for c in &other.control {
            self.control.push(ControlChange {
                at_ms: c.at_ms.saturating_add(shift_other),
                ..c.clone()
            });
        }
        self.control.sort_by_key(|c| c.at_ms);
        // Shards follow the same keys: keep a change only when it changes
        // the state.
        self.control.dedup_by(|later, earlier| {
            later.factor == earlier.factor && later.paused == earlier.paused
        });
    }

    /// Stage `stage` of every role added.
    pub fn stage(&self, stage: usize) -> StageData {
        let mut d = StageData::default();
        for r in &self.roles {
            if let Some(s) = r.stages.get(stage) {
                d.add(s);
            }
        }
        d
    }

    /// Every stage of every role added (warm-up included).
    pub fn all(&self) -> StageData {
        let mut d = StageData::default();
        for r in &self.roles {
            for s in &r.stages {
                d.add(s);
            }
        }
        d
    }

    /// The counters of setup and the recorded phases, every role added:
    /// [`RunData::recorded`] without adding histograms.
    pub fn recorded_counters(&self, record: &[bool]) -> Counters {
        let mut c = Counters::default();
        for r in &self.roles {
            for (i, s) in r.stages.iter().enumerate() {
                if i == 0 || record.get(i - 1).copied().unwrap_or(false) {
                    c.add(&s.counters);
                }
            }
        }
        c
    }

    /// Setup and the stages of the phases with `record[i]` set, of one
    /// role's stages: what totals and thresholds count.
    pub fn recorded_of(stages: &[StageData], record: &[bool]) -> StageData {
        let mut d = StageData::default();
        for (i, s) in stages.iter().enumerate() {
            if i == 0 || record.get(i - 1).copied().unwrap_or(false) {
                d.add(s);
            }
        }
        d
    }

    /// Checks what deserializing does not: every histogram of the timeline
    /// decodes (the cells' are decoded as they are read). The error names
    /// the field.
    pub fn check(&self) -> Result<(), String> {
        for (i, s) in self.timeline.iter().enumerate() {
            for (which, enc) in [
                ("histograms", &s.histograms),
                ("unrecorded_histograms", &s.unrecorded_histograms),
            ] {
                decode_all(enc).map_err(|e| format!("run_data.timeline[{i}].{which}.{e}"))?;
            }
        }
        Ok(())
    }

    /// Adds `s` to the second of the timeline it falls in, or inserts it
    /// in order.
    fn insert_second(&mut self, s: Second) {
        let key = Second::bucket(s.t_ms);
        match self
            .timeline
            .binary_search_by_key(&key, |x| Second::bucket(x.t_ms))
        {
            Ok(i) => self.timeline[i].add(&s),
            Err(i) => self.timeline.insert(i, s),
        }
    }

    /// Setup and the recorded phases, every role added.
    pub fn recorded(&self, record: &[bool]) -> StageData {
        let mut d = StageData::default();
        for r in &self.roles {
            d.add(&Self::recorded_of(&r.stages, record));
        }
        d
    }

    /// How long phase `i` ran, in ms: from its planned start to its planned
    /// end or the stop, whichever came first (`durations_ms` are the
    /// planned lengths).
    pub fn phase_ms(&self, durations_ms: &[u64], i: usize) -> u64 {
        let Some(load) = self.facts.load_started_ms else {
            return 0;
        };
        let before = durations_ms[..i]
            .iter()
            .fold(0u64, |a, d| a.saturating_add(*d));
        let begin = load.saturating_add(before);
        let stop = self.facts.stopped_ms.unwrap_or(self.facts.elapsed_ms);
        let end = begin
            .saturating_add(durations_ms[i])
            .min(stop)
            .min(self.facts.elapsed_ms.max(begin));
        end.saturating_sub(begin)
    }

    /// The rate factor and pause in force at `t_ms`.
    pub fn control_at(&self, t_ms: u64) -> (f64, bool) {
        self.control
            .iter()
            .take_while(|c| c.at_ms <= t_ms)
            .last()
            .map_or((1.0, false), |c| (c.factor, c.paused))
    }
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}
