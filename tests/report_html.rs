//! report.html from a real run: self-contained, charts present, and rendered
//! by a real browser (headless Chromium) into a screenshot.

mod common;

use common::run_yaml;

use common::ensure_installed;

use std::process::Command;

fn chromium(args: &[&str], profile: &std::path::Path) -> std::process::Output {
    ensure_installed("chromium", "chromium");
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_is_self_contained_and_renders_in_a_browser() {
    let yaml = r#"
name: html-test
target: builtin
connections: { count: 20, rate: 1000/s }
phases:
  - { name: warmup, duration: 1s, rate: 200/s, record: false }
  - { name: steady, duration: 2s, rate: 500/s }
thresholds: [ "rtt.p99 < 5s", "rtt.max < 1ns" ]
"#;
    let dir = tempfile::tempdir().unwrap();
    let o = run_yaml(yaml, &dir.path().join("out")).await;
    let html_path = o.report_path.with_file_name("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();

    // Self-contained: no scripts, no external resources.
    assert!(!html.contains("<script"));
    assert!(
        !html.contains("src=") && !html.contains("href="),
        "external reference in the page"
    );
    assert!(!html.contains("@import") && !html.contains("url("));
    // The charts and tables the report promises.
    for want in [
        "Messages per second",
        "rtt over time",
        "Open connections",
        "Errors per interval",
        "rtt: latency by percentile",
        "connect: latency by percentile",
        "99.999%",
        "rtt.max &lt; 1ns",
        "FAIL",
        "steady",
    ] {
        assert!(html.contains(want), "missing {want:?}");
    }
    let svgs = html.matches("<svg").count();
    assert!(svgs >= 7, "{svgs} charts");
    assert!(html.matches("<polyline").count() >= 10);

    // A real browser renders it: the DOM keeps the SVG charts, and a
    // screenshot is produced.
    let profile = dir.path().join("profile");
    let url = format!("file://{}", html_path.display());
    let dom = chromium(&["--dump-dom", &url], &profile);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("<svg").count(),
        svgs,
        "the browser's DOM has every chart"
    );
    let shot = dir.path().join("report.png");
    let out = chromium(
        &[
            "--window-size=1280,2000",
            &format!("--screenshot={}", shot.display()),
            &url,
        ],
        &profile,
    );
    let meta = std::fs::metadata(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(meta.len() > 20_000, "screenshot of {} bytes", meta.len());
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
