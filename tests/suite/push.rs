//! Push streams first class: completeness (`sequence:`) against a Python
//! server that drops, repeats or swaps pushes; `first_message`; messages
//! that come before the flow's `expect` waits (the backlog).

use crate::common;

use common::*;

/// 5 connections each subscribe and get 501 pushes from tests/peers/ws_push.py
/// with `faults`; returns the report.
fn pushed(
    dir: &std::path::Path,
    name: &str,
    faults: &[&str],
    thresholds: &str,
) -> serde_json::Value {
    let mut args = vec!["--count", "501", "--rate", "500"];
    args.extend_from_slice(faults);
    let peer = PythonPeer::script("ws_push.py", &args);
    let f = write_scenario(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "name: {name}\ntarget: ws://127.0.0.1:{}/\nconnections: {{ count: 5, rate: 100/s }}\n\
             sequence: {{ field: seq }}\ndelivery: {{ field: ts, unit: us }}\n\
             flow:\n  - send: {{ text: subscribe }}\n\
             phases: [ {{ name: listen, duration: 3s }} ]\nthresholds: [ {thresholds} ]\n",
            peer.port
        ),
    );
    let out = dir.join(name);
    let o = barrage()
        .arg("run")
        .arg(&f)
        .args(["--no-tui", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let code = o.status.code();
    assert!(matches!(code, Some(0 | 1)), "{o:?}");
    check_report(&out, code);
    read_report(&out)
}

fn counts(r: &serde_json::Value) -> (u64, u64, u64, u64) {
    let m = &r["totals"]["messages"];
    let n = |k: &str| m[k].as_u64().unwrap();
    (n("sequenced"), n("lost"), n("duplicate"), n("reordered"))
}

#[test]
fn lost_duplicate_and_reordered_pushes_are_counted_exactly() {
    if !needs_peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Every 100th dropped: 100..500, 5 a connection.
    let r = pushed(
        dir.path(),
        "drop",
        &["--drop-every", "100"],
        "'messages.lost == 0', 'messages.lost.rate < 2%'",
    );
    assert_eq!(
        counts(&r),
        (5 * 496, 25, 0, 0),
        "{}",
        r["totals"]["messages"]
    );
    assert_eq!(r["verdict"], "fail");
    let t = &r["thresholds"];
    assert_eq!(t[0]["pass"], false, "{t}");
    assert_eq!(t[0]["observed"], 25.0);
    assert_eq!(t[1]["pass"], true, "{t}");
    assert!((t[1]["observed"].as_f64().unwrap() - 25.0 / 2505.0).abs() < 1e-9);
    // Every 100th sent twice.
    let r = pushed(
        dir.path(),
        "dup",
        &["--duplicate-every", "100"],
        "'messages.lost == 0'",
    );
    assert_eq!(
        counts(&r),
        (5 * 506, 0, 25, 0),
        "{}",
        r["totals"]["messages"]
    );
    assert_eq!(r["verdict"], "pass");
    // Neighbours swapped at every 100th: 101 before 100, and so on.
    let r = pushed(
        dir.path(),
        "swap",
        &["--swap-every", "100"],
        "'messages.reordered < 1'",
    );
    assert_eq!(
        counts(&r),
        (5 * 501, 0, 0, 25),
        "{}",
        r["totals"]["messages"]
    );
    assert_eq!(r["verdict"], "fail");
    // Every push was timed, and the first one of each connection too.
    assert_eq!(r["metrics"]["delivery"]["count"], 5 * 501);
    assert_eq!(r["metrics"]["first_message"]["count"], 5);
}

/// A server that answers at once, before the flow's `expect` waits (it
/// sleeps first): the answer is kept and the expect takes it.
#[test]
fn an_answer_that_comes_before_the_expect_is_not_lost() {
    if !needs_peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, backlog: &str| {
        let f = write_scenario(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\ntarget: builtin\nconnections: {{ count: 10, rate: 100/s }}\n{backlog}\
                 flow:\n  - send: {{ text: login }}\n  - sleep: 300ms\n  - expect: {{ contains: login, timeout: 1s }}\n\
                 phases: [ {{ name: p, duration: 2s }} ]\nthresholds: [ 'errors.timeout == 0' ]\n"
            ),
        );
        let out = dir.path().join(name);
        let o = barrage()
            .arg("run")
            .arg(&f)
            .args(["--no-tui", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        check_report(&out, o.status.code());
        read_report(&out)
    };
    let r = run("kept", "");
    assert_eq!(r["verdict"], "pass", "{}", r["thresholds"]);
    let m = &r["totals"]["messages"];
    assert_eq!(
        (m["received"].as_u64(), m["unmatched"].as_u64()),
        (Some(10), Some(0)),
        "{m}"
    );
    // Without a backlog the answer is unmatched and the expect times out.
    let r = run("none", "backlog: 0\n");
    assert_eq!(r["verdict"], "fail");
    let m = &r["totals"]["messages"];
    assert_eq!(m["unmatched"], 10, "{m}");
    assert_eq!(r["totals"]["errors"]["timeout"], 10);
}

/// A room of 50 on tests/peers/ws_room.py: one publisher at 100/s, every
/// message expected at the 49 others. Intact, every delivery arrives;
/// when the server loses one member after 250 messages, the ratio drops
/// to what that member missed: (250 × 49 + (M − 250) × 48) / (M × 49).
#[test]
fn the_delivery_ratio_shows_a_member_the_room_lost() {
    if !needs_peers() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, server: &[&str]| {
        let peer = PythonPeer::script("ws_room.py", server);
        let f = write_scenario(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\ntarget: ws://127.0.0.1:{}/\nconnections: {{ count: 50, rate: 1000/s }}\n\
                 delivery: {{ field: ts, unit: us }}\nsequence: {{ field: seq, key: from }}\n\
                 fanout: {{ room: lobby }}\n\
                 roles:\n\
                 \x20 publisher:\n    weight: 2%\n    flow:\n\
                 \x20     - send: {{ json: {{ op: join }} }}\n\
                 \x20     - expect: {{ json: {{ op: joined }}, timeout: 2s }}\n\
                 \x20     - loop:\n\
                 \x20         - send: {{ text: '{{\"from\":{{{{conn}}}},\"seq\":{{{{seq}}}},\"ts\":{{{{now_us}}}}}}' }}\n\
                 \x20 subscriber:\n    weight: 98%\n    flow:\n\
                 \x20     - send: {{ json: {{ op: join }} }}\n\
                 \x20     - expect: {{ json: {{ op: joined }}, timeout: 2s }}\n\
                 phases: [ {{ name: room, duration: 5s, rate: 100/s }} ]\n\
                 thresholds: [ 'delivery.ratio > 99.9%' ]\n",
                peer.port
            ),
        );
        let out = dir.path().join(name);
        let o = barrage()
            .arg("run")
            .arg(&f)
            .args(["--no-tui", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        check_report(&out, o.status.code());
        read_report(&out)
    };
    let ratio = |r: &serde_json::Value| {
        let m = &r["totals"]["messages"];
        m["delivered"].as_f64().unwrap() / m["fanout_expected"].as_f64().unwrap()
    };
    let r = run("intact", &[]);
    let m = r["totals"]["messages"].clone();
    let sent = r["phases"][0]["messages"]["paced"].as_f64().unwrap();
    assert!(sent >= 490.0, "{m}");
    assert_eq!(m["fanout_expected"].as_f64().unwrap(), sent * 49.0, "{m}");
    // Every delivery but those still on their way when the run ended.
    assert!(ratio(&r) > 0.999, "{m}");
    assert_eq!(r["verdict"], "pass", "{}", r["thresholds"]);
    let r = run("lost", &["--evict-after", "250"]);
    let m = r["totals"]["messages"].clone();
    let sent = r["phases"][0]["messages"]["paced"].as_f64().unwrap();
    let want = (250.0 * 49.0 + (sent - 250.0) * 48.0) / (sent * 49.0);
    assert!(
        (ratio(&r) - want).abs() < 0.002,
        "ratio {} want {want}: {m}",
        ratio(&r)
    );
    assert_eq!(r["verdict"], "fail");
    assert_eq!(
        m["lost"], 0,
        "the member lost all of them: no gap in its stream"
    );
}
