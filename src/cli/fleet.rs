//! `barrage run --processes N` and the shard side of it (`--json-lines`):
//! N child processes of barrage ([`ShardProcess`]) each run one shard (a
//! slice of the connections) with its own file-descriptor budget and
//! stream JSON lines ([`Line`]) back over their stdout: each second's run
//! data delta, then the report. This process adds the deltas for one
//! dashboard or progress line, and merges the reports into one report set.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{RunArgs, View, spawn_interrupt_handler};
use crate::control::Control;
use crate::metrics::RunData;
use crate::report::{self, Report};
use crate::runner::{self, Destination, exit};
use crate::scenario::{Scenario, ShardSpec, Target};
use crate::ui;

/// Time between starting the children and their common start: enough to
/// start a process and read a scenario.
const LEAD: Duration = Duration::from_secs(2);

/// One line of a `--json-lines` stream.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// A second's run data delta (histograms encoded, added, never averaged).
    Tick(Box<RunData>),
    /// The shard's finished report, its run data embedded (the last line).
    Report(Box<Report>),
}

/// Writes every delta from `rx` to stdout as a JSON line (the shard side
/// of `--processes`, and what a Kubernetes pod logs).
pub(super) fn emit_lines(
    mut rx: mpsc::UnboundedReceiver<Arc<RunData>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            write_line(&Line::Tick(Box::new((*d).clone())));
        }
    })
}

/// Writes the finished report as the last JSON line.
pub(super) fn emit_report(r: &Report) {
    write_line(&Line::Report(Box::new(r.clone())));
}

fn write_line(line: &Line) {
    let mut text = serde_json::to_string(line).expect("snapshots and reports serialize");
    text.push('\n');
    let mut out = std::io::stdout().lock();
    // A closed stdout (the parent is gone) must not stop the run.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// What a parent writes to its shards' stdin, one JSON object a line:
/// the dashboard's pause and rate state, or a stop with the exit code the
/// interruption means (130 Ctrl-C, 143 SIGTERM). A line sent before the
/// shard reads it waits in the pipe, so an early stop is never lost, as a
/// signal to a process still starting would be.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct ControlLine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    factor: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop: Option<u8>,
}

/// The environment variable through which `run --processes` tells a shard
/// its parent's pid: the shard stops when that parent is gone.
const PARENT_ENV: &str = "BARRAGE_PARENT_PID";

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
    exit_code: Arc<std::sync::atomic::AtomicU8>,
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
            if let (Some(paused), Some(factor)) = (c.paused, c.factor) {
                control.set(paused, factor);
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

/// One child process running a shard.
struct ShardProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: i32,
}

/// The arguments of shard `i` of `n`: the parent's overrides, the shard,
/// the common start and seed, JSON lines, and its own report folder.
fn child_args(
    a: &RunArgs,
    target: &str,
    spec: ShardSpec,
    start_at: SystemTime,
    seed: u64,
    out: &Path,
) -> Vec<String> {
    let mut v: Vec<String> = vec!["run".into(), a.scenario.display().to_string()];
    let mut flag = |k: &str, val: String| {
        v.push(k.into());
        v.push(val);
    };
    flag("--target", target.to_string());
    flag("--shard", spec.to_string());
    flag(
        "--start-at",
        humantime::format_rfc3339_millis(start_at).to_string(),
    );
    flag("--seed", seed.to_string());
    flag("--out", out.display().to_string());
    flag("--format", "json".into());
    if let Some(d) = a.duration {
        flag("--duration", format!("{}ms", d.as_millis()));
    }
    if let Some(c) = a.connections {
        flag("--connections", c.to_string());
    }
    if let Some(r) = a.rate {
        flag("--rate", r.to_string());
    }
    if a.allow_memory_overcommit {
        v.push("--allow-memory-overcommit".into());
    }
    v.push("--json-lines".into());
    v.push("--no-tui".into());
    v
}

fn spawn_shard(args: &[String]) -> std::io::Result<ShardProcess> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.env(PARENT_ENV, std::process::id().to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the terminal reaches the
        // parent only, which passes it on once.
        .process_group(0);
    // No PR_SET_PDEATHSIG: it fires when the *thread* that spawned the
    // child ends, not the process, so it both missed parents killed with
    // SIGKILL and could stop shards of a live parent. A shard watches its
    // parent itself (`BARRAGE_PARENT_PID`: stdin EOF, parent pid).
    let mut child = cmd.spawn()?;
    let pid = child.id().map_or(0, |p| p as i32);
    Ok(ShardProcess {
        stdin: child.stdin.take(),
        child,
        pid,
    })
}

/// What one shard's output came to.
#[derive(Default)]
struct Output {
    report: Option<Report>,
    stderr: Vec<String>,
    bad_lines: u64,
}

/// Runs the scenario as `n` shard processes and merges their reports.
pub(super) async fn run(a: &RunArgs, scenario: Scenario, n: u32) -> u8 {
    for index in 0..n {
        if let Err(e) = scenario.clone().apply_shard(ShardSpec { index, count: n }) {
            ui::error(&format!("--processes {n}: {e}"));
            return exit::BAD_INPUT;
        }
    }
    // The shards share this machine's memory: each checks its own share,
    // the whole run is checked here.
    if let Err(e) = crate::engine::preflight::check_memory(
        u64::from(scenario.peak_connections()),
        scenario.max_message_size,
        (!a.allow_memory_overcommit)
            .then(crate::engine::preflight::memory_limit)
            .flatten(),
    ) {
        ui::error(&format!("--processes {n}: {e}"));
        return exit::BAD_INPUT;
    }
    if scenario.target == Target::Builtin {
        // The shards' sockets are theirs, but every server-side socket of
        // the built-in server is this process's.
        let fds = crate::engine::preflight::raise_fd_limit();
        let total = u64::from(scenario.peak_connections());
        if total + 64 > fds {
            ui::error(&format!(
                "--processes {n} with target: builtin: the built-in server runs in this process, \
                 which can hold about {} sockets, not {total}; start `barrage serve --processes {n} \
                 --listen 127.0.0.1:9400` and pass --target ws://127.0.0.1:9400/",
                fds.saturating_sub(64)
            ));
            return exit::BAD_INPUT;
        }
    }
    let cancel = CancellationToken::new();
    let signal_exit = spawn_interrupt_handler(cancel.clone());
    // One built-in server for all shards, so they load the same target.
    let (target, server) = match &scenario.target {
        Target::Url(u) => (u.original.clone(), None),
        Target::Builtin => match runner::start_builtin(&scenario).await {
            Ok((url, handle)) => (url.original, Some(handle)),
            Err(e) => {
                ui::error(&e);
                return e.exit_code();
            }
        },
    };
    let now = SystemTime::now();
    let start_at = a.start_at.unwrap_or(now + LEAD);
    let seed = a.seed.unwrap_or_else(|| {
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let dir = a.out.clone().unwrap_or_else(|| {
        let name: String = scenario
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        PathBuf::from("reports").join(name).join(
            humantime::format_rfc3339_millis(now)
                .to_string()
                .replace(':', "-"),
        )
    });
    // Before any shard starts: a run whose report cannot be written is lost.
    if let Err(e) = report::write::check_destination(&dir) {
        ui::error(&format!("{e} (checked before the run: nothing was run)"));
        if let Some(h) = server {
            h.shutdown().await;
        }
        return exit::BAD_INPUT;
    }
    let mut shards = Vec::new();
    for index in 0..n {
        let spec = ShardSpec { index, count: n };
        let out = dir.join("shards").join(format!("shard-{index}"));
        match spawn_shard(&child_args(a, &target, spec, start_at, seed, &out)) {
            Ok(s) => shards.push(s),
            Err(e) => {
                ui::error(&format!("cannot start shard process {spec}: {e}"));
                stop(&shards, libc::SIGTERM);
                return exit::RUN_FAILED;
            }
        }
    }
    let control = Arc::new(Control::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let view = match View::start(a, &scenario, rx, &control, &cancel) {
        Ok(v) => v,
        Err(code) => {
            stop(&shards, libc::SIGTERM);
            return code;
        }
    };
    if !a.quiet {
        crate::say!(
            "{n} shard processes; ramp starts at {}",
            humantime::format_rfc3339_millis(start_at)
        );
    }
    let (snap_tx, snap_rx) = mpsc::unbounded_channel();
    let mut readers = Vec::new();
    for s in shards.iter_mut() {
        let stdout = s.child.stdout.take().expect("piped");
        let stderr = s.child.stderr.take().expect("piped");
        readers.push(tokio::spawn(read_shard(
            stdout,
            stderr,
            snap_tx.clone(),
            cancel.clone(),
        )));
    }
    drop(snap_tx);
    let combiner = tokio::spawn(combine(snap_rx, tx, start_at));
    // Stops every shard when this run is stopped (Ctrl-C, SIGTERM, `q`) or
    // when one shard's `abort_on_fail` threshold stopped it.
    let forward = tokio::spawn(forward_control(
        control.clone(),
        shards.iter_mut().filter_map(|s| s.stdin.take()).collect(),
        cancel.clone(),
        signal_exit.clone(),
    ));
    let mut codes = Vec::new();
    for s in &mut shards {
        codes.push(s.child.wait().await.ok().and_then(|st| st.code()));
    }
    forward.abort();
    let mut outputs = Vec::new();
    for r in readers {
        outputs.push(r.await.unwrap_or_default());
    }
    let _ = combiner.await;
    view.finish().await;
    if let Some(h) = server {
        h.shutdown().await;
    }
    for (i, o) in outputs.iter().enumerate() {
        for line in &o.stderr {
            crate::say!("[shard {i}/{n}] {line}");
        }
        if o.bad_lines > 0 {
            ui::warn(&format!(
                "shard {i}/{n}: {} unreadable output lines",
                o.bad_lines
            ));
        }
    }
    let reports: Vec<Report> = outputs.iter_mut().filter_map(|o| o.report.take()).collect();
    if reports.is_empty() {
        ui::error(&format!(
            "no shard produced a report (exit codes {codes:?})"
        ));
        return codes
            .iter()
            .flatten()
            .find(|c| **c == i32::from(exit::BAD_INPUT))
            .map_or(exit::RUN_FAILED, |_| exit::BAD_INPUT);
    }
    let mut merged = match report::merge::merge(&reports) {
        Ok(m) => m,
        Err(e) => {
            ui::error(&format!("cannot merge the shards: {e}"));
            return exit::RUN_FAILED;
        }
    };
    merged.scenario.file = Some(a.scenario.display().to_string());
    merged.scenario.target = crate::scenario::redact_url(&target);
    let to = Destination::Folder {
        out: Some(dir),
        reports_base: PathBuf::from("reports"),
        formats: a.format.clone(),
    };
    let interrupt = signal_exit.load(std::sync::atomic::Ordering::SeqCst);
    let code = super::finish(merged, &to, interrupt, |r| {
        ui::summary::print(r, &to_path(&to));
    });
    if a.out.is_none()
        && let Destination::Folder { out: Some(dir), .. } = &to
    {
        let _ = report::write::point_latest(dir);
    }
    if code == exit::RUN_FAILED && reports.len() < n as usize {
        ui::error(&format!("shard exit codes {codes:?}"));
    }
    code
}

/// The report.json path of a folder destination.
fn to_path(to: &Destination) -> PathBuf {
    match to {
        Destination::Folder { out, .. } => out.clone().unwrap_or_default().join("report.json"),
        Destination::File(p) => p.clone(),
    }
}

fn stop(shards: &[ShardProcess], sig: i32) {
    for s in shards {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(s.pid, sig) };
    }
}

/// Reads one shard's JSON lines (snapshots to `tx`, the report kept) and
/// its stderr. A report of a shard stopped by `abort_on_fail` stops the
/// others (`stop_all`), as a single run would stop.
async fn read_shard(
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    tx: mpsc::UnboundedSender<RunData>,
    stop_all: CancellationToken,
) -> Output {
    let errors = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).split(b'\n');
        let mut kept = Vec::new();
        while let Ok(Some(l)) = lines.next_segment().await {
            kept.push(String::from_utf8_lossy(&l).into_owned());
        }
        kept
    });
    let mut out = Output::default();
    // By bytes: a line that is not UTF-8 is counted, and reading goes on
    // (stopping would leave the shard blocked on a full pipe).
    let mut lines = BufReader::new(stdout).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        match serde_json::from_slice::<Line>(&line) {
            Ok(Line::Tick(d)) => {
                let _ = tx.send(*d);
            }
            Ok(Line::Report(r)) => {
                if r.aborted.is_some() {
                    stop_all.cancel();
                }
                out.report = Some(*r);
            }
            Err(_) => out.bad_lines += 1,
        }
    }
    out.stderr = errors.await.unwrap_or_default();
    out
}

/// Adds the shards' deltas into one a second, half a second after the
/// shards' own ticks, until every shard has finished.
async fn combine(
    mut rx: mpsc::UnboundedReceiver<RunData>,
    tx: mpsc::UnboundedSender<Arc<RunData>>,
    start_at: SystemTime,
) {
    let mut pending: Option<RunData> = None;
    let phase = start_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_millis(500);
    let first = tokio::time::Instant::now() + phase;
    let mut ticker = tokio::time::interval_at(first, Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(d) => pending.get_or_insert_with(RunData::default).add(&d),
                None => break,
            },
            _ = ticker.tick() => {
                if let Some(d) = pending.take() {
                    let _ = tx.send(Arc::new(d));
                }
            }
        }
    }
    if let Some(d) = pending.take() {
        let _ = tx.send(Arc::new(d));
    }
}

/// Passes the dashboard's pause and rate keys on to every shard, and a stop
/// when `cancel` fires.
async fn forward_control(
    control: Arc<Control>,
    mut stdins: Vec<ChildStdin>,
    cancel: CancellationToken,
    exit_code: Arc<std::sync::atomic::AtomicU8>,
) {
    let mut seen = control.epoch();
    loop {
        let line = tokio::select! {
            _ = cancel.cancelled() => ControlLine {
                stop: Some(exit_code.load(std::sync::atomic::Ordering::SeqCst)),
                ..ControlLine::default()
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if control.epoch() == seen {
                    continue;
                }
                seen = control.epoch();
                ControlLine {
                    paused: Some(control.paused()),
                    factor: Some(control.factor()),
                    stop: None,
                }
            }
        };
        let mut text = serde_json::to_string(&line).expect("serializes");
        text.push('\n');
        for s in &mut stdins {
            let _ = s.write_all(text.as_bytes()).await;
            let _ = s.flush().await;
        }
        if line.stop.is_some() {
            return;
        }
    }
}
