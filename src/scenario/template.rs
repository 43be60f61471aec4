//! Message templates: compiled once into segments, rendered per message
//! without parsing or intermediate allocation.

use std::ops::Range;

use serde::de::{Deserialize, Deserializer};

/// Largest accepted `{{random N}}` length (1 MiB).
const MAX_RANDOM: usize = 1 << 20;

/// Names accepted inside `{{ }}`, for error messages.
const KNOWN_VARIABLES: &str =
    "conn, seq, now_us, now_ns, random N, shard, role, data.COLUMN (with data:), captured names";

/// One compiled piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// Literal bytes: a range into the template source.
    Literal(Range<usize>),
    /// `{{conn}}`: the connection index.
    Conn,
    /// `{{seq}}`: the per-connection message sequence number.
    Seq,
    /// `{{now_us}}`: unix time in microseconds.
    NowUs,
    /// `{{now_ns}}`: unix time in nanoseconds.
    NowNs,
    /// `{{random N}}`: N random ASCII alphanumeric characters.
    Random(usize),
    /// `{{shard}}`: the shard index (0 when not sharded).
    Shard,
    /// `{{role}}`: the connection's role name.
    Role,
    /// A per-connection value: a feeder column or a captured value, by slot.
    Slot(usize),
    /// A name not known when compiled; [`Template::bind`] resolves it.
    Named(String),
}

/// A compiled message template.
///
/// Variables: `{{conn}}` (connection index), `{{seq}}` (per-connection message
/// sequence), `{{now_us}}` / `{{now_ns}}` (unix time in µs / ns) and
/// `{{random N}}` (N random ASCII alphanumerics, 1 ≤ N ≤ 1 MiB). Whitespace
/// inside the braces is allowed. A single `{` or `}` is literal; an unmatched
/// `{{` is an error; a `}` or `}}` outside a tag is literal text.
#[derive(Debug, Clone)]
pub struct Template {
    /// The text the template was compiled from.
    source: String,
    /// Compiled pieces, in output order.
    segments: Vec<Segment>,
    /// Literal bytes plus random lengths.
    static_len: usize,
}

/// Per-message values substituted into a [`Template`].
#[derive(Debug, Clone, Copy)]
pub struct TemplateVars<'a> {
    /// Connection index, substituted for `{{conn}}`.
    pub conn: u64,
    /// Per-connection message sequence number, substituted for `{{seq}}`.
    pub seq: u64,
    /// Current unix epoch time in nanoseconds; `{{now_ns}}` writes it as is,
    /// `{{now_us}}` writes it divided by 1000.
    pub now_ns: u64,
    /// Shard index, substituted for `{{shard}}`.
    pub shard: u64,
    /// Role name, substituted for `{{role}}`.
    pub role: &'a str,
    /// Values of the bound names (feeder columns, captures), by slot.
    pub slots: &'a [Vec<u8>],
}

impl TemplateVars<'_> {
    /// Variables with only the connection, sequence and time set.
    pub fn basic(conn: u64, seq: u64, now_ns: u64) -> TemplateVars<'static> {
        TemplateVars {
            conn,
            seq,
            now_ns,
            shard: 0,
            role: "",
            slots: &[],
        }
    }
}

impl Template {
    /// Compiles template text. Errors name an unclosed `{{` with its
    /// byte offset, an unknown variable (listing the known ones), or a bad
    /// `random` argument.
    pub fn compile(src: &str) -> Result<Template, String> {
        let t = Template::compile_open(src)?;
        t.bind(&[]).map(|()| t.clone())?;
        Ok(t)
    }

    /// Names in the template that are not built in (feeder columns,
    /// captures), in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Named(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Checks that every name is one of `slots` and returns the resolved
    /// template; an unknown name is an error listing what is known.
    pub fn bind(&self, slots: &[String]) -> Result<(), String> {
        for name in self.names() {
            if !slots.iter().any(|s| s == name) {
                let mut known = KNOWN_VARIABLES.to_string();
                if !slots.is_empty() {
                    known = format!("{known}; here: {}", slots.join(", "));
                }
                return Err(format!("unknown variable \"{name}\"; known: {known}"));
            }
        }
        Ok(())
    }

    /// Resolves names to the slots they are in (after [`Template::bind`]
    /// accepted them).
    pub fn resolve(&mut self, slots: &[String]) {
        for seg in &mut self.segments {
            if let Segment::Named(n) = seg
                && let Some(i) = slots.iter().position(|s| s == n)
            {
                *seg = Segment::Slot(i);
            }
        }
    }

    /// Compiles template text, keeping names it does not know for
    /// [`Template::bind`] to check once captures and feeder columns are known.
    pub fn compile_open(src: &str) -> Result<Template, String> {
        let bytes = src.as_bytes();
        let mut segments = Vec::new();
        let mut lit_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"{{") {
                // In "{{{", the first brace is literal.
                if bytes.get(i + 2) == Some(&b'{') {
                    i += 1;
                    continue;
                }
                let inner_start = i + 2;
                let close = src[inner_start..].find("}}").map(|p| p + inner_start);
                let reopen = src[inner_start..].find("{{").map(|p| p + inner_start);
                let close = match (close, reopen) {
                    (Some(c), Some(o)) if o < c => {
                        return Err(unclosed(i));
                    }
                    (Some(c), _) => c,
                    (None, _) => return Err(unclosed(i)),
                };
                if lit_start < i {
                    segments.push(Segment::Literal(lit_start..i));
                }
                segments.push(parse_variable(&src[inner_start..close], i)?);
                i = close + 2;
                lit_start = i;
            } else {
                // A `}` outside a tag, even `}}` (as in nested JSON), is literal.
                i += 1;
            }
        }
        if lit_start < bytes.len() {
            segments.push(Segment::Literal(lit_start..bytes.len()));
        }
        let static_len = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(r) => r.len(),
                Segment::Random(n) => *n,
                _ => 0,
            })
            .sum();
        Ok(Template {
            source: src.to_string(),
            segments,
            static_len,
        })
    }

    /// Appends the rendered message to `out`. Allocates nothing beyond
    /// growing `out`.
    pub fn render(&self, vars: &TemplateVars, rng: &mut fastrand::Rng, out: &mut Vec<u8>) {
        out.reserve(self.static_len + 20 * self.segments.len());
        for seg in &self.segments {
            match seg {
                Segment::Literal(r) => out.extend_from_slice(&self.source.as_bytes()[r.clone()]),
                Segment::Conn => write_u64(out, vars.conn),
                Segment::Seq => write_u64(out, vars.seq),
                Segment::NowUs => write_u64(out, vars.now_ns / 1000),
                Segment::NowNs => write_u64(out, vars.now_ns),
                Segment::Random(n) => push_random_alnum(out, *n, rng),
                Segment::Shard => write_u64(out, vars.shard),
                Segment::Role => out.extend_from_slice(vars.role.as_bytes()),
                Segment::Slot(i) => {
                    if let Some(v) = vars.slots.get(*i) {
                        out.extend_from_slice(v);
                    }
                }
                Segment::Named(_) => {}
            }
        }
    }

    /// The text the template was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Literal bytes plus random lengths: the output size excluding numbers.
    pub fn max_static_len(&self) -> usize {
        self.static_len
    }
}

/// Error for a `{{` at `offset` with no `}}` before the next `{{` or the end.
fn unclosed(offset: usize) -> String {
    format!("unbalanced \"{{{{\" at byte offset {offset}: no matching \"}}}}\" after it")
}

/// Compiles the text between `{{` and `}}`; `offset` is where `{{` starts.
fn parse_variable(inner: &str, offset: usize) -> Result<Segment, String> {
    let mut words = inner.split_whitespace();
    let name = words.next().unwrap_or("");
    let arg = words.next();
    let seg = match name {
        "conn" => Segment::Conn,
        "seq" => Segment::Seq,
        "now_us" => Segment::NowUs,
        "now_ns" => Segment::NowNs,
        "shard" => Segment::Shard,
        "role" => Segment::Role,
        "random" => {
            let Some(arg) = arg else {
                return Err(format!(
                    "{{{{random}}}} at byte offset {offset} needs a length, e.g. {{{{random 16}}}}"
                ));
            };
            let n: usize = arg.parse().map_err(|_| {
                format!("bad argument \"{arg}\" to random at byte offset {offset}: expected a whole number from 1 to {MAX_RANDOM}")
            })?;
            if !(1..=MAX_RANDOM).contains(&n) {
                return Err(format!(
                    "bad argument {n} to random at byte offset {offset}: must be from 1 to {MAX_RANDOM}"
                ));
            }
            if words.next().is_some() {
                return Err(format!(
                    "random at byte offset {offset} takes exactly one argument"
                ));
            }
            return Ok(Segment::Random(n));
        }
        other => {
            let is_name = other.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && other
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
            if !is_name {
                return Err(format!(
                    "unknown variable \"{other}\" at byte offset {offset}; known: {KNOWN_VARIABLES}"
                ));
            }
            Segment::Named(other.to_string())
        }
    };
    if arg.is_some() {
        return Err(format!(
            "variable \"{name}\" at byte offset {offset} takes no argument"
        ));
    }
    Ok(seg)
}

/// Appends the decimal digits of `v` using a stack buffer.
fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[pos..]);
}

/// Appends `n` random ASCII alphanumerics: eight characters from each
/// 64-bit random number by multiply-shift (no division, no rejection loop),
/// since this runs for every message of a `{{random N}}` template.
fn push_random_alnum(out: &mut Vec<u8>, n: usize, rng: &mut fastrand::Rng) {
    const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    out.reserve(n);
    let mut left = n;
    while left > 0 {
        let take = left.min(8);
        let mut x = rng.u64(..);
        for _ in 0..take {
            let m = u128::from(x) * ALNUM.len() as u128;
            out.push(ALNUM[(m >> 64) as usize]);
            x = m as u64;
        }
        left -= take;
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Template, D::Error> {
        // Names are checked later, once captures and feeder columns are known.
        super::units::deserialize_parsed(d, "a template string", Template::compile_open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &Template, conn: u64, seq: u64, now_ns: u64) -> String {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut out = Vec::new();
        t.render(&TemplateVars::basic(conn, seq, now_ns), &mut rng, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_variables_exactly() {
        let t = Template::compile(r#"{"conn":{{conn}},"seq":{{ seq }},"ts":{{now_us}}}"#).unwrap();
        assert_eq!(
            render(&t, 3, 0, 1_700_000_000_123_456_789),
            r#"{"conn":3,"seq":0,"ts":1700000000123456}"#
        );
        let t = Template::compile("{{now_ns}}|{{conn}}|{{seq}}").unwrap();
        assert_eq!(render(&t, u64::MAX, 10, 42), "42|18446744073709551615|10");
    }

    #[test]
    fn names_bind_to_slots_and_render_their_values() {
        let mut t = Template::compile_open("{{role}}/{{shard}}: {{data.user}} {{token}}").unwrap();
        let slots = ["data.user".to_string(), "token".to_string()];
        assert!(
            t.bind(&slots[..1])
                .unwrap_err()
                .contains("unknown variable \"token\"")
        );
        t.bind(&slots).unwrap();
        t.resolve(&slots);
        let values = [b"ann".to_vec(), b"t0k".to_vec()];
        let vars = TemplateVars {
            shard: 3,
            role: "pub",
            slots: &values,
            ..TemplateVars::basic(0, 0, 0)
        };
        let mut out = Vec::new();
        t.render(&vars, &mut fastrand::Rng::with_seed(1), &mut out);
        assert_eq!(out, b"pub/3: ann t0k");
    }

    #[test]
    fn render_appends() {
        let t = Template::compile("x{{seq}}").unwrap();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut out = b"pre-".to_vec();
        let vars = TemplateVars::basic(0, 9, 0);
        t.render(&vars, &mut rng, &mut out);
        assert_eq!(out, b"pre-x9");
    }

    #[test]
    fn random_characters_cover_the_alphabet_evenly() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut out = Vec::new();
        push_random_alnum(&mut out, 62_000, &mut rng);
        assert_eq!(out.len(), 62_000);
        let mut counts = std::collections::HashMap::new();
        for b in out {
            *counts.entry(b).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 62, "every alphanumeric appears");
        let (lo, hi) = (
            counts.values().min().unwrap(),
            counts.values().max().unwrap(),
        );
        assert!(
            *hi < 1200 && *lo > 800,
            "uneven: {lo}..{hi} (expected ~1000 each)"
        );
    }

    #[test]
    fn random_has_length_and_charset() {
        let t = Template::compile("a{{random 64}}b").unwrap();
        assert_eq!(t.max_static_len(), 66);
        let s = render(&t, 0, 0, 0);
        assert_eq!(s.len(), 66);
        assert!(s.starts_with('a') && s.ends_with('b'));
        assert!(s[1..65].bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
        let mut rng = fastrand::Rng::with_seed(99);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let vars = TemplateVars::basic(0, 0, 0);
        t.render(&vars, &mut rng, &mut a);
        t.render(&vars, &mut rng, &mut b);
        assert_ne!(a, b, "random output should vary");
    }

    #[test]
    fn single_braces_are_literal() {
        let t = Template::compile("{a} {{{conn}}} }").unwrap();
        assert_eq!(render(&t, 5, 0, 0), "{a} {5} }");
        assert_eq!(t.source(), "{a} {{{conn}}} }");
        assert_eq!(t.max_static_len(), "{a} {} }".len());
    }

    #[test]
    fn unbalanced_braces_are_errors() {
        let e = Template::compile("abc {{conn").unwrap_err();
        assert!(e.contains("unbalanced \"{{\" at byte offset 4"), "{e}");
        let e = Template::compile("{{conn {{seq}}").unwrap_err();
        assert!(e.contains("unbalanced \"{{\" at byte offset 0"), "{e}");
    }

    #[test]
    fn closing_braces_outside_tags_are_literal() {
        let t = Template::compile(r#"{"a":{"b":{{conn}}}}"#).unwrap();
        assert_eq!(render(&t, 7, 0, 0), r#"{"a":{"b":7}}"#);
    }

    #[test]
    fn unknown_variable_is_named() {
        let e = Template::compile("x {{ connn }}").unwrap_err();
        assert!(e.contains("unknown variable \"connn\""), "{e}");
        assert!(e.contains("conn, seq, now_us, now_ns, random N"), "{e}");
    }

    #[test]
    fn bad_random_arguments() {
        assert!(
            Template::compile("{{random}}")
                .unwrap_err()
                .contains("needs a length")
        );
        assert!(
            Template::compile("{{random 0}}")
                .unwrap_err()
                .contains("bad argument 0")
        );
        assert!(
            Template::compile("{{random x}}")
                .unwrap_err()
                .contains("bad argument \"x\"")
        );
        assert!(Template::compile("{{random 1048577}}").is_err());
        assert!(Template::compile("{{random 1048576}}").is_ok());
        assert!(
            Template::compile("{{conn 3}}")
                .unwrap_err()
                .contains("takes no argument")
        );
    }
}
