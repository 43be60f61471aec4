//! Bad scenarios, as a table: each is refused before anything runs, with a
//! message naming the file, line, column, field and what is allowed.

use barrage::scenario::parse;

/// A valid scenario whose lines the cases replace.
const BASE: &str = "name: v
target: builtin
connections: { count: 2 }
phases:
  - { name: p, duration: 1s, rate: 10/s }
";

/// `BASE` with `line` (1-based) replaced, or `extra` appended.
fn with(line: Option<(usize, &str)>, extra: &str) -> String {
    let mut lines: Vec<String> = BASE.lines().map(String::from).collect();
    if let Some((n, text)) = line {
        lines[n - 1] = text.to_string();
    }
    format!("{}\n{extra}", lines.join("\n"))
}

#[test]
fn every_bad_field_is_named_with_its_place_and_what_is_allowed() {
    let cases: Vec<(String, &str)> = vec![
        (
            with(Some((3, "connections: { count: 0 }")), ""),
            "v.yaml:3:23: connections.count: must be at least 1",
        ),
        (
            with(Some((5, "  - { name: p, duration: 0s, rate: 10/s }")), ""),
            "greater than 0",
        ),
        (
            with(Some((5, "  - { name: p, duration: 1s, rate: 0/s }")), ""),
            "v.yaml:5:",
        ),
        (
            with(Some((5, "  - { name: p, duration: 10, rate: 10/s }")), ""),
            "has no unit",
        ),
        (with(None, "thresholds:\n  - rtt.p101 < 5ms\n"), "v.yaml:7:"),
        (
            with(None, "thresholds:\n  - latency.p99 < 5ms\n"),
            "latency",
        ),
        (with(None, "thresholds:\n  - rtt.p0 < 5ms\n"), "v.yaml:7:"),
        (
            with(None, "message: { text: '{{nope}}' }\n"),
            "unknown variable \"nope\"",
        ),
        (with(None, "message: { text: 'a {{seq' }\n"), "unbalanced"),
        (
            with(None, "flow:\n  - send: { text: '{{token}}' }\n"),
            "unknown variable \"token\"",
        ),
        (with(None, "flow:\n  - jump: 3\n"), "unknown variant `jump`"),
        (
            with(None, "flow:\n  - think: 5s..1s\n"),
            "upper end is below the lower",
        ),
        (
            with(
                None,
                "flow:\n  - send: { text: x, correlate: { regex: 'no group' } }\n",
            ),
            "needs a capture group",
        ),
        (
            with(None, "flow:\n  - loop: [ { loop: [ ping ] } ]\n"),
            "cannot be inside another loop",
        ),
        (
            with(None, "flow:\n  - close\n  - ping\n"),
            "no steps may follow it",
        ),
        (
            with(None, "data: { file: nowhere.csv }\n"),
            "cannot read nowhere.csv",
        ),
        (
            with(None, "compression: gzip\n"),
            "unknown compression \"gzip\"",
        ),
        (
            with(
                None,
                "compression: { method: deflate, client_max_window_bits: 8 }\n",
            ),
            "from 9 to 15",
        ),
        (with(None, "close: { code: 1005 }\n"), "may not be sent"),
        (with(None, "headers: { Host: x }\n"), "set by barrage"),
        (
            with(
                None,
                "headers: { X-Secret: '${env:BARRAGE_SURELY_UNSET_VAR}' }\n",
            ),
            "BARRAGE_SURELY_UNSET_VAR is not set",
        ),
        (
            with(None, "reconnect: { backoff: 5s..1s }\n"),
            "not above the longest",
        ),
        (
            with(None, "roles: { a: { weight: 0, flow: [ ping ] } }\n"),
            "greater than 0",
        ),
        (
            with(
                None,
                "roles: { a: { weight: 1, flow: [ ping ] } }\nflow: [ ping ]\n",
            ),
            "not both",
        ),
        (
            with(None, "delivery: { field: ts, unit: minutes }\n"),
            "unknown variant `minutes`",
        ),
        (with(None, "max_message_size: 10\n"), "between 125 and"),
    ];
    let mut wrong = Vec::new();
    for (yaml, expected) in cases {
        let e = match parse("v.yaml", &yaml) {
            Ok(_) => {
                wrong.push(format!("accepted:\n{yaml}"));
                continue;
            }
            Err(e) => e.to_string(),
        };
        let line: usize = e
            .split(':')
            .nth(1)
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        if !e.contains(expected) || !e.starts_with("v.yaml:") || line == 0 {
            wrong.push(format!("got: {e}\nwanted: {expected}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn a_csv_missing_a_column_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.csv"), "user,plan\nann,free\nbob\n").unwrap();
    let yaml = format!("{BASE}data: {{ file: u.csv }}\n");
    let e = barrage::scenario::parse_at("v.yaml", &yaml, dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("v.yaml:6:") && e.contains("u.csv:3:") && e.contains("missing column plan"),
        "{e}"
    );
}
