//! The final summary printed after every run.

use std::path::Path;

use crate::report::Report;
use crate::report::table::{Detail, tables, verdict_line};

/// How the final summary is printed (`--quiet`, `--summary`, `-v`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Text or JSON (`--summary`, default text).
    pub form: Form,
    /// Only the verdict line (`--quiet`); JSON is printed whole regardless.
    pub quiet: bool,
    /// Every counter, zero or not, and each phase's percentiles (`-v`).
    pub all: bool,
}

impl Style {
    /// The tables' rows: every counter with `-v`, what happened otherwise.
    pub fn detail(self) -> Detail {
        if self.all { Detail::All } else { Detail::Brief }
    }
}

/// `--summary`: what the final summary is written as on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Form {
    /// Tables for people: the verdict and thresholds first.
    #[default]
    Text,
    /// One JSON object for scripts: the report's verdict, thresholds,
    /// totals and metrics as report.json has them, and where it is.
    Json,
}

/// The summary as text: the verdict line, then the tables.
pub fn render(r: &Report, detail: Detail) -> String {
    let mut out = verdict_line(r);
    out.push_str("\n\n");
    for t in tables(r, detail) {
        if t.rows.is_empty() {
            continue;
        }
        out.push_str(&t.to_text());
        out.push('\n');
    }
    out
}

/// The report's fields that `--summary json` prints: report.json's own
/// values (one serialisation, so they agree), without the per-second
/// timeline, the raw run data and the encoded histograms.
const JSON_FIELDS: [&str; 16] = [
    "schema",
    "barrage_version",
    "scenario",
    "started_at",
    "duration_s",
    "verdict",
    "error",
    "interrupted",
    "aborted",
    "saturated",
    "thresholds",
    "search",
    "totals",
    "metrics",
    "roles",
    "shard",
];

/// The `--summary json` object: [`JSON_FIELDS`] of the report and
/// `report`, the path of report.json.
pub fn json(r: &Report, report_path: &Path) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    if let Ok(serde_json::Value::Object(mut all)) = serde_json::to_value(r) {
        for k in JSON_FIELDS {
            if let Some(v) = all.remove(k) {
                out.insert(k.to_string(), v);
            }
        }
    }
    // The encoded histograms are for `barrage merge` and hlog readers,
    // which read report.json.
    if let Some(serde_json::Value::Object(metrics)) = out.get_mut("metrics") {
        for m in metrics.values_mut() {
            if let serde_json::Value::Object(m) = m {
                m.remove("histogram");
            }
        }
    }
    out.insert(
        "report".into(),
        serde_json::Value::String(report_path.display().to_string()),
    );
    serde_json::Value::Object(out)
}

/// Prints the summary to stdout in `style`, and the report's location to
/// stderr unless quiet.
pub fn print(r: &Report, report_path: &Path, style: Style) {
    match style.form {
        Form::Json => {
            let text = serde_json::to_string_pretty(&json(r, report_path)).unwrap_or_default();
            println!("{text}");
            return;
        }
        Form::Text if style.quiet => println!("{}", verdict_line(r)),
        Form::Text => print!("{}", render(r, style.detail())),
    }
    if !style.quiet {
        crate::say!("report: {}", report_path.display());
    }
}
