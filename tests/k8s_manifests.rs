//! `barrage k8s`: the printed manifests, parsed as YAML and checked by
//! structure, and the inputs it refuses.

use std::process::Output;
use std::time::SystemTime;

use serde::Deserialize;
use serde_yaml::Value;

const TARGET: &str = "ws://127.0.0.1:9/";

/// Runs `barrage k8s` from the crate root.
fn k8s(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_barrage"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("k8s")
        .args(args)
        .output()
        .expect("barrage runs")
}

/// The manifests for `file` with 4 workers in namespace `loadtest`, and the
/// whole output.
fn manifests(file: &str) -> (Vec<Value>, String) {
    let o = k8s(&[
        file,
        "--workers",
        "4",
        "--namespace",
        "loadtest",
        "--target",
        TARGET,
    ]);
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let docs = serde_yaml::Deserializer::from_str(&stdout)
        .map(|d| Value::deserialize(d).expect("each document is YAML"))
        .collect();
    (docs, stdout)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// The value after `flag` in `args`.
fn after<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args.iter().position(|a| a == flag).expect(flag);
    &args[i + 1]
}

/// The ConfigMap's text for the file mounted at `path`.
fn mounted<'a>(config_map: &'a Value, job: &Value, path: &str) -> &'a str {
    let volume = &job["spec"]["template"]["spec"]["volumes"][0]["configMap"];
    assert_eq!(volume["name"], config_map["metadata"]["name"]);
    let items = volume["items"].as_sequence().unwrap();
    let item = items
        .iter()
        .find(|i| i["path"] == path)
        .unwrap_or_else(|| panic!("{path} not mounted: {items:?}"));
    str_of(&config_map["data"][str_of(&item["key"])])
}

/// The checks every scenario's manifests pass; returns them.
fn check(file: &str) -> (Value, Value) {
    let (docs, stdout) = manifests(&format!("scenarios/{file}"));
    let kinds: Vec<&str> = docs.iter().map(|d| str_of(&d["kind"])).collect();
    assert_eq!(kinds, ["ConfigMap", "Job"]);
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "loadtest");
    }
    let (config_map, job) = (docs[0].clone(), docs[1].clone());
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], 4);
    assert_eq!(spec["parallelism"], 4);
    assert_eq!(spec["backoffLimit"], 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    let args: Vec<String> = serde_yaml::from_value(c["args"].clone()).unwrap();
    assert_eq!(args[0], "run");
    assert_eq!(after(&args, "--shard"), "$(JOB_COMPLETION_INDEX)/4");
    let start = humantime::parse_rfc3339(after(&args, "--start-at")).unwrap();
    assert!(start > SystemTime::now(), "{args:?}");
    assert!(args.iter().any(|a| a == "--no-tui"));
    assert!(args.iter().any(|a| a == "--json-lines"));
    assert_eq!(after(&args, "--target"), TARGET);
    let scenario = args[1]
        .strip_prefix("/scenario/")
        .expect("mounted scenario");
    let text = std::fs::read_to_string(format!("scenarios/{file}")).unwrap();
    assert_eq!(mounted(&config_map, &job, scenario), text);
    let requests = &c["resources"]["requests"];
    let memory = str_of(&requests["memory"]).strip_suffix("Mi").unwrap();
    assert!(memory.parse::<u64>().unwrap() >= 64, "{requests:?}");
    let cpu = str_of(&requests["cpu"]).strip_suffix('m').unwrap();
    assert!(cpu.parse::<u64>().unwrap() >= 250, "{requests:?}");
    let trailer: Vec<&str> = stdout
        .lines()
        .rev()
        .take_while(|l| l.starts_with("# "))
        .collect();
    let trailer = trailer.join("\n");
    for needle in ["kubectl -n loadtest wait", "--tail=-1", "barrage merge"] {
        assert!(
            trailer.contains(needle),
            "{needle} missing from:\n{trailer}"
        );
    }
    (config_map, job)
}

#[test]
fn request_reply_runs_as_an_indexed_job() {
    let (_, job) = check("request-reply.yaml");
    let env = &job["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(env["name"], "JOB_COMPLETION_INDEX");
    assert_eq!(
        env["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
}

#[test]
fn the_feeder_is_mounted_at_its_relative_path() {
    let (config_map, job) = check("login-then-stream.yaml");
    let csv = std::fs::read_to_string("scenarios/data/users.csv").unwrap();
    assert_eq!(mounted(&config_map, &job, "data/users.csv"), csv);
}

/// Runs `barrage k8s` expecting exit 2; returns stderr.
fn refused(args: &[&str]) -> String {
    let o = k8s(args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    assert!(o.stdout.is_empty());
    stderr
}

#[test]
fn bad_input_exits_2() {
    let file = "scenarios/request-reply.yaml";
    let e = refused(&[file, "--workers", "4"]);
    assert!(e.contains("builtin") && e.contains("--target"), "{e}");
    let e = refused(&[file, "--workers", "0", "--target", TARGET]);
    assert!(e.contains("--workers"), "{e}");
    // request-reply opens 200 connections.
    let e = refused(&[file, "--workers", "201", "--target", TARGET]);
    assert!(e.contains("connections.count"), "{e}");
}
