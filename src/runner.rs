//! One whole run as the CLI and the integration tests use it: start the
//! built-in server when asked, run the engine, build the report from the
//! run data, and [`finish`]: the one place where `run`, `run --processes`
//! and `merge` write their report set and turn the verdict into an exit
//! code.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::engine::{self, EngineError, EngineOptions, preflight};
use crate::metrics::RunData;
use crate::report::{self, Report, ReportError, Verdict};
use crate::scenario::{BuiltinMode, Scenario, Target, WsUrl};
use crate::server;

/// Process exit codes.
pub mod exit {
    /// Every threshold held.
    pub const PASSED: u8 = 0;
    /// A threshold failed.
    pub const THRESHOLD_FAILED: u8 = 1;
    /// Bad flags or scenario: nothing was run.
    pub const BAD_INPUT: u8 = 2;
    /// The run failed: target unreachable, no connection opened, report not writable.
    pub const RUN_FAILED: u8 = 3;
    /// Stopped by Ctrl-C (the report is still written).
    pub const INTERRUPTED: u8 = 130;
    /// Stopped by SIGTERM (128 + 15); the report is still written.
    pub const TERMINATED: u8 = 143;
}

/// What to run and where results go.
pub struct RunOptions {
    /// The validated scenario (command-line overrides applied).
    pub scenario: Scenario,
    /// The scenario's file, recorded in the report.
    pub file: Option<PathBuf>,
    /// Exact folder for the report set; default `<reports_base>/<name>/<time>/`.
    pub out: Option<PathBuf>,
    /// Base folder of default report folders; default `reports`.
    pub reports_base: PathBuf,
    /// Cancelling it stops the run gracefully; the report is still written.
    pub cancel: CancellationToken,
    /// Receives each second's run data delta, for the UI.
    pub ticks: Option<mpsc::UnboundedSender<Arc<RunData>>>,
    /// Seed for random payloads, masks and keys; default from the clock.
    pub seed: Option<u64>,
    /// Files of the report set to write; default all.
    pub formats: Vec<report::Format>,
    /// Live pause and rate changes (the dashboard's keys act on it).
    pub control: Arc<Control>,
    /// Wall-clock instant at which the connection ramp starts (`--start-at`),
    /// so shards in many processes start together; default: at once.
    pub start_at: Option<std::time::SystemTime>,
    /// Refuse a run whose connections × `max_message_size` is more than
    /// this machine's memory (`--allow-memory-overcommit` turns it off).
    /// Default: on.
    pub memory_checked: bool,
    /// Cancelling it ends the run early as planned (not an interruption):
    /// how `barrage search` stops once it has its answer.
    pub finish: CancellationToken,
    /// A capacity search steering the run (`barrage search`); the scenario
    /// must have been laid out by it. Default: none.
    pub search: Option<crate::search::SearchRun>,
}

impl RunOptions {
    /// Options with defaults for `scenario`.
    pub fn new(scenario: Scenario) -> Self {
        RunOptions {
            scenario,
            file: None,
            out: None,
            reports_base: PathBuf::from("reports"),
            cancel: CancellationToken::new(),
            ticks: None,
            seed: None,
            formats: report::Format::ALL.to_vec(),
            control: Arc::default(),
            start_at: None,
            memory_checked: true,
            finish: CancellationToken::new(),
            search: None,
        }
    }
}

/// The result of a run that produced a report.
pub struct RunOutcome {
    /// The report as written.
    pub report: Report,
    /// Path of `report.json` (in the report folder even when JSON was not
    /// among the formats).
    pub report_path: PathBuf,
}

impl RunOutcome {
    /// The process exit code for this outcome (130 for an interruption).
    pub fn exit_code(&self) -> u8 {
        exit_code(&self.report, exit::INTERRUPTED)
    }
}

/// The exit code a report means: `interrupt` (130 for Ctrl-C and `q`, 143
/// for SIGTERM) when stopped by the user, 3 for verdict `error`, 1 for
/// `fail`, 0 for `pass`. The one mapping from verdict to exit code.
pub fn exit_code(report: &Report, interrupt: u8) -> u8 {
    if report.interrupted {
        return interrupt;
    }
    match report.verdict {
        Verdict::Pass => exit::PASSED,
        Verdict::Fail => exit::THRESHOLD_FAILED,
        Verdict::Error => exit::RUN_FAILED,
    }
}

/// Where a finished report goes.
pub enum Destination {
    /// A report set (the files of `formats`) in a folder.
    Folder {
        /// The exact folder, or `None` for `<reports_base>/<name>/<time>/`
        /// (then `latest` points at it).
        out: Option<PathBuf>,
        /// Base of default folders.
        reports_base: PathBuf,
        /// Files to write.
        formats: Vec<report::Format>,
    },
    /// report.json alone, at this path (`barrage merge --out`); its folder
    /// is created.
    File(PathBuf),
}

/// The end of every run, `run --processes` and `merge`: writes `report`'s
/// files (atomically) where `to` says and returns the outcome, whose exit
/// code follows from the report ([`exit_code`]).
pub fn finish(report: Report, to: &Destination) -> Result<RunOutcome, ReportError> {
    let report_path = match to {
        Destination::Folder {
            out,
            reports_base,
            formats,
        } => {
            let dir = match out {
                Some(dir) => dir.clone(),
                None => report::write::default_dir(reports_base, &report),
            };
            let path = report::write_set(&report, &dir, formats)?;
            if out.is_none() {
                report::write::point_latest(&dir)?;
            }
            path
        }
        Destination::File(path) => {
            let json = serde_json::to_vec_pretty(&report).expect("the report model serializes");
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| ReportError {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            report::write::write_atomic(path, &json)?;
            path.clone()
        }
    };
    Ok(RunOutcome {
        report,
        report_path,
    })
}

/// A run that could not produce a report.
#[derive(Debug, Error)]
pub enum RunError {
    /// The engine could not start (e.g. the target does not resolve).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The built-in server could not start.
    #[error("cannot start the built-in server: {0}")]
    Server(std::io::Error),
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The report folder cannot be written: found before anything ran.
    #[error("{0} (checked before the run: nothing was run)")]
    Destination(ReportError),
}

impl RunError {
    /// The process exit code: 2 for a run that cannot fit (nothing was
    /// run), 3 for the others.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Engine(EngineError::Preflight(_) | EngineError::Tls(_))
            | RunError::Destination(_) => exit::BAD_INPUT,
            _ => exit::RUN_FAILED,
        }
    }
}

/// Starts the built-in server the way `scenario` asks (its mode, and the
/// compression and subprotocols it offers) on a free loopback port.
pub async fn start_builtin(scenario: &Scenario) -> Result<(WsUrl, server::ServerHandle), RunError> {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let b = &scenario.builtin;
    let mode = match b.mode {
        BuiltinMode::Echo => server::Mode::Echo,
        BuiltinMode::Broadcast => server::Mode::Broadcast,
        BuiltinMode::Push => server::Mode::Push,
    };
    let server_opts = server::Options {
        compression: scenario.compression != crate::scenario::Compression::None,
        subprotocols: scenario.subprotocols.clone(),
        push_rate: b.push_rate.per_second,
        push_size: b.push_size,
        ..mode.into()
    };
    let handle = server::start(listen, server_opts)
        .await
        .map_err(RunError::Server)?;
    let url = WsUrl::parse(&format!("ws://{}/", handle.local_addr))
        .expect("a socket address makes a valid URL");
    Ok((url, handle))
}

/// Sleeps until wall-clock instant `at` (at once when it has passed), or
/// until `cancel`.
pub async fn wait_until(at: std::time::SystemTime, cancel: &CancellationToken) {
    if let Ok(left) = at.duration_since(std::time::SystemTime::now()) {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(left) => {}
        }
    }
}

/// Runs a scenario to its end (or cancellation) and writes its reports.
///
/// Raises the file-descriptor limit to the hard limit and refuses (exit 2,
/// nothing opened) a run that cannot fit the descriptors, ephemeral ports
/// or memory (see [`preflight`]).
pub async fn run(opts: RunOptions) -> Result<RunOutcome, RunError> {
    let scenario = &opts.scenario;
    let fd_limit = preflight::raise_fd_limit();
    let builtin = scenario.target == Target::Builtin;
    preflight::check(scenario, builtin, fd_limit, preflight::port_range())
        .map_err(EngineError::from)?;
    preflight::check_memory(
        u64::from(scenario.peak_connections()),
        scenario.max_message_size,
        opts.memory_checked.then(preflight::memory_limit).flatten(),
    )
    .map_err(EngineError::from)?;
    // The report folder, before the first socket: a run whose report
    // cannot be written is lost.
    let probe_dir = opts.out.clone().unwrap_or_else(|| {
        opts.reports_base
            .join(report::write::safe_name(&scenario.name))
    });
    report::write::check_destination(&probe_dir).map_err(RunError::Destination)?;
    let (url, builtin) = match &scenario.target {
        Target::Url(u) => (u.clone(), None),
        Target::Builtin => {
            let (url, handle) = start_builtin(scenario).await?;
            (url, Some(handle))
        }
    };
    if let Some(at) = opts.start_at {
        wait_until(at, &opts.cancel).await;
    }
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    // A search reads every delta first, then hands it on to the UI.
    let (ticks, steering) = match &opts.search {
        Some(search) if search.leads() => {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let phases = report::plan(scenario, None, String::new(), None).phases;
            let task = search.spawn(
                phases,
                opts.control.clone(),
                opts.finish.clone(),
                rx,
                opts.ticks.clone(),
            );
            (Some(tx), Some(task))
        }
        _ => (opts.ticks.clone(), None),
    };
    tracing::info!(
        url = %crate::scenario::redact_url(&url.original),
        connections = scenario.peak_connections(),
        phases = scenario.phases.len(),
        seed,
        "run starting"
    );
    let engine_opts = EngineOptions {
        cancel: opts.cancel.clone(),
        ticks,
        seed,
        control: opts.control.clone(),
        finish: opts.finish.clone(),
    };
    let data = engine::run(scenario, &url, engine_opts).await;
    if let Some(handle) = builtin {
        handle.shutdown().await;
    }
    if let Some(task) = steering {
        // The engine dropped its sender: the task ends after the last delta.
        let _ = task.await;
    }
    let mut data = data?;
    let mut plan = report::plan(
        scenario,
        opts.file.as_ref().map(|f| f.display().to_string()),
        // Secret query values (`?token=…`) stay out of reports.
        scenario.env_secrets.target(&url.original),
        opts.file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|text| {
                // Secrets written into the file itself stay out of reports,
                // whichever way the file spells them.
                let mut text = crate::scenario::redact_secrets(&text, scenario);
                text.truncate(text.floor_char_boundary(64 * 1024));
                text
            }),
    );
    // A follower's parent trims the merged run.
    if let Some(search) = opts.search.as_ref().filter(|s| s.leads()) {
        search.conclude(&mut plan, &mut data);
    }
    let report = report::build::withhold_env(report::build(&plan, &data), &scenario.env_secrets);
    tracing::info!(verdict = ?report.verdict, interrupted = report.interrupted, "run ended");
    Ok(finish(
        report,
        &Destination::Folder {
            out: opts.out.clone(),
            reports_base: opts.reports_base.clone(),
            formats: opts.formats.clone(),
        },
    )?)
}
