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
