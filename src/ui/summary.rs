//! The final summary printed after every run.

use std::path::Path;

use crate::report::Report;
use crate::report::table::{tables, verdict_line};

/// The summary as text: verdict, then every table.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    for t in tables(r) {
        out.push_str(&t.to_text());
        out.push('\n');
    }
    out.push_str(&verdict_line(r));
    out.push('\n');
    out
}

/// Prints the summary to stdout and the report location to stderr.
pub fn print(r: &Report, report_path: &Path) {
    print!("{}", render(r));
    crate::say!("report: {}", report_path.display());
}
