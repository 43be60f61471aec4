//! `-v`, `-vv` and `RUST_LOG`: connection events logged to stderr by the
//! binary, nothing without them.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::*;

const BUILTIN: &str = "name: verbose\ntarget: builtin\n\
     connections: { count: 3, rate: 1000/s, timeout: 2s }\n\
     phases:\n  - { name: p, duration: 500ms, rate: 20/s }\n";

/// Runs the scenario `yaml` with `flags` (and `RUST_LOG` as given, unset
/// otherwise), progress lines off.
fn run(dir: &Path, yaml: &str, flags: &[&str], rust_log: Option<&str>) -> Output {
    let f = write_scenario(dir, "s.yaml", yaml);
    let out = dir.join("out");
    let mut cmd = barrage();
    cmd.args(["run", f.to_str().unwrap(), "--no-tui", "--quiet"])
        .args(["--out", out.to_str().unwrap()])
        .args(flags)
        .env_remove("RUST_LOG");
    if let Some(v) = rust_log {
        cmd.env("RUST_LOG", v);
    }
    cmd.output().expect("barrage runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The log lines (fmt's level column) in `text`.
fn log_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            [" WARN ", " INFO ", " DEBUG ", " TRACE ", " ERROR "]
                .iter()
                .any(|lv| l.contains(lv))
        })
        .collect()
}

#[test]
fn v_logs_each_failed_connect_with_its_connection_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("ws://127.0.0.1:{}/", closed_port());
    let o = run(dir.path(), BUILTIN, &["--target", &target, "-v"], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    let failed: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("connection failed"))
        .collect();
    assert_eq!(failed.len(), 3, "one line per connection:\n{err}");
    for id in 0..3 {
        assert!(
            failed.iter().any(|l| l.contains(&format!("conn={id} "))),
            "conn={id} in\n{err}"
        );
    }
    assert!(
        failed.iter().all(|l| l.contains("kind=\"connect\"")
            && l.contains("reason=connect:")
            && l.contains("refused")),
        "{err}"
    );
    // Plain text for a pipe.
    assert!(!err.contains('\x1b'), "{err}");
    // -v is not -vv.
    assert!(!err.contains("DEBUG"), "{err}");

    // Without -v (and no RUST_LOG): the same run logs nothing.
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), BUILTIN, &["--target", &target], None);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(log_lines(&err).is_empty(), "{err}");
    assert!(!err.contains("conn="), "{err}");
}

#[test]
fn vv_adds_each_open_and_close_and_v_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), BUILTIN, &["-vv"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    for id in 0..3 {
        for what in ["connection open", "connection closed"] {
            assert!(
                err.lines().any(|l| l.contains("DEBUG")
                    && l.contains(what)
                    && l.contains(&format!("conn={id} "))),
                "{what} conn={id} in\n{err}"
            );
        }
    }
    assert!(
        err.contains("run starting") && err.contains("run ended"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), BUILTIN, &["-v"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("connection open"), "{err}");
    assert!(!err.contains("connection closed"), "{err}");
    // The run's start and end are -v's.
    assert!(
        err.contains("run starting") && err.contains("run ended"),
        "{err}"
    );
}

#[test]
fn rust_log_wins_over_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), BUILTIN, &[], Some("barrage=debug"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.lines()
            .any(|l| l.contains("DEBUG") && l.contains("connection open")),
        "{err}"
    );
    // Set to nothing of barrage's, it silences -vv.
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), BUILTIN, &["-vv"], Some("off"));
    assert_eq!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(log_lines(&err).is_empty(), "{err}");
}

/// The shard processes of `--processes` log as the parent was asked to;
/// their lines come out through the parent, marked with the shard.
#[test]
fn shard_processes_are_given_the_verbosity() {
    let dir = tempfile::tempdir().unwrap();
    let target = format!("ws://127.0.0.1:{}/", closed_port());
    let o = run(
        dir.path(),
        BUILTIN,
        &["--target", &target, "--processes", "2", "-v"],
        None,
    );
    let err = stderr(&o);
    for shard in ["[shard 0/2]", "[shard 1/2]"] {
        assert!(
            err.lines().any(|l| l.starts_with(shard)
                && l.contains("connection failed")
                && l.contains("conn=")),
            "{shard} in\n{err}"
        );
    }
}
