//! The single error type of the scenario module and its construction from
//! deserializer errors.

use std::fmt;

/// Any problem found while loading or parsing a scenario file.
///
/// Displays as `FILE:LINE:COLUMN: FIELD: MESSAGE`, or `FILE:LINE:COLUMN: MESSAGE`
/// when the problem is not tied to one field (for example a YAML syntax error),
/// or `FILE: MESSAGE` when no position is known (the file cannot be read).
/// Line and column are 1-based; both are 0 when no position is known.
#[derive(Debug, thiserror::Error)]
#[error("{file}{at}: {prefix}{message}", at = Position(*line, *column), prefix = FieldPrefix(field))]
pub struct ScenarioError {
    /// The file label given to `parse`, or the path given to `load`.
    pub file: String,
    /// 1-based line of the offending YAML node; 0 when unknown.
    pub line: usize,
    /// 1-based column of the offending YAML node; 0 when unknown.
    pub column: usize,
    /// Dotted path of the offending field, e.g. `phases[1].rate`; `None` for
    /// problems with the document as a whole.
    pub field: Option<String>,
    /// What is wrong, in plain words.
    pub message: String,
}

/// Writes `:LINE:COLUMN` when a position is known, nothing otherwise.
struct Position(usize, usize);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position(0, _) => Ok(()),
            Position(line, column) => write!(f, ":{line}:{column}"),
        }
    }
}

/// Writes `FIELD: ` when a field is known, nothing otherwise.
struct FieldPrefix<'a>(&'a Option<String>);

impl fmt::Display for FieldPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(field) => write!(f, "{field}: "),
            None => Ok(()),
        }
    }
}

impl ScenarioError {
    /// Converts a tracked YAML deserialization error into a located error.
    pub(crate) fn from_yaml(
        file: &str,
        err: serde_path_to_error::Error<serde_yaml::Error>,
    ) -> ScenarioError {
        let path = err.path().to_string();
        ScenarioError::located(file, Some(path), err.inner())
    }

    /// Converts a YAML error that is not tied to a field (e.g. bad syntax).
    pub(crate) fn from_syntax(file: &str, err: &serde_yaml::Error) -> ScenarioError {
        ScenarioError::located(file, None, err)
    }

    /// Builds the error from an optional recorded path and the YAML error.
    fn located(file: &str, path: Option<String>, inner: &serde_yaml::Error) -> ScenarioError {
        let (line, column) = inner
            .location()
            .map(|loc| (loc.line(), loc.column()))
            .unwrap_or((0, 0));
        let mut message = inner.to_string();
        // serde_yaml appends " at line L column C" and may prefix its own
        // path; both are reported separately, so strip them.
        let at = format!(" at line {line} column {column}");
        if let Some(pos) = message.find(&at) {
            message.replace_range(pos..pos + at.len(), "");
        }
        let field = path.filter(|p| p != "." && !p.is_empty());
        if let Some(field) = &field
            && let Some((head, rest)) = message.split_once(": ")
            && is_path_prefix(head, field)
        {
            message = rest.to_string();
        }
        ScenarioError {
            file: file.to_string(),
            line,
            column,
            field,
            message,
        }
    }
}

/// Whether `head` equals `field` or is a parent path of it (so a message
/// starting with `head: ` repeats location information we already report).
fn is_path_prefix(head: &str, field: &str) -> bool {
    match field.strip_prefix(head) {
        Some(rest) => rest.is_empty() || rest.starts_with('.') || rest.starts_with('['),
        None => false,
    }
}
