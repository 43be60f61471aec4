//! WebSocket protocol settings of a scenario: request headers (with
//! `${env:NAME}` secrets), compression, TLS, pings, fragmentation, message
//! size limit and the closing frame.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::env::{EnvSecrets, env_names, substitute_env};
use super::model::Scenario;
use super::target::Target;
use super::units::{SizeVisitor, de_positive_duration};

/// Header names whose values are secrets: never shown in reports or logs.
const SECRET_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// A header or query parameter whose name contains one of these (any
/// case) holds a secret too: `X-Api-Key`, `access_token`, `X-Secret`.
const SECRET_NAME_PARTS: [&str; 4] = ["token", "secret", "key", "password"];

/// Authentication schemes: the first word of `Bearer S3CRET` is not the
/// secret, and redacting it everywhere would mangle the report's copy of
/// the scenario for nothing.
const AUTH_SCHEMES: [&str; 11] = [
    "bearer",
    "basic",
    "digest",
    "negotiate",
    "ntlm",
    "token",
    "oauth",
    "dpop",
    "hoba",
    "mutual",
    "aws4-hmac-sha256",
];

/// What a secret is replaced with.
const REDACTED: &str = "<redacted>";

/// A secret shorter than this is not searched for across the whole text
/// (it would match everywhere); it is redacted where it is the value of
/// its header or query parameter, and checked in the parsed result.
const MIN_NEEDLE: usize = 4;

/// Whether a header's (or a URL query parameter's) value is a secret that
/// must be redacted: Authorization, Cookie, Proxy-Authorization, or a name
/// containing `token`, `secret`, `key` or `password`, in any case.
pub fn is_secret_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&lower.as_str()) || SECRET_NAME_PARTS.iter().any(|p| lower.contains(p))
}

/// `url` with the values of secret query parameters ([`is_secret_header`]
/// names, e.g. `?token=…`) replaced by `<redacted>`, for reports and
/// output that show the target.
pub fn redact_url(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((n, v)) if !v.is_empty() && is_secret_header(&percent_decode(n)) => {
                format!("{n}={REDACTED}")
            }
            _ => p.to_string(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// Every `(name, value)` query pair of `url` with a value, as written.
pub(super) fn query_pairs(url: &str) -> Vec<(String, String)> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The secret `(name, value)` query pairs of `url`, as written.
fn secret_query_pairs(url: &str) -> Vec<(String, String)> {
    let mut pairs = query_pairs(url);
    pairs.retain(|(n, _)| is_secret_header(&percent_decode(n)));
    pairs
}

/// `%XX` escapes decoded (as lossy UTF-8); `+` and a malformed escape kept
/// as written. Query names here, room names in the built-in server.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The secrets of a parsed scenario, found by what they are rather than by
/// how the file spells them.
#[derive(Debug, Default)]
struct Secrets {
    /// Whole secret values: final header values, the `${env:…}` spellings
    /// and the variables' values of env-derived headers, secret query values.
    values: Vec<String>,
    /// The words (at least [`MIN_NEEDLE`] characters) of those values but a
    /// leading authentication scheme: what is left of a value that YAML
    /// folds over lines (`>-`, a plain scalar on the next lines).
    words: Vec<String>,
    /// Names of the headers whose values are secret.
    headers: Vec<String>,
    /// Secret query parameters `(name, value)` of the target URLs.
    pairs: Vec<(String, String)>,
}

impl Secrets {
    /// The secrets of `s`, whose file's text parsed as YAML is `doc`: the
    /// file tells which header values came from `${env:NAME}`.
    /// `env` looks variables up, as the scenario did when it was parsed.
    fn collect(
        s: &Scenario,
        doc: Option<&serde_yaml::Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Secrets {
        let mut out = Secrets::default();
        for (name, value) in &s.headers.0 {
            if is_secret_header(name) {
                out.add_header(name);
                out.add_value(value);
            }
        }
        let written = doc
            .and_then(|d| d.get("headers"))
            .and_then(|h| h.as_mapping());
        for (name, raw) in written.into_iter().flatten() {
            let (Some(name), Some(raw)) = (scalar_text(name), scalar_text(raw)) else {
                continue;
            };
            if raw.contains("${") {
                out.add_header(&name);
                out.add_value(&raw);
                if let Ok(v) = substitute_env(&raw, env) {
                    out.add_value(&v);
                }
                for var in env_names(&raw) {
                    if let Some(v) = env(&var) {
                        out.add_value(&v);
                    }
                }
                // The parsed header of that name is the substituted value.
                if let Some((_, v)) = s
                    .headers
                    .0
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                {
                    out.add_value(v);
                }
            } else if is_secret_header(&name) {
                out.add_header(&name);
                out.add_value(&raw);
            }
        }
        // `${env:NAME}` anywhere else: the variables' values; a target's
        // query values.
        if let Some(doc) = doc {
            let env = EnvSecrets::of(doc, env);
            for v in &env.values {
                out.add_value(v);
            }
            for pair in env.pairs {
                if !out.pairs.contains(&pair) {
                    out.pairs.push(pair);
                }
            }
        }
        let mut targets = Vec::new();
        if let Target::Url(u) = &s.target {
            targets.push(u.original.clone());
        }
        if let Some(t) = doc.and_then(|d| d.get("target")).and_then(scalar_text) {
            targets.push(t);
        }
        for t in targets {
            for (n, v) in secret_query_pairs(&t) {
                out.add_value(&v);
                out.add_value(&percent_decode(&v));
                if !out.pairs.contains(&(n.clone(), v.clone())) {
                    out.pairs.push((n, v));
                }
            }
        }
        out
    }

    fn add_header(&mut self, name: &str) {
        if !self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            self.headers.push(name.to_string());
        }
    }

    fn add_value(&mut self, value: &str) {
        for v in [value, value.trim()] {
            if !v.is_empty() && !self.values.iter().any(|x| x == v) {
                self.values.push(v.to_string());
            }
        }
        let words: Vec<&str> = value.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let scheme =
                i == 0 && words.len() > 1 && AUTH_SCHEMES.iter().any(|s| w.eq_ignore_ascii_case(s));
            if !scheme && w.chars().count() >= MIN_NEEDLE && !self.words.iter().any(|x| x == w) {
                self.words.push(w.to_string());
            }
        }
    }

    /// What is searched for in the text: values and words of at least
    /// [`MIN_NEEDLE`] characters, also as YAML quoted strings spell them
    /// (`'` doubled, `\` and `"` escaped), longest first.
    fn needles(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let long = self
            .values
            .iter()
            .filter(|v| v.chars().count() >= MIN_NEEDLE)
            .chain(&self.words);
        for n in long {
            for spelling in [
                n.clone(),
                n.replace('\'', "''"),
                n.replace('\\', "\\\\").replace('"', "\\\""),
            ] {
                if !out.contains(&spelling) {
                    out.push(spelling);
                }
            }
        }
        out.sort_by_key(|n| std::cmp::Reverse(n.len()));
        out
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.pairs.is_empty() && self.headers.is_empty()
    }

    /// `s` with every needle and secret query pair replaced.
    fn replace_in(&self, needles: &[String], s: &str) -> String {
        let mut s = s.to_string();
        for n in needles {
            s = s.replace(n.as_str(), REDACTED);
        }
        for (n, v) in &self.pairs {
            s = s.replace(&format!("{n}={v}"), &format!("{n}={REDACTED}"));
        }
        s
    }

    /// Whether `s` still holds a secret: a needle or a secret query pair.
    /// (A value shorter than a needle is only looked for where it is a
    /// secret header's or query parameter's value: `a` would be found in
    /// every phase named `a`.)
    fn found_in(&self, needles: &[String], s: &str) -> bool {
        let masked = s.replace(REDACTED, "\u{0}");
        needles.iter().any(|n| masked.contains(n.as_str()))
            || self
                .pairs
                .iter()
                .any(|(n, v)| masked.contains(&format!("{n}={v}")))
    }

    /// Whether the YAML `text` leaks a secret: in its text, in any string
    /// it parses to (escapes, folding and quoting undone), in a secret
    /// header's value (anything left but `<redacted>` and a scheme), or in
    /// a secret query value of its target. Text that does not parse counts
    /// as leaking: it cannot be checked.
    fn leak_in(&self, needles: &[String], text: &str) -> bool {
        if self.found_in(needles, text) {
            return true;
        }
        let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
            return true;
        };
        let mut leak = false;
        walk_scalars(&doc, &mut |s| leak |= self.found_in(needles, s));
        if leak {
            return true;
        }
        let headers = doc.get("headers").and_then(|h| h.as_mapping());
        for (name, value) in headers.into_iter().flatten() {
            let (Some(name), Some(value)) = (scalar_text(name), scalar_text(value)) else {
                continue;
            };
            if self.headers.iter().any(|h| h.eq_ignore_ascii_case(&name)) {
                let rest = value.replace(REDACTED, " ");
                if !rest
                    .split_whitespace()
                    .all(|w| AUTH_SCHEMES.iter().any(|s| w.eq_ignore_ascii_case(s)))
                {
                    return true;
                }
            }
        }
        if let Some(t) = doc.get("target").and_then(scalar_text) {
            return secret_query_pairs(&t).iter().any(|(_, v)| v != REDACTED);
        }
        false
    }

    /// The parsed file with every secret replaced: secret headers' values
    /// whole, the target's secret query values, and needles in any string.
    fn redact_tree(&self, needles: &[String], v: &mut serde_yaml::Value, top: bool) {
        use serde_yaml::Value;
        match v {
            Value::Mapping(m) => {
                for (k, val) in m.iter_mut() {
                    let key = scalar_text(k).unwrap_or_default();
                    if top && key == "headers" && val.is_mapping() {
                        for (hk, hv) in val.as_mapping_mut().into_iter().flatten() {
                            let hk = scalar_text(hk).unwrap_or_default();
                            if self.headers.iter().any(|h| h.eq_ignore_ascii_case(&hk)) {
                                *hv = Value::String(REDACTED.to_string());
                            } else {
                                self.redact_tree(needles, hv, false);
                            }
                        }
                    } else if top
                        && key == "target"
                        && let Value::String(t) = val
                    {
                        *t = self.replace_in(needles, &redact_url(t));
                    } else {
                        self.redact_tree(needles, val, false);
                    }
                }
            }
            Value::Sequence(items) => {
                for item in items {
                    self.redact_tree(needles, item, false);
                }
            }
            Value::Tagged(t) => self.redact_tree(needles, &mut t.value, false),
            Value::String(s) => *s = self.replace_in(needles, s),
            Value::Number(_) | Value::Bool(_) => {
                if let Some(s) = scalar_text(v)
                    && self.found_in(needles, &s)
                {
                    *v = Value::String(REDACTED.to_string());
                }
            }
            Value::Null => {}
        }
    }
}

/// A scalar's text: strings, numbers and booleans.
fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    use serde_yaml::Value;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar_text(&t.value),
        _ => None,
    }
}

/// Calls `f` with every scalar's text in `v`, mapping keys included.
fn walk_scalars(v: &serde_yaml::Value, f: &mut dyn FnMut(&str)) {
    use serde_yaml::Value;
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                walk_scalars(k, f);
                walk_scalars(val, f);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| walk_scalars(i, f)),
        Value::Tagged(t) => walk_scalars(&t.value, f),
        other => {
            if let Some(s) = scalar_text(other) {
                f(&s);
            }
        }
    }
}

/// `text` with, after the key of each secret header on its line, the
/// inline value (quoted, or plain up to `,`, `}` or the line's end)
/// replaced by `"<redacted>"`: what catches values too short to search for.
/// Block scalars (`|`, `>`) and values on the next lines are left to the
/// needles and the check of the parsed result.
fn redact_header_lines(text: &str, names: &[String]) -> String {
    let lower = text.to_ascii_lowercase();
    let names: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some((at, len)) = names
        .iter()
        .filter_map(|n| lower[from..].find(n.as_str()).map(|i| (from + i, n.len())))
        .min()
    {
        let before_ok =
            at == 0 || matches!(b[at - 1], b' ' | b'\t' | b'\n' | b'{' | b',' | b'"' | b'\'');
        let mut i = at + len;
        if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            i += 1;
        }
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if !before_ok || i >= b.len() || b[i] != b':' {
            from = at + len;
            continue;
        }
        i += 1;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i >= b.len()
            || matches!(
                b[i],
                b'\n' | b'\r' | b'|' | b'>' | b'#' | b'&' | b'*' | b'!'
            )
        {
            from = i.min(b.len());
            continue;
        }
        let end = match b[i] {
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                (j + 1).min(b.len())
            }
            b'\'' => {
                let mut j = i + 1;
                while j < b.len() && !(b[j] == b'\'' && b.get(j + 1) != Some(&b'\'')) {
                    j += if b[j] == b'\'' { 2 } else { 1 };
                }
                (j + 1).min(b.len())
            }
            _ => text[i..]
                .find([',', '}', '\n', '\r'])
                .map_or(text.len(), |e| i + e),
        };
        out.push_str(&text[copied..i]);
        out.push_str("\"<redacted>\"");
        copied = end;
        from = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// `text`, the file `scenario` was parsed from, with its secrets replaced
/// by `<redacted>`, for reports that carry the file. What is secret comes
/// from the parsed scenario, not from how the file spells it: the values of
/// headers named like secrets ([`is_secret_header`]), every header value
/// that came from `${env:NAME}` (its spelling, result and variables'
/// values), and the target's secret query values. Every occurrence of those
/// values, and of their words (so a value folded over lines by `>-` or a
/// plain scalar is caught too), is replaced wherever it stands in the text.
///
/// The result is then parsed and checked: when a secret survives in any
/// form (a YAML escape, a short word on its own line), the text is not
/// used; the file is given as parsed, secrets replaced, instead.
pub fn redact_secrets(text: &str, scenario: &Scenario) -> String {
    redact_with_env(text, scenario, &|n| std::env::var(n).ok())
}

/// [`redact_secrets`] with the environment looked up by `env`.
pub(super) fn redact_with_env(
    text: &str,
    scenario: &Scenario,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let doc = serde_yaml::from_str::<serde_yaml::Value>(text).ok();
    let secrets = Secrets::collect(scenario, doc.as_ref(), env);
    if secrets.is_empty() {
        return text.to_string();
    }
    let needles = secrets.needles();
    let redacted = redact_header_lines(&secrets.replace_in(&needles, text), &secrets.headers);
    if !secrets.leak_in(&needles, &redacted) {
        return redacted;
    }
    if let Some(mut doc) = doc {
        secrets.redact_tree(&needles, &mut doc, true);
        if let Ok(yaml) = serde_yaml::to_string(&doc) {
            let rebuilt = format!(
                "# The scenario as parsed, its secrets redacted (barrage could not redact the file's own text safely).\n{yaml}"
            );
            if !secrets.leak_in(&needles, &rebuilt) {
                return rebuilt;
            }
        }
    }
    "# The scenario file is withheld: it holds secrets barrage could not redact safely.\n"
        .to_string()
}

/// Extra request headers of the upgrade, in file order. YAML: a mapping of
/// name to value; `${env:NAME}` in a value is replaced by that environment
/// variable when the scenario is read (a missing variable is an error).
/// Default: none. Values of secret-looking headers ([`is_secret_header`])
/// are redacted wherever headers are shown.
#[derive(Clone, Default, PartialEq)]
pub struct Headers(pub Vec<(String, String)>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.0 {
            if is_secret_header(k) {
                m.entry(k, &"<redacted>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

/// Headers barrage writes itself; setting them in `headers:` is an error.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "origin",
];

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of header name to value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    check_header_name(&name).map_err(de::Error::custom)?;
                    if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
                        return Err(de::Error::custom(format!("header {name} given twice")));
                    }
                    // `${env:NAME}` is substituted already (scenario::env).
                    let value: String = map.next_value()?;
                    if value.bytes().any(is_control) {
                        return Err(de::Error::custom(format!(
                            "header {name}: the value must not contain line breaks, NUL or other control characters"
                        )));
                    }
                    out.push((name, value));
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A control character that must never reach the upgrade request: all
/// below 0x20 but the tab, and DEL. A CR or LF would end the header line
/// and let the rest of the value write headers of its own.
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Whether `s` is an HTTP token (RFC 9110): what a subprotocol must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A string checked as it is read, so an error carries the line and
/// column of the value.
struct Checked(String);

/// Reads a string and checks it with `check`.
struct CheckedVisitor(fn(&str) -> Result<(), String>);

impl Visitor<'_> for CheckedVisitor {
    type Value = Checked;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Checked, E> {
        (self.0)(v).map_err(E::custom)?;
        Ok(Checked(v.to_string()))
    }
}

fn check_origin(v: &str) -> Result<(), String> {
    if v.bytes().any(is_control) {
        return Err(
            "origin must not contain line breaks, NUL or other control characters".to_string(),
        );
    }
    Ok(())
}

fn check_subprotocol(v: &str) -> Result<(), String> {
    if !is_token(v) {
        return Err(format!(
            "subprotocol {v:?} is not a token (letters, digits and !#$%&'*+-.^_`|~; no spaces, commas or control characters)"
        ));
    }
    Ok(())
}

struct CheckedSeed(fn(&str) -> Result<(), String>);

impl<'de> de::DeserializeSeed<'de> for CheckedSeed {
    type Value = Checked;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Checked, D::Error> {
        d.deserialize_str(CheckedVisitor(self.0))
    }
}

/// `origin:`: a value without control characters (default none).
pub fn de_origin<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use de::DeserializeSeed;
    CheckedSeed(check_origin).deserialize(d).map(|c| Some(c.0))
}

/// `subprotocols:`: each an HTTP token, as RFC 6455 requires.
pub fn de_subprotocols<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct Seq;
    impl<'de> Visitor<'de> for Seq {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of subprotocol names")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(c) = seq.next_element_seed(CheckedSeed(check_subprotocol))? {
                out.push(c.0);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Seq)
}

/// A header name must be an HTTP token and not one barrage sets itself.
fn check_header_name(name: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("\"{name}\" is not a valid header name"));
    }
    if RESERVED_HEADERS
        .iter()
        .any(|r| name.eq_ignore_ascii_case(r))
    {
        return Err(format!(
            "header {name} is set by barrage (use subprotocols:, compression: or origin: instead)"
        ));
    }
    Ok(())
}

/// `compression:`: `none` (default) or `deflate` for permessage-deflate
/// (RFC 7692), optionally as a mapping with its parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Compression {
    /// No compression is offered. The default.
    #[default]
    None,
    /// permessage-deflate is offered with these parameters.
    Deflate(DeflateOptions),
}

/// Parameters offered with permessage-deflate. YAML: `compression: { method:
/// deflate, client_max_window_bits: 12, server_no_context_takeover: true }`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeflateOptions {
    /// Must be `deflate` (the only method); optional.
    #[serde(default, deserialize_with = "de_method")]
    pub method: Method,
    /// Window bits (9–15) our compressor uses; offered so the server knows.
    /// Default: not stated (15, and the server may lower it).
    #[serde(default, deserialize_with = "de_window_bits")]
    pub client_max_window_bits: Option<u8>,
    /// Window bits (9–15) asked of the server's compressor. Default: not stated (15).
    #[serde(default, deserialize_with = "de_window_bits")]
    pub server_max_window_bits: Option<u8>,
    /// We reset our compression context after every message. Default false.
    #[serde(default)]
    pub client_no_context_takeover: bool,
    /// Ask the server to reset its context after every message. Default false.
    #[serde(default)]
    pub server_no_context_takeover: bool,
}

/// The compression method: permessage-deflate is the only one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Method {
    /// permessage-deflate (RFC 7692).
    #[default]
    Deflate,
}

fn de_method<'de, D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
    let s = String::deserialize(d)?;
    if s == "deflate" {
        Ok(Method::Deflate)
    } else {
        Err(de::Error::custom(format!(
            "unknown compression method \"{s}\"; the only one is deflate (permessage-deflate)"
        )))
    }
}

fn de_window_bits<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let n = u64::deserialize(d)?;
    if !(9..=15).contains(&n) {
        return Err(de::Error::custom(format!(
            "window bits must be from 9 to 15, got {n} (zlib cannot make raw deflate with 8)"
        )));
    }
    Ok(Some(n as u8))
}

impl<'de> Deserialize<'de> for Compression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Compression, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Compression;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("none, deflate, or a mapping { method: deflate, ... }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Compression, E> {
                match v.trim() {
                    "none" => Ok(Compression::None),
                    "deflate" | "permessage-deflate" => {
                        Ok(Compression::Deflate(DeflateOptions::default()))
                    }
                    other => Err(E::custom(format!(
                        "unknown compression \"{other}\"; use none or deflate"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Compression, A::Error> {
                DeflateOptions::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Compression::Deflate)
            }
        }
        d.deserialize_any(V)
    }
}

/// `tls:` settings for `wss://` targets. Default: verify the server against
/// the webpki root certificates, no client certificate.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// A PEM file of CA certificates trusted besides the webpki roots
    /// (relative to the scenario file). Default: none.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs `key`. Default: none.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of `cert`. Default: none.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Name to verify the certificate against and send as SNI. Default: the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any server certificate (testing only; a warning is shown). Default false.
    #[serde(default)]
    pub insecure: bool,
}

/// `ping:` keep-alive pings whose pong round trip is the metric `ping`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingSettings {
    /// Time between pings on each connection, e.g. `5s`. Required, > 0.
    #[serde(deserialize_with = "de_positive_duration")]
    pub every: Duration,
}

/// `close:` the close frame each connection sends when the run ends.
/// Default: code 1000, no reason.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseSettings {
    /// Close code: 1000–1003, 1007–1011 or 3000–4999. Default 1000.
    #[serde(default = "default_close_code", deserialize_with = "de_close_code")]
    pub code: u16,
    /// Reason text, at most 123 bytes of UTF-8. Default empty.
    #[serde(default, deserialize_with = "de_close_reason")]
    pub reason: String,
}

impl Default for CloseSettings {
    fn default() -> Self {
        CloseSettings {
            code: 1000,
            reason: String::new(),
        }
    }
}

fn default_close_code() -> u16 {
    1000
}

fn de_close_code<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = u64::deserialize(d)?;
    if matches!(n, 1000..=1003 | 1007..=1011 | 3000..=4999) {
        Ok(n as u16)
    } else {
        Err(de::Error::custom(format!(
            "close code {n} may not be sent; use 1000-1003, 1007-1011 or 3000-4999"
        )))
    }
}

fn de_close_reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.len() > 123 {
        return Err(de::Error::custom(format!(
            "the reason is {} bytes; a close frame allows at most 123",
            s.len()
        )));
    }
    Ok(s)
}

/// `builtin:` how the built-in server behaves when `target: builtin`.
/// Default: echo.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinSettings {
    /// `echo` (default), `broadcast` (rooms: `/room/NAME` or a
    /// `{"op":"join","room":NAME}` message; every message goes to the other
    /// members) or `push` (a timestamped message to every connection at
    /// `push_rate`).
    #[serde(default)]
    pub mode: BuiltinMode,
    /// Push mode: messages per second to each connection. Default 10/s.
    #[serde(default = "default_push_rate")]
    pub push_rate: super::units::Rate,
    /// Push mode: size of each pushed message. Default 128 bytes.
    #[serde(default = "default_push_size", deserialize_with = "de_push_size")]
    pub push_size: usize,
}

impl Default for BuiltinSettings {
    fn default() -> Self {
        BuiltinSettings {
            mode: BuiltinMode::Echo,
            push_rate: default_push_rate(),
            push_size: default_push_size(),
        }
    }
}

/// What the built-in server does with a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinMode {
    /// Sends every message back. The default.
    #[default]
    Echo,
    /// Fans every message out to the other members of its room.
    Broadcast,
    /// Pushes timestamped messages; echoes what clients send.
    Push,
}

fn default_push_rate() -> super::units::Rate {
    super::units::Rate { per_second: 10.0 }
}

fn default_push_size() -> usize {
    128
}

fn de_push_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(SizeVisitor {
        min: 1,
        max: 16 << 20,
    })
}

/// `reconnect:` what a connection does when the server drops it during the
/// phases: open again after a backoff that doubles from the low end of
/// `backoff` to its high end, up to `max` times per connection. Default: a
/// dropped connection stays closed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectPolicy {
    /// Reopen attempts per connection over the run. Default 10.
    #[serde(default = "default_reconnect_max")]
    pub max: u32,
    /// First and longest wait before reopening, e.g. `100ms..5s` (the default).
    #[serde(default = "default_backoff", deserialize_with = "de_backoff")]
    pub backoff: (Duration, Duration),
    /// Wait a random time between half the backoff and all of it, so
    /// connections dropped together do not come back together. Default true.
    #[serde(default = "default_true")]
    pub jitter: bool,
}

fn default_reconnect_max() -> u32 {
    10
}

fn default_backoff() -> (Duration, Duration) {
    (Duration::from_millis(100), Duration::from_secs(5))
}

fn default_true() -> bool {
    true
}

fn de_backoff<'de, D: Deserializer<'de>>(d: D) -> Result<(Duration, Duration), D::Error> {
    let s = String::deserialize(d)?;
    let (a, b) = s.split_once("..").ok_or_else(|| {
        de::Error::custom(format!("\"{s}\" is not a range; write e.g. 100ms..5s"))
    })?;
    let a = super::units::parse_duration(a.trim()).map_err(de::Error::custom)?;
    let b = super::units::parse_duration(b.trim()).map_err(de::Error::custom)?;
    if a.is_zero() || b < a {
        return Err(de::Error::custom(format!(
            "\"{s}\": the first wait must be > 0 and not above the longest"
        )));
    }
    Ok((a, b))
}

impl ReconnectPolicy {
    /// The wait before reopen attempt `n` (1-based).
    pub fn backoff(&self, n: u32, rng: &mut fastrand::Rng) -> Duration {
        let (low, high) = self.backoff;
        let base = low
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(high);
        if self.jitter {
            base / 2 + base.mul_f64(rng.f64() / 2.0)
        } else {
            base
        }
    }
}

/// Default of `max_message_size`: 1 MiB (as Python `websockets`). It is per
/// connection: 20,000 connections may hold 20 GiB of messages being
/// received, which the pre-flight checks against the machine's memory.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

/// serde helper for `max_message_size`: 125 bytes to 1 GiB.
pub(crate) fn de_max_message<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(SizeVisitor {
        min: 125,
        max: 1 << 30,
    })
}

/// serde helper for `fragment`: 1 byte to 64 MiB per frame.
pub(crate) fn de_fragment<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    d.deserialize_any(SizeVisitor {
        min: 1,
        max: 64 << 20,
    })
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let p = ReconnectPolicy {
            max: 10,
            backoff: (Duration::from_millis(100), Duration::from_secs(1)),
            jitter: false,
        };
        let mut rng = fastrand::Rng::with_seed(1);
        let waits: Vec<u128> = (1..=6)
            .map(|n| p.backoff(n, &mut rng).as_millis())
            .collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
        let j = ReconnectPolicy { jitter: true, ..p };
        for n in 1..=6 {
            let w = j.backoff(n, &mut rng).as_millis();
            assert!(
                w >= waits[n as usize - 1] / 2 && w <= waits[n as usize - 1],
                "{n}: {w}"
            );
        }
    }

    #[test]
    fn env_substitution() {
        let env = |n: &str| (n == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            substitute_env("Bearer ${env:TOKEN}!", &env).unwrap(),
            "Bearer s3cret!"
        );
        assert_eq!(substitute_env("plain", &env).unwrap(), "plain");
        let e = substitute_env("${env:MISSING}", &env).unwrap_err();
        assert!(e.contains("MISSING"), "{e}");
        assert!(substitute_env("${env:TOKEN", &env).is_err());
        assert!(
            substitute_env("${TOKEN}", &env)
                .unwrap_err()
                .contains("env:NAME")
        );
    }

    const BASE: &str = "name: t\ntarget: builtin\nconnections: { count: 1, rate: 10/s }\nphases: [ { name: a, duration: 1s, rate: 1/s } ]\n";

    fn redacted(extra: &str) -> String {
        let text = format!("{BASE}{extra}");
        let s = crate::scenario::parse("t.yaml", &text).unwrap();
        redact_secrets(&text, &s)
    }

    #[test]
    fn secret_values_are_redacted_in_scenario_text() {
        let r = redacted("headers: { Authorization: \"Bearer abc\", X-Id: 7 }\n");
        assert!(!r.contains("abc") && r.contains("X-Id: 7"), "{r}");
        let r = redacted("headers:\n  cookie: sid=xyz\n  'Proxy-Authorization': 'Basic q'\n");
        for secret in ["xyz", "Basic q"] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.starts_with(BASE), "{r}");
        assert_eq!(r.matches("<redacted>").count(), 2, "{r}");
    }

    #[test]
    fn every_yaml_spelling_of_a_secret_is_redacted() {
        for spelling in [
            "Authorization: Bearer S3CRET1",
            "Authorization: 'Bearer S3CRET1'",
            "Authorization: \"Bearer S3CRET1\"",
            "Authorization: >-\n    Bearer S3CRET1",
            "Authorization: |-\n    Bearer S3CRET1",
            "Authorization:\n    Bearer S3CRET1",
            "Authorization: >-\n    Bearer\n    S3CRET1",
            "Authorization:\n    Bearer\n    S3CRET1",
            "Authorization: \"Bearer \\x53\\x33CRET1\"",
            "Authorization: \"Bearer S3C\\\n    RET1\"",
            "Authorization: 'Bearer it''s S3CRET1'",
            "Authorization: >-\n    Bearer\n    ab\n    cd",
            "Authorization: x",
            "X-Api-Key: K3Y",
        ] {
            let r = redacted(&format!("headers:\n  {spelling}\n"));
            for secret in [
                "S3CRET1", "S3C", "it's", "it''s", "ab\n", "cd\n", ": x\n", "K3Y",
            ] {
                assert!(!r.contains(secret), "{secret} of {spelling:?} in {r}");
            }
            assert!(r.contains("<redacted>"), "{spelling:?}: {r}");
            let doc: serde_yaml::Value = serde_yaml::from_str(&r).unwrap();
            assert_eq!(doc["name"].as_str(), Some("t"), "{r}");
        }
        // The file's own text is kept when that is safe, comments and all.
        let r = redacted("# note\nheaders:\n  Authorization: >-\n    Bearer S3CRET1\n");
        assert!(r.starts_with(BASE) && r.contains("# note"), "{r}");
    }

    #[test]
    fn env_derived_values_and_secret_query_values_are_redacted() {
        // The scenario as parsed had the header substituted; the
        // environment is not touched (other tests run meanwhile).
        let target = BASE.replace("builtin", "ws://h/p?access_token=qS3CRET&x=1&API%5Fkey=z");
        let s = crate::scenario::parse("t.yaml", &target).unwrap();
        let text =
            format!("{target}headers:\n  X-Trace: \"id ${{env:UNIT_REDACT}}\"\n# was: envS3CRET\n");
        let env = |n: &str| (n == "UNIT_REDACT").then(|| "envS3CRET".to_string());
        let r = redact_with_env(&text, &s, &env);
        for secret in ["envS3CRET", "qS3CRET", "=z", "UNIT_REDACT"] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.contains("x=1") && r.contains("# was: <redacted>"), "{r}");
        assert_eq!(
            redact_url("ws://h/p?access_token=q&x=1&API%5Fkey=z&key="),
            "ws://h/p?access_token=<redacted>&x=1&API%5Fkey=<redacted>&key="
        );
        assert_eq!(redact_url("ws://h/p"), "ws://h/p");
        assert!(is_secret_header("X-Api-Key") && is_secret_header("x-password"));
        assert!(!is_secret_header("X-Trace"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let h = Headers(vec![
            ("Authorization".into(), "Bearer s3cret".into()),
            ("cookie".into(), "sid=abc".into()),
            ("X-Trace".into(), "visible".into()),
        ]);
        let shown = format!("{h:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("abc"),
            "{shown}"
        );
        assert!(shown.contains("visible"));
    }
}
