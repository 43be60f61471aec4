//! Live control of a running load: pause and rate changes, set by the UI's
//! keys (or a parent process) and read by every connection with one atomic
//! load per loop turn. A leaf module: the engine, the metrics collector and
//! the UI all use it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Instant;

/// Smallest and largest rate multiplier `scale` allows.
const FACTOR_RANGE: (f64, f64) = (0.01, 100.0);

/// One change of the live controls.
#[derive(Debug, Clone, PartialEq)]
pub struct RateChange {
    /// When it happened.
    pub at: Instant,
    /// Rate multiplier in force from then on (1.0 = the scenario's rates).
    pub factor: f64,
    /// Whether sending was paused from then on.
    pub paused: bool,
}

/// Pause and rate multiplier of a run, shared between the UI and the engine.
#[derive(Debug)]
pub struct Control {
    paused: AtomicBool,
    factor_bits: AtomicU64,
    epoch: AtomicU64,
    /// Written only on a key press, read when the report is built.
    log: Mutex<Vec<RateChange>>,
    /// Rates set for phases while the run goes (`barrage search` decides
    /// each step's rate from the last one's results); read when a pacer is
    /// made, never per message.
    phase_rates: ByPhase<f64>,
    /// Connection targets set for phases while the run goes (a search over
    /// the connection count); read by the population steer.
    phase_connections: ByPhase<u32>,
}

/// A value set for some phases while the run goes.
#[derive(Debug)]
struct ByPhase<T>(Mutex<Vec<Option<T>>>);

impl<T: Copy> ByPhase<T> {
    fn new() -> Self {
        ByPhase(Mutex::new(Vec::new()))
    }

    fn set(&self, i: usize, v: T) {
        if let Ok(mut all) = self.0.lock() {
            if all.len() <= i {
                all.resize(i + 1, None);
            }
            all[i] = Some(v);
        }
    }

    fn get(&self, i: usize) -> Option<T> {
        self.0.lock().ok().and_then(|a| a.get(i).copied().flatten())
    }

    fn all(&self) -> Vec<Option<T>> {
        self.0.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

impl Default for Control {
    fn default() -> Self {
        Control {
            paused: AtomicBool::new(false),
            factor_bits: AtomicU64::new(1.0f64.to_bits()),
            epoch: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            phase_rates: ByPhase::new(),
            phase_connections: ByPhase::new(),
        }
    }
}

impl Control {
    /// Pauses sending (connections stay open), or resumes it.
    pub fn toggle_pause(&self) {
        self.paused.fetch_xor(true, SeqCst);
        self.changed();
    }

    /// Multiplies every open-model rate by `by` (e.g. 1.1 for +10%), within
    /// 1% and 100× of the scenario's rates.
    pub fn scale(&self, by: f64) {
        let f = (self.factor() * by).clamp(FACTOR_RANGE.0, FACTOR_RANGE.1);
        self.factor_bits.store(f.to_bits(), SeqCst);
        self.changed();
    }

    /// Sets both at once: how a shard process follows the dashboard of the
    /// process that started it.
    pub fn set(&self, paused: bool, factor: f64) {
        if paused == self.paused() && factor == self.factor() {
            return;
        }
        self.paused.store(paused, SeqCst);
        let f = factor.clamp(FACTOR_RANGE.0, FACTOR_RANGE.1);
        self.factor_bits.store(f.to_bits(), SeqCst);
        self.changed();
    }

    /// The current rate multiplier.
    #[inline]
    pub fn factor(&self) -> f64 {
        f64::from_bits(self.factor_bits.load(SeqCst))
    }

    /// Whether sending is paused.
    #[inline]
    pub fn paused(&self) -> bool {
        self.paused.load(SeqCst)
    }

    /// A number that changes on every change, so connections notice cheaply.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(SeqCst)
    }

    /// Sets phase `i`'s total rate (messages per second), replacing the
    /// scenario's; connections pick it up at once.
    pub fn set_phase_rate(&self, i: usize, per_second: f64) {
        self.phase_rates.set(i, per_second);
        self.epoch.fetch_add(1, SeqCst);
    }

    /// The rate set for phase `i` with [`Control::set_phase_rate`], if any.
    pub fn phase_rate(&self, i: usize) -> Option<f64> {
        self.phase_rates.get(i)
    }

    /// Every phase rate set so far, by phase (what a parent process passes
    /// on to its shards).
    pub fn phase_rates(&self) -> Vec<Option<f64>> {
        self.phase_rates.all()
    }

    /// Sets phase `i`'s connection target, replacing the scenario's; the
    /// phase steers toward it (within 100 ms when it is running).
    pub fn set_phase_connections(&self, i: usize, count: u32) {
        self.phase_connections.set(i, count);
        self.epoch.fetch_add(1, SeqCst);
    }

    /// The target set for phase `i` with [`Control::set_phase_connections`].
    pub fn phase_connections(&self, i: usize) -> Option<u32> {
        self.phase_connections.get(i)
    }

    /// Every connection target set so far, by phase.
    pub fn all_phase_connections(&self) -> Vec<Option<u32>> {
        self.phase_connections.all()
    }

    /// Every change so far, in order.
    pub fn changes(&self) -> Vec<RateChange> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn changed(&self) {
        let change = RateChange {
            at: Instant::now(),
            factor: self.factor(),
            paused: self.paused(),
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(change);
        }
        self.epoch.fetch_add(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_and_pause_are_logged_and_bounded() {
        let c = Control::default();
        let e0 = c.epoch();
        c.scale(1.1);
        c.scale(1.1);
        assert!((c.factor() - 1.21).abs() < 1e-9);
        c.toggle_pause();
        assert!(c.paused());
        assert_eq!(c.epoch(), e0 + 3);
        let log = c.changes();
        assert_eq!(log.len(), 3);
        assert!(log[2].paused && (log[2].factor - 1.21).abs() < 1e-9);
        for _ in 0..100 {
            c.scale(0.5);
        }
        assert_eq!(c.factor(), 0.01);
    }
}
