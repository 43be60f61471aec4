//! Hostile files and inputs against the client side: cases of the
//! hardening issue that concern `barrage run` and `barrage check`, on real
//! files and the real binary. Memory cases are in hostile_memory.rs (they
//! read this process's peak RSS, so they run in a test binary of their own).

mod common;

use barrage::scenario::parse;

/// Medium 3: what goes into the upgrade request as written (origin,
/// subprotocols, header values, the target URL) must not carry line breaks
/// or control characters: exit 2 naming the file, line and field.
#[test]
fn control_characters_that_would_forge_the_upgrade_request_are_refused() {
    let base = "name: crlf\ntarget: ws://127.0.0.1:9/\nconnections: { count: 1 }\n\
                phases:\n  - { name: p, duration: 1s, rate: 1/s }\n";
    for (extra, field) in [
        ("origin: \"http://a\\r\\nX-Injected: 1\"\n", "origin"),
        (
            "subprotocols: [\"chat\\r\\nX-Injected: 1\"]\n",
            "subprotocols",
        ),
        ("subprotocols: [\"chat v1\"]\n", "subprotocols"),
        ("headers: { X-A: \"a\\0b\" }\n", "headers"),
        ("headers: { X-A: \"a\\rX-Injected: 1\" }\n", "headers"),
    ] {
        let yaml = format!("{base}{extra}");
        let e = parse("crlf.yaml", &yaml).unwrap_err();
        assert_eq!(e.line, 6, "{extra}: {e}");
        assert!(e.to_string().contains(field), "{extra}: {e}");
    }
    let e = parse(
        "crlf.yaml",
        &base.replace("ws://127.0.0.1:9/", "\"ws://127.0.0.1:9/a b\""),
    )
    .unwrap_err();
    assert!(e.to_string().contains("percent-encode"), "{e}");
    // The binary: exit 2, nothing run, for the file and for --target.
    let dir = tempfile::tempdir().unwrap();
    let f = common::write_scenario(
        dir.path(),
        "s.yaml",
        &format!("{base}origin: \"http://a\\r\\nX-Injected: 1\"\n"),
    );
    let o = common::run_bin(&["check", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let f = common::write_scenario(dir.path(), "ok.yaml", base);
    let o = common::run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--target",
        "ws://127.0.0.1:9/x\r\nX-Injected: 1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--target"));
}

/// Peak RSS of the waited-for children of this process so far, in KiB.
fn children_peak_rss_kib() -> u64 {
    // SAFETY: getrusage only fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    u.ru_maxrss as u64
}

/// A small real report to craft from.
async fn real_report(dir: &std::path::Path) -> serde_json::Value {
    let yaml = "name: crafted\ntarget: builtin\nconnections: { count: 2 }\n\
                phases:\n  - { name: p, duration: 500ms, rate: 20/s }\n\
                thresholds: [ \"rtt.p99 < 1s\" ]\n";
    let out = dir.join("real");
    common::run_yaml(yaml, &out).await;
    common::read_report(&out)
}

/// A V2 histogram (uncompressed) with `payload` after its header, its
/// declared payload length `declared`.
fn v2(declared: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x1c84_9313u32.to_be_bytes());
    v.extend_from_slice(&declared.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&3u32.to_be_bytes());
    v.extend_from_slice(&1u64.to_be_bytes());
    v.extend_from_slice(&2u64.to_be_bytes());
    v.extend_from_slice(&1f64.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// `inner` wrapped as V2 + DEFLATE, base64.
fn compressed_b64(inner: &[u8]) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(inner).unwrap();
    let body = z.finish().unwrap();
    let mut v = Vec::new();
    v.extend_from_slice(&0x1c84_9314u32.to_be_bytes());
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(&body);
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// Medium 7: crafted report.json files: huge counts, a histogram declaring
/// a 2 GiB payload, a DEFLATE bomb and an undecodable histogram. `report`,
/// `compare` and `merge` never panic, never allocate what the file
/// declares, refuse what they cannot read with exit 2 naming the file and
/// field, and `compare` fails closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_report_files_are_refused_without_panics_or_huge_allocations() {
    let dir = tempfile::tempdir().unwrap();
    let real = real_report(dir.path()).await;
    let write = |name: &str, v: &serde_json::Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec(v).unwrap()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let base = write("base.json", &real);

    // Counts near 2^62 in two reports: adding them saturates, no panic.
    let mut huge = real.clone();
    let cell = &mut huge["run_data"]["roles"][0]["stages"][1];
    for k in [
        "sent", "paced", "received", "replies", "awaited", "not_sent",
    ] {
        cell[k] = (1u64 << 62).into();
    }
    let huge = write("huge.json", &huge);
    let merged = dir.path().join("merged.json");
    let o = common::run_bin(&["merge", &huge, &huge, "--out", merged.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let cases = [
        ("declared", common_b64(&v2(1 << 31, &[0u8; 16]))),
        ("bomb", compressed_b64(&v2(64 << 20, &vec![0u8; 64 << 20]))),
        (
            "garbage",
            "HISTFAAAACl4nJNpmSzMwMDAzAABMJoRSjPZf4AwJgoyAQBD4gMj".replace('A', "B"),
        ),
    ];
    for (name, b64) in cases {
        let mut bad = real.clone();
        bad["run_data"]["roles"][0]["stages"][1]["histograms"]["rtt"] = b64.clone().into();
        let f = write(&format!("{name}.json"), &bad);
        for args in [
            vec![
                "report",
                f.as_str(),
                "--out",
                dir.path().join(name).to_str().unwrap(),
            ],
            vec!["compare", base.as_str(), f.as_str()],
            vec!["compare", f.as_str(), base.as_str()],
            vec![
                "merge",
                base.as_str(),
                f.as_str(),
                "--out",
                merged.to_str().unwrap(),
            ],
        ] {
            let o = common::run_bin(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{name} {args:?}: {err}");
            assert!(err.contains(&format!("{name}.json")), "{name}: {err}");
            assert!(
                err.contains("histogram") || err.contains("HdrHistogram"),
                "{name}: {err}"
            );
            assert!(err.contains("run_data"), "{name} names no field: {err}");
        }
        // The same in the timeline, which is decoded only when needed.
        let mut bad = real.clone();
        bad["run_data"]["timeline"][0]["histograms"]["rtt"] = b64.into();
        let f = write(&format!("{name}-t.json"), &bad);
        let o = common::run_bin(&["compare", base.as_str(), f.as_str()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name} timeline: {err}");
        assert!(err.contains("run_data.timeline[0]"), "{name}: {err}");
    }
    let peak = children_peak_rss_kib();
    assert!(peak < 200 * 1024, "a child peaked at {peak} KiB");
}

/// Plain base64 of `v`.
fn common_b64(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(v)
}

const QUICK: &str = "name: quick\ntarget: builtin\nconnections: { count: 1 }\n\
                     phases:\n  - { name: p, duration: 300ms, rate: 10/s }\n";

/// Low 10: a report folder that cannot be written is found before the
/// first socket opens: exit 2, nothing run.
#[test]
fn an_unwritable_report_destination_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let f = common::write_scenario(dir.path(), "q.yaml", QUICK);
    let long = dir.path().join("x".repeat(5000));
    let as_dir = dir.path().join("asdir");
    std::fs::create_dir_all(as_dir.join("report.json")).unwrap();
    let file = dir.path().join("plainfile");
    std::fs::write(&file, "x").unwrap();
    for out in [long, as_dir, file.join("sub")] {
        let t0 = std::time::Instant::now();
        let o = common::run_bin(&[
            "run",
            f.to_str().unwrap(),
            "--no-tui",
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", out.display());
        assert!(err.contains("nothing was run"), "{err}");
        // Refused at once, not after the 300 ms run.
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    }
}

/// Low 11: the temp file beside a report is never opened through a planted
/// symlink, and none is left behind.
#[test]
fn a_planted_symlink_at_the_temp_file_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let f = common::write_scenario(dir.path(), "q.yaml", QUICK);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, out.join(".report.json.tmp")).unwrap();
    let o = common::run_bin(&[
        "run",
        f.to_str().unwrap(),
        "--no-tui",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    common::check_report(&out, o.status.code());
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Low 12: deep nesting is refused at once with its line and column; a
/// UTF-8 byte-order mark is accepted.
#[test]
fn deep_nesting_is_refused_quickly_and_a_bom_is_accepted() {
    let deep = format!("{QUICK}x: {}\n", "[".repeat(100_000));
    let t0 = std::time::Instant::now();
    let e = parse("deep.yaml", &deep).unwrap_err();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    assert!(e.to_string().contains("nested deeper than 128"), "{e}");
    assert_eq!((e.line, e.column), (6, 132));
    assert!(parse("bom.yaml", &format!("\u{feff}{QUICK}")).is_ok());
    // Brackets in quotes, comments and words do not count.
    let fine = format!(
        "{QUICK}message: {{ text: '{}' }} # {}\n",
        "[".repeat(500),
        "{".repeat(500)
    );
    assert!(
        parse("fine.yaml", &fine).is_ok(),
        "{:?}",
        parse("fine.yaml", &fine).err()
    );
}

/// Low 13: `--duration 0s` is refused as `duration: 0s` is.
#[test]
fn a_zero_duration_is_refused_on_the_command_line_as_in_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let f = common::write_scenario(dir.path(), "q.yaml", QUICK);
    let o = common::run_bin(&["run", f.to_str().unwrap(), "--duration", "0s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("greater than 0"));
    let e = parse("z.yaml", &QUICK.replace("300ms", "0s")).unwrap_err();
    assert!(e.to_string().contains("greater than 0"), "{e}");
}
