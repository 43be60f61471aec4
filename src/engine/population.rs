//! A phase's `connections:` target: during the phase, connections are
//! opened (new slots, new ids) or closed (newest first) toward the target
//! at the phase's connection rate, while messages keep flowing on the open
//! ones. A phase without a target keeps steering toward the last one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio::time::sleep_until;

use std::sync::atomic::Ordering::SeqCst;

use super::{Shared, Slot, connection};

/// Steers this process's connection count through the phases that
/// started at `at`: `targets[i]` is phase i's (count, opens or closes per
/// second). Slots `0..live` are in use when it starts; a slot is closed
/// by moving on its generation ([`Shared::retired`]). Returns once the phases are over and every connection it
/// opened has ended.
pub(super) async fn steer(
    shared: Arc<Shared>,
    targets: Vec<(u32, f64)>,
    at: Instant,
    mut live: u64,
) {
    let mut tasks = JoinSet::new();
    let cancel = shared.cancel.clone();
    // Connections re-pace over the new count at most this often while it
    // changes (waking every connection per open would cost more than
    // the load).
    const REPACE_EVERY: Duration = Duration::from_millis(100);
    let mut repaced = Instant::now();
    // While at its target, a phase looks this often for a target set while
    // the run goes (a search over connections).
    const LOOK_EVERY: Duration = Duration::from_millis(100);
    // While connections close, how soon they are woken to leave their
    // pools and the pools' sizes published again: 10 ms, longer with many
    // connections (a wake-up reaches every one), at most REPACE_EVERY.
    let settle =
        |live: u64| Duration::from_micros(5 * live).clamp(Duration::from_millis(10), REPACE_EVERY);
    'phases: for (i, (count, rate)) in targets.into_iter().enumerate() {
        let begin = at + shared.phase_offsets[i];
        let end = at + shared.phase_offsets[i + 1];
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = sleep_until(begin.into()) => {}
        }
        // Opens or closes so far toward `target`, counted from `since`.
        let (mut since, mut done, mut target) = (begin, 0u64, None);
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let t = u64::from(shared.control.phase_connections(i).unwrap_or(count))
                .min(shared.slot_gens.len() as u64);
            if target.is_some_and(|old| old != t) {
                (since, done) = (now, 0);
            }
            target = Some(t);
            let next = if live == t {
                // The connections closed last leave their pools once they
                // have woken: pace over what is really open as soon as
                // they have (each slow look lowers the rate meanwhile).
                if shared.roles.stale() {
                    if repaced.elapsed() >= settle(live) {
                        shared.repace_all();
                        repaced = Instant::now();
                    }
                    repaced + settle(live)
                } else {
                    now + LOOK_EVERY
                }
            } else {
                // Everything due by now at once, so a slow wake-up does
                // not lower the rate.
                let due = ((now - since).as_secs_f64() * rate).floor() as u64 + 1;
                while done < due && live != t {
                    if live < t {
                        // A slot closed earlier runs its next generation.
                        let slot = Slot {
                            index: live as u32,
                            generation: shared.slot_gens[live as usize].load(SeqCst),
                        };
                        let id = shared.shard.global_id(live);
                        tasks.spawn(connection::run(shared.clone(), id, slot));
                        live += 1;
                    } else {
                        live -= 1;
                        // Seen at the next wake-up (below, within `settle`).
                        shared.slot_gens[live as usize].fetch_add(1, SeqCst);
                    }
                    done += 1;
                }
                // Closed connections learn it at a wake-up and only then
                // leave their pools, while the others pace over the
                // published sizes: while closing, wake and re-publish
                // within `settle` so the rest do not pace too slowly.
                let every = if live > t { settle(live) } else { REPACE_EVERY };
                if live == t || repaced.elapsed() >= every {
                    shared.repace_all();
                    repaced = Instant::now();
                }
                let due = since + Duration::from_secs_f64(done as f64 / rate);
                if live > t {
                    due.min(repaced + settle(live))
                } else {
                    due
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break 'phases,
                _ = sleep_until(next.min(end).into()) => {}
            }
        }
    }
    shared.repace_all();
    while tasks.join_next().await.is_some() {}
}
