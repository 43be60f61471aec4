//! Measurement: what the hot path records and how it becomes the run data.
//!
//! Connections record into the [`Recorder`] of their run, which keeps one
//! [`ThreadData`] per worker thread ([`recorder`]), never one per
//! connection. Once a tick the [`Collector`] takes every thread's data
//! without stopping the writers and turns it into a [`RunData`] delta
//! ([`run_data`]): the one value that the UI, the JSON-lines wire, the
//! reports and `barrage merge` all add up and derive from.

pub mod collector;
pub mod data;
pub mod evaluate;
pub mod recorder;
pub mod run_data;

pub use collector::{Collector, TickInfo};
pub use data::{
    Counters, ErrorKind, StageData, decode_histogram, encode_histogram, new_histogram,
    serialize_histogram,
};
pub use recorder::{ConnectionGauges, Recorder, ThreadData};
pub use run_data::{Aborted, ControlChange, Events, RoleData, RunData, RunFacts, Second};
