//! Whole-file parsing tests.

use std::time::Duration;

use super::*;

/// Parses `text` expecting failure; returns the Display string.
fn err(text: &str) -> String {
    parse("s.yaml", text).unwrap_err().to_string()
}

const HEAD: &str = "name: x\ntarget: builtin\nconnections:\n  count: 2\n";

const FULL: &str = r#"# a complete scenario
name: steady echo
target: ws://127.0.0.1:9001/echo
connections:
  count: 100
  rate: 500/s
  timeout: 5s
phases:
  - name: warmup
    duration: 10s
    rate: 50/s
    record: false
  - name: steady
    duration: 1m
    rate: 2.5/s
  - name: flat-out
    duration: 1500ms
    rate: max
    inflight: 4
message:
  text: '{"c":{{ conn }},"s":{{seq}},"p":"{{random 8}}"}'
thresholds:
  - rtt.p99 < 50ms
  - rtt.p99.9 <= 100ms
  - errors.rate < 1%
"#;

#[test]
fn valid_full_file() {
    let s = parse("full.yaml", FULL).unwrap();
    assert_eq!(s.name, "steady echo");
    let Target::Url(url) = &s.target else {
        panic!("expected a URL target, got {:?}", s.target);
    };
    assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 9001));
    assert_eq!(url.path_and_query, "/echo");
    assert_eq!(s.connections.count, 100);
    assert_eq!(s.connections.rate.per_second, 500.0);
    assert_eq!(s.connections.timeout, Duration::from_secs(5));
    assert_eq!(s.phases.len(), 3);
    let names: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["warmup", "steady", "flat-out"]);
    assert!(!s.phases[0].record);
    assert!(s.phases[1].record);
    assert_eq!(
        s.phases[1].rate,
        PhaseRate::PerSecond(Rate { per_second: 2.5 })
    );
    assert_eq!(s.phases[1].inflight, 1);
    assert_eq!(s.phases[2].rate, PhaseRate::Max);
    assert_eq!(s.phases[2].inflight, 4);
    assert_eq!(s.phases[2].duration, Duration::from_millis(1500));
    assert_eq!(s.total_duration(), Duration::from_millis(71_500));
    assert_eq!(Scenario::expected_messages(&s.phases[0]), Some(500));
    assert_eq!(Scenario::expected_messages(&s.phases[1]), Some(150));
    assert_eq!(Scenario::expected_messages(&s.phases[2]), None);
    let Message::Text(t) = &s.message else {
        panic!("expected a text message");
    };
    let mut out = Vec::new();
    let vars = TemplateVars::basic(7, 3, 0);
    t.render(&vars, &mut fastrand::Rng::with_seed(1), &mut out);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with(r#"{"c":7,"s":3,"p":""#), "{out}");
    assert_eq!(out.len(), r#"{"c":7,"s":3,"p":"12345678"}"#.len());
    let exprs: Vec<&str> = s.thresholds.iter().map(|t| t.expr.as_str()).collect();
    assert_eq!(
        exprs,
        ["rtt.p99 < 50ms", "rtt.p99.9 <= 100ms", "errors.rate < 1%"]
    );
    assert_eq!(s.thresholds[2].metric, ThresholdMetric::ErrorRate);
}

#[test]
fn defaults_apply() {
    let s = parse(
        "d.yaml",
        &format!("{HEAD}phases:\n  - {{name: a, duration: 2s, rate: 10}}\n"),
    )
    .unwrap();
    assert_eq!(s.target, Target::Builtin);
    assert_eq!(s.connections.rate.per_second, 1000.0);
    assert_eq!(s.connections.timeout, Duration::from_secs(10));
    assert!(s.thresholds.is_empty());
    assert_eq!(Scenario::expected_messages(&s.phases[0]), Some(20));
    match &s.message {
        Message::Text(t) => assert_eq!(t.source(), DEFAULT_TEMPLATE),
        other => panic!("expected default text message, got {other:?}"),
    }
}

#[test]
fn binary_message() {
    let text = format!(
        "{HEAD}phases:\n  - {{name: a, duration: 2s, rate: max}}\nmessage:\n  binary: {{size: 1KiB}}\n"
    );
    let s = parse("b.yaml", &text).unwrap();
    assert!(
        matches!(s.message, Message::Binary { size: 1024 }),
        "{:?}",
        s.message
    );
    let e = err(&format!(
        "{HEAD}phases:\n  - {{name: a, duration: 2s, rate: max}}\nmessage:\n  binary: {{size: 65MiB}}\n"
    ));
    assert!(
        e.starts_with("s.yaml:8:18: message.binary.size: must be between 1 and"),
        "{e}"
    );
}

#[test]
fn an_echoed_binary_message_must_fit_max_message_size() {
    let e = err(&format!(
        "{HEAD}phases:\n  - {{name: a, duration: 2s, rate: max}}\nmessage:\n  binary: {{size: 2MiB}}\n"
    ));
    assert!(
        e.starts_with("s.yaml:8:3: message.binary.size: a binary message of 2 MiB is echoed back, but max_message_size is 1 MiB"),
        "{e}"
    );
    let ok = format!(
        "{HEAD}max_message_size: 2MiB\nphases:\n  - {{name: a, duration: 2s, rate: max}}\nmessage:\n  binary: {{size: 2MiB}}\n"
    );
    assert!(parse("s.yaml", &ok).is_ok());
    // In a flow, only a send whose echo is awaited must fit.
    let flow = |correlate: &str| {
        format!(
            "{HEAD}phases:\n  - {{name: a, duration: 2s, rate: max}}\n\
             flow:\n  - loop:\n      - send: {{ binary: {{ size: 3MiB }}, correlate: {correlate} }}\n"
        )
    };
    let e = err(&flow("echo"));
    assert!(
        e.contains("flow: a binary message of 3 MiB is echoed back"),
        "{e}"
    );
    assert!(parse("s.yaml", &flow("none")).is_ok());
}

#[test]
fn syntax_error_has_location_and_no_field() {
    let e = err("name: x\ntarget: builtin\n  connections: 1\n");
    assert_eq!(
        e,
        "s.yaml:3:14: mapping values are not allowed in this context"
    );
    let e = parse("s.yaml", "name: x\n\tbad: 1\n").unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (2, None));
}

#[test]
fn unknown_key_names_key_and_allowed() {
    let e = err(&format!("{}phases: []\n", HEAD.replace("count", "cuont")));
    assert_eq!(
        e,
        "s.yaml:4:3: connections.cuont: unknown field `cuont`, expected one of `count`, `rate`, `timeout`, `lifetime`"
    );
}

#[test]
fn count_zero_is_rejected() {
    let e = err(&format!(
        "{}phases: []\n",
        HEAD.replace("count: 2", "count: 0")
    ));
    assert_eq!(
        e,
        "s.yaml:4:10: connections.count: must be at least 1, got 0"
    );
}

#[test]
fn bad_rate_unit_in_second_phase() {
    let text = format!(
        "{HEAD}phases:\n  - name: a\n    duration: 1s\n    rate: 5/s\n  - name: b\n    duration: 1s\n    rate: 10/x\n"
    );
    let e = err(&text);
    assert!(e.starts_with("s.yaml:11:11: phases[1].rate: "), "{e}");
    assert!(e.contains("unknown rate unit \"/x\""), "{e}");
}

#[test]
fn bad_threshold_is_located() {
    let text = format!(
        "{HEAD}phases:\n  - {{name: a, duration: 1s, rate: max}}\nthresholds:\n  - rtt.p99 < 50ms\n  - rtt.p99 < 50\n"
    );
    let e = err(&text);
    assert!(e.starts_with("s.yaml:9:5: thresholds[1]: "), "{e}");
    assert!(e.contains("needs a duration unit"), "{e}");
}

#[test]
fn phase_rules() {
    let p = |body: &str| err(&format!("{HEAD}phases:\n{body}"));
    // inflight after a numeric rate: reported at inflight.
    let e = p("  - name: a\n    duration: 1s\n    rate: 5/s\n    inflight: 2\n");
    assert_eq!(
        e,
        "s.yaml:9:15: phases[0].inflight: inflight applies only to rate: max"
    );
    // inflight before a numeric rate: reported at rate.
    let e = p("  - name: a\n    inflight: 2\n    duration: 1s\n    rate: 5\n");
    assert_eq!(
        e,
        "s.yaml:9:11: phases[0].rate: inflight applies only to rate: max"
    );
    let e = p("  - {name: a, duration: 1s, rate: max, inflight: 0}\n");
    assert!(
        e.contains("phases[0].inflight: must be at least 1, got 0"),
        "{e}"
    );
    let e = p("  - {name: a, duration: 1s, rate: 1}\n  - {name: a, duration: 1s, rate: 1}\n");
    assert!(
        e.starts_with("s.yaml:7:12: phases[1].name: duplicate phase name \"a\""),
        "{e}"
    );
    let e = p("  - {name: a, duration: 10, rate: 1}\n");
    assert!(
        e.contains("phases[0].duration: ") && e.contains("add a unit: ms, s, m"),
        "{e}"
    );
    let e = p("  - {name: a, duration: 0s, rate: 1}\n");
    assert!(
        e.contains("phases[0].duration: must be greater than 0"),
        "{e}"
    );
    let e = p("  - {name: a, rate: 1}\n");
    assert!(e.contains("phases[0]: missing field `duration`"), "{e}");
    let e = p("  - {name: a, duration: 1s, rate: 1, speed: 2}\n");
    assert!(
        e.contains("phases[0].speed: unknown field `speed`, expected one of"),
        "{e}"
    );
    let e = err(&format!("{HEAD}phases: []\n"));
    assert_eq!(e, "s.yaml:5:9: phases: must list at least one phase");
}

#[test]
fn other_field_errors() {
    let e = err(&format!(
        "{}phases: []\n",
        HEAD.replace("builtin", "http://h/")
    ));
    assert!(
        e.starts_with("s.yaml:2:9: target: unsupported scheme"),
        "{e}"
    );
    let e = err("name: ''\ntarget: builtin\n");
    assert_eq!(e, "s.yaml:1:7: name: must not be empty");
    let e = err("name: x\n");
    assert!(e.contains("missing field `target`"), "{e}");
    let tail = "phases:\n  - {name: a, duration: 1s, rate: 1}\n";
    let e = err(&format!("{HEAD}{tail}message: {{}}\n"));
    assert!(e.contains("message: set one of text or binary"), "{e}");
    let e = err(&format!("{HEAD}{tail}message: {{text: 'x {{{{seq'}}\n"));
    assert!(
        e.contains("message.text: unbalanced \"{{\" at byte offset 2"),
        "{e}"
    );
    let e = err(&format!("{HEAD}  timeout: 10\n{tail}"));
    assert!(e.contains("connections.timeout: bare number 10"), "{e}");
}

#[test]
fn empty_file_and_missing_file() {
    assert_eq!(
        err("# nothing\n\n"),
        "s.yaml:1:1: the file is empty; a scenario needs at least name, target, connections and phases"
    );
    let e = load(std::path::Path::new("/nonexistent/x.yaml")).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.line, e.field.as_deref()),
        ("/nonexistent/x.yaml", 0, None)
    );
    assert!(
        e.to_string()
            .starts_with("/nonexistent/x.yaml: cannot read scenario file")
    );
}

#[test]
fn load_reads_file() {
    let path = std::env::temp_dir().join(format!("barrage-scen-{}.yaml", std::process::id()));
    std::fs::write(&path, FULL).unwrap();
    let result = load(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(result.unwrap().phases.len(), 3);
}

#[test]
fn a_threshold_scoped_to_an_unknown_phase_is_located() {
    let yaml = "name: s\ntarget: builtin\nconnections: { count: 1 }\nphases:\n  - { name: steady, duration: 1s, rate: 1/s }\nthresholds:\n  - rtt.p99 < 1s\n  - warm: rtt.p99 < 1s\n";
    let e = super::parse("s.yaml", yaml).unwrap_err().to_string();
    assert!(
        e.starts_with("s.yaml:8:5: thresholds[1]: no phase named \"warm\""),
        "{e}"
    );
}

#[test]
fn rate_ramps_parse_and_refuse() {
    let phase = |rate: &str| {
        parse(
            "s.yaml",
            &format!("{HEAD}phases:\n  - {{name: a, duration: 10s, rate: {rate}}}\n"),
        )
        .map(|s| s.phases[0].clone())
    };
    let p = phase("1000/s..20000/s").unwrap();
    assert_eq!(
        p.rate,
        PhaseRate::Ramp {
            from: 1000.0,
            to: 20_000.0
        }
    );
    assert_eq!(Scenario::expected_messages(&p), Some(105_000));
    assert_eq!(p.rate.at(0.5), Some(10_500.0));
    assert_eq!(p.rate.to_string(), "1000/s..20000/s");
    assert_eq!(
        phase("0/s..60/m").unwrap().rate,
        PhaseRate::Ramp { from: 0.0, to: 1.0 }
    );
    assert_eq!(
        phase("100/s..100/s").unwrap().rate,
        PhaseRate::PerSecond(Rate { per_second: 100.0 })
    );
    for bad in ["0/s..0/s", "100/s..x", "100/x..200/s", "-5/s..10/s"] {
        let e = phase(bad).unwrap_err().to_string();
        assert!(
            e.starts_with("s.yaml:6:") && e.contains("phases[0].rate"),
            "{bad}: {e}"
        );
    }
}

/// Parses `text` with the environment `vars` (never the process's: tests
/// run side by side).
fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<Scenario, ScenarioError> {
    let owned: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let env = move |n: &str| owned.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    parse_with_env("s.yaml", text, Path::new(""), &env)
}

const ENV_EVERYWHERE: &str = r#"name: "${env:T_NAME}"
target: ${env:T_URL}
connections: { count: 2, rate: 10/s }
origin: "https://${env:T_HOST}"
subprotocols: [ "${env:T_PROTO}" ]
tls: { ca: "${env:T_DIR}/ca.pem", server_name: "${env:T_HOST}" }
headers: { X-Trace: "id-${env:T_TRACE}" }
flow:
  - send: { text: "login ${env:T_MSG} $${env:NOT_ME}" }
  - expect: { contains: "${env:T_REPLY}", timeout: 2s }
phases:
  - { name: "${env:T_PHASE}", duration: 1s, rate: 1/s }
"#;

const ENV_VARS: [(&str, &str); 10] = [
    ("T_NAME", "envname"),
    (
        "T_URL",
        "ws://127.0.0.1:9/p?room=r00mS3CRET&token=t0kS3CRET",
    ),
    ("T_HOST", "api.example"),
    ("T_PROTO", "chat.v2"),
    ("T_DIR", "/etc/certs"),
    ("T_TRACE", "tr4ceS3CRET"),
    ("T_MSG", "m3ssageS3CRET"),
    ("T_REPLY", "r3plyS3CRET"),
    ("T_PHASE", "phaseS3CRET"),
    ("UNUSED", "never"),
];

#[test]
fn env_is_substituted_in_every_string() {
    let s = parse_env(ENV_EVERYWHERE, &ENV_VARS).unwrap();
    assert_eq!(s.name, "envname");
    let Target::Url(u) = &s.target else {
        panic!("{:?}", s.target)
    };
    assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9));
    assert_eq!(s.origin.as_deref(), Some("https://api.example"));
    assert_eq!(s.subprotocols, ["chat.v2"]);
    assert_eq!(s.tls.ca.as_deref(), Some(Path::new("/etc/certs/ca.pem")));
    assert_eq!(s.tls.server_name.as_deref(), Some("api.example"));
    assert_eq!(
        s.headers.0,
        [("X-Trace".to_string(), "id-tr4ceS3CRET".to_string())]
    );
    assert_eq!(s.phases[0].name, "phaseS3CRET");
    let flow = s.flow.as_ref().unwrap();
    let Step::Send(SendStep {
        message: Message::Text(t),
        ..
    }) = &flow[0]
    else {
        panic!("{flow:?}")
    };
    // `$${` is a literal `${`.
    assert_eq!(t.source(), "login m3ssageS3CRET ${env:NOT_ME}");
    let Step::Expect(e) = &flow[1] else {
        panic!("{flow:?}")
    };
    assert!(
        matches!(&e.matcher, Matcher::Contains(c) if c == "r3plyS3CRET"),
        "{e:?}"
    );
}

#[test]
fn env_values_are_secrets_but_the_target_host() {
    let s = parse_env(ENV_EVERYWHERE, &ENV_VARS).unwrap();
    let shown = s
        .env_secrets
        .target("ws://127.0.0.1:9/p?room=r00mS3CRET&token=t0kS3CRET");
    assert_eq!(shown, "ws://127.0.0.1:9/p?room=<redacted>&token=<redacted>");
    for secret in ["tr4ceS3CRET", "m3ssageS3CRET", "r3plyS3CRET", "phaseS3CRET"] {
        let r = s.env_secrets.redact(&format!("a {secret} b"));
        assert_eq!(r, "a <redacted> b");
    }
    // Short values are withheld where they are the whole string.
    assert_eq!(s.env_secrets.redact("envname"), "<redacted>");
    assert_eq!(s.env_secrets.redact("never"), "never");
    // The report's copy of the file: the spellings stay (they name
    // variables), values and the env target's query values do not.
    let copy = protocol::redact_with_env(
        &format!("{ENV_EVERYWHERE}# tr4ceS3CRET r00mS3CRET m3ssageS3CRET\n"),
        &s,
        &|n| {
            ENV_VARS
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        },
    );
    for secret in ["tr4ceS3CRET", "r00mS3CRET", "m3ssageS3CRET"] {
        assert!(!copy.contains(secret), "{secret} in {copy}");
    }
    assert!(copy.contains("text: \"login ${env:T_MSG}"), "{copy}");
    // The plan `barrage check` prints.
    let plan = crate::ui::plan::render("s.yaml", &s);
    for secret in [
        "m3ssageS3CRET",
        "r3plyS3CRET",
        "phaseS3CRET",
        "r00mS3CRET",
        "t0kS3CRET",
    ] {
        assert!(!plan.contains(secret), "{secret} in {plan}");
    }
    assert!(plan.contains("ws://127.0.0.1:9/p"), "{plan}");
}

#[test]
fn env_errors_name_file_line_and_field() {
    let e = parse_env(ENV_EVERYWHERE, &ENV_VARS[1..]).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (1, Some("name")), "{e}");
    assert!(e.message.contains("T_NAME is not set"), "{e}");
    let missing_url: Vec<_> = ENV_VARS
        .iter()
        .copied()
        .filter(|(k, _)| *k != "T_URL")
        .collect();
    let e = parse_env(ENV_EVERYWHERE, &missing_url).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (2, Some("target")), "{e}");
    assert!(e.to_string().starts_with("s.yaml:2:"), "{e}");
    let e = parse_env(
        &ENV_EVERYWHERE.replace("${env:T_MSG} $${env:NOT_ME}", "${env:T_MSG"),
        &ENV_VARS,
    )
    .unwrap_err();
    assert_eq!(e.line, 9, "{e}");
    assert!(e.field.as_deref().unwrap().starts_with("flow"), "{e}");
    assert!(e.message.contains("unclosed"), "{e}");
    let e = parse_env(
        &ENV_EVERYWHERE.replace("${env:T_MSG}", "${T_MSG}"),
        &ENV_VARS,
    )
    .unwrap_err();
    assert!(e.message.contains("${env:NAME}"), "{e}");
    // The target is validated as the URL it becomes, and the error
    // withholds the value.
    let mut bad = ENV_VARS;
    bad[1] = ("T_URL", "http://h0stS3CRET/");
    let e = parse_env(ENV_EVERYWHERE, &bad).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (2, Some("target")), "{e}");
    assert!(!e.message.contains("h0stS3CRET"), "{e}");
    assert!(e.message.contains("${env:T_URL}"), "{e}");
    // So is a subprotocol.
    let mut bad = ENV_VARS;
    bad[3] = ("T_PROTO", "not a token");
    let e = parse_env(ENV_EVERYWHERE, &bad).unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert!(!e.message.contains("not a token\""), "{e}");
}

#[test]
fn env_is_read_once_at_load() {
    // A value with `${` in it is not substituted again.
    let s = parse_env(
        "name: x\ntarget: builtin\nconnections: { count: 1 }\nmessage: { text: \"${env:A}\" }\nphases: [ { name: a, duration: 1s, rate: 1/s } ]\n",
        &[("A", "${env:B}")],
    )
    .unwrap();
    let Message::Text(t) = &s.message else {
        panic!()
    };
    assert_eq!(t.source(), "${env:B}");
}
