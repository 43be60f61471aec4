//! Writes a report set to disk: `report.json` and `summary.md`, each written
//! to a temporary file in the same folder and renamed into place, so a crash
//! never leaves a half-written report.

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::model::Report;
use super::table::{tables, verdict_line};

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
    let safe: String = report
        .scenario
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join(safe).join(report.started_at.replace(':', "-"))
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
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)
}

/// The Markdown summary.
pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "# barrage: {}\n\n**{}**\n\n",
        r.scenario.name,
        verdict_line(r)
    );
    for t in tables(r) {
        out.push_str(&t.to_markdown());
        out.push('\n');
    }
    out
}

/// Writes `report.json` and `summary.md` into `dir` (created if missing);
/// returns the path of `report.json`.
pub fn write_set(r: &Report, dir: &Path) -> Result<PathBuf, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError {
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(r).expect("the report model serializes");
    let path = dir.join("report.json");
    write_atomic(&path, &json)?;
    write_atomic(&dir.join("summary.md"), markdown(r).as_bytes())?;
    Ok(path)
}
