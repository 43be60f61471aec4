//! Per-thread recording without a lock per message.
//!
//! Each worker thread that records for a run gets a [`Slot`]: two [`ThreadData`]s,
//! one active for writing and one for the collector. A write marks the active
//! side busy (one atomic store), re-checks that it is still active, records,
//! and clears the mark. The collector flips the active side and waits for the
//! busy mark of the old side to clear (at most one record operation), after
//! which that side is its own to read and reset. This is the writer/reader
//! phaser of HdrHistogram's `Recorder`, simplified for a single writer per
//! slot; writers never wait.

use std::cell::{RefCell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use super::data::StageData;
use super::run_data::Events;

/// What one worker thread recorded since the collector last took it: one
/// cell per role and stage.
#[derive(Debug, Clone)]
pub struct ThreadData {
    /// Stages per role (setup, then one per phase).
    stages: usize,
    /// `cells[role * stages + stage]`.
    cells: Vec<StageData>,
}

impl ThreadData {
    /// Empty cells for `roles` roles (at least 1) and `phases` phases.
    pub fn new(roles: usize, phases: usize) -> Self {
        let stages = phases + 1;
        ThreadData {
            stages,
            cells: (0..roles.max(1) * stages)
                .map(|_| StageData::default())
                .collect(),
        }
    }

    /// The cell of `role` in `stage`.
    #[inline]
    pub fn cell(&mut self, role: usize, stage: usize) -> &mut StageData {
        let i = role * self.stages + stage.min(self.stages - 1);
        &mut self.cells[i]
    }

    /// Role `role`'s stages.
    pub fn role(&self, role: usize) -> &[StageData] {
        &self.cells[role * self.stages..(role + 1) * self.stages]
    }

    /// Adds `other` cell by cell.
    pub fn add(&mut self, other: &ThreadData) {
        for (a, b) in self.cells.iter_mut().zip(&other.cells) {
            a.add(b);
        }
    }

    /// Clears every cell, keeping allocations.
    pub fn reset(&mut self) {
        self.cells.iter_mut().for_each(StageData::reset);
    }
}

/// Two [`ThreadData`]s and the flags that hand one of them to the collector.
struct Slot {
    sides: [UnsafeCell<ThreadData>; 2],
    active: AtomicUsize,
    busy: [AtomicBool; 2],
}

// SAFETY: side `i` is written only by the slot's owning thread while
// `busy[i]` is set and `active == i` was observed after setting it; the
// collector touches side `i` only after making `active != i` and seeing
// `busy[i]` clear. All flag operations are SeqCst, so the writer either sees
// the flip and moves to the other side, or the collector sees the busy mark
// and waits (the store-load pattern of Dekker's algorithm).
unsafe impl Sync for Slot {}
unsafe impl Send for Slot {}

impl Slot {
    fn new(phases: usize, roles: usize) -> Self {
        Slot {
            sides: [
                UnsafeCell::new(ThreadData::new(roles, phases)),
                UnsafeCell::new(ThreadData::new(roles, phases)),
            ],
            active: AtomicUsize::new(0),
            busy: [AtomicBool::new(false), AtomicBool::new(false)],
        }
    }

    /// Runs `f` on the active side. Only the owning thread calls this.
    #[inline]
    fn write<R>(&self, f: impl FnOnce(&mut ThreadData) -> R) -> R {
        let i = loop {
            let i = self.active.load(SeqCst);
            self.busy[i].store(true, SeqCst);
            if self.active.load(SeqCst) == i {
                break i;
            }
            self.busy[i].store(false, SeqCst);
        };
        // Clears the mark however `f` ends, even by unwinding: a mark left
        // set would make the collector wait forever.
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, SeqCst);
            }
        }
        let _release = Release(&self.busy[i]);
        // SAFETY: see the `Sync` impl: side `i` is ours until busy[i] clears.
        f(unsafe { &mut *self.sides[i].get() })
    }

    /// Takes the active side's data into `into` and resets it. Only the
    /// collector calls this (serialised by the registry's mutex).
    fn drain_into(&self, into: &mut ThreadData) {
        let old = self.active.load(SeqCst);
        self.active.store(1 - old, SeqCst);
        while self.busy[old].load(SeqCst) {
            std::hint::spin_loop();
        }
        // SAFETY: `old` is no longer active and no writer is inside it.
        let side = unsafe { &mut *self.sides[old].get() };
        into.add(side);
        side.reset();
    }
}

/// Gauges of a run (values now, not counts) and its event log, updated
/// once per connection event or error, never per message.
#[derive(Debug, Default)]
pub struct ConnectionGauges {
    /// Connections open now.
    pub open: AtomicU64,
    /// Most connections open at once since the collector last looked.
    pub interval_peak: AtomicU64,
    /// Close codes, refused upgrades and recent errors since the collector
    /// last took them.
    events: Mutex<Events>,
}

impl ConnectionGauges {
    /// Marks one more connection open.
    pub fn opened(&self) {
        let now = self.open.fetch_add(1, SeqCst) + 1;
        self.interval_peak.fetch_max(now, SeqCst);
    }

    /// Marks an open connection as gone.
    pub fn closed(&self) {
        self.open.fetch_sub(1, SeqCst);
    }

    /// Counts a close frame with `code` from the server.
    pub fn close_code(&self, code: u16) {
        if let Ok(mut e) = self.events.lock() {
            *e.close_codes.entry(code).or_default() += 1;
        }
    }

    /// Counts an upgrade refused with HTTP `status`.
    pub fn http_status(&self, status: u16) {
        if let Ok(mut e) = self.events.lock() {
            *e.http_statuses.entry(status).or_default() += 1;
        }
    }

    /// Keeps `message` among the latest distinct errors. Skipped when the
    /// log is busy: during an error storm one message of each kind suffices.
    pub fn note_error(&self, message: impl FnOnce() -> String) {
        if let Ok(mut e) = self.events.try_lock() {
            e.note(message());
        }
    }

    /// Takes the counts since the last call (recent errors stay, for the
    /// next look).
    pub fn take_events(&self) -> Events {
        self.events
            .lock()
            .map(|mut e| Events {
                close_codes: std::mem::take(&mut e.close_codes),
                http_statuses: std::mem::take(&mut e.http_statuses),
                recent_errors: e.recent_errors.clone(),
            })
            .unwrap_or_default()
    }

    /// The most open at once since the last call; starts the next interval
    /// from the number open now.
    pub fn take_peak(&self) -> u64 {
        let now = self.open.load(SeqCst);
        self.interval_peak.swap(now, SeqCst).max(now)
    }
}

struct Inner {
    id: u64,
    phases: usize,
    roles: usize,
    slots: Mutex<Vec<Arc<Slot>>>,
    gauges: ConnectionGauges,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's slots, one per live run it has recorded for.
    static LOCAL: RefCell<Vec<(u64, Arc<Slot>)>> = const { RefCell::new(Vec::new()) };
}

/// The recording side of one run's metrics; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

impl Recorder {
    /// A recorder for a run with `roles` roles (at least 1) and `phases` phases.
    pub fn new(roles: usize, phases: usize) -> Self {
        Recorder {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, SeqCst),
                phases,
                roles,
                slots: Mutex::new(Vec::new()),
                gauges: ConnectionGauges::default(),
            }),
        }
    }

    /// Roles and phases recorded.
    pub fn shape(&self) -> (usize, usize) {
        (self.inner.roles.max(1), self.inner.phases)
    }

    /// Connection counters of this run.
    pub fn gauges(&self) -> &ConnectionGauges {
        &self.inner.gauges
    }

    /// Records into this thread's data. No lock after the thread's first
    /// call for this run.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut ThreadData) -> R) -> R {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            if let Some((_, slot)) = local.iter().find(|(id, _)| *id == self.inner.id) {
                return slot.write(f);
            }
            // First record of this run on this thread: register a slot, and
            // drop slots of runs that have ended (only we hold them now).
            local.retain(|(_, s)| Arc::strong_count(s) > 1);
            let slot = Arc::new(Slot::new(self.inner.phases, self.inner.roles));
            self.inner
                .slots
                .lock()
                .expect("slot registry poisoned")
                .push(slot.clone());
            local.push((self.inner.id, slot.clone()));
            slot.write(f)
        })
    }

    /// Moves everything recorded since the last call into `into`.
    pub fn collect_into(&self, into: &mut ThreadData) {
        let slots = self.inner.slots.lock().expect("slot registry poisoned");
        for slot in slots.iter() {
            slot.drain_into(into);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::LatencyMetric;

    #[test]
    fn collects_every_record_from_many_threads_while_they_write() {
        let rec = Recorder::new(1, 1);
        let per_thread = 200_000u64;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        rec.with(|s| {
                            let st = s.cell(0, 1);
                            st.counters.sent += 1;
                            st.record(LatencyMetric::Rtt, 1000 + (i % 1000) + t);
                        });
                    }
                })
            })
            .collect();
        let mut total = ThreadData::new(1, 1);
        let mut collections = 0;
        while threads.iter().any(|h| !h.is_finished()) {
            rec.collect_into(&mut total);
            collections += 1;
        }
        for h in threads {
            h.join().unwrap();
        }
        rec.collect_into(&mut total);
        assert!(collections > 0);
        assert_eq!(total.cell(0, 1).counters.sent, 4 * per_thread);
        assert_eq!(
            total.cell(0, 1).histogram(LatencyMetric::Rtt).len(),
            4 * per_thread
        );
    }
}
