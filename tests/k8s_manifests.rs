//! `barrage k8s`: the printed manifests, parsed as YAML and checked by
//! structure, and the inputs it refuses.

mod common;

use std::process::Output;
use std::time::SystemTime;

use common::check_report;

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
    // `--start-at=T` as one argument, so no YAML reader takes T for a date.
    let at = args
        .iter()
        .find_map(|a| a.strip_prefix("--start-at="))
        .expect("--start-at=");
    let start = humantime::parse_rfc3339(at).unwrap();
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

/// Counters that the merged report must hold as the sum of the shards'.
const COUNTS: [&str; 5] = [
    "/totals/connections/opened",
    "/totals/messages/sent",
    "/totals/messages/received",
    "/metrics/rtt/count",
    "/totals/bytes/sent",
];

/// A child process killed when the test ends, passed or not.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A 4-worker Job simulated on this machine: the ConfigMap written out as
/// the pods' volume, the exact container args of each pod run as a
/// process against a real `barrage serve` (with `$(JOB_COMPLETION_INDEX)`
/// expanded as Kubernetes does), stdout kept as the pod's log, and the
/// printed merge step run on the logs.
#[test]
fn a_simulated_indexed_job_merges_to_the_sum_of_its_shards() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bin = env!("CARGO_BIN_EXE_barrage");
    let server = Reaped(
        std::process::Command::new(bin)
            .args([
                "serve",
                "--workers",
                "1",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("data")).unwrap();
    let users: String = std::iter::once("user\n".to_string())
        .chain((0..40).map(|i| format!("u{i}\n")))
        .collect();
    std::fs::write(src.join("data/users.csv"), users).unwrap();
    std::fs::write(
        src.join("job.yaml"),
        "name: job\ntarget: builtin\nconnections: { count: 40, rate: 400/s }\n\
         data: { file: data/users.csv, mode: unique }\n\
         message: { text: '{{data.user}}:{{shard}}:{{seq}}' }\n\
         phases: [{ name: steady, duration: 2s, rate: 400/s }]\n\
         thresholds: [errors.rate < 1%]\n",
    )
    .unwrap();
    let target = format!("ws://127.0.0.1:{port}/");
    let out = std::process::Command::new(bin)
        .arg("k8s")
        .arg(src.join("job.yaml"))
        .args(["--workers", "4", "--lead", "3s", "--target", &target])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let (config_map, job) = (&docs[0], &docs[1]);

    // The pods' /scenario volume, from the ConfigMap's items.
    let mount = dir.path().join("scenario");
    let volume = &job["spec"]["template"]["spec"]["volumes"][0]["configMap"];
    for item in volume["items"].as_sequence().unwrap() {
        let path = mount.join(str_of(&item["path"]));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, str_of(&config_map["data"][str_of(&item["key"])])).unwrap();
    }
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "barrage");
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| str_of(a).to_string())
        .collect();
    let pods: Vec<std::process::Child> = (0..4)
        .map(|i| {
            let pod_tmp = dir.path().join(format!("pod-{i}"));
            let argv: Vec<String> = args
                .iter()
                .map(|a| {
                    // The pod's mounts, where this machine has them.
                    let a = a.replace("$(JOB_COMPLETION_INDEX)", &i.to_string());
                    if let Some(rest) = a.strip_prefix("/scenario/") {
                        mount.join(rest).display().to_string()
                    } else if let Some(rest) = a.strip_prefix("/tmp/") {
                        pod_tmp.join(rest).display().to_string()
                    } else {
                        a
                    }
                })
                .collect();
            let log = std::fs::File::create(dir.path().join(format!("shard-{i}.jsonl"))).unwrap();
            std::process::Command::new(bin)
                .args(&argv)
                .stdout(log)
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, mut p) in pods.into_iter().enumerate() {
        let status = p.wait().unwrap();
        assert!(status.success(), "a pod failed");
        // Each pod's own report set, in its /tmp/barrage.
        check_report(
            &dir.path().join(format!("pod-{i}")).join("barrage"),
            status.code(),
        );
    }
    drop(server);

    // The merge step as printed.
    let merge_line = stdout
        .lines()
        .find(|l| l.starts_with("# barrage merge "))
        .expect("merge step printed");
    assert!(merge_line.contains("shard-*.jsonl"), "{merge_line}");
    let logs: Vec<_> = (0..4)
        .map(|i| dir.path().join(format!("shard-{i}.jsonl")))
        .collect();
    let merged_path = dir.path().join("merged/report.json");
    std::fs::create_dir_all(merged_path.parent().unwrap()).unwrap();
    let m = std::process::Command::new(bin)
        .arg("merge")
        .args(&logs)
        .arg("--out")
        .arg(&merged_path)
        .output()
        .unwrap();
    assert_eq!(m.status.code(), Some(0), "{m:?}");
    check_report(&merged_path, m.status.code());
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&merged_path).unwrap()).unwrap();

    let mut sum = [0u64; 5];
    for (i, log) in logs.iter().enumerate() {
        let text = std::fs::read_to_string(log).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        let r = &last["report"];
        assert_eq!(r["shard"]["index"], i);
        assert_eq!(r["shard"]["count"], 4);
        assert_eq!(r["totals"]["connections"]["opened"], 10);
        for (k, path) in COUNTS.iter().enumerate() {
            sum[k] += r.pointer(path).and_then(|v| v.as_u64()).unwrap();
        }
    }
    let got: Vec<u64> = COUNTS
        .iter()
        .map(|p| merged.pointer(p).and_then(|v| v.as_u64()).unwrap())
        .collect();
    assert_eq!(got, sum);
    assert_eq!(sum[0], 40);
    assert!(sum[1] >= 600, "{sum:?}");
    assert_eq!(merged["merged"]["shards"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(merged["verdict"], "pass");
}
