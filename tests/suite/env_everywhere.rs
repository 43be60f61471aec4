//! `${env:NAME}` works in every string of a scenario, not only in headers:
//! a target from the environment is validated as the URL it becomes and
//! run against, a message from the environment is what is sent. The
//! values stay out of everything barrage prints and writes, but the
//! target's host and path (a target is shown; its query values are not).
//! The variables are given to a child process, never set in this one.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use barrage::server;
use common::*;

/// The message sent, from `${env:BARRAGE_T_MSG}`.
const MSG: &str = "m3ssage-from-env-S3CRET";

/// A query value of the target from `${env:BARRAGE_T_URL}`.
const QUERY: &str = "qu3ryS3CRET";

const SCENARIO: &str = "name: env-everywhere\n\
target: ${env:BARRAGE_T_URL}\n\
connections: { count: 2, rate: 1000/s }\n\
message: { text: \"${env:BARRAGE_T_MSG}\" }\n\
phases:\n  - { name: steady, duration: 300ms, rate: 20/s }\n";

/// Fails when `text` holds the message or the target's query value.
fn assert_clean(what: &str, text: &str) {
    for s in [MSG, QUERY] {
        assert!(!text.contains(s), "{what} holds {s}:\n{text}");
    }
}

/// Every file under `dir`, searched as bytes; returns how many.
fn assert_dir_clean(dir: &Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files += assert_dir_clean(&path);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_clean(
            &path.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
        files += 1;
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_and_message_from_env_run_and_stay_unshown() {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server = server::start(listen, server::Mode::Echo.into())
        .await
        .unwrap();
    let port = server.local_addr.port();
    let url = format!("ws://127.0.0.1:{port}/echo?room={QUERY}");
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "env.yaml", SCENARIO);
    let out = dir.path().join("out");
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_barrage"))
        .args(["run", file.to_str().unwrap(), "--json-lines", "--no-tui"])
        .arg("--out")
        .arg(&out)
        .env("BARRAGE_T_URL", &url)
        .env("BARRAGE_T_MSG", MSG)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_clean("run stdout", &stdout);
    assert_clean("run stderr", &stderr);
    assert!(assert_dir_clean(&out) >= 2, "no report files in {out:?}");

    let report = read_report(&out);
    let totals = &report["totals"]["messages"];
    let sent = totals["sent"].as_u64().unwrap();
    assert!(sent > 0, "{report}");
    assert_eq!(totals["received"].as_u64(), Some(sent), "{report}");
    // The target is shown, its query value is not.
    assert_eq!(
        report["scenario"]["target"].as_str(),
        Some(format!("ws://127.0.0.1:{port}/echo?room=<redacted>").as_str()),
    );
    // The copy of the file names the variables.
    let source = report["scenario"]["source"].as_str().unwrap();
    assert!(source.contains("${env:BARRAGE_T_MSG}"), "{source}");

    // `barrage check` validates the substituted target and shows it so.
    let o = barrage()
        .args(["check", file.to_str().unwrap()])
        .env("BARRAGE_T_URL", &url)
        .env("BARRAGE_T_MSG", MSG)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("ws://127.0.0.1:{port}/echo?room=<redacted>")),
        "{stdout}"
    );
    assert_clean("check stdout", &stdout);
    assert_clean("check stderr", &String::from_utf8_lossy(&o.stderr));
    server.shutdown().await;
}

#[test]
fn an_unset_variable_in_the_target_is_exit_2_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_scenario(dir.path(), "env.yaml", SCENARIO);
    for args in [vec!["check"], vec!["run", "--no-tui"]] {
        let cmd = args[0];
        let o = barrage()
            .args(&args)
            .arg(&file)
            .env_remove("BARRAGE_T_URL")
            .env("BARRAGE_T_MSG", MSG)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("env.yaml:2:") && stderr.contains("target: "),
            "{cmd}: {stderr}"
        );
        assert!(
            stderr.contains("BARRAGE_T_URL is not set"),
            "{cmd}: {stderr}"
        );
        assert_clean(&format!("{cmd} stderr"), &stderr);
        assert_clean(
            &format!("{cmd} stdout"),
            &String::from_utf8_lossy(&o.stdout),
        );
    }
    // A target that is not a URL once substituted: the same error as
    // written, the value withheld.
    let o = barrage()
        .args(["check", file.to_str().unwrap()])
        .env("BARRAGE_T_URL", format!("http://h/?x={QUERY}"))
        .env("BARRAGE_T_MSG", MSG)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("env.yaml:2:") && stderr.contains("${env:BARRAGE_T_URL}"),
        "{stderr}"
    );
    assert_clean("check stderr", &stderr);
}
