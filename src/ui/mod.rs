//! Everything that writes to the terminal. Reads run data and reports;
//! never touches the hot path.

pub mod dashboard;
pub mod log;
pub mod plan;
pub mod progress;
pub mod summary;

use std::io::Write;

/// Writes one line to stderr in a single `write`. Rust's stderr is
/// unbuffered, so `eprintln!` with arguments writes piece by piece and the
/// lines of processes sharing one pipe (`serve --processes`, shards) would
/// interleave mid-line. A closed stderr, say a shard's whose parent is gone,
/// is not an error of its own.
pub fn line(text: &str) {
    let mut buf = String::with_capacity(text.len() + 1);
    buf.push_str(text);
    buf.push('\n');
    let _ = std::io::stderr().lock().write_all(buf.as_bytes());
}

/// `format!` then [`line`]: the way the CLI and UI print to stderr.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::ui::line(&format!($($arg)*))
    };
}

/// Prints a warning for the user to stderr.
pub fn warn(msg: &dyn std::fmt::Display) {
    line(&format!("warning: {msg}"));
}

/// Prints an error for the user to stderr.
pub fn error(msg: &dyn std::fmt::Display) {
    line(&format!("error: {msg}"));
}
