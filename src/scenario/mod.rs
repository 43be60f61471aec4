//! Scenario files: a YAML description of a load test, parsed into validated
//! types. Every problem is reported as a [`ScenarioError`] that points at the
//! file, line, column and field.

mod data;
mod env;
mod error;
mod flow;
mod message;
mod model;
mod population;
mod protocol;
mod sequence;
mod shard;
mod source_ips;
mod target;
mod template;
mod threshold;
mod units;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use data::{DataError, DataMode, DataSpec, Feeder};
pub use env::{EnvSecrets, env_names, substitute_env, walk_strings};
pub use error::ScenarioError;
pub use flow::{
    Capture, Correlate, Delivery, ExpectStep, LoopStep, Matcher, OnTimeout, Role, SendStep, Step,
    TimeUnit, capture_names, is_paced, walk_mut,
};
pub use message::{DEFAULT_TEMPLATE, Message};
pub use model::{Connections, Phase, PhaseRate, Scenario};
pub use population::{Lifetime, PhaseConnections};
pub use protocol::{
    BuiltinMode, BuiltinSettings, CloseSettings, Compression, DEFAULT_MAX_MESSAGE, DeflateOptions,
    Headers, PingSettings, ReconnectPolicy, TlsSettings, is_secret_header, percent_decode,
    redact_secrets, redact_url,
};
pub use sequence::{Fanout, Sequence};
pub use shard::{ShardSpec, Sharding, assign_roles};
pub use source_ips::parse_source_ips;
pub use target::{Target, WsUrl};
pub use template::{Template, TemplateVars};
pub use threshold::{
    COUNTERS, CmpOp, Counter, ErrorKind, LatencyMetric, SequenceCount, Stat, Threshold,
    ThresholdMetric, metric_names,
};
pub use units::{
    Rate, Size, parse_count, parse_duration, parse_positive_duration, parse_rate, parse_size,
};

/// Reads and parses a scenario file. A read failure is reported as a
/// [`ScenarioError`] naming the file, at line 0 column 0 (shown without a
/// position).
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: label.clone(),
        line: 0,
        column: 0,
        field: None,
        message: format!("cannot read scenario file: {e}"),
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut scenario = parse_at(&label, &text, base)?;
    resolve_tls_files(&label, &text, path, &mut scenario).map_err(|mut e| {
        e.message = scenario.env_secrets.redact(&e.message);
        e
    })?;
    Ok(scenario)
}

/// Makes the `tls:` file paths relative to the scenario file's folder and,
/// for a `wss://` target, checks that they exist, so a typo stops the run
/// with its line before any socket opens. (A target changed to wss:// on the
/// command line gets the same check, by path, when the TLS config is built.)
fn resolve_tls_files(
    label: &str,
    text: &str,
    path: &Path,
    s: &mut Scenario,
) -> Result<(), ScenarioError> {
    let base = path.parent().unwrap_or(Path::new(""));
    let wss = matches!(&s.target, Target::Url(u) if u.tls);
    let tls = &mut s.tls;
    for (key, slot) in [
        ("ca", &mut tls.ca),
        ("cert", &mut tls.cert),
        ("key", &mut tls.key),
    ] {
        let Some(file) = slot.as_mut() else { continue };
        if file.is_relative() {
            *file = base.join(&*file);
        }
        if wss && !file.is_file() {
            let needle = format!("{key}:");
            let (line, column) = text
                .lines()
                .enumerate()
                .find_map(|(n, l)| {
                    l.find(&needle)
                        .filter(|_| l.contains("tls") || l.starts_with(' '))
                        .map(|c| (n + 1, c + 1))
                })
                .unwrap_or((0, 0));
            return Err(ScenarioError {
                file: label.to_string(),
                line,
                column,
                field: Some(format!("tls.{key}")),
                message: format!("no such file: {}", file.display()),
            });
        }
    }
    Ok(())
}

/// Parses scenario YAML. `file_label` is used only in error messages; a
/// `data:` file is read relative to the current directory.
pub fn parse(file_label: &str, text: &str) -> Result<Scenario, ScenarioError> {
    parse_at(file_label, text, Path::new(""))
}

/// Parses scenario YAML whose relative paths (`data.file`) start at `base`.
/// `${env:NAME}` in any string value is replaced by the environment
/// variable as the file is read.
pub fn parse_at(file_label: &str, text: &str, base: &Path) -> Result<Scenario, ScenarioError> {
    parse_with_env(file_label, text, base, &|n| std::env::var(n).ok())
}

/// [`parse_at`] with the environment looked up by `env`.
fn parse_with_env(
    file_label: &str,
    text: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, ScenarioError> {
    // A byte-order mark some editors write is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_depth(file_label, text)?;
    let has_content = text.lines().any(|l| {
        let l = l.trim();
        !(l.is_empty() || l.starts_with('#') || l == "---" || l == "...")
    });
    if !has_content {
        return Err(ScenarioError {
            file: file_label.to_string(),
            line: 1,
            column: 1,
            field: None,
            message:
                "the file is empty; a scenario needs at least name, target, connections and phases"
                    .to_string(),
        });
    }
    // A first pass over the bare YAML reports syntax errors without pinning
    // them on whichever field happened to be read when the parser failed.
    if let Err(e) = serde_yaml::from_str::<serde::de::IgnoredAny>(text) {
        return Err(ScenarioError::from_syntax(file_label, &e));
    }
    // `${env:NAME}` is substituted between the YAML deserializer and the
    // model, so errors keep the file's lines and the field's path, and an
    // error withholds the values substituted.
    let ctx = env::Ctx::new(env);
    let withhold = |mut e: ScenarioError| {
        e.message = ctx.redact_error(&e.message);
        e
    };
    let de = env::Subst {
        de: serde_yaml::Deserializer::from_str(text),
        ctx: &ctx,
    };
    let mut scenario: Scenario = serde_path_to_error::deserialize(de)
        .map_err(|e| withhold(ScenarioError::from_yaml(file_label, e)))?;
    if text.contains("${")
        && let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text)
    {
        scenario.env_secrets = EnvSecrets::of(&doc, env);
    }
    check_threshold_phases(file_label, text, &scenario).map_err(withhold)?;
    finish_flows(file_label, text, base, &mut scenario).map_err(withhold)?;
    Ok(scenario)
}

/// Deepest nesting of `[` and `{` a scenario may have. The YAML parser's
/// time grows with the square of the depth (100,000 `[` took 33 s), and no
/// scenario needs more than a handful.
pub const MAX_DEPTH: usize = 128;

/// Refuses flow collections nested deeper than [`MAX_DEPTH`], before the
/// YAML parser sees them; quoted strings and comments are skipped.
fn check_depth(file: &str, text: &str) -> Result<(), ScenarioError> {
    let mut depth = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        column += 1;
        if c == '\n' {
            (line, column, comment) = (line + 1, 0, false);
            prev = c;
            continue;
        }
        if comment {
            continue;
        }
        match (quote, c) {
            // An escaped character inside double quotes.
            (Some('"'), _) if prev == '\\' => {
                prev = ' ';
                continue;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            // A quote starts a scalar only where one can start (not in
            // `it's`).
            (None, '"' | '\'')
                if matches!(prev, ' ' | '\t' | '\n' | '[' | '{' | ',' | ':' | '-') =>
            {
                quote = Some(c)
            }
            (None, '#') if prev.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ScenarioError {
                        file: file.to_string(),
                        line,
                        column,
                        field: None,
                        message: format!(
                            "nested deeper than {MAX_DEPTH} levels of [ and {{; no scenario needs that"
                        ),
                    });
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    Ok(())
}

/// The line and column of the first line containing `needle`, (0, 0) when none.
fn locate(text: &str, needle: &str) -> (usize, usize) {
    text.lines()
        .enumerate()
        .find_map(|(n, l)| l.find(needle).map(|c| (n + 1, c + 1)))
        .unwrap_or((0, 0))
}

/// Checks what can only be checked once the whole file is read: `flow` and
/// `roles` not both, flow shapes, the feeder (loaded, enough rows for
/// `unique`), and every template name bound to a feeder column or a capture
/// of its flow (then resolved to the per-connection slots
/// `[data columns…, captures…]`).
fn finish_flows(
    file: &str,
    text: &str,
    base: &Path,
    s: &mut Scenario,
) -> Result<(), ScenarioError> {
    let error = |needle: &str, field: &str, message: String| {
        let (line, column) = locate(text, needle);
        ScenarioError {
            file: file.to_string(),
            line,
            column,
            field: Some(field.to_string()),
            message,
        }
    };
    if s.flow.is_some() && !s.roles.is_empty() {
        return Err(error(
            "roles:",
            "roles",
            "give either flow: or roles: (each role has its own flow), not both".into(),
        ));
    }
    if let Some(spec) = &s.data {
        let path = if spec.file.is_relative() {
            base.join(&spec.file)
        } else {
            spec.file.clone()
        };
        let label = spec.file.display().to_string();
        let feeder = Feeder::load(&path, &label, spec.mode)
            .and_then(|f| f.check_capacity(u64::from(s.connections.count)).map(|()| f))
            .map_err(|e| error("data:", "data", e.to_string()))?;
        s.feeder = Some(std::sync::Arc::new(feeder));
    }
    let columns: Vec<String> = s
        .feeder
        .as_ref()
        .map(|f| f.columns.iter().map(|c| format!("data.{c}")).collect())
        .unwrap_or_default();
    if let Some(f) = &mut s.fanout
        && f.room.starts_with("data.")
    {
        f.column = Some(columns.iter().position(|c| *c == f.room).ok_or_else(|| {
            error(
                "fanout:",
                "fanout.room",
                format!(
                    "{} is not a column of the data file (columns: {})",
                    f.room,
                    if columns.is_empty() {
                        "none: give a data: file".to_string()
                    } else {
                        columns.join(", ")
                    }
                ),
            )
        })?);
    }
    if let Message::Text(t) = &mut s.message {
        t.bind(&columns)
            .map_err(|e| error(t.names().next().unwrap_or(""), "message.text", e))?;
        t.resolve(&columns);
    }
    // A loop paced by the phase rate needs a rate in every phase.
    let phase_paced = match (&s.flow, s.roles.is_empty()) {
        (Some(f), _) => is_paced(f),
        (None, false) => s
            .roles
            .iter()
            .any(|r| r.rate.is_none() && is_paced(&r.flow)),
        (None, true) => true,
    };
    if phase_paced && let Some(p) = s.phases.iter().find(|p| p.rate == PhaseRate::None) {
        return Err(error(
            &format!("name: {}", p.name),
            &format!("phases.{}.rate", p.name),
            format!(
                "phase {:?} has no rate, but the flow has a loop paced by the phase rate; \
                 give a rate (e.g. 100/s or max), or a flow without a paced loop",
                p.name
            ),
        ));
    }
    let flows: Vec<(String, &mut Vec<Step>)> = match (&mut s.flow, s.roles.is_empty()) {
        (Some(f), _) => vec![("flow".to_string(), f)],
        (None, false) => s
            .roles
            .iter_mut()
            .map(|r| (format!("roles.{}.flow", r.name), &mut r.flow))
            .collect(),
        (None, true) => Vec::new(),
    };
    // A message whose echo is awaited comes back as large as it went out.
    let max_message = s.max_message_size;
    let too_big = |field: &str, size: usize| {
        let e = Size;
        error(
            "binary:",
            field,
            format!(
                "a binary message of {} is echoed back, but max_message_size is {}, so every echo \
                 would be refused (1009); set max_message_size: {size} or more",
                e(size as u64),
                e(max_message as u64)
            ),
        )
    };
    if flows.is_empty()
        && let Message::Binary { size } = s.message
        && size > max_message
    {
        return Err(too_big("message.binary.size", size));
    }
    for (field, steps) in flows {
        let mut echoed = 0;
        flow::walk_mut(steps, &mut |step| {
            if let Step::Send(SendStep {
                message: Message::Binary { size },
                correlate: flow::Correlate::Echo,
                ..
            }) = step
            {
                echoed = echoed.max(*size);
            }
        });
        if echoed > max_message {
            return Err(too_big(&field, echoed));
        }
        flow::check_shape(steps).map_err(|e| error(&field.replace("roles.", ""), &field, e))?;
        let mut slots = columns.clone();
        slots.extend(capture_names(steps));
        let mut bad = None;
        flow::walk_mut(steps, &mut |step| {
            if let Step::Send(SendStep {
                message: Message::Text(t),
                ..
            }) = step
            {
                if let Err(e) = t.bind(&slots) {
                    bad.get_or_insert((t.names().next().unwrap_or("").to_string(), e));
                }
                t.resolve(&slots);
            }
        });
        if let Some((name, e)) = bad {
            return Err(error(&name, &field, e));
        }
    }
    Ok(())
}

/// A threshold scoped to a phase (`steady: rtt.p99 < 20ms`) must name one of
/// the scenario's phases. Checked once the whole file is read; the error
/// points at the line where the threshold is written.
fn check_threshold_phases(file: &str, text: &str, s: &Scenario) -> Result<(), ScenarioError> {
    for (i, t) in s.thresholds.iter().enumerate() {
        let Some(phase) = &t.phase else { continue };
        if s.phases.iter().any(|p| &p.name == phase) {
            continue;
        }
        let known: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
        let (line, column) = text
            .lines()
            .enumerate()
            .find_map(|(n, l)| l.find(t.expr.as_str()).map(|c| (n + 1, c + 1)))
            .unwrap_or((0, 0));
        return Err(ScenarioError {
            file: file.to_string(),
            line,
            column,
            field: Some(format!("thresholds[{i}]")),
            message: format!(
                "no phase named {phase:?}; the phases are {}",
                known.join(", ")
            ),
        });
    }
    Ok(())
}
