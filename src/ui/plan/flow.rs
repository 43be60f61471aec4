//! The steps of a flow, one a line, and the roles that run them, for
//! `barrage check`.

use std::fmt::Write;

use crate::scenario::{
    Capture, Correlate, ExpectStep, Matcher, Message, OnTimeout, Role, SendStep, Step,
};

/// A role as the run plays it: its connections and what its flow sends.
pub(super) struct RolePlan {
    /// The role (the default one for a scenario without `roles:`).
    pub role: Role,
    /// Connections it gets of `connections.count`.
    pub count: u64,
    /// Whether its flow has a loop paced by a rate.
    pub paced: bool,
    /// Messages one iteration of the paced loop sends.
    pub per_iteration: u64,
    /// Messages the rest of the flow sends, once per connection.
    pub once: u64,
}

impl RolePlan {
    /// The roles of `s` with their shares of `count` connections.
    pub fn of(roles: Vec<Role>, count: u64) -> Vec<RolePlan> {
        let of = crate::scenario::assign_roles(&roles, count);
        roles
            .into_iter()
            .enumerate()
            .map(|(i, role)| {
                let (once, per_iteration) = sends(&role.flow);
                RolePlan {
                    count: of.iter().filter(|r| usize::from(**r) == i).count() as u64,
                    paced: crate::scenario::is_paced(&role.flow),
                    per_iteration,
                    once,
                    role,
                }
            })
            .collect()
    }

    /// Whether its paced loop runs on the phase rate (not a rate of its own).
    pub fn on_phase_rate(&self) -> bool {
        self.paced && self.role.rate.is_none() && self.count > 0
    }

    /// Whether its paced loop runs on a rate of its own.
    pub fn own_rate(&self) -> Option<f64> {
        self.role
            .rate
            .filter(|_| self.paced && self.count > 0)
            .map(|r| r.per_second)
    }
}

/// Messages `steps` send: `(once, per paced iteration)`, counted loops
/// multiplied out.
fn sends(steps: &[Step]) -> (u64, u64) {
    let (mut once, mut per_iteration) = (0u64, 0u64);
    for s in steps {
        match s {
            Step::Send(_) => once += 1,
            Step::Loop(l) => {
                let (o, it) = sends(&l.steps);
                match l.count {
                    Some(n) => {
                        once = once.saturating_add(o.saturating_mul(n));
                        per_iteration = per_iteration.saturating_add(it.saturating_mul(n));
                    }
                    None => per_iteration = per_iteration.saturating_add(o),
                }
            }
            _ => {}
        }
    }
    (once, per_iteration)
}

/// `roles:` each with its weight, connections, rate and flow.
pub(super) fn roles(out: &mut String, roles: &[RolePlan], total: u32) {
    out.push_str("  roles:\n");
    let width = roles.iter().map(|r| r.role.name.len()).max().unwrap_or(0);
    for r in roles {
        let _ = write!(
            out,
            "    {:<width$}  weight {}: {} of {total} connections",
            r.role.name,
            percent(r.role.weight),
            r.count,
        );
        let pace = match (r.paced, r.role.rate) {
            (false, _) => {
                out.push_str(", no paced loop\n");
                "paced"
            }
            (true, Some(rate)) => {
                let _ = writeln!(
                    out,
                    ", its own rate {}/s over them (not the phase rate)",
                    rate.per_second
                );
                "paced by the role's rate"
            }
            (true, None) => {
                out.push_str(", loop paced by the phase rate\n");
                "paced by the phase rate"
            }
        };
        steps(out, &r.role.flow, 6, pace);
    }
}

/// A weight (0 to 1) as a percentage: `1%`, `33.33%`.
fn percent(w: f64) -> String {
    let s = format!("{:.2}", w * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Writes `steps` one a line at `indent` spaces, a loop's steps two
/// further in; `pace` says what paces a loop without a count.
pub(super) fn steps(out: &mut String, steps: &[Step], indent: usize, pace: &str) {
    for s in steps {
        let _ = writeln!(out, "{:indent$}{}", "", step(s, pace));
        if let Step::Loop(l) = s {
            self::steps(out, &l.steps, indent + 2, pace);
        }
    }
}

/// One step as a line.
fn step(s: &Step, pace: &str) -> String {
    match s {
        Step::Send(send) => send_line(send),
        Step::Expect(e) => expect_line(e),
        Step::Sleep(d) => format!("sleep {d:?}"),
        Step::Think(a, b) => format!("think {a:?}..{b:?} (uniformly random)"),
        Step::Loop(l) => match l.count {
            Some(1) => "loop once:".to_string(),
            Some(n) => format!("loop {n} times:"),
            None => format!("loop, {pace}, until the phases end:"),
        },
        Step::Ping => "ping (its pong timed as metric ping)".to_string(),
        Step::Close(c) if c.reason.is_empty() => {
            format!("close (code {}): the flow ends", c.code)
        }
        Step::Close(c) => format!("close (code {}, {:?}): the flow ends", c.code, c.reason),
        Step::Reconnect => "reconnect (close, open again, go on)".to_string(),
    }
}

/// `send text "…" (correlate echo)`.
fn send_line(s: &SendStep) -> String {
    let mut line = format!("send {}", message(&s.message));
    let replies = if s.replies > 1 {
        format!(", {} replies each", s.replies)
    } else {
        String::new()
    };
    match &s.correlate {
        Correlate::None => {}
        Correlate::Echo => line.push_str(" (correlate echo)"),
        Correlate::Field(f) => {
            let _ = write!(line, " (correlate field {f}{replies})");
        }
        Correlate::Regex(r) => {
            let _ = write!(line, " (correlate regex {:?}{replies})", r.as_str());
        }
    }
    if let Some(t) = s.timeout {
        let _ = write!(line, ", timeout {t:?}");
    }
    line
}

/// A message as the plan shows it: `text "…"` or `binary, N bytes`.
pub(super) fn message(m: &Message) -> String {
    match m {
        Message::Text(t) => format!("text {:?}", t.source()),
        Message::Binary { size } => format!("binary, {size} bytes"),
    }
}

/// `expect contains "joined" within 2s`.
fn expect_line(e: &ExpectStep) -> String {
    let what = match &e.matcher {
        Matcher::Any => "any message".to_string(),
        Matcher::Contains(c) => format!("contains {c:?}"),
        Matcher::Regex(r) => format!("regex {:?}", r.as_str()),
        Matcher::Json(pairs) => {
            let pairs: Vec<String> = pairs.iter().map(|(p, v)| format!("{p} = {v}")).collect();
            format!("json {{ {} }}", pairs.join(", "))
        }
    };
    let count = if e.count > 1 {
        format!("{} × ", e.count)
    } else {
        String::new()
    };
    let mut line = format!("expect {count}{what} within {:?}", e.timeout);
    if !e.capture.is_empty() {
        let caps: Vec<String> = e
            .capture
            .iter()
            .map(|(name, c)| match c {
                Capture::Path(p) => format!("{name} from {p}"),
                Capture::Regex(r) => format!("{name} by regex {:?}", r.as_str()),
            })
            .collect();
        let _ = write!(line, ", capture {}", caps.join(", "));
    }
    if e.on_timeout == OnTimeout::Close {
        line.push_str(", else close");
    }
    line
}
