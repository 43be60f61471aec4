//! Checks, before any socket is opened, that a run fits this machine: file
//! descriptors for every connection, ephemeral ports per source address, and
//! memory for the largest message every connection may be receiving at once.
//! A run that cannot fit is refused with advice instead of failing at the
//! connection where the limit happens to bite.

use std::net::SocketAddr;

use thiserror::Error;

use crate::scenario::{Scenario, Size};

/// Descriptors kept free for the runtime, stdio, listeners and report files.
const FD_RESERVE: u64 = 64;

/// Why a run cannot fit.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PreflightError {
    /// More descriptors needed than the process may open.
    #[error(
        "{connections} connections need about {needed} file descriptors{builtin}, but this process may open {limit} \
         (ulimit -n, hard limit included). Lower connections.count (or the largest phase count), split the run with --shard, \
         {advice}or raise the hard limit"
    )]
    FileDescriptors {
        /// Requested connections.
        connections: u64,
        /// Descriptors the run needs.
        needed: u64,
        /// The process limit after raising the soft limit.
        limit: u64,
        /// Note on the in-process server.
        builtin: &'static str,
        /// Extra advice for the built-in target.
        advice: &'static str,
    },
    /// More connections per source address than ephemeral ports.
    #[error(
        "{per_address} connections from each of {addresses} source address(es) exceed the {ports} ephemeral ports \
         of net.ipv4.ip_local_port_range ({low}-{high}). Spread them with source_ips (e.g. source_ips: \
         127.0.0.1-127.0.0.{suggest}) or split the run with --shard"
    )]
    Ports {
        /// Connections each source address would carry.
        per_address: u64,
        /// Source addresses in use (1 without `source_ips`).
        addresses: u64,
        /// Ports in the range.
        ports: u64,
        /// Range start.
        low: u64,
        /// Range end.
        high: u64,
        /// How many loopback addresses would do.
        suggest: u64,
    },
    /// Every connection receiving a message of `max_message_size` at once
    /// would need more memory than this machine (or its cgroup) has.
    #[error(
        "{connections} connections × max_message_size {max_message} = {worst} of messages being received \
         at worst, more than the {memory} of memory this machine allows. Set max_message_size to the \
         largest message the server sends, split the run over machines with --shard, or pass \
         --allow-memory-overcommit if the server never sends that much at once",
        max_message = Size(*.max_message),
        worst = Size(*.worst),
        memory = Size(*.memory),
    )]
    Memory {
        /// Connections of this process (or of every process on this machine).
        connections: u64,
        /// `max_message_size`.
        max_message: u64,
        /// `connections × max_message_size`.
        worst: u64,
        /// What this machine allows: the smaller of MemTotal and the cgroup limit.
        memory: u64,
    },
    /// A source address of another family than the target.
    #[error("source address {source_ip} cannot reach target {target} (IPv4 and IPv6 mixed)")]
    Family {
        /// The offending source address.
        source_ip: String,
        /// The resolved target.
        target: SocketAddr,
    },
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|_| {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024)
    })
}

/// The ephemeral port range of this machine, if it can be read.
pub fn port_range() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

/// Checks `scenario` against `fd_limit` and `ports`. `builtin` means the
/// server runs in this process and holds a descriptor per connection too.
pub fn check(
    scenario: &Scenario,
    builtin: bool,
    fd_limit: u64,
    ports: Option<(u64, u64)>,
) -> Result<(), PreflightError> {
    let connections = u64::from(scenario.peak_connections());
    let needed = connections * if builtin { 2 } else { 1 } + FD_RESERVE;
    if needed > fd_limit {
        return Err(PreflightError::FileDescriptors {
            connections,
            needed,
            limit: fd_limit,
            builtin: if builtin {
                " (client and in-process server side)"
            } else {
                ""
            },
            advice: if builtin {
                "run the server as its own process (barrage serve --listen 127.0.0.1:9001, then --target ws://127.0.0.1:9001/), "
            } else {
                ""
            },
        });
    }
    if let Some((low, high)) = ports {
        let range = high.saturating_sub(low) + 1;
        let addresses = scenario.source_ips.len().max(1) as u64;
        let per_address = connections.div_ceil(addresses);
        if per_address > range {
            return Err(PreflightError::Ports {
                per_address,
                addresses,
                ports: range,
                low,
                high,
                suggest: connections.div_ceil(range).clamp(2, 254),
            });
        }
    }
    Ok(())
}

/// The memory this process may use: the smaller of the machine's MemTotal
/// and its cgroup's limit (v2 `memory.max`, v1 `memory.limit_in_bytes`), so
/// a container or Kubernetes pod is held to its own limit. None when
/// neither can be read.
pub fn memory_limit() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        let kib = t.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
        let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib * 1024)
    });
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// The memory the messages being received may hold at worst: every one of
/// `connections` halfway through a message of `max_message` bytes.
pub fn message_memory(connections: u64, max_message: usize) -> u64 {
    connections.saturating_mul(max_message as u64)
}

/// Refuses a run whose worst case of messages being received
/// ([`message_memory`]) is more than `memory` (None: not checked, as with
/// `--allow-memory-overcommit` or where the limit cannot be read).
pub fn check_memory(
    connections: u64,
    max_message: usize,
    memory: Option<u64>,
) -> Result<(), PreflightError> {
    let worst = message_memory(connections, max_message);
    match memory {
        Some(memory) if worst > memory => Err(PreflightError::Memory {
            connections,
            max_message: max_message as u64,
            worst,
            memory,
        }),
        _ => Ok(()),
    }
}

/// Checks that every source address can reach `target`.
pub fn check_families(scenario: &Scenario, target: SocketAddr) -> Result<(), PreflightError> {
    match scenario
        .source_ips
        .iter()
        .find(|ip| ip.is_ipv4() != target.is_ipv4())
    {
        Some(ip) => Err(PreflightError::Family {
            source_ip: ip.to_string(),
            target,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;

    fn scenario(count: u32, source_ips: &str) -> Scenario {
        let yaml = format!(
            "name: p\ntarget: builtin\nconnections: {{ count: {count} }}\n{source_ips}\
             phases: [{{ name: a, duration: 1s, rate: 1/s }}]\n"
        );
        parse("p.yaml", &yaml).unwrap()
    }

    #[test]
    fn refuses_more_connections_than_descriptors() {
        let s = scenario(19_000, "");
        assert!(check(&s, false, 20_000, None).is_ok());
        let e = check(&s, true, 20_000, None).unwrap_err();
        assert!(e.to_string().contains("barrage serve"), "{e}");
        assert!(matches!(
            e,
            PreflightError::FileDescriptors { needed: 38_064, .. }
        ));
    }

    #[test]
    fn refuses_more_connections_per_address_than_ports() {
        let s = scenario(30_000, "");
        let e = check(&s, false, 100_000, Some((32768, 60999))).unwrap_err();
        assert!(e.to_string().contains("source_ips"), "{e}");
        let spread = scenario(30_000, "source_ips: 127.0.0.1-127.0.0.2\n");
        assert!(check(&spread, false, 100_000, Some((32768, 60999))).is_ok());
    }

    #[test]
    fn refuses_more_message_memory_than_the_machine() {
        let gib = 1u64 << 30;
        assert!(check_memory(20_000, 1 << 20, Some(24 * gib)).is_ok());
        let e = check_memory(1_000, 64 << 20, Some(24 * gib)).unwrap_err();
        assert_eq!(
            e,
            PreflightError::Memory {
                connections: 1_000,
                max_message: 64 << 20,
                worst: 1_000 * (64 << 20),
                memory: 24 * gib,
            }
        );
        let text = e.to_string();
        assert!(
            text.contains("1000 connections × max_message_size 64 MiB = 62.5 GiB"),
            "{text}"
        );
        assert!(text.contains("24 GiB"), "{text}");
        assert!(text.contains("--allow-memory-overcommit"), "{text}");
        // Told not to check, or no limit to check against.
        assert!(check_memory(1_000, 64 << 20, None).is_ok());
    }

    #[test]
    fn this_machine_has_a_memory_limit() {
        let m = memory_limit().expect("Linux has /proc/meminfo");
        assert!(m > 64 << 20, "{m}");
    }

    #[test]
    fn refuses_mixed_families() {
        let s = scenario(1, "source_ips: ['::1']\n");
        assert!(check_families(&s, "127.0.0.1:80".parse().unwrap()).is_err());
        assert!(check_families(&s, "[::1]:80".parse().unwrap()).is_ok());
    }
}
