//! `barrage k8s`: Kubernetes manifests that run a scenario as N shards of
//! an Indexed Job, each pod `barrage run --shard I/N` with one shared
//! `--start-at`, followed by the commands that collect the pods' logs and
//! merge them into one report.
//!
//! The output is multi-document YAML: a ConfigMap with the files the
//! scenario references that are not secret (feeders, certificates), a
//! Secret with the scenario itself (its headers may hold tokens) and the
//! private keys, then the Job, which mounts both in one read-only folder;
//! the merge step follows as comments. `${env:NAME}` in the scenario's
//! headers come from a Secret the user creates (the printed command); their
//! local values never go into the manifests.

mod files;
mod manifest;
pub mod sizing;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::scenario::{Scenario, Target};

pub use files::{Contents, MAX_CONFIGMAP_BYTES, MountedFile};
pub use manifest::{FILE_MODE, OUT_DIR, RUN_AS_USER, SCENARIO_DIR};
pub use sizing::{Resources, size};

/// Most shards a Job may have (`--workers`).
pub const MAX_WORKERS: u32 = 1000;

/// Longest Job name: the ConfigMap adds `-scenario` (the Secrets `-secret`
/// and `-env`) and names must fit 63 characters, and pods are named
/// `<job>-<index>-<random>`.
pub const MAX_NAME_LEN: usize = 52;

/// Longest namespace (a DNS-1123 label).
pub const MAX_NAMESPACE_LEN: usize = 63;

/// Time allowed beyond the run and the lead for pulling images, scheduling
/// and writing reports before `kubectl wait` gives up.
pub const WAIT_MARGIN: Duration = Duration::from_secs(600);

/// What `barrage k8s` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Shards, 1 to [`MAX_WORKERS`].
    pub workers: u32,
    /// Container image holding this barrage (no registry has one: build
    /// and push it, see [`K8sError::NoImage`]); required.
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
    /// No `--image`: no registry holds a barrage image, so the user builds one.
    #[error(
        "--image is required: no registry holds a barrage image. Build and push one from this repository (its Dockerfile), e.g.\n  docker build -t REGISTRY/barrage:{version} . && docker push REGISTRY/barrage:{version}\nthen pass --image REGISTRY/barrage:{version}",
        version = env!("CARGO_PKG_VERSION")
    )]
    NoImage,
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
    /// Too much for a ConfigMap or a Secret.
    #[error(
        "the files for the {object} hold {bytes} bytes, over the {} KiB one {object} can carry (its limit is 1 MiB)",
        MAX_CONFIGMAP_BYTES >> 10
    )]
    TooLarge {
        /// `ConfigMap` or `Secret`.
        object: &'static str,
        /// Bytes stored.
        bytes: usize,
    },
    /// A `${env:NAME}` whose NAME a pod's env and a Secret key cannot carry.
    #[error(
        "headers: ${{env:{0}}}: a pod gets the variable from a Secret, whose keys (and the env names of Kubernetes before 1.34) allow only letters, digits, '-', '.' and '_'; it must start with a letter or '_': rename the variable"
    )]
    EnvName(String),
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
        None => default_name(&s.env_secrets.redact(&s.name)),
    };
    let namespace = match &o.namespace {
        Some(ns) => Some(check_label("namespace", ns, MAX_NAMESPACE_LEN)?),
        None => None,
    };
    let start = start_instant(now, o.lead)?;
    let start_text = humantime::format_rfc3339_seconds(start).to_string();
    let files = files::collect(file, s, url.tls)?;
    let env = match &files[0].contents {
        Contents::Text(t) => files::env_names(t.strip_prefix('\u{feff}').unwrap_or(t)),
        Contents::Binary(_) => Vec::new(),
    };
    // The Job controller sets the index itself.
    let env: Vec<String> = env
        .into_iter()
        .filter(|n| n != manifest::INDEX_VAR)
        .collect();
    if let Some(bad) = env.iter().find(|n| !is_env_key(n)) {
        return Err(K8sError::EnvName(bad.clone()));
    }
    let image = o.image.as_deref().ok_or(K8sError::NoImage)?;
    // The ramp and the closing (at `connections.rate` each) come on top of
    // the phases; the Job is given up (activeDeadlineSeconds) and `kubectl
    // wait` stops after the lead, all of it and a margin.
    let ramp = Duration::from_secs_f64(
        f64::from(s.connections.count) / s.connections.rate.per_second.max(f64::MIN_POSITIVE),
    );
    let wait = s.total_duration() + 2 * ramp + o.lead + WAIT_MARGIN;
    let resources = size(s, o.workers);
    let scenario_path = format!("{SCENARIO_DIR}/{}", files[0].path);
    let plan = manifest::Plan {
        name: &name,
        namespace,
        image,
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
        env: &env,
        resources: &resources,
        deadline: wait,
    };
    let yaml = |v: &serde_yaml::Value| serde_yaml::to_string(v).expect("YAML values serialize");
    let mut head = vec![
        format!(
            "barrage k8s: scenario {:?} as {} shard(s), Indexed Job {name} ({}).",
            s.env_secrets.redact(&s.name),
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
    ];
    if !env.is_empty() {
        head.push(format!(
            "First create the Secret {} with the scenario's ${{env:…}} variables: see the end.",
            plan.env_secret_name()
        ));
    }
    if plan.has_config_map() {
        head.push(format!(
            "The ConfigMap {} holds the files the scenario references that are not secret;",
            plan.config_map_name()
        ));
    }
    head.extend([
        format!(
            "the Secret {} holds the scenario (its headers may hold tokens) and private keys.",
            plan.secret_name()
        ),
        format!(
            "The pod mounts them together at {SCENARIO_DIR}, read-only, mode {FILE_MODE:04o} ({FILE_MODE}), group {RUN_AS_USER}."
        ),
        "Keep this output as private as the scenario: the Secret's files are in it as text.".into(),
    ]);
    let mut out = comment(&head);
    if plan.has_config_map() {
        out.push_str(&yaml(&plan.config_map()));
        out.push_str("---\n");
    }
    out.push_str(&yaml(&plan.secret()));
    out.push_str("---\n");
    out.push_str(&comment(&job_notes(&plan, &resources, &start_text)));
    out.push_str(&yaml(&plan.job()));
    out.push_str(&comment(&run_steps(&plan)));
    out.push_str(&comment(&merge_steps(
        &name,
        namespace,
        o.workers,
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    )));
    out.push_str(&comment(&cleanup_steps(&plan)));
    Ok(out)
}

/// Whether `name` can be a Secret key and a container's env name
/// (`[-._a-zA-Z][-._a-zA-Z0-9]*` before Kubernetes 1.34), and be given to
/// the printed `printenv` (no leading `-` or `.`).
fn is_env_key(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.chars().all(ok)
}

/// `kubectl`, with `-n NAMESPACE` when one was given.
fn kubectl(namespace: Option<&str>) -> String {
    namespace.map_or("kubectl".to_string(), |ns| format!("kubectl -n {ns}"))
}

/// Creating the Secret of `${env:NAME}` values (when the scenario has any)
/// and applying the manifests.
fn run_steps(plan: &manifest::Plan) -> Vec<String> {
    let kubectl = kubectl(plan.namespace);
    let mut lines = Vec::new();
    if !plan.env.is_empty() {
        lines.extend([
            format!(
                "Before applying: the pods read the scenario's ${{env:…}} variables from the Secret {},",
                plan.env_secret_name()
            ),
            "which you create (their values are never written into these manifests), e.g. from".into(),
            "the variables of this shell (a pod whose variable is missing waits in CreateContainerConfigError):".into(),
        ]);
        let mut create = format!("{kubectl} create secret generic {}", plan.env_secret_name());
        for name in plan.env {
            // `-` and `.` are allowed in env names but not in shell ones.
            let value = if name.starts_with(|c: char| !c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                format!("\"${name}\"")
            } else {
                format!("\"$(printenv {name})\"")
            };
            create.push_str(&format!(" --from-literal={name}={value}"));
        }
        lines.push(create);
    }
    let objects = if plan.has_config_map() {
        format!(
            "the ConfigMap {}, the Secret {}",
            plan.config_map_name(),
            plan.secret_name()
        )
    } else {
        format!("the Secret {}", plan.secret_name())
    };
    lines.push(format!(
        "Apply this file ({objects} and the Job, in that order): {kubectl} apply -f job.yaml"
    ));
    lines
}

/// Deleting what was applied (and created).
fn cleanup_steps(plan: &manifest::Plan) -> Vec<String> {
    let mut objects = vec![format!("job/{}", plan.name)];
    if plan.has_config_map() {
        objects.push(format!("configmap/{}", plan.config_map_name()));
    }
    objects.push(format!("secret/{}", plan.secret_name()));
    if !plan.env.is_empty() {
        objects.push(format!("secret/{}", plan.env_secret_name()));
    }
    vec![
        "Clean up (the Secret holds the scenario's tokens and keys: do not leave it behind):"
            .into(),
        format!(
            "{} delete {} --ignore-not-found",
            kubectl(plan.namespace),
            objects.join(" ")
        ),
    ]
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
    let kubectl = kubectl(namespace);
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
    fn env_names_must_be_secret_keys() {
        for ok in ["TOKEN", "_x", "my.var", "a-b_9"] {
            assert!(is_env_key(ok), "{ok}");
        }
        for bad in ["", "9LIVES", "-x", ".x", "A B", "A=B", "Ü", "a/b"] {
            assert!(!is_env_key(bad), "{bad}");
        }
    }

    #[test]
    fn the_env_secret_is_created_from_the_shell() {
        let resources = size(
            &crate::scenario::parse(
                "t",
                "name: t\ntarget: ws://h/\nconnections: { count: 2, rate: 10/s }\n\
                 phases: [{ name: p, duration: 1s, rate: 1/s }]\n",
            )
            .unwrap(),
            1,
        );
        let env = ["TOKEN".to_string(), "my.var".to_string()];
        let plan = manifest::Plan {
            name: "j",
            namespace: Some("ns"),
            image: "i",
            workers: 1,
            args: Vec::new(),
            files: &[],
            env: &env,
            resources: &resources,
            deadline: Duration::from_secs(60),
        };
        let steps = run_steps(&plan).join("\n");
        assert!(
            steps.contains(
                "kubectl -n ns create secret generic j-env --from-literal=TOKEN=\"$TOKEN\" \
                 --from-literal=my.var=\"$(printenv my.var)\""
            ),
            "{steps}"
        );
        assert!(
            cleanup_steps(&plan)
                .join("\n")
                .contains("delete job/j secret/j-secret secret/j-env"),
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
