//! The one-line settings of the plan: data, compression, TLS, ping,
//! delivery, sequence, backlog and the like, each only when set.

use std::fmt::Write;

use crate::scenario::{
    BuiltinMode, Compression, DataMode, Scenario, Size, Target, TimeUnit, TlsSettings,
};

/// `backlog:` when not set.
const DEFAULT_BACKLOG: usize = 64;

/// What the built-in server does, for the plan's target line (its later
/// lines indented under the first's text).
pub(super) fn builtin(s: &Scenario) -> String {
    let b = &s.builtin;
    let lines = match b.mode {
        BuiltinMode::Echo => vec![
            "builtin echo server on a free loopback port".to_string(),
            "every message comes back unchanged".to_string(),
        ],
        BuiltinMode::Broadcast => vec![
            "builtin broadcast server (rooms) on a free loopback port".to_string(),
            "every connection starts in room lobby; {\"op\":\"join\",\"room\":NAME} moves it,"
                .to_string(),
            "answered {\"op\":\"joined\",\"room\":NAME,\"members\":N}; every other message"
                .to_string(),
            "goes to the other members of the sender's room".to_string(),
        ],
        BuiltinMode::Push => vec![
            format!(
                "builtin push server on a free loopback port, {}/s of {} to every connection",
                b.push_rate.per_second,
                Size(b.push_size as u64)
            ),
            "from its upgrade on: {\"seq\":N,\"ts\":µs,\"pad\":\"x…\"}; what a connection sends is echoed"
                .to_string(),
        ],
    };
    lines.join(&format!("\n{:14}", ""))
}

/// The lines of the settings that are set, each `  name        what`.
pub(super) fn lines(s: &Scenario) -> String {
    let mut out = String::new();
    let mut line = |name: &str, what: String| {
        let _ = writeln!(out, "  {name:<11} {what}");
    };
    if let Some(d) = &s.data {
        let rows = s.feeder.as_ref().map(|f| (f.rows(), f.columns.join(", ")));
        let (n, columns) = rows.map_or(("?".to_string(), String::new()), |(r, c)| {
            (r.to_string(), format!(", columns {c}"))
        });
        let how = match d.mode {
            DataMode::Sequential => format!("sequential: connection i gets row i mod {n}"),
            DataMode::Random => "random: each connection a random row (seeded)".to_string(),
            DataMode::Unique => "unique: connection i gets row i, never shared".to_string(),
        };
        line(
            "data",
            format!("{} ({n} rows{columns}), {how}", d.file.display()),
        );
    }
    if let Compression::Deflate(o) = &s.compression {
        let mut params = Vec::new();
        if let Some(b) = o.client_max_window_bits {
            params.push(format!("client_max_window_bits {b}"));
        }
        if let Some(b) = o.server_max_window_bits {
            params.push(format!("server_max_window_bits {b}"));
        }
        if o.client_no_context_takeover {
            params.push("client_no_context_takeover".to_string());
        }
        if o.server_no_context_takeover {
            params.push("server_no_context_takeover".to_string());
        }
        let params = if params.is_empty() {
            String::new()
        } else {
            format!(" with {}", params.join(", "))
        };
        line("compression", format!("permessage-deflate offered{params}"));
    }
    if let Some(t) = tls(s) {
        line("tls", t);
    }
    if !s.subprotocols.is_empty() {
        line(
            "subprotocol",
            format!("offered, in order: {}", s.subprotocols.join(", ")),
        );
    }
    if let Some(p) = s.ping {
        line(
            "ping",
            format!(
                "every {:?} on every connection, its pong timed as metric ping",
                p.every
            ),
        );
    }
    if let Some(d) = &s.delivery {
        let unit = match d.unit {
            TimeUnit::S => "s",
            TimeUnit::Ms => "ms",
            TimeUnit::Us => "µs",
            TimeUnit::Ns => "ns",
        };
        line(
            "delivery",
            format!(
                "metric delivery = receive time − the unix time in {unit} at field {} of every received message",
                d.field
            ),
        );
    }
    if let Some(q) = &s.sequence {
        let streams = match &q.key {
            Some(k) => format!("one stream per value of field {k}"),
            None => "one stream per connection".to_string(),
        };
        line(
            "sequence",
            format!(
                "field {} counts each stream up by one ({streams}): gaps, repeats and \
                 reordering count as messages.lost, .duplicate, .reordered",
                q.field
            ),
        );
    }
    if let Some(f) = &s.fanout {
        let room = match f.column {
            Some(_) => format!("the room in {} of its data row", f.room),
            None => format!("room {}", f.room),
        };
        line(
            "fanout",
            format!(
                "each connection is in {room} while open; every paced send is expected at the \
                 other members (messages.fanout_expected, delivery.ratio)"
            ),
        );
    }
    if s.backlog != DEFAULT_BACKLOG {
        line(
            "backlog",
            if s.backlog == 0 {
                "0: a message no step is waiting for is dropped (counted unmatched)".to_string()
            } else {
                format!(
                    "{} messages no step is waiting for kept per connection for the next expect",
                    s.backlog
                )
            },
        );
    }
    if let Some(f) = s.fragment {
        line(
            "fragment",
            format!("messages sent in frames of at most {f} bytes"),
        );
    }
    if let Some(r) = &s.reconnect {
        line(
            "reconnect",
            format!(
                "a dropped connection opens again, up to {} times, waiting {:?} doubling to {:?}{}",
                r.max,
                r.backoff.0,
                r.backoff.1,
                if r.jitter { ", jittered" } else { "" }
            ),
        );
    }
    if s.close.code != 1000 || !s.close.reason.is_empty() {
        line(
            "close",
            format!(
                "code {} {:?} when the run ends",
                s.close.code, s.close.reason
            ),
        );
    }
    if !s.source_ips.is_empty() {
        line(
            "source ips",
            format!("{} local addresses, round-robin", s.source_ips.len()),
        );
    }
    out
}

/// The `tls` line: for a `wss://` target, or settings no target uses.
fn tls(s: &Scenario) -> Option<String> {
    let wss = matches!(&s.target, Target::Url(u) if u.tls);
    let t = &s.tls;
    if !wss {
        return (*t != TlsSettings::default())
            .then(|| "settings given but unused: the target is not wss://".to_string());
    }
    let mut parts = vec![if t.insecure {
        "wss, the server's certificate NOT checked (insecure: testing only)".to_string()
    } else {
        "wss, the server's certificate verified against the webpki roots".to_string()
    }];
    if let Some(ca) = &t.ca {
        parts.push(format!(
            "CA file {} trusted too (its certificates also pinned: a server presenting one is accepted)",
            ca.display()
        ));
    }
    if let Some(cert) = &t.cert {
        let key = t
            .key
            .as_ref()
            .map_or(String::new(), |k| format!(", key {}", k.display()));
        parts.push(format!("client certificate {}{key}", cert.display()));
    }
    if let Some(n) = &t.server_name {
        parts.push(format!("server name {n}"));
    }
    Some(parts.join("; "))
}
