//! The `message:` section: what each message carries.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::template::Template;
use super::units::SizeVisitor;

/// The template used when a scenario has no `message:` section.
pub const DEFAULT_TEMPLATE: &str = r#"{"conn":{{conn}},"seq":{{seq}},"ts":{{now_us}}}"#;

/// Largest accepted binary message size (64 MiB).
const MAX_BINARY_SIZE: usize = 64 << 20;

/// The payload sent in each message. Default (no `message:` section): a text
/// message from [`DEFAULT_TEMPLATE`].
#[derive(Debug, Clone)]
pub enum Message {
    /// A text frame rendered from a template. YAML `message: { text: '...' }`.
    Text(Template),
    /// A binary frame of `size` bytes. YAML `message: { binary: { size: 1KiB } }`;
    /// size from 1 byte to 64 MiB.
    Binary {
        /// Frame payload size in bytes.
        size: usize,
    },
}

impl Default for Message {
    fn default() -> Message {
        Message::Text(Template::compile(DEFAULT_TEMPLATE).expect("default template compiles"))
    }
}

/// Keys allowed in `message`.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum MessageField {
    Text,
    Binary,
}

/// `message.binary` settings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BinarySpec {
    /// Payload size, 1 byte to 64 MiB.
    #[serde(deserialize_with = "de_binary_size")]
    size: usize,
}

/// serde helper: binary message size, 1..=64 MiB.
fn de_binary_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(SizeVisitor {
        min: 1,
        max: MAX_BINARY_SIZE,
    })
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Message, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

/// Reads `message`: exactly one of `text` or `binary`.
struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with either text or binary")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut msg = None;
        while let Some(key) = map.next_key::<MessageField>()? {
            if msg.is_some() {
                return Err(de::Error::custom(
                    "set exactly one of text or binary, not both",
                ));
            }
            msg = Some(match key {
                MessageField::Text => Message::Text(map.next_value()?),
                MessageField::Binary => Message::Binary {
                    size: map.next_value::<BinarySpec>()?.size,
                },
            });
        }
        msg.ok_or_else(|| de::Error::custom("set one of text or binary"))
    }
}
