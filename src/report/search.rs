//! A capacity search (`barrage search`) as the report derives it: each step
//! judged against the SLOs from its phase's data, and the answer. The
//! searcher judges each step with the same function while the run goes, so
//! the steps it took and the report's verdicts cannot disagree.

use serde::{Deserialize, Serialize};

use super::model::PhasePlan;
use crate::metrics::evaluate::{EvalContext, PhaseData, evaluate};
use crate::metrics::{Second, StageData};
use crate::scenario::Threshold;

/// Name suffix of the phase a step is measured in (`step-3`); its warm-up
/// is `step-3-warmup`, the pause after it `step-3-cooldown`.
pub const STEP_PREFIX: &str = "step-";

/// What a search varies from step to step (`--vary`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Vary {
    /// The total message rate, over the scenario's connections.
    #[default]
    Rate,
    /// The connection count, each connection at the scenario's
    /// per-connection rate (or its closed loop, or listening only).
    Connections,
}

impl Vary {
    /// How a value of it reads: `23,400 msg/s`, `1,500 connections`.
    pub fn show(self, v: f64) -> String {
        match self {
            Vary::Rate => format!("{} msg/s", thousands(v)),
            Vary::Connections => format!("{} connections", thousands(v)),
        }
    }
}

/// What a search was asked (kept in the report's scenario).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPlan {
    /// The SLOs every step is held to, as written.
    pub slos: Vec<String>,
    /// What the steps vary.
    #[serde(default)]
    pub vary: Vary,
    /// The first value tried (messages per second, or connections).
    pub from: f64,
    /// The highest value tried.
    pub to: f64,
    /// Bisection stops when the gap between the highest passing and the
    /// lowest failing rate is at most this share of the passing one.
    pub precision: f64,
    /// The capacity below which the search fails (exit 1), if given.
    pub min: Option<f64>,
}

/// One SLO on one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// The SLO as written.
    pub expr: String,
    /// What the step showed (µs, a fraction or a count).
    pub observed: f64,
    /// The same for people.
    pub observed_text: String,
    /// Whether it held.
    pub pass: bool,
}

/// One step of the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// The phase it was measured in.
    pub phase: String,
    /// The rate offered (messages per second; 0 for a closed loop or
    /// listening only).
    pub offered: f64,
    /// The connection count of the step (a search over connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// The rate achieved (paced sends per second of the step).
    pub achieved: f64,
    /// Each SLO on the step.
    pub slos: Vec<SloResult>,
    /// Every SLO held and barrage kept up.
    pub pass: bool,
    /// Every SLO held but barrage itself fell behind its schedule
    /// (send_lag, not-sent): the pass says nothing of the server at the
    /// offered value, and the search ends there. (A step that broke an
    /// SLO while barrage fell behind is a failure: the server broke it
    /// under no more than the offered load.)
    pub tester_bound: bool,
}

/// The search's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// What was asked.
    pub plan: SearchPlan,
    /// Every step, in the order taken.
    pub steps: Vec<StepResult>,
    /// The highest value that passed, if any did: the offered rate, or
    /// the connection count.
    pub capacity: Option<f64>,
    /// The search ended at a step where barrage fell behind: the server's
    /// capacity is at least `capacity`, not known to be it.
    pub tester_bound: bool,
    /// The answer in one line, for people.
    pub answer: String,
}

/// One step as it is judged: its plan, data and length, whether barrage
/// fell behind (the report's test of a phase falling behind), and the
/// fewest connections open at a second's end during it.
pub struct Step<'a> {
    /// The step's phase, its rate and connection count as they ran.
    pub plan: &'a PhasePlan,
    /// What the step recorded.
    pub data: &'a StageData,
    /// How long it ran, seconds.
    pub secs: f64,
    /// barrage fell behind its schedule.
    pub saturated: bool,
    /// The fewest connections open during it.
    pub open: Option<u64>,
}

/// The fewest connections open at the end of a second of phase `phase`.
pub fn step_open(timeline: &[Second], phase: usize) -> Option<u64> {
    timeline
        .iter()
        .filter(|s| s.phase == Some(phase))
        .map(|s| s.open)
        .min()
}

/// Judges one step: the SLOs against the step's data, whether barrage kept
/// up, and, for a step with a connection count, whether that many were
/// open throughout (a server that refuses connections does not hold them).
pub fn judge(slos: &[Threshold], step: &Step<'_>) -> StepResult {
    let (plan, data, secs) = (step.plan, step.data, step.secs);
    let phase = PhaseData {
        name: &plan.name,
        data,
        open: plan.rate.is_some(),
        secs,
        record: true,
    };
    let ctx = EvalContext {
        recorded: data,
        phases: vec![phase],
        ended: true,
    };
    let mut results: Vec<SloResult> = slos
        .iter()
        .map(|t| {
            let e = evaluate(t, &ctx);
            SloResult {
                expr: t.expr.clone(),
                observed: e.observed,
                observed_text: e.observed_text,
                pass: e.pass && !e.pending,
            }
        })
        .collect();
    if let Some(n) = plan.connections {
        let open = step.open.unwrap_or(0);
        results.push(SloResult {
            expr: "connections open".into(),
            observed: open as f64,
            observed_text: format!("{} of {}", thousands(open as f64), thousands(f64::from(n))),
            pass: open >= u64::from(n),
        });
    }
    let held = results.iter().all(|s| s.pass);
    StepResult {
        phase: plan.name.clone(),
        offered: plan.rate.unwrap_or(0.0),
        connections: plan.connections,
        achieved: super::build::achieved_rate(&data.counters, secs),
        // A step that broke an SLO while barrage fell behind still failed:
        // the server broke it under no more than the offered load. Only a
        // pass is in doubt when barrage fell behind.
        pass: !step.saturated && held,
        slos: results,
        tester_bound: step.saturated && held,
    }
}

/// The value a step tried: its rate, or its connection count.
pub fn tried(vary: Vary, s: &StepResult) -> f64 {
    match vary {
        Vary::Rate => s.offered,
        Vary::Connections => f64::from(s.connections.unwrap_or(0)),
    }
}

/// The answer of `steps` taken under `plan`.
pub fn conclude(plan: &SearchPlan, steps: Vec<StepResult>) -> SearchReport {
    let best = steps
        .iter()
        .filter(|s| s.pass)
        .max_by(|a, b| tried(plan.vary, a).total_cmp(&tried(plan.vary, b)));
    let capacity = best.map(|s| tried(plan.vary, s));
    let tester_bound = steps.iter().any(|s| s.tester_bound);
    let under = plan.slos.join(" and ");
    let show = |v: f64| plan.vary.show(v);
    // A search over connections says the rate they sent too.
    let at = match best {
        Some(s) if plan.vary == Vary::Connections && s.offered > 0.0 => {
            format!(" ({} msg/s)", thousands(s.offered))
        }
        _ => String::new(),
    };
    let answer = match (capacity, tester_bound) {
        (Some(c), false) if steps.iter().all(|s| s.pass) => format!(
            "capacity: at least {}{at} under {under} (every step up to --to passed)",
            show(c)
        ),
        (Some(c), false) => format!("capacity: {}{at} under {under}", show(c)),
        (Some(c), true) => format!(
            "tester-bound: barrage fell behind above {}; the server held {under} up to there \
             and its capacity is higher (run more shards or processes)",
            show(c)
        ),
        (None, true) => format!(
            "tester-bound: barrage fell behind at the first step ({}); nothing is known of \
             the server",
            show(plan.from)
        ),
        (None, false) => format!(
            "no capacity: even the first step ({}) broke {under}",
            show(plan.from)
        ),
    };
    SearchReport {
        plan: plan.clone(),
        steps,
        capacity,
        tester_bound,
        answer,
    }
}

/// `23400` as `23,400`.
pub fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, pass: bool, tester_bound: bool) -> StepResult {
        StepResult {
            phase: format!("{STEP_PREFIX}{offered}"),
            offered,
            connections: None,
            achieved: offered,
            slos: Vec::new(),
            pass,
            tester_bound,
        }
    }

    fn plan() -> SearchPlan {
        SearchPlan {
            slos: vec!["rtt.p99 < 50ms".into()],
            vary: Vary::Rate,
            from: 1000.0,
            to: 64_000.0,
            precision: 0.05,
            min: None,
        }
    }

    #[test]
    fn the_answer_is_the_highest_passing_step() {
        let r = conclude(
            &plan(),
            vec![
                step(1000.0, true, false),
                step(2000.0, true, false),
                step(4000.0, false, false),
                step(3000.0, true, false),
                step(3500.0, false, false),
            ],
        );
        assert_eq!(r.capacity, Some(3000.0));
        assert_eq!(r.answer, "capacity: 3,000 msg/s under rtt.p99 < 50ms");
    }

    #[test]
    fn tester_bound_and_nothing_found_are_said_plainly() {
        let r = conclude(
            &plan(),
            vec![step(1000.0, true, false), step(2000.0, false, true)],
        );
        assert!(
            r.tester_bound && r.answer.starts_with("tester-bound"),
            "{}",
            r.answer
        );
        let r = conclude(&plan(), vec![step(1000.0, false, false)]);
        assert_eq!(r.capacity, None);
        assert!(r.answer.starts_with("no capacity"), "{}", r.answer);
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
