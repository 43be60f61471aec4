//! The files a pod needs: the scenario and every file it references,
//! mounted at the same paths relative to the scenario, so the scenario reads
//! them unchanged. Secret files (the scenario itself, whose headers may hold
//! tokens, and TLS private keys) go into a Secret, the others (feeders,
//! certificates) into a ConfigMap; one projected volume mounts both.

use std::path::{Component, Path};

use base64::Engine;

use super::K8sError;
use crate::scenario::{Scenario, TlsSettings};

/// Most bytes the files of the ConfigMap, and those of the Secret, may hold
/// together: each object is limited to 1 MiB, metadata included.
pub const MAX_CONFIGMAP_BYTES: usize = 900 << 10;

/// One file of the ConfigMap or of the Secret.
#[derive(Debug, Clone, PartialEq)]
pub struct MountedFile {
    /// The object's key: `path` with `/` as `__` (keys cannot hold `/`),
    /// unique among all the files.
    pub key: String,
    /// Where it is mounted, relative to the scenario's folder, `/`-separated.
    pub path: String,
    /// What it holds.
    pub contents: Contents,
    /// In the Secret (the scenario, a private key), not the ConfigMap.
    pub secret: bool,
}

/// A file's contents as the ConfigMap or Secret stores them.
#[derive(Debug, Clone, PartialEq)]
pub enum Contents {
    /// UTF-8 text, under `data` (a Secret's `stringData`).
    Text(String),
    /// Anything else, base64 under `binaryData` (a Secret's `data`).
    Binary(String),
}

impl Contents {
    fn new(bytes: Vec<u8>) -> Contents {
        match String::from_utf8(bytes) {
            Ok(text) => Contents::Text(text),
            Err(e) => {
                Contents::Binary(base64::engine::general_purpose::STANDARD.encode(e.as_bytes()))
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Contents::Text(s) | Contents::Binary(s) => s.len(),
        }
    }
}

/// Only the `tls:` section, to read its paths as written: `scenario::load`
/// has already joined them to the scenario's folder, which a pod does itself.
#[derive(serde::Deserialize)]
struct TlsAsWritten {
    #[serde(default)]
    tls: TlsSettings,
}

/// Reads the scenario file (first) and the files it references: the
/// `data.file` feeder, and with `tls_used` (a wss:// target) the `tls`
/// certificate files. Referenced paths must be relative, without `..`.
/// The scenario and `tls.key` are secret.
pub fn collect(file: &Path, s: &Scenario, tls_used: bool) -> Result<Vec<MountedFile>, K8sError> {
    let read = |field: &str, path: &Path| {
        std::fs::read(path).map_err(|e| K8sError::Read {
            field: field.to_string(),
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    };
    let bytes = read("scenario", file)?;
    let file_name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| K8sError::Read {
            field: "scenario".into(),
            path: file.display().to_string(),
            reason: "the file name is not UTF-8 text".into(),
        })?
        .to_string();
    let mut referenced: Vec<(&str, std::path::PathBuf)> = Vec::new();
    if let Some(d) = &s.data {
        referenced.push(("data.file", d.file.clone()));
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if tls_used {
        let tls = serde_yaml::from_str::<TlsAsWritten>(text)
            .map(|t| t.tls)
            .unwrap_or_default();
        for (field, path) in [
            ("tls.ca", tls.ca),
            ("tls.cert", tls.cert),
            ("tls.key", tls.key),
        ] {
            referenced.extend(path.map(|p| (field, p)));
        }
    }
    let mut files = vec![MountedFile {
        key: unique_key(&[], &file_name),
        path: file_name,
        contents: Contents::new(bytes),
        secret: true,
    }];
    let base = file.parent().unwrap_or(Path::new(""));
    for (field, written) in referenced {
        let path = relative_path(field, &written)?;
        let secret = is_secret(field);
        if let Some(f) = files.iter_mut().find(|f| f.path == path) {
            // One file named twice (a key also given as the feeder) is as
            // secret as its most secret use.
            f.secret |= secret;
            continue;
        }
        let contents = Contents::new(read(field, &base.join(&written))?);
        files.push(MountedFile {
            key: unique_key(&files, &path),
            path,
            contents,
            secret,
        });
    }
    for (object, secret) in [("ConfigMap", false), ("Secret", true)] {
        let total: usize = files
            .iter()
            .filter(|f| f.secret == secret)
            .map(|f| f.contents.len())
            .sum();
        if total > MAX_CONFIGMAP_BYTES {
            return Err(K8sError::TooLarge {
                object,
                bytes: total,
            });
        }
    }
    Ok(files)
}

/// Whether the file the scenario field `field` names goes into the Secret:
/// private keys do; certificates and feeders are not secret.
fn is_secret(field: &str) -> bool {
    matches!(field, "tls.key")
}

/// The variables of the `${env:NAME}` in the scenario's strings as
/// written (any field), each once, in file order: a pod must get them from
/// its env. `text` is the scenario file, which `scenario::load` has read
/// already.
pub fn env_names(text: &str) -> Vec<String> {
    let doc = serde_yaml::from_str::<serde_yaml::Value>(text).unwrap_or_default();
    let mut names = Vec::<String>::new();
    crate::scenario::walk_strings(&doc, &mut |raw| {
        for n in crate::scenario::env_names(raw) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    });
    names
}

/// `path` as a mount path: relative, `/`-separated, `.` dropped. An absolute
/// path or one with `..` would point outside the mounted folder.
pub fn relative_path(field: &str, path: &Path) -> Result<String, K8sError> {
    let outside = || K8sError::NotRelative {
        field: field.to_string(),
        path: path.display().to_string(),
    };
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().ok_or_else(outside)?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(outside());
            }
        }
    }
    if parts.is_empty() {
        return Err(outside());
    }
    Ok(parts.join("/"))
}

/// A ConfigMap key for `path` (keys allow only `[-._a-zA-Z0-9]`), not used
/// by any of `files`.
fn unique_key(files: &[MountedFile], path: &str) -> String {
    let flat: String = path
        .replace('/', "__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let taken = |k: &str| files.iter().any(|f| f.key == k);
    let mut key = flat.clone();
    let mut n = 2;
    while taken(&key) {
        key = format!("{flat}-{n}");
        n += 1;
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_scenario_folder() {
        let ok = |p: &str| relative_path("data.file", Path::new(p)).unwrap();
        assert_eq!(ok("data/users.csv"), "data/users.csv");
        assert_eq!(ok("./data/./users.csv"), "data/users.csv");
        for bad in ["/etc/users.csv", "../users.csv", "data/../../x", "."] {
            let e = relative_path("data.file", Path::new(bad)).unwrap_err();
            assert!(e.to_string().starts_with("data.file: "), "{e}");
        }
    }

    #[test]
    fn env_names_come_from_every_string_as_written() {
        let text = "name: x\n# ${env:IN_A_COMMENT}\nheaders:\n  A: \"Bearer ${env:TOKEN}\"\n  \
                    B: ${env:ID}-${env:TOKEN}\n  C: plain\nmessage: { text: '${env:MSG} $${env:ESCAPED}' }\n\
                    ${env:A_KEY}: 1\n";
        assert_eq!(env_names(text), ["TOKEN", "ID", "MSG"]);
        assert!(env_names("name: x\n").is_empty());
    }

    #[test]
    fn keys_are_flat_and_unique() {
        assert_eq!(unique_key(&[], "data/users.csv"), "data__users.csv");
        assert_eq!(unique_key(&[], "my data/ü.csv"), "my_data___.csv");
        let first = MountedFile {
            key: "a__b".into(),
            path: "a/b".into(),
            contents: Contents::Text(String::new()),
            secret: false,
        };
        assert_eq!(unique_key(&[first], "a__b"), "a__b-2");
    }
}
