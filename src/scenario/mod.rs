//! Scenario files: a YAML description of a load test, parsed into validated
//! types. Every problem is reported as a [`ScenarioError`] that points at the
//! file, line, column and field.

mod error;
mod message;
mod model;
mod protocol;
mod source_ips;
mod target;
mod template;
mod threshold;
mod units;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::ScenarioError;
pub use message::{DEFAULT_TEMPLATE, Message};
pub use model::{Connections, Phase, PhaseRate, Scenario};
pub use protocol::{
    CloseSettings, Compression, DEFAULT_MAX_MESSAGE, DeflateOptions, Headers, PingSettings,
    TlsSettings, is_secret_header, redact_secrets, substitute_env,
};
pub use source_ips::parse_source_ips;
pub use target::{Target, WsUrl};
pub use template::{Template, TemplateVars};
pub use threshold::{CmpOp, Counter, ERROR_KINDS, LatencyMetric, Stat, Threshold, ThresholdMetric};
pub use units::{Rate, parse_duration, parse_rate, parse_size};

/// Reads and parses a scenario file. A read failure is reported as a
/// [`ScenarioError`] naming the file, at line 0 column 0.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: label.clone(),
        line: 0,
        column: 0,
        field: None,
        message: format!("cannot read scenario file: {e}"),
    })?;
    let mut scenario = parse(&label, &text)?;
    resolve_tls_files(&label, &text, path, &mut scenario)?;
    Ok(scenario)
}

/// Makes the `tls:` file paths relative to the scenario file's folder and,
/// for a `wss://` target, checks that they exist, so a typo stops the run
/// with its line before any socket opens. (A target changed to wss:// on the
/// command line gets the same check, by path, when the TLS config is built.)
fn resolve_tls_files(
    label: &str,
    text: &str,
    path: &Path,
    s: &mut Scenario,
) -> Result<(), ScenarioError> {
    let base = path.parent().unwrap_or(Path::new(""));
    let wss = matches!(&s.target, Target::Url(u) if u.tls);
    let tls = &mut s.tls;
    for (key, slot) in [
        ("ca", &mut tls.ca),
        ("cert", &mut tls.cert),
        ("key", &mut tls.key),
    ] {
        let Some(file) = slot.as_mut() else { continue };
        if file.is_relative() {
            *file = base.join(&*file);
        }
        if wss && !file.is_file() {
            let needle = format!("{key}:");
            let (line, column) = text
                .lines()
                .enumerate()
                .find_map(|(n, l)| {
                    l.find(&needle)
                        .filter(|_| l.contains("tls") || l.starts_with(' '))
                        .map(|c| (n + 1, c + 1))
                })
                .unwrap_or((0, 0));
            return Err(ScenarioError {
                file: label.to_string(),
                line,
                column,
                field: Some(format!("tls.{key}")),
                message: format!("no such file: {}", file.display()),
            });
        }
    }
    Ok(())
}

/// Parses scenario YAML. `file_label` is used only in error messages.
pub fn parse(file_label: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let has_content = text.lines().any(|l| {
        let l = l.trim();
        !(l.is_empty() || l.starts_with('#') || l == "---" || l == "...")
    });
    if !has_content {
        return Err(ScenarioError {
            file: file_label.to_string(),
            line: 1,
            column: 1,
            field: None,
            message:
                "the file is empty; a scenario needs at least name, target, connections and phases"
                    .to_string(),
        });
    }
    // A first pass over the bare YAML reports syntax errors without pinning
    // them on whichever field happened to be read when the parser failed.
    if let Err(e) = serde_yaml::from_str::<serde::de::IgnoredAny>(text) {
        return Err(ScenarioError::from_syntax(file_label, &e));
    }
    let de = serde_yaml::Deserializer::from_str(text);
    let scenario: Scenario = serde_path_to_error::deserialize(de)
        .map_err(|e| ScenarioError::from_yaml(file_label, e))?;
    check_threshold_phases(file_label, text, &scenario)?;
    Ok(scenario)
}

/// A threshold scoped to a phase (`steady: rtt.p99 < 20ms`) must name one of
/// the scenario's phases. Checked once the whole file is read; the error
/// points at the line where the threshold is written.
fn check_threshold_phases(file: &str, text: &str, s: &Scenario) -> Result<(), ScenarioError> {
    for (i, t) in s.thresholds.iter().enumerate() {
        let Some(phase) = &t.phase else { continue };
        if s.phases.iter().any(|p| &p.name == phase) {
            continue;
        }
        let known: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
        let (line, column) = text
            .lines()
            .enumerate()
            .find_map(|(n, l)| l.find(t.expr.as_str()).map(|c| (n + 1, c + 1)))
            .unwrap_or((0, 0));
        return Err(ScenarioError {
            file: file.to_string(),
            line,
            column,
            field: Some(format!("thresholds[{i}]")),
            message: format!(
                "no phase named {phase:?}; the phases are {}",
                known.join(", ")
            ),
        });
    }
    Ok(())
}
