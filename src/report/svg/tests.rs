//! Tests of the axes, lines, gaps, bands and markers of the SVG charts.

use super::*;

#[test]
fn linear_axis_has_round_ticks_covering_the_data() {
    let a = Axis::linear("x", 0.0, 93.0, |v| format!("{v}"));
    assert_eq!(a.ticks.first().unwrap().0, 0.0);
    assert!(a.max >= 93.0 && a.max <= 100.0, "{}", a.max);
    assert!(a.ticks.len() >= 4 && a.ticks.len() <= 7);
}

/// The labels of `a`, in order.
fn labels(a: &Axis) -> Vec<&str> {
    a.ticks.iter().map(|t| t.1.as_str()).collect()
}

#[test]
fn linear_axis_labels_are_distinct_for_a_range_finer_than_its_labels() {
    // Three decimals at most, as report.html's `num` prints: 0 to
    // 0.001 read "0, 0, 0, 0.001, 0.001, 0.001" before.
    let three = |v: f64| {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    let a = Axis::linear("ms", 0.0, 0.001, three);
    assert_eq!(
        labels(&a),
        ["0", "0.0002", "0.0004", "0.0006", "0.0008", "0.001"]
    );
    let a = Axis::linear("ms", 0.0, 0.0012, three);
    let l = labels(&a);
    assert!(l.windows(2).all(|w| w[0] != w[1]), "{l:?}");
    assert!(l.contains(&"0.00025"), "{l:?}");
    // Labels that tell ticks apart are kept as they are.
    let a = Axis::linear("n", 0.0, 12.0, |v| format!("{v}/s"));
    assert_eq!(
        labels(&a),
        ["0/s", "2.5/s", "5/s", "7.5/s", "10/s", "12.5/s"]
    );
    // No float drift in the ticks: 0.1 steps are 0.1 apart exactly as
    // printed.
    let a = Axis::linear("n", 0.0, 0.5, |v| format!("{v}"));
    assert_eq!(labels(&a), ["0", "0.1", "0.2", "0.3", "0.4", "0.5"]);
}

#[test]
fn log_axis_ticks_at_one_two_five_and_widens_to_them() {
    let a = Axis::log("µs", 130.0, 7_000.0, |v| format!("{v}"));
    assert!(a.log);
    assert_eq!(a.min, 100.0);
    assert_eq!(a.max, 10_000.0);
    assert_eq!(
        labels(&a),
        ["100", "200", "500", "1000", "2000", "5000", "10000"]
    );
    let vs: Vec<f64> = a.ticks.iter().map(|t| t.0).collect();
    assert!(vs.windows(2).all(|w| w[0] < w[1]), "{vs:?}");
    // Exact 1-2-5 values are their own ends.
    let a = Axis::log("µs", 0.001, 0.5, |v| format!("{v}"));
    assert_eq!(a.min, 0.001);
    assert_eq!(a.max, 0.5);
    assert_eq!(a.ticks.len(), 9, "{:?}", labels(&a));
}

#[test]
fn log_axis_over_many_decades_ticks_powers_of_ten() {
    let a = Axis::log("µs", 3.0, 2_000_000.0, |v| format!("{v}"));
    assert_eq!(a.min, 1.0);
    assert_eq!(a.max, 10_000_000.0);
    assert_eq!(
        labels(&a),
        [
            "1", "10", "100", "1000", "10000", "100000", "1000000", "10000000"
        ]
    );
    // 1 ns to 1000 s in µs: every second decade.
    let a = Axis::log("µs", 0.001, 1e9, |v| format!("{v:e}"));
    let l = labels(&a);
    assert_eq!(l, ["1e-3", "1e-1", "1e1", "1e3", "1e5", "1e7", "1e9"]);
}

#[test]
fn log_axis_takes_values_that_are_not_positive() {
    for (lo, hi) in [
        (0.0, 0.0),
        (-5.0, 100.0),
        (0.0, f64::NAN),
        (f64::INFINITY, 3.0),
        (10.0, 1.0),
    ] {
        let a = Axis::log("µs", lo, hi, |v| format!("{v}"));
        assert!(
            a.min > 0.0 && a.max > a.min,
            "{lo}..{hi}: {}..{}",
            a.min,
            a.max
        );
        let vs: Vec<f64> = a.ticks.iter().map(|t| t.0).collect();
        assert!(vs.len() >= 2, "{lo}..{hi}: {vs:?}");
        assert!(vs.windows(2).all(|w| w[0] < w[1]), "{lo}..{hi}: {vs:?}");
        let l = labels(&a);
        assert!(l.windows(2).all(|w| w[0] != w[1]), "{l:?}");
    }
    // A 0 is drawn at the bottom, not off the chart.
    let x = Axis::linear("t", 0.0, 10.0, |v| format!("{v}"));
    let y = Axis::log("µs", 1.0, 100.0, |v| format!("{v}"));
    let svg = line_chart(
        "zero",
        &[Series {
            name: "p50".into(),
            color: "red",
            points: vec![(0.0, 0.0), (5.0, -1.0), (10.0, 100.0)],
            dashed: false,
        }],
        &x,
        &y,
    );
    assert!(!svg.contains("inf") && !svg.contains("NaN"), "{svg}");
    assert!(
        svg.contains("points=\"72.0,236.0 381.0,236.0 690.0,34.0\""),
        "{svg}"
    );
    // With a 0: zeros at the bottom, labelled 0, and the smallest tick
    // a gap above them.
    let y = y.with_zero("0");
    assert_eq!(labels(&y)[..2], ["0", "1"]);
    let svg = line_chart(
        "zero",
        &[Series {
            name: "p50".into(),
            color: "red",
            points: vec![(0.0, 0.0), (5.0, 1.0), (10.0, 100.0)],
            dashed: false,
        }],
        &x,
        &y,
    );
    assert!(
        svg.contains("points=\"72.0,236.0 381.0,215.8 690.0,34.0\""),
        "{svg}"
    );
    assert!(
        svg.contains(r#"class="tick" text-anchor="end">0</text>"#),
        "{svg}"
    );
}

#[test]
fn chart_has_one_polyline_per_series() {
    let x = Axis::linear("t", 0.0, 10.0, |v| format!("{v}"));
    let y = Axis::linear("v", 0.0, 5.0, |v| format!("{v}"));
    let series = vec![
        Series {
            name: "a".into(),
            color: "red",
            points: vec![(0.0, 1.0), (10.0, 5.0)],
            dashed: false,
        },
        Series {
            name: "b".into(),
            color: "blue",
            points: vec![(0.0, 2.0)],
            dashed: true,
        },
    ];
    let svg = line_chart("T <1>", &series, &x, &y);
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains("T &lt;1&gt;"));
    assert!(svg.contains("stroke-dasharray"));
}

#[test]
fn a_gap_breaks_the_line_and_a_lone_point_is_a_dot() {
    let x = Axis::linear("t", 0.0, 10.0, |v| format!("{v}"));
    let y = Axis::linear("v", 0.0, 5.0, |v| format!("{v}"));
    let series = [
        Series {
            name: "a".into(),
            color: "red",
            points: vec![
                (1.0, 1.0),
                (2.0, 2.0),
                (3.0, f64::NAN),
                (4.0, 3.0),
                (5.0, f64::NAN),
                (6.0, 1.0),
                (7.0, 1.0),
            ],
            dashed: false,
        },
        Series {
            name: "nothing".into(),
            color: "blue",
            points: vec![(1.0, f64::NAN)],
            dashed: false,
        },
    ];
    let svg = line_chart("gaps", &series, &x, &y);
    assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
    assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
    assert!(!svg.contains("NaN"), "{svg}");
    // A series with nothing to draw has no legend either.
    assert!(!svg.contains(">nothing<"), "{svg}");
}

#[test]
fn overlay_shades_bands_and_marks_moments() {
    let x = Axis::linear("t", 0.0, 30.0, |v| format!("{v}"));
    let y = Axis::linear("v", 0.0, 5.0, |v| format!("{v}"));
    let overlay = Overlay {
        bands: vec![
            Band {
                from: 2.0,
                to: 12.0,
                label: "warmup".into(),
            },
            Band {
                from: 12.0,
                to: 28.0,
                label: "steady <1>".into(),
            },
            // Past the axis: nothing to shade.
            Band {
                from: 31.0,
                to: 40.0,
                label: "late".into(),
            },
        ],
        markers: vec![
            Marker {
                at: 15.0,
                label: "paused".into(),
            },
            Marker {
                at: 15.5,
                label: "×1.10".into(),
            },
            Marker {
                at: 45.0,
                label: "outside".into(),
            },
        ],
    };
    let svg = chart("o", &[], &x, &y, &overlay);
    assert_eq!(svg.matches(r#"class="band""#).count(), 2, "{svg}");
    assert!(svg.contains(r#"class="band-label">warmup</text>"#), "{svg}");
    assert!(svg.contains(">steady &lt;1&gt;</text>"), "{svg}");
    // Alternating tints.
    assert!(
        svg.contains(BAND_TINTS[0]) && svg.contains(BAND_TINTS[1]),
        "{svg}"
    );
    assert_eq!(svg.matches(r#"class="marker""#).count(), 2, "{svg}");
    assert!(svg.contains(">paused</text>") && svg.contains(">×1.10</text>"));
    assert!(!svg.contains("outside") && !svg.contains("late"), "{svg}");
    // The two labels close together are in different rows.
    let y_of = |label: &str| {
        let line = svg.lines().find(|l| l.contains(label)).unwrap();
        line.split("class=\"marker-label\"")
            .next()
            .unwrap()
            .rsplit("y=\"")
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(y_of(">paused<"), y_of(">×1.10<"));
}
