//! `--shard I/N`: which slice of a run one process runs, so that N
//! processes (on one machine or many) together run the whole scenario.
//!
//! The slice is deterministic: shard I runs the connections whose global
//! id is I, I + N, I + 2N, … Roles are assigned over the global ids exactly
//! as in an unsharded run, feeder rows follow the global id, and each rate
//! is scaled by the share of the connections that pace on it, so that the
//! N shards add up to the scenario as written.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::flow::{Role, is_paced};
use super::model::Scenario;

/// One slice of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    /// 0-based index of this slice.
    pub index: u32,
    /// How many slices the run is split into.
    pub count: u32,
}

impl FromStr for ShardSpec {
    type Err = String;

    /// Parses `I/N` with 0 ≤ I < N.
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not I/N (e.g. 0/4 for the first of 4 shards)"))?;
        let index: u32 = i
            .trim()
            .parse()
            .map_err(|_| format!("{i:?} is not a shard index (0, 1, …)"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:?} is not a shard count (1, 2, …)"))?;
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range for {count} shards (0 to {})",
                count - 1
            ));
        }
        Ok(ShardSpec { index, count })
    }
}

impl fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl ShardSpec {
    /// How many of `total` connections this shard runs.
    pub fn local_count(&self, total: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count));
        if i >= total {
            0
        } else {
            (total - i - 1) / n + 1
        }
    }

    /// The global id of this shard's `local`-th connection.
    pub fn global_id(&self, local: u64) -> u64 {
        u64::from(self.index) + local * u64::from(self.count)
    }

    /// This shard's position of global id `id` (its index among the
    /// shard's own connections).
    pub fn local_index(&self, id: u64) -> u64 {
        id / u64::from(self.count)
    }
}

/// A scenario's sharding once applied: the slice and the whole run's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sharding {
    /// The slice this process runs.
    pub spec: ShardSpec,
    /// `connections.count` of the whole (unsharded) run.
    pub total_connections: u32,
    /// The largest count of the whole run, phases' targets included: the
    /// connection ids go up to it.
    pub peak_connections: u32,
    /// The share of a phase's message rate this slice sends (its share of
    /// the connections that pace on the phase rate).
    pub rate_share: f64,
}

impl Sharding {
    /// This slice's part of a whole-run phase rate set while the run goes
    /// (a search step's rate).
    pub fn rate(&self, total: f64) -> f64 {
        total * self.rate_share
    }

    /// This slice's part of a whole-run connection count.
    pub fn count(&self, total: u32) -> u32 {
        u32::try_from(self.spec.local_count(u64::from(total))).expect("at most the whole count")
    }
}

/// Spreads `count` connections over the roles by weight, interleaved: each
/// connection goes to the role furthest below its share so far.
pub fn assign_roles(roles: &[Role], count: u64) -> Vec<u8> {
    let mut given = vec![0u64; roles.len()];
    (0..count)
        .map(|i| {
            let target = |r: usize| roles[r].weight * (i + 1) as f64 - given[r] as f64;
            // The first role furthest below its share (ties go to the first).
            let mut r = 0;
            for c in 1..roles.len() {
                if target(c) > target(r) {
                    r = c;
                }
            }
            given[r] += 1;
            r as u8
        })
        .collect()
}

impl Scenario {
    /// Narrows the scenario to slice `spec`: its connections, its share of
    /// the connection rate, of each role's own rate and of the phase rates
    /// (by the share of the connections that pace on them). Errors when the
    /// slice would be empty.
    pub fn apply_shard(&mut self, spec: ShardSpec) -> Result<(), String> {
        if self.sharding.is_some() {
            return Err("the scenario is already sharded".into());
        }
        let total = u64::from(self.connections.count);
        let local = spec.local_count(total);
        if local == 0 {
            return Err(format!(
                "--shard {spec}: the scenario has only {total} connections, \
                 so shard {} would run none; use at most {total} shards",
                spec.index
            ));
        }
        let roles = self.effective_roles();
        let of = assign_roles(&roles, total);
        let mut whole = vec![0u64; roles.len()];
        let mut mine = vec![0u64; roles.len()];
        for (id, r) in of.iter().enumerate() {
            whole[usize::from(*r)] += 1;
            if id as u64 % u64::from(spec.count) == u64::from(spec.index) {
                mine[usize::from(*r)] += 1;
            }
        }
        let share = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        // The phase rate is spread over the connections of paced roles
        // without a rate of their own.
        let (mut shared_whole, mut shared_mine) = (0, 0);
        for (i, role) in roles.iter().enumerate() {
            if role.rate.is_none() && is_paced(&role.flow) {
                shared_whole += whole[i];
                shared_mine += mine[i];
            }
        }
        let phase_share = if shared_whole == 0 {
            share(local, total)
        } else {
            share(shared_mine, shared_whole)
        };
        for p in &mut self.phases {
            p.rate.scale(phase_share);
        }
        for (i, role) in self.roles.iter_mut().enumerate() {
            if let Some(r) = &mut role.rate {
                r.per_second *= share(mine[i], whole[i]);
            }
        }
        // Phase targets: the slice's share of the ids up to the target,
        // opened or closed at the same share of the rate.
        let connect_rate = self.connections.rate;
        let peak = self.peak_connections();
        for p in &mut self.phases {
            if let Some(c) = &mut p.connections {
                let whole = u64::from(c.count);
                let mine = spec.local_count(whole);
                let mut rate = c.rate.unwrap_or(connect_rate);
                rate.per_second *= share(mine, whole).max(f64::MIN_POSITIVE);
                c.rate = Some(rate);
                // A slice with no connection of its own holds none; the
                // count's minimum of 1 is for what is written.
                c.count = u32::try_from(mine).expect("at most the whole count");
            }
        }
        self.connections.rate.per_second *= share(local, total);
        self.connections.count = u32::try_from(local).expect("at most the whole count");
        self.sharding = Some(Sharding {
            spec,
            total_connections: u32::try_from(total).expect("from a u32"),
            peak_connections: peak,
            rate_share: phase_share,
        });
        Ok(())
    }

    /// The slice this scenario runs (`0/1` when not sharded).
    pub fn shard_spec(&self) -> ShardSpec {
        self.sharding
            .map_or(ShardSpec { index: 0, count: 1 }, |s| s.spec)
    }

    /// `connections.count` of the whole run, over every shard.
    pub fn total_connections(&self) -> u32 {
        self.sharding
            .map_or(self.connections.count, |s| s.total_connections)
    }

    /// How many connection ids the whole run uses: its peak count over
    /// every shard (ids 0 to this - 1).
    pub fn id_space(&self) -> u32 {
        self.sharding
            .map_or_else(|| self.peak_connections(), |s| s.peak_connections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::PhaseRate;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(
            "2/4".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 2, count: 4 })
        );
        assert!("4/4".parse::<ShardSpec>().unwrap_err().contains("0 to 3"));
        assert!("0/0".parse::<ShardSpec>().is_err());
        assert!("1".parse::<ShardSpec>().unwrap_err().contains("I/N"));
        assert!("a/2".parse::<ShardSpec>().is_err());
    }

    fn scenario(yaml: &str) -> Scenario {
        crate::scenario::parse_at("s.yaml", yaml, std::path::Path::new(".")).unwrap()
    }

    #[test]
    fn rates_of_the_shards_add_up_to_the_scenario() {
        // 2 publishers pace on the phase rate, 1 auditor has its own rate,
        // 97 listeners do not pace: the phase rate follows the publishers.
        let whole = scenario(
            "name: s\ntarget: ws://127.0.0.1:1/\nconnections: { count: 100, rate: 100/s }\n\
             phases: [{ name: p, duration: 1s, rate: 40/s }]\nroles:\n  \
             pub: { weight: 2%, flow: [loop: [send: { text: x }]] }\n  \
             audit: { weight: 1%, rate: 9/s, flow: [loop: [send: { text: y }]] }\n  \
             listen: { weight: 97%, flow: [sleep: 1s] }\n",
        );
        let of = assign_roles(&whole.effective_roles(), 100);
        let n = 4;
        let (mut conns, mut conn_rate, mut phase_rate, mut audit_rate) = (0, 0.0, 0.0, 0.0);
        for index in 0..n {
            let mut s = whole.clone();
            s.apply_shard(ShardSpec { index, count: n }).unwrap();
            assert_eq!(s.total_connections(), 100);
            let pubs = (0..100)
                .filter(|id| id % n as usize == index as usize && of[*id] == 0)
                .count();
            let PhaseRate::PerSecond(r) = s.phases[0].rate else {
                panic!("per second")
            };
            // Each publisher keeps its 20/s wherever it runs.
            assert!((r.per_second - 20.0 * pubs as f64).abs() < 1e-9, "{r:?}");
            conns += s.connections.count;
            conn_rate += s.connections.rate.per_second;
            phase_rate += r.per_second;
            audit_rate += s.roles[1].rate.unwrap().per_second;
        }
        assert_eq!(conns, 100);
        for (got, want) in [(conn_rate, 100.0), (phase_rate, 40.0), (audit_rate, 9.0)] {
            assert!((got - want).abs() < 1e-9, "{got} != {want}");
        }
        let mut tiny = whole.clone();
        tiny.connections.count = 3;
        let err = tiny
            .apply_shard(ShardSpec { index: 3, count: 4 })
            .unwrap_err();
        assert!(err.contains("only 3 connections"), "{err}");
    }

    #[test]
    fn slices_partition_the_ids() {
        for total in [1u64, 2, 7, 100, 101] {
            for n in 1..=8u32 {
                let mut seen = Vec::new();
                for i in 0..n {
                    let s = ShardSpec { index: i, count: n };
                    for k in 0..s.local_count(total) {
                        let id = s.global_id(k);
                        assert_eq!(s.local_index(id), k);
                        seen.push(id);
                    }
                }
                seen.sort_unstable();
                assert_eq!(seen, (0..total).collect::<Vec<_>>(), "{total} over {n}");
            }
        }
    }

    /// A phase's connection target and rate, and a ramp, are split as the
    /// opening count is: the shards add up to the whole, and the ids a
    /// shard grows into are its own slice of the whole run's.
    #[test]
    fn phase_targets_and_ramps_split_over_shards() {
        let whole = crate::scenario::parse(
            "s.yaml",
            "name: s\ntarget: builtin\nconnections: { count: 10, rate: 100/s }\n\
             phases:\n  - { name: a, duration: 1s, rate: 0/s..400/s }\n\
             \x20 - { name: b, duration: 1s, rate: 40/s, connections: { count: 103, rate: 1000/s } }\n",
        )
        .unwrap();
        let n = 4;
        let (mut count, mut rate, mut ramp_to) = (0, 0.0, 0.0);
        for index in 0..n {
            let mut s = whole.clone();
            s.apply_shard(ShardSpec { index, count: n }).unwrap();
            assert_eq!(s.id_space(), 103);
            let c = s.phases[1].connections.unwrap();
            assert_eq!(
                u64::from(c.count),
                ShardSpec { index, count: n }.local_count(103)
            );
            count += c.count;
            rate += c.rate.unwrap().per_second;
            let PhaseRate::Ramp { to, .. } = s.phases[0].rate else {
                panic!("a ramp")
            };
            ramp_to += to;
            assert_eq!(s.peak_connections(), c.count);
        }
        assert_eq!(count, 103);
        assert!((rate - 1000.0).abs() < 1e-6, "{rate}");
        assert!((ramp_to - 400.0).abs() < 1e-6, "{ramp_to}");
    }
}
