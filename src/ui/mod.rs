//! Everything that writes to the terminal. Reads snapshots and reports; never
//! touches the hot path.

pub mod dashboard;
pub mod plan;
pub mod progress;
pub mod summary;

/// Prints a warning for the user to stderr.
pub fn warn(msg: &dyn std::fmt::Display) {
    eprintln!("warning: {msg}");
}

/// Prints an error for the user to stderr.
pub fn error(msg: &dyn std::fmt::Display) {
    eprintln!("error: {msg}");
}
