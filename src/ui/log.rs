//! Where log lines go (`-v`, `-vv`, `RUST_LOG`): to stderr, one `write`
//! a line, so lines of processes sharing a pipe do not interleave. While
//! the live dashboard owns the terminal they are held instead (the latest
//! [`HELD_MAX`], the older ones counted) and printed once it has restored
//! the terminal. The engine only emits `tracing` events; [`init`], called
//! by the binary, decides whether and what is printed.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Most log lines held while the dashboard runs; older ones are dropped
/// and counted.
pub const HELD_MAX: usize = 1000;

/// Lines held while the dashboard owns the terminal.
#[derive(Debug, Default)]
struct Held {
    on: bool,
    lines: VecDeque<Vec<u8>>,
    dropped: u64,
}

impl Held {
    const fn new() -> Self {
        Held {
            on: false,
            lines: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Keeps `line`, dropping the oldest beyond `max`.
    fn push(&mut self, line: Vec<u8>, max: usize) {
        self.lines.push_back(line);
        while self.lines.len() > max {
            self.lines.pop_front();
            self.dropped += 1;
        }
    }

    /// Stops holding; what was held, as the bytes to print: a line saying
    /// how many were dropped (they came first), then the kept lines.
    fn release(&mut self) -> Vec<u8> {
        self.on = false;
        let mut out = Vec::new();
        if self.dropped > 0 {
            out.extend_from_slice(
                format!(
                    "{} log lines dropped while the dashboard ran (the last {} follow)\n",
                    self.dropped,
                    self.lines.len()
                )
                .as_bytes(),
            );
        }
        for l in self.lines.drain(..) {
            out.extend_from_slice(&l);
        }
        self.dropped = 0;
        out
    }
}

static HELD: Mutex<Held> = Mutex::new(Held::new());

fn held() -> MutexGuard<'static, Held> {
    // A panic while holding the lock leaves plain data behind.
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Holds log lines until the returned guard is dropped (or [`release`] is
/// called): taken by the dashboard before it takes the terminal, dropped
/// after it restored it.
#[must_use = "log lines are held only while the guard lives"]
pub fn hold() -> Hold {
    held().on = true;
    Hold
}

/// Holds log lines while it lives; see [`hold`].
pub struct Hold;

impl Drop for Hold {
    fn drop(&mut self) {
        release();
    }
}

/// Stops holding log lines and prints those held (with how many were
/// dropped) to stderr.
pub fn release() {
    let out = held().release();
    if !out.is_empty() {
        let _ = std::io::stderr().lock().write_all(&out);
    }
}

/// The `tracing` writer: one [`LogLine`] per event.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One event's text, collected and written (or held) in one piece when dropped.
#[derive(Debug)]
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.0);
        {
            let mut h = held();
            if h.on {
                h.push(line, HELD_MAX);
                return;
            }
        }
        // A closed stderr (a shard whose parent is gone) is not an error.
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

/// The filter `-v` flags given `verbose` times ask for: barrage's own
/// events only; none without a flag.
pub fn verbosity_filter(verbose: u8) -> Option<&'static str> {
    match verbose {
        0 => None,
        1 => Some("barrage=info"),
        2 => Some("barrage=debug"),
        _ => Some("barrage=trace"),
    }
}

/// Installs the log subscriber of the binary: `RUST_LOG` when it is set
/// (it wins over `-v`), else the filter of `verbose` `-v` flags; nothing
/// at all without either, so events cost one cached check. ANSI colours
/// only when stderr is a terminal. A second call changes nothing (the
/// integration tests run the library in-process and never call it).
pub fn init(verbose: u8) {
    let from_flags = || verbosity_filter(verbose).map(EnvFilter::new);
    let filter = match std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        Some(s) => EnvFilter::builder().parse(&s).map_or_else(
            |e| {
                super::warn(&format!("RUST_LOG ignored: {e}"));
                from_flags()
            },
            Some,
        ),
        None => from_flags(),
    };
    let Some(filter) = filter else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holding_keeps_the_latest_lines_and_counts_the_rest() {
        let mut h = Held::new();
        h.on = true;
        for i in 0..5 {
            h.push(format!("line {i}\n").into_bytes(), 3);
        }
        let out = String::from_utf8(h.release()).unwrap();
        assert_eq!(
            out,
            "2 log lines dropped while the dashboard ran (the last 3 follow)\n\
             line 2\nline 3\nline 4\n"
        );
        assert!(!h.on);
        assert!(h.release().is_empty(), "released once");
    }

    #[test]
    fn nothing_held_prints_nothing() {
        let mut h = Held::new();
        h.on = true;
        assert!(h.release().is_empty());
    }

    #[test]
    fn each_v_shows_more_of_barrage_only() {
        assert_eq!(verbosity_filter(0), None);
        assert_eq!(verbosity_filter(1), Some("barrage=info"));
        assert_eq!(verbosity_filter(2), Some("barrage=debug"));
        assert_eq!(verbosity_filter(9), Some("barrage=trace"));
    }
}
