//! Roles at run time: each connection's role (weights spread evenly over
//! the connection ids, so early and late connections mix roles), each
//! role's compiled flow, and how its paced loop shares a rate: roles with
//! their own `rate` pace over their own connections, the others share the
//! phase rate over all their connections.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use super::program::Program;
use crate::scenario::{Phase, PhaseRate, Role, Scenario, ShardSpec, assign_roles};

/// One role as the connections run it.
pub(crate) struct RoleRun {
    /// The role's name (`{{role}}`, report keys).
    pub name: String,
    /// Its compiled flow.
    pub program: Program,
    /// The phases as this role paces them (its own rate when it has one).
    pub phases: Vec<Phase>,
    /// Which pacing pool its connections count in; `None` without a paced loop.
    pub pool: Option<usize>,
}

/// Roles of a run and who plays which.
pub(crate) struct Roles {
    /// The roles, in scenario order.
    pub roles: Vec<RoleRun>,
    /// Role index of each connection id.
    of: Vec<u8>,
    /// Connections opened per pool (pool 0: the shared phase rate; pool
    /// r + 1: role r's own rate).
    pub pools: Vec<AtomicU64>,
    /// The pools' sizes the connections pace over: `pools` as of the load
    /// start and of each re-pace, so that every connection spreads the
    /// rate over the same count at the same time.
    pub published: Vec<AtomicU64>,
    /// The slice of the ids this process runs.
    shard: ShardSpec,
}

impl Roles {
    /// Compiles every role of `scenario` and assigns its connections.
    pub fn new(scenario: &Scenario, rng: &mut fastrand::Rng) -> Roles {
        let defs = scenario.effective_roles();
        let data_columns = scenario.feeder.as_ref().map_or(0, |f| f.columns.len());
        let roles = defs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let program = Program::compile(r, data_columns, rng);
                let pool = program
                    .paced
                    .then(|| if r.rate.is_some() { i + 1 } else { 0 });
                RoleRun {
                    name: r.name.clone(),
                    phases: phases_for(&scenario.phases, r),
                    program,
                    pool,
                }
            })
            .collect();
        Roles {
            roles,
            // Over the whole run's ids, so a shard's connections play the
            // roles they would play unsharded.
            of: assign_roles(&defs, u64::from(scenario.id_space())),
            pools: (0..=defs.len()).map(|_| AtomicU64::new(0)).collect(),
            published: (0..=defs.len()).map(|_| AtomicU64::new(0)).collect(),
            shard: scenario.shard_spec(),
        }
    }

    /// Publishes the pools' current sizes for pacing.
    pub fn publish(&self) {
        for (size, now) in self.published.iter().zip(&self.pools) {
            size.store(now.load(SeqCst), SeqCst);
        }
    }

    /// Whether a pool's size changed since it was last published (a
    /// connection closed toward a lower target leaves its pool only once
    /// it has noticed).
    pub fn stale(&self) -> bool {
        self.published
            .iter()
            .zip(&self.pools)
            .any(|(size, now)| size.load(SeqCst) != now.load(SeqCst))
    }

    /// The role of connection `id`.
    pub fn of(&self, id: u64) -> usize {
        self.of.get(id as usize).map_or(0, |r| usize::from(*r))
    }

    /// How many of this shard's connections each role has.
    pub fn counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.roles.len()];
        let (i, n) = (self.shard.index as usize, self.shard.count as usize);
        for r in self.of.iter().skip(i).step_by(n) {
            c[usize::from(*r)] += 1;
        }
        c
    }
}

/// A role's phases: with its own `rate`, every numeric phase rate (a ramp
/// too) is replaced by it (a `max` phase stays closed-model).
fn phases_for(phases: &[Phase], role: &Role) -> Vec<Phase> {
    phases
        .iter()
        .map(|p| match (role.rate, p.rate) {
            (Some(rate), r) if r.is_numeric() => Phase {
                rate: PhaseRate::PerSecond(rate),
                ..p.clone()
            },
            _ => p.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, weight: f64) -> Role {
        Role {
            name: name.into(),
            weight,
            rate: None,
            flow: Vec::new(),
        }
    }

    #[test]
    fn weights_spread_evenly() {
        let roles = [role("pub", 0.01), role("sub", 0.99)];
        let of = assign_roles(&roles, 1000);
        assert_eq!(of.iter().filter(|r| **r == 0).count(), 10);
        // Interleaved: the publishers are not all at one end.
        let first = of.iter().position(|r| *r == 0).unwrap();
        let last = of.iter().rposition(|r| *r == 0).unwrap();
        assert!(first < 150 && last > 850, "{first}..{last}");
        let of = assign_roles(&[role("a", 0.5), role("b", 0.5)], 5);
        assert_eq!(of.iter().filter(|r| **r == 0).count(), 3);
    }
}
