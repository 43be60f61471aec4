//! The ConfigMap and the Indexed Job as YAML values (serialized by
//! serde_yaml, so quoting is always right).

use serde_yaml::{Mapping, Value};

use super::files::{Contents, MountedFile};
use super::sizing::Resources;

/// Where the ConfigMap is mounted in the pod.
pub const SCENARIO_DIR: &str = "/scenario";

/// The shard's `--out` folder, on an emptyDir (the root filesystem is read-only).
pub const OUT_DIR: &str = "/tmp/barrage";

/// The user the container runs as (distroless's `nonroot`).
pub const RUN_AS_USER: u32 = 65532;

/// Everything the manifests are made of.
pub struct Plan<'a> {
    /// Job name; the ConfigMap is `<name>-scenario`.
    pub name: &'a str,
    /// `metadata.namespace` of every object, when given.
    pub namespace: Option<&'a str>,
    /// Container image.
    pub image: &'a str,
    /// Shards.
    pub workers: u32,
    /// The container's args.
    pub args: Vec<String>,
    /// The ConfigMap's files, the scenario first.
    pub files: &'a [MountedFile],
    /// One shard's resources.
    pub resources: &'a Resources,
}

/// A mapping with its keys in the order given.
fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect::<Mapping>(),
    )
}

fn strings<S: AsRef<str>>(items: &[S]) -> Value {
    items.iter().map(|s| s.as_ref()).collect()
}

impl Plan<'_> {
    /// The ConfigMap's name.
    pub fn config_map_name(&self) -> String {
        format!("{}-scenario", self.name)
    }

    fn labels(&self) -> Value {
        map([
            ("app.kubernetes.io/name", "barrage".into()),
            ("app.kubernetes.io/instance", self.name.into()),
        ])
    }

    fn metadata(&self, name: &str) -> Value {
        let mut m = Mapping::new();
        m.insert("name".into(), name.into());
        if let Some(ns) = self.namespace {
            m.insert("namespace".into(), ns.into());
        }
        m.insert("labels".into(), self.labels());
        Value::Mapping(m)
    }

    /// The ConfigMap holding the scenario and its files.
    pub fn config_map(&self) -> Value {
        let (mut data, mut binary) = (Mapping::new(), Mapping::new());
        for f in self.files {
            match &f.contents {
                Contents::Text(t) => data.insert(f.key.as_str().into(), t.as_str().into()),
                Contents::Binary(b) => binary.insert(f.key.as_str().into(), b.as_str().into()),
            };
        }
        let mut m = Mapping::new();
        m.insert("apiVersion".into(), "v1".into());
        m.insert("kind".into(), "ConfigMap".into());
        m.insert("metadata".into(), self.metadata(&self.config_map_name()));
        m.insert("data".into(), Value::Mapping(data));
        if !binary.is_empty() {
            m.insert("binaryData".into(), Value::Mapping(binary));
        }
        Value::Mapping(m)
    }

    /// The Indexed Job: one pod per shard.
    pub fn job(&self) -> Value {
        let n = self.workers;
        map([
            ("apiVersion", "batch/v1".into()),
            ("kind", "Job".into()),
            ("metadata", self.metadata(self.name)),
            (
                "spec",
                map([
                    ("completionMode", "Indexed".into()),
                    ("completions", n.into()),
                    ("parallelism", n.into()),
                    ("backoffLimit", 0.into()),
                    (
                        "template",
                        map([
                            ("metadata", map([("labels", self.labels())])),
                            ("spec", self.pod_spec()),
                        ]),
                    ),
                ]),
            ),
        ])
    }

    fn pod_spec(&self) -> Value {
        let items: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                map([
                    ("key", f.key.as_str().into()),
                    ("path", f.path.as_str().into()),
                ])
            })
            .collect();
        let spread = map([(
            "preferredDuringSchedulingIgnoredDuringExecution",
            Value::Sequence(vec![map([
                ("weight", 100.into()),
                (
                    "podAffinityTerm",
                    map([
                        (
                            "labelSelector",
                            map([(
                                "matchLabels",
                                map([("app.kubernetes.io/instance", self.name.into())]),
                            )]),
                        ),
                        ("topologyKey", "kubernetes.io/hostname".into()),
                    ]),
                ),
            ])]),
        )]);
        map([
            ("restartPolicy", "Never".into()),
            ("automountServiceAccountToken", false.into()),
            (
                "securityContext",
                map([
                    ("runAsNonRoot", true.into()),
                    ("runAsUser", RUN_AS_USER.into()),
                    ("runAsGroup", RUN_AS_USER.into()),
                    ("seccompProfile", map([("type", "RuntimeDefault".into())])),
                ]),
            ),
            ("affinity", map([("podAntiAffinity", spread)])),
            ("containers", Value::Sequence(vec![self.container()])),
            (
                "volumes",
                Value::Sequence(vec![
                    map([
                        ("name", "scenario".into()),
                        (
                            "configMap",
                            map([
                                ("name", self.config_map_name().into()),
                                ("items", Value::Sequence(items)),
                            ]),
                        ),
                    ]),
                    map([
                        ("name", "tmp".into()),
                        ("emptyDir", Value::Mapping(Mapping::new())),
                    ]),
                ]),
            ),
        ])
    }

    fn container(&self) -> Value {
        let r = self.resources;
        let index = map([
            ("name", "JOB_COMPLETION_INDEX".into()),
            (
                "valueFrom",
                map([(
                    "fieldRef",
                    map([(
                        "fieldPath",
                        "metadata.annotations['batch.kubernetes.io/job-completion-index']".into(),
                    )]),
                )]),
            ),
        ]);
        map([
            ("name", "barrage".into()),
            ("image", self.image.into()),
            ("imagePullPolicy", "IfNotPresent".into()),
            ("command", strings(&["barrage"])),
            ("args", strings(&self.args)),
            ("env", Value::Sequence(vec![index])),
            (
                "resources",
                map([
                    (
                        "requests",
                        map([
                            ("cpu", r.cpu_request().into()),
                            ("memory", r.memory_request().into()),
                        ]),
                    ),
                    ("limits", map([("memory", r.memory_limit().into())])),
                ]),
            ),
            (
                "securityContext",
                map([
                    ("allowPrivilegeEscalation", false.into()),
                    ("readOnlyRootFilesystem", true.into()),
                    ("runAsNonRoot", true.into()),
                    ("runAsUser", RUN_AS_USER.into()),
                    ("capabilities", map([("drop", strings(&["ALL"]))])),
                ]),
            ),
            (
                "volumeMounts",
                Value::Sequence(vec![
                    map([
                        ("name", "scenario".into()),
                        ("mountPath", SCENARIO_DIR.into()),
                        ("readOnly", true.into()),
                    ]),
                    map([("name", "tmp".into()), ("mountPath", "/tmp".into())]),
                ]),
            ),
        ])
    }
}
