//! Resource requests of one shard's pod, from the scenario's connections and
//! rates. The constants are estimates; update them from benchmarks.

use crate::scenario::{PhaseRate, Scenario};

/// Memory a shard needs before its connections: runtime, histograms,
/// report buffers (bytes).
pub const BASE_MEMORY_BYTES: u64 = 64 << 20;

/// Memory each open connection adds: socket buffers, codec state, its task
/// (bytes).
pub const MEMORY_PER_CONNECTION_BYTES: u64 = 16 << 10;

/// Memory limit as a multiple of the request: headroom for bursts without
/// being OOM-killed mid-run. The limit also covers every connection
/// receiving a message of `max_message_size` at once, which the shard's
/// pre-flight checks against the pod's cgroup limit.
pub const MEMORY_LIMIT_FACTOR: u64 = 2;

/// Messages per second one core sends and times.
pub const MESSAGES_PER_CORE: f64 = 40_000.0;

/// Smallest CPU request (cores): enough for the ramp and the per-second
/// snapshots of an idle shard.
pub const MIN_CPU_CORES: f64 = 0.25;

/// Largest CPU request (cores): more is better spent on more shards.
pub const MAX_CPU_CORES: f64 = 8.0;

/// Message rate assumed for a `rate: max` phase (closed model), per shard:
/// it sends as fast as replies come back, so the scenario gives no number.
pub const MAX_PHASE_RATE_PER_SHARD: f64 = 50_000.0;

const MIB: u64 = 1 << 20;

/// What one shard's pod asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    /// Connections one shard opens: `ceil(connections.count / workers)`.
    pub connections: u32,
    /// Peak message rate of one shard (per second).
    pub rate: f64,
    /// Memory request, whole MiB.
    pub memory_request_mib: u64,
    /// Memory limit, whole MiB.
    pub memory_limit_mib: u64,
    /// CPU request in millicores (there is no CPU limit).
    pub cpu_request_millis: u64,
}

impl Resources {
    /// The memory request as Kubernetes writes it (`68Mi`).
    pub fn memory_request(&self) -> String {
        format!("{}Mi", self.memory_request_mib)
    }

    /// The memory limit as Kubernetes writes it (`136Mi`).
    pub fn memory_limit(&self) -> String {
        format!("{}Mi", self.memory_limit_mib)
    }

    /// The CPU request as Kubernetes writes it (`250m`).
    pub fn cpu_request(&self) -> String {
        format!("{}m", self.cpu_request_millis)
    }
}

/// Sizes one of `workers` shards (`workers` at least 1). Phases run one
/// after another, so the rate that counts is the highest phase's.
pub fn size(s: &Scenario, workers: u32) -> Resources {
    let workers = workers.max(1);
    let connections = s.connections.count.div_ceil(workers);
    let rate = s
        .phases
        .iter()
        .map(|p| match p.rate {
            PhaseRate::Max => MAX_PHASE_RATE_PER_SHARD,
            rate => rate.peak().unwrap_or(0.0) / f64::from(workers),
        })
        .fold(0.0, f64::max);
    let memory = BASE_MEMORY_BYTES + u64::from(connections) * MEMORY_PER_CONNECTION_BYTES;
    let memory_request_mib = memory.div_ceil(MIB);
    let worst = memory
        + crate::engine::preflight::message_memory(u64::from(connections), s.max_message_size);
    let cores = (rate / MESSAGES_PER_CORE).clamp(MIN_CPU_CORES, MAX_CPU_CORES);
    Resources {
        connections,
        rate,
        memory_request_mib,
        memory_limit_mib: (memory_request_mib * MEMORY_LIMIT_FACTOR).max(worst.div_ceil(MIB)),
        cpu_request_millis: (cores * 1000.0).ceil() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(count: u32, rates: &[&str]) -> Scenario {
        let phases: String = rates
            .iter()
            .enumerate()
            .map(|(i, r)| format!("  - {{ name: p{i}, duration: 1s, rate: {r} }}\n"))
            .collect();
        let yaml = format!(
            "name: t\ntarget: builtin\nconnections: {{ count: {count} }}\nphases:\n{phases}"
        );
        crate::scenario::parse("t.yaml", &yaml).unwrap()
    }

    #[test]
    fn small_run_gets_the_floor() {
        let r = size(&scenario(200, &["1000/s", "5000/s"]), 4);
        assert_eq!(r.connections, 50);
        assert_eq!(r.rate, 1250.0);
        // 64 MiB + 50 × 16 KiB = 64.78 MiB, rounded up.
        assert_eq!(r.memory_request(), "65Mi");
        assert_eq!(r.memory_limit(), "130Mi");
        assert_eq!(r.cpu_request(), "250m");
    }

    #[test]
    fn connections_round_up_and_rates_take_the_peak_phase() {
        let r = size(&scenario(10_001, &["400000/s", "100000/s"]), 4);
        assert_eq!(r.connections, 2501);
        assert_eq!(r.rate, 100_000.0);
        // 2501 × 16 KiB = 39.08 MiB → 64 + 40.
        assert_eq!(r.memory_request_mib, 104);
        // The limit holds 2501 messages of max_message_size (1 MiB) too.
        assert_eq!(r.memory_limit_mib, 64 + 40 + 2501);
        assert_eq!(r.cpu_request(), "2500m");
    }

    #[test]
    fn max_rate_counts_per_shard_and_cpu_is_capped() {
        let r = size(&scenario(8, &["max"]), 8);
        assert_eq!(r.connections, 1);
        assert_eq!(r.rate, MAX_PHASE_RATE_PER_SHARD);
        assert_eq!(r.cpu_request(), "1250m");
        let r = size(&scenario(1, &["10000000/s"]), 1);
        assert_eq!(r.cpu_request(), "8000m");
    }
}
