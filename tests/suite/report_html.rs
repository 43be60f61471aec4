//! report.html from a real run: self-contained, charts present, and rendered
//! by a real browser (headless Chromium) into a screenshot.

use crate::common;

use common::run_yaml;

use common::needs;

use std::process::Command;

fn chromium(args: &[&str], profile: &std::path::Path) -> std::process::Output {
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

/// Every `<svg>` chart of `html`, from its start tag to its end.
fn charts(html: &str) -> Vec<&str> {
    html.split("<svg")
        .skip(1)
        .map(|c| c.split("</svg>").next().unwrap())
        .collect()
}

/// The chart titled `title`.
fn chart<'a>(html: &'a str, title: &str) -> Option<&'a str> {
    charts(html)
        .into_iter()
        .find(|c| c.contains(&format!(r#"class="title">{title}</text>"#)))
}

/// Every chart draws something (a line or a dot), and its y-axis labels
/// are distinct.
fn assert_no_empty_chart(html: &str) {
    for c in charts(html) {
        assert!(
            c.contains("<polyline") || c.contains("<circle"),
            "empty chart: {c}"
        );
        let labels: Vec<&str> = c
            .lines()
            .filter(|l| l.contains(r#"class="tick" text-anchor="end""#))
            .filter_map(|l| l.rsplit("\">").next()?.strip_suffix("</text>"))
            .collect();
        assert!(labels.len() >= 2, "{labels:?} in {c}");
        let mut distinct = labels.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), labels.len(), "y labels {labels:?} in {c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_is_self_contained_and_renders_in_a_browser() {
    if !needs("chromium", "chromium") {
        return;
    }
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
    assert_no_empty_chart(&html);
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

/// A delivery-only run (scenarios/ticker-push.yaml, small): no rtt sample,
/// only `delivery`. Its page has a delivery chart and no empty one, and its
/// "received" line counts the deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_report_of_a_delivery_only_run_has_no_empty_chart() {
    if !needs("chromium", "chromium") {
        return;
    }
    let yaml = r#"
name: html-delivery
target: builtin
builtin: { mode: push, push_rate: 10/s }
connections: { count: 20, rate: 1000/s }
delivery: { field: ts, unit: us }
flow:
  - send: { json: { op: subscribe, symbols: [ "BRG" ] } }
  - expect: { contains: subscribe, timeout: 2s }
phases:
  - { name: listen, duration: 3s, rate: 1/s }
thresholds: [ "delivery.count > 100" ]
"#;
    let dir = tempfile::tempdir().unwrap();
    let o = run_yaml(yaml, &dir.path().join("out")).await;
    let r = &o.report;
    assert_eq!(r.metrics["rtt"].count, 0, "a delivery-only run");
    assert!(
        r.metrics["delivery"].count > 100,
        "{:?}",
        r.metrics["delivery"]
    );
    let delivered: u64 = r.timeline.iter().map(|p| p.delivered).sum();
    assert_eq!(delivered, r.totals.messages.delivered);
    assert!(delivered > 100, "{delivered} delivered");

    let html_path = o.report_path.with_file_name("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_no_empty_chart(&html);
    let delivery = chart(&html, "delivery over time").expect("a delivery chart");
    assert!(delivery.contains("delivery, log scale"), "{delivery}");
    assert!(
        chart(&html, "rtt over time").is_none(),
        "an rtt chart without rtt"
    );
    // The phase is shaded and named on the charts over time.
    assert!(
        delivery.contains(r#"class="band-label">listen</text>"#),
        "{delivery}"
    );
    // The received line (green) leaves the bottom of the chart (y 236).
    let messages = chart(&html, "Messages per second").expect("a messages chart");
    let received: Vec<f64> = messages
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains(r##"stroke="#10ac84""##))
        .flat_map(|l| {
            l.split("points=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches("\"/>")
                .split(' ')
        })
        .map(|xy| xy.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(received.iter().any(|y| *y < 200.0), "received {received:?}");

    // The browser's DOM has every chart.
    let svgs = html.matches("<svg").count();
    let profile = dir.path().join("profile");
    let url = format!("file://{}", html_path.display());
    let dom = chromium(&["--dump-dom", &url], &profile);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(
        dom.matches("<svg").count(),
        svgs,
        "the browser's DOM has every chart"
    );
}
