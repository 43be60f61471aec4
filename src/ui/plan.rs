//! `barrage check` output: the plan of a validated scenario: the target
//! as it will run, what every connection does (the message, the flow, or
//! each role with its share and flow), the settings that are set, and what
//! each phase paces.

mod flow;
mod settings;
#[cfg(test)]
mod tests;

use std::fmt::Write;

use flow::RolePlan;

use crate::engine::preflight;
use crate::scenario::{
    BuiltinMode, DEFAULT_TEMPLATE, Message, Phase, PhaseRate, Scenario, Size, Target,
    is_secret_header,
};

/// A description of what `scenario` will do.
pub fn render(file: &str, s: &Scenario) -> String {
    let target = match &s.target {
        Target::Builtin => settings::builtin(s),
        Target::Url(u) => s.env_secrets.target(&u.original),
    };
    let mut out = format!(
        "{file}: ok\n  scenario    {}\n  target      {target}\n  connections {} opened at {}/s, timeout {:?}\n",
        s.name, s.connections.count, s.connections.rate.per_second, s.connections.timeout
    );
    let roles = RolePlan::of(s.effective_roles(), u64::from(s.connections.count));
    let default_message = matches!(&s.message, Message::Text(t) if t.source() == DEFAULT_TEMPLATE);
    if s.flow.is_none() && s.roles.is_empty() {
        let _ = writeln!(out, "  message     {}", flow::message(&s.message));
    } else if !default_message {
        out.push_str("  message     not sent: the send steps of the flow say what is sent\n");
    }
    if let Some(steps) = &s.flow {
        out.push_str("  flow:\n");
        flow::steps(&mut out, steps, 4, "paced by the phase rate");
    } else if !s.roles.is_empty() {
        flow::roles(&mut out, &roles, s.connections.count);
    }
    out.push_str(&settings::lines(s));
    out.push_str("  phases:\n");
    let push = (s.target == Target::Builtin && s.builtin.mode == BuiltinMode::Push)
        .then_some(s.builtin.push_rate.per_second);
    let (mut total, mut paced, mut pushed) = (Some(0u64), false, 0.0);
    for (i, p) in s.phases.iter().enumerate() {
        let (what, expected) = phase(p, &roles, !s.roles.is_empty());
        paced |= expected != Some(0);
        let mut line = format!(
            "    {:<12} {:>8.1}s  {what}",
            p.name,
            p.duration.as_secs_f64()
        );
        if let Some(rate) = push {
            let n = f64::from(s.phase_population(i).0) * rate * p.duration.as_secs_f64();
            pushed += n;
            let _ = write!(line, "; the server pushes about {n:.0}");
        }
        if !p.record {
            line.push_str("  (not recorded)");
        }
        let _ = writeln!(out, "{line}");
        if let Some(c) = p.connections {
            let rate = c.rate.unwrap_or(s.connections.rate).per_second;
            out.push_str(&format!(
                "                            connections toward {} at {rate}/s\n",
                c.count
            ));
        }
        total = total.zip(expected).map(|(a, b)| a + b);
    }
    if let Some(l) = s.connections.lifetime {
        // Each connection is replaced once a mean lifetime.
        let churn = f64::from(s.connections.count) / l.mean().as_secs_f64();
        out.push_str(&format!(
            "  churn       each connection lives {l} and is replaced at once: about {churn:.0} closes and opens/s\n"
        ));
    }
    let mut summary = match total {
        None => "expected messages open-ended (a phase uses rate: max)".to_string(),
        Some(0) if !paced => "no paced messages (listen only)".to_string(),
        Some(n) => format!("expected messages {n}"),
    };
    let once: u64 = roles.iter().map(|r| r.count.saturating_mul(r.once)).sum();
    if once > 0 {
        let more = if paced { " more" } else { "" };
        let _ = write!(
            summary,
            "; {once}{more} sent once per connection (steps outside a paced loop)"
        );
    }
    if push.is_some() {
        let _ = write!(summary, "; the server pushes about {pushed:.0}");
    }
    let _ = writeln!(
        out,
        "  total       {:.1}s, {summary}",
        s.total_duration().as_secs_f64()
    );
    let connections = u64::from(s.peak_connections());
    let worst = preflight::message_memory(connections, s.max_message_size);
    out.push_str(&format!(
        "  memory      up to {} of messages being received ({connections} connections × max_message_size {}){}\n",
        Size(worst),
        Size(s.max_message_size as u64),
        match preflight::memory_limit() {
            Some(m) if worst > m => format!(
                "; more than this machine's {}: `run` refuses it without --allow-memory-overcommit",
                Size(m)
            ),
            Some(m) => format!("; this machine allows {}", Size(m)),
            None => String::new(),
        }
    ));
    for t in &s.thresholds {
        out.push_str(&format!("  threshold   {}\n", t.expr));
    }
    redact(out, s)
}

/// The target as the dashboard's title names it: the built-in server with
/// its mode, or the URL (secret query values redacted).
pub fn target_title(s: &Scenario) -> String {
    match &s.target {
        Target::Url(u) => s.env_secrets.target(&u.original),
        Target::Builtin => match s.builtin.mode {
            BuiltinMode::Echo => "builtin echo server".to_string(),
            BuiltinMode::Broadcast => "builtin broadcast server (rooms)".to_string(),
            BuiltinMode::Push => format!(
                "builtin push server ({}/s, {})",
                s.builtin.push_rate.per_second,
                Size(s.builtin.push_size as u64)
            ),
        },
    }
}

/// What phase `p` paces, and the messages it is expected to send (`None`:
/// as many as the server answers). `named`: the roles come from `roles:`.
fn phase(p: &Phase, roles: &[RolePlan], named: bool) -> (String, Option<u64>) {
    let shared: Vec<&RolePlan> = roles.iter().filter(|r| r.on_phase_rate()).collect();
    let own: Vec<(&RolePlan, f64)> = roles
        .iter()
        .filter_map(|r| r.own_rate().map(|rate| (r, rate)))
        .collect();
    let listen = |why: String| (format!("listen only ({why})"), Some(0));
    let rate = match p.rate {
        PhaseRate::PerSecond(r) => format!("{}/s", r.per_second),
        PhaseRate::Ramp { from, to } => format!(
            "{from}/s {} linearly to {to}/s",
            if to < from { "falling" } else { "rising" }
        ),
        PhaseRate::None => return listen("no rate: nothing paced".to_string()),
        PhaseRate::Max if shared.is_empty() && own.is_empty() => {
            return listen("rate max, but no loop is paced".to_string());
        }
        PhaseRate::Max => {
            return (
                format!(
                    "rate max (closed model, {} in flight per connection)  expected messages as many as the server answers",
                    p.inflight
                ),
                None,
            );
        }
    };
    let mut parts = Vec::new();
    let mut sum = 0;
    if !shared.is_empty() {
        // The phase rate is spread over the connections of these roles;
        // each iteration sends what its role's loop sends.
        let iterations = Scenario::expected_messages(p).unwrap_or(0);
        let connections: u64 = shared.iter().map(|r| r.count).sum();
        let sends: u64 = shared
            .iter()
            .map(|r| r.count.saturating_mul(r.per_iteration))
            .sum();
        let n = (iterations as f64 * sends as f64 / connections as f64).round() as u64;
        let mut part = expected(n, iterations);
        if named {
            let names: Vec<&str> = shared.iter().map(|r| r.role.name.as_str()).collect();
            let _ = write!(part, " from {}", names.join(", "));
        }
        sum += n;
        parts.push(part);
    }
    for (r, own) in own {
        let iterations = (own * p.duration.as_secs_f64()).round() as u64;
        let n = iterations.saturating_mul(r.per_iteration);
        sum += n;
        parts.push(format!(
            "{} at its own {own}/s: {}",
            r.role.name,
            expected(n, iterations)
        ));
    }
    if parts.is_empty() {
        listen(format!("no loop is paced by the rate {rate}"))
    } else if shared.is_empty() {
        (
            format!("rate {rate} unused; {}", parts.join("; ")),
            Some(sum),
        )
    } else {
        (format!("rate {rate}  {}", parts.join("; ")), Some(sum))
    }
}

/// `expected messages N`, with the loop iterations when they differ.
fn expected(n: u64, iterations: u64) -> String {
    if n == iterations {
        format!("expected messages {n}")
    } else {
        format!("expected messages {n} ({iterations} loop iterations)")
    }
}

/// `out` with the values of secret headers (and their words, but a leading
/// scheme such as `Bearer`) replaced by `<redacted>`, should a flow's text
/// spell one, and every value `${env:NAME}` gave the scenario.
fn redact(mut out: String, s: &Scenario) -> String {
    out = s.env_secrets.redact(&out);
    let mut needles: Vec<&str> = Vec::new();
    for (name, value) in &s.headers.0 {
        if !is_secret_header(name) {
            continue;
        }
        needles.push(value.trim());
        let words: Vec<&str> = value.split_whitespace().collect();
        let skip = usize::from(words.len() > 1);
        needles.extend(words.into_iter().skip(skip));
    }
    needles.retain(|n| n.chars().count() >= 4);
    needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in needles {
        out = out.replace(n, "<redacted>");
    }
    out
}
