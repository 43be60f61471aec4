//! Measurement: what the hot path records and how it reaches the reports.
//!
//! Connections record into the [`Recorder`] of their run, which keeps one set
//! of histograms per worker thread ([`recorder`]), never one per connection.
//! A collector calls [`Recorder::collect_into`] once per tick to take every
//! thread's data without stopping the writers, and turns it into a
//! [`Snapshot`] for the UI and the timeline.

pub mod data;
pub mod evaluate;
pub mod recorder;
pub mod snapshot;
pub mod wire;

pub use data::{
    ErrorKind, Shard, StageData, decode_histogram, encode_histogram, new_histogram,
    serialize_histogram,
};
pub use recorder::{ConnectionGauges, EventLog, Recorder};
pub use snapshot::{Collector, Snapshot, TickInfo};
