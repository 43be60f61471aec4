//! A connection's view of the streams it receives (`sequence:`): for each
//! stream, the highest counter seen and which of the 63 below it came, so
//! a gap is told from a late message and a late one from a repeat without
//! keeping every number.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hasher};

/// How far behind the highest counter a message is still placed exactly;
/// an older one counts as reordered (its gap was already counted lost).
const WINDOW: u64 = 64;

/// What one message was to its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Numbers found missing now: they left the window without arriving.
    pub lost: u64,
    /// The number came before.
    pub duplicate: bool,
    /// The number came after a higher one.
    pub reordered: bool,
}

/// One stream: the highest counter and a bit per number below it (bit i:
/// `last - i` arrived).
#[derive(Debug, Clone, Copy)]
struct Stream {
    last: u64,
    window: u64,
}

/// The streams of one connection, by the hash of their key (one stream,
/// key 0, without `sequence.key`).
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<u64, Stream, BuildHasherDefault<DefaultHasher>>,
}

impl Streams {
    /// The stream key of `name` (the bytes at `sequence.key`).
    pub fn key(name: &[u8]) -> u64 {
        let mut h = DefaultHasher::new();
        h.write(name);
        h.finish()
    }

    /// Places counter `seq` of stream `key`.
    pub fn observe(&mut self, key: u64, seq: u64) -> Seen {
        let Some(s) = self.streams.get_mut(&key) else {
            // The first message of a stream: whatever came before it was
            // sent before this connection listened.
            self.streams.insert(
                key,
                Stream {
                    last: seq,
                    window: u64::MAX,
                },
            );
            return Seen::default();
        };
        if seq > s.last {
            let d = seq - s.last;
            let mut lost = 0;
            if d >= WINDOW {
                // Every number still open in the window, and those that
                // never entered it.
                lost += u64::from((!s.window).count_ones());
                lost += d - WINDOW;
                s.window = 1;
            } else {
                // The bits shifted out: numbers `last - i` for i ≥ 64 - d.
                let leaving = s.window >> (WINDOW - d);
                lost += d - u64::from(leaving.count_ones());
                s.window = (s.window << d) | 1;
            }
            s.last = seq;
            return Seen {
                lost,
                ..Seen::default()
            };
        }
        let behind = s.last - seq;
        if behind >= WINDOW {
            return Seen {
                reordered: true,
                ..Seen::default()
            };
        }
        let bit = 1u64 << behind;
        if s.window & bit != 0 {
            Seen {
                duplicate: true,
                ..Seen::default()
            }
        } else {
            s.window |= bit;
            Seen {
                reordered: true,
                ..Seen::default()
            }
        }
    }

    /// Numbers still missing in every stream's window when the connection
    /// ends: lost.
    pub fn finish(&mut self) -> u64 {
        let lost = self
            .streams
            .values()
            .map(|s| u64::from((!s.window).count_ones()))
            .sum();
        self.streams.clear();
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `seqs` to one stream; (lost, duplicate, reordered) at the end.
    fn run(seqs: &[u64]) -> (u64, u64, u64) {
        let mut s = Streams::default();
        let (mut lost, mut dup, mut re) = (0, 0, 0);
        for &q in seqs {
            let r = s.observe(7, q);
            lost += r.lost;
            dup += u64::from(r.duplicate);
            re += u64::from(r.reordered);
        }
        (lost + s.finish(), dup, re)
    }

    #[test]
    fn in_order_is_complete() {
        let v: Vec<u64> = (5..1000).collect();
        assert_eq!(run(&v), (0, 0, 0));
    }

    #[test]
    fn every_hundredth_dropped_is_lost_exactly() {
        let v: Vec<u64> = (1..=1000).filter(|n| n % 100 != 0).collect();
        // 100..=900 dropped between others; 1000, dropped last, cannot be
        // told from never sent.
        assert_eq!(run(&v), (9, 0, 0));
        // A gap longer than the window, and one at the very end.
        let mut v: Vec<u64> = (1..=100).collect();
        v.extend(301..=400);
        assert_eq!(run(&v), (200, 0, 0));
    }

    #[test]
    fn repeats_and_swaps_are_told_apart() {
        // 3 sent twice.
        assert_eq!(run(&[1, 2, 3, 3, 4, 5]), (0, 1, 0));
        // Neighbours swapped every 10: one reordered each, nothing lost.
        let mut v: Vec<u64> = (1..=100).collect();
        for i in (0..100).step_by(10) {
            v.swap(i + 4, i + 5);
        }
        assert_eq!(run(&v), (0, 0, 10));
        // Far too late: reordered (and its gap was counted lost).
        let mut v: Vec<u64> = (1..=200).filter(|n| *n != 50).collect();
        v.push(50);
        assert_eq!(run(&v), (1, 0, 1));
    }

    #[test]
    fn streams_are_kept_apart() {
        let mut s = Streams::default();
        let (a, b) = (Streams::key(b"alice"), Streams::key(b"bob"));
        let mut lost = 0;
        for n in 1..=10 {
            // alice's are all there; bob sends only odd numbers.
            assert_eq!(s.observe(a, n), Seen::default());
            lost += s.observe(b, n * 2 - 1).lost;
        }
        // bob's 9 gaps are still in the window until the end.
        assert_eq!(lost + s.finish(), 9);
    }
}

/// The rooms of `fanout:`: how many connections each holds right now.
#[derive(Debug)]
pub struct Rooms {
    /// The feeder column naming a connection's room, or `None`: `name`.
    column: Option<usize>,
    name: Vec<u8>,
    members: std::sync::Mutex<HashMap<Vec<u8>, std::sync::Arc<std::sync::atomic::AtomicU64>>>,
}

/// A connection's place in its room, held while it is open: the count
/// goes down when it is dropped.
#[derive(Debug)]
pub struct Member(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Member {
    /// The other members of the room now.
    #[inline]
    pub fn others(&self) -> u64 {
        self.0
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(1)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Rooms {
    /// The rooms of `f`.
    pub fn new(f: &crate::scenario::Fanout) -> Rooms {
        Rooms {
            column: f.column,
            name: f.room.as_bytes().to_vec(),
            members: Default::default(),
        }
    }

    /// Enters the room of a connection whose feeder values are `slots`
    /// (once per open, never per message).
    pub fn join(&self, slots: &[Vec<u8>]) -> Member {
        let room = self
            .column
            .and_then(|c| slots.get(c))
            .map_or(&self.name[..], |v| &v[..]);
        let count = {
            let mut m = self
                .members
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match m.get(room) {
                Some(c) => c.clone(),
                None => m.entry(room.to_vec()).or_default().clone(),
            }
        };
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Member(count)
    }
}
