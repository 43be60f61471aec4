//! Writes a report set to disk: `report.json` and `summary.md`, each written
//! to a temporary file in the same folder and renamed into place, so a crash
//! never leaves a half-written report.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::model::Report;
use super::table::{Detail, tables, verdict_line};
use crate::scenario::LatencyMetric;

/// A report could not be written.
#[derive(Debug, Error)]
#[error("cannot write report to {path}: {source}")]
pub struct ReportError {
    /// The file or folder that failed.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

/// The folder a run's reports go to when `--out` is not given:
/// `<base>/<scenario name>/<UTC timestamp>`.
pub fn default_dir(base: &Path, report: &Report) -> PathBuf {
    base.join(safe_name(&report.scenario.name))
        .join(report.started_at.replace(':', "-"))
}

/// A scenario name as a folder name: letters, digits, `-` and `_` kept,
/// anything else `_`.
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `bytes` to `path` atomically (temp file + fsync + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |source| ReportError {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    // Created anew, never through what is already there: a leftover or a
    // planted symlink is removed (the link, not its target) and O_EXCL
    // refuses to follow one planted again meanwhile.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(err)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            drop(f);
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        // A full disk must not leave the temp file behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Checks, before anything runs, that a report set can be written into
/// `dir`, leaving nothing behind: every name fits (255 bytes), the nearest
/// folder that exists is a folder a file can be created in, and
/// `report.json` there is not a folder. A run whose report could not be
/// written would be lost.
pub fn check_destination(dir: &Path) -> Result<(), ReportError> {
    let err = |path: &Path, kind: std::io::ErrorKind, what: &str| ReportError {
        path: path.to_path_buf(),
        source: std::io::Error::new(kind, what.to_string()),
    };
    if dir.components().any(|c| c.as_os_str().len() > 255) {
        return Err(err(
            dir,
            std::io::ErrorKind::InvalidInput,
            "a name in it is longer than 255 bytes",
        ));
    }
    let json = dir.join("report.json");
    if json.is_dir() {
        return Err(err(
            &json,
            std::io::ErrorKind::IsADirectory,
            "it is a folder",
        ));
    }
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => {
                existing = Path::new(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        return Err(err(
            existing,
            std::io::ErrorKind::NotADirectory,
            "it is not a folder",
        ));
    }
    let probe = existing.join(format!(".barrage-probe-{}", std::process::id()));
    let _ = std::fs::remove_file(&probe);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|source| ReportError {
            path: existing.to_path_buf(),
            source,
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The Markdown summary.
pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "# barrage: {}\n\n**{}**\n\n",
        r.scenario.name,
        verdict_line(r)
    );
    for t in tables(r, Detail::All) {
        out.push_str(&t.to_markdown());
        out.push('\n');
    }
    out
}

/// A file of the report set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `report.json`: the full model, from which every other file can be re-rendered.
    Json,
    /// `summary.md`: the summary tables in Markdown.
    Md,
    /// `junit.xml`: one test case per threshold.
    Junit,
    /// `<metric>.hlog`: HdrHistogram interval logs, one histogram per second.
    Hlog,
    /// `report.html`: one self-contained page with charts.
    Html,
}

impl Format {
    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Md => "md",
            Format::Junit => "junit",
            Format::Hlog => "hlog",
            Format::Html => "html",
        }
    }

    /// Every format, the default set.
    pub const ALL: [Format; 5] = [
        Format::Json,
        Format::Md,
        Format::Junit,
        Format::Hlog,
        Format::Html,
    ];
}

/// Writes the chosen files of the report set into `dir` (created if
/// missing), each atomically; returns the path of `report.json` (which is
/// where it is, or would be).
pub fn write_set(r: &Report, dir: &Path, formats: &[Format]) -> Result<PathBuf, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join("report.json");
    for f in formats {
        match f {
            Format::Json => {
                let json = serde_json::to_vec_pretty(r).expect("the report model serializes");
                write_atomic(&path, &json)?;
            }
            Format::Md => write_atomic(&dir.join("summary.md"), markdown(r).as_bytes())?,
            Format::Junit => {
                write_atomic(&dir.join("junit.xml"), super::junit::render(r).as_bytes())?
            }
            Format::Html => {
                write_atomic(&dir.join("report.html"), super::html::render(r).as_bytes())?
            }
            Format::Hlog => {
                for m in LatencyMetric::ALL {
                    if let Some(log) = super::hlog::render(r, m) {
                        write_atomic(&dir.join(format!("{}.hlog", m.name())), &log)?;
                    }
                }
            }
        }
    }
    Ok(path)
}

/// Points `<dir>/../latest` at `dir` (a relative symlink, replaced
/// atomically), so the newest run of a scenario is always at
/// `reports/<scenario>/latest/`.
pub fn point_latest(dir: &Path) -> Result<(), ReportError> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Ok(());
    };
    let latest = parent.join("latest");
    let tmp = parent.join(".latest.tmp");
    let err = |source| ReportError {
        path: latest.clone(),
        source,
    };
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp).map_err(err)?;
    std::fs::rename(&tmp, &latest).map_err(err)
}
