//! Secrets never reach what barrage writes or prints: the values of
//! secret-looking headers, however the YAML spells them (plain, quoted,
//! folded, literal, on the next line), header values from `${env:NAME}`,
//! any other value from `${env:NAME}` (here the message sent), and secret
//! query values of the target URL. Every file of the report set
//! (report.json, summary.md, report.html, junit.xml, the .hlog files), the
//! `--json-lines` stream, `barrage check` and `barrage k8s` are searched.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

use barrage::runner::{RunOptions, run};
use barrage::server;
use common::*;
use serde::Deserialize;

/// The variable a header is substituted from.
const ENV_NAME: &str = "BARRAGE_TEST_SECRET";

/// Each YAML spelling of `Authorization: Bearer S3CRET1`.
const SPELLINGS: [(&str, &str); 7] = [
    ("plain", "  Authorization: Bearer S3CRET1\n"),
    ("single", "  Authorization: 'Bearer S3CRET1'\n"),
    ("double", "  Authorization: \"Bearer S3CRET1\"\n"),
    ("folded", "  Authorization: >-\n    Bearer S3CRET1\n"),
    ("literal", "  Authorization: |-\n    Bearer S3CRET1\n"),
    ("next-line", "  Authorization:\n    Bearer S3CRET1\n"),
    (
        "folded-split",
        "  Authorization: >-\n    Bearer\n    S3CRET1\n",
    ),
];

/// A value for [`ENV_NAME`] no other run uses, set once before any test
/// does anything else (so no thread reads the environment meanwhile).
fn env_secret() -> &'static str {
    static VALUE: OnceLock<String> = OnceLock::new();
    VALUE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let v = format!("envS3CRET{}x{nanos}", std::process::id());
        // SAFETY: called first in every test of this binary, before any
        // thread of it reads the environment; no other test sets it.
        unsafe { std::env::set_var(ENV_NAME, &v) };
        v
    })
}

/// What must appear nowhere.
fn secrets() -> Vec<String> {
    vec![
        "S3CRET1".into(),
        "K3YS3CRET".into(),
        "S3CRETQ".into(),
        env_secret().to_string(),
    ]
}

/// A scenario with `spelling` as its Authorization header, an X-Api-Key
/// header, a header and the message from `${env:BARRAGE_TEST_SECRET}`
/// (whose value a comment repeats, as a note left in the file might), and a
/// `?token=` in the target URL on `port`.
fn scenario(label: &str, spelling: &str, port: u16) -> String {
    format!(
        "name: secrets-{label}\n\
         target: ws://127.0.0.1:{port}/echo?room=r1&token=S3CRETQ\n\
         connections: {{ count: 2, rate: 1000/s }}\n\
         message: {{ text: \"hello ${{env:{ENV_NAME}}}\" }}\n\
         phases:\n  - {{ name: steady, duration: 300ms, rate: 20/s }}\n\
         headers:\n{spelling}  X-Api-Key: K3YS3CRET\n  X-Trace: \"${{env:{ENV_NAME}}}\"\n\
         # rotated monthly; last month's was {}\n",
        env_secret()
    )
}

/// Fails naming `what` when `text` holds a secret.
fn assert_clean(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(&s), "{what} holds the secret {s}:\n{text}");
    }
}

/// Every file under `dir` is searched (as bytes, so binary files too).
fn assert_dir_clean(what: &str, dir: &Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files += assert_dir_clean(what, &path);
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_clean(
            &format!("{what}: {}", path.display()),
            &String::from_utf8_lossy(&bytes),
        );
        files += 1;
    }
    files
}

/// An echo server on a free loopback port.
async fn echo_server() -> server::ServerHandle {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    server::start(listen, server::Mode::Echo.into())
        .await
        .unwrap()
}

/// The report's copy of the scenario and its target: redacted, yet still
/// the file (its other fields are there).
fn check_report_json(label: &str, out: &Path) {
    let report = read_report(out);
    let source = report["scenario"]["source"].as_str().unwrap_or_else(|| {
        panic!("{label}: no scenario.source in report.json: {report}");
    });
    assert!(
        source.contains(&format!("secrets-{label}")) && source.contains("<redacted>"),
        "{label}: {source}"
    );
    let target = report["scenario"]["target"].as_str().unwrap();
    assert!(
        target.ends_with("/echo?room=r1&token=<redacted>"),
        "{label}: {target}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_sets_of_runs_hold_no_secret() {
    env_secret();
    let server = echo_server().await;
    let port = server.local_addr.port();
    let dir = tempfile::tempdir().unwrap();
    for (label, spelling) in SPELLINGS {
        let file = write_scenario(
            dir.path(),
            &format!("{label}.yaml"),
            &scenario(label, spelling, port),
        );
        let s = barrage::scenario::load(&file).unwrap();
        assert_eq!(
            s.headers.0[0],
            ("Authorization".to_string(), "Bearer S3CRET1".to_string()),
            "{label}"
        );
        let out = dir.path().join(format!("out-{label}"));
        let mut opts = RunOptions::new(s);
        opts.file = Some(file);
        opts.out = Some(out.clone());
        let o = run(opts).await.unwrap();
        assert_eq!(o.exit_code(), 0, "{label}: {:?}", o.report.error);
        check_report(&o.report_path, Some(i32::from(o.exit_code())));
        for name in ["report.json", "summary.md", "report.html", "junit.xml"] {
            assert!(out.join(name).is_file(), "{label}: no {name}");
        }
        assert!(
            std::fs::read_dir(&out).unwrap().any(|e| e
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "hlog")),
            "{label}: no .hlog"
        );
        assert_dir_clean(label, &out);
        check_report_json(label, &out);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_and_check_output_hold_no_secret() {
    let env_value = env_secret();
    let server = echo_server().await;
    let port = server.local_addr.port();
    let dir = tempfile::tempdir().unwrap();
    for (label, spelling) in SPELLINGS {
        let file = write_scenario(
            dir.path(),
            &format!("{label}.yaml"),
            &scenario(label, spelling, port),
        );
        let out = dir.path().join(format!("out-{label}"));
        let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_barrage"))
            .args(["run", file.to_str().unwrap(), "--json-lines", "--no-tui"])
            .arg("--out")
            .arg(&out)
            .env(ENV_NAME, env_value)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{label}: {stderr}");
        assert!(stdout.contains("\"report\""), "{label}: no report line");
        assert_clean(&format!("{label}: run --json-lines stdout"), &stdout);
        assert_clean(&format!("{label}: run --json-lines stderr"), &stderr);
        assert_dir_clean(label, &out);
        check_report_json(label, &out);

        let o = run_bin(&["check", file.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{label}: {stdout}");
        assert!(stdout.contains("token=<redacted>"), "{label}: {stdout}");
        assert_clean(&format!("{label}: check stdout"), &stdout);
        assert_clean(
            &format!("{label}: check stderr"),
            &String::from_utf8_lossy(&o.stderr),
        );
    }
    server.shutdown().await;
}

/// `barrage k8s` puts the scenario file, as written, in a Kubernetes
/// Secret the pods mount: the secrets written in it are there, and nowhere
/// else in the output (not in the ConfigMap, the Job or the comments). A
/// header from `${env:NAME}` comes from a Secret the user creates, so its
/// value is not in the manifests unless the file itself spells it.
#[test]
fn k8s_manifests_hold_secrets_only_in_the_mounted_scenario() {
    env_secret();
    let dir = tempfile::tempdir().unwrap();
    for (label, spelling) in SPELLINGS {
        let text = scenario(label, spelling, 9);
        let file = write_scenario(dir.path(), &format!("{label}.yaml"), &text);
        let o = run_bin(&[
            "k8s",
            file.to_str().unwrap(),
            "--workers",
            "2",
            "--target",
            "ws://127.0.0.1:9/",
            "--image",
            "registry.test/barrage:1",
        ]);
        let stdout = String::from_utf8(o.stdout).unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{label}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_clean(
            &format!("{label}: k8s stderr"),
            &String::from_utf8_lossy(&o.stderr),
        );
        let mut docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&stdout)
            .map(|d| serde_yaml::Value::deserialize(d).unwrap())
            .collect();
        let secret = docs
            .iter_mut()
            .find(|d| d["kind"] == "Secret")
            .unwrap_or_else(|| panic!("{label}: no Secret"));
        assert_eq!(secret["type"], "Opaque", "{label}");
        let data = secret["stringData"].as_mapping_mut().unwrap();
        assert!(
            data.values().any(|v| v.as_str() == Some(text.as_str())),
            "{label}: the Secret does not carry the file as written"
        );
        data.clear();
        // The variable comes from the Secret NAME-env, by name.
        let job = docs.iter().find(|d| d["kind"] == "Job").unwrap();
        let env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
        assert!(
            env.as_sequence().unwrap().iter().any(|e| e["name"] == ENV_NAME
                && e["valueFrom"]["secretKeyRef"]["key"] == ENV_NAME),
            "{label}: {env:?}"
        );
        // The comments (merge steps) are outside the parsed documents;
        // indented `#` lines are the Secret's file.
        let comments: String = stdout
            .lines()
            .filter(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert_clean(&format!("{label}: k8s comments"), &comments);
        for d in &docs {
            assert_clean(
                &format!("{label}: k8s {:?} outside the Secret's data", d["kind"]),
                &serde_yaml::to_string(d).unwrap(),
            );
        }
    }
}
