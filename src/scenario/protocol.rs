//! WebSocket protocol settings of a scenario: request headers (with
//! `${env:NAME}` secrets), compression, TLS, pings, fragmentation, message
//! size limit and the closing frame.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::units::{SizeVisitor, de_positive_duration};

/// Header names whose values are secrets: never shown in reports or logs.
const SECRET_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Whether a header's value is a secret that must be redacted.
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

/// `text` (a scenario file) with the values of secret headers replaced by
/// `<redacted>`, for reports that carry the file: `Authorization: Bearer x`
/// and `{ Cookie: "a=b", ... }` alike.
pub fn redact_secrets(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some((at, name)) = ["authorization", "cookie"]
        .iter()
        .filter_map(|n| lower[from..].find(n).map(|i| (from + i, *n)))
        .min()
    {
        let mut i = at + name.len();
        let b = text.as_bytes();
        if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            i += 1;
        }
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b':' {
            from = at + name.len();
            continue;
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let end = match b.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => text[i + 1..]
                .find(q as char)
                .map_or(text.len(), |e| i + 1 + e + 1),
            _ => text[i..]
                .find([',', '}', '\n'])
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

/// Extra request headers of the upgrade, in file order. YAML: a mapping of
/// name to value; `${env:NAME}` in a value is replaced by that environment
/// variable when the scenario is read (a missing variable is an error).
/// Default: none. Values of Authorization, Cookie and Proxy-Authorization
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
                    let raw: String = map.next_value()?;
                    let value = substitute_env(&raw, &|n| std::env::var(n).ok())
                        .map_err(|e| de::Error::custom(format!("header {name}: {e}")))?;
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

/// Replaces every `${env:NAME}` in `s` with the variable's value looked up
/// by `lookup`. An unknown variable or an unclosed `${` is an error naming it.
pub fn substitute_env(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err("unclosed \"${\" (write ${env:NAME})".to_string());
        };
        let inner = &after[..end];
        let Some(name) = inner.strip_prefix("env:") else {
            return Err(format!(
                "\"${{{inner}}}\" is not a substitution barrage knows (write ${{env:NAME}})"
            ));
        };
        match lookup(name) {
            Some(v) => out.push_str(&v),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

/// Default of `max_message_size`: 64 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

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

    #[test]
    fn secret_values_are_redacted_in_scenario_text() {
        let text = "headers: { Authorization: \"Bearer abc\", X-Id: 7 }\nheaders:\n  cookie: sid=xyz\n  'Proxy-Authorization': 'Basic q'\nname: cookies\n";
        let r = redact_secrets(text);
        for secret in ["abc", "xyz", "Basic q"] {
            assert!(!r.contains(secret), "{secret} in {r}");
        }
        assert!(r.contains("X-Id: 7") && r.contains("name: cookies"), "{r}");
        assert_eq!(r.matches("<redacted>").count(), 3, "{r}");
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
