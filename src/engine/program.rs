//! A role's flow compiled into a flat program that a connection steps
//! through: loops become jumps, regexes are compiled for bytes, sends know
//! their correlation rule, captures their slot. Built once per run.

use std::time::Duration;

use regex::bytes::Regex as BytesRegex;

use super::correlate::{KeyRule, json_value};
use crate::scenario::{
    Capture, CloseSettings, Correlate, Matcher, Message, OnTimeout, Role, Step, Template,
    capture_names,
};

/// One instruction.
#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Send `sends[i]`.
    Send(usize),
    /// Wait for `expects[i]`.
    Expect(usize),
    /// Pause.
    Sleep(Duration),
    /// Pause for a random time in the range.
    Think(Duration, Duration),
    /// A timed ping.
    Ping,
    /// Close with `closes[i]`; the flow ends.
    Close(usize),
    /// Close and open again.
    Reconnect,
    /// Start of a loop paced by the phase rate; `end` is the op after it.
    Paced { end: usize },
    /// Start of a counted loop.
    Repeat { count: u64 },
    /// End of the loop starting at `start`.
    EndLoop { start: usize },
}

/// What a send writes.
pub(super) enum Body {
    /// A text template.
    Text(Template),
    /// Fixed random bytes.
    Binary(Vec<u8>),
}

/// How a send's replies are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Corr {
    /// Not matched.
    None,
    /// FIFO.
    Echo,
    /// By id, with `rules[i]`.
    Keyed(usize),
}

/// A compiled send.
pub(super) struct SendOp {
    pub body: Body,
    pub corr: Corr,
    pub replies: u32,
    pub timeout: Option<Duration>,
}

/// A compiled expect.
pub(super) struct ExpectOp {
    matcher: CMatcher,
    pub timeout: Duration,
    /// `(slot, where from)`.
    captures: Vec<(usize, CCapture)>,
    pub count: u32,
    pub on_timeout: OnTimeout,
}

enum CMatcher {
    Any,
    Contains(Vec<u8>),
    Regex(BytesRegex),
    Json(Vec<(Vec<String>, Vec<u8>)>),
}

enum CCapture {
    Path(Vec<String>),
    Regex(BytesRegex),
}

fn split(path: &str) -> Vec<String> {
    path.split('.').map(String::from).collect()
}

fn bytes_regex(r: &regex::Regex) -> BytesRegex {
    BytesRegex::new(r.as_str()).expect("checked when parsed")
}

impl ExpectOp {
    /// Whether `msg` is what this expect waits for.
    pub fn matches(&self, msg: &[u8]) -> bool {
        match &self.matcher {
            CMatcher::Any => true,
            CMatcher::Contains(c) => c.is_empty() || msg.windows(c.len()).any(|w| w == &c[..]),
            CMatcher::Regex(r) => r.is_match(msg),
            CMatcher::Json(pairs) => pairs
                .iter()
                .all(|(p, v)| json_value(msg, p).is_some_and(|got| got == &v[..])),
        }
    }

    /// Stores the captures found in `msg` into `slots`.
    pub fn capture(&self, msg: &[u8], slots: &mut [Vec<u8>]) {
        for (slot, c) in &self.captures {
            let found = match c {
                CCapture::Path(p) => json_value(msg, p),
                CCapture::Regex(r) => r.captures(msg).and_then(|c| c.get(1)).map(|m| m.as_bytes()),
            };
            if let (Some(v), Some(s)) = (found, slots.get_mut(*slot)) {
                s.clear();
                s.extend_from_slice(v);
            }
        }
    }
}

/// A role's compiled flow.
pub(super) struct Program {
    pub ops: Vec<Op>,
    pub sends: Vec<SendOp>,
    pub expects: Vec<ExpectOp>,
    pub closes: Vec<CloseSettings>,
    /// Id rules of keyed sends, indexed by `Corr::Keyed`.
    pub rules: Vec<KeyRule>,
    /// Whether the flow has a loop paced by the phase rate.
    pub paced: bool,
    /// Per-connection slots: feeder columns, then captures.
    pub slots: usize,
}

impl Program {
    /// Compiles `role`'s flow; `data_columns` feeder columns come first in
    /// the slots; binary payloads are drawn from `rng`.
    pub fn compile(role: &Role, data_columns: usize, rng: &mut fastrand::Rng) -> Program {
        let captures = capture_names(&role.flow);
        let mut p = Program {
            ops: Vec::new(),
            sends: Vec::new(),
            expects: Vec::new(),
            closes: Vec::new(),
            rules: Vec::new(),
            paced: crate::scenario::is_paced(&role.flow),
            slots: data_columns + captures.len(),
        };
        p.emit(&role.flow, data_columns, &captures, rng);
        p
    }

    fn emit(&mut self, steps: &[Step], data: usize, captures: &[String], rng: &mut fastrand::Rng) {
        for step in steps {
            match step {
                Step::Send(s) => {
                    let body = match &s.message {
                        Message::Text(t) => Body::Text(t.clone()),
                        Message::Binary { size } => {
                            Body::Binary((0..*size).map(|_| rng.u8(..)).collect())
                        }
                    };
                    let corr = match &s.correlate {
                        Correlate::None => Corr::None,
                        Correlate::Echo => Corr::Echo,
                        other => {
                            self.rules.push(KeyRule::of(other).expect("field or regex"));
                            Corr::Keyed(self.rules.len() - 1)
                        }
                    };
                    self.sends.push(SendOp {
                        body,
                        corr,
                        replies: s.replies,
                        timeout: s.timeout,
                    });
                    self.ops.push(Op::Send(self.sends.len() - 1));
                }
                Step::Expect(e) => {
                    let matcher = match &e.matcher {
                        Matcher::Any => CMatcher::Any,
                        Matcher::Contains(c) => CMatcher::Contains(c.as_bytes().to_vec()),
                        Matcher::Regex(r) => CMatcher::Regex(bytes_regex(r)),
                        Matcher::Json(pairs) => CMatcher::Json(
                            pairs
                                .iter()
                                .map(|(p, v)| (split(p), v.as_bytes().to_vec()))
                                .collect(),
                        ),
                    };
                    let caps = e
                        .capture
                        .iter()
                        .map(|(name, c)| {
                            let slot =
                                data + captures.iter().position(|n| n == name).expect("collected");
                            let c = match c {
                                Capture::Path(p) => CCapture::Path(split(p)),
                                Capture::Regex(r) => CCapture::Regex(bytes_regex(r)),
                            };
                            (slot, c)
                        })
                        .collect();
                    self.expects.push(ExpectOp {
                        matcher,
                        timeout: e.timeout,
                        captures: caps,
                        count: e.count,
                        on_timeout: e.on_timeout,
                    });
                    self.ops.push(Op::Expect(self.expects.len() - 1));
                }
                Step::Sleep(d) => self.ops.push(Op::Sleep(*d)),
                Step::Think(a, b) => self.ops.push(Op::Think(*a, *b)),
                Step::Ping => self.ops.push(Op::Ping),
                Step::Close(c) => {
                    self.closes.push(c.clone());
                    self.ops.push(Op::Close(self.closes.len() - 1));
                }
                Step::Reconnect => self.ops.push(Op::Reconnect),
                Step::Loop(l) => {
                    let start = self.ops.len();
                    self.ops.push(Op::Paced { end: 0 });
                    self.emit(&l.steps, data, captures, rng);
                    self.ops.push(Op::EndLoop { start });
                    let end = self.ops.len();
                    self.ops[start] = match l.count {
                        None => Op::Paced { end },
                        Some(count) => Op::Repeat { count },
                    };
                }
            }
        }
    }
}
