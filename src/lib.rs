//! barrage: a high-throughput WebSocket load tester with honest latency.
//!
//! Data flows one way: `scenario → engine (→ ws) → metrics → ui / report`.
//!
//! - [`scenario`]: the YAML model, parsed with file:line:column errors;
//!   units, templates and thresholds compiled once.
//! - [`engine`]: runs a scenario: connection ramp, phases, pacing, one task
//!   per connection.
//! - [`ws`]: the client handshake and frame codec.
//! - [`control`]: live pause and rate factor (a leaf: engine, metrics and
//!   UI read it).
//! - [`metrics`]: per-thread recorders and the run data (`RunData`), the
//!   one addable value of everything a run measured.
//! - [`report`]: the report model (`barrage/report/v2`), derived from the
//!   run data in one place (`report::build`), and its writers.
//! - [`ui`]: everything that writes to the terminal.
//! - [`server`]: the built-in echo server.
//! - [`k8s`]: Kubernetes manifests running a scenario as shards of a Job.
//! - [`runner`]: one whole run as the CLI and the tests use it.
//! - [`cli`]: the command line.

pub mod cli;
pub mod control;
pub mod engine;
pub mod k8s;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod search;
pub mod server;
pub mod tls;
pub mod ui;
pub mod ws;

pub use runner::{RunOptions, RunOutcome, exit, run};
