//! `barrage run --processes N` (and `search --processes N`), the parent side
//! (the shard side is [`super::shard`]):
//! N child processes of barrage ([`ShardProcess`]) each run one shard (a
//! slice of the connections) with its own file-descriptor budget and
//! stream JSON lines ([`Line`]) back over their stdout: each second's run
//! data delta, then the report. This process adds the deltas for one
//! dashboard or progress line, and merges the reports into one report set.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::shard::{ControlLine, Line, PARENT_ENV};
use super::{LoadArgs, View, spawn_interrupt_handler};
use crate::control::Control;
use crate::metrics::RunData;
use crate::report::{self, Report};
use crate::runner::{self, Destination, exit};
use crate::scenario::{Scenario, ShardSpec, Target};
use crate::search::SearchRun;
use crate::ui;

/// Time between starting the children and their common start: enough to
/// start a process and read a scenario.
const LEAD: Duration = Duration::from_secs(2);

/// One child process running a shard.
struct ShardProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: i32,
}

/// The arguments of shard `i` of `n`: `head` (the subcommand, the
/// scenario and its own flags), the parent's overrides, the shard, the
/// common start and seed, JSON lines, and its own report folder.
fn child_args(
    a: &LoadArgs,
    head: &[String],
    target: &str,
    spec: ShardSpec,
    start_at: SystemTime,
    seed: u64,
    out: &Path,
) -> Vec<String> {
    let mut v: Vec<String> = head.to_vec();
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
    if let Some(c) = a.connections {
        flag("--connections", c.to_string());
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

/// Runs the scenario as `n` shard processes and merges their reports;
/// with `search`, steers the shards' steps from their added deltas.
pub(super) async fn run(
    a: &LoadArgs,
    head: Vec<String>,
    scenario: Scenario,
    n: u32,
    search: Option<SearchRun>,
) -> u8 {
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
        match spawn_shard(&child_args(a, &head, &target, spec, start_at, seed, &out)) {
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
    for (i, s) in shards.iter_mut().enumerate() {
        let stdout = s.child.stdout.take().expect("piped");
        let stderr = s.child.stderr.take().expect("piped");
        readers.push(tokio::spawn(read_shard(
            i,
            stdout,
            stderr,
            snap_tx.clone(),
            cancel.clone(),
        )));
    }
    drop(snap_tx);
    let finish = CancellationToken::new();
    // A search reads the added deltas first, then hands them to the view.
    let (combined, steering) = match &search {
        Some(s) => {
            let (stx, srx) = mpsc::unbounded_channel();
            let phases = report::plan(&scenario, None, String::new(), None).phases;
            let task = s.spawn(phases, control.clone(), finish.clone(), srx, Some(tx));
            (stx, Some(task))
        }
        None => (tx, None),
    };
    let combiner = tokio::spawn(combine(snap_rx, combined, n as usize, start_at));
    // Stops every shard when this run is stopped (Ctrl-C, SIGTERM, `q`) or
    // when one shard's `abort_on_fail` threshold stopped it.
    let forward = tokio::spawn(forward_control(
        control.clone(),
        shards.iter_mut().filter_map(|s| s.stdin.take()).collect(),
        cancel.clone(),
        finish,
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
    if let Some(t) = steering {
        let _ = t.await;
    }
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
    let (mut plan, mut data) = match report::merge::add(&reports) {
        Ok(m) => m,
        Err(e) => {
            ui::error(&format!("cannot merge the shards: {e}"));
            return exit::RUN_FAILED;
        }
    };
    if let Some(s) = &search {
        s.conclude(&mut plan, &mut data);
    }
    let mut merged = report::build(&plan, &data);
    merged.scenario.file = Some(a.scenario.display().to_string());
    merged.scenario.target = crate::scenario::redact_url(&target);
    let merged = report::build::withhold_env(merged, &scenario.env_secrets);
    let to = Destination::Folder {
        out: Some(dir),
        reports_base: PathBuf::from("reports"),
        formats: a.format.clone(),
    };
    let interrupt = signal_exit.load(std::sync::atomic::Ordering::SeqCst);
    let code = super::finish(merged, &to, interrupt, |r| {
        ui::summary::print(r, &to_path(&to), a.summary_style());
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
    index: usize,
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
    tx: mpsc::UnboundedSender<(usize, Option<RunData>)>,
    stop_all: CancellationToken,
) -> Output {
    let errors = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).split(b'\n');
        // The latest lines only: with -v a shard logs a line per failed
        // connection, which must not pile up here for the whole run.
        let mut kept = std::collections::VecDeque::new();
        let mut dropped = 0u64;
        while let Ok(Some(l)) = lines.next_segment().await {
            kept.push_back(String::from_utf8_lossy(&l).into_owned());
            if kept.len() > ui::log::HELD_MAX {
                kept.pop_front();
                dropped += 1;
            }
        }
        if dropped > 0 {
            kept.push_front(format!("{dropped} earlier lines dropped"));
        }
        Vec::from(kept)
    });
    let mut out = Output::default();
    // By bytes: a line that is not UTF-8 is counted, and reading goes on
    // (stopping would leave the shard blocked on a full pipe).
    let mut lines = BufReader::new(stdout).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        match serde_json::from_slice::<Line>(&line) {
            Ok(Line::Tick(d)) => {
                let _ = tx.send((index, Some(*d)));
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
    // This shard sends no more: the others' seconds need not wait for it.
    let _ = tx.send((index, None));
    out.stderr = errors.await.unwrap_or_default();
    out
}

/// Adds the shards' deltas into one a second: as soon as every shard still
/// running has sent its delta of the second (a search judges its steps on
/// these, so the sooner the better), or 900 ms after the first of them
/// came (a shard that fell behind). Until every shard has finished.
async fn combine(
    mut rx: mpsc::UnboundedReceiver<(usize, Option<RunData>)>,
    tx: mpsc::UnboundedSender<Arc<RunData>>,
    shards: usize,
    start_at: SystemTime,
) {
    const WAIT: Duration = Duration::from_millis(900);
    let mut pending: Option<RunData> = None;
    let mut have = vec![false; shards];
    let mut live = vec![true; shards];
    let mut since = tokio::time::Instant::now();
    // Nothing comes before the common start.
    let lead = start_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let mut check = tokio::time::interval_at(
        tokio::time::Instant::now() + lead,
        Duration::from_millis(100),
    );
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let flush = |pending: &mut Option<RunData>, have: &mut Vec<bool>| {
        if let Some(d) = pending.take() {
            let _ = tx.send(Arc::new(d));
        }
        have.iter_mut().for_each(|h| *h = false);
    };
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some((i, Some(d))) => {
                    if have[i] {
                        // The next second of a shard ahead of the others.
                        flush(&mut pending, &mut have);
                    }
                    if pending.is_none() {
                        since = tokio::time::Instant::now();
                    }
                    pending.get_or_insert_with(RunData::default).add(&d);
                    have[i] = true;
                }
                Some((i, None)) => live[i] = false,
                None => break,
            },
            _ = check.tick() => {
                if pending.is_some() && since.elapsed() >= WAIT {
                    flush(&mut pending, &mut have);
                }
                continue;
            }
        }
        if pending.is_some() && (0..shards).all(|i| have[i] || !live[i]) {
            flush(&mut pending, &mut have);
        }
    }
    flush(&mut pending, &mut have);
}

/// Passes the dashboard's pause and rate keys and a search's steps on to
/// every shard, the search's end when `finish` fires, and a stop when
/// `cancel` fires.
async fn forward_control(
    control: Arc<Control>,
    mut stdins: Vec<ChildStdin>,
    cancel: CancellationToken,
    finish: CancellationToken,
    exit_code: Arc<std::sync::atomic::AtomicU8>,
) {
    // Nothing seen yet: whatever was set before this task started (a
    // search's first step) goes out at once.
    let mut seen = None;
    let mut finished = false;
    loop {
        let line = tokio::select! {
            _ = cancel.cancelled() => ControlLine {
                stop: Some(exit_code.load(std::sync::atomic::Ordering::SeqCst)),
                ..ControlLine::default()
            },
            _ = finish.cancelled(), if !finished => {
                finished = true;
                ControlLine {
                    finish: Some(true),
                    ..ControlLine::default()
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if seen == Some(control.epoch()) {
                    continue;
                }
                seen = Some(control.epoch());
                ControlLine {
                    paused: Some(control.paused()),
                    factor: Some(control.factor()),
                    phase_rates: Some(control.phase_rates()),
                    phase_connections: Some(control.all_phase_connections()),
                    ..ControlLine::default()
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
