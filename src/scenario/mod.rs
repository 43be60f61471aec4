//! Scenario files: a YAML description of a load test, parsed into validated
//! types. Every problem is reported as a [`ScenarioError`] that points at the
//! file, line, column and field.

mod error;
mod message;
mod model;
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
pub use source_ips::parse_source_ips;
pub use target::{Target, WsUrl};
pub use template::{Template, TemplateVars};
pub use threshold::{CmpOp, LatencyMetric, Stat, Threshold, ThresholdMetric};
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
    parse(&label, &text)
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
    serde_path_to_error::deserialize(de).map_err(|e| ScenarioError::from_yaml(file_label, e))
}
