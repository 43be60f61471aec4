//! The report model (the JSON schema `barrage/report/v2`, see docs/report.md),
//! how it is built from a run, and its writers.

pub mod build;
pub mod compare;
pub mod hlog;
pub mod html;
mod html_time;
pub mod junit;
pub mod merge;
pub mod model;
pub mod search;
pub mod search_chart;
pub mod svg;
pub mod table;
pub mod write;

pub use build::{build, plan};
pub use model::{Report, SCHEMA, Verdict};
pub use write::{Format, ReportError, write_set};
