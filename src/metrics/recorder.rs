//! Per-thread recording without a lock per message.
//!
//! Each worker thread that records for a run gets a [`Slot`]: two [`Shard`]s,
//! one active for writing and one for the collector. A write marks the active
//! side busy (one atomic store), re-checks that it is still active, records,
//! and clears the mark. The collector flips the active side and waits for the
//! busy mark of the old side to clear (at most one record operation), after
//! which that side is its own to read and reset. This is the writer/reader
//! phaser of HdrHistogram's `Recorder`, simplified for a single writer per
//! slot; writers never wait.

use std::cell::{RefCell, UnsafeCell};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use super::data::Shard;

/// Two shards and the flags that hand one of them to the collector.
struct Slot {
    sides: [UnsafeCell<Shard>; 2],
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
                UnsafeCell::new(Shard::with_roles(phases, roles)),
                UnsafeCell::new(Shard::with_roles(phases, roles)),
            ],
            active: AtomicUsize::new(0),
            busy: [AtomicBool::new(false), AtomicBool::new(false)],
        }
    }

    /// Runs `f` on the active side. Only the owning thread calls this.
    #[inline]
    fn write<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
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
    fn drain_into(&self, into: &mut Shard) {
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

/// Connection counters updated once per connection event (not per message).
#[derive(Debug, Default)]
pub struct ConnectionGauges {
    /// Connection attempts started.
    pub attempted: AtomicU64,
    /// Connections that completed the upgrade.
    pub opened: AtomicU64,
    /// Attempts that failed (connect or handshake).
    pub failed: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Highest number open at once.
    pub peak_open: AtomicU64,
    /// Open connections that the server closed or reset.
    pub closed_by_server: AtomicU64,
    /// Connections that agreed permessage-deflate with the server.
    pub compressed: AtomicU64,
    /// Connections for which the server chose one of the offered subprotocols.
    pub subprotocol: AtomicU64,
    /// Close codes received and the latest distinct error messages. Touched
    /// once per connection event or error, never per message.
    events: Mutex<EventLog>,
}

/// How many distinct error messages are kept.
const RECENT_ERRORS: usize = 5;

/// Close codes received and recent distinct error messages.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventLog {
    /// Count of close frames received, by close code.
    pub close_codes: BTreeMap<u16, u64>,
    /// Upgrades refused, by the HTTP status the server answered with.
    pub http_statuses: BTreeMap<u16, u64>,
    /// The last few distinct error messages, oldest first.
    pub recent_errors: VecDeque<String>,
}

impl ConnectionGauges {
    /// Marks one more connection open.
    pub fn opened(&self) {
        self.opened.fetch_add(1, SeqCst);
        let now = self.open.fetch_add(1, SeqCst) + 1;
        self.peak_open.fetch_max(now, SeqCst);
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
            let m = message();
            e.recent_errors.retain(|x| *x != m);
            e.recent_errors.push_back(m);
            if e.recent_errors.len() > RECENT_ERRORS {
                e.recent_errors.pop_front();
            }
        }
    }

    /// A copy of the close codes and recent errors.
    pub fn events(&self) -> EventLog {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
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
    /// A recorder for a run with `phases` phases.
    pub fn new(phases: usize) -> Self {
        Recorder::with_roles(phases, 0)
    }

    /// A recorder for a run with `phases` phases that also keeps the
    /// recorded phases of each of `roles` roles apart.
    pub fn with_roles(phases: usize, roles: usize) -> Self {
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

    /// Roles kept apart (0 when only totals are kept).
    pub fn roles(&self) -> usize {
        self.inner.roles
    }

    /// Connection counters of this run.
    pub fn gauges(&self) -> &ConnectionGauges {
        &self.inner.gauges
    }

    /// Records into this thread's shard. No lock after the thread's first
    /// call for this run.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
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
    pub fn collect_into(&self, into: &mut Shard) {
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
        let rec = Recorder::new(1);
        let per_thread = 200_000u64;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        rec.with(|s| {
                            let st = &mut s.stages[1];
                            st.sent += 1;
                            st.record(LatencyMetric::Rtt, 1000 + (i % 1000) + t);
                        });
                    }
                })
            })
            .collect();
        let mut total = Shard::new(1);
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
        assert_eq!(total.stages[1].sent, 4 * per_thread);
        assert_eq!(
            total.stages[1].histogram(LatencyMetric::Rtt).len(),
            4 * per_thread
        );
    }
}
