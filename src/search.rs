//! `barrage search`: the highest message rate (or, with `--vary
//! connections`, connection count) at which every SLO holds.
//! Steps go up geometrically (×2) from `--from` until one breaks, then
//! bisect to `--precision`. One run holds the connections open throughout;
//! each step is three phases: a warm-up, the measured step, and a
//! cool-down that sends nothing, in which the step's last replies come back
//! or time out (so the step's data is final when it is judged) and an
//! overloaded server works off its backlog before the next step (with [`crate::report::search::judge`], as the
//! report judges it). A step where barrage fell behind ends the search as
//! tester-bound.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::metrics::RunData;
use crate::report::build::saturated;
use crate::report::model::{PhasePlan, ScenarioInfo};
use crate::report::search::{self as judging, STEP_PREFIX, SearchPlan, Vary, judge};
use crate::scenario::{Phase, PhaseConnections, PhaseRate, Rate, Scenario, Step, Threshold};

/// What to search for and how.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// Every step must hold all of them (`--slo`).
    pub slos: Vec<Threshold>,
    /// What the steps vary (`--vary`, default the message rate).
    pub vary: Vary,
    /// First value tried: messages per second (`--from`, default 1000/s),
    /// or connections (default 100).
    pub from: f64,
    /// Highest value tried (`--to`, default 500000/s, or 10000
    /// connections).
    pub to: f64,
    /// How long each step is measured (`--step`, default 10 s).
    pub step: Duration,
    /// Warm-up at a step's rate before it is measured (`--warmup`, default
    /// 2 s, at least 2 s: the step before is judged during it).
    pub warmup: Duration,
    /// After a step, a pause that sends nothing: the step's last replies
    /// may take this long (later ones time out) and an overloaded server
    /// drains its backlog (`--cooldown`, default 5 s).
    pub cooldown: Duration,
    /// Stop when the gap between the highest passing and the lowest failing
    /// rate is at most this share of the passing one (`--precision`,
    /// default 5%).
    pub precision: f64,
    /// Below this capacity the search fails (`--min`).
    pub min: Option<f64>,
}

impl SearchSettings {
    /// The most steps the search can take: doublings from `from` to `to`,
    /// then halvings of the gap down to `precision`.
    pub fn max_steps(&self) -> usize {
        let up = (self.to / self.from).log2().ceil().max(0.0) as usize + 1;
        let bisect = (1.0 / self.precision).log2().ceil().max(0.0) as usize + 1;
        up + bisect
    }

    /// The report's record of the search.
    pub fn plan(&self) -> SearchPlan {
        SearchPlan {
            slos: self.slos.iter().map(|t| t.expr.clone()).collect(),
            vary: self.vary,
            from: self.from,
            to: self.to,
            precision: self.precision,
            min: self.min,
        }
    }
}

/// The next rate to try, from the steps so far: up ×2 while steps pass,
/// then halfway between the highest pass and the lowest failure.
#[derive(Debug, Clone)]
pub struct Searcher {
    from: f64,
    to: f64,
    precision: f64,
    /// Values are whole (connection counts).
    whole: bool,
    pass: Option<f64>,
    fail: Option<f64>,
}

impl Searcher {
    /// A search between `from` and `to` to `precision`.
    pub fn new(s: &SearchSettings) -> Searcher {
        Searcher {
            from: s.from,
            to: s.to,
            precision: s.precision,
            whole: s.vary == Vary::Connections,
            pass: None,
            fail: None,
        }
    }

    /// The first rate.
    pub fn first(&self) -> f64 {
        self.from
    }

    /// Records how `rate` went; the next rate, or `None` when the search is
    /// over (an answer, or a tester-bound step).
    pub fn next(&mut self, rate: f64, pass: bool, tester_bound: bool) -> Option<f64> {
        if tester_bound {
            return None;
        }
        if pass {
            self.pass = Some(self.pass.map_or(rate, |p| p.max(rate)));
        } else {
            self.fail = Some(self.fail.map_or(rate, |f| f.min(rate)));
        }
        match (self.pass, self.fail) {
            (None, _) => None,
            (Some(p), None) if p >= self.to => None,
            (Some(p), None) => Some((p * 2.0).min(self.to)),
            (Some(p), Some(f)) if f - p <= self.precision * p => None,
            (Some(p), Some(f)) if self.whole && f - p <= 1.0 => None,
            (Some(p), Some(f)) if self.whole => Some(((p + f) / 2.0).round()),
            (Some(p), Some(f)) => Some((p + f) / 2.0),
        }
    }
}

/// Name of step `k`'s phase `part` (0 warm-up, 1 measured, 2 cool-down).
fn phase_name(k: usize, part: usize) -> String {
    let n = k + 1;
    match part {
        0 => format!("{STEP_PREFIX}{n}-warmup"),
        1 => format!("{STEP_PREFIX}{n}"),
        _ => format!("{STEP_PREFIX}{n}-cooldown"),
    }
}

/// A search in progress: lays out its phases, steers the run while it goes,
/// and trims the run to the steps taken. A follower (a shard process of
/// `search --processes`) only lays out the phases: its parent steers it
/// through control lines and trims the merged run.
#[derive(Debug, Clone)]
pub struct SearchRun {
    settings: SearchSettings,
    /// Decides the steps (not a follower).
    leads: bool,
    /// Messages per second each connection sends (a search over
    /// connections at an open-model rate), from the scenario.
    per_connection: Option<f64>,
    /// The value of every step started, in order.
    tried: Arc<Mutex<Vec<f64>>>,
}

impl SearchRun {
    /// A search with `settings` that decides its steps.
    pub fn new(settings: SearchSettings) -> SearchRun {
        SearchRun {
            settings,
            leads: true,
            per_connection: None,
            tried: Arc::default(),
        }
    }

    /// A shard of a search steered by its parent process.
    pub fn follower(settings: SearchSettings) -> SearchRun {
        SearchRun {
            leads: false,
            ..SearchRun::new(settings)
        }
    }

    /// Whether this process decides the steps.
    pub fn leads(&self) -> bool {
        self.leads
    }

    /// The settings, the warm-up as laid out.
    pub fn settings(&self) -> &SearchSettings {
        &self.settings
    }

    /// Replaces the scenario's phases with room for every step the search
    /// can take (values are set as it goes), drops its thresholds (the SLOs
    /// judge each step), and gives every send without a timeout the
    /// cool-down, so a step's replies are all in or timed out by its end.
    /// A search over connections keeps the rate model of the scenario's
    /// last phase per connection, and warms up long enough to open the
    /// largest step's new connections at `connections.rate`.
    pub fn layout(&mut self, s: &mut Scenario) -> Result<(), String> {
        let base = s
            .phases
            .last()
            .expect("validated: at least one phase")
            .clone();
        let mut step_rate = PhaseRate::PerSecond(Rate {
            per_second: self.settings.from,
        });
        let mut inflight = 1;
        let mut connections = None;
        if self.settings.vary == Vary::Connections {
            if let Some(r) = s.roles.iter().find(|r| r.rate.is_some()) {
                return Err(format!(
                    "--vary connections: role {:?} has a rate of its own, which does not grow \
                     with the connections; give the phases the rate instead",
                    r.name
                ));
            }
            if base.connections.is_some() || s.connections.lifetime.is_some() {
                return Err(
                    "--vary connections sets the connection count itself: leave out the \
                     phases' `connections:` and `connections.lifetime`"
                        .into(),
                );
            }
            self.per_connection = base.rate.mean().map(|r| r / f64::from(s.connections.count));
            step_rate = match self.per_connection {
                Some(r) => PhaseRate::PerSecond(Rate {
                    per_second: r * self.settings.from,
                }),
                None => base.rate,
            };
            inflight = base.inflight;
            let (from, to) = (self.settings.from as u32, self.settings.to as u32);
            s.connections.count = from;
            connections = Some(PhaseConnections {
                count: to,
                rate: None,
            });
            // The largest rise of one step is a doubling, at most to/2.
            let rise = f64::from(to - to / 2) / s.connections.rate.per_second;
            let need = Duration::from_secs_f64(rise.ceil() + 1.0);
            self.settings.warmup = self.settings.warmup.max(need);
        }
        let st = &self.settings;
        let phase = |k: usize, part: usize| Phase {
            name: phase_name(k, part),
            duration: [st.warmup, st.step, st.cooldown][part],
            rate: if part == 2 {
                PhaseRate::None
            } else {
                step_rate
            },
            record: part == 1,
            inflight,
            connections,
        };
        s.phases = (0..st.max_steps())
            .flat_map(|k| (0..3).map(move |part| (k, part)))
            .map(|(k, part)| phase(k, part))
            .collect();
        s.thresholds.clear();
        if s.flow.is_none() && s.roles.is_empty() {
            s.flow = Some(Step::default_flow(&s.message));
        }
        let cooldown = st.cooldown;
        let set = |steps: &mut Vec<Step>| {
            crate::scenario::walk_mut(steps, &mut |step| {
                if let Step::Send(send) = step {
                    send.timeout.get_or_insert(cooldown);
                }
            })
        };
        if let Some(f) = &mut s.flow {
            set(f);
        }
        for r in &mut s.roles {
            set(&mut r.flow);
        }
        Ok(())
    }

    /// The plan in one line, for people: bounds, the most steps and time.
    pub fn describe(&self) -> String {
        let st = &self.settings;
        let n = st.max_steps();
        let each = st.warmup + st.step + st.cooldown;
        let per = match (st.vary, self.per_connection) {
            (Vary::Connections, Some(r)) => format!(" at {r}/s each"),
            _ => String::new(),
        };
        format!(
            "search: {} to {}{per}, doubling then bisecting to {}%: at most {n} steps of {:?} \
             warm-up + {:?} step + {:?} cool-down, up to {:?}",
            st.vary.show(st.from),
            st.vary.show(st.to),
            st.precision * 100.0,
            st.warmup,
            st.step,
            st.cooldown,
            each * n as u32
        )
    }

    /// The total rate of a step at `value`, if it is paced.
    fn rate_of(&self, value: f64) -> Option<f64> {
        match self.settings.vary {
            Vary::Rate => Some(value),
            Vary::Connections => self.per_connection.map(|r| r * value),
        }
    }

    /// Sets step `k`'s phases to `value` on `control`. The cool-down sends
    /// nothing; under a search over connections it holds the count.
    fn set_step(&self, control: &Control, k: usize, value: f64) {
        if k >= self.settings.max_steps() {
            return;
        }
        if let Some(r) = self.rate_of(value) {
            for part in 0..2 {
                control.set_phase_rate(3 * k + part, r);
            }
        }
        if self.settings.vary == Vary::Connections {
            for part in 0..3 {
                control.set_phase_connections(3 * k + part, value as u32);
            }
        }
    }

    /// Steers the run: passes every delta from `rx` on to `out` (the UI),
    /// judges each step once it has cooled down, sets the next step's value
    /// on `control`, and cancels `finish` when the search is over. `phases`
    /// is the laid-out plan.
    pub fn spawn(
        &self,
        phases: Vec<PhasePlan>,
        control: Arc<Control>,
        finish: CancellationToken,
        mut rx: mpsc::UnboundedReceiver<Arc<RunData>>,
        out: Option<mpsc::UnboundedSender<Arc<RunData>>>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        // On a thread of its own: adding up and judging a step's data
        // must not hold up the connections' worker threads (it showed as
        // send_lag, and a step judged tester-bound).
        tokio::task::spawn_blocking(move || {
            let settings = &this.settings;
            let mut searcher = Searcher::new(settings);
            let mut value = searcher.first();
            let start_step = |k: usize, value: f64| {
                this.set_step(&control, k, value);
                // Until step k is judged, the next one holds the same
                // value: its warm-up starts before that.
                this.set_step(&control, k + 1, value);
                if let Ok(mut t) = this.tried.lock() {
                    t.push(value);
                }
            };
            start_step(0, value);
            let mut k = 0;
            let mut done = false;
            let mut total: Option<RunData> = None;
            let ends: Vec<u64> = phases
                .iter()
                .scan(0u64, |t, p| {
                    *t += (p.duration_s * 1000.0).round() as u64;
                    Some(*t)
                })
                .collect();
            // Expiries run on the connections' timers: a little slack
            // after the cool-down before the step's data is final.
            const SLACK_MS: u64 = 250;
            while let Some(delta) = rx.blocking_recv() {
                match &mut total {
                    Some(t) => t.add(&delta),
                    None => total = Some((*delta).clone()),
                }
                let now_ms = delta.facts.elapsed_ms;
                if let Some(out) = &out {
                    let _ = out.send(delta);
                }
                let Some(t) = &total else { continue };
                let Some(load) = t.facts.load_started_ms else {
                    continue;
                };
                if done || now_ms < load + ends[3 * k + 2] + SLACK_MS {
                    continue;
                }
                let mut plan = phases[3 * k + 1].clone();
                this.set_plan(&mut plan, value);
                let data = t.stage(3 * k + 2);
                let step = judging::Step {
                    plan: &plan,
                    data: &data,
                    secs: plan.duration_s,
                    saturated: saturated(&plan, &data),
                    open: judging::step_open(&t.timeline, 3 * k + 1),
                };
                let step = judge(&settings.slos, &step);
                match searcher.next(value, step.pass, step.tester_bound) {
                    Some(v) if k + 1 < settings.max_steps() => {
                        k += 1;
                        value = v;
                        start_step(k, value);
                    }
                    _ => {
                        done = true;
                        finish.cancel();
                    }
                }
            }
        })
    }

    /// A step phase's plan as it ran at `value`.
    fn set_plan(&self, p: &mut PhasePlan, value: f64) {
        if p.rate.is_some() {
            p.rate = self.rate_of(value);
        }
        if self.settings.vary == Vary::Connections {
            p.connections = Some(value as u32);
        }
    }

    /// Trims the run to the steps taken: the plan keeps their phases with
    /// the values they ran at and the search's record; what the run
    /// recorded in phases it did not finish goes to the stage after the
    /// phases (not recorded).
    pub fn conclude(&self, plan: &mut ScenarioInfo, data: &mut RunData) {
        let tried = self.tried.lock().map(|t| t.clone()).unwrap_or_default();
        let kept = 3 * tried.len();
        plan.phases.truncate(kept);
        for (i, p) in plan.phases.iter_mut().enumerate() {
            self.set_plan(p, tried[i / 3]);
        }
        if self.settings.vary == Vary::Connections {
            plan.connections = self.settings.from as u32;
        }
        plan.thresholds.clear();
        plan.search = Some(self.settings.plan());
        for role in &mut data.roles {
            let mut after = crate::metrics::StageData::default();
            for s in role.stages.drain(kept + 1..) {
                after.add(&s);
            }
            role.stages.push(after);
        }
        for s in &mut data.timeline {
            if s.phase.is_some_and(|p| p >= kept) {
                s.phase = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(from: f64, to: f64, precision: f64) -> SearchSettings {
        SearchSettings {
            slos: Vec::new(),
            vary: Vary::Rate,
            from,
            to,
            step: Duration::from_secs(1),
            warmup: Duration::from_secs(2),
            cooldown: Duration::from_secs(1),
            precision,
            min: None,
        }
    }

    /// Against a server that holds up to `capacity`: the rates tried and
    /// the answer.
    fn search(s: &SearchSettings, capacity: f64) -> (Vec<f64>, Option<f64>) {
        let mut searcher = Searcher::new(s);
        let mut rate = Some(searcher.first());
        let (mut tried, mut best) = (Vec::new(), None);
        while let Some(r) = rate {
            tried.push(r);
            let pass = r <= capacity;
            if pass {
                best = Some(best.map_or(r, |b: f64| b.max(r)));
            }
            rate = searcher.next(r, pass, false);
        }
        (tried, best)
    }

    #[test]
    fn steps_up_then_bisects_to_the_precision() {
        let s = settings(1000.0, 500_000.0, 0.05);
        let (tried, best) = search(&s, 23_400.0);
        assert_eq!(
            &tried[..6],
            &[1000.0, 2000.0, 4000.0, 8000.0, 16_000.0, 32_000.0]
        );
        let best = best.unwrap();
        assert!(
            (23_400.0 * 0.95..=23_400.0).contains(&best),
            "{best} after {tried:?}"
        );
        assert!(
            tried.len() <= s.max_steps(),
            "{} > {}",
            tried.len(),
            s.max_steps()
        );
    }

    #[test]
    fn ends_at_the_bounds_and_on_a_tester_bound_step() {
        let s = settings(1000.0, 4000.0, 0.05);
        let (tried, best) = search(&s, 1e9);
        assert_eq!(tried, [1000.0, 2000.0, 4000.0]);
        assert_eq!(best, Some(4000.0));
        let (tried, best) = search(&s, 10.0);
        assert_eq!((tried, best), (vec![1000.0], None));
        let mut searcher = Searcher::new(&s);
        assert_eq!(searcher.next(1000.0, true, true), None);
    }

    #[test]
    fn the_most_steps_cover_every_search() {
        for (from, to, p) in [
            (1000.0, 500_000.0, 0.05),
            (1.0, 1e6, 0.01),
            (100.0, 100.0, 0.5),
        ] {
            let s = settings(from, to, p);
            for capacity in [from * 0.5, from, from * 1.7, to * 0.3, to * 0.99, to * 2.0] {
                let (tried, _) = search(&s, capacity);
                assert!(tried.len() <= s.max_steps(), "{from}..{to} {p}: {tried:?}");
            }
        }
    }
}
