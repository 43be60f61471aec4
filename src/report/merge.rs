//! `barrage merge`: reports of shards or machines added into one,
//! losslessly. A merge is three steps: check that the reports are of one
//! scenario (and, for shards, of one split, none twice), add their run
//! data, and derive the report again with [`build`](super::build::build).

use super::build::build;
use super::model::*;
use crate::metrics::RunData;

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MergeError(pub String);

/// The first field in which `b`'s plan differs from `a`'s, if any (rates
/// and connection counts may differ: shards run slices of them).
fn differs(a: &Report, b: &Report) -> Option<String> {
    let (pa, pb) = (&a.scenario, &b.scenario);
    if pa.name != pb.name {
        return Some(format!("scenario name: {:?} and {:?}", pa.name, pb.name));
    }
    let names = |r: &Report| {
        r.scenario
            .phases
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
    };
    if names(a) != names(b) {
        return Some(format!("phases: {:?} and {:?}", names(a), names(b)));
    }
    for (x, y) in pa.phases.iter().zip(&pb.phases) {
        if x.duration_s != y.duration_s {
            return Some(format!(
                "phases.{}.duration: {} s and {} s",
                x.name, x.duration_s, y.duration_s
            ));
        }
        if x.record != y.record {
            return Some(format!(
                "phases.{}.record: {} and {}",
                x.name, x.record, y.record
            ));
        }
        if (x.max, x.rate.is_some()) != (y.max, y.rate.is_some()) {
            return Some(format!(
                "phases.{}.rate: {:?} and {:?}",
                x.name, x.rate, y.rate
            ));
        }
    }
    let roles = |r: &Report| {
        r.run_data
            .roles
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>()
    };
    if roles(a) != roles(b) {
        return Some(format!("roles: {:?} and {:?}", roles(a), roles(b)));
    }
    if pa.thresholds != pb.thresholds {
        return Some(format!(
            "thresholds: {:?} and {:?}",
            pa.thresholds, pb.thresholds
        ));
    }
    None
}

/// Checks that sharded inputs belong together and none is added twice.
fn check_shards(reports: &[Report]) -> Result<(), MergeError> {
    let err = |m: String| Err(MergeError(m));
    let sharded: Vec<_> = reports
        .iter()
        .flat_map(|r| r.run_data.facts.shards.iter().copied())
        .collect();
    if sharded.is_empty() {
        return Ok(());
    }
    if reports.iter().any(|r| r.run_data.facts.shards.is_empty()) {
        return err(
            "some reports are shards (--shard) and some are whole runs; \
                    merge the shards of one run together"
                .into(),
        );
    }
    let n = sharded[0].count;
    if let Some(bad) = sharded.iter().find(|s| s.count == 0 || s.index >= s.count) {
        return err(format!(
            "shard {}/{} is not a valid shard (the index must be below the count)",
            bad.index, bad.count
        ));
    }
    if let Some(other) = sharded.iter().find(|s| s.count != n) {
        return err(format!(
            "shards of different splits: {}/{n} and {other}; merge the shards of one run",
            sharded[0].index
        ));
    }
    let mut seen = vec![false; n as usize];
    for s in &sharded {
        if std::mem::replace(&mut seen[s.index as usize], true) {
            return err(format!(
                "shard {s} is given twice: its counts would be added twice"
            ));
        }
    }
    Ok(())
}

/// Merges `reports` (at least one) into one report: check, add, build.
/// Missing shards of a split make the merged run an error (its numbers
/// cover only part of the run).
pub fn merge(reports: &[Report]) -> Result<Report, MergeError> {
    let (plan, data) = add(reports)?;
    Ok(build(&plan, &data))
}

/// The check and add steps of [`merge`]: the plan and run data of the
/// whole run, before they are derived into a report (a search's parent
/// trims them to the steps taken first).
pub fn add(reports: &[Report]) -> Result<(ScenarioInfo, RunData), MergeError> {
    let first = reports
        .first()
        .ok_or_else(|| MergeError("nothing to merge".into()))?;
    for r in &reports[1..] {
        if let Some(field) = differs(first, r) {
            return Err(MergeError(format!(
                "not reports of one scenario: {field} differ"
            )));
        }
    }
    check_shards(reports)?;
    let mut data = RunData::default();
    for r in reports {
        data.add(&r.run_data);
    }
    data.facts.merged = true;
    if let Some(n) = data.facts.shards.first().map(|s| s.count) {
        let missing: Vec<u32> = (0..n)
            .filter(|i| !data.facts.shards.iter().any(|s| s.index == *i))
            .collect();
        if !missing.is_empty() && data.facts.failure.is_none() {
            data.facts.failure = Some(format!(
                "shards {missing:?} of {n} gave no report: the merged numbers cover part of the run"
            ));
        }
    }
    let mut plan = first.scenario.clone();
    plan.connections = reports.iter().map(|r| r.scenario.connections).sum();
    plan.connection_rate = reports.iter().map(|r| r.scenario.connection_rate).sum();
    for (i, p) in plan.phases.iter_mut().enumerate() {
        let phase = |r: &Report| r.scenario.phases.get(i).cloned();
        p.rate = p
            .rate
            .map(|_| reports.iter().filter_map(|r| phase(r)?.rate).sum());
        p.connections = p
            .connections
            .map(|_| reports.iter().filter_map(|r| phase(r)?.connections).sum());
        p.ramp = p.ramp.map(|_| {
            reports
                .iter()
                .filter_map(|r| phase(r)?.ramp)
                .fold([0.0, 0.0], |[a, b], [x, y]| [a + x, b + y])
        });
    }
    if reports.len() > 1 {
        plan.file = None;
    }
    Ok((plan, data))
}

/// Derives `r` again from its run data (what `barrage report` and
/// `compare` read): a saved report's numbers cannot differ from the data's.
pub fn rederive(r: &Report) -> Report {
    build(&r.scenario, &r.run_data)
}
