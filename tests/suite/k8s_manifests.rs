//! `barrage k8s`: the printed manifests, parsed as YAML and checked by
//! structure, and the inputs it refuses.

use crate::common;

use std::process::Output;
use std::time::SystemTime;

use common::check_report;

use serde::Deserialize;
use serde_yaml::Value;

const TARGET: &str = "ws://127.0.0.1:9/";

/// The image every test passes (`--image` is required).
const IMAGE: &str = "registry.test/barrage:1";

/// Runs `barrage k8s` from the crate root.
fn k8s(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_barrage"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("k8s")
        .args(["--image", IMAGE])
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

/// The document of `kind`, if printed.
fn doc<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

/// The contents of the key `key` of the ConfigMap or Secret `object`:
/// `data`/`binaryData` of a ConfigMap, `stringData`/`data` (base64) of a
/// Secret.
fn object_file(object: &Value, key: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(str_of(v))
            .expect("base64")
    };
    match str_of(&object["kind"]) {
        "ConfigMap" if !object["data"][key].is_null() => str_of(&object["data"][key]).into(),
        "ConfigMap" => b64(&object["binaryData"][key]),
        "Secret" if !object["stringData"][key].is_null() => {
            str_of(&object["stringData"][key]).into()
        }
        "Secret" => b64(&object["data"][key]),
        k => panic!("{k} holds no files"),
    }
}

/// The Job's pod volume mounted at `/scenario`.
fn scenario_volume(job: &Value) -> &Value {
    let pod = &job["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/scenario")
        .expect("a volume at /scenario");
    assert_eq!(mount["readOnly"], true, "{mount:?}");
    pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume")
}

/// Every file of the pods' `/scenario` volume: its path, the kind of the
/// object it comes from, its contents and its mode (when set), read from
/// the volume's sources (a projected volume, or one ConfigMap) and the
/// printed objects they name.
fn volume_files(docs: &[Value], job: &Value) -> Vec<(String, String, Vec<u8>, Option<u64>)> {
    let volume = scenario_volume(job);
    let (sources, default_mode) = if volume["projected"].is_mapping() {
        (
            volume["projected"]["sources"]
                .as_sequence()
                .unwrap()
                .clone(),
            volume["projected"]["defaultMode"].as_u64(),
        )
    } else {
        let mut source = serde_yaml::Mapping::new();
        source.insert("configMap".into(), volume["configMap"].clone());
        (
            vec![Value::Mapping(source)],
            volume["configMap"]["defaultMode"].as_u64(),
        )
    };
    let mut files = Vec::new();
    for source in &sources {
        let (kind, s) = if source["configMap"].is_mapping() {
            ("ConfigMap", &source["configMap"])
        } else if source["secret"].is_mapping() {
            ("Secret", &source["secret"])
        } else {
            panic!("unexpected source {source:?}")
        };
        let object = docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == s["name"])
            .unwrap_or_else(|| panic!("no {kind} {:?} printed", s["name"]));
        for item in s["items"].as_sequence().unwrap() {
            files.push((
                str_of(&item["path"]).to_string(),
                kind.to_string(),
                object_file(object, str_of(&item["key"])),
                item["mode"].as_u64().or(default_mode),
            ));
        }
    }
    files
}

/// The text of the file mounted at `path`.
fn mounted(docs: &[Value], job: &Value, path: &str) -> String {
    let files = volume_files(docs, job);
    let (_, _, contents, _) = files
        .iter()
        .find(|f| f.0 == path)
        .unwrap_or_else(|| panic!("{path} not mounted: {files:?}"));
    String::from_utf8(contents.clone()).unwrap()
}

/// The checks every scenario's manifests pass; returns them.
fn check(file: &str) -> (Vec<Value>, Value) {
    let (docs, stdout) = manifests(&format!("scenarios/{file}"));
    let kinds: Vec<&str> = docs.iter().map(|d| str_of(&d["kind"])).collect();
    // The ConfigMap only when the scenario references files that are not
    // secret (a feeder, certificates).
    assert!(
        kinds == ["ConfigMap", "Secret", "Job"] || kinds == ["Secret", "Job"],
        "{kinds:?}"
    );
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "loadtest");
    }
    let job = doc(&docs, "Job").unwrap().clone();
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
    assert_eq!(mounted(&docs, &job, scenario), text);
    // The scenario (its headers may hold secrets) comes from the Secret.
    let files = volume_files(&docs, &job);
    let entry = files.iter().find(|f| f.0 == scenario).unwrap();
    assert_eq!(entry.1, "Secret");
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
    (docs, job)
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
    let (docs, job) = check("login-then-stream.yaml");
    let csv = std::fs::read_to_string("scenarios/data/users.csv").unwrap();
    assert_eq!(mounted(&docs, &job, "data/users.csv"), csv);
    // A feeder is no secret: it stays in the ConfigMap.
    let files = volume_files(&docs, &job);
    let entry = files.iter().find(|f| f.0 == "data/users.csv").unwrap();
    assert_eq!(entry.1, "ConfigMap");
}

/// The private key of the mutual-TLS test (dummy PEM text: `k8s` only
/// packs the files).
const KEY_PEM: &str =
    "-----BEGIN PRIVATE KEY-----\nK8SKEYMATERIALzq9Xw3\n-----END PRIVATE KEY-----\n";

/// A scenario with a client key, a bearer token and a header from
/// `${env:K8S_TEST_TOKEN}`: the key and the scenario travel in the Secret
/// `NAME-secret` only, mounted read-only beside the ConfigMap's
/// certificates; the variable comes from the Secret `NAME-env` the user
/// creates, and its local value is printed nowhere.
#[test]
fn keys_and_the_scenario_travel_only_in_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let ca = "-----BEGIN CERTIFICATE-----\nK8SCAcertificate\n-----END CERTIFICATE-----\n";
    let cert = "-----BEGIN CERTIFICATE-----\nK8SCLIENTcertificate\n-----END CERTIFICATE-----\n";
    std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
    std::fs::write(dir.path().join("client.pem"), cert).unwrap();
    std::fs::write(dir.path().join("client.key"), KEY_PEM).unwrap();
    let text = "name: mtls\n\
         target: wss://127.0.0.1:9/\n\
         connections: { count: 4, rate: 100/s }\n\
         tls: { ca: ca.pem, cert: client.pem, key: client.key }\n\
         headers: { Authorization: \"Bearer K8SSECRET\" , X-T: \"${env:K8S_TEST_TOKEN}\" }\n\
         phases: [{ name: steady, duration: 2s, rate: 10/s }]\n";
    let file = dir.path().join("mtls.yaml");
    std::fs::write(&file, text).unwrap();
    let nanos = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let token = format!("k8sTOKEN{}x{nanos}", std::process::id());
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_barrage"))
        .arg("k8s")
        .arg(&file)
        .args([
            "--image",
            IMAGE,
            "--workers",
            "2",
            "--name",
            "mtls",
            "--namespace",
            "loadtest",
        ])
        .env("K8S_TEST_TOKEN", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8(o.stdout).unwrap();
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(!stdout.contains(&token) && !stderr.contains(&token));
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| str_of(&d["kind"])).collect();
    assert_eq!(kinds, ["ConfigMap", "Secret", "Job"]);

    let secret = doc(&docs, "Secret").unwrap();
    assert_eq!(secret["apiVersion"], "v1");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["metadata"]["name"], "mtls-secret");
    assert_eq!(secret["metadata"]["namespace"], "loadtest");
    let held: Vec<&str> = secret["stringData"]
        .as_mapping()
        .expect("stringData")
        .values()
        .map(str_of)
        .collect();
    assert!(held.contains(&KEY_PEM), "{held:?}");
    assert!(held.contains(&text), "{held:?}");

    // The secrets nowhere else: not in the other objects, not in the
    // comments (lines starting with `#`; the files are indented).
    let comments: Vec<&str> = stdout.lines().filter(|l| l.starts_with('#')).collect();
    let comments = comments.join("\n");
    let mut elsewhere: Vec<(String, String)> = docs
        .iter()
        .filter(|d| d["kind"] != "Secret")
        .map(|d| {
            (
                str_of(&d["kind"]).to_string(),
                serde_yaml::to_string(d).unwrap(),
            )
        })
        .collect();
    elsewhere.push(("comments".into(), comments.clone()));
    for (what, text) in &elsewhere {
        for needle in ["K8SKEYMATERIAL", "PRIVATE KEY", "K8SSECRET", token.as_str()] {
            assert!(!text.contains(needle), "{what} holds {needle}:\n{text}");
        }
    }

    // The pod's /scenario: the certificates from the ConfigMap, the key and
    // the scenario from the Secret, which is read-only to the pod.
    let job = doc(&docs, "Job").unwrap();
    let files = volume_files(&docs, job);
    let from = |path: &str| {
        let f = files
            .iter()
            .find(|f| f.0 == path)
            .unwrap_or_else(|| panic!("{path} not mounted: {files:?}"));
        (f.1.as_str(), f.2.as_slice(), f.3)
    };
    for (path, contents) in [("ca.pem", ca), ("client.pem", cert)] {
        let (kind, got, _) = from(path);
        assert_eq!((kind, got), ("ConfigMap", contents.as_bytes()), "{path}");
    }
    for (path, contents) in [("client.key", KEY_PEM), ("mtls.yaml", text)] {
        let (kind, got, mode) = from(path);
        assert_eq!((kind, got), ("Secret", contents.as_bytes()), "{path}");
        assert!(
            matches!(mode, Some(0o400 | 0o440)),
            "{path}: mode {mode:?} (want 0400 or 0440)"
        );
    }
    // Mode 0440 files are readable by the pod's user through their group.
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["fsGroup"], 65532);
    assert_eq!(pod["securityContext"]["runAsGroup"], 65532);
    let c = &pod["containers"][0];
    let args: Vec<String> = serde_yaml::from_value(c["args"].clone()).unwrap();
    assert_eq!(args[1], "/scenario/mtls.yaml");

    // The variable from the Secret the user creates.
    let env = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "K8S_TEST_TOKEN")
        .expect("K8S_TEST_TOKEN in the container's env");
    let r = &env["valueFrom"]["secretKeyRef"];
    assert_eq!(r["name"], "mtls-env");
    assert_eq!(r["key"], "K8S_TEST_TOKEN");
    assert_eq!(r["optional"], false);
    assert!(
        comments.contains(
            "kubectl -n loadtest create secret generic mtls-env --from-literal=K8S_TEST_TOKEN="
        ),
        "{comments}"
    );
    assert!(comments.contains("secret/mtls-secret"), "{comments}");
}

/// A `${env:NAME}` whose NAME cannot be a Secret key is refused, naming it.
#[test]
fn an_env_name_no_secret_can_hold_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env.yaml");
    std::fs::write(
        &file,
        "name: env\ntarget: ws://127.0.0.1:9/\nconnections: { count: 2, rate: 10/s }\n\
         headers: { X-T: \"${env:9LIVES}\" }\nphases: [{ name: p, duration: 1s, rate: 1/s }]\n",
    )
    .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_barrage"))
        .arg("k8s")
        .arg(&file)
        .args(["--workers", "2", "--image", IMAGE])
        .env("9LIVES", "k8sNINE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(o.stdout.is_empty());
    assert!(
        stderr.contains("${env:9LIVES}") && !stderr.contains("k8sNINE"),
        "{stderr}"
    );
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
        .args(["--image", IMAGE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let job = doc(&docs, "Job").expect("a Job");

    // The pods' /scenario volume, from the items of the ConfigMap (the
    // feeder) and of the Secret (the scenario).
    let mount = dir.path().join("scenario");
    let files = volume_files(&docs, job);
    let kinds: Vec<(&str, &str)> = files.iter().map(|f| (f.0.as_str(), f.1.as_str())).collect();
    assert_eq!(
        kinds,
        [("data/users.csv", "ConfigMap"), ("job.yaml", "Secret")]
    );
    for (path, _, contents, _) in files {
        let path = mount.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
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

/// No registry holds a barrage image: without `--image` nothing is printed
/// but how to build and push one (exit 2); with it, the Job carries it and
/// a deadline covering the lead, the run and its ramps.
#[test]
fn the_image_is_required_and_the_job_has_a_deadline() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_barrage"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "k8s",
            "scenarios/quickstart.yaml",
            "--workers",
            "2",
            "--target",
            TARGET,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(o.stdout.is_empty());
    assert!(stderr.contains("--image is required"), "{stderr}");
    assert!(
        stderr.contains("docker build -t REGISTRY/barrage:"),
        "{stderr}"
    );

    let o = k8s(&[
        "scenarios/quickstart.yaml",
        "--workers",
        "2",
        "--target",
        TARGET,
        "--lead",
        "30s",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8(o.stdout).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&stdout)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let job = doc(&docs, "Job").expect("a Job");
    let spec = &job["spec"];
    let image = &spec["template"]["spec"]["containers"][0]["image"];
    assert_eq!(image.as_str(), Some(IMAGE));
    // quickstart: 6 s of phases, 100 connections at 500/s (0.2 s each
    // way), 30 s of lead, 600 s of margin.
    let deadline = spec["activeDeadlineSeconds"].as_u64().expect("a deadline");
    assert!((636..=640).contains(&deadline), "{deadline}");
}
