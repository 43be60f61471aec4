//! The chat rooms of broadcast mode: one registry per server, shared by
//! every connection on every worker thread.
//!
//! Each room keeps its member list as an `Arc<Vec<Member>>`: a message's
//! fan-out takes the lock only to clone that `Arc`, then queues the payload
//! to each member outside the lock. Joins and leaves change the list in
//! place (copying it only while a fan-out still holds the old one), so the
//! per-message cost under the lock does not grow with the room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hyper::body::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::ServerStats;
use crate::ws::codec::opcode;

/// Messages queued for one member before further ones are dropped: a slow
/// reader loses messages instead of holding up its room.
pub(super) const QUEUE: usize = 1024;

/// The room of a connection whose path does not name one.
pub(super) const LOBBY: &str = "lobby";

/// A message on its way to a member: opcode and payload, shared by all
/// the members it goes to.
pub(super) type Outbound = (u8, Bytes);

#[derive(Clone)]
struct Member {
    id: u64,
    tx: mpsc::Sender<Outbound>,
}

/// Every room of one server, by name; rooms without members are removed.
#[derive(Default)]
pub(super) struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Vec<Member>>>>,
    next_id: AtomicU64,
}

impl Rooms {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Vec<Member>>>> {
        // Nothing panics while holding the lock; should something, the map
        // is still consistent (every change is a single insert or remove).
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Members of `room` now.
    fn members(&self, room: &str) -> Option<Arc<Vec<Member>>> {
        self.lock().get(room).cloned()
    }

    /// Adds `m` to `room`; returns the members after joining.
    fn add(&self, room: &str, m: Member) -> usize {
        let mut rooms = self.lock();
        let list = Arc::make_mut(rooms.entry(room.to_string()).or_default());
        list.push(m);
        list.len()
    }

    /// Removes member `id` from `room`, and the room once it is empty.
    fn remove(&self, room: &str, id: u64) {
        let mut rooms = self.lock();
        let Some(list) = rooms.get_mut(room) else {
            return;
        };
        if let Some(i) = list.iter().position(|m| m.id == id) {
            Arc::make_mut(list).swap_remove(i);
        }
        if list.is_empty() {
            rooms.remove(room);
        }
    }

    /// A new member of `room`, with the queue it receives on.
    pub(super) fn enter(self: &Arc<Self>, room: String) -> (Membership, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next_id.fetch_add(1, Relaxed);
        self.add(&room, Member { id, tx: tx.clone() });
        let m = Membership {
            rooms: self.clone(),
            id,
            tx,
            room,
        };
        (m, rx)
    }
}

/// One connection's place in a room; leaves the room when dropped, however
/// the connection ends.
pub(super) struct Membership {
    rooms: Arc<Rooms>,
    id: u64,
    tx: mpsc::Sender<Outbound>,
    room: String,
}

impl Membership {
    /// Moves to room `to`; returns its members after joining.
    pub(super) fn switch(&mut self, to: &str) -> usize {
        if to == self.room {
            return self.rooms.members(to).map_or(0, |l| l.len());
        }
        self.rooms.remove(&self.room, self.id);
        self.room = to.to_string();
        let me = Member {
            id: self.id,
            tx: self.tx.clone(),
        };
        self.rooms.add(to, me)
    }

    /// Queues a copy of the message to every other member of the room;
    /// a member whose queue is full misses it (counted in `stats.dropped`).
    pub(super) fn broadcast(&self, op: u8, payload: &[u8], stats: &ServerStats) {
        let Some(members) = self.rooms.members(&self.room) else {
            return;
        };
        if members.len() < 2 {
            return;
        }
        let payload = Bytes::copy_from_slice(payload);
        let mut dropped = 0;
        for m in members.iter().filter(|m| m.id != self.id) {
            // A closed queue is a member on its way out: nothing to count.
            if let Err(TrySendError::Full(_)) = m.tx.try_send((op, payload.clone())) {
                dropped += 1;
            }
        }
        if dropped > 0 {
            stats.dropped.fetch_add(dropped, Relaxed);
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.rooms.remove(&self.room, self.id);
    }
}

/// The room named by a request path: `/room/NAME` (percent-decoded), and
/// [`LOBBY`] for any other path or an empty name.
pub(super) fn room_from_path(path: &str) -> String {
    match path.strip_prefix("/room/") {
        Some(name) if !name.is_empty() => crate::scenario::percent_decode(name),
        _ => LOBBY.to_string(),
    }
}

/// The room a message asks to join: a text message holding a JSON object
/// with `"op":"join"` and a string `"room"`. Anything else is an ordinary
/// message for the room.
pub(super) fn join_request(op: u8, payload: &[u8]) -> Option<String> {
    // Most messages are not joins: only objects that could spell "join"
    // (plainly, or with \u escapes) are parsed.
    let first = payload.iter().find(|c| !c.is_ascii_whitespace());
    let maybe = |needle: &[u8]| payload.windows(needle.len()).any(|w| w == needle);
    if op != opcode::TEXT || first != Some(&b'{') || !(maybe(b"join") || maybe(b"\\u")) {
        return None;
    }
    let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(payload).ok()?;
    if obj.get("op").and_then(|v| v.as_str()) != Some("join") {
        return None;
    }
    obj.get("room").and_then(|v| v.as_str()).map(str::to_string)
}

/// The answer to a join: `{"op":"joined","room":NAME,"members":N}`.
pub(super) fn joined_reply(room: &str, members: usize) -> String {
    let name = serde_json::Value::from(room);
    format!(r#"{{"op":"joined","room":{name},"members":{members}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_from_paths() {
        assert_eq!(room_from_path("/room/a"), "a");
        assert_eq!(room_from_path("/room/caf%C3%A9%20b%zz"), "café b%zz");
        assert_eq!(room_from_path("/room/"), LOBBY);
        assert_eq!(room_from_path("/"), LOBBY);
        assert_eq!(room_from_path("/rooms/a"), LOBBY);
    }

    #[test]
    fn only_json_joins_with_a_string_room_are_joins() {
        let t = opcode::TEXT;
        let join = |p: &str| join_request(t, p.as_bytes());
        assert_eq!(join(r#"{"op":"join","room":"b"}"#).as_deref(), Some("b"));
        assert_eq!(
            join(r#" {"room":"c d","x":[1],"op":"join"}"#).as_deref(),
            Some("c d")
        );
        assert_eq!(
            join(r#"{"op":"jo\u0069n","room":"e"}"#).as_deref(),
            Some("e")
        );
        assert_eq!(join(r#"{"op":"join","room":7}"#), None);
        assert_eq!(join(r#"{"op":"leave","room":"join"}"#), None);
        assert_eq!(join(r#"["op","join"]"#), None);
        assert_eq!(join(r#"{"op":"join","room":"b""#), None);
        let bin = join_request(opcode::BINARY, br#"{"op":"join","room":"b"}"#);
        assert_eq!(bin, None);
    }

    #[test]
    fn joined_reply_escapes_the_name() {
        assert_eq!(
            joined_reply("a\"b", 3),
            r#"{"op":"joined","room":"a\"b","members":3}"#
        );
    }

    #[tokio::test]
    async fn members_move_leave_and_empty_rooms_go() {
        let rooms = Arc::new(Rooms::default());
        let stats = ServerStats::default();
        let (a, mut ra) = rooms.enter("x".into());
        let (mut b, mut rb) = rooms.enter("x".into());
        a.broadcast(opcode::TEXT, b"hi", &stats);
        assert_eq!(
            rb.try_recv().unwrap(),
            (opcode::TEXT, Bytes::from_static(b"hi"))
        );
        assert!(ra.try_recv().is_err(), "the sender gets no copy");
        assert_eq!(b.switch("y"), 1);
        assert_eq!(b.switch("y"), 1);
        a.broadcast(opcode::TEXT, b"again", &stats);
        assert!(rb.try_recv().is_err(), "b left x");
        drop(a);
        assert!(rooms.members("x").is_none(), "empty room removed");
        drop(b);
        assert!(rooms.lock().is_empty());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let rooms = Arc::new(Rooms::default());
        let stats = ServerStats::default();
        let (a, _ra) = rooms.enter("x".into());
        let (_b, mut rb) = rooms.enter("x".into());
        for _ in 0..QUEUE + 5 {
            a.broadcast(opcode::BINARY, &[1, 2], &stats);
        }
        assert_eq!(stats.dropped.load(Relaxed), 5);
        let mut n = 0;
        while rb.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, QUEUE);
    }
}
