//! `junit.xml`: a test case `verdict` carrying the run's verdict (a
//! failure for FAIL, an error for ERROR) and one test case per threshold,
//! so Jenkins, GitLab and GitHub show a load test's gates like unit tests.

use super::model::{Report, Verdict};
use super::table::verdict_line;

/// Escapes text for XML attributes and content.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The JUnit XML of `r`.
pub fn render(r: &Report) -> String {
    let failed_thresholds = r.thresholds.iter().filter(|t| !t.pass).count();
    let verdict_failed = usize::from(r.verdict == Verdict::Fail);
    let errors = usize::from(r.verdict == Verdict::Error);
    let failures = failed_thresholds + verdict_failed;
    let n = r.thresholds.len() + 1;
    let name = esc(&r.scenario.name);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"barrage\" tests=\"{n}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">\n\
         <testsuite name=\"{name}\" tests=\"{n}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\" timestamp=\"{}\">\n",
        r.duration_s,
        r.duration_s,
        esc(&r.started_at)
    );
    let line = esc(&verdict_line(r));
    out.push_str(&format!(
        "  <testcase classname=\"barrage.{name}\" name=\"verdict\" time=\"{:.3}\">\n",
        r.duration_s
    ));
    match r.verdict {
        Verdict::Pass => {}
        Verdict::Fail => out.push_str(&format!(
            "    <failure type=\"verdict\" message=\"{line}\">{line}</failure>\n"
        )),
        Verdict::Error => out.push_str(&format!(
            "    <error type=\"verdict\" message=\"{line}\">{line}</error>\n"
        )),
    }
    out.push_str(&format!(
        "    <system-out>verdict {}</system-out>\n  </testcase>\n",
        r.verdict.word().to_lowercase()
    ));
    for t in &r.thresholds {
        out.push_str(&format!(
            "  <testcase classname=\"barrage.{name}\" name=\"{}\" time=\"0\">\n",
            esc(&t.expr)
        ));
        if !t.pass {
            let msg = format!("{} failed: observed {}", t.expr, t.observed_text);
            out.push_str(&format!(
                "    <failure type=\"threshold\" message=\"{}\">{}</failure>\n",
                esc(&msg),
                esc(&msg)
            ));
        }
        out.push_str(&format!(
            "    <system-out>observed {}</system-out>\n  </testcase>\n",
            esc(&t.observed_text)
        ));
    }
    out.push_str("</testsuite>\n</testsuites>\n");
    out
}
