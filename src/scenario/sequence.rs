//! `sequence:`: completeness of pushed streams. Every received message
//! that carries a per-stream counter at `field` (and, for many streams on
//! one connection, the stream's name at `key`) is checked against the
//! stream's earlier ones: a gap counts as lost, a number seen before as a
//! duplicate, one arriving after a higher one as reordered.

use serde::Deserialize;

/// `sequence: { field: seq, key: from, backlog: 64 }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    /// JSON path of the stream's counter (an unsigned integer that goes up
    /// by one per message of the stream), e.g. `seq`. Required.
    #[serde(deserialize_with = "super::flow::de_path")]
    pub field: String,
    /// JSON path of the stream's name when one connection receives many
    /// streams (a room's senders: `from`). Default: one stream per
    /// connection.
    #[serde(default, deserialize_with = "de_opt_path")]
    pub key: Option<String>,
}

fn de_opt_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    super::flow::de_path(d).map(Some)
}

impl Sequence {
    /// The field's path split into keys.
    pub fn field_keys(&self) -> Vec<String> {
        self.field.split('.').map(String::from).collect()
    }

    /// The key's path split into keys, if any.
    pub fn key_keys(&self) -> Option<Vec<String>> {
        self.key
            .as_ref()
            .map(|k| k.split('.').map(String::from).collect())
    }
}

/// `fanout: { room: data.room }`: every connection is a member of a room
/// while it is open (its feeder row's column, or one named room), and
/// every paced send is expected to reach the other members of the
/// sender's room at that moment: `messages.fanout_expected`, against which
/// the deliveries received give `delivery.ratio`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fanout {
    /// `data.COLUMN` (the room of each connection's data row) or a room
    /// name every connection is in. Required.
    pub room: String,
    /// Index of the feeder column, when `room` names one (set when the
    /// scenario is read).
    #[serde(skip)]
    pub column: Option<usize>,
}
