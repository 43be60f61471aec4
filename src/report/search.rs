//! A capacity search (`barrage search`) as the report derives it: each step
//! judged against the SLOs from its phase's data, and the answer. The
//! searcher judges each step with the same function while the run goes, so
//! the steps it took and the report's verdicts cannot disagree.

use serde::{Deserialize, Serialize};

use super::model::PhasePlan;
use crate::metrics::StageData;
use crate::metrics::evaluate::{EvalContext, PhaseData, evaluate};
use crate::scenario::Threshold;

/// Name suffix of the phase a step is measured in (`step-3`); its warm-up
/// is `step-3-warmup`, the pause after it `step-3-cooldown`.
pub const STEP_PREFIX: &str = "step-";

/// What a search was asked (kept in the report's scenario).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPlan {
    /// The SLOs every step is held to, as written.
    pub slos: Vec<String>,
    /// The first rate tried (messages per second).
    pub from: f64,
    /// The highest rate tried.
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
    /// The rate offered (messages per second).
    pub offered: f64,
    /// The rate achieved (paced sends per second of the step).
    pub achieved: f64,
    /// Each SLO on the step.
    pub slos: Vec<SloResult>,
    /// Every SLO held and barrage kept up.
    pub pass: bool,
    /// barrage itself fell behind its schedule (send_lag, not-sent): the
    /// step says nothing of the server, and the search ends there.
    pub tester_bound: bool,
}

/// The search's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// What was asked.
    pub plan: SearchPlan,
    /// Every step, in the order taken.
    pub steps: Vec<StepResult>,
    /// The highest offered rate that passed, if any did.
    pub capacity: Option<f64>,
    /// The search ended at a step where barrage fell behind: the server's
    /// capacity is at least `capacity`, not known to be it.
    pub tester_bound: bool,
    /// The answer in one line, for people.
    pub answer: String,
}

/// Judges one step: the SLOs against the step's data, and whether barrage
/// kept up (`saturated` is the report's test of a phase falling behind).
pub fn judge(
    slos: &[Threshold],
    plan: &PhasePlan,
    data: &StageData,
    secs: f64,
    saturated: bool,
) -> StepResult {
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
    let slos: Vec<SloResult> = slos
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
    StepResult {
        phase: plan.name.clone(),
        offered: plan.rate.unwrap_or(0.0),
        achieved: super::build::achieved_rate(&data.counters, secs),
        pass: !saturated && slos.iter().all(|s| s.pass),
        slos,
        tester_bound: saturated,
    }
}

/// The answer of `steps` taken under `plan`.
pub fn conclude(plan: &SearchPlan, steps: Vec<StepResult>) -> SearchReport {
    let capacity = steps
        .iter()
        .filter(|s| s.pass)
        .map(|s| s.offered)
        .fold(None, |a: Option<f64>, r| Some(a.map_or(r, |a| a.max(r))));
    let tester_bound = steps.iter().any(|s| s.tester_bound);
    let under = plan.slos.join(" and ");
    let answer = match (capacity, tester_bound) {
        (Some(c), false) if steps.iter().all(|s| s.pass) => format!(
            "capacity: at least {} msg/s under {under} (every step up to --to passed)",
            thousands(c)
        ),
        (Some(c), false) => format!("capacity: {} msg/s under {under}", thousands(c)),
        (Some(c), true) => format!(
            "tester-bound: barrage fell behind above {} msg/s; the server held {under} up to there \
             and its capacity is higher (run more shards or processes)",
            thousands(c)
        ),
        (None, true) => format!(
            "tester-bound: barrage fell behind at the first step ({} msg/s); nothing is known of \
             the server",
            thousands(plan.from)
        ),
        (None, false) => format!(
            "no capacity: even the first step ({} msg/s) broke {under}",
            thousands(plan.from)
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
            achieved: offered,
            slos: Vec::new(),
            pass,
            tester_bound,
        }
    }

    fn plan() -> SearchPlan {
        SearchPlan {
            slos: vec!["rtt.p99 < 50ms".into()],
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
