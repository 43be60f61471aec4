//! The summary tables of a report, built once and rendered either as
//! Markdown (summary.md) or as aligned text (the terminal summary).

use super::model::{MetricSummary, Report};

/// A table of text cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Title shown above the table.
    pub title: String,
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows of cells, each as long as `headers`.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: &str, headers: &[&str]) -> Self {
        Table {
            title: title.to_string(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// GitHub-flavoured Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("### {}\n\n| {} |\n|", self.title, self.headers.join(" | "));
        for (i, _) in self.headers.iter().enumerate() {
            out.push_str(if i == 0 { "---|" } else { "---:|" });
        }
        out.push('\n');
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        out
    }

    /// An HTML table with its title as a caption (cells escaped).
    pub fn to_html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut out = format!("<table><caption>{}</caption><tr>", esc(&self.title));
        for h in &self.headers {
            out.push_str(&format!("<th>{}</th>", esc(h)));
        }
        out.push_str("</tr>\n");
        for r in &self.rows {
            out.push_str("<tr>");
            for c in r {
                out.push_str(&format!("<td>{}</td>", esc(c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>");
        out
    }

    /// Aligned plain text: first column left, the others right.
    pub fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                let pad = w - c.chars().count();
                if i == 0 {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str("  ");
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = format!("{}\n", self.title);
        out.push_str(&line(&self.headers));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

pub use crate::metrics::evaluate::fmt_ns;

fn us(v: f64) -> String {
    fmt_ns(v * 1000.0)
}

fn latency_row(name: &str, m: &MetricSummary) -> Vec<String> {
    if m.count == 0 {
        let mut row = vec![name.to_string(), "0".to_string()];
        row.extend(std::iter::repeat_n("-".to_string(), 7));
        return row;
    }
    vec![
        name.to_string(),
        m.count.to_string(),
        us(m.min_us),
        us(m.p50_us),
        us(m.p90_us),
        us(m.p99_us),
        us(m.p999_us),
        us(m.max_us),
        us(m.mean_us),
    ]
}

const LATENCY_HEADERS: [&str; 9] = [
    "metric", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean",
];

/// The verdict line.
pub fn verdict_line(r: &Report) -> String {
    let v = r.verdict.word();
    let passed = r.thresholds.iter().filter(|t| t.pass).count();
    let mut s = format!(
        "{v}: {} — {passed}/{} thresholds held, {:.1}s against {}",
        r.scenario.name,
        r.thresholds.len(),
        r.duration_s,
        r.scenario.target
    );
    if let Some(search) = &r.search {
        s = format!("{v}: {} — {}", r.scenario.name, search.answer);
        if let (Some(min), Some(c)) = (search.plan.min, search.capacity)
            && c < min
        {
            s.push_str(&format!(", below --min {}", super::search::thousands(min)));
        }
    }
    if let Some(e) = &r.error {
        s = format!("{v}: {} — the run failed: {e}", r.scenario.name);
    }
    if r.interrupted {
        s.push_str(" (interrupted)");
    }
    if let Some(a) = &r.aborted {
        s.push_str(&format!(
            " — stopped early at {:.1}s: {} broke (abort_on_fail)",
            a.t_s, a.threshold
        ));
    }
    if r.saturated {
        s.push_str(
            " — WARNING: the tester fell behind its schedule (see SATURATED phases: send_lag p99 over 10ms \
             or under 99% of its schedule sent); give it more cores or connections, or lower the rate",
        );
    }
    s
}

/// Which rows the tables hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every counter and every phase's percentiles (the report files, and
    /// the terminal with `-v`).
    All,
    /// What happened: counters that are not zero, latencies that were
    /// recorded, no per-phase percentile tables (the terminal's default).
    Brief,
}

/// Every summary table of `r`, in display order: the verdict's tables
/// (thresholds, a search's steps) first, then what was measured.
pub fn tables(r: &Report, detail: Detail) -> Vec<Table> {
    let mut out = Vec::new();
    if !r.thresholds.is_empty() {
        let mut th = Table::new("Thresholds", &["threshold", "observed", "result"]);
        for t in &r.thresholds {
            th.row(vec![
                t.expr.clone(),
                t.observed_text.clone(),
                if t.pass { "pass" } else { "FAIL" }.to_string(),
            ]);
        }
        out.push(th);
    }
    if let Some(s) = &r.search {
        out.push(search_table(s));
    }
    let brief = detail == Detail::Brief;
    let t = &r.totals;
    let mut totals = Table::new("Totals", &["counter", "value"]);
    let c = &t.connections;
    for (k, v) in [
        ("connections attempted", c.attempted),
        ("connections opened", c.opened),
        ("connections failed", c.failed),
        ("connections peak open", c.peak_open),
        ("connections closed by server", c.closed_by_server),
        ("connections opened per second", c.open_rate.round() as u64),
        ("messages sent", t.messages.sent),
        ("messages sent by paced loops", t.messages.paced),
        (
            "messages sent by other steps (join, subscribe)",
            t.messages.sent - t.messages.paced.min(t.messages.sent),
        ),
        ("messages received", t.messages.received),
        ("replies awaited", t.messages.awaited),
        ("replies matched", t.messages.replies),
        ("replies never received", t.messages.unanswered),
        (
            "deliveries (timestamped, unsolicited)",
            t.messages.delivered,
        ),
        ("messages unmatched", t.messages.unmatched),
        ("messages not sent (tester behind)", t.messages.not_sent),
        ("connections compressed (permessage-deflate)", c.compressed),
        ("connections with a subprotocol", c.subprotocol),
        ("message bytes sent", t.bytes.sent),
        ("message bytes received", t.bytes.received),
        ("wire bytes sent", t.bytes.wire_sent),
        ("wire bytes received", t.bytes.wire_received),
    ] {
        totals.row(vec![k.to_string(), v.to_string()]);
    }
    // Completeness, when streams were tracked (`sequence:`).
    if t.messages.sequenced > 0 {
        let m = &t.messages;
        for (k, v) in [
            ("messages with a sequence number", m.sequenced),
            ("sequence numbers lost", m.lost),
            ("sequence numbers duplicated", m.duplicate),
            ("sequence numbers reordered", m.reordered),
        ] {
            totals.row(vec![k.to_string(), v.to_string()]);
        }
    }
    // Fan-out, when rooms were tracked (`fanout:`).
    if t.messages.fanout_expected > 0 {
        let m = &t.messages;
        totals.row(vec![
            "deliveries expected (fan-out)".into(),
            m.fanout_expected.to_string(),
        ]);
        totals.row(vec![
            "delivery ratio (delivered / expected)".into(),
            format!(
                "{:.2}%",
                m.delivered as f64 / m.fanout_expected as f64 * 100.0
            ),
        ]);
    }
    for (k, v) in &t.errors {
        totals.row(vec![format!("errors {k}"), v.to_string()]);
    }
    for (code, v) in &t.close_codes {
        totals.row(vec![format!("close code {code} received"), v.to_string()]);
    }
    for (status, v) in &t.http_statuses {
        totals.row(vec![
            format!(
                "upgrades refused with HTTP {status} ({})",
                http_reason(status)
            ),
            v.to_string(),
        ]);
    }
    if brief {
        totals.rows.retain(|row| row[1] != "0");
    }
    out.push(totals);
    if !t.recent_errors.is_empty() {
        let mut recent = Table::new("Latest distinct errors", &["error"]);
        for e in &t.recent_errors {
            recent.row(vec![e.clone()]);
        }
        out.push(recent);
    }

    let mut lat = Table::new("Latency (recorded phases)", &LATENCY_HEADERS);
    for name in [
        "rtt",
        "service",
        "send_lag",
        "connect",
        "tls",
        "handshake",
        "ping",
        "delivery",
        "first_message",
    ] {
        let optional = brief || matches!(name, "tls" | "ping" | "delivery" | "first_message");
        if let Some(m) = r.metrics.get(name).filter(|m| m.count > 0 || !optional) {
            lat.row(latency_row(name, m));
        }
    }
    out.push(lat);

    if !r.roles.is_empty() {
        let mut roles = Table::new(
            "Roles (recorded phases)",
            &[
                "role",
                "connections",
                "sent",
                "received",
                "unmatched",
                "errors",
                "rtt p50",
                "rtt p99",
                "delivery p50",
                "delivery p99",
                "delivered",
            ],
        );
        for (name, role) in &r.roles {
            let stat = |metric: &str, f: fn(&MetricSummary) -> f64| {
                role.metrics
                    .get(metric)
                    .map_or("-".to_string(), |m| us(f(m)))
            };
            roles.row(vec![
                name.clone(),
                role.connections.to_string(),
                role.messages.sent.to_string(),
                role.messages.received.to_string(),
                role.messages.unmatched.to_string(),
                role.errors.to_string(),
                stat("rtt", |m| m.p50_us),
                stat("rtt", |m| m.p99_us),
                stat("delivery", |m| m.p50_us),
                stat("delivery", |m| m.p99_us),
                role.metrics
                    .get("delivery")
                    .map_or(0, |m| m.count)
                    .to_string(),
            ]);
        }
        out.push(roles);
    }

    let mut phases = Table::new(
        "Phases",
        &[
            "phase",
            "duration",
            "target rate",
            "achieved rate",
            "sent",
            "received",
            "errors",
            "rtt p50",
            "rtt p99",
        ],
    );
    for p in &r.phases {
        let rtt = p.metrics.get("rtt").cloned().unwrap_or_default();
        let (p50, p99) = if rtt.count == 0 {
            ("-".to_string(), "-".to_string())
        } else {
            (us(rtt.p50_us), us(rtt.p99_us))
        };
        let mut name = p.name.clone();
        if !p.record {
            name.push_str(" (not recorded)");
        }
        if p.saturated {
            name.push_str(" (SATURATED)");
        }
        phases.row(vec![
            name,
            format!("{:.1}s", p.duration_s),
            p.target_rate
                .map_or("max".to_string(), |r| format!("{r:.0}/s")),
            format!("{:.0}/s", p.achieved_rate),
            p.messages.sent.to_string(),
            p.messages.received.to_string(),
            p.errors.to_string(),
            p50,
            p99,
        ]);
    }
    out.push(phases);

    // Each phase's percentiles, for the metrics recorded per phase.
    for p in r.phases.iter().filter(|_| !brief) {
        let mut t = Table::new(&format!("Latency in phase {}", p.name), &LATENCY_HEADERS);
        for name in ["rtt", "service", "send_lag", "connect", "handshake"] {
            if let Some(m) = p.metrics.get(name).filter(|m| m.count > 0) {
                t.row(latency_row(name, m));
            }
        }
        if !t.rows.is_empty() {
            out.push(t);
        }
    }

    out
}

/// The steps of a capacity search: offered and achieved rate, each SLO's
/// value, and the step's result.
fn search_table(s: &super::search::SearchReport) -> Table {
    use super::search::{Vary, thousands, tried};
    let by_count = s.plan.vary == Vary::Connections;
    let mut headers = vec!["step"];
    if by_count {
        headers.push("connections");
    }
    headers.extend(["offered", "achieved"]);
    // A step's SLOs as it was judged: a search over connections adds that
    // they were open.
    let slos = s.steps.first().map_or_else(
        || s.plan.slos.clone(),
        |st| st.slos.iter().map(|v| v.expr.clone()).collect(),
    );
    headers.extend(slos.iter().map(String::as_str));
    headers.push("result");
    let mut t = Table::new("Capacity search", &headers);
    for step in &s.steps {
        let mut row = vec![step.phase.clone()];
        if by_count {
            row.push(thousands(tried(s.plan.vary, step)));
        }
        row.extend([
            format!("{}/s", thousands(step.offered)),
            format!("{}/s", thousands(step.achieved)),
        ]);
        row.extend(step.slos.iter().map(|v| v.observed_text.clone()));
        row.push(
            if step.tester_bound {
                "TESTER-BOUND"
            } else if step.pass {
                "pass"
            } else {
                "FAIL"
            }
            .to_string(),
        );
        t.row(row);
    }
    t
}

/// What an HTTP status refusing an upgrade usually means, for summaries.
pub fn http_reason(status: &str) -> &'static str {
    match status {
        "400" => "bad request",
        "401" => "unauthorized",
        "403" => "forbidden",
        "404" => "not found",
        "426" => "upgrade required",
        "429" => "rate limited",
        "500" => "server error",
        "502" | "504" => "bad gateway",
        "503" => "unavailable",
        s if s.starts_with('2') => "answered without upgrading",
        s if s.starts_with('3') => "redirected",
        _ => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_readable() {
        assert_eq!(fmt_ns(850.0), "850ns");
        assert_eq!(fmt_ns(412_300.0), "412µs");
        assert_eq!(fmt_ns(3_214_000.0), "3.21ms");
        assert_eq!(fmt_ns(1_500_000_000.0), "1.50s");
    }

    #[test]
    fn text_and_markdown_align() {
        let mut t = Table::new("T", &["a", "bb"]);
        t.row(vec!["long name".into(), "1".into()]);
        assert_eq!(t.to_text(), "T\na          bb\nlong name   1\n");
        assert_eq!(
            t.to_markdown(),
            "### T\n\n| a | bb |\n|---|---:|\n| long name | 1 |\n"
        );
    }
}
