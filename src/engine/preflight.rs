//! Checks, before any socket is opened, that a run fits this machine: file
//! descriptors for every connection, and ephemeral ports per source address.
//! A run that cannot fit is refused with advice instead of failing at the
//! connection where the limit happens to bite.

use std::net::SocketAddr;

use thiserror::Error;

use crate::scenario::Scenario;

/// Descriptors kept free for the runtime, stdio, listeners and report files.
const FD_RESERVE: u64 = 64;

/// Why a run cannot fit.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PreflightError {
    /// More descriptors needed than the process may open.
    #[error(
        "{connections} connections need about {needed} file descriptors{builtin}, but this process may open {limit} \
         (ulimit -n, hard limit included). Lower connections.count, split the run with --shard, \
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
    let connections = u64::from(scenario.connections.count);
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
    fn refuses_mixed_families() {
        let s = scenario(1, "source_ips: ['::1']\n");
        assert!(check_families(&s, "127.0.0.1:80".parse().unwrap()).is_err());
        assert!(check_families(&s, "[::1]:80".parse().unwrap()).is_ok());
    }
}
