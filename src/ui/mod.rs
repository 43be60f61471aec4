//! Everything that writes to the terminal. Reads run data and reports;
//! never touches the hot path.

pub mod dashboard;
pub mod plan;
pub mod progress;
pub mod summary;

use std::io::Write;

/// Prints a warning for the user to stderr (a closed stderr, say a shard's
/// whose parent is gone, is not an error of its own).
pub fn warn(msg: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "warning: {msg}");
}

/// Prints an error for the user to stderr.
pub fn error(msg: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "error: {msg}");
}
