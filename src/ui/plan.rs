//! `barrage check` output: the plan of a validated scenario.

use crate::engine::preflight;
use crate::scenario::{Message, PhaseRate, Scenario, Size, Target};

/// A description of what `scenario` will do.
pub fn render(file: &str, s: &Scenario) -> String {
    let target = match &s.target {
        Target::Builtin => "builtin (echo server on a free loopback port)".to_string(),
        Target::Url(u) => crate::scenario::redact_url(&u.original),
    };
    let mut out = format!(
        "{file}: ok\n  scenario    {}\n  target      {target}\n  connections {} opened at {}/s, timeout {:?}\n",
        s.name, s.connections.count, s.connections.rate.per_second, s.connections.timeout
    );
    let message = match &s.message {
        Message::Text(t) => format!("text {:?}", t.source()),
        Message::Binary { size } => format!("binary, {size} bytes"),
    };
    out.push_str(&format!("  message     {message}\n  phases:\n"));
    let mut total: Option<u64> = Some(0);
    for p in &s.phases {
        let expected = Scenario::expected_messages(p);
        let rate = match p.rate {
            PhaseRate::PerSecond(r) => format!("{}/s", r.per_second),
            PhaseRate::Ramp { from, to } => format!("{from}/s rising linearly to {to}/s")
                .replace("rising", if to < from { "falling" } else { "rising" }),
            PhaseRate::Max => format!(
                "max (closed model, {} in flight per connection)",
                p.inflight
            ),
            PhaseRate::None => "none (nothing paced)".to_string(),
        };
        out.push_str(&format!(
            "    {:<12} {:>8.1}s  rate {rate}  expected messages {}{}\n",
            p.name,
            p.duration.as_secs_f64(),
            expected.map_or("as many as the server answers".to_string(), |n| n
                .to_string()),
            if p.record { "" } else { "  (not recorded)" }
        ));
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
    out.push_str(&format!(
        "  total       {:.1}s, expected messages {}\n",
        s.total_duration().as_secs_f64(),
        total.map_or("open-ended (a phase uses rate: max)".to_string(), |n| n
            .to_string())
    ));
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
    out
}
