//! `barrage k8s`: Kubernetes manifests that run a scenario as N shards of
//! an Indexed Job, each pod `barrage run --shard I/N` with one shared
//! `--start-at`, followed by the commands that collect the pods' logs and
//! merge them into one report.
//!
//! The output is multi-document YAML: a ConfigMap with the scenario and the
//! files it references, then the Job; the merge step follows as comments.

mod files;
mod manifest;
pub mod sizing;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::scenario::{Scenario, Target};

pub use files::{Contents, MAX_CONFIGMAP_BYTES, MountedFile};
pub use manifest::{OUT_DIR, RUN_AS_USER, SCENARIO_DIR};
pub use sizing::{Resources, size};

/// Most shards a Job may have (`--workers`).
pub const MAX_WORKERS: u32 = 1000;

/// Longest Job name: the ConfigMap adds `-scenario` and names must fit 63
/// characters, and pods are named `<job>-<index>-<random>`.
pub const MAX_NAME_LEN: usize = 52;

/// Longest namespace (a DNS-1123 label).
pub const MAX_NAMESPACE_LEN: usize = 63;

/// Image used without `--image`: this barrage's version.
pub const DEFAULT_IMAGE: &str = concat!("barrage:", env!("CARGO_PKG_VERSION"));

/// Time allowed beyond the run and the lead for pulling images, scheduling
/// and writing reports before `kubectl wait` gives up.
pub const WAIT_MARGIN: Duration = Duration::from_secs(600);

/// What `barrage k8s` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Shards, 1 to [`MAX_WORKERS`].
    pub workers: u32,
    /// Container image; default [`DEFAULT_IMAGE`].
    pub image: Option<String>,
    /// Namespace of every object; default none (kubectl's current one).
    pub namespace: Option<String>,
    /// Job name; default from the scenario name ([`default_name`]).
    pub name: Option<String>,
    /// Target URL replacing the scenario's; needed for `target: builtin`.
    pub target: Option<String>,
    /// How far from now the shards start.
    pub lead: Duration,
}

/// Why no manifests were made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum K8sError {
    /// `--workers` out of range.
    #[error("--workers {0}: must be 1 to {MAX_WORKERS}")]
    Workers(u32),
    /// More shards than connections.
    #[error(
        "--workers {workers} is more than the scenario's {connections} connection(s) (connections.count): some shards would open none"
    )]
    MoreWorkersThanConnections {
        /// `--workers`.
        workers: u32,
        /// `connections.count`.
        connections: u32,
    },
    /// The target is `builtin`.
    #[error(
        "a Kubernetes run needs a real target: builtin would make every pod test its own in-process server; pass --target ws://…"
    )]
    BuiltinTarget,
    /// `--target` does not parse.
    #[error("--target: {0}")]
    Target(String),
    /// `--name` or `--namespace` is not a DNS-1123 label.
    #[error("--{flag} {value:?}: {reason}")]
    Name {
        /// `name` or `namespace`.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The start instant cannot be written.
    #[error("--lead: the start instant would be after the year 9999")]
    Lead,
    /// A referenced file outside the scenario's folder.
    #[error(
        "{field}: {path} must be a relative path inside the scenario's folder (not absolute, no `..`): the pod mounts the files next to the scenario"
    )]
    NotRelative {
        /// The scenario field, e.g. `data.file`.
        field: String,
        /// The path as written.
        path: String,
    },
    /// A file that cannot be read.
    #[error("{field}: cannot read {path}: {reason}")]
    Read {
        /// `scenario` or the scenario field naming the file.
        field: String,
        /// The path read.
        path: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// Too much for a ConfigMap.
    #[error(
        "the scenario and its files hold {bytes} bytes, over the {} KiB one ConfigMap can carry (its limit is 1 MiB)",
        MAX_CONFIGMAP_BYTES >> 10
    )]
    TooLarge {
        /// Bytes stored.
        bytes: usize,
    },
}

/// The manifests for running `s` (loaded from `file`) as `o.workers`
/// shards, starting at `now + o.lead`. Reads the scenario file and the
/// files it references.
pub fn generate(
    file: &Path,
    s: &Scenario,
    o: &Options,
    now: SystemTime,
) -> Result<String, K8sError> {
    if !(1..=MAX_WORKERS).contains(&o.workers) {
        return Err(K8sError::Workers(o.workers));
    }
    let replaced = o
        .target
        .as_deref()
        .map(Target::parse)
        .transpose()
        .map_err(K8sError::Target)?;
    let Target::Url(url) = replaced.as_ref().unwrap_or(&s.target) else {
        return Err(K8sError::BuiltinTarget);
    };
    if o.workers > s.connections.count {
        return Err(K8sError::MoreWorkersThanConnections {
            workers: o.workers,
            connections: s.connections.count,
        });
    }
    let name = match &o.name {
        Some(n) => check_label("name", n, MAX_NAME_LEN)?.to_string(),
        None => default_name(&s.name),
    };
    let namespace = match &o.namespace {
        Some(ns) => Some(check_label("namespace", ns, MAX_NAMESPACE_LEN)?),
        None => None,
    };
    let start = start_instant(now, o.lead)?;
    let start_text = humantime::format_rfc3339_seconds(start).to_string();
    let files = files::collect(file, s, url.tls)?;
    let resources = size(s, o.workers);
    let scenario_path = format!("{SCENARIO_DIR}/{}", files[0].path);
    let plan = manifest::Plan {
        name: &name,
        namespace,
        image: o.image.as_deref().unwrap_or(DEFAULT_IMAGE),
        workers: o.workers,
        args: pod_args(
            &scenario_path,
            o.workers,
            &start_text,
            replaced.is_some().then_some(url.original.as_str()),
            // One seed for every pod: random payloads are seeded per global
            // connection id, so the whole run is reproducible.
            now.duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64),
        ),
        files: &files,
        resources: &resources,
    };
    // The ramp and the closing (at `connections.rate` each) come on top of
    // the phases.
    let ramp = Duration::from_secs_f64(
        f64::from(s.connections.count) / s.connections.rate.per_second.max(f64::MIN_POSITIVE),
    );
    let wait = s.total_duration() + 2 * ramp + o.lead + WAIT_MARGIN;
    let yaml = |v: &serde_yaml::Value| serde_yaml::to_string(v).expect("YAML values serialize");
    let mut out = comment(&[
        format!(
            "barrage k8s: scenario {:?} as {} shard(s), Indexed Job {name} ({}).",
            s.name,
            o.workers,
            namespace.map_or("current namespace".to_string(), |ns| format!(
                "namespace {ns}"
            )),
        ),
        format!(
            "Every shard starts its ramp at {start_text} (made at now + {}): apply before then;",
            humantime::format_duration(o.lead)
        ),
        "a pod that starts after that instant runs late and skews the merged report.".into(),
        format!(
            "The ConfigMap holds the scenario and the files it references, mounted at {SCENARIO_DIR}."
        ),
    ]);
    out.push_str(&yaml(&plan.config_map()));
    out.push_str("---\n");
    out.push_str(&comment(&job_notes(&plan, &resources, &start_text)));
    out.push_str(&yaml(&plan.job()));
    out.push_str(&comment(&merge_steps(
        &name,
        namespace,
        o.workers,
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    )));
    Ok(out)
}

/// The container's args: `barrage run` on the mounted scenario as shard
/// `$(JOB_COMPLETION_INDEX)` of `workers` (Kubernetes expands it from the
/// env), starting at `start_at`, with the report as the last line of the
/// pod's log. Literal `$` is written `$$` so Kubernetes keeps it.
pub fn pod_args(
    scenario_path: &str,
    workers: u32,
    start_at: &str,
    target: Option<&str>,
    seed: u64,
) -> Vec<String> {
    let literal = |s: &str| s.replace('$', "$$");
    let mut args: Vec<String> = vec![
        "run".into(),
        literal(scenario_path),
        "--shard".into(),
        format!("$(JOB_COMPLETION_INDEX)/{workers}"),
        // One argument: a bare RFC 3339 time is a timestamp, not a string,
        // to YAML 1.1 readers (kubernetes-validate rejected it so).
        format!("--start-at={start_at}"),
        "--seed".into(),
        seed.to_string(),
        "--no-tui".into(),
        "--json-lines".into(),
        "--out".into(),
        OUT_DIR.into(),
    ];
    if let Some(t) = target {
        args.extend(["--target".into(), literal(t)]);
    }
    args
}

/// The Job name made from a scenario name: `barrage-` and the name
/// lowercased, other characters as `-` (runs collapsed, none at the ends),
/// at most [`MAX_NAME_LEN`] characters.
pub fn default_name(scenario_name: &str) -> String {
    let mut slug = String::new();
    for c in scenario_name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut name = format!("barrage-{slug}");
    name.truncate(MAX_NAME_LEN);
    name.trim_end_matches('-').to_string()
}

/// `value` if it is a DNS-1123 label of at most `max` characters.
fn check_label<'a>(flag: &'static str, value: &'a str, max: usize) -> Result<&'a str, K8sError> {
    let fail = |reason: String| K8sError::Name {
        flag,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() || value.len() > max {
        return Err(fail(format!("must be 1 to {max} characters")));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || value.starts_with('-')
        || value.ends_with('-')
    {
        return Err(fail(
            "must be lowercase letters, digits and '-', starting and ending with a letter or digit"
                .into(),
        ));
    }
    // YAML 1.2 (what serde_yaml writes) keeps these plain, but kubectl reads
    // YAML 1.1, where they are booleans.
    if matches!(value, "y" | "n" | "yes" | "no" | "on" | "off") {
        return Err(fail(
            "kubectl would read it as a boolean (YAML 1.1); pick another".into(),
        ));
    }
    Ok(value)
}

/// `now + lead`, rounded up to a whole second (the instant is written to
/// the second).
fn start_instant(now: SystemTime, lead: Duration) -> Result<SystemTime, K8sError> {
    /// 10000-01-01T00:00:00Z: RFC 3339 has four-digit years.
    const YEAR_10000: u64 = 253_402_300_800;
    let since = now
        .checked_add(lead)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .ok_or(K8sError::Lead)?;
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    if secs >= YEAR_10000 {
        return Err(K8sError::Lead);
    }
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Lines as YAML comments.
fn comment(lines: &[String]) -> String {
    lines.iter().map(|l| format!("# {l}\n")).collect()
}

/// Why the Job looks the way it does.
fn job_notes(plan: &manifest::Plan, r: &Resources, start: &str) -> Vec<String> {
    vec![
        format!(
            "Pod i runs shard i of {} (JOB_COMPLETION_INDEX), all starting at {start}.",
            plan.workers
        ),
        "backoffLimit 0: a retried shard would start late and skew the merge; rerun the whole Job instead.".into(),
        format!(
            "Per shard: {} connection(s), {:.0} msg/s at the peak phase. Memory: {} MiB + {} KiB per connection, limit {}x.",
            r.connections,
            r.rate,
            sizing::BASE_MEMORY_BYTES >> 20,
            sizing::MEMORY_PER_CONNECTION_BYTES >> 10,
            sizing::MEMORY_LIMIT_FACTOR,
        ),
        format!(
            "CPU: 1 core per {:.0} msg/s ({}..{} cores), and no CPU limit: throttling would pause the",
            sizing::MESSAGES_PER_CORE,
            sizing::MIN_CPU_CORES,
            sizing::MAX_CPU_CORES,
        ),
        "load generator and show up as latency the server did not cause.".into(),
    ]
}

/// The shell commands that collect the shards' reports and merge them.
fn merge_steps(
    name: &str,
    namespace: Option<&str>,
    workers: u32,
    timeout_secs: u64,
) -> Vec<String> {
    let kubectl = namespace.map_or("kubectl".to_string(), |ns| format!("kubectl -n {ns}"));
    vec![
        "Merge step, once the Job is done: each pod's log is its shard's JSON lines, the last".into(),
        "one its report (--tail=-1: kubectl logs -l prints only the last 10 lines otherwise).".into(),
        format!("{kubectl} wait --for=condition=complete --timeout={timeout_secs}s job/{name}"),
        format!("for i in $(seq 0 {}); do", workers - 1),
        format!(
            "  {kubectl} logs -l job-name={name},batch.kubernetes.io/job-completion-index=$i --tail=-1 > shard-$i.jsonl"
        ),
        "done".into(),
        "barrage merge shard-*.jsonl --out merged/report.json".into(),
        "barrage merge exits 0 when every threshold held and 1 when one failed: its exit code gates CI.".into(),
        "(The pod label batch.kubernetes.io/job-completion-index needs Kubernetes 1.28 or later.)".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_labels() {
        assert_eq!(default_name("request-reply"), "barrage-request-reply");
        assert_eq!(default_name("Chat Room (v2)!"), "barrage-chat-room-v2");
        assert_eq!(default_name("¡¡"), "barrage");
        let long = default_name(&"x-".repeat(40));
        assert!(long.len() <= MAX_NAME_LEN && !long.ends_with('-'), "{long}");
        for n in [long, default_name("Ünïcode name")] {
            assert!(check_label("name", &n, MAX_NAME_LEN).is_ok(), "{n}");
        }
    }

    #[test]
    fn labels_are_checked() {
        for bad in [
            "",
            "Caps",
            "-lead",
            "trail-",
            "dot.ted",
            "yes",
            &"a".repeat(53),
        ] {
            assert!(check_label("name", bad, MAX_NAME_LEN).is_err(), "{bad:?}");
        }
        assert!(check_label("name", "a-1", MAX_NAME_LEN).is_ok());
    }

    #[test]
    fn start_rounds_up_to_a_second() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000_500);
        let t = start_instant(now, Duration::from_secs(120)).unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1121));
        assert_eq!(
            start_instant(now, Duration::from_secs(u64::MAX / 4)),
            Err(K8sError::Lead)
        );
    }

    #[test]
    fn args_keep_literal_dollars() {
        let a = pod_args("/scenario/a$b.yaml", 3, "T", Some("ws://h/$(X)"), 7);
        assert_eq!(a[1], "/scenario/a$$b.yaml");
        assert_eq!(a[3], "$(JOB_COMPLETION_INDEX)/3");
        assert_eq!(a.last().unwrap(), "ws://h/$$(X)");
    }
}
