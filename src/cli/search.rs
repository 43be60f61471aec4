//! `barrage search`: the command line of a capacity search (see
//! [`crate::search`]); the run itself is `run`'s, steered.

use std::time::Duration;

use clap::Args;

use super::{LoadArgs, RunArgs, run_with};
use crate::report::search::Vary;
use crate::runner::exit;
use crate::scenario::{self, Threshold};
use crate::search::{SearchRun, SearchSettings};
use crate::ui;

/// `barrage search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The scenario (its connections, flow and messages; its phases and
    /// thresholds are replaced by the search's steps and SLOs), and how the
    /// run is shown, written and split over processes.
    #[command(flatten)]
    pub load: LoadArgs,
    /// An SLO every step must hold, in the threshold language
    /// (`rtt.p99 < 50ms`, `errors.rate < 1%`); repeat for more. Required.
    #[arg(long = "slo", required = true, value_name = "THRESHOLD")]
    pub slos: Vec<String>,
    /// What the steps vary: the total message rate, or the connection
    /// count at the scenario's per-connection rate (its last phase's rate
    /// over `connections.count`; a closed loop or listening only stays
    /// so). Default rate.
    #[arg(long, value_enum, default_value_t = Vary::Rate)]
    pub vary: Vary,
    /// First value tried: a rate, or a connection count with `--vary
    /// connections`. Default 1000/s, or 100 connections.
    #[arg(long)]
    pub from: Option<String>,
    /// Highest value tried. Default 500000/s, or 10000 connections.
    #[arg(long)]
    pub to: Option<String>,
    /// How long each step is measured. Default 10s.
    #[arg(long, value_parser = scenario::parse_positive_duration, default_value = "10s")]
    pub step: Duration,
    /// Warm-up at each step's value before it is measured; at least 2s
    /// (the step before is judged during it). With `--vary connections`,
    /// long enough to open a step's new connections at
    /// `connections.rate`. Default 2s.
    #[arg(long, value_parser = parse_warmup, default_value = "2s")]
    pub warmup: Duration,
    /// After each step, a pause that sends nothing, so its last replies
    /// come back (later ones time out) and an overloaded server works off
    /// its backlog before the next step. Default 5s.
    #[arg(long, value_parser = scenario::parse_positive_duration, default_value = "5s")]
    pub cooldown: Duration,
    /// Stop bisecting when the gap between the highest passing and the
    /// lowest failing value is at most this share of the passing one
    /// (`5%`, 0.1% to 50%). Default 5%.
    #[arg(long, value_parser = parse_precision, default_value = "5%")]
    pub precision: f64,
    /// The capacity the server must reach (a rate, or a connection count
    /// with `--vary connections`): below it the search exits 1.
    #[arg(long)]
    pub min: Option<String>,
    /// A shard process of `search --processes`: its parent decides the
    /// steps and sends them on stdin.
    #[arg(long, hide = true, requires = "shard")]
    pub follow: bool,
}

/// A value of `--from`, `--to` or `--min`: a rate (`1000/s`), or a
/// connection count with `--vary connections`.
fn parse_value(vary: Vary, flag: &str, s: &str) -> Result<f64, String> {
    let v = match vary {
        Vary::Rate => scenario::parse_rate(s).map(|r| r.per_second),
        Vary::Connections => s
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .map(f64::from)
            .ok_or_else(|| format!("{s:?} is not a connection count (1 or more)")),
    };
    v.map_err(|e| format!("--{flag}: {e}"))
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
    if a.load.shard.is_some() && !a.follow {
        ui::error(
            &"--shard: a search decides each step from the whole run's results; \
              split it over processes with --processes N",
        );
        return exit::BAD_INPUT;
    }
    let (from_default, to_default) = match a.vary {
        Vary::Rate => ("1000/s", "500000/s"),
        Vary::Connections => ("100", "10000"),
    };
    let values = (
        parse_value(a.vary, "from", a.from.as_deref().unwrap_or(from_default)),
        parse_value(a.vary, "to", a.to.as_deref().unwrap_or(to_default)),
        a.min
            .as_deref()
            .map(|m| parse_value(a.vary, "min", m))
            .transpose(),
    );
    let (from, to, min) = match values {
        (Ok(f), Ok(t), Ok(m)) => (f, t, m),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            ui::error(&e);
            return exit::BAD_INPUT;
        }
    };
    if from >= to {
        ui::error(&format!(
            "--from {} must be below --to {}",
            a.vary.show(from),
            a.vary.show(to)
        ));
        return exit::BAD_INPUT;
    }
    let settings = SearchSettings {
        slos,
        vary: a.vary,
        from,
        to,
        step: a.step,
        warmup: a.warmup,
        cooldown: a.cooldown,
        precision: a.precision,
        min,
    };
    // How a shard process of `--processes` is started: the same search,
    // following.
    let value = |v: f64| match a.vary {
        Vary::Rate => format!("{v}/s"),
        Vary::Connections => v.to_string(),
    };
    let mut head = vec!["search".to_string(), a.load.scenario.display().to_string()];
    head.extend(super::verbose_flag(a.load.verbose));
    for slo in &a.slos {
        head.extend(["--slo".into(), slo.clone()]);
    }
    head.extend([
        "--vary".into(),
        format!("{:?}", a.vary).to_lowercase(),
        "--from".into(),
        value(from),
        "--to".into(),
        value(to),
        "--step".into(),
        format!("{}ms", a.step.as_millis()),
        "--warmup".into(),
        format!("{}ms", a.warmup.as_millis()),
        "--cooldown".into(),
        format!("{}ms", a.cooldown.as_millis()),
        "--precision".into(),
        a.precision.to_string(),
        "--follow".into(),
    ]);
    let run = RunArgs {
        load: a.load,
        duration: None,
        rate: None,
    };
    let search = if a.follow {
        SearchRun::follower(settings)
    } else {
        SearchRun::new(settings)
    };
    run_with(run, head, Some(search)).await
}
