//! `junit.xml`: one test case per threshold, so Jenkins, GitLab and GitHub
//! show a load test's gates like unit tests.

use super::model::Report;

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
    let failures = r.thresholds.iter().filter(|t| !t.pass).count();
    let n = r.thresholds.len();
    let name = esc(&r.scenario.name);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuites name=\"barrage\" tests=\"{n}\" failures=\"{failures}\" time=\"{:.3}\">\n\
         <testsuite name=\"{name}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\" timestamp=\"{}\">\n",
        r.duration_s,
        r.duration_s,
        esc(&r.started_at)
    );
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
