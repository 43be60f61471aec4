//! Matching received messages: messages awaiting replies (FIFO for echo,
//! by id for `field`/`regex` correlation), and a small JSON reader that finds
//! a value by path in a message without parsing it into a tree or allocating.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use regex::bytes::Regex as BytesRegex;

use crate::scenario::Correlate;

/// A message waiting for its reply (or replies).
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    /// When it was due (open model) or sent (closed model).
    pub scheduled: Instant,
    /// When it was written.
    pub sent: Instant,
    /// Stage it was sent in.
    pub stage: usize,
    /// Replies still expected.
    pub replies: u32,
    /// When it times out, if it has a timeout.
    pub deadline: Option<Instant>,
    /// Echo correlation: its [`echo_signature`], which the reply must have.
    pub echo: u64,
}

/// What an echo must repeat of a message: its opcode, its length and its
/// first and last 8 bytes (two loads, whatever the size), so a server push
/// that arrives while an echo is awaited is not taken for the echo.
#[inline]
pub(super) fn echo_signature(opcode: u8, payload: &[u8]) -> u64 {
    let load = |b: &[u8]| {
        let mut w = [0u8; 8];
        w[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    let n = payload.len();
    let head = load(&payload[..n.min(8)]);
    let tail = load(&payload[n.saturating_sub(8)..]);
    (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ head.rotate_left(29)
        ^ tail
        ^ (u64::from(opcode) << 56)
}

/// How one send step finds its replies' ids.
#[derive(Debug, Clone)]
pub(super) enum KeyRule {
    /// A JSON path.
    Field(Vec<String>),
    /// The first group of a regex.
    Regex(BytesRegex),
}

impl KeyRule {
    /// The rule of a `correlate:` setting (`None` for echo and none).
    pub fn of(c: &Correlate) -> Option<KeyRule> {
        match c {
            Correlate::Field(p) => Some(KeyRule::Field(p.split('.').map(String::from).collect())),
            Correlate::Regex(r) => Some(KeyRule::Regex(
                BytesRegex::new(r.as_str()).expect("checked when parsed"),
            )),
            _ => None,
        }
    }

    /// The id in `msg`, hashed.
    pub fn key(&self, msg: &[u8]) -> Option<u64> {
        match self {
            KeyRule::Field(path) => json_value(msg, path).map(hash),
            KeyRule::Regex(re) => re
                .captures(msg)
                .and_then(|c| c.get(1))
                .map(|m| hash(m.as_bytes())),
        }
    }
}

/// FNV-1a over the id bytes: ids are short and hashed once per message.
fn hash(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A hasher that passes the already-hashed key through.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Messages of one connection waiting for replies.
#[derive(Default)]
pub(super) struct Pending {
    /// Echo correlation: the next data message answers the oldest.
    pub fifo: VecDeque<InFlight>,
    /// Field or regex correlation: allocated at the first message sent by
    /// id, so a connection that sends none holds a pointer.
    keyed: Option<Box<Keyed>>,
}

/// Messages waiting for replies by id.
#[derive(Default)]
struct Keyed {
    /// By hashed id.
    map: HashMap<u64, InFlight, BuildHasherDefault<KeyHasher>>,
    /// The earliest deadline among them (fifo ones expire in order).
    next_expiry: Option<Instant>,
}

impl Pending {
    /// Messages awaiting replies.
    pub fn len(&self) -> usize {
        self.fifo.len() + self.keyed.as_ref().map_or(0, |k| k.map.len())
    }

    /// Whether nothing awaits a reply.
    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty() && self.keyed.as_ref().is_none_or(|k| k.map.is_empty())
    }

    /// Registers a keyed message; returns false when its id is already
    /// waiting (the old one is then replaced and counted lost by the caller).
    pub fn insert_keyed(&mut self, key: u64, m: InFlight) -> Option<InFlight> {
        let k = self.keyed.get_or_insert_with(Default::default);
        if let Some(d) = m.deadline {
            k.next_expiry = Some(k.next_expiry.map_or(d, |e| e.min(d)));
        }
        k.map.insert(key, m)
    }

    /// The message `msg` answers, by id under one of `rules` (the
    /// program's), with replies left updated (removed when it got all of
    /// them).
    pub fn match_keyed(&mut self, rules: &[KeyRule], msg: &[u8]) -> Option<InFlight> {
        let k = self.keyed.as_mut().filter(|k| !k.map.is_empty())?;
        for rule in rules {
            let Some(key) = rule.key(msg) else { continue };
            let Some(m) = k.map.get_mut(&key) else {
                continue;
            };
            m.replies -= 1;
            let found = *m;
            if m.replies == 0 {
                k.map.remove(&key);
            }
            return Some(found);
        }
        None
    }

    /// Removes messages whose deadline passed by `now`, calling `lost` for
    /// each; returns the next deadline to wake for.
    pub fn expire(&mut self, now: Instant, lost: &mut dyn FnMut(&InFlight)) -> Option<Instant> {
        while let Some(front) = self.fifo.front() {
            match front.deadline {
                Some(d) if d <= now => {
                    lost(front);
                    self.fifo.pop_front();
                }
                _ => break,
            }
        }
        let mut keyed_next = None;
        if let Some(k) = self.keyed.as_mut() {
            if k.next_expiry.is_some_and(|e| e <= now) {
                let mut next = None;
                k.map.retain(|_, m| match m.deadline {
                    Some(d) if d <= now => {
                        lost(m);
                        false
                    }
                    Some(d) => {
                        next = Some(next.map_or(d, |n: Instant| n.min(d)));
                        true
                    }
                    None => true,
                });
                k.next_expiry = next;
            }
            keyed_next = k.next_expiry;
        }
        let fifo_next = self.fifo.front().and_then(|m| m.deadline);
        match (fifo_next, keyed_next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes every waiting message (the run or the connection ended).
    pub fn drain(&mut self, lost: &mut dyn FnMut(&InFlight)) {
        for m in self.fifo.drain(..) {
            lost(&m);
        }
        if let Some(k) = self.keyed.as_mut() {
            for (_, m) in k.map.drain() {
                lost(&m);
            }
            k.next_expiry = None;
        }
    }

    /// Frees memory while idle.
    pub fn shrink(&mut self) {
        if self.fifo.is_empty() {
            self.fifo = VecDeque::new();
        }
        if self.keyed.as_ref().is_some_and(|k| k.map.is_empty()) {
            self.keyed = None;
        }
    }
}

/// The value at `path` in the JSON text `msg`: a string's contents (escapes
/// left as written) or a number, literal, object or array as written.
/// `None` when `msg` is not JSON or the path is absent. Reads only as far as
/// needed; allocates nothing.
pub fn json_value<'a>(msg: &'a [u8], path: &[String]) -> Option<&'a [u8]> {
    let mut pos = skip_ws(msg, 0);
    for key in path {
        pos = find_key(msg, pos, key.as_bytes())?;
    }
    let end = skip_value(msg, pos)?;
    let v = &msg[pos..end];
    Some(match v.first() {
        Some(b'"') => &v[1..v.len() - 1],
        _ => v,
    })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// In the object at `i`, the start of the value of `key`.
fn find_key(b: &[u8], i: usize, key: &[u8]) -> Option<usize> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut i = skip_ws(b, i + 1);
    loop {
        if b.get(i) == Some(&b'}') {
            return None;
        }
        let kend = skip_string(b, i)?;
        let k = &b[i + 1..kend - 1];
        i = skip_ws(b, kend);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if k == key {
            return Some(i);
        }
        i = skip_ws(b, skip_value(b, i)?);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            _ => return None,
        }
    }
}

/// The end (exclusive) of the string starting at `i`.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The end (exclusive) of the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        open @ (b'{' | b'[') => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    c if c == open => depth += 1,
                    c if c == close => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth = depth.checked_sub(1)?,
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(msg: &'a str, path: &str) -> Option<&'a str> {
        let p: Vec<String> = path.split('.').map(String::from).collect();
        json_value(msg.as_bytes(), &p).map(|v| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn finds_values_by_path() {
        let m = r#" {"a": 1, "s": "x\"y", "o": {"deep": [1, {"z": 2}], "id": 42}, "t": true} "#;
        assert_eq!(get(m, "a"), Some("1"));
        assert_eq!(get(m, "s"), Some(r#"x\"y"#));
        assert_eq!(get(m, "o.id"), Some("42"));
        assert_eq!(get(m, "o.deep"), Some(r#"[1, {"z": 2}]"#));
        assert_eq!(get(m, "t"), Some("true"));
        assert_eq!(get(m, "missing"), None);
        assert_eq!(get(m, "a.b"), None);
        assert_eq!(get("not json", "a"), None);
        assert_eq!(get(r#"{"a": "#, "a"), None);
        // Mismatched brackets end the value instead of underflowing.
        assert_eq!(get(r#"{"a":[}]}"#, "a"), None);
    }

    #[test]
    fn keyed_replies_match_in_any_order_and_expire() {
        let t0 = Instant::now();
        let rules = vec![KeyRule::of(&Correlate::Field("id".into())).unwrap()];
        let mut p = Pending::default();
        let m = |replies, deadline| InFlight {
            scheduled: t0,
            sent: t0,
            stage: 1,
            replies,
            deadline,
            echo: 0,
        };
        let key = |s: &str| rules[0].key(s.as_bytes()).unwrap();
        let (k1, k2, k3) = (key(r#"{"id":1}"#), key(r#"{"id":2}"#), key(r#"{"id":3}"#));
        p.insert_keyed(k1, m(1, None));
        p.insert_keyed(k2, m(2, None));
        p.insert_keyed(k3, m(1, Some(t0)));
        assert!(p.match_keyed(&rules, br#"{"id":2,"x":0}"#).is_some());
        assert!(p.match_keyed(&rules, br#"{"x":0,"id":1}"#).is_some());
        assert!(
            p.match_keyed(&rules, br#"{"id":1}"#).is_none(),
            "already answered"
        );
        assert!(
            p.match_keyed(&rules, br#"{"id":2}"#).is_some(),
            "second reply of 2"
        );
        let mut lost = 0;
        p.expire(t0, &mut |_| lost += 1);
        assert_eq!((lost, p.len()), (1, 0));
    }
}
