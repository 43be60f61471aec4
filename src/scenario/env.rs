//! `${env:NAME}` in any string of a scenario: substituted once, while the
//! file is deserialized, and remembered as secrets for everything that
//! shows the scenario.
//!
//! The substitution sits between the YAML deserializer and the model: a
//! [`Subst`] deserializer hands every string value (mapping keys excepted)
//! to the model's visitors with its `${env:NAME}` replaced. The YAML
//! deserializer still reads the file's own text, so every error — a
//! variable that is not set, a target that is not a URL once substituted —
//! keeps the line, column and field path the file gives it.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

use super::protocol::{percent_decode, query_pairs, redact_url};

/// What a secret is replaced with.
const REDACTED: &str = "<redacted>";

/// A value shorter than this is only redacted where it is a whole string
/// (or quoted in an error): searched for in longer text it would match
/// everywhere.
const MIN_NEEDLE: usize = 4;

/// Replaces every `${env:NAME}` in `s` with the variable's value looked up
/// by `lookup`; `$${` is a literal `${`. An unknown variable, an unclosed
/// `${` or a `${…}` that is not `env:` is an error naming it.
pub fn substitute_env(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    substitute_noting(s, lookup, &mut |_, _| {})
}

/// [`substitute_env`], calling `note(NAME, value)` for each variable used.
fn substitute_noting(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    note: &mut dyn FnMut(&str, &str),
) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(after) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(end) = after.find('}') else {
            return Err("unclosed \"${\" (write ${env:NAME}, or $${ for a literal ${)".to_string());
        };
        let inner = &after[..end];
        let Some(name) = inner.strip_prefix("env:") else {
            return Err(format!(
                "\"${{{inner}}}\" is not a substitution barrage knows (write ${{env:NAME}}, or $${{ for a literal ${{)"
            ));
        };
        match lookup(name) {
            Some(v) => {
                note(name, &v);
                out.push_str(&v);
            }
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The names of the variables `s` substitutes, in order (an escaped `$${`
/// is none; a malformed `${` ends the list).
pub fn env_names(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = substitute_noting(s, &|_| Some(String::new()), &mut |n, _| {
        names.push(n.to_string())
    });
    names
}

/// The values a scenario got from `${env:NAME}` that are secrets: what
/// output and errors must not show. Kept on the parsed [`Scenario`]
/// (`env_secrets`) for everything that shows it.
///
/// [`Scenario`]: super::Scenario
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvSecrets {
    /// Whole secret values: the variables' values, and whole substituted
    /// header values.
    pub values: Vec<String>,
    /// Query parameters `(name, value)` of a target that used `${env:…}`:
    /// its host and path are shown, its query values are not.
    pub pairs: Vec<(String, String)>,
}

impl EnvSecrets {
    /// The secrets of the scenario file parsed as `doc`, with variables
    /// looked up by `env`: every variable's value used in any string but
    /// the target; for headers also the substituted value; for a target
    /// that uses `${env:…}`, its query values (the host, port and path are
    /// shown: a target's host is not a secret). A variable used in the
    /// target and elsewhere is a secret.
    pub fn of(doc: &serde_yaml::Value, env: &dyn Fn(&str) -> Option<String>) -> EnvSecrets {
        let mut out = EnvSecrets::default();
        let Some(map) = doc.as_mapping() else {
            return out;
        };
        for (key, value) in map {
            let key = key.as_str().unwrap_or_default();
            walk_strings(value, &mut |raw| {
                if !raw.contains("${") {
                    return;
                }
                let mut vars = Vec::new();
                let Ok(full) = substitute_noting(raw, env, &mut |_, v| vars.push(v.to_string()))
                else {
                    return;
                };
                if key == "target" {
                    for (n, v) in query_pairs(&full) {
                        out.add(&v);
                        out.add(&percent_decode(&v));
                        if !out.pairs.contains(&(n.clone(), v.clone())) {
                            out.pairs.push((n, v));
                        }
                    }
                    return;
                }
                if key == "headers" {
                    out.add(&full);
                }
                for v in vars {
                    out.add(&v);
                }
            });
        }
        out.values
            .sort_by_key(|v| std::cmp::Reverse(v.chars().count()));
        out
    }

    fn add(&mut self, v: &str) {
        for v in [v, v.trim()] {
            if !v.is_empty() && !self.values.iter().any(|x| x == v) {
                self.values.push(v.to_string());
            }
        }
    }

    /// Whether there is nothing to hide.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.pairs.is_empty()
    }

    /// `s` with the secrets replaced by `<redacted>`: `s` whole when it is
    /// one, every value of at least 4 characters wherever it stands, and
    /// the target's query values.
    pub fn redact(&self, s: &str) -> String {
        if self.is_empty() {
            return s.to_string();
        }
        if self.values.iter().any(|v| v == s || v == s.trim()) {
            return REDACTED.to_string();
        }
        let mut s = s.to_string();
        for v in self
            .values
            .iter()
            .filter(|v| v.chars().count() >= MIN_NEEDLE)
        {
            s = s.replace(v.as_str(), REDACTED);
        }
        for (n, v) in &self.pairs {
            s = s.replace(&format!("{n}={v}"), &format!("{n}={REDACTED}"));
        }
        s
    }

    /// A target URL as output shows it: secret query values
    /// ([`redact_url`]) and the rest of these secrets redacted.
    pub fn target(&self, url: &str) -> String {
        self.redact(&redact_url(url))
    }
}

/// Calls `f` with every string value in `v` (mapping keys excepted: they
/// are not substituted).
pub fn walk_strings(v: &serde_yaml::Value, f: &mut dyn FnMut(&str)) {
    use serde_yaml::Value;
    match v {
        Value::String(s) => f(s),
        Value::Mapping(m) => m.values().for_each(|v| walk_strings(v, f)),
        Value::Sequence(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Tagged(t) => walk_strings(&t.value, f),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// What substitution used while deserializing: every value of every
/// variable, so an error about any field can withhold them.
pub(crate) struct Ctx<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    used: RefCell<Vec<(String, String)>>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Ctx {
            lookup,
            used: RefCell::new(Vec::new()),
        }
    }

    /// `s` substituted, and the `${env:NAME}` spellings it used.
    fn substitute(&self, s: &str) -> Result<(String, String), String> {
        let mut names: Vec<String> = Vec::new();
        let out = substitute_noting(s, self.lookup, &mut |n, v| {
            let mut used = self.used.borrow_mut();
            if !used.iter().any(|(m, w)| m == n && w == v) {
                used.push((n.to_string(), v.to_string()));
            }
            let spelling = format!("${{env:{n}}}");
            if !names.contains(&spelling) {
                names.push(spelling);
            }
        })?;
        Ok((out, names.join(", ")))
    }

    /// `message` (an error's) with every value substitution used withheld,
    /// target's included: an error shows the value it is about. A note
    /// names the variables whose values were withheld.
    pub(crate) fn redact_error(&self, message: &str) -> String {
        let used = self.used.borrow();
        let mut values: Vec<&(String, String)> =
            used.iter().filter(|(_, v)| !v.is_empty()).collect();
        values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        let mut out = message.to_string();
        let mut hidden: Vec<&str> = Vec::new();
        for (name, v) in values {
            let before = out.clone();
            if v.chars().count() >= MIN_NEEDLE {
                out = out.replace(v.as_str(), REDACTED);
            } else {
                for q in [format!("\"{v}\""), format!("{v:?}"), format!("'{v}'")] {
                    out = out.replace(&q, &format!("\"{REDACTED}\""));
                }
            }
            if out != before && !hidden.contains(&name.as_str()) {
                hidden.push(name);
            }
        }
        if !hidden.is_empty() {
            let names: Vec<String> = hidden.iter().map(|n| format!("${{env:{n}}}")).collect();
            out.push_str(&format!(" (the value of {} is withheld)", names.join(", ")));
        }
        out
    }
}

/// A deserializer that substitutes `${env:NAME}` in every string value
/// `de` gives (not in mapping keys, not in enum variant names).
pub(crate) struct Subst<'c, D> {
    pub(crate) de: D,
    pub(crate) ctx: &'c Ctx<'c>,
}

/// The visitor given to the inner deserializer: strings substituted, nested
/// values wrapped again.
struct V<'c, X> {
    v: X,
    ctx: &'c Ctx<'c>,
}

struct Seed<'c, S> {
    seed: S,
    ctx: &'c Ctx<'c>,
}

struct Seq<'c, A> {
    a: A,
    ctx: &'c Ctx<'c>,
}

struct Map<'c, A> {
    a: A,
    ctx: &'c Ctx<'c>,
}

struct Enum<'c, A> {
    a: A,
    ctx: &'c Ctx<'c>,
}

struct Variant<'c, A> {
    a: A,
    ctx: &'c Ctx<'c>,
}

macro_rules! forward_de {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<X: Visitor<'de>>(self, $($arg: $ty,)* visitor: X) -> Result<X::Value, D::Error> {
                self.de.$method($($arg,)* V { v: visitor, ctx: self.ctx })
            }
        )*
    };
}

impl<'de, 'c, D: Deserializer<'de>> Deserializer<'de> for Subst<'c, D> {
    type Error = D::Error;

    forward_de! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
        deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
        deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
        deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_seq(), deserialize_map(),
        deserialize_identifier(), deserialize_ignored_any(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.v.$method(v)
            }
        )*
    };
}

impl<'de, 'c, X: Visitor<'de>> Visitor<'de> for V<'c, X> {
    type Value = X::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.v.expecting(f)
    }

    forward_visit! {
        visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64),
        visit_u128(u128), visit_f32(f32), visit_f64(f64), visit_char(char),
        visit_bytes(&[u8]), visit_borrowed_bytes(&'de [u8]), visit_byte_buf(Vec<u8>),
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        if !s.contains("${") {
            return self.v.visit_str(s);
        }
        let (s, names) = self.ctx.substitute(s).map_err(E::custom)?;
        // An error about the value says where it came from.
        self.v
            .visit_string::<E>(s)
            .map_err(|e| E::custom(format!("{e} (in the value {names} gave)")))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        if !s.contains("${") {
            return self.v.visit_borrowed_str(s);
        }
        self.visit_str(s)
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        if !s.contains("${") {
            return self.v.visit_string(s);
        }
        self.visit_str(&s)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.v.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.v.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
        self.v.visit_some(Subst {
            de: d,
            ctx: self.ctx,
        })
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
        self.v.visit_newtype_struct(Subst {
            de: d,
            ctx: self.ctx,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        self.v.visit_seq(Seq { a, ctx: self.ctx })
    }

    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        self.v.visit_map(Map { a, ctx: self.ctx })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        self.v.visit_enum(Enum { a, ctx: self.ctx })
    }
}

impl<'de, 'c, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'c, S> {
    type Value = S::Value;
    fn deserialize<D2: Deserializer<'de>>(self, d: D2) -> Result<S::Value, D2::Error> {
        self.seed.deserialize(Subst {
            de: d,
            ctx: self.ctx,
        })
    }
}

impl<'de, 'c, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'c, A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.a.next_element_seed(Seed {
            seed,
            ctx: self.ctx,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.a.size_hint()
    }
}

impl<'de, 'c, A: MapAccess<'de>> MapAccess<'de> for Map<'c, A> {
    type Error = A::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // Keys name fields and headers: they are not substituted.
        self.a.next_key_seed(seed)
    }
    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.a.next_value_seed(Seed {
            seed,
            ctx: self.ctx,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.a.size_hint()
    }
}

impl<'de, 'c, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'c, A> {
    type Error = A::Error;
    type Variant = Variant<'c, A::Variant>;
    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, a) = self.a.variant_seed(seed)?;
        Ok((value, Variant { a, ctx: self.ctx }))
    }
}

impl<'de, 'c, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Variant<'c, A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.a.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.a.newtype_variant_seed(Seed {
            seed,
            ctx: self.ctx,
        })
    }
    fn tuple_variant<X: Visitor<'de>>(self, len: usize, visitor: X) -> Result<X::Value, A::Error> {
        self.a.tuple_variant(
            len,
            V {
                v: visitor,
                ctx: self.ctx,
            },
        )
    }
    fn struct_variant<X: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: X,
    ) -> Result<X::Value, A::Error> {
        self.a.struct_variant(
            fields,
            V {
                v: visitor,
                ctx: self.ctx,
            },
        )
    }
}
