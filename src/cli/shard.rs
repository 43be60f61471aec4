//! The shard side of `run --processes` (and of a Kubernetes pod): with
//! `--json-lines`, a run streams [`Line`]s to stdout (each second's run
//! data delta, then the report) and follows the [`ControlLine`]s its
//! parent writes to stdin (pause, rate, a search's steps, finish, stop).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::metrics::RunData;
use crate::report::Report;
use crate::runner::exit;
use crate::scenario::{Scenario, Sharding};

/// One line of a `--json-lines` stream.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// A second's run data delta (histograms encoded, added, never averaged).
    Tick(Box<RunData>),
    /// The shard's finished report, its run data embedded (the last line).
    Report(Box<Report>),
}

/// A [`Line`] to write, borrowed (the same JSON).
#[derive(serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum LineOut<'a> {
    Tick(&'a RunData),
    Report(&'a Report),
}

/// Writes every delta from `rx` to stdout as a JSON line (the shard side
/// of `--processes`, and what a Kubernetes pod logs). On a thread of its
/// own: encoding a second's histograms must not hold up the connections'
/// worker threads (it showed as send_lag).
pub(super) fn emit_lines(
    mut rx: mpsc::UnboundedReceiver<Arc<RunData>>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        while let Some(d) = rx.blocking_recv() {
            write_line(&LineOut::Tick(&d));
        }
    })
}

/// Writes the finished report as the last JSON line.
pub(super) fn emit_report(r: &Report) {
    write_line(&LineOut::Report(r));
}

fn write_line(line: &LineOut<'_>) {
    let mut text = serde_json::to_string(line).expect("snapshots and reports serialize");
    text.push('\n');
    let mut out = std::io::stdout().lock();
    // A closed stdout (the parent is gone) must not stop the run.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// What a parent writes to its shards' stdin, one JSON object a line:
/// the dashboard's pause and rate state, a search's step rates and
/// connection targets (whole-run figures, by phase: each shard takes its
/// share), the end of a search (`finish`: the run ends as planned), or a
/// stop with the exit code the interruption means (130 Ctrl-C, 143
/// SIGTERM). A line sent before the shard reads it waits in the pipe, so
/// an early stop is never lost, as a signal to a process still starting
/// would be.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ControlLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_rates: Option<Vec<Option<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_connections: Option<Vec<Option<u32>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<u8>,
}

impl ControlLine {
    /// Applies the line's settings to `control`, scaled to this process's
    /// slice of the run.
    fn apply(&self, control: &Control, sharding: Option<Sharding>) {
        if let (Some(paused), Some(factor)) = (self.paused, self.factor) {
            control.set(paused, factor);
        }
        let rate = |r: f64| sharding.map_or(r, |s| s.rate(r));
        let count = |c: u32| sharding.map_or(c, |s| s.count(c));
        for (i, r) in self.phase_rates.iter().flatten().enumerate() {
            if let Some(r) = r.map(rate)
                && control.phase_rate(i) != Some(r)
            {
                control.set_phase_rate(i, r);
            }
        }
        for (i, c) in self.phase_connections.iter().flatten().enumerate() {
            if let Some(c) = c.map(count)
                && control.phase_connections(i) != Some(c)
            {
                control.set_phase_connections(i, c);
            }
        }
    }
}

/// The environment variable through which `run --processes` tells a shard
/// its parent's pid: the shard stops when that parent is gone.
pub(super) const PARENT_ENV: &str = "BARRAGE_PARENT_PID";

/// Longest control line read from stdin; a longer one is skipped.
const MAX_CONTROL_LINE: usize = 64 * 1024;

/// Reads one line of at most `max` bytes into `buf` (without the newline);
/// a longer line is read to its end and dropped (`Some(false)`). `None` at
/// EOF or on an error.
async fn read_line_bounded<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Option<bool> {
    buf.clear();
    let mut fits = true;
    loop {
        let chunk = r.fill_buf().await.ok()?;
        if chunk.is_empty() {
            return (!buf.is_empty() || !fits).then_some(fits);
        }
        let (part, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if fits && buf.len() + part.len() <= max {
            buf.extend_from_slice(part);
        } else {
            fits = false;
            buf.clear();
        }
        let used = done.unwrap_or(chunk.len());
        r.consume(used);
        if done.is_some() {
            return Some(fits);
        }
    }
}

/// Follows the control lines a parent writes to stdin; not when stdin is a
/// terminal (a shard started by hand in the background would be stopped
/// by SIGTTIN). A shard of `run --processes` (its parent's pid in
/// `BARRAGE_PARENT_PID`) also stops, and writes its report, when its
/// parent is gone: its stdin reaches EOF or its parent pid changes (a
/// SIGKILL of the parent leaves no time to send a stop line).
pub(super) fn follow_control(
    control: Arc<Control>,
    cancel: CancellationToken,
    finish: CancellationToken,
    exit_code: Arc<std::sync::atomic::AtomicU8>,
    sharding: Option<Sharding>,
) {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return;
    }
    let parent: Option<i32> = std::env::var(PARENT_ENV).ok().and_then(|p| p.parse().ok());
    let orphaned = {
        let (cancel, exit_code) = (cancel.clone(), exit_code.clone());
        move |why: &str| {
            if !cancel.is_cancelled() {
                // stderr is a pipe to the parent that is gone: `say!`
                // ignores the failed write.
                crate::say!("{why}: stopping and writing the report");
                exit_code.store(exit::TERMINATED, std::sync::atomic::Ordering::SeqCst);
                cancel.cancel();
            }
        }
    };
    if let Some(pid) = parent {
        let (cancel, orphaned) = (cancel.clone(), orphaned.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                // SAFETY: getppid has no preconditions.
                if unsafe { libc::getppid() } != pid {
                    orphaned("the parent process is gone");
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut line = Vec::new();
        while let Some(fits) = read_line_bounded(&mut stdin, &mut line, MAX_CONTROL_LINE).await {
            if !fits {
                continue;
            }
            let Ok(c) = serde_json::from_slice::<ControlLine>(&line) else {
                continue;
            };
            if let Some(code) = c.stop {
                exit_code.store(code, std::sync::atomic::Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            c.apply(&control, sharding);
            if c.finish == Some(true) {
                finish.cancel();
            }
        }
        if parent.is_some() {
            orphaned("stdin closed: the parent process is gone");
        }
    });
}

/// "shard 1/4: ramp starts at … (in 1.9 s)".
pub(super) fn waiting_line(s: &Scenario, at: SystemTime) -> String {
    let left = at
        .duration_since(SystemTime::now())
        .map_or(0.0, |d| d.as_secs_f64());
    format!(
        "shard {}: ramp starts at {} (in {left:.1} s)",
        s.shard_spec(),
        humantime::format_rfc3339_millis(at)
    )
}
