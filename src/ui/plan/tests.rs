use std::path::Path;

use super::*;

/// The plan of `scenarios/NAME.yaml`.
fn plan_of(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.yaml"));
    let s = crate::scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    render(&format!("{name}.yaml"), &s)
}

/// The one line of `plan` that starts (after its indent) with `start`.
fn line<'a>(plan: &'a str, start: &str) -> &'a str {
    let found: Vec<&str> = plan
        .lines()
        .filter(|l| l.trim_start().starts_with(start))
        .collect();
    assert_eq!(found.len(), 1, "one line starting {start:?} in:\n{plan}");
    found[0]
}

fn has_line(plan: &str, start: &str) -> bool {
    plan.lines().any(|l| l.trim_start().starts_with(start))
}

#[test]
fn ticker_push_is_the_push_server_and_a_listen_only_phase() {
    let p = plan_of("ticker-push");
    let target = line(&p, "target");
    assert!(
        target.contains("builtin push server") && target.contains("10/s of 256 B"),
        "{p}"
    );
    assert!(!p.contains("echo server"), "{p}");
    // The flow, not the default message nobody sends.
    assert!(!has_line(&p, "message"), "{p}");
    assert!(has_line(&p, "flow:"), "{p}");
    assert!(
        line(&p, "send text").contains(r#"\"op\":\"subscribe\""#),
        "{p}"
    );
    line(&p, r#"expect contains "subscribe" within 2s"#);
    // The rate paces nothing: no message is expected of it.
    let listen = line(&p, "listen ");
    assert!(listen.contains("listen only"), "{listen}");
    assert!(!listen.contains("expected messages"), "{listen}");
    assert!(
        listen.contains("the server pushes about 100000"),
        "{listen}"
    );
    let total = line(&p, "total");
    assert!(
        total.contains("no paced messages") && total.contains("1000 sent once per connection"),
        "{total}"
    );
    let delivery = line(&p, "delivery");
    assert!(
        delivery.contains("field ts") && delivery.contains("µs"),
        "{delivery}"
    );
    let sequence = line(&p, "sequence");
    assert!(
        sequence.contains("field seq") && sequence.contains("one stream per connection"),
        "{sequence}"
    );
    line(&p, "threshold   messages.lost == 0");
    line(&p, "memory      up to 1000 MiB");
}

#[test]
fn chat_room_shows_each_role_with_its_share_and_flow() {
    let p = plan_of("chat-room");
    assert!(
        line(&p, "target").contains("builtin broadcast server (rooms)"),
        "{p}"
    );
    assert!(p.contains(r#"{"op":"join","room":NAME} moves it"#), "{p}");
    assert!(
        line(&p, "fanout").contains("the room in data.room of its data row"),
        "{p}"
    );
    assert!(!has_line(&p, "message"), "{p}");
    let publisher = line(&p, "publisher");
    assert!(
        publisher.contains("weight 1%: 5 of 500 connections")
            && publisher.contains("paced by the phase rate"),
        "{publisher}"
    );
    let subscriber = line(&p, "subscriber");
    assert!(
        subscriber.contains("weight 99%: 495 of 500 connections")
            && subscriber.contains("no paced loop"),
        "{subscriber}"
    );
    // Each role's flow, under it; the loop's steps further in.
    let lines: Vec<&str> = p.lines().collect();
    let at = lines.iter().position(|l| l.contains("publisher")).unwrap();
    assert!(lines[at + 1].starts_with("      send text"), "{p}");
    assert!(
        lines[at + 2].starts_with("      expect json { op = joined } within 2s"),
        "{p}"
    );
    assert!(
        lines[at + 3].starts_with("      loop, paced by the phase rate"),
        "{p}"
    );
    assert!(
        lines[at + 4].starts_with("        send text") && lines[at + 4].contains("hello room"),
        "{p}"
    );
    assert!(
        line(&p, "warmup").contains("rate 20/s  expected messages 40 from publisher"),
        "{p}"
    );
    assert!(
        line(&p, "steady").contains("expected messages 500 from publisher"),
        "{p}"
    );
    assert!(line(&p, "total").contains("expected messages 540"), "{p}");
    assert!(
        line(&p, "data").contains("data/rooms.csv (7 rows, columns room), sequential"),
        "{p}"
    );
    assert!(
        line(&p, "sequence").contains("one stream per value of field from"),
        "{p}"
    );
    line(&p, "delivery");
}

#[test]
fn login_then_stream_lists_its_flow_and_the_paced_loop() {
    let p = plan_of("login-then-stream");
    assert!(line(&p, "target").contains("builtin echo server"), "{p}");
    line(
        &p,
        r#"expect contains "\"op\":\"login\"" within 2s, capture token from token"#,
    );
    let looped = line(&p, "loop,");
    assert!(looped.contains("paced by the phase rate"), "{looped}");
    let get = p.lines().find(|l| l.contains(r#"\"op\":\"get\""#)).unwrap();
    assert!(get.starts_with("      send text"), "{p}");
    assert!(get.ends_with("(correlate field id), timeout 2s"), "{get}");
    assert!(line(&p, "data").contains("unique"), "{p}");
    let total = line(&p, "total");
    assert!(
        total.contains("expected messages 10500")
            && total.contains("100 more sent once per connection"),
        "{total}"
    );
    assert!(
        !has_line(&p, "sequence") && !has_line(&p, "delivery"),
        "{p}"
    );
}

#[test]
fn quickstart_keeps_the_message_and_expected_messages() {
    let p = plan_of("quickstart");
    assert!(
        line(&p, "target").contains("builtin echo server on a free loopback port"),
        "{p}"
    );
    assert!(
        line(&p, "message").contains(r#"text "{\"conn\":{{conn}}"#),
        "{p}"
    );
    assert!(
        line(&p, "warmup").contains("rate 1000/s  expected messages 1000  (not recorded)"),
        "{p}"
    );
    assert!(
        line(&p, "steady").contains("rate 2000/s  expected messages 10000"),
        "{p}"
    );
    line(&p, "total       6.0s, expected messages 11000");
    line(&p, "connections 100 opened at 500/s, timeout 5s");
    line(&p, "threshold   rtt.p99 < 50ms");
    for absent in [
        "flow:",
        "roles:",
        "data",
        "delivery",
        "sequence",
        "tls",
        "ping",
        "backlog",
        "compression",
    ] {
        assert!(!has_line(&p, absent), "{absent}: {p}");
    }
}

/// A role with a rate of its own, a phase without a rate, and the
/// one-line settings.
const OWN_RATE: &str = r#"
name: own
target: wss://example.test/feed?token=S3CRETQ
headers: { Authorization: "Bearer S3CRET1234" }
tls: { ca: ca.pem, insecure: true }
compression: { method: deflate, client_max_window_bits: 12 }
ping: { every: 5s }
backlog: 0
message: { text: "never sent" }
reconnect: { max: 3, backoff: 100ms..2s }
connections: { count: 10 }
roles:
  writer:
    weight: 3
    rate: 10/s
    flow:
      - send: { text: "hello S3CRET1234" }
      - loop:
          - send: { text: "a", correlate: echo }
          - loop: { count: 2, steps: [ { send: { binary: { size: 16 } } } ] }
          - think: 10ms..20ms
  reader:
    weight: 1
    flow:
      - expect: { regex: "id=(\\d+)", count: 2, timeout: 1s, on_timeout: close, capture: { id: { regex: "id=(\\d+)" } } }
      - ping
      - sleep: 1s
      - close: { code: 4000, reason: bye }
phases:
  - { name: quiet, duration: 2s }
  - { name: busy, duration: 2s, rate: 5/s }
"#;

#[test]
fn own_rates_listen_only_phases_and_settings() {
    let s = crate::scenario::parse("own.yaml", OWN_RATE).unwrap();
    let p = render("own.yaml", &s);
    assert!(
        line(&p, "target").ends_with("wss://example.test/feed?token=<redacted>"),
        "{p}"
    );
    assert!(!p.contains("S3CRET"), "{p}");
    line(
        &p,
        "message     not sent: the send steps of the flow say what is sent",
    );
    let writer = line(&p, "writer");
    assert!(
        writer.contains("weight 75%: 8 of 10 connections") && writer.contains("its own rate 10/s"),
        "{writer}"
    );
    assert!(
        line(&p, "reader").contains("weight 25%: 2 of 10 connections"),
        "{p}"
    );
    line(&p, "loop, paced by the role's rate, until the phases end:");
    line(&p, "loop 2 times:");
    line(&p, "send binary, 16 bytes");
    line(&p, r#"send text "a" (correlate echo)"#);
    line(&p, "think 10ms..20ms");
    line(
        &p,
        r#"expect 2 × regex "id=(\\d+)" within 1s, capture id by regex"#,
    );
    assert!(line(&p, "expect").ends_with(", else close"), "{p}");
    line(&p, "ping (its pong timed as metric ping)");
    line(&p, "sleep 1s");
    line(&p, r#"close (code 4000, "bye"): the flow ends"#);
    // No rate: nothing is paced, the writer's own rate included.
    let quiet = line(&p, "quiet");
    assert!(quiet.contains("listen only"), "{quiet}");
    assert!(!quiet.contains("expected messages"), "{quiet}");
    // The phase rate paces no loop; the writer's rate is its own, and an
    // iteration sends 3 messages.
    let busy = line(&p, "busy");
    assert!(
        busy.contains(
            "rate 5/s unused; writer at its own 10/s: expected messages 60 (20 loop iterations)"
        ),
        "{busy}"
    );
    assert!(
        line(&p, "total").contains("expected messages 60; 8 more sent once per connection"),
        "{p}"
    );
    assert!(
        line(&p, "compression")
            .contains("permessage-deflate offered with client_max_window_bits 12"),
        "{p}"
    );
    let tls = line(&p, "tls");
    assert!(
        tls.contains("NOT checked") && tls.contains("CA file ca.pem") && tls.contains("pinned"),
        "{tls}"
    );
    line(&p, "ping        every 5s on every connection");
    assert!(line(&p, "backlog").starts_with("  backlog     0:"), "{p}");
    assert!(line(&p, "reconnect").contains("up to 3 times"), "{p}");
}

#[test]
fn the_dashboard_title_names_the_server_mode() {
    let mut s = crate::scenario::parse("t.yaml", OWN_RATE).unwrap();
    assert_eq!(target_title(&s), "wss://example.test/feed?token=<redacted>");
    s.target = Target::Builtin;
    assert_eq!(target_title(&s), "builtin echo server");
    s.builtin.mode = BuiltinMode::Broadcast;
    assert_eq!(target_title(&s), "builtin broadcast server (rooms)");
    s.builtin.mode = BuiltinMode::Push;
    s.builtin.push_rate.per_second = 10.0;
    s.builtin.push_size = 256;
    assert_eq!(target_title(&s), "builtin push server (10/s, 256 B)");
}
