//! The ConfigMap, the Secret and the Indexed Job as YAML values
//! (serialized by serde_yaml, so quoting is always right).

use serde_yaml::{Mapping, Value};

use super::files::{Contents, MountedFile};
use super::sizing::Resources;

/// Where the ConfigMap's and the Secret's files are mounted in the pod.
pub const SCENARIO_DIR: &str = "/scenario";

/// Mode of the mounted files: read-only to their owner (root) and group,
/// which `fsGroup` makes the container's group; nothing for others.
pub const FILE_MODE: u32 = 0o440;

/// The variable the pod gets from the Job controller, never from a Secret.
pub const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

/// The shard's `--out` folder, on an emptyDir (the root filesystem is read-only).
pub const OUT_DIR: &str = "/tmp/barrage";

/// The user the container runs as (distroless's `nonroot`).
pub const RUN_AS_USER: u32 = 65532;

/// Everything the manifests are made of.
pub struct Plan<'a> {
    /// Job name; the ConfigMap is `<name>-scenario`, the Secret
    /// `<name>-secret`, the user's Secret of variables `<name>-env`.
    pub name: &'a str,
    /// `metadata.namespace` of every object, when given.
    pub namespace: Option<&'a str>,
    /// Container image.
    pub image: &'a str,
    /// Shards.
    pub workers: u32,
    /// The container's args.
    pub args: Vec<String>,
    /// The files of the ConfigMap and of the Secret, the scenario first.
    pub files: &'a [MountedFile],
    /// The variables of `${env:NAME}` in the scenario, taken from the
    /// Secret `<name>-env`: Secret keys, also valid env names.
    pub env: &'a [String],
    /// One shard's resources.
    pub resources: &'a Resources,
    /// How long the Job may run before Kubernetes stops it
    /// (`activeDeadlineSeconds`): the lead, the run, its ramps and a margin.
    pub deadline: std::time::Duration,
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

    /// The Secret's name.
    pub fn secret_name(&self) -> String {
        format!("{}-secret", self.name)
    }

    /// The name of the Secret of `${env:NAME}` values the user creates.
    pub fn env_secret_name(&self) -> String {
        format!("{}-env", self.name)
    }

    /// Whether there are files that are not secret, for a ConfigMap.
    pub fn has_config_map(&self) -> bool {
        self.files.iter().any(|f| !f.secret)
    }

    /// The files of the Secret (`true`) or of the ConfigMap.
    fn files(&self, secret: bool) -> impl Iterator<Item = &MountedFile> {
        self.files.iter().filter(move |f| f.secret == secret)
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

    /// The text and the binary (base64) files of the Secret or of the
    /// ConfigMap, by key.
    fn contents(&self, secret: bool) -> (Mapping, Mapping) {
        let (mut text, mut binary) = (Mapping::new(), Mapping::new());
        for f in self.files(secret) {
            match &f.contents {
                Contents::Text(t) => text.insert(f.key.as_str().into(), t.as_str().into()),
                Contents::Binary(b) => binary.insert(f.key.as_str().into(), b.as_str().into()),
            };
        }
        (text, binary)
    }

    /// The ConfigMap holding the files that are not secret: feeders and
    /// certificates.
    pub fn config_map(&self) -> Value {
        let (data, binary) = self.contents(false);
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

    /// The Secret holding the scenario (its headers may hold tokens) and the
    /// private keys: text as `stringData`, anything else base64 as `data`.
    pub fn secret(&self) -> Value {
        let (text, binary) = self.contents(true);
        let mut m = Mapping::new();
        m.insert("apiVersion".into(), "v1".into());
        m.insert("kind".into(), "Secret".into());
        m.insert("metadata".into(), self.metadata(&self.secret_name()));
        m.insert("type".into(), "Opaque".into());
        m.insert("stringData".into(), Value::Mapping(text));
        if !binary.is_empty() {
            m.insert("data".into(), Value::Mapping(binary));
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
                        "activeDeadlineSeconds",
                        self.deadline.as_secs().max(1).into(),
                    ),
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

    /// The sources of the projected `/scenario` volume: the ConfigMap's
    /// files (when there are any), then the Secret's.
    fn volume_sources(&self) -> Value {
        let items = |secret: bool| -> Value {
            self.files(secret)
                .map(|f| {
                    map([
                        ("key", f.key.as_str().into()),
                        ("path", f.path.as_str().into()),
                    ])
                })
                .collect()
        };
        let mut sources = Vec::new();
        if self.has_config_map() {
            sources.push(map([(
                "configMap",
                map([
                    ("name", self.config_map_name().into()),
                    ("items", items(false)),
                ]),
            )]));
        }
        sources.push(map([(
            "secret",
            map([("name", self.secret_name().into()), ("items", items(true))]),
        )]));
        Value::Sequence(sources)
    }

    fn pod_spec(&self) -> Value {
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
                    // The group of the mounted files, which are mode 0440.
                    ("fsGroup", RUN_AS_USER.into()),
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
                            "projected",
                            map([
                                ("defaultMode", FILE_MODE.into()),
                                ("sources", self.volume_sources()),
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
            ("name", INDEX_VAR.into()),
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
            (
                "env",
                std::iter::once(index)
                    .chain(self.env.iter().map(|name| {
                        map([
                            ("name", name.as_str().into()),
                            (
                                "valueFrom",
                                map([(
                                    "secretKeyRef",
                                    map([
                                        ("name", self.env_secret_name().into()),
                                        ("key", name.as_str().into()),
                                        ("optional", false.into()),
                                    ]),
                                )]),
                            ),
                        ])
                    }))
                    .collect(),
            ),
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
