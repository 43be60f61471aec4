//! `barrage search`: the command line of a capacity search (see
//! [`crate::search`]); the run itself is `run`'s, steered.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{RunArgs, run_with};
use crate::report::Format;
use crate::runner::exit;
use crate::scenario::{self, Threshold};
use crate::search::{SearchRun, SearchSettings};
use crate::ui;

/// `barrage search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Scenario file (YAML): its connections, flow and messages; its phases
    /// and thresholds are replaced by the search's steps and SLOs.
    pub scenario: PathBuf,
    /// An SLO every step must hold, in the threshold language
    /// (`rtt.p99 < 50ms`, `errors.rate < 1%`); repeat for more. Required.
    #[arg(long = "slo", required = true, value_name = "THRESHOLD")]
    pub slos: Vec<String>,
    /// First rate tried. Default 1000/s.
    #[arg(long, value_parser = scenario::parse_rate, default_value = "1000/s")]
    pub from: scenario::Rate,
    /// Highest rate tried. Default 500000/s.
    #[arg(long, value_parser = scenario::parse_rate, default_value = "500000/s")]
    pub to: scenario::Rate,
    /// How long each step is measured. Default 10s.
    #[arg(long, value_parser = scenario::parse_positive_duration, default_value = "10s")]
    pub step: Duration,
    /// Warm-up at each step's rate before it is measured; at least 2s (the
    /// step before is judged during it). Default 2s.
    #[arg(long, value_parser = parse_warmup, default_value = "2s")]
    pub warmup: Duration,
    /// After each step, a pause that sends nothing, so its last replies
    /// come back (later ones time out) and an overloaded server works off
    /// its backlog before the next step. Default 5s.
    #[arg(long, value_parser = scenario::parse_positive_duration, default_value = "5s")]
    pub cooldown: Duration,
    /// Stop bisecting when the gap between the highest passing and the
    /// lowest failing rate is at most this share of the passing one
    /// (`5%`, 0.1% to 50%). Default 5%.
    #[arg(long, value_parser = parse_precision, default_value = "5%")]
    pub precision: f64,
    /// The capacity the server must reach: below it the search exits 1.
    #[arg(long, value_parser = scenario::parse_rate)]
    pub min: Option<scenario::Rate>,
    /// Target URL (ws://host:port/path) or `builtin`, replacing the scenario's.
    #[arg(long)]
    pub target: Option<String>,
    /// Connections to open, replacing `connections.count`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: Option<u32>,
    /// Folder for the report set (default: reports/<name>/<timestamp>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No live dashboard: progress on stderr instead.
    #[arg(long)]
    pub no_tui: bool,
    /// Print only the final summary.
    #[arg(long, short)]
    pub quiet: bool,
    /// Seed for random payloads, masks and keys (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Files of the report set to write, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Format::ALL)]
    pub format: Vec<Format>,
}

/// `--warmup`: at least 2 s.
fn parse_warmup(s: &str) -> Result<Duration, String> {
    let d = scenario::parse_positive_duration(s)?;
    if d < Duration::from_secs(2) {
        return Err(format!(
            "{s} is too short: the step before is judged during the warm-up, which needs at least 2s"
        ));
    }
    Ok(d)
}

/// `--precision`: `5%` or `0.05`, between 0.1% and 50%.
fn parse_precision(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a share; write e.g. 5%"))?;
    if !(0.001..=0.5).contains(&v) {
        return Err(format!("{s} must be between 0.1% and 50%"));
    }
    Ok(v)
}

/// Runs the search and returns the exit code.
pub(super) async fn search(a: SearchArgs) -> u8 {
    let mut slos = Vec::new();
    for s in &a.slos {
        match Threshold::parse(s) {
            Ok(t) if t.phase.is_some() => {
                ui::error(&format!(
                    "--slo {s:?}: an SLO holds for every step; leave out the phase"
                ));
                return exit::BAD_INPUT;
            }
            Ok(t) => slos.push(t),
            Err(e) => {
                ui::error(&format!("--slo {s:?}: {e}"));
                return exit::BAD_INPUT;
            }
        }
    }
    if a.from.per_second >= a.to.per_second {
        ui::error(&format!(
            "--from {}/s must be below --to {}/s",
            a.from.per_second, a.to.per_second
        ));
        return exit::BAD_INPUT;
    }
    let settings = SearchSettings {
        slos,
        from: a.from.per_second,
        to: a.to.per_second,
        step: a.step,
        warmup: a.warmup,
        cooldown: a.cooldown,
        precision: a.precision,
        min: a.min.map(|m| m.per_second),
    };
    if !a.quiet {
        let n = settings.max_steps();
        let each = settings.warmup + settings.step + settings.cooldown;
        crate::say!(
            "search: {}/s to {}/s, doubling then bisecting to {}%: at most {n} steps of {:?} warm-up + {:?} step + {:?} cool-down, up to {:?}",
            settings.from,
            settings.to,
            settings.precision * 100.0,
            settings.warmup,
            settings.step,
            settings.cooldown,
            each * n as u32
        );
    }
    let run = RunArgs {
        scenario: a.scenario,
        target: a.target,
        duration: None,
        connections: a.connections,
        rate: None,
        out: a.out,
        no_tui: a.no_tui,
        quiet: a.quiet,
        seed: a.seed,
        format: a.format,
        shard: None,
        start_at: None,
        json_lines: false,
        processes: None,
        allow_memory_overcommit: false,
    };
    run_with(run, Some(SearchRun::new(settings))).await
}
