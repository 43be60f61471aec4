//! The command line: clap definitions and dispatch. This is the edge: it
//! turns errors into messages and exit codes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::report::{self, Format, Report, SCHEMA, Verdict};
use crate::runner::{self, Destination, RunOptions, exit};
use crate::scenario::{self, Phase, PhaseRate, Scenario, Target};
use crate::ui;

mod docs;
mod fleet;
mod search;
mod serve;
mod shard;
mod view;

pub use serve::ServeArgs;
use view::View;

/// High-throughput WebSocket load tester with honest latency.
#[derive(Debug, Parser)]
#[command(name = "barrage", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr (held while the dashboard runs). -v: the run's
    /// start and end, and each connection fault with its connection id and
    /// reason (failed connect, TLS or upgrade, reset, protocol error, close
    /// by the server or timed out). -vv: also each connection's handshake
    /// and normal close. RUST_LOG, when set, replaces this (e.g.
    /// RUST_LOG=barrage=debug). `-v` also shows every counter in the final
    /// summary, zero or not, and each phase's percentiles.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and write its reports.
    Run(RunArgs),
    /// Validate scenarios and print their plans; exit 0 when all are valid, 2 otherwise.
    Check(CheckArgs),
    /// Run the built-in target server until Ctrl-C.
    Serve(ServeArgs),
    /// Re-render report files from a saved report.json.
    Report(ReportArgs),
    /// Compare a report with a baseline; exit 1 on a regression beyond tolerance.
    Compare(CompareArgs),
    /// Add reports of shards or machines into one (histograms added, not averaged).
    Merge(MergeArgs),
    /// Print Kubernetes manifests that run a scenario as N shards of an
    /// Indexed Job, and the commands that merge their reports.
    K8s(K8sArgs),
    /// Find the highest message rate at which every SLO holds: steps up
    /// geometrically until one breaks, then bisects; exit 0 when found (and
    /// at least --min), 1 below --min, 3 when even --from fails.
    Search(search::SearchArgs),
    /// Print a shell completion script to stdout (bash, zsh, fish,
    /// powershell, elvish).
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff) to stdout: one page for barrage and
    /// every subcommand, e.g. `barrage man > barrage.1 && man -l barrage.1`.
    Man,
}

/// `barrage k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// Scenario file (YAML); it and the files it references go into a ConfigMap.
    pub scenario: PathBuf,
    /// Shards: pods of the Job, each running its slice of the connections
    /// and rates (1 to 1000, at most `connections.count`). Required.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::k8s::MAX_WORKERS)))]
    pub workers: u32,
    /// Container image holding the barrage binary (required): build it from
    /// this repository's Dockerfile and push it to a registry the cluster
    /// pulls from, e.g. `docker build -t REGISTRY/barrage:VERSION .`.
    #[arg(long)]
    pub image: Option<String>,
    /// Namespace set on every object and in the kubectl commands. Default:
    /// none (kubectl's current namespace).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Job name (the ConfigMap is NAME-scenario): lowercase letters, digits
    /// and '-', at most 52 characters. Default: `barrage-` and the scenario
    /// name, lowercased, other characters as '-'.
    #[arg(long)]
    pub name: Option<String>,
    /// Target URL (ws://host:port/path) replacing the scenario's; needed
    /// when the scenario's target is builtin. Default: the scenario's target.
    #[arg(long)]
    pub target: Option<String>,
    /// Time from now to the shared start instant of the shards (`run
    /// --start-at`), to apply the manifests and pull the image. Default 2m.
    #[arg(long, default_value = "2m", hide_default_value = true, value_parser = scenario::parse_duration)]
    pub lead: Duration,
}

/// `barrage compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline report.json.
    pub baseline: PathBuf,
    /// The current report.json.
    pub current: PathBuf,
    /// Tolerances replacing or adding to the defaults, e.g.
    /// `rtt.p99=10%,throughput=-5%,connect.p95=50%` (defaults: rtt.p50 and
    /// rtt.p99 10%, rtt.p99.9 and connect.p99 25%, throughput -5%,
    /// errors.rate 10% + 0.1 point).
    #[arg(long, value_parser = report::compare::parse_tolerances)]
    pub max_regression: Option<std::collections::BTreeMap<String, f64>>,
    /// The noise floor of latencies: a change smaller than this (`100us`,
    /// `1ms`, `0s` for none) is neither a regression nor an improvement,
    /// whatever its percentage.
    #[arg(long, default_value = report::compare::DEFAULT_MIN_CHANGE, value_parser = scenario::parse_duration)]
    pub min_change: Duration,
}

/// `barrage merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Reports to add together.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Where to write the merged report.json.
    #[arg(long)]
    pub out: PathBuf,
}

/// `barrage run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Run length: sets the duration of a single-phase scenario; a
    /// multi-phase scenario becomes one phase at its last phase's rate.
    /// Greater than 0, as a phase's `duration`.
    #[arg(long, value_parser = scenario::parse_positive_duration)]
    pub duration: Option<Duration>,
    /// Message rate for every phase: `2000/s`, `60/m`, a ramp over each
    /// phase (`1000/s..20000/s`) or `max`.
    #[arg(long, value_parser = parse_phase_rate)]
    pub rate: Option<PhaseRate>,
}

/// What `run` and `search` share: the scenario, what replaces parts of
/// it, how the run is shown, written and split over processes.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Scenario file (YAML).
    pub scenario: PathBuf,
    /// Target URL (ws://host:port/path) or `builtin`, replacing the scenario's.
    #[arg(long)]
    pub target: Option<String>,
    /// Connections to open, replacing `connections.count` (`10000`, `10k`).
    #[arg(long, value_parser = parse_connections)]
    pub connections: Option<u32>,
    /// Folder for the report set (default: reports/<name>/<timestamp>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No live dashboard: progress on stderr instead. The dashboard is on by
    /// default when stdout is a terminal.
    #[arg(long)]
    pub no_tui: bool,
    /// Print one line, the verdict: no progress, no tables, no report
    /// path (the exit code says the rest). Default: progress and the
    /// summary's tables.
    #[arg(long, short)]
    pub quiet: bool,
    /// What the final summary on stdout is: `text` (the verdict and
    /// thresholds first, then what was measured) or `json` (one object for
    /// scripts: the verdict, thresholds, totals and metrics of report.json
    /// and its path). Default: text.
    #[arg(long, value_enum, default_value_t = ui::summary::Form::Text, conflicts_with = "json_lines")]
    pub summary: ui::summary::Form,
    /// `-v`, from the top-level flag.
    #[arg(skip)]
    pub verbose: u8,
    /// Seed for random payloads, masks and keys (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Files of the report set to write, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Format::ALL)]
    pub format: Vec<Format>,
    /// Run only slice I of N: connections I, I+N, I+2N, … and their share
    /// of every rate, for a run split over processes or machines (add the
    /// reports with `barrage merge`, which evaluates the thresholds: a
    /// shard exits 0 when only its own thresholds fail). Default: the
    /// whole run.
    #[arg(long, value_name = "I/N", conflicts_with = "processes")]
    pub shard: Option<scenario::ShardSpec>,
    /// Start the connection ramp at this instant, so shards in many
    /// processes start together: RFC 3339 UTC (`2026-11-30T18:00:00Z`) or
    /// `+10s` from now. Default: at once.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// Write JSON lines to stdout instead of a dashboard and summary: a
    /// snapshot every second and the report as the last line (`barrage
    /// merge` reads this output as it reads report.json). Lines read from
    /// stdin (`{"paused":false,"factor":1.0}`) pause or scale the rates.
    #[arg(long, conflicts_with = "processes")]
    pub json_lines: bool,
    /// Run as N child processes of barrage, each a shard with its own
    /// file-descriptor budget, shown as one dashboard and merged into one
    /// report set (shard reports under `shards/`). Default: one process.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub processes: Option<u32>,
    /// Run even when connections × `max_message_size` (every connection
    /// receiving its largest message at once) is more than this machine's
    /// memory, or its cgroup's limit. Default: such a run is refused.
    #[arg(long)]
    pub allow_memory_overcommit: bool,
}

impl LoadArgs {
    /// How the final summary is printed.
    pub fn summary_style(&self) -> ui::summary::Style {
        ui::summary::Style {
            form: self.summary,
            quiet: self.quiet,
            all: self.verbose > 0,
        }
    }
}

/// `--start-at`: RFC 3339 UTC or `+DURATION` from now.
fn parse_start_at(s: &str) -> Result<std::time::SystemTime, String> {
    let s = s.trim();
    if let Some(rel) = s.strip_prefix('+') {
        return Ok(std::time::SystemTime::now() + scenario::parse_duration(rel)?);
    }
    humantime::parse_rfc3339(s)
        .map_err(|e| format!("{s:?}: {e}; use RFC 3339 UTC (2026-11-30T18:00:00Z) or +10s"))
}

/// `barrage report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A report.json written by `barrage run`.
    pub report: PathBuf,
    /// Files to write, comma-separated (default: md, junit, hlog, html).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Format::Md, Format::Junit, Format::Hlog, Format::Html])]
    pub format: Vec<Format>,
    /// Folder to write into (default: the report's own folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `barrage check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// A connection count of at least 1: `10000`, `10k`, `1.5k`.
fn parse_connections(s: &str) -> Result<u32, String> {
    match scenario::parse_count(s)? {
        0 => Err("must be at least 1".into()),
        n => u32::try_from(n).map_err(|_| format!("must be at most {}", u32::MAX)),
    }
}

fn parse_phase_rate(s: &str) -> Result<PhaseRate, String> {
    PhaseRate::parse(s)
}

/// Applies the command-line overrides to `s`.
pub fn apply_overrides(s: &mut Scenario, a: &RunArgs) -> Result<(), String> {
    if let Some(t) = &a.load.target {
        s.target = Target::parse(t).map_err(|e| format!("--target: {e}"))?;
    }
    if let Some(n) = a.load.connections {
        s.connections.count = n;
    }
    if let Some(d) = a.duration {
        if s.phases.len() == 1 {
            s.phases[0].duration = d;
        } else {
            let last = s
                .phases
                .last()
                .expect("validated: at least one phase")
                .clone();
            s.phases = vec![Phase {
                name: "steady".into(),
                duration: d,
                record: true,
                ..last
            }];
        }
    }
    if let Some(r) = a.rate {
        for p in &mut s.phases {
            p.rate = r;
            if r != PhaseRate::Max {
                p.inflight = 1;
            }
        }
    }
    Ok(())
}

/// Runs the command and returns the process exit code.
pub async fn execute(cli: Cli) -> u8 {
    match cli.command {
        Command::Run(mut a) => {
            a.load.verbose = cli.verbose;
            run(a).await
        }
        Command::Check(a) => check(&a),
        Command::Serve(a) => serve::serve(a).await,
        Command::Report(a) => rerender(&a),
        Command::Compare(a) => compare(&a),
        Command::Merge(a) => merge(&a, cli.verbose),
        Command::K8s(a) => k8s(&a),
        Command::Search(mut a) => {
            a.load.verbose = cli.verbose;
            search::search(a).await
        }
        Command::Completions(a) => docs::completions(&a),
        Command::Man => docs::man(),
    }
}

fn k8s(a: &K8sArgs) -> u8 {
    let opts = crate::k8s::Options {
        workers: a.workers,
        image: a.image.clone(),
        namespace: a.namespace.clone(),
        name: a.name.clone(),
        target: a.target.clone(),
        lead: a.lead,
    };
    let manifests = scenario::load(&a.scenario)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            crate::k8s::generate(&a.scenario, &s, &opts, std::time::SystemTime::now())
                .map_err(|e| e.to_string())
        });
    match manifests {
        Ok(text) => {
            print!("{text}");
            exit::PASSED
        }
        Err(e) => {
            ui::error(&e);
            exit::BAD_INPUT
        }
    }
}

fn compare(a: &CompareArgs) -> u8 {
    let (base, cur) = match (load_report(&a.baseline), load_report(&a.current)) {
        (Ok(b), Ok(c)) => (b, c),
        (Err(e), _) | (_, Err(e)) => {
            ui::error(&e);
            return exit::BAD_INPUT;
        }
    };
    // Both derived again from their run data, as they would be now.
    let (base, cur) = (
        report::merge::rederive(&base),
        report::merge::rederive(&cur),
    );
    if base.scenario.name != cur.scenario.name {
        crate::say!(
            "warning: comparing different scenarios: {:?} and {:?}",
            base.scenario.name,
            cur.scenario.name
        );
    }
    let floor = a.min_change.as_nanos() as f64;
    let tolerances = a.max_regression.clone().unwrap_or_default();
    let rows = report::compare::compare(&base, &cur, &tolerances, floor);
    print!("{}", report::compare::markdown(&base, &cur, &rows, floor));
    if rows.iter().any(|r| r.regression) {
        exit::THRESHOLD_FAILED
    } else {
        exit::PASSED
    }
}

fn merge(a: &MergeArgs, verbose: u8) -> u8 {
    let mut reports = Vec::new();
    for f in &a.reports {
        match load_report(f) {
            Ok(r) => reports.push(r),
            Err(e) => {
                ui::error(&e);
                return exit::BAD_INPUT;
            }
        }
    }
    let merged = match report::merge::merge(&reports) {
        Ok(m) => m,
        Err(e) => {
            ui::error(&e);
            return exit::BAD_INPUT;
        }
    };
    finish(
        merged,
        &Destination::File(a.out.clone()),
        exit::INTERRUPTED,
        |r| {
            crate::say!("merged {} reports into {}", reports.len(), a.out.display());
            let style = ui::summary::Style {
                all: verbose > 0,
                ..Default::default()
            };
            print!("{}", ui::summary::render(r, style.detail()));
        },
    )
}

/// Ends `run`, `run --processes` and `merge`: writes the report through
/// [`runner::finish`], shows it (`show`), says why a failed run failed,
/// and returns the exit code the report means (`interrupt` when it was
/// stopped by the user).
pub(super) fn finish(
    report: Report,
    to: &Destination,
    interrupt: u8,
    show: impl FnOnce(&Report),
) -> u8 {
    match runner::finish(report, to) {
        Ok(o) => {
            show(&o.report);
            if let (Verdict::Error, Some(e)) = (o.report.verdict, &o.report.error) {
                ui::error(e);
            }
            runner::exit_code(&o.report, interrupt)
        }
        Err(e) => {
            ui::error(&e);
            exit::RUN_FAILED
        }
    }
}

fn rerender(a: &ReportArgs) -> u8 {
    let report = match load_report(&a.report) {
        Ok(r) => report::merge::rederive(&r),
        Err(e) => {
            ui::error(&e);
            return exit::BAD_INPUT;
        }
    };
    let dir = a.out.clone().unwrap_or_else(|| {
        a.report
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    match report::write_set(&report, &dir, &a.format) {
        Ok(_) => {
            let names: Vec<&str> = a.format.iter().map(|f| f.name()).collect();
            crate::say!("wrote {} into {}", names.join(", "), dir.display());
            exit::PASSED
        }
        Err(e) => {
            ui::error(&e);
            exit::RUN_FAILED
        }
    }
}

/// Reads a report.json, or the JSON lines of `run --json-lines` (a shard
/// process's or a Kubernetes pod's log: its last `report` line), with the
/// file, line and column of any problem.
pub fn load_report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut de = serde_json::Deserializer::from_str(&text);
    let report: Report = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(e) => match report_line(&text) {
            Some(r) => r,
            None => {
                let (field, inner) = (e.path().to_string(), e.into_inner());
                return Err(format!(
                    "{}:{}:{}: {}not a barrage report (nor JSON lines with a report line): {inner}",
                    path.display(),
                    inner.line(),
                    inner.column(),
                    if field == "." || field.is_empty() {
                        String::new()
                    } else {
                        format!("field {field}: ")
                    }
                ));
            }
        },
    };
    if let Err(e) = report.run_data.check() {
        return Err(format!("{}: {e}", path.display()));
    }
    if report.schema != SCHEMA {
        return Err(format!(
            "{}: schema {:?}, this barrage reads {SCHEMA:?}",
            path.display(),
            report.schema
        ));
    }
    Ok(report)
}

/// The report of the last `{"report": …}` line of a JSON-lines log.
fn report_line(text: &str) -> Option<Report> {
    text.lines().rev().find_map(|l| {
        let l = l.trim();
        if !l.starts_with("{\"report\"") {
            return None;
        }
        match serde_json::from_str::<shard::Line>(l) {
            Ok(shard::Line::Report(r)) => Some(*r),
            _ => None,
        }
    })
}

async fn run(a: RunArgs) -> u8 {
    let mut head = vec!["run".to_string(), a.load.scenario.display().to_string()];
    head.extend(verbose_flag(a.load.verbose));
    if let Some(d) = a.duration {
        head.extend(["--duration".into(), format!("{}ms", d.as_millis())]);
    }
    if let Some(r) = a.rate {
        head.extend(["--rate".into(), r.to_string()]);
    }
    run_with(a, head, None).await
}

/// The `-v` flags a shard process is given to log as this one does (it
/// inherits `RUST_LOG`).
pub(super) fn verbose_flag(verbose: u8) -> Option<String> {
    (verbose > 0).then(|| format!("-{}", "v".repeat(usize::from(verbose))))
}

/// `run`, or a capacity search when `search` is given (it lays out the
/// scenario's phases and steers their rates). `head` is how a shard
/// process of `--processes` is started: the subcommand, the scenario and
/// the flags that are not in [`LoadArgs`].
pub(super) async fn run_with(
    a: RunArgs,
    head: Vec<String>,
    mut search: Option<crate::search::SearchRun>,
) -> u8 {
    let mut scenario = match scenario::load(&a.load.scenario) {
        Ok(s) => s,
        Err(e) => {
            ui::error(&e);
            return exit::BAD_INPUT;
        }
    };
    if let Err(e) = apply_overrides(&mut scenario, &a) {
        ui::error(&e);
        return exit::BAD_INPUT;
    }
    if scenario.tls.insecure && matches!(&scenario.target, Target::Url(u) if u.tls) {
        ui::warn(
            &"tls.insecure: the server's certificate is not checked; use this only for testing",
        );
    }
    // Before the split: the steps' rates are split like any phase's.
    if let Some(s) = &mut search {
        if let Err(e) = s.layout(&mut scenario) {
            ui::error(&format!("{}: {e}", a.load.scenario.display()));
            return exit::BAD_INPUT;
        }
        if s.leads() && !a.load.quiet {
            crate::say!("{}", s.describe());
        }
    }
    if let Some(n) = a.load.processes {
        return fleet::run(&a.load, head, scenario, n, search).await;
    }
    if let Some(spec) = a.load.shard
        && let Err(e) = scenario.apply_shard(spec)
    {
        ui::error(&e);
        return exit::BAD_INPUT;
    }
    let cancel = CancellationToken::new();
    let signal_exit = spawn_interrupt_handler(cancel.clone());
    let control = Arc::new(Control::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let finish = CancellationToken::new();
    let view = if a.load.json_lines {
        shard::follow_control(
            control.clone(),
            cancel.clone(),
            finish.clone(),
            signal_exit.clone(),
            scenario.sharding,
        );
        View::Lines(shard::emit_lines(rx))
    } else {
        match View::start(&a.load, &scenario, rx, &control, &cancel) {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
    if !a.load.json_lines
        && !a.load.quiet
        && let Some(at) = a.load.start_at
    {
        crate::say!("{}", shard::waiting_line(&scenario, at));
    }
    let mut opts = RunOptions::new(scenario);
    opts.file = Some(a.load.scenario.clone());
    opts.out = a.load.out.clone();
    let stopped = cancel.clone();
    opts.cancel = cancel;
    opts.finish = finish;
    opts.ticks = Some(tx);
    opts.seed = a.load.seed;
    opts.formats = a.load.format.clone();
    opts.control = control;
    opts.start_at = a.load.start_at;
    opts.memory_checked = !a.load.allow_memory_overcommit;
    opts.search = search;
    let outcome = runner::run(opts).await;
    view.finish().await;
    match outcome {
        Ok(o) => {
            if a.load.json_lines {
                shard::emit_report(&o.report);
            } else {
                ui::summary::print(&o.report, &o.report_path, a.load.summary_style());
            }
            if let (Verdict::Error, Some(e)) = (o.report.verdict, &o.report.error) {
                ui::error(e);
            }
            let interrupt = signal_exit.load(std::sync::atomic::Ordering::SeqCst);
            // A signal that came while the report was being written is
            // still a signal: the report is complete, the exit code says it.
            if stopped.is_cancelled() && !o.report.interrupted {
                return interrupt;
            }
            match runner::exit_code(&o.report, interrupt) {
                // Thresholds hold for the whole run, so `barrage merge`
                // decides; a failing shard would also fail a Kubernetes Job
                // and stop the other shards.
                exit::THRESHOLD_FAILED if a.load.shard.is_some() => exit::PASSED,
                code => code,
            }
        }
        Err(e) => {
            ui::error(&e);
            e.exit_code()
        }
    }
}

/// The first Ctrl-C or SIGTERM cancels the run gracefully (report written,
/// exit 130 for Ctrl-C, 143 for SIGTERM); a second one exits at once.
/// Returns the exit code of an interruption, set when a signal comes (130
/// until then, which is what `q` in the dashboard means).
pub(super) fn spawn_interrupt_handler(
    cancel: CancellationToken,
) -> Arc<std::sync::atomic::AtomicU8> {
    let code = Arc::new(std::sync::atomic::AtomicU8::new(exit::INTERRUPTED));
    let set = code.clone();
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        let mut signal = async || {
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok().then_some(exit::INTERRUPTED),
                r = term.recv() => r.map(|()| exit::TERMINATED),
            }
        };
        let Some(first) = signal().await else {
            return;
        };
        set.store(first, std::sync::atomic::Ordering::SeqCst);
        crate::say!(
            "interrupted: closing connections and writing the report (Ctrl-C again to quit now)"
        );
        cancel.cancel();
        if signal().await.is_some() {
            std::process::exit(i32::from(first));
        }
    });
    code
}

fn check(a: &CheckArgs) -> u8 {
    let mut code = exit::PASSED;
    for f in &a.files {
        match scenario::load(f) {
            Ok(s) => print!("{}", ui::plan::render(&f.display().to_string(), &s)),
            Err(e) => {
                ui::error(&e);
                code = exit::BAD_INPUT;
            }
        }
    }
    code
}
