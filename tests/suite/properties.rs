//! Property tests (proptest) for the parsers and the frame codec: units,
//! templates, thresholds, and WebSocket frames encoded by one end and decoded
//! by the other. Arbitrary input must give a value or an error, never a panic.
//! The fuzz targets in fuzz/ push the same parsers further (not run in CI).

use std::time::Duration;

use barrage::scenario::{
    CmpOp, LatencyMetric, Stat, Template, TemplateVars, Threshold, ThresholdMetric, parse,
    parse_duration, parse_rate, parse_size,
};
use barrage::ws::codec::opcode;
use barrage::ws::deflate::{DeflateParams, Deflater, Inflater, Role};
use barrage::ws::{Decoder, Encoder, Event, encode_raw};
use proptest::prelude::*;

/// Cases per property: enough to find edge cases, small enough that the
/// whole file runs in a few seconds in a debug build. `PROPTEST_CASES=N`
/// runs more for a deeper search.
const CASES: u32 = 256;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig::with_cases(cases)
}

/// Strings that look like what a user types: digits, dots, unit letters,
/// signs and separators, plus the occasional arbitrary Unicode string.
fn unit_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9. ]{0,6}(ns|us|µs|ms|s|m|h|d|B|b|KiB|kib|MiB|KB|MB|GB|GiB|/s|/m|/h|/x|%|e9|inf|NaN|-)?[ 0-9]{0,2}",
        any::<String>(),
    ]
}

// ---------------------------------------------------------------- units

/// Duration units under test with their length in nanoseconds.
const DURATION_UNITS: [(&str, u128); 4] = [
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

proptest! {
    #![proptest_config(config())]

    /// `{n}{unit}` is exactly n units; past u64 nanoseconds (584 years) it
    /// is an error that says so, never a wrapped or saturated value.
    #[test]
    fn duration_of_whole_units(n in any::<u32>(), unit in 0..DURATION_UNITS.len()) {
        let (suffix, nanos_per) = DURATION_UNITS[unit];
        let text = format!("{n}{suffix}");
        let nanos = u128::from(n) * nanos_per;
        match u64::try_from(nanos) {
            Ok(nanos) => prop_assert_eq!(parse_duration(&text), Ok(Duration::from_nanos(nanos))),
            Err(_) => {
                let e = parse_duration(&text).unwrap_err();
                prop_assert!(e.contains("too large"), "{}: {}", text, e);
            }
        }
    }

    /// Small values: the same duration written in each unit, with spaces.
    #[test]
    fn duration_units_agree(n in 0u32..100_000) {
        let secs = Duration::from_secs(u64::from(n));
        prop_assert_eq!(parse_duration(&format!("{}ms", u64::from(n) * 1000)), Ok(secs));
        prop_assert_eq!(parse_duration(&format!(" {n} s ")), Ok(secs));
        prop_assert_eq!(
            parse_duration(&format!("{n}m")),
            Ok(Duration::from_secs(u64::from(n) * 60))
        );
    }

    /// `{n}{unit}` is n times the unit, whatever the unit's case.
    #[test]
    fn size_of_whole_units(
        n in any::<u32>(),
        unit in prop::sample::select(vec![
            ("B", 1u64), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30),
            ("KB", 1000), ("MB", 1_000_000), ("GB", 1_000_000_000),
        ]),
        lower in any::<bool>(),
    ) {
        let (suffix, factor) = unit;
        let suffix = if lower { suffix.to_ascii_lowercase() } else { suffix.to_string() };
        let expected = usize::try_from(u64::from(n) * factor).unwrap();
        prop_assert_eq!(parse_size(&format!("{n}{suffix}")), Ok(expected));
        prop_assert_eq!(parse_size(&format!("{n} {suffix}")), Ok(expected));
        // A bare number is bytes.
        prop_assert_eq!(parse_size(&n.to_string()), Ok(n as usize));
    }

    /// `{n}/s` (and a bare n) is n per second within the accepted 1e9/s;
    /// above it, an error.
    #[test]
    fn rate_per_second(n in 1u32..) {
        let parsed = parse_rate(&format!("{n}/s"));
        if n <= 1_000_000_000 {
            prop_assert_eq!(parsed.unwrap().per_second, f64::from(n));
            prop_assert_eq!(parse_rate(&n.to_string()).unwrap().per_second, f64::from(n));
            prop_assert_eq!(parse_rate(&format!("{n}/m")).unwrap().per_second, f64::from(n) / 60.0);
            prop_assert_eq!(parse_rate(&format!("{n}/h")).unwrap().per_second, f64::from(n) / 3600.0);
        } else {
            prop_assert!(parsed.is_err());
        }
    }

    /// Arbitrary strings: a value or an error, never a panic; whatever is
    /// accepted is in range.
    #[test]
    fn units_never_panic(s in unit_like()) {
        let _ = parse_duration(&s);
        let _ = parse_size(&s);
        if let Ok(rate) = parse_rate(&s) {
            prop_assert!(rate.per_second.is_finite() && rate.per_second > 0.0, "{}: {:?}", s, rate);
        }
    }
}

// ---------------------------------------------------------------- templates

/// Renders `t` with fixed variables and a seeded generator.
fn render(t: &Template, conn: u64, seq: u64, now_ns: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rng = fastrand::Rng::with_seed(1);
    t.render(&TemplateVars::basic(conn, seq, now_ns), &mut rng, &mut out);
    out
}

/// The words of `s`, as choices for a strategy.
fn words(s: &'static str) -> Vec<&'static str> {
    s.split_whitespace().collect()
}

/// Text with no `{{` in it: arbitrary Unicode, or text dense in braces and
/// JSON punctuation (single `{`, `}` and `}}` are all literal).
fn literal_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), r#"[a-z{}":, 0-9\n]{0,40}"#]
        .prop_filter("no {{ in literal text", |s| !s.contains("{{"))
}

/// Templates biased towards tags, half-open tags and arguments.
fn template_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(" ".to_string()),
        prop::sample::select(words(
            "conn seq now_us now_ns shard role random data.user x-y \
             1 0 4096 1048576 1048577 99999999999999999999 -1 é",
        ))
        .prop_map(str::to_string),
        "[a-z0-9]{1,4}",
    ];
    prop_oneof![
        prop::collection::vec(piece, 0..16).prop_map(|v| v.concat()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Text without `{{` is all literal: it compiles and renders to itself.
    #[test]
    fn literal_template_renders_itself(s in literal_text(), seq in any::<u64>()) {
        let t = Template::compile(&s).unwrap();
        prop_assert_eq!(render(&t, 1, seq, 2), s.as_bytes());
        prop_assert_eq!(t.max_static_len(), s.len());
        prop_assert_eq!(t.source(), s.as_str());
    }

    /// `{{seq}}` (with any spacing inside the braces) between literal text
    /// renders as the decimal sequence number.
    #[test]
    fn seq_renders_decimal(
        prefix in literal_text(),
        suffix in literal_text(),
        pad in prop::sample::select(vec![("", ""), (" ", " "), ("  ", ""), ("\t", "\n")]),
        seq in any::<u64>(),
        conn in any::<u64>(),
    ) {
        let (before, after) = pad;
        let text = format!("{prefix}{{{{{before}seq{after}}}}}{suffix}");
        let t = Template::compile(&text).unwrap();
        let expected = format!("{prefix}{seq}{suffix}");
        prop_assert_eq!(String::from_utf8(render(&t, conn, seq, 0)).unwrap(), expected);
    }

    /// `{{random N}}` renders exactly N ASCII alphanumerics.
    #[test]
    fn random_renders_n_alphanumerics(n in 1usize..=4096, seed in any::<u64>()) {
        let t = Template::compile(&format!("<{{{{random {n}}}}}>")).unwrap();
        prop_assert_eq!(t.max_static_len(), n + 2);
        let mut out = Vec::new();
        t.render(&TemplateVars::basic(0, 0, 0), &mut fastrand::Rng::with_seed(seed), &mut out);
        prop_assert_eq!(out.len(), n + 2);
        prop_assert_eq!(out[0], b'<');
        prop_assert_eq!(out[n + 1], b'>');
        prop_assert!(out[1..=n].iter().all(u8::is_ascii_alphanumeric));
    }

    /// Arbitrary text: compile and compile_open return a value or an error;
    /// whatever compiles renders without panicking, to at least its literal
    /// length, and `compile` accepts nothing that `compile_open` refuses.
    #[test]
    fn templates_never_panic(s in template_like(), conn in any::<u64>(), seq in any::<u64>()) {
        let open = Template::compile_open(&s);
        let closed = Template::compile(&s);
        if closed.is_ok() {
            prop_assert!(open.is_ok());
        }
        for t in [open, closed].into_iter().flatten() {
            let out = render(&t, conn, seq, u64::MAX);
            prop_assert!(out.len() >= t.max_static_len());
        }
    }
}

// ---------------------------------------------------------------- thresholds

/// A valid scenario whose only threshold is `expr` (a YAML double-quoted
/// string, written as JSON, which YAML reads the same way).
fn scenario_with_threshold(expr: &str) -> String {
    let quoted = serde_json::to_string(expr).unwrap();
    format!(
        "name: p\ntarget: builtin\nconnections:\n  count: 2\n\
         phases:\n  - {{name: steady, duration: 1s, rate: 10/s}}\n\
         thresholds:\n  - {quoted}\n"
    )
}

const LATENCY_METRICS: [(&str, LatencyMetric); 4] = [
    ("rtt", LatencyMetric::Rtt),
    ("service", LatencyMetric::Service),
    ("connect", LatencyMetric::Connect),
    ("handshake", LatencyMetric::Handshake),
];

const OPS: [(&str, CmpOp); 4] = [
    ("<", CmpOp::Lt),
    ("<=", CmpOp::Le),
    (">", CmpOp::Gt),
    (">=", CmpOp::Ge),
];

/// Threshold-ish strings: mostly well-formed pieces in random order and
/// combination, sometimes arbitrary text.
fn threshold_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(words(
            "rtt service tls send_lag errors messages throughput . p99 p0 p100.1 p99.9.9 \
             rate count max received ratio timeout < <= > >= = : steady 50 1.5 ms µs s h % - \
             1e400 \u{0} é",
        )),
        Just(" "),
    ];
    prop_oneof![
        prop::collection::vec(piece, 0..10).prop_map(|v| v.concat()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// `METRIC.pN OP LIMITms` in a scenario parses, keeps the expression as
    /// written and means what it says.
    #[test]
    fn latency_threshold_in_scenario(
        metric in 0..LATENCY_METRICS.len(),
        tenths in 1u32..=1000,
        op in 0..OPS.len(),
        limit_ms in 0u32..=3_600_000,
        spaced in any::<bool>(),
        scoped in any::<bool>(),
    ) {
        let (name, want_metric) = LATENCY_METRICS[metric];
        let (op_text, want_op) = OPS[op];
        let p = f64::from(tenths) / 10.0;
        let sp = if spaced { " " } else { "" };
        let body = format!("{name}.p{p}{sp}{op_text}{sp}{limit_ms}ms");
        let expr = if scoped { format!("steady: {body}") } else { body };

        let s = parse("p.yaml", &scenario_with_threshold(&expr))
            .map_err(|e| TestCaseError::fail(format!("{expr}: {e}")))?;
        prop_assert_eq!(s.thresholds.len(), 1);
        let t = &s.thresholds[0];
        prop_assert_eq!(&t.expr, &expr);
        prop_assert_eq!(t.metric, ThresholdMetric::Latency { metric: want_metric, stat: Stat::Percentile(p) });
        prop_assert_eq!(t.op, want_op);
        prop_assert_eq!(t.limit, f64::from(limit_ms) * 1e6);
        prop_assert_eq!(t.phase.as_deref(), scoped.then_some("steady"));
        // The parsed threshold is the one Threshold::parse gives directly.
        prop_assert_eq!(&Threshold::parse(&expr).unwrap(), t);
    }

    /// Arbitrary threshold text: Ok or Err, never a panic, directly or in a
    /// scenario; an accepted expression is kept trimmed, with a sane limit.
    #[test]
    fn thresholds_never_panic(s in threshold_like()) {
        if let Ok(t) = Threshold::parse(&s) {
            prop_assert_eq!(t.expr.as_str(), s.trim());
            prop_assert!(!t.limit.is_nan(), "{}: {:?}", s, t);
        }
        let _ = parse("p.yaml", &scenario_with_threshold(&s));
    }
}

// ---------------------------------------------------------------- codec

/// Payloads up to 70,000 bytes: random (incompressible), or a short pattern
/// repeated (very compressible, so inflation works hard).
fn binary_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..70_000),
        (prop::collection::vec(any::<u8>(), 1..16), 0usize..70_000)
            .prop_map(|(pat, len)| { pat.iter().copied().cycle().take(len).collect() }),
    ]
}

/// UTF-8 text up to 70,000 bytes, multi-byte characters included, so a
/// fragment boundary can fall inside a character.
fn text_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..17_500)
            .prop_map(|cs| cs.into_iter().collect::<String>().into_bytes()),
        ("[a-zé€😀 ]{1,8}", 0usize..8_000).prop_map(|(s, n)| s.repeat(n).into_bytes()),
    ]
}

/// One message: opcode and payload.
fn message() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        text_payload().prop_map(|p| (opcode::TEXT, p)),
        binary_payload().prop_map(|p| (opcode::BINARY, p)),
    ]
}

/// permessage-deflate parameters as a handshake could agree them.
fn deflate_params() -> impl Strategy<Value = DeflateParams> {
    (
        prop::option::of(9u8..=15),
        prop::option::of(9u8..=15),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(c, s, cnct, snct)| DeflateParams {
            client_max_window_bits: c,
            server_max_window_bits: s,
            client_no_context_takeover: cnct,
            server_no_context_takeover: snct,
        })
}

/// The other end.
fn peer(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Feeds `wire` to `d` in chunks of the given sizes (cycled) and collects
/// the data messages (opcode, payload, wire bytes); control frames are not
/// expected here.
fn decode_all(
    d: &mut Decoder,
    wire: &[u8],
    chunks: &[usize],
) -> Result<Vec<(u8, Vec<u8>, usize)>, String> {
    let mut got = Vec::new();
    let mut rest = wire;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        d.buffer_mut().extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match d.next_event() {
                Ok(None) => break,
                Ok(Some(Event::Message {
                    opcode,
                    payload,
                    wire,
                })) => got.push((opcode, payload.to_vec(), wire)),
                Ok(Some(other)) => return Err(format!("unexpected event {other:?}")),
                Err(e) => return Err(format!("decode error: {e}")),
            }
        }
    }
    Ok(got)
}

/// Drains `d` until it needs more bytes or reports an error; returns false
/// on an error. Checks what every event promises on the way.
fn drain(d: &mut Decoder, max: usize) -> Result<bool, TestCaseError> {
    loop {
        match d.next_event() {
            Ok(None) => return Ok(true),
            Err(_) => return Ok(false),
            Ok(Some(Event::Message {
                opcode: op,
                payload,
                wire,
            })) => {
                prop_assert!(op == opcode::TEXT || op == opcode::BINARY);
                prop_assert!(payload.len() <= max);
                prop_assert!(wire >= 2);
                if op == opcode::TEXT {
                    prop_assert!(std::str::from_utf8(payload).is_ok());
                }
            }
            Ok(Some(Event::Ping(p) | Event::Pong(p))) => prop_assert!(p.len() <= 125),
            Ok(Some(Event::Close { code })) => {
                prop_assert!(matches!(code, 1000..=1003 | 1005 | 1007..=1014 | 3000..=4999));
            }
        }
    }
}

/// A frame-shaped input: any first header byte (FIN, RSV, opcode), masked
/// or not, and a payload; the length field is always consistent, so the
/// decoder gets past the header to reassembly, UTF-8 and inflation.
fn frame_soup() -> impl Strategy<Value = Vec<u8>> {
    let frame = (
        prop_oneof![
            any::<u8>(),
            prop::sample::select(vec![
                0x01u8, 0x02, 0x00, 0x80, 0x81, 0x82, 0xC1, 0xC2, 0x41, 0x88, 0x89, 0x8A
            ])
        ],
        prop::option::of(any::<[u8; 4]>()),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            // Deflate-looking bodies: a stored or fixed-Huffman block start.
            (
                prop::sample::select(vec![0x00u8, 0x01, 0x02, 0x03, 0x04, 0xF2, 0x4A]),
                prop::collection::vec(any::<u8>(), 0..40)
            )
                .prop_map(|(b, mut v)| {
                    v.insert(0, b);
                    v
                }),
        ],
    );
    prop::collection::vec(frame, 0..8).prop_map(|frames| {
        let mut out = Vec::new();
        for (first, mask, payload) in frames {
            encode_raw(&mut out, first, &payload, mask);
        }
        out
    })
}

proptest! {
    #![proptest_config(config())]

    /// Messages encoded by one end (any role, compressed or not, fragmented
    /// or not) and fed to the other end's decoder in arbitrary chunks come
    /// back with the same opcode, payload and wire size, in order, over a
    /// connection's shared compression context.
    #[test]
    fn encode_decode_round_trip(
        messages in prop::collection::vec(message(), 1..4),
        client_sends in any::<bool>(),
        fragment in prop::option::of(1usize..5000),
        compress in prop::option::of(deflate_params()),
        chunks in prop::collection::vec(1usize..100_000, 1..8),
        seed in any::<u64>(),
    ) {
        let sender = if client_sends { Role::Client } else { Role::Server };
        let deflater = compress.as_ref().map(|p| Deflater::new(sender, p));
        let inflater = compress.as_ref().map(|p| Inflater::new(peer(sender), p));
        let mut enc = Encoder::new(sender, deflater, fragment);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut wire = Vec::new();
        let mut sizes = Vec::new();
        for (op, payload) in &messages {
            sizes.push(enc.message(&mut wire, *op, payload, &mut rng).unwrap());
        }
        prop_assert_eq!(sizes.iter().sum::<usize>(), wire.len());

        let mut d = Decoder::with_role(peer(sender), 1 << 20, inflater, Vec::new());
        let got = decode_all(&mut d, &wire, &chunks).map_err(TestCaseError::fail)?;
        prop_assert_eq!(got.len(), messages.len());
        for (i, ((op, payload), (got_op, got_payload, got_wire))) in
            messages.iter().zip(&got).enumerate()
        {
            prop_assert_eq!(op, got_op, "message {}", i);
            prop_assert!(payload == got_payload, "message {} payload differs ({} vs {} bytes)", i, payload.len(), got_payload.len());
            prop_assert_eq!(sizes[i], *got_wire, "message {}", i);
        }
    }

    /// Arbitrary bytes, for either role, with or without an inflater, fed in
    /// arbitrary chunks: events or an error, never a panic, and every event
    /// keeps the decoder's promises (size limit, UTF-8 text, close codes).
    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..2048), frame_soup()],
        server in any::<bool>(),
        deflate in any::<bool>(),
        max in prop::sample::select(vec![0usize, 1, 125, 126, 1000, 64 * 1024]),
        chunks in prop::collection::vec(1usize..512, 1..8),
    ) {
        let role = if server { Role::Server } else { Role::Client };
        let inflater = deflate.then(|| Inflater::new(role, &DeflateParams::default()));
        let mut d = Decoder::with_role(role, max, inflater, Vec::new());
        let mut rest = &bytes[..];
        let mut sizes = chunks.iter().copied().cycle();
        while !rest.is_empty() {
            let n = sizes.next().unwrap().min(rest.len());
            d.buffer_mut().extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if !drain(&mut d, max)? {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------- run data

/// The plan of a two-phase, two-role scenario, as a shard of `shards`.
fn plan_of(shards: u32) -> barrage::report::model::ScenarioInfo {
    let yaml = "name: prop\ntarget: builtin\nconnections: { count: 20 }\n\
                phases:\n  - { name: warm, duration: 1s, rate: 100/s, record: false }\n\
                \x20 - { name: steady, duration: 2s, rate: 200/s }\n\
                roles:\n  a: { weight: 1, flow: [ { loop: [ { send: { text: x } } ] } ] }\n\
                \x20 b: { weight: 1, flow: [ { loop: [ { send: { text: y } } ] } ] }\n\
                thresholds: [ \"rtt.p99 < 5ms\", \"errors.rate < 10%\", \"throughput.ratio > 90%\", \"steady: rtt.p50 < 1ms\" ]\n";
    let mut s = parse("prop.yaml", yaml).unwrap();
    if shards > 1 {
        s.apply_shard(barrage::scenario::ShardSpec {
            index: 0,
            count: shards,
        })
        .unwrap();
    }
    barrage::report::plan(&s, None, "ws://127.0.0.1:1/".into(), None)
}

/// Random run data of one shard of 2 of that scenario: counters and
/// latencies in every role × stage cell, a timeline and control changes.
fn run_data(index: u32) -> impl Strategy<Value = barrage::metrics::RunData> {
    use barrage::metrics::{RunData, Second};
    let cell = (
        prop::collection::vec(0u64..5_000, 8),
        prop::collection::vec(1u64..50_000_000, 0..40),
        0usize..8,
    );
    (
        prop::collection::vec(cell, 6),
        1_700_000_000_000u64..1_700_000_000_500,
        prop::collection::vec((0u64..5, 0u64..100), 1..6),
        prop::option::of((0u64..3000, 0.5f64..2.0, any::<bool>())),
        any::<bool>(),
    )
        .prop_map(move |(cells, start, seconds, change, interrupted)| {
            let names = ["a".to_string(), "b".to_string()];
            let mut d = RunData::new(&names, 2, start);
            for (i, (counts, lat, metric)) in cells.into_iter().enumerate() {
                let st = &mut d.roles[i / 3].stages[i % 3];
                let c = &mut st.counters;
                (c.sent, c.received, c.attempted, c.opened, c.not_sent) =
                    (counts[0], counts[1], counts[2], counts[3], counts[4]);
                c.paced = counts[0] / 2;
                c.awaited = counts[5];
                c.replies = counts[5] / 2;
                c.unanswered = counts[5] - counts[5] / 2;
                c.errors[counts[6] as usize % 7] = counts[7] % 50;
                let m = LatencyMetric::ALL[metric];
                for v in lat {
                    st.record(m, v);
                    st.record(LatencyMetric::Rtt, v / 3);
                }
            }
            for (k, (gap, n)) in seconds.into_iter().enumerate() {
                let mut s = Second {
                    t_ms: (k as u64 + 1) * 1000 + gap,
                    interval_ms: 1000,
                    phase: Some(k % 2),
                    open: n,
                    peak_open: n + 1,
                    ..Second::default()
                };
                s.recorded.sent = n;
                s.unrecorded.sent = n / 2;
                let mut h = barrage::metrics::new_histogram();
                h.record(1000 + n).unwrap();
                s.histograms
                    .insert("rtt".into(), barrage::metrics::encode_histogram(&h));
                d.timeline.push(s);
            }
            if let Some((at_ms, factor, paused)) = change {
                d.control.push(barrage::metrics::ControlChange {
                    at_ms,
                    factor,
                    paused,
                });
            }
            d.facts.elapsed_ms = 3500;
            d.facts.load_started_ms = Some(200);
            d.facts.interrupted = interrupted;
            d.facts.runs = 1;
            d.facts.shards = vec![barrage::scenario::ShardSpec { index, count: 2 }];
            d.roles[0].assigned = 5;
            d.roles[1].assigned = 5;
            d
        })
}

/// The first path at which two JSON values differ, with both sides.
fn json_diff(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .keys()
            .chain(y.keys())
            .find_map(|k| {
                json_diff(
                    &x[k.as_str()],
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{at}.{k}"),
                )
            })
            .or_else(|| (x.len() != y.len()).then(|| format!("{at}: keys differ"))),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| json_diff(p, q, &format!("{at}[{i}]"))),
        _ => (a != b).then(|| format!("{at}: {a} ≠ {b}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(config().cases.min(64)))]

    /// Merging two shards' saved reports (JSON and back, as `barrage
    /// merge` reads them) gives the report of their added run data,
    /// percentiles, thresholds and verdict included.
    #[test]
    fn merge_of_built_reports_is_build_of_added_data(a in run_data(0), b in run_data(1)) {
        use barrage::report::{Report, build, merge::merge};
        let plan = plan_of(2);
        let saved = |d| -> Report {
            let json = serde_json::to_string(&build(&plan, d)).unwrap();
            serde_json::from_str(&json).unwrap()
        };
        let merged = merge(&[saved(&a), saved(&b)]).unwrap();
        let mut sum = a.clone();
        sum.add(&b);
        // What merge adds besides the data: the mark that it was merged.
        sum.facts.merged = true;
        let mut merged_plan = plan.clone();
        merged_plan.connections *= 2;
        merged_plan.connection_rate *= 2.0;
        for p in &mut merged_plan.phases {
            p.rate = p.rate.map(|r| r * 2.0);
        }
        merged_plan.file = None;
        let want = serde_json::to_value(build(&merged_plan, &sum)).unwrap();
        let got = serde_json::to_value(&merged).unwrap();
        prop_assert_eq!(json_diff(&got, &want, ""), None);
        // And the addition is the same either way round.
        let mut other = b.clone();
        other.add(&a);
        other.facts.merged = true;
        let flipped = serde_json::to_value(build(&merged_plan, &other)).unwrap();
        prop_assert_eq!(json_diff(&flipped, &want, ""), None);
    }
}
